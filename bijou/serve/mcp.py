"""The shop's catalog and carts for any AI assistant: an MCP server (the official SDK).

`bijou mcp` serves it over stdio (a desktop assistant starts it); the app serves the same
server as streamable HTTP at /mcp. Tools follow the shape of the Universal Commerce
Protocol's catalog and cart binding: search the catalog (by text, a photo or a product id),
get a product, complements, a look within a budget, the shop's own documents, size
conversion, and a cart created, read and updated by its id, handed off to the shop's own
checkout. Every tool runs through `bijou.agent.tools` (`ShoppingAgent.run_tool`), the same
code the chat agent uses. The read tools are open; a cart is reached only through the
unguessable id `create_cart` returns (its session), and the admin writes are never exposed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Protocol

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from PIL import Image
from pydantic import BaseModel, Field, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from bijou.agent import phrases
from bijou.agent.agent import ProductView
from bijou.agent.memory import NotInCartError, UnknownSessionError
from bijou.agent.tools import CartItem, ToolCall, ToolResult
from bijou.agent.tools import ToolError as ShopToolError
from bijou.catalog.media import ImageDecodeError, decode_image
from bijou.catalog.schema import Product
from bijou.config import BijouConfig
from bijou.retrieval.complements import Complement
from bijou.understanding.state import DialogState

READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
CART = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)


class ShopTools(Protocol):
    """What the server needs of a backend (`LocalBackend`, or the Ray app's handles)."""

    async def create_session(self, shopper_id: str | None) -> str: ...
    async def tool(self, call: ToolCall) -> ToolResult: ...


# --- what the tools return ---------------------------------------------------------------
class CatalogProduct(ProductView):
    image_url: str
    description: str = ""


class SearchResults(BaseModel):
    products: list[CatalogProduct]
    # Constraints loosened because nothing met them all ("colours", "brands", ...).
    relaxed: list[str]


class ProductDetails(BaseModel):
    product: Product
    image_url: str


class Match(CatalogProduct):
    why: str  # why it goes with the product asked about, from catalog facts


class Complements(BaseModel):
    anchor: CatalogProduct
    matches: list[Match]


class Look(BaseModel):
    anchor: CatalogProduct
    items: list[Match]
    total: float
    budget: float | None


class ShopPage(BaseModel):
    source: str  # the document, e.g. "returns-and-exchanges.md"
    title: str
    section: str
    text: str  # the section as the shop wrote it
    score: float


class ShopAnswer(BaseModel):
    answered: bool  # False: the shop's documents do not say; do not guess
    pages: list[ShopPage]


class SizeOut(BaseModel):
    kind: str
    asked: str
    exact: bool  # False: the nearest size on the chart
    sizes: dict[str, str]  # us, uk, eu, india, china
    diameter_mm: float
    circumference_mm: float


class LineItem(BaseModel):
    product_id: str = Field(min_length=1, max_length=200)
    quantity: int = Field(ge=0, le=99, description="0 removes the line (update_cart)")


class Cart(BaseModel):
    id: str  # pass it to get_cart, update_cart and checkout
    items: list[ProductView]
    total: float
    currency: str


class Checkout(BaseModel):
    cart: Cart
    checkout_url: str  # where the shopper pays, on the shop's own site


# --- conversions -------------------------------------------------------------------------
def _image_url(product_id: str) -> str:
    return f"/v1/products/{product_id}/image"


def _catalog_product(product: Product, **extra: object) -> CatalogProduct:
    view = ProductView.of(product, **extra).model_dump()
    return CatalogProduct(**view, image_url=_image_url(product.id), description=product.description)


def _match(anchor: Product, complement: Complement) -> Match:
    name = phrases.article_name(anchor.article, "en")
    base = _catalog_product(complement.product, anchor_id=anchor.id).model_dump()
    return Match(**base, why=phrases.pair_reason(complement.reasons, name, "en"))


def _cart(cart_id: str, items: list[CartItem], currency: str) -> Cart:
    return Cart(
        id=cart_id,
        items=[ProductView.of(i.product, quantity=i.quantity) for i in items],
        total=round(sum(i.product.price * i.quantity for i in items), 2),
        currency=currency,
    )


def _photo(data: str, limit: int) -> Image.Image:
    payload = data.split(",", 1)[1] if data.startswith("data:") else data
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ToolError("image_base64 is not valid base64") from exc
    if len(raw) > limit:
        raise ToolError(f"image too large: {len(raw)} bytes (limit {limit})")
    try:
        return decode_image(raw)
    except ImageDecodeError as exc:
        raise ToolError(str(exc)) from exc


def build_mcp(config: BijouConfig, backend_of: Callable[[], ShopTools]) -> MCPServer:
    """The MCP server on the backend ``backend_of`` gives (made on first use, under Ray in
    the replica); its tools are the shop's read tools and cart tools."""
    currency = config.agent.currency
    checkout_url = config.serve.checkout_url
    server = MCPServer(
        "bijou",
        title="Bijou jewelry shop",
        instructions=(
            "A jewelry shop's catalog and cart. Search with search_catalog, show products "
            "with get_product, suggest pieces that go together with find_complements or "
            "build_look, and answer shipping, returns, care and sizing questions from the "
            "shop's own documents. Carts: create_cart returns an id; pass it to get_cart, "
            "update_cart and checkout. Prices are in the shop's currency: " + currency
        ),
    )

    async def run(
        name: str,
        args: dict[str, object],
        session_id: str | None = None,
        image: Image.Image | None = None,
        state: DialogState | None = None,
    ) -> ToolResult:
        """A shop tool; what a caller got wrong comes back as the tool's error."""
        try:
            return await backend_of().tool(ToolCall(name, args, session_id, image, state))
        except UnknownSessionError as exc:
            raise ToolError(f"unknown cart {session_id!r}: create one with create_cart") from exc
        except (ShopToolError, NotInCartError) as exc:
            raise ToolError(str(exc)) from exc
        except ValidationError as exc:
            raise ToolError(f"bad arguments: {exc.errors()[0]['msg']}") from exc
        except ValueError as exc:  # the store's limits (quantity per cart)
            raise ToolError(str(exc)) from exc

    @server.tool(annotations=READ)
    async def search_catalog(
        query: Annotated[
            str,
            Field(
                max_length=500,
                description="What the shopper wants, in "
                "their words: 'gold earrings under 2000 for a wedding'",
            ),
        ] = "",
        image_base64: Annotated[
            str | None,
            Field(description="A photo to find pieces like it (JPEG or PNG, base64 or data: URL)"),
        ] = None,
        like_product_id: Annotated[
            str | None, Field(description="Find pieces like this product (same category)")
        ] = None,
        min_price: Annotated[float | None, Field(ge=0)] = None,
        max_price: Annotated[float | None, Field(gt=0)] = None,
        limit: Annotated[int, Field(ge=1, le=20)] = 5,
    ) -> SearchResults:
        """Search the shop's catalog by text, a photo, a product id, or any of them together.
        Budgets, categories, colours and occasions named in the query are applied."""
        photo = _photo(image_base64, config.serve.max_upload_bytes) if image_base64 else None
        if not query.strip() and photo is None and not like_product_id:
            raise ToolError("give a query, a photo or a product id")
        state = DialogState(min_price=min_price, max_price=max_price)
        args = {"query": query, "like_product_id": like_product_id, "limit": limit}
        result = await run("search_products", args, image=photo, state=state)
        products = [
            _catalog_product(p, rank=i, exact=e)
            for i, (p, e) in enumerate(zip(result.products, result.exact, strict=True), 1)
        ]
        return SearchResults(products=products, relaxed=list(result.relaxed))

    @server.tool(annotations=READ)
    async def get_product(product_id: str) -> ProductDetails:
        """One product's full catalog record: price, metal, stones, description, care, size."""
        result = await run("get_product", {"product_id": product_id})
        product = result.products[0]
        return ProductDetails(product=product, image_url=_image_url(product.id))

    @server.tool(annotations=READ)
    async def find_complements(
        product_id: str,
        categories: Annotated[
            list[str] | None,
            Field(
                description="Categories to suggest "
                "from, e.g. ['Earrings']; none: the "
                "usual pairings"
            ),
        ] = None,
        max_price: Annotated[float | None, Field(gt=0)] = None,
        limit: Annotated[int, Field(ge=1, le=6)] = 3,
    ) -> Complements:
        """Pieces from other categories that go with a product, each with the reason."""
        args = {"product_id": product_id, "articles": categories, "max_price": max_price,
                "limit": limit}  # fmt: skip
        result = await run("find_complements", args)
        anchor = result.products[0]
        matches = [_match(anchor, c) for c in result.complements]
        return Complements(anchor=_catalog_product(anchor), matches=matches)

    @server.tool(annotations=READ)
    async def build_look(
        product_id: Annotated[str, Field(description="The piece the look is built around")],
        budget: Annotated[float | None, Field(gt=0, description="Total for the whole look")] = None,
        categories: list[str] | None = None,
        size: Annotated[int, Field(ge=2, le=5, description="Pieces, the anchor included")] = 3,
    ) -> Look:
        """A look: pieces from different categories around one product, within a total."""
        args = {"anchor_id": product_id, "budget": budget, "articles": categories, "size": size}
        result = await run("build_bundle", args)
        bundle = result.bundle
        if bundle is None:
            raise ToolError(result.error or "no look fits")
        return Look(
            anchor=_catalog_product(bundle.anchor),
            items=[_match(bundle.anchor, c) for c in bundle.items],
            total=bundle.total,
            budget=bundle.budget,
        )

    @server.tool(annotations=READ)
    async def search_shop_policies(
        question: Annotated[str, Field(min_length=1, max_length=500)],
    ) -> ShopAnswer:
        """Answer a question about the shop (returns, exchanges, delivery, payment, care of
        silver and gold-plated pieces, purity and hallmarks, gemstones, ring and bangle
        sizes, gift wrapping, engraving) from the shop's own pages, quoted with their source.
        answered=false means the pages do not say: tell the shopper so, do not guess."""
        result = await run("answer_shop_question", {"question": question})
        pages = [ShopPage(source=p.source, title=p.title, section=p.section, text=p.text,
                          score=round(p.score, 3)) for p in result.passages]  # fmt: skip
        return ShopAnswer(answered=bool(pages), pages=pages)

    @server.tool(annotations=READ)
    async def convert_size(
        system: Annotated[
            str,
            Field(
                description="us, uk, eu, india, china, or a measurement: "
                "diameter_mm or circumference_mm"
            ),
        ],
        size: Annotated[str, Field(max_length=20, description="'7', 'N½', '2-6', '54'...")],
        kind: Annotated[str, Field(description="ring or bangle")] = "ring",
    ) -> SizeOut:
        """A ring or bangle size in US, UK, EU, Indian and Chinese sizes and millimetres, from
        the shop's size chart."""
        result = await run("convert_size", {"kind": kind, "system": system, "size": size})
        if result.size is None:
            raise ToolError(result.error or "unknown size")
        row = result.size.row
        return SizeOut(kind=result.size.kind, asked=f"{system} {size}", exact=result.size.exact,
                       sizes=row.sizes, diameter_mm=row.diameter_mm,
                       circumference_mm=row.circumference_mm)  # fmt: skip

    @server.tool(annotations=CART)
    async def create_cart(
        line_items: list[LineItem] | None = None,
        shopper_id: Annotated[
            str | None,
            Field(
                min_length=1, max_length=128, description="The shop's id for a returning shopper"
            ),
        ] = None,
    ) -> Cart:
        """A new cart, with these items in it; its id is what the other cart tools take."""
        cart_id = await backend_of().create_session(shopper_id)
        return await _set_lines(cart_id, line_items or [])

    @server.tool(annotations=READ)
    async def get_cart(cart_id: str) -> Cart:
        """The cart's items and total at current prices."""
        result = await run("view_cart", {}, session_id=cart_id)
        return _cart(cart_id, result.cart, currency)

    @server.tool(annotations=CART)
    async def update_cart(cart_id: str, line_items: list[LineItem]) -> Cart:
        """Set the quantity of each product given (0 removes it); other lines stay."""
        return await _set_lines(cart_id, line_items)

    async def _set_lines(cart_id: str, line_items: list[LineItem]) -> Cart:
        held = {i.product.id for i in (await run("view_cart", {}, session_id=cart_id)).cart}
        for line in line_items:
            if line.product_id in held:
                await run("remove_from_cart", {"product_id": line.product_id}, cart_id)
            if line.quantity:
                args = {"product_id": line.product_id, "quantity": line.quantity}
                await run("add_to_cart", args, cart_id)
        return await get_cart(cart_id)

    @server.tool(annotations=READ)
    async def checkout(cart_id: str) -> Checkout:
        """Hand the cart to the shop's checkout: the URL where the shopper pays."""
        if not checkout_url:
            raise ToolError("this shop has not configured a checkout (serve.checkout_url)")
        cart = await get_cart(cart_id)
        if not cart.items:
            raise ToolError("the cart is empty")
        items = ",".join(f"{i.id}:{i.quantity}" for i in cart.items)
        return Checkout(cart=cart, checkout_url=checkout_url.format(cart_id=cart_id, items=items))

    return server


class StreamableMCP:
    """The server as streamable HTTP inside another ASGI app (the HTTP API at /mcp).

    Stateless, JSON responses: any Ingress replica answers any request, with no sticky
    sessions (a cart's state lives in the session store, named by its id). The SDK's session
    manager runs once per app lifespan, so each lifespan gets a fresh one."""

    def __init__(self, server: MCPServer, host: str) -> None:
        self.server = server
        self.host = host
        self._app: ASGIApp | None = None

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        app = self.server.streamable_http_app(
            streamable_http_path="/mcp", stateless_http=True, json_response=True, host=self.host
        )
        async with self.server.session_manager.run():
            self._app = app
            try:
                yield
            finally:
                self._app = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            body = b'{"detail": "the MCP server starts with the app"}'
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return
        await self._app(scope, receive, send)
