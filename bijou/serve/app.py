"""The Ray Serve application: one small deployment per model or store, composed by handles.

    SpeechToText   faster-whisper (audio -> text)
    TextEncoder    MiniLM, dynamic batching        ImageEncoder  EfficientNet head, batching
    Fusion         the fusion model (only when one is configured)
    Retriever      owns the Qdrant index; encodes through the encoder deployments
    Agent          the LLM, dialog state and carts; reads the catalog through the Retriever
    Ingress        the FastAPI app (bijou.serve.api) over handles to the above

Replicas, CPUs, GPUs and autoscaling come from the YAML file (serve.yaml), which works with
`serve run` / `serve deploy` and with `bijou serve --config`. With the embedded index the
Retriever must stay at one replica; with a Qdrant server it scales to many.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI
from PIL import Image
from ray import serve
from ray.serve.handle import DeploymentHandle

from bijou.agent.agent import AgentEvent, ShoppingAgent
from bijou.agent.llm import load_chat_model
from bijou.agent.memory import SessionStore
from bijou.agent.tools import CartItem, ToolCall, ToolResult, cart_items
from bijou.catalog.schema import Product
from bijou.config import BijouConfig, load_config, merge_tree
from bijou.fusion.encoders import Encoders
from bijou.retrieval.complements import Bundle, Complement
from bijou.retrieval.knowledge import KnowledgeAnswer
from bijou.retrieval.query import QueryParser
from bijou.retrieval.search import SearchEngine, SearchRequest, SearchResult
from bijou.retrieval.shop import LocalShop, size_chart_of
from bijou.serve.api import create_app
from bijou.serve.speech import SpeechToText, Transcript

APP_NAME = "bijou"
BRANDS_TTL_S = 300.0  # how long the Agent trusts its copy of the catalog's brand list


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


# Encoders for the Retriever that call the deployments: the same protocol as local models.
# Their version and size are asked for on first use: a replica's constructor runs in its
# event loop, where a blocking handle call is refused.
class _RemoteEncoder:
    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle

    @functools.cached_property
    def _info(self) -> tuple[str, int]:
        return self.handle.info.remote().result()

    @property
    def version(self) -> str:
        return self._info[0]

    @property
    def dim(self) -> int:
        return self._info[1]

    def encode(self, items: Sequence[Any]) -> np.ndarray:
        responses = [self.handle.embed.remote(item) for item in items]  # batched by Serve
        return np.stack([r.result() for r in responses]).astype(np.float32)


class _RemoteFuser(_RemoteEncoder):
    @functools.cached_property
    def _info(self) -> tuple[str, int, int]:
        return self.handle.info.remote().result()

    @property
    def in_dim(self) -> int:
        return self._info[2]

    def query(self, text: np.ndarray | None, photo: np.ndarray | None) -> np.ndarray:
        return self.handle.query.remote(text, photo).result()

    def products(self, *arrays: np.ndarray | None) -> np.ndarray:
        return self.handle.products.remote(*arrays).result()


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
        return self.shop.engine.index.manifest is not None

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


class RemoteShop:
    """The agent's `Shop`, answered by the Retriever deployment."""

    def __init__(self, retriever: DeploymentHandle, size_chart: Path) -> None:
        self.retriever = retriever
        self.size_chart = size_chart
        self._parser: QueryParser | None = None
        self._parser_at = 0.0

    @property
    def parser(self) -> QueryParser:
        if self._parser is None or time.monotonic() - self._parser_at > BRANDS_TTL_S:
            self._parser = QueryParser(self.retriever.brands.remote().result())
            self._parser_at = time.monotonic()
        return self._parser

    def search(self, request: SearchRequest) -> SearchResult:
        return self.retriever.search.remote(request).result()

    def get(self, product_id: str) -> Product | None:
        return self.retriever.get.remote(product_id).result()

    def get_many(self, product_ids: Sequence[str]) -> list[Product]:
        return self.retriever.get_many.remote(list(product_ids)).result()

    def image(self, product: Product) -> Image.Image | None:
        return self.retriever.image.remote(product).result()

    def complements(self, anchor: Product, **options: Any) -> list[Complement]:
        return self.retriever.complements.remote(anchor, **options).result()

    def bundle(self, anchor: Product, **options: Any) -> Bundle | None:
        return self.retriever.bundle.remote(anchor, **options).result()

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

    def latest_session(self, shopper_id: str) -> str:
        sessions = self.agent.store.sessions_of(shopper_id)
        return sessions[-1] if sessions else self.agent.start_session(shopper_id)

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

    def run_tool(self, call: ToolCall) -> ToolResult:
        return self.agent.run_tool(call)


# --- ingress -------------------------------------------------------------------------------
class RayBackend:
    """The HTTP API's backend: handles to the deployments."""

    def __init__(self) -> None:
        def handle(name: str) -> DeploymentHandle:
            return serve.get_deployment_handle(name, app_name=APP_NAME)

        self.agent = handle("Agent")
        self.retriever = handle("Retriever")
        self.speech = handle("SpeechToText")

    async def ready(self) -> bool:
        return bool(await self.retriever.ready.remote()) and bool(await self.agent.ready.remote())

    async def create_session(self, shopper_id: str | None) -> str:
        return await self.agent.create_session.remote(shopper_id)

    async def latest_session(self, shopper_id: str) -> str:
        return await self.agent.latest_session.remote(shopper_id)

    async def conversation(self, digest: str) -> str | None:
        return await self.agent.conversation.remote(digest)

    async def remember_conversation(self, digest: str, session_id: str) -> None:
        await self.agent.remember_conversation.remote(digest, session_id)

    async def chat(
        self, session_id: str, message: str, image: Image.Image | None
    ) -> AsyncIterator[AgentEvent]:
        async for event in self.agent.options(stream=True).chat.remote(session_id, message, image):
            yield event

    async def transcribe(self, audio: bytes, language: str) -> Transcript:
        return await self.speech.transcribe.remote(audio, None if language == "auto" else language)

    async def search(self, request: SearchRequest) -> SearchResult:
        return await self.retriever.search.remote(request)

    async def product(self, product_id: str) -> Product | None:
        return await self.retriever.get.remote(product_id)

    async def product_image(self, product_id: str) -> bytes | None:
        return await self.retriever.image_bytes.remote(product_id)

    async def cart(self, session_id: str) -> list[CartItem]:
        return await self.agent.cart.remote(session_id)

    async def add_to_cart(self, session_id: str, product_id: str, quantity: int) -> list[CartItem]:
        return await self.agent.add_to_cart.remote(session_id, product_id, quantity)

    async def remove_from_cart(self, session_id: str, product_id: str) -> list[CartItem]:
        return await self.agent.remove_from_cart.remote(session_id, product_id)

    async def clear_cart(self, session_id: str) -> None:
        await self.agent.clear_cart.remote(session_id)

    async def delete_session(self, session_id: str) -> None:
        await self.agent.delete_session.remote(session_id)

    async def tool(self, call: ToolCall) -> ToolResult:
        return await self.agent.run_tool.remote(call)

    async def upsert(self, products: list[Product]) -> int:
        return await self.retriever.upsert.remote(products)

    async def delete(self, product_ids: list[str]) -> int:
        return await self.retriever.delete.remote(product_ids)


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
    ingress = serve.deployment(serve.ingress(_api_builder(config))(_Ingress))
    return deployment(ingress, "Ingress").bind(agent, retriever, speech)


def settings(args: dict[str, Any]) -> BijouConfig:
    """The Bijou configuration an application's args describe."""
    file = args.get("config_file")
    base = load_config(Path(file) if file else None)
    return BijouConfig.model_validate(merge_tree(base.model_dump(), args.get("config") or {}))


class _Ingress:
    """Holds the handles so Serve deploys what the API depends on; routes use RayBackend."""

    def __init__(self, *handles: DeploymentHandle) -> None:
        self.handles = handles
