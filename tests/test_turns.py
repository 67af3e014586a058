"""Tests of how an understood message changes the dialog state: constraint carry-over,
references to the products shown, "cheaper", "not that brand", returning shoppers."""

from __future__ import annotations

import pytest

from bijou.agent.turns import apply_constraints, cheaper, exclude_brand_of, referenced, remember
from bijou.catalog.schema import Product
from bijou.retrieval.query import QueryParser
from bijou.retrieval.understanding import DialogContext, Understander, Understanding
from bijou.understanding.state import DialogState, Preferences

PARSER = QueryParser(brands=["Estelle", "Zaveri Pearls", "Tanishq"], strict=True)
UNDERSTANDER = Understander(PARSER)
W = ["Women", "Unisex"]


def context(state: DialogState) -> DialogContext:
    return DialogContext(
        shown=len(state.shown), category=tuple(state.articles), language=state.language
    )


def turn(message: str, state: DialogState | None = None) -> Understanding:
    state = state or DialogState()
    return UNDERSTANDER.understand(message, context(state))


def converse(*messages: str, state: DialogState | None = None) -> DialogState:
    """The state after each message has been understood and its constraints applied."""
    state = state or DialogState()
    for message in messages:
        state = apply_constraints(state, turn(message, state))
    return state


def product(pid: str = "p1", brand: str = "Estelle", price: float = 1299) -> Product:
    return Product(
        id=pid,
        title=f"{brand} Pendant",
        brand=brand,
        article="Pendant",
        price=price,
        list_price=price,
    )


# --- references ----------------------------------------------------------------------------

SHOWN = ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("shown", "focus", "ranks", "ids"),
    [
        (SHOWN, None, (1,), ["a"]),
        (SHOWN, None, (2,), ["b"]),
        (SHOWN, None, (-1,), ["d"]),
        (SHOWN, None, (-2, -1), ["c", "d"]),
        (SHOWN, None, (1, 3), ["a", "c"]),
        (SHOWN, None, (5,), []),  # past the end
        (SHOWN, None, (2, 5), ["b"]),
        (SHOWN, "x", (), ["x"]),  # nothing ranked: the product being discussed
        (SHOWN, "x", (3,), ["c"]),  # a rank wins over the focus
        (SHOWN, "x", (9,), []),  # a bad rank does not fall back to the focus
        (SHOWN, None, (), []),
        ([], None, (1,), []),
        ([], None, (-1,), []),
        ([], "x", (), ["x"]),
        (["only"], None, (-1,), ["only"]),
    ],
)
def test_referenced(
    shown: list[str], focus: str | None, ranks: tuple[int, ...], ids: list[str]
) -> None:
    state = DialogState(shown=shown, focus=focus)
    assert referenced(state, ranks) == ids


@pytest.mark.parametrize(
    ("message", "ids"),
    [
        ("add the second one to my cart", ["b"]),
        ("the last one", ["d"]),
        ("compare the first two", ["a", "b"]),
        ("compare the last two", ["c", "d"]),
        ("第三个是什么材质", ["c"]),
        ("最后一个", ["d"]),
        ("what goes with it?", ["focus"]),
    ],
)
def test_messages_resolve_to_shown_products(message: str, ids: list[str]) -> None:
    state = DialogState(shown=SHOWN, focus="focus")
    assert referenced(state, turn(message, state).ranks) == ids


# --- constraint carry-over ------------------------------------------------------------------


def test_first_request_sets_every_constraint() -> None:
    state = converse("silver earrings under 2000 for my wife")
    assert state.articles == ["Earrings"]
    assert state.colours == ["Silver"]
    assert state.genders == W
    assert state.recipient == "Women"
    assert (state.min_price, state.max_price) == (None, 2000)
    assert state.language == "en"


def test_budget_survives_a_change_of_category() -> None:
    state = converse("silver earrings under 2000 for my wife", "what about a necklace")
    assert state.articles == ["Necklace and Chains"]
    assert state.max_price == 2000
    assert state.colours == ["Silver"]
    assert state.recipient == "Women"


def test_new_colour_replaces_the_old_one() -> None:
    state = converse("silver earrings under 2000", "in gold instead")
    assert state.colours == ["Gold"]
    assert state.articles == ["Earrings"]
    assert state.max_price == 2000


def test_exclusions_accumulate() -> None:
    state = converse("gold necklace", "no gold", "not by Estelle", "no silver either")
    assert state.exclude_colours == ["Gold", "Silver"]
    assert state.exclude_brands == ["Estelle"]
    assert state.colours == []  # an excluded colour is no longer wanted
    assert state.articles == ["Necklace and Chains"]


def test_excluding_a_wanted_brand_drops_it() -> None:
    state = converse("Estelle pendants", "not by Estelle")
    assert state.brands == []
    assert state.exclude_brands == ["Estelle"]


def test_naming_an_excluded_colour_again_lifts_the_exclusion() -> None:
    state = converse("earrings, no gold", "actually, gold earrings are fine")
    assert state.colours == ["Gold"]
    assert state.exclude_colours == []


def test_naming_an_excluded_brand_again_lifts_the_exclusion() -> None:
    state = converse("pendants not by Estelle", "ok show me Estelle pendants")
    assert state.brands == ["Estelle"]
    assert state.exclude_brands == []


def test_remembered_exclusion_gives_way_to_an_explicit_request() -> None:
    start = DialogState.for_shopper(Preferences(exclude_colours=["Gold"]))
    state = converse("gold bangles", state=start)
    assert state.colours == ["Gold"]
    assert state.exclude_colours == []


@pytest.mark.parametrize("message", ["any colour is fine", "any color", "颜色不限"])
def test_any_colour_clears_colours_but_not_exclusions(message: str) -> None:
    state = converse("silver earrings", "no gold", message)
    assert state.colours == []
    assert state.exclude_colours == ["Gold"]
    assert state.articles == ["Earrings"]


@pytest.mark.parametrize("message", ["no budget", "price doesn't matter", "预算不限"])
def test_no_budget_clears_prices(message: str) -> None:
    state = converse("earrings between 500 and 1500", message)
    assert (state.min_price, state.max_price) == (None, None)
    assert state.articles == ["Earrings"]


def test_a_new_price_replaces_both_bounds() -> None:
    state = converse("earrings between 500 and 1500")
    assert (state.min_price, state.max_price) == (500, 1500)
    state = converse("under 3000", state=state)
    assert (state.min_price, state.max_price) == (None, 3000)


def test_occasion_and_recipient() -> None:
    state = converse("a necklace for my mom", "something for a party")
    assert state.recipient == "Women"
    assert state.occasion == "Party"
    state = converse("a watch for my husband's wedding")
    assert state.recipient == "Men"
    assert state.occasion == "Ethnic"
    assert state.usages == ["Ethnic", "Party"]


def test_chinese_carry_over() -> None:
    state = converse("2000以内的银耳环", "送妈妈的", "换成项链")
    assert state.language == "zh"
    assert state.articles == ["Necklace and Chains"]
    assert state.colours == ["Silver"]
    assert state.max_price == 2000
    assert state.recipient == "Women"


def test_new_category_resets_the_soft_description() -> None:
    state = converse("minimalist floral earrings")
    assert "minimalist" in state.soft and "floral" in state.soft
    assert converse("necklaces", state=state).soft == ""
    # Same category, more words: the description is replaced, not reset to nothing.
    assert "boho" in converse("boho earrings", state=state).soft


def test_soft_is_kept_by_moves_that_do_not_search() -> None:
    state = converse("minimalist floral earrings")
    for message in ("add the second one to my cart", "what is the first one made of?"):
        assert converse(message, state=state).soft == state.soft


def test_apply_constraints_does_not_touch_the_old_state() -> None:
    state = converse("silver earrings under 2000")
    before = state.model_dump()
    converse("no silver, gold necklace, no budget", state=state)
    assert state.model_dump() == before


def test_language_follows_the_latest_message() -> None:
    state = converse("silver earrings", "太贵了")
    assert state.language == "zh"
    assert converse("thanks!", state=state).language == "en"


# --- cheaper, brand exclusion, memory --------------------------------------------------------


@pytest.mark.parametrize(
    ("min_price", "max_price", "shown", "expected"),
    [
        (None, 2000, [1299, 1899, 999], (None, 998)),  # below the cheapest shown
        (None, None, [1500.5, 2000], (None, 1499.5)),
        (None, 2000, [], (None, 1600)),  # nothing shown: 80% of the budget
        (None, None, [], (None, None)),  # nothing to go below
        (500, 2000, [1200], (500, 1199)),
        (1000, 2000, [1000], (None, 999)),  # the floor would pass the ceiling: dropped
        (1800, 2000, [], (None, 1600)),
    ],
)
def test_cheaper(
    min_price: float | None,
    max_price: float | None,
    shown: list[float],
    expected: tuple[float | None, float | None],
) -> None:
    state = DialogState(min_price=min_price, max_price=max_price, articles=["Ring"])
    new = cheaper(state, shown)
    assert (new.min_price, new.max_price) == expected
    assert new.articles == ["Ring"]
    assert (state.min_price, state.max_price) == (min_price, max_price)  # not mutated


@pytest.mark.parametrize(
    ("text", "excluded"),
    [
        ("not that brand", True),
        ("something similar but not that brand", True),
        ("more like this from other brands", True),
        ("不要这个牌子", True),
        ("换个牌子", True),
        ("more like the second one", False),
        ("I love this brand", False),
        ("not that colour", False),
    ],
)
def test_exclude_brand_of(text: str, excluded: bool) -> None:
    state = DialogState(brands=["Estelle", "Tanishq"], exclude_brands=["Zaveri Pearls"])
    new = exclude_brand_of(state, product(brand="Estelle"), turn(text))
    if excluded:
        assert new.exclude_brands == ["Zaveri Pearls", "Estelle"]
        assert new.brands == ["Tanishq"]
    else:
        assert new == state
    assert state.exclude_brands == ["Zaveri Pearls"]  # not mutated


def test_exclude_brand_of_needs_a_branded_product() -> None:
    state = DialogState()
    assert exclude_brand_of(state, None, turn("not that brand")) == state
    assert exclude_brand_of(state, product(brand=""), turn("not that brand")) == state


def test_remember_keeps_taste_not_budget() -> None:
    state = converse(
        "silver earrings under 2000 for my wife", "not by Estelle", "no gold", "太贵了"
    )
    state.blocked_ids = ["p9"]
    state.shown = ["p1", "p2"]
    prefs = remember(Preferences(colours=["Black"], blocked_ids=["old"]), state)
    assert prefs.colours == ["Silver"]
    assert prefs.exclude_colours == ["Gold"]
    assert prefs.exclude_brands == ["Estelle"]
    assert prefs.blocked_ids == ["p9"]
    assert prefs.language == "zh"
    # A new session starts from the taste, without the last gift's budget or category.
    again = DialogState.for_shopper(prefs)
    assert again.max_price is None and again.min_price is None
    assert again.articles == [] and again.genders == [] and again.recipient is None
    assert again.shown == [] and again.focus is None
    assert again.colours == ["Silver"]
    assert again.exclude_brands == ["Estelle"]
    assert again.blocked_ids == ["p9"]
    assert again.language == "zh"
