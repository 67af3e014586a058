"""The MCP server through the official SDK's own client, on both transports: streamable
HTTP at /mcp on the running app (uvicorn), and stdio (`bijou mcp` as a subprocess, as a
desktop assistant starts it). Lists the tools and calls each; admin is never exposed."""

from __future__ import annotations

import base64
import io
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from mcp import Client, StdioServerParameters

from bijou.agent.agent import ShoppingAgent
from bijou.agent.llm import ChatModel
from bijou.agent.memory import SessionStore
from bijou.catalog.schema import Product
from bijou.retrieval.complements import ComplementFinder
from bijou.retrieval.search import SearchEngine
from bijou.retrieval.shop import LocalShop
from bijou.serve.api import create_app
from bijou.serve.local import LocalBackend
from bijou.serve.speech import SpeechToText

CHECKOUT = "https://shop.example/cart/{items}?ref={cart_id}"
TOOLS = {
    "search_catalog", "get_product", "find_complements", "build_look", "create_cart",
    "get_cart", "update_cart", "checkout", "search_shop_policies", "convert_size",
}  # fmt: skip


@pytest.fixture(scope="module")
def mcp_url(
    small_engine: SearchEngine,
    finder: ComplementFinder,
    chat_model: ChatModel,
    tmp_path_factory: pytest.TempPathFactory,
    serve_app: Callable[[FastAPI], AbstractContextManager[str]],
) -> Iterator[str]:
    """The HTTP app served by uvicorn on a free port, as `bijou serve` serves it."""
    folder = tmp_path_factory.mktemp("mcp")
    serve = small_engine.config.serve.model_copy(update={"checkout_url": CHECKOUT})
    config = small_engine.config.model_copy(update={"data_dir": folder, "serve": serve})
    store = SessionStore(folder / "sessions.sqlite3")
    agent = ShoppingAgent(config, LocalShop(small_engine, finder), store, chat_model)
    backend = LocalBackend(agent, small_engine, SpeechToText.load(config))
    with serve_app(create_app(config, lambda: backend)) as base:
        yield f"{base}/mcp"
    store.close()


def _data(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return result.structured_content


def _error(result: Any) -> str:
    assert result.is_error
    return " ".join(c.text for c in result.content)


def _jpeg(product: Product, engine: SearchEngine) -> str:
    image = engine.store.load(product)
    assert image is not None
    out = io.BytesIO()
    image.save(out, "JPEG")
    return base64.b64encode(out.getvalue()).decode()


def _session(server: Any, body: Callable[[Client], Awaitable[None]]) -> None:
    async def main() -> None:
        async with Client(server) as client:
            await body(client)

    anyio.run(main)


def test_http_lists_the_shop_tools_and_no_admin(mcp_url: str) -> None:
    async def body(client: Client) -> None:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        assert not any(w in name for name in tools for w in ("admin", "upsert", "delete"))
        assert tools["get_product"].annotations.read_only_hint
        assert not tools["update_cart"].annotations.read_only_hint
        assert tools["search_catalog"].output_schema  # structured results

    _session(mcp_url, body)


def test_http_catalog_tools(mcp_url: str, small_products: list[Product], small_engine) -> None:
    earring = next(p for p in small_products if p.article == "Earrings")
    watch = next(p for p in small_products if p.article == "Watches")

    async def body(client: Client) -> None:
        found = _data(await client.call_tool("search_catalog", {"query": "earrings under 2000"}))
        assert found["products"]
        assert all(p["article"] == "Earrings" and p["price"] <= 2000 for p in found["products"])
        capped = _data(await client.call_tool("search_catalog", {"query": "watch",
                                                                  "max_price": 1500}))  # fmt: skip
        assert all(p["price"] <= 1500 for p in capped["products"])
        by_photo = _data(
            await client.call_tool("search_catalog", {"image_base64": _jpeg(watch, small_engine)})
        )
        assert by_photo["products"][0]["article"] == "Watches"
        like = _data(await client.call_tool("search_catalog", {"like_product_id": earring.id}))
        assert like["products"] and earring.id not in [p["id"] for p in like["products"]]
        assert {p["article"] for p in like["products"]} == {"Earrings"}

        record = _data(await client.call_tool("get_product", {"product_id": earring.id}))
        assert record["product"]["title"] == earring.title
        assert record["product"]["price"] == earring.price

        matches = _data(await client.call_tool("find_complements", {"product_id": earring.id}))
        assert matches["anchor"]["id"] == earring.id and matches["matches"]
        assert all(m["article"] != "Earrings" and m["why"] for m in matches["matches"])

        budget = earring.price + 3000
        look = _data(await client.call_tool("build_look", {"product_id": earring.id,
                                                           "budget": budget}))  # fmt: skip
        assert look["total"] <= budget and look["items"]
        assert look["total"] == pytest.approx(
            earring.price + sum(i["price"] for i in look["items"])
        )

        async def ask(question: str) -> dict[str, Any]:
            return _data(await client.call_tool("search_shop_policies", {"question": question}))

        async def size(**args: str) -> Any:
            return await client.call_tool("convert_size", args)

        policy = await ask("how many days do I have to send back a necklace for a refund?")
        assert policy["answered"] and policy["pages"][0]["source"] == "returns-and-exchanges.md"
        assert "15 days" in policy["pages"][0]["text"]
        assert await ask("what are your opening hours?") == {"answered": False, "pages": []}
        ring = _data(await size(system="us", size="7"))
        assert ring["exact"] and ring["sizes"]["uk"] == "N½" and ring["sizes"]["india"] == "14"
        bangle = _data(await size(kind="bangle", system="india", size="2-6"))
        assert bangle["sizes"]["china"] == "60"
        assert "not a UK" in _error(await size(system="uk", size="99"))

        # What a caller gets wrong is the tool's error, with the reason.
        missing = await client.call_tool("get_product", {"product_id": "no-such-id"})
        assert "no product" in _error(missing)
        nothing = await client.call_tool("search_catalog", {})
        assert "query" in _error(nothing)
        junk = await client.call_tool("search_catalog", {"image_base64": "bm90IGFuIGltYWdl"})
        assert "cannot decode image" in _error(junk)

    _session(mcp_url, body)


def test_http_cart_and_checkout(mcp_url: str, small_products: list[Product]) -> None:
    a, b = small_products[0], small_products[1]

    async def body(client: Client) -> None:
        cart = _data(await client.call_tool(
            "create_cart", {"line_items": [{"product_id": a.id, "quantity": 2}]}
        ))  # fmt: skip
        cart_id = cart["id"]
        assert [(i["id"], i["quantity"]) for i in cart["items"]] == [(a.id, 2)]
        assert cart["total"] == pytest.approx(2 * a.price)

        lines = [{"product_id": a.id, "quantity": 1}, {"product_id": b.id, "quantity": 3}]
        cart = _data(await client.call_tool("update_cart", {"cart_id": cart_id,
                                                            "line_items": lines}))  # fmt: skip
        assert {i["id"]: i["quantity"] for i in cart["items"]} == {a.id: 1, b.id: 3}
        read = _data(await client.call_tool("get_cart", {"cart_id": cart_id}))
        assert read == cart

        handoff = _data(await client.call_tool("checkout", {"cart_id": cart_id}))
        items = ",".join(f"{i['id']}:{i['quantity']}" for i in cart["items"])
        assert handoff["checkout_url"] == CHECKOUT.format(items=items, cart_id=cart_id)

        removed = [{"product_id": a.id, "quantity": 0}, {"product_id": b.id, "quantity": 0}]
        empty = _data(await client.call_tool("update_cart", {"cart_id": cart_id,
                                                             "line_items": removed}))  # fmt: skip
        assert empty["items"] == [] and empty["total"] == 0
        assert "empty" in _error(await client.call_tool("checkout", {"cart_id": cart_id}))

        # Another cart is out of reach without its id; a made-up one is an error.
        other = _data(await client.call_tool("create_cart", {}))
        assert other["id"] != cart_id and other["items"] == []
        unknown = await client.call_tool("get_cart", {"cart_id": "f" * 32})
        assert "unknown cart" in _error(unknown)
        bad = await client.call_tool(
            "update_cart", {"cart_id": cart_id, "line_items": [{"product_id": "nope",
                                                                "quantity": 1}]}
        )  # fmt: skip
        assert "no product" in _error(bad)

    _session(mcp_url, body)


def test_stdio_bijou_mcp(
    small_catalog: Path, small_products: list[Product], tmp_path: Path
) -> None:
    """`bijou mcp` as a desktop assistant starts it: a subprocess speaking on stdio."""
    env = {
        **os.environ,
        "BIJOU__DATA_DIR": str(tmp_path / "data"),
        "BIJOU__CATALOG__PATH": str(small_catalog),
        "BIJOU__LLM__THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    params = StdioServerParameters(command=sys.executable, args=["-m", "bijou.cli", "mcp"], env=env)
    product = small_products[0]

    async def body(client: Client) -> None:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        found = _data(await client.call_tool("search_catalog", {"query": product.title}))
        assert product.id in [p["id"] for p in found["products"]]
        assert _data(await client.call_tool("get_product", {"product_id": product.id}))
        assert _data(await client.call_tool("find_complements", {"product_id": product.id}))
        policy = {"question": "do you deliver outside India?"}
        answer = _data(await client.call_tool("search_shop_policies", policy))
        assert answer["pages"][0]["source"] == "delivery.md"
        sizes = _data(await client.call_tool("convert_size", {"system": "uk", "size": "N½"}))
        assert sizes["sizes"]["us"] == "7"
        look = await client.call_tool("build_look", {"product_id": product.id})
        assert look.is_error or look.structured_content["items"]
        cart = _data(await client.call_tool(
            "create_cart", {"line_items": [{"product_id": product.id, "quantity": 1}]}
        ))  # fmt: skip
        lines = [{"product_id": product.id, "quantity": 2}]
        updated = _data(await client.call_tool("update_cart", {"cart_id": cart["id"],
                                                               "line_items": lines}))  # fmt: skip
        assert updated["items"][0]["quantity"] == 2
        assert _data(await client.call_tool("get_cart", {"cart_id": cart["id"]})) == updated
        # No checkout URL configured: said so, not a broken link.
        assert "checkout_url" in _error(await client.call_tool("checkout", {"cart_id": cart["id"]}))

    _session(params, body)
