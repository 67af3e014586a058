"""Everything in one process behind the HTTP API: the agent, its catalog and speech models.
Used by the tests and by a shop that runs without Ray; blocking work runs in threads."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

from PIL import Image
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from bijou.agent.agent import AgentEvent, ShoppingAgent
from bijou.agent.memory import CartLine
from bijou.agent.tools import CartItem, ToolCall, ToolResult, cart_items
from bijou.catalog.schema import Product
from bijou.config import BijouConfig
from bijou.retrieval.search import SearchEngine, SearchRequest, SearchResult
from bijou.retrieval.shop import LocalShop
from bijou.serve.speech import SpeechToText, Transcript
from bijou.serve.tryon import OutputFormat, TryOnRenderer


class LocalBackend:
    def __init__(self, agent: ShoppingAgent, engine: SearchEngine, speech: SpeechToText) -> None:
        self.agent = agent
        self.engine = engine
        self.speech = speech

    @classmethod
    def load(cls, config: BijouConfig, engine: SearchEngine | None = None) -> LocalBackend:
        agent = ShoppingAgent.load(config, engine)
        assert isinstance(agent.shop, LocalShop)
        return cls(agent, agent.shop.engine, SpeechToText.load(config))

    @functools.cached_property
    def tryon(self) -> TryOnRenderer:
        """Loaded on the first try-on: a shop without the face models still chats."""
        return TryOnRenderer.load(self.agent.config.tryon)

    async def ready(self) -> bool:
        return self.engine.index.serving

    async def create_session(self, shopper_id: str | None) -> str:
        return await run_in_threadpool(self.agent.start_session, shopper_id)

    async def latest_session(self, shopper_id: str) -> str:
        sessions = await run_in_threadpool(self.agent.store.sessions_of, shopper_id)
        return sessions[-1] if sessions else await self.create_session(shopper_id)

    async def conversation(self, digest: str) -> str | None:
        return await run_in_threadpool(self.agent.store.conversation, digest)

    async def remember_conversation(self, digest: str, session_id: str) -> None:
        await run_in_threadpool(self.agent.store.remember_conversation, digest, session_id)

    def chat(
        self, session_id: str, message: str, image: Image.Image | None
    ) -> AsyncIterator[AgentEvent]:
        return iterate_in_threadpool(self.agent.stream(session_id, message, image))

    async def transcribe(self, audio: bytes, language: str) -> Transcript:
        chosen = None if language == "auto" else language
        return await run_in_threadpool(self.speech.transcribe_query, audio, chosen)

    async def search(self, request: SearchRequest) -> SearchResult:
        return await run_in_threadpool(self.engine.search.search, request)

    async def product(self, product_id: str) -> Product | None:
        return await run_in_threadpool(self.engine.index.get, product_id)

    async def product_image(self, product_id: str) -> bytes | None:
        product = await self.product(product_id)
        if product is None or not product.image:
            return None
        return await run_in_threadpool(self.engine.store.read_bytes, product.image)

    async def cart(self, session_id: str) -> list[CartItem]:
        return await run_in_threadpool(self._cart_items, self.agent.store.cart(session_id))

    async def add_to_cart(self, session_id: str, product_id: str, quantity: int) -> list[CartItem]:
        lines = await run_in_threadpool(
            self.agent.store.add_to_cart, session_id, product_id, quantity
        )
        return await run_in_threadpool(self._cart_items, lines)

    async def remove_from_cart(self, session_id: str, product_id: str) -> list[CartItem]:
        lines = await run_in_threadpool(self.agent.store.remove_from_cart, session_id, product_id)
        return await run_in_threadpool(self._cart_items, lines)

    async def clear_cart(self, session_id: str) -> None:
        await run_in_threadpool(self.agent.store.clear_cart, session_id)

    async def delete_session(self, session_id: str) -> None:
        await run_in_threadpool(self.agent.store.delete_session, session_id)

    async def tool(self, call: ToolCall) -> ToolResult:
        return await run_in_threadpool(self.agent.run_tool, call)

    def _cart_items(self, lines: list[CartLine]) -> list[CartItem]:
        return cart_items(self.agent.shop, lines)

    async def upsert(self, products: list[Product]) -> int:
        return await run_in_threadpool(self.engine.upsert, products)

    async def delete(self, product_ids: list[str]) -> int:
        return await run_in_threadpool(self.engine.delete, product_ids)

    async def try_on(self, photo: Image.Image, product: Product, fmt: OutputFormat) -> bytes:
        return await run_in_threadpool(self._try_on, photo, product, fmt)

    def _try_on(self, photo: Image.Image, product: Product, fmt: OutputFormat) -> bytes:
        self.tryon.check_wearable(product)  # before reading its photo
        result = self.tryon.render(photo, product, self.engine.store.load(product))
        return result.encode(fmt, self.agent.config.tryon.jpeg_quality)

    async def focus(self, session_id: str, product_id: str) -> None:
        await run_in_threadpool(self.agent.focus_on, session_id, product_id)

    def close(self) -> None:
        self.agent.close()
