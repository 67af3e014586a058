"""The Ray Serve application: one small deployment per model or store, composed by handles.

    SpeechToText   faster-whisper (audio -> text)
    TextEncoder    MiniLM, dynamic batching        ImageEncoder  EfficientNet head, batching
    Fusion         the fusion model (only when one is configured)
    Retriever      owns the Qdrant index; encodes through the encoder deployments
    Agent          the LLM, dialog state and carts; reads the catalog through the Retriever
    TryOn          face landmarks and compositing (virtual try-on); product photos from the
                   Retriever
    Ingress        the FastAPI app (bijou.serve.api) over handles to the above

Replicas, CPUs, GPUs and autoscaling come from the YAML file (serve.yaml), which works with
`serve run` / `serve deploy` and with `bijou serve --config`. With the embedded index the
Retriever must stay at one replica; with a Qdrant server it scales to many.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
from fastapi import FastAPI
from PIL import Image
from ray import serve
from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError
from ray.serve.exceptions import ReplicaUnavailableError
from ray.serve.handle import DeploymentHandle, DeploymentResponse

from bijou.agent.agent import AgentEvent, ShoppingAgent
from bijou.agent.llm import load_chat_model
from bijou.agent.memory import SessionStore
from bijou.agent.tools import CartItem, ToolCall, ToolResult, cart_items
from bijou.catalog.schema import Product
from bijou.config import BijouConfig, load_config, merge_tree
from bijou.fusion.encoders import Encoders
from bijou.modelfiles import ModelFileError
from bijou.retrieval.complements import Bundle, Complement
from bijou.retrieval.knowledge import KnowledgeAnswer
from bijou.retrieval.query import QueryParser
from bijou.retrieval.search import SearchEngine, SearchRequest, SearchResult
from bijou.retrieval.shop import LocalShop, size_chart_of
from bijou.serve.api import BackendUnavailableError, create_app
from bijou.serve.speech import SpeechToText, Transcript
from bijou.serve.tryon import OutputFormat, Reason, TryOnError, TryOnRenderer

log = logging.getLogger(__name__)

APP_NAME = "bijou"
BRANDS_TTL_S = 300.0  # how long the Agent trusts its copy of the catalog's brand list
# A replica that died (ray.kill, a crash, its node lost) fails the calls in flight on it;
# Serve starts a replacement and routes the next call to a live replica.
REPLICA_LOST = (RayActorError, ReplicaUnavailableError, WorkerCrashedError)

T = TypeVar("T")


def _cause(error: RayTaskError) -> BaseException:
    """The exception a deployment raised, as the caller would have seen it in one process:
    a RayTaskError's own text carries the remote traceback and file paths."""
    return error.cause if isinstance(error.cause, Exception) else error


def call_once_more(call: Callable[[], DeploymentResponse], what: str) -> Any:
    """An idempotent call from inside a replica, retried once when its replica was lost."""
    try:
        return call().result()
    except RayTaskError as error:
        raise _cause(error) from None
    except REPLICA_LOST:
        log.warning("%s: replica lost, retrying once", what)
        try:
            return call().result()
        except RayTaskError as error:
            raise _cause(error) from None


async def ask(call: Callable[[], Awaitable[T]], what: str, *, idempotent: bool) -> T:
    """A call from the ingress: retried once on a lost replica when it is idempotent, and a
    lost replica is a 503 (the client may try again), never a traceback."""
    for attempt in (1, 2):
        try:
            return await call()
        except RayTaskError as error:
            raise _cause(error) from None
        except REPLICA_LOST as error:
            if idempotent and attempt == 1:
                log.warning("%s: replica lost, retrying once", what)
                continue
            raise BackendUnavailableError(f"{what}: a replica was lost") from error
    raise AssertionError("unreachable")


# --- models --------------------------------------------------------------------------------
@serve.deployment
class TextEncoder:
    def __init__(self, config: BijouConfig) -> None:
        from bijou.fusion.text import load_text_encoder

        self.model = load_text_encoder(config)

    def info(self) -> tuple[str, int]:
        return self.model.version, self.model.dim

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def embed(self, texts: list[str]) -> list[np.ndarray]:
        return list(self.model.encode(texts))


@serve.deployment
class ImageEncoder:
    def __init__(self, config: BijouConfig) -> None:
        from bijou.fusion.image import load_image_encoder

        self.model = load_image_encoder(config)

    def info(self) -> tuple[str, int]:
        return self.model.version, self.model.dim

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)
    async def embed(self, images: list[Image.Image]) -> list[np.ndarray]:
        return list(self.model.encode(images))


@serve.deployment
class Fusion:
    def __init__(self, config: BijouConfig) -> None:
        from bijou.fusion.models import load_fuser

        fuser = load_fuser(config.fusion.kind, config.fusion.checkpoint)
        assert fuser is not None, "the Fusion deployment needs fusion.kind other than none"
        self.fuser = fuser

    def info(self) -> tuple[str, int, int]:
        return self.fuser.version, self.fuser.dim, self.fuser.in_dim

    def query(self, text: np.ndarray | None, photo: np.ndarray | None) -> np.ndarray:
        return self.fuser.query(text, photo)

    def products(self, *arrays: np.ndarray | None) -> np.ndarray:
        return self.fuser.products(*arrays)


@serve.deployment
class SpeechToTextDeployment:
    def __init__(self, config: BijouConfig) -> None:
        self.speech = SpeechToText.load(config)

    def transcribe(self, audio: bytes, language: str | None) -> Transcript:
        return self.speech.transcribe_query(audio, language)


@dataclass(frozen=True)
class TryOnRefusal:
    """A TryOnError carried back over a handle as a value (its reason intact), or, with
    reason "unavailable", the missing face models' install command (a 503)."""

    reason: Reason | Literal["unavailable"]
    message: str


@serve.deployment
class TryOnDeployment:
    """Try-on on its own replica: the photo reaches it in memory and is never stored."""

    def __init__(self, config: BijouConfig, retriever: DeploymentHandle) -> None:
        self.config = config.tryon
        self.retriever = retriever
        # Without the face models the app still deploys; each try-on answers 503 saying why.
        self.renderer: TryOnRenderer | None = None
        self.unavailable = TryOnRefusal("unavailable", "")
        try:
            self.renderer = TryOnRenderer.load(config.tryon)
        except ModelFileError as exc:
            self.unavailable = TryOnRefusal("unavailable", str(exc))

    def render(
        self, photo: Image.Image, product: Product, fmt: OutputFormat
    ) -> bytes | TryOnRefusal:
        """The encoded image, or why not."""
        if self.renderer is None:
            return self.unavailable
        try:
            self.renderer.check_wearable(product)
            product_photo = self.retriever.image.remote(product).result()
            result = self.renderer.render(photo, product, product_photo)
        except TryOnError as exc:
            return TryOnRefusal(exc.reason, str(exc))
        return result.encode(fmt, self.config.jpeg_quality)


# Encoders for the Retriever that call the deployments: the same protocol as local models.
# Their version and size are asked for on first use: a replica's constructor runs in its
# event loop, where a blocking handle call is refused.
class _RemoteEncoder:
    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle

    @functools.cached_property
    def _info(self) -> tuple[str, int]:
        return call_once_more(self.handle.info.remote, "encoder info")

    @property
    def version(self) -> str:
        return self._info[0]

    @property
    def dim(self) -> int:
        return self._info[1]

    def encode(self, items: Sequence[Any]) -> np.ndarray:
        if not items:  # a chunk of products none of which has an image
            return np.empty((0, self.dim), np.float32)
        responses = [self.handle.embed.remote(item) for item in items]  # batched by Serve
        vectors = []
        for item, response in zip(items, responses, strict=True):
            try:
                vectors.append(response.result())
            except REPLICA_LOST:
                vectors.append(call_once_more(lambda i=item: self.handle.embed.remote(i), "embed"))
        return np.stack(vectors).astype(np.float32)


class _RemoteFuser(_RemoteEncoder):
    @functools.cached_property
    def _info(self) -> tuple[str, int, int]:
        return call_once_more(self.handle.info.remote, "fusion info")

    @property
    def in_dim(self) -> int:
        return self._info[2]

    def query(self, text: np.ndarray | None, photo: np.ndarray | None) -> np.ndarray:
        return call_once_more(lambda: self.handle.query.remote(text, photo), "fuse query")

    def products(self, *arrays: np.ndarray | None) -> np.ndarray:
        return call_once_more(lambda: self.handle.products.remote(*arrays), "fuse products")


# --- catalog -------------------------------------------------------------------------------
@serve.deployment
class Retriever:
    """The index's owner: search, products, images, complements and admin writes."""

    def __init__(
        self,
        config: BijouConfig,
        text: DeploymentHandle,
        image: DeploymentHandle,
        fusion: DeploymentHandle | None = None,
    ) -> None:
        fuser = _RemoteFuser(fusion) if fusion is not None else None
        encoders = Encoders(_RemoteEncoder(text), _RemoteEncoder(image), fuser)  # type: ignore[arg-type]
        self.shop = LocalShop.load(config, SearchEngine.load(config, encoders))
        # The shop's pages are indexed off the event loop (the remote encoder blocks), in
        # the background: search serves meanwhile; a first question waits for them.
        threading.Thread(target=lambda: self.shop.engine.knowledge, daemon=True).start()

    def ready(self) -> bool:
        return self.shop.engine.index.serving

    def brands(self) -> list[str]:
        return self.shop.engine.index.values("brand")

    def search(self, request: SearchRequest) -> SearchResult:
        return self.shop.search(request)

    def get(self, product_id: str) -> Product | None:
        return self.shop.get(product_id)

    def get_many(self, product_ids: Sequence[str]) -> list[Product]:
        return self.shop.get_many(product_ids)

    def image(self, product: Product) -> Image.Image | None:
        return self.shop.image(product)

    def image_bytes(self, product_id: str) -> bytes | None:
        product = self.shop.get(product_id)
        if product is None or not product.image:
            return None
        return self.shop.engine.store.read_bytes(product.image)

    def complements(self, anchor: Product, **options: Any) -> list[Complement]:
        return self.shop.complements(anchor, **options)

    def bundle(self, anchor: Product, **options: Any) -> Bundle | None:
        return self.shop.bundle(anchor, **options)

    def answer(self, question: str) -> KnowledgeAnswer:
        return self.shop.answer(question)

    def upsert(self, products: list[Product]) -> int:
        return self.shop.engine.upsert(products)

    def delete(self, product_ids: list[str]) -> int:
        return self.shop.engine.delete(product_ids)

    def __del__(self) -> None:
        # Serve calls this on a graceful shutdown: the embedded index is flushed and unlocked.
        self.shop.close()


class RemoteShop:
    """The agent's `Shop`, answered by the Retriever deployment; every call is a read, so
    each is retried once when the Retriever's replica is lost mid-call."""

    def __init__(self, retriever: DeploymentHandle, size_chart: Path) -> None:
        self.retriever = retriever
        self.size_chart = size_chart
        self._parser: QueryParser | None = None
        self._parser_at = 0.0

    @property
    def parser(self) -> QueryParser:
        if self._parser is None or time.monotonic() - self._parser_at > BRANDS_TTL_S:
            self._parser = QueryParser(call_once_more(self.retriever.brands.remote, "brands"))
            self._parser_at = time.monotonic()
        return self._parser

    def search(self, request: SearchRequest) -> SearchResult:
        return call_once_more(lambda: self.retriever.search.remote(request), "search")

    def get(self, product_id: str) -> Product | None:
        return call_once_more(lambda: self.retriever.get.remote(product_id), "get")

    def get_many(self, product_ids: Sequence[str]) -> list[Product]:
        ids = list(product_ids)
        return call_once_more(lambda: self.retriever.get_many.remote(ids), "get_many")

    def image(self, product: Product) -> Image.Image | None:
        return call_once_more(lambda: self.retriever.image.remote(product), "image")

    def complements(self, anchor: Product, **options: Any) -> list[Complement]:
        return call_once_more(
            lambda: self.retriever.complements.remote(anchor, **options), "complements"
        )

    def bundle(self, anchor: Product, **options: Any) -> Bundle | None:
        return call_once_more(lambda: self.retriever.bundle.remote(anchor, **options), "bundle")

    def answer(self, question: str) -> KnowledgeAnswer:
        return self.retriever.answer.remote(question).result()


# --- agent ---------------------------------------------------------------------------------
@serve.deployment
class Agent:
    """The LLM, dialog state and carts (SQLite on this replica's node)."""

    def __init__(self, config: BijouConfig, retriever: DeploymentHandle) -> None:
        shop = RemoteShop(retriever, size_chart_of(config))
        self.agent = ShoppingAgent(config, shop, SessionStore.open(config), load_chat_model(config))

    def ready(self) -> bool:
        return True

    def create_session(self, shopper_id: str | None) -> str:
        return self.agent.start_session(shopper_id)

    def conversation(self, digest: str) -> str | None:
        return self.agent.store.conversation(digest)

    def remember_conversation(self, digest: str, session_id: str) -> None:
        self.agent.store.remember_conversation(digest, session_id)

    def chat(
        self, session_id: str, message: str, image: Image.Image | None
    ) -> Iterator[AgentEvent]:
        yield from self.agent.stream(session_id, message, image)

    def cart(self, session_id: str) -> list[CartItem]:
        return cart_items(self.agent.shop, self.agent.store.cart(session_id))

    def add_to_cart(self, session_id: str, product_id: str, quantity: int) -> list[CartItem]:
        return cart_items(
            self.agent.shop, self.agent.store.add_to_cart(session_id, product_id, quantity)
        )

    def remove_from_cart(self, session_id: str, product_id: str) -> list[CartItem]:
        return cart_items(
            self.agent.shop, self.agent.store.remove_from_cart(session_id, product_id)
        )

    def clear_cart(self, session_id: str) -> None:
        self.agent.store.clear_cart(session_id)

    def delete_session(self, session_id: str) -> None:
        self.agent.store.delete_session(session_id)

    def focus_on(self, session_id: str, product_id: str) -> None:
        self.agent.focus_on(session_id, product_id)

    def __del__(self) -> None:
        # Serve calls this on a graceful shutdown, after the turns in flight have finished.
        self.agent.store.close()

    def run_tool(self, call: ToolCall) -> ToolResult:
        return self.agent.run_tool(call)


# --- ingress -------------------------------------------------------------------------------
class RayBackend:
    """The HTTP API's backend: handles to the deployments. Reads and idempotent writes
    (upserts and deletes by id) are retried once when a replica is lost mid-call; a chat
    turn or a cart addition is not (it may have been applied), and fails as a 503."""

    def __init__(self) -> None:
        def handle(name: str) -> DeploymentHandle:
            return serve.get_deployment_handle(name, app_name=APP_NAME)

        self.agent = handle("Agent")
        self.retriever = handle("Retriever")
        self.speech = handle("SpeechToText")
        self.tryon = handle("TryOn")

    async def ready(self) -> bool:
        retriever = await ask(self.retriever.ready.remote, "ready", idempotent=True)
        agent = await ask(self.agent.ready.remote, "ready", idempotent=True)
        return bool(retriever) and bool(agent)

    async def create_session(self, shopper_id: str | None) -> str:
        return await ask(
            lambda: self.agent.create_session.remote(shopper_id), "session", idempotent=False
        )

    async def conversation(self, digest: str) -> str | None:
        return await self.agent.conversation.remote(digest)

    async def remember_conversation(self, digest: str, session_id: str) -> None:
        await self.agent.remember_conversation.remote(digest, session_id)

    async def chat(
        self, session_id: str, message: str, image: Image.Image | None
    ) -> AsyncIterator[AgentEvent]:
        stream = self.agent.options(stream=True).chat.remote(session_id, message, image)
        try:
            async for event in stream:
                yield event
        except RayTaskError as error:
            raise _cause(error) from None
        except REPLICA_LOST as error:
            raise BackendUnavailableError("chat: the agent's replica was lost") from error

    async def transcribe(self, audio: bytes, language: str) -> Transcript:
        chosen = None if language == "auto" else language
        return await ask(
            lambda: self.speech.transcribe.remote(audio, chosen), "transcribe", idempotent=True
        )

    async def search(self, request: SearchRequest) -> SearchResult:
        return await ask(lambda: self.retriever.search.remote(request), "search", idempotent=True)

    async def product(self, product_id: str) -> Product | None:
        return await ask(lambda: self.retriever.get.remote(product_id), "product", idempotent=True)

    async def product_image(self, product_id: str) -> bytes | None:
        return await ask(
            lambda: self.retriever.image_bytes.remote(product_id), "image", idempotent=True
        )

    async def cart(self, session_id: str) -> list[CartItem]:
        return await ask(lambda: self.agent.cart.remote(session_id), "cart", idempotent=True)

    async def add_to_cart(self, session_id: str, product_id: str, quantity: int) -> list[CartItem]:
        return await ask(
            lambda: self.agent.add_to_cart.remote(session_id, product_id, quantity),
            "cart add",
            idempotent=False,
        )

    async def remove_from_cart(self, session_id: str, product_id: str) -> list[CartItem]:
        # Not retried: a second removal of a line that is gone would answer 404.
        return await ask(
            lambda: self.agent.remove_from_cart.remote(session_id, product_id),
            "cart remove",
            idempotent=False,
        )

    async def clear_cart(self, session_id: str) -> None:
        await ask(lambda: self.agent.clear_cart.remote(session_id), "cart clear", idempotent=True)

    async def delete_session(self, session_id: str) -> None:
        await ask(lambda: self.agent.delete_session.remote(session_id), "forget", idempotent=False)

    async def tool(self, call: ToolCall) -> ToolResult:
        return await self.agent.run_tool.remote(call)

    async def upsert(self, products: list[Product]) -> int:
        return await ask(lambda: self.retriever.upsert.remote(products), "upsert", idempotent=True)

    async def delete(self, product_ids: list[str]) -> int:
        return await ask(
            lambda: self.retriever.delete.remote(product_ids), "delete", idempotent=True
        )

    async def try_on(self, photo: Image.Image, product: Product, fmt: OutputFormat) -> bytes:
        result = await ask(
            lambda: self.tryon.render.remote(photo, product, fmt), "try-on", idempotent=True
        )
        if isinstance(result, TryOnRefusal):
            if result.reason == "unavailable":
                raise ModelFileError(result.message)
            raise TryOnError(result.reason, result.message)
        return result

    async def focus(self, session_id: str, product_id: str) -> None:
        await ask(
            lambda: self.agent.focus_on.remote(session_id, product_id), "focus", idempotent=True
        )


def _api_builder(config: BijouConfig) -> Callable[[], FastAPI]:
    """Serve runs a builder *function* on each Ingress replica (a partial is taken for an
    ASGI app itself)."""

    def build() -> FastAPI:
        return create_app(config, RayBackend)

    return build


def build_app(args: dict[str, Any], overrides: dict[str, dict[str, Any]] | None = None):
    """The application builder named in serve.yaml (`import_path: bijou.serve.app:build_app`).

    ``args["config"]``: Bijou settings (the keys of config.example.yaml), over the file named
    by ``args["config_file"]`` or $BIJOU_CONFIG and the environment. ``overrides``: per
    deployment options when not started by `serve run` (which applies the YAML's own)."""
    config = settings(args)
    options = overrides or {}
    if config.index.mode == "edge" and options.get("Retriever", {}).get("num_replicas", 1) != 1:
        raise ValueError("the embedded index allows one Retriever replica; use a Qdrant server")

    def deployment(cls: Any, name: str) -> Any:
        return cls.options(name=name, **options.get(name, {}))

    text = deployment(TextEncoder, "TextEncoder").bind(config)
    image = deployment(ImageEncoder, "ImageEncoder").bind(config)
    fusion = deployment(Fusion, "Fusion").bind(config) if config.fusion.kind != "none" else None
    retriever = deployment(Retriever, "Retriever").bind(config, text, image, fusion)
    agent = deployment(Agent, "Agent").bind(config, retriever)
    speech = deployment(SpeechToTextDeployment, "SpeechToText").bind(config)
    tryon = deployment(TryOnDeployment, "TryOn").bind(config, retriever)
    ingress = serve.deployment(serve.ingress(_api_builder(config))(_Ingress))
    return deployment(ingress, "Ingress").bind(agent, retriever, speech, tryon)


def settings(args: dict[str, Any]) -> BijouConfig:
    """The Bijou configuration an application's args describe."""
    file = args.get("config_file")
    base = load_config(Path(file) if file else None)
    return BijouConfig.model_validate(merge_tree(base.model_dump(), args.get("config") or {}))


class _Ingress:
    """Holds the handles so Serve deploys what the API depends on; routes use RayBackend."""

    def __init__(self, *handles: DeploymentHandle) -> None:
        self.handles = handles
