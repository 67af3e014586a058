"""Cross-category complements: pairings mined from stylist notes (weights, damping, variety,
caching), colour and metal harmony, and suggestions and budget bundles on the small index."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest

from bijou.catalog.schema import Product
from bijou.retrieval.complements import (
    CO_MENTION_WEIGHT,
    MIXED_METALS,
    UNKNOWN,
    Complement,
    ComplementFinder,
    PairingTable,
    best_combination,
    compatible_genders,
    harmony,
    note_terms,
    shared_tone,
)
from bijou.retrieval.lexicon import load_lexicon
from bijou.retrieval.query import QueryFilters, normalise
from bijou.retrieval.search import SearchEngine

NECKLACE = "Necklace and Chains"
SUBS = {
    NECKLACE: "Jewellery",
    "Earrings": "Jewellery",
    "Ring": "Jewellery",
    "Bangle": "Jewellery",
    "Clutches": "Bags",
    "Handbags": "Bags",
    "Watches": "Watches",
    "Sarees": "Saree",
}


def _product(
    pid: str,
    article: str,
    note: str = "",
    *,
    colour: str = "",
    metal: str = "",
    gender: str = "Women",
    price: float = 500.0,
) -> Product:
    return Product(
        id=pid,
        title=f"{colour} {article}".strip(),
        article=article,
        sub=SUBS.get(article, article),
        master="Accessories",
        gender=gender,
        colour=colour,
        price=price,
        list_price=price,
        style_note=note,
        attributes={"Base Metal": metal} if metal else {},
    )


# --- mining --------------------------------------------------------------------------------


def test_note_terms_match_the_query_parser(small_products: list[Product]) -> None:
    vocab = load_lexicon().articles
    notes = [p.style_note for p in small_products if p.style_note] + [
        "Team these ear-rings with a gold chain, a clutch purse and a bag.",
        "An earring, not a ring; a jewellery set and jewellery.",
        "耳环和手提包",
    ]
    for note in notes:
        text = normalise(note).lower()
        expected = list(dict.fromkeys(term.values for _, term in vocab.find(text)))
        assert note_terms(note) == expected, note


def test_mining_weights_damping_and_normalisation() -> None:
    table = PairingTable.mine(
        [
            _product("n1", NECKLACE, "Add on a clutch purse."),
            _product("n2", NECKLACE, "Add on a clutch."),
            _product("n3", NECKLACE, "Carry it with any bag."),  # 10 bag articles share 1 vote
            _product("n4", NECKLACE, "Lovely costume jewellery."),  # 7 jewellery articles
            _product("e1", "Earrings", "Wear with a clutch."),
            _product("x1", "Sarees"),  # no note: no votes
        ]
    )
    row = table.scores[NECKLACE]
    # Clutches: 1 + 1 + 1/10 (the same note's "clutch" and "purse" vote once each).
    assert row["Clutches"] == 1.0
    assert row["Handbags"] == pytest.approx((1 + 0.1) / 2.1, abs=1e-6)
    assert row["Backpacks"] == pytest.approx(0.1 / 2.1, abs=1e-6)
    assert row["Earrings"] == pytest.approx((1 / 7) / 2.1, abs=1e-6)
    assert NECKLACE not in row  # "jewellery" names the necklace itself too
    assert "Sarees" not in table.scores
    for scores in table.scores.values():
        assert max(scores.values()) == 1.0
        assert all(0 < s <= 1 for s in scores.values())


def test_co_mentions_count_for_each_other_with_a_smaller_weight() -> None:
    table = PairingTable.mine(
        [
            _product("n1", NECKLACE, "Team it with earrings and a watch."),
            _product("e1", "Earrings", "Wear with a clutch."),
        ]
    )
    assert table.scores[NECKLACE] == {"Earrings": 1.0, "Watches": 1.0}
    assert table.scores["Earrings"]["Clutches"] == 1.0
    assert table.scores["Earrings"]["Watches"] == pytest.approx(CO_MENTION_WEIGHT)
    assert table.scores["Watches"] == {"Earrings": 1.0}


def test_targets_never_self_and_prefer_variety() -> None:
    scores = {"Earrings": 1.0, "Ring": 0.9, "Bangle": 0.8, "Clutches": 0.3, "Watches": 0.2,
              "Handbags": 0.25, NECKLACE: 0.95, "Sarees": 0.01}  # fmt: skip
    table = PairingTable({NECKLACE: scores}, {a: SUBS[a] for a in SUBS})
    assert table.score(NECKLACE, NECKLACE) == 0.0
    assert table.targets(NECKLACE, 3) == [("Earrings", 1.0), ("Clutches", 0.3), ("Watches", 0.2)]
    # Once every category has its slot, the rest follow by strength; a barely-named partner
    # (Sarees, 0.01) does not take a slot from a strong one.
    five = table.targets(NECKLACE, 5)
    assert [a for a, _ in five] == ["Earrings", "Ring", "Bangle", "Clutches", "Watches"]
    assert all(a != NECKLACE for a, _ in table.targets(NECKLACE, 10))
    # An article the shop does not sell is never a target.
    unsold = PairingTable({NECKLACE: {"Perfume": 1.0, "Earrings": 0.5}}, {"Earrings": "Jewellery"})
    assert unsold.targets(NECKLACE, 3) == [("Earrings", 0.5)]


def test_json_round_trip_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    products = [
        _product("n1", NECKLACE, "Add on a clutch and a watch."),
        _product("c1", "Clutches", "Carry it with a saree."),
    ]
    table = PairingTable.mine(products)
    assert PairingTable.from_json(json.loads(json.dumps(table.to_json()))) == table

    cache = tmp_path / "cache" / "pairings.json"
    assert PairingTable.load_or_mine(products, cache) == table
    assert cache.is_file()

    def no_mining(_products: object) -> PairingTable:
        raise AssertionError("re-mined an unchanged catalog")

    with monkeypatch.context() as m:
        m.setattr(PairingTable, "mine", no_mining)
        assert PairingTable.load_or_mine(list(reversed(products)), cache) == table

    changed = [products[0].model_copy(update={"style_note": "Add on earrings."}), products[1]]
    fresh = PairingTable.load_or_mine(changed, cache)
    assert fresh.digest != table.digest
    assert fresh.scores[NECKLACE] == {"Earrings": 1.0}
    assert PairingTable.from_json(json.loads(cache.read_text())) == fresh

    cache.write_text("{not json")
    assert PairingTable.load_or_mine(changed, cache) == fresh


@pytest.fixture(scope="module")
def pairings(bundled: list[Product]) -> PairingTable:
    start = time.perf_counter()
    table = PairingTable.mine(bundled)
    print(f"\nmined {len(bundled)} products in {time.perf_counter() - start:.3f}s")
    return table


@pytest.mark.parametrize("article", [NECKLACE, "Pendant", "Earrings"])
def test_bundled_jewellery_pairs_beyond_jewellery(pairings: PairingTable, article: str) -> None:
    targets = pairings.targets(article, 5)
    print(article, "->", targets)
    assert len(targets) == 5
    assert article not in [a for a, _ in targets]
    groups = {pairings.group(a) for a, _ in targets}
    assert "Jewellery" in groups and groups - {"Jewellery"}


# --- harmony --------------------------------------------------------------------------------


def test_harmony() -> None:
    gold = _product("g", NECKLACE, colour="Gold")
    gold_bag = _product("gb", "Clutches", colour="Gold")
    copper = _product("c", "Bangle", colour="Copper")
    silver_watch = _product("s", "Watches", colour="Silver")
    black_silver = _product("bs", "Watches", colour="Black", metal="Silver")
    black_bag = _product("b", "Handbags", colour="Black")
    grey = _product("gr", "Handbags", colour="Grey")
    red = _product("r", "Sarees", colour="Red")
    green = _product("gn", "Sarees", colour="Green")
    brown = _product("br", "Handbags", colour="Brown")
    plain = _product("p", "Handbags")

    assert harmony(gold, gold_bag) == 1.0
    assert 0.8 <= harmony(gold, copper) < 1.0  # warm metals together
    assert harmony(gold, silver_watch) == MIXED_METALS
    # A black dial does not hide a silver case next to gold.
    assert harmony(gold, black_silver) == MIXED_METALS
    assert harmony(gold, black_bag) >= 0.7  # neutrals go with everything
    assert harmony(silver_watch, grey) > harmony(gold, grey)  # grey is a cool neutral
    assert harmony(gold, brown) > harmony(silver_watch, brown) >= 0.7  # warm neutral
    assert harmony(red, green) < harmony(silver_watch, red) < harmony(gold, red)
    assert harmony(gold, plain) == UNKNOWN
    products = [gold, gold_bag, copper, silver_watch, black_silver, black_bag, grey, red, brown]
    for a, b in itertools.product(products, repeat=2):
        assert 0.0 <= harmony(a, b) <= 1.0
        assert harmony(a, b) == harmony(b, a)


def test_shared_tone() -> None:
    gold = _product("g", NECKLACE, colour="Gold")
    assert shared_tone(gold, _product("gb", "Clutches", colour="Gold")) == "Gold"
    silver_black = _product("a", "Watches", colour="Black", metal="Silver")
    silver_black_ring = _product("b", "Ring", colour="Black", metal="Silver")
    assert shared_tone(silver_black, silver_black_ring) == "Silver"  # the metal, not the colour
    assert shared_tone(gold, silver_black) is None
    assert shared_tone(gold, _product("p", "Handbags")) is None


# --- finding complements and bundles --------------------------------------------------------


@pytest.fixture(scope="module")
def finder(small_engine: SearchEngine, pairings: PairingTable) -> ComplementFinder:
    return ComplementFinder(small_engine.index, pairings)


def _anchor(products: list[Product], article: str, gender: str = "Women") -> Product:
    return next(p for p in products if p.article == article and p.gender == gender)


def test_find_spans_paired_articles(finder: ComplementFinder, small_products: list[Product]):
    anchor = _anchor(small_products, NECKLACE)
    found = finder.find(anchor, k=3)
    print([(c.product.article, c.product.id, c.score) for c in found])
    assert len(found) == 3
    articles = [c.product.article for c in found]
    assert len(set(articles)) == 3
    targets = {a for a, _ in finder.pairings.targets(NECKLACE, 6)}
    assert set(articles) <= targets
    assert len({finder.pairings.group(a) for a in articles}) >= 2
    assert all(c.product.id != anchor.id for c in found)
    assert all(c.product.gender in compatible_genders("Women") for c in found)
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)
    for c in found:
        assert 0 <= c.pairing <= 1 and 0 <= c.harmony <= 1 and 0 <= c.similarity <= 1
        assert c.pairing == finder.pairings.score(NECKLACE, c.product.article)
    assert finder.find(anchor, k=3) == found  # deterministic


def test_find_respects_articles_price_gender_and_exclusions(
    finder: ComplementFinder, small_products: list[Product]
) -> None:
    anchor = _anchor(small_products, "Earrings")
    wanted = ("Handbags", "Watches", NECKLACE)
    prices = sorted(p.price for p in small_products if p.article in wanted)
    cap = prices[len(prices) // 2]
    found = finder.find(
        anchor, articles=wanted, filters=QueryFilters(max_price=cap), k=6, per_article=2
    )
    assert found
    assert {c.product.article for c in found} <= set(wanted)
    assert all(c.product.price <= cap for c in found)
    assert max(sum(c.product.article == a for c in found) for a in wanted) <= 2

    again = finder.find(
        anchor, articles=wanted, k=6, per_article=2, exclude_ids=[found[0].product.id]
    )
    assert found[0].product.id not in {c.product.id for c in again}

    # An anchor for men draws men's and unisex products; an explicit gender wins.
    watch = _anchor(small_products, "Watches", "Men")
    for c in finder.find(watch, articles=("Wallets", "Belts", "Sunglasses"), k=3):
        assert c.product.gender in ("Men", "Boys", "Unisex")
    women = QueryFilters(genders=("Women",))
    for c in finder.find(watch, articles=("Handbags", "Sunglasses"), filters=women, k=2):
        assert c.product.gender == "Women"

    # The anchor's own article may be asked for; the anchor itself never comes back.
    same = finder.find(anchor, articles=("Earrings",), k=5, per_article=5)
    assert same and anchor.id not in {c.product.id for c in same}


def test_anchor_must_be_indexed(finder: ComplementFinder) -> None:
    with pytest.raises(KeyError):
        finder.find(_product("not-indexed", NECKLACE), articles=("Earrings",))


def _brute_force(pools: list[list[Complement]], base: float, budget: float | None) -> float:
    best = 0.0
    for combo in itertools.product(*[[None, *pool] for pool in pools]):
        items = [c for c in combo if c is not None]
        if items and (budget is None or base + sum(c.product.price for c in items) <= budget):
            best = max(best, sum(c.score for c in items))
    return best


def test_bundle_is_the_best_combination_within_budget(
    finder: ComplementFinder, small_products: list[Product]
) -> None:
    anchor = _anchor(small_products, NECKLACE)
    wanted = ["Clutches", "Earrings"]
    free = finder.bundle(anchor, budget=None, articles=wanted, size=3)
    assert free is not None and len(free.items) == 2
    # The unconstrained best is out of reach: the budget forces a trade-off.
    budget = free.total - 1
    bundle = finder.bundle(anchor, budget=budget, articles=wanted, size=3)
    assert bundle is not None and bundle.items
    print([(c.product.article, c.product.price, c.score) for c in bundle.items], bundle.total)
    assert bundle.anchor == anchor and bundle.budget == budget
    assert bundle.total == pytest.approx(anchor.price + sum(c.product.price for c in bundle.items))
    assert bundle.total <= budget
    articles = [c.product.article for c in bundle.items]
    assert len(set(articles)) == len(articles) and set(articles) <= set(wanted)

    left = QueryFilters(max_price=budget - anchor.price)
    pools = [finder.find(anchor, articles=[a], filters=left, k=5, per_article=5) for a in wanted]
    assert all(c.product.price <= budget - anchor.price for pool in pools for c in pool)
    best = _brute_force([p for p in pools if p], anchor.price, budget)
    assert sum(c.score for c in bundle.items) == pytest.approx(best)
    assert finder.bundle(anchor, budget=budget, articles=wanted, size=3) == bundle

    assert finder.bundle(anchor, budget=anchor.price - 1, size=3) is None
    # An article with nothing in stock leaves its slot empty rather than sinking the bundle.
    short = finder.bundle(anchor, budget=None, articles=["Earrings", "No Such Article"], size=3)
    assert short is not None and [c.product.article for c in short.items] == ["Earrings"]


def test_bundle_picks_its_own_articles(
    finder: ComplementFinder, small_products: list[Product]
) -> None:
    anchor = _anchor(small_products, "Earrings")
    free = finder.bundle(anchor, budget=None, size=3)
    # Without a budget every slot takes its best product: the top suggestions themselves.
    suggested = finder.find(anchor, k=2)
    assert free is not None
    assert {c.product.id for c in free.items} == {c.product.id for c in suggested}
    budget = anchor.price + min(c.product.price for c in free.items)
    tight = finder.bundle(anchor, budget=budget, size=3)
    assert tight is not None and tight.total <= budget
    assert len({c.product.article for c in tight.items}) == len(tight.items) <= 2
    assert tight == finder.bundle(anchor, budget=budget, size=3)


def test_men_get_complements_beyond_the_mined_pairs(
    finder: ComplementFinder, small_products: list[Product]
) -> None:
    # The notes pair watches with dresses and women's jewellery only.
    watch = _anchor(small_products, "Watches", "Men")
    found = finder.find(watch, k=3)
    print([(c.product.article, c.product.gender, c.score) for c in found])
    assert len(found) == 3 and len({c.product.article for c in found}) == 3
    assert all(c.product.gender in ("Men", "Boys", "Unisex") for c in found)
    groups = [finder.pairings.group(c.product.article) for c in found]
    assert "Watches" not in groups and len(set(groups)) == 3  # filling in keeps variety
    bundle = finder.bundle(watch, budget=None, size=3)
    assert bundle is not None and len(bundle.items) == 2


def test_best_combination_matches_brute_force() -> None:
    def c(pid: str, article: str, price: float, score: float) -> Complement:
        return Complement(_product(pid, article, price=price), score, 0.0, 0.0, 0.0, None)

    pools = [
        [
            c("a1", "Earrings", 900, 0.9),
            c("a2", "Earrings", 300, 0.6),
            c("a3", "Earrings", 50, 0.2),
        ],
        [c("b1", "Clutches", 800, 0.8), c("b2", "Clutches", 200, 0.5)],
        [c("w1", "Watches", 1500, 0.95), c("w2", "Watches", 400, 0.3)],
    ]
    for budget in (None, 0, 100, 600, 1100, 1500, 2000, 2600, 5000):
        found = best_combination(pools, 100, budget)
        best = _brute_force(pools, 100, budget)
        assert sum(x.score for x in found) == pytest.approx(best)
        assert bool(found) == (budget is None or budget >= 150)  # the cheapest item fits
        if budget is not None and found:
            assert 100 + sum(x.product.price for x in found) <= budget
        assert len({x.product.article for x in found}) == len(found)
