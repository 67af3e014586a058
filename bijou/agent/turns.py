"""How one understood message changes the dialog state: the hard constraints carried from
turn to turn, the products a message points at, "cheaper", "not that brand", and what a
returning shopper keeps. The understanding itself is `bijou.retrieval.understanding`.

The LLM never sets a price, a category or a cart action; those come from here.
"""

from __future__ import annotations

from bijou.catalog.schema import Product
from bijou.retrieval.understanding import Move, Understanding
from bijou.understanding.state import DialogState, Preferences


def referenced(
    state: DialogState,
    ranks: tuple[int, ...],
    products: dict[str, Product] | None = None,
    understanding: Understanding | None = None,
) -> list[str]:
    """Product ids a message points at among the last results: by rank ("the second one",
    "the last", "the middle one"), by pick ("the cheapest of those", with ``products``), by
    category ("the clutch"); the product being discussed otherwise."""
    shown = state.shown
    ids = []
    for rank in ranks:
        if rank == 0:  # the middle one
            index = len(shown) // 2 if len(shown) % 2 else -1
        else:
            index = rank - 1 if rank > 0 else len(shown) + rank
        if 0 <= index < len(shown):
            ids.append(shown[index])
    if ranks:
        return ids
    u = understanding
    pool = [*shown, *(i for i in state.bundle if i not in shown)]
    if u is not None and products:
        if u.pick is not None and shown:
            priced = [products[i] for i in shown if i in products]
            pick = min if u.pick == "cheapest" else max
            if priced:
                return [pick(priced, key=lambda p: (p.price, p.id)).id]
        named = set(u.filters.articles)
        if named and len(named) < 5:  # "the clutch", not "jewellery"
            same = [i for i in pool if i in products and products[i].article in named]
            if same:
                return same[:1] if u.move is not Move.COMPARE else same
    if state.focus:
        ids.append(state.focus)
    return ids


def apply_constraints(state: DialogState, u: Understanding) -> DialogState:
    """Carry the hard constraints forward: what the new message says replaces what it names;
    everything else (budget, recipient, exclusions) holds."""
    new = state.model_copy(deep=True)
    new.language = u.language
    new.script = u.script if u.language == "zh" else new.script
    if u.filters.articles and list(u.filters.articles) != state.articles:
        new.articles = list(u.filters.articles)
        new.soft = ""  # a new category starts a new description
    for name in ("colours", "genders", "usages", "brands"):
        if values := getattr(u.filters, name):
            setattr(new, name, list(values))
    if u.any_colour:
        new.colours = []
    # Naming an excluded colour or brand again ("gold is fine after all") lifts its exclusion.
    kept_colours = [c for c in new.exclude_colours if c not in u.filters.colours]
    kept_brands = [b for b in new.exclude_brands if b not in u.filters.brands]
    new.exclude_colours = _union(kept_colours, u.filters.exclude_colours)
    new.exclude_brands = _union(kept_brands, u.filters.exclude_brands)
    new.colours = [c for c in new.colours if c not in new.exclude_colours]
    new.brands = [b for b in new.brands if b not in new.exclude_brands]
    if u.any_price:
        new.min_price = new.max_price = None
    elif u.filters.min_price is not None or u.filters.max_price is not None:
        new.min_price, new.max_price = u.filters.min_price, u.filters.max_price
    if u.move in (Move.SEARCH, Move.MORE_LIKE):
        soft = u.search_text if u.parsed.remainder.strip() or u.refinements else ""
        if soft:
            new.soft = soft
    if u.filters.usages:
        new.occasion = u.filters.usages[0]
    if u.filters.genders:
        new.recipient = u.filters.genders[0]
    return new


def exclude_brand_of(state: DialogState, product: Product | None, u: Understanding) -> DialogState:
    """ "Not that brand": the brand of the product being discussed is excluded from now on."""
    if product is None or not product.brand or not u.other_brand:
        return state
    new = state.model_copy(deep=True)
    new.exclude_brands = _union(new.exclude_brands, (product.brand,))
    new.brands = [b for b in new.brands if b != product.brand]
    return new


def cheaper(state: DialogState, shown_prices: list[float]) -> DialogState:
    """Below the cheapest product shown; with nothing shown, 20% under the current budget."""
    new = state.model_copy(deep=True)
    if shown_prices:
        new.max_price = round(min(shown_prices) - 1, 2)
    elif state.max_price is not None:
        new.max_price = round(state.max_price * 0.8, 2)
    if new.min_price is not None and new.max_price is not None and new.min_price > new.max_price:
        new.min_price = None
    return new


def remember(preferences: Preferences, state: DialogState) -> Preferences:
    """What a returning shopper keeps: taste and exclusions, not one gift's budget."""
    return preferences.model_copy(
        update={
            "colours": list(state.colours),
            "exclude_colours": list(state.exclude_colours),
            "exclude_brands": list(state.exclude_brands),
            "blocked_ids": list(state.blocked_ids),
            "language": state.language,
        }
    )


def _union(a: list[str], b: tuple[str, ...] | list[str]) -> list[str]:
    return list(dict.fromkeys([*a, *b]))
