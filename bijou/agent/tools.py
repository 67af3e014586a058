"""The agent's tools: each is one small function with its argument schema beside it (as in
tau-bench), listed once in `TOOLS`. The agent's code calls them through `call`, which
validates the arguments against the schema first.

Tools read the shop through retrieval (search, complements) and the session store; only the
cart tools write, and the agent calls those only on the shopper's explicit request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from PIL import Image
from pydantic import BaseModel, Field

from bijou.agent.memory import CartLine, SessionStore
from bijou.catalog.schema import Product
from bijou.retrieval.complements import Bundle, Complement
from bijou.retrieval.knowledge import Passage
from bijou.retrieval.lexicon import load_lexicon
from bijou.retrieval.look import look_of
from bijou.retrieval.query import QueryFilters
from bijou.retrieval.search import SearchRequest
from bijou.retrieval.shop import Shop
from bijou.retrieval.sizes import SizeChart, SizeConversion, SizeError
from bijou.understanding.state import DialogState


@dataclass
class ShopContext:
    """What the tools of one turn act on."""

    shop: Shop
    store: SessionStore
    session_id: str
    state: DialogState
    image: Image.Image | None = None  # the shopper's photo this turn, for visual search


@dataclass(frozen=True)
class ToolCall:
    """A tool called from outside a conversation (an MCP client): the cart tools act on
    ``session_id``'s cart, the read tools under ``state``'s constraints (none by default)."""

    name: str
    args: dict[str, object]
    session_id: str | None = None
    image: Image.Image | None = None  # a photo to search by
    state: DialogState | None = None


@dataclass(frozen=True)
class Fact:
    """One field of one product, quoted from the catalog."""

    product_id: str
    field: str
    value: str


@dataclass(frozen=True)
class CartItem:
    product: Product
    quantity: int


@dataclass(frozen=True)
class ToolResult:
    tool: str
    products: list[Product] = field(default_factory=list)
    exact: list[bool] = field(default_factory=list)  # per product: met every filter
    relaxed: tuple[str, ...] = ()
    complements: list[Complement] = field(default_factory=list)
    bundle: Bundle | None = None
    facts: list[Fact] = field(default_factory=list)
    cart: list[CartItem] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)  # from the shop's documents
    size: SizeConversion | None = None
    error: str | None = None  # what went wrong, for the reply ("no such product")


class ToolError(ValueError):
    """A tool was called with arguments it cannot act on."""


def _product(ctx: ShopContext, product_id: str) -> Product:
    product = ctx.shop.get(product_id)
    if product is None:
        raise ToolError(f"no product with id {product_id!r}")
    return product


SOFT_FILTERS = {"usages"}


# --- search_products -----------------------------------------------------------------------
class SearchProductsArgs(BaseModel):
    query: str = Field(default="", max_length=500, description="What the shopper is looking for")
    like_product_id: str | None = Field(
        default=None, description="Find products similar to this one (same category)"
    )
    # Up to 20: a complement for a described outfit ranks a wider pool by colour harmony.
    limit: int = Field(default=3, ge=1, le=20)


def search_products(
    ctx: ShopContext, query: str = "", like_product_id: str | None = None, limit: int = 3
) -> ToolResult:
    """Products for the shopper's request. Hard constraints (budget, category, colours,
    exclusions) come from the dialog state, never from the arguments."""
    filters = ctx.state.filters()
    image = ctx.image
    exclude = list(ctx.state.blocked_ids)
    if like_product_id:
        anchor = _product(ctx, like_product_id)
        image = image or ctx.shop.image(anchor)
        query = " ".join(t for t in (query, anchor.article, anchor.colour, anchor.usage) if t)
        filters = replace(filters, articles=(anchor.article,))
        exclude += [anchor.id, *ctx.state.shown]
    # Ask for spares: catalogs list the same piece under several ids, shown once here.
    # The category the shopper named is a hard constraint, like the price: "cheaper
    # earrings" must not turn into cheaper bags. The shop's own lead (jewellery first) may
    # give way to other categories, but not to another recipient's pieces.
    if ctx.state.led:
        keep: tuple[str, ...] = ("genders",)
    else:
        keep = ("articles",) if filters.articles else ()
    request = SearchRequest(
        query, image, limit * 3, filters, tuple(dict.fromkeys(exclude)), keep=keep
    )
    result = ctx.shop.search(request)
    # Close matches only stand in when nothing meets every constraint; the occasion is a
    # preference, so matches that dropped only it count as meeting them.
    exact = [r for r in result.results if set(r.relaxed) <= SOFT_FILTERS]
    seen: set[tuple[str, float, str]] = set()
    kept = []
    for r in exact or result.results:
        key = (r.product.title.lower(), r.product.price, r.product.colour)
        if key not in seen and len(kept) < limit:
            seen.add(key)
            kept.append(r)
    return ToolResult(
        "search_products",
        products=[r.product for r in kept],
        exact=[r.exact for r in kept],
        # What was loosened for the products shown (spares past the limit are not).
        relaxed=tuple(dict.fromkeys(name for r in kept for name in r.relaxed)),
    )


# --- get_product ---------------------------------------------------------------------------
class ProductArgs(BaseModel):
    product_id: str = Field(description="The catalog id of the product")


def get_product(ctx: ShopContext, product_id: str) -> ToolResult:
    """One product's full catalog record."""
    return ToolResult("get_product", products=[_product(ctx, product_id)])


# --- find_complements ----------------------------------------------------------------------
class FindComplementsArgs(BaseModel):
    product_id: str = Field(description="The product to find matches for")
    articles: list[str] | None = Field(
        default=None, description="Target categories; empty means the catalog's usual pairings"
    )
    colours: list[str] | None = Field(default=None, description="Colours the matches must have")
    max_price: float | None = Field(default=None, gt=0, description="Price cap per match")
    limit: int = Field(default=3, ge=1, le=6)


def find_complements(
    ctx: ShopContext,
    product_id: str,
    articles: list[str] | None = None,
    colours: list[str] | None = None,
    max_price: float | None = None,
    limit: int = 3,
) -> ToolResult:
    """Products from other categories that go with this one (stylist pairings, colour and
    metal harmony, visual similarity), within the shopper's budget and exclusions."""
    anchor = _product(ctx, product_id)
    filters = _cross_sell_filters(ctx.state)
    if filters.genders and anchor.gender not in ("Unisex", *filters.genders):
        # The recipient said earlier is not the anchor's wearer: the anchor decides.
        filters = replace(filters, genders=())
    if colours:
        filters = replace(filters, colours=tuple(colours))
    if max_price is not None:
        filters = replace(filters, max_price=max_price)
    found = ctx.shop.complements(
        anchor,
        articles=articles or None,
        filters=filters,
        k=limit,
        exclude_ids=ctx.state.blocked_ids,
    )
    return ToolResult("find_complements", products=[anchor], complements=found)


def _cross_sell_filters(state: DialogState) -> QueryFilters:
    """Other categories keep the shopper's exclusions, recipient and budget, not the colours."""
    return QueryFilters(
        genders=tuple(state.genders),
        exclude_colours=tuple(state.exclude_colours),
        exclude_brands=tuple(state.exclude_brands),
        max_price=state.max_price,
    )


# --- compare_products ----------------------------------------------------------------------
class CompareProductsArgs(BaseModel):
    product_ids: list[str] = Field(min_length=2, max_length=4)


_COMPARED = ("price", "colour", "metal", "brand", "article", "usage", "gender")


def compare_products(ctx: ShopContext, product_ids: list[str]) -> ToolResult:
    """Side by side: the fields on which the products differ."""
    products = [_product(ctx, pid) for pid in product_ids]
    facts = []
    for name in _COMPARED:
        values = [_field(p, name) for p in products]
        if len(set(values)) > 1:
            facts += [Fact(p.id, name, v) for p, v in zip(products, values, strict=True) if v]
    return ToolResult("compare_products", products=products, facts=facts)


# --- build_bundle --------------------------------------------------------------------------
class BuildBundleArgs(BaseModel):
    anchor_id: str = Field(description="The product the bundle is built around")
    budget: float | None = Field(default=None, gt=0, description="Total for the whole bundle")
    articles: list[str] | None = Field(default=None, description="Categories to add")
    size: int = Field(default=3, ge=2, le=5)


def build_bundle(
    ctx: ShopContext,
    anchor_id: str,
    budget: float | None = None,
    articles: list[str] | None = None,
    size: int = 3,
) -> ToolResult:
    """A set of products from different categories around one anchor, within a total budget."""
    anchor = _product(ctx, anchor_id)
    bundle = ctx.shop.bundle(
        anchor,
        budget=budget,
        articles=articles or None,
        size=size,
        filters=_cross_sell_filters(replace_budget(ctx.state, None)),
        exclude_ids=ctx.state.blocked_ids,
    )
    error = None if bundle is not None else "no bundle fits the budget"
    return ToolResult("build_bundle", products=[anchor], bundle=bundle, error=error)


def replace_budget(state: DialogState, max_price: float | None) -> DialogState:
    return state.model_copy(update={"max_price": max_price})


# --- answer_product_question ----------------------------------------------------------------
class ProductQuestionArgs(BaseModel):
    product_id: str
    question: str = Field(max_length=500)
    attribute: str | None = Field(
        default=None, description="What the question is about: material, size, warranty..."
    )


# Attributes the product's own fields answer, before its record's attributes and text.
_OWN_FIELDS = {
    "material": ("metal", "materials_care"),
    "price": ("price", "list_price"),
    "colour": ("colour",),
    "brand": ("brand",),
    "gender": ("gender",),
    "occasion": ("usage", "style_note"),
    "size": ("size_fit",),
    "care": ("materials_care",),
}


def answer_product_question(
    ctx: ShopContext, product_id: str, question: str, attribute: str | None = None
) -> ToolResult:
    """The product's own fields and record sentences that answer the question, quoted; no
    guessing beyond them: no fact found means the listing does not say."""
    product = _product(ctx, product_id)
    if attribute is None:
        wanted = ["description", "style_note"]
        facts = [Fact(product.id, n, v) for n in wanted if (v := _field(product, n))]
        return ToolResult("answer_product_question", products=[product], facts=facts)
    spec = load_lexicon().record_attributes.get(attribute)
    names = list(_OWN_FIELDS.get(attribute, ())) + list(spec.fields if spec else ())
    facts = [Fact(product.id, n, v) for n in dict.fromkeys(names) if (v := _field(product, n))]
    for sentence in _sentences_about(product, spec.words if spec else ()):
        if not any(sentence in f.value or f.value in sentence for f in facts):
            facts.append(Fact(product.id, "description", sentence))
    return ToolResult("answer_product_question", products=[product], facts=facts[:4])


def _sentences_about(product: Product, words: tuple[str, ...]) -> list[str]:
    """Sentences of the record's text that name one of ``words`` ("Warranty: 1 year")."""
    if not words:
        return []
    pattern = re.compile(
        r"(?<![a-z])(?:" + "|".join(re.escape(w) for w in words) + r")(?![a-z])", re.I
    )
    text = " ".join(t for t in (product.description, product.size_fit, product.materials_care))
    # Catalog text runs "Case style: ... Dial style: ..." together: split at full stops and
    # at the next "Label:".
    parts = re.split(r"(?<=[.!?])\s+|\s{2,}|\s(?=[A-Z][a-z]+(?: [a-z]+)?:\s)", text)
    return [p.strip() for p in parts if p.strip() and pattern.search(p)][:2]


def _field(product: Product, name: str) -> str:
    if name in ("price", "list_price"):
        return f"{getattr(product, name):g}"
    if name == "metal":
        return product.metal
    if name == "colour":  # what the shopper sees, not the raw colour field
        return ", ".join(look_of(product).sure_tones[:2]) or product.colour
    if name in Product.model_fields:
        value = getattr(product, name)
        return "" if value is None else str(value).strip()
    return product.attributes.get(name, "")


# --- shop knowledge -----------------------------------------------------------------------
class ShopQuestionArgs(BaseModel):
    question: str = Field(
        min_length=1,
        max_length=500,
        description="The shopper's question "
        "about the shop: returns, delivery, payment, care, purity, sizes...",
    )


def answer_shop_question(ctx: ShopContext, question: str) -> ToolResult:
    """The sections of the shop's own documents that answer the question, with their
    sources; none means the documents do not say (never a guess)."""
    answer = ctx.shop.answer(question)
    error = None if answer.answered else "the shop's documents do not say"
    return ToolResult("answer_shop_question", passages=list(answer.passages), error=error)


class ConvertSizeArgs(BaseModel):
    kind: Literal["ring", "bangle"] = "ring"
    system: Literal["us", "uk", "eu", "india", "china", "diameter_mm", "circumference_mm"] = Field(
        description="The system the size is given in, or a measurement in mm"
    )
    size: str = Field(min_length=1, max_length=20, description="'7', 'N½', '2-6', '54'...")


def convert_size(ctx: ShopContext, system: str, size: str, kind: str = "ring") -> ToolResult:
    """A ring or bangle size in every system (US, UK, EU, India, China) and in millimetres,
    from the shop's size chart."""
    try:
        conversion = SizeChart.load(ctx.shop.size_chart).convert(kind, system, size)
    except SizeError as exc:
        return ToolResult("convert_size", error=str(exc))
    return ToolResult("convert_size", size=conversion)


# --- cart ----------------------------------------------------------------------------------
class AddToCartArgs(BaseModel):
    product_id: str
    quantity: int = Field(default=1, ge=1, le=99)


def add_to_cart(ctx: ShopContext, product_id: str, quantity: int = 1) -> ToolResult:
    """Put a product in the shopper's cart. Only on the shopper's explicit request."""
    product = _product(ctx, product_id)
    lines = ctx.store.add_to_cart(ctx.session_id, product.id, quantity)
    return ToolResult("add_to_cart", products=[product], cart=cart_items(ctx.shop, lines))


class RemoveFromCartArgs(BaseModel):
    product_id: str
    quantity: int | None = Field(default=None, ge=1, le=99, description="None removes the line")


def remove_from_cart(ctx: ShopContext, product_id: str, quantity: int | None = None) -> ToolResult:
    """Take a product out of the cart. Only on the shopper's explicit request."""
    product = _product(ctx, product_id)
    lines = ctx.store.remove_from_cart(ctx.session_id, product.id, quantity)
    return ToolResult("remove_from_cart", products=[product], cart=cart_items(ctx.shop, lines))


class NoArgs(BaseModel):
    pass


def view_cart(ctx: ShopContext) -> ToolResult:
    """What is in the cart, with current prices."""
    return ToolResult("view_cart", cart=cart_items(ctx.shop, ctx.store.cart(ctx.session_id)))


def cart_items(shop: Shop, lines: list[CartLine]) -> list[CartItem]:
    """Cart lines with their current products (a product deleted since is left out)."""
    products = {p.id: p for p in shop.get_many([line.product_id for line in lines])}
    return [
        CartItem(products[li.product_id], li.quantity) for li in lines if li.product_id in products
    ]


# --- registry ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ToolSpec:
    function: Callable[..., ToolResult]
    args: type[BaseModel]
    writes: bool = False


TOOLS: dict[str, ToolSpec] = {
    "search_products": ToolSpec(search_products, SearchProductsArgs),
    "get_product": ToolSpec(get_product, ProductArgs),
    "find_complements": ToolSpec(find_complements, FindComplementsArgs),
    "compare_products": ToolSpec(compare_products, CompareProductsArgs),
    "build_bundle": ToolSpec(build_bundle, BuildBundleArgs),
    "answer_product_question": ToolSpec(answer_product_question, ProductQuestionArgs),
    "add_to_cart": ToolSpec(add_to_cart, AddToCartArgs, writes=True),
    "remove_from_cart": ToolSpec(remove_from_cart, RemoveFromCartArgs, writes=True),
    "view_cart": ToolSpec(view_cart, NoArgs),
    "answer_shop_question": ToolSpec(answer_shop_question, ShopQuestionArgs),
    "convert_size": ToolSpec(convert_size, ConvertSizeArgs),
}


def call(name: str, ctx: ShopContext, **args: object) -> ToolResult:
    """Run a tool on this turn's context; arguments are checked against its schema (a bad
    one is a pydantic ValidationError, never a half-run tool)."""
    spec = TOOLS[name]
    checked = spec.args.model_validate(args)
    return spec.function(ctx, **checked.model_dump())
