"""Cross-category suggestions ("what goes with this necklace?") and bundles within a budget.

Three signals make one score: how often the catalog's stylist notes pair the two articles
(mined once, cached), how well the two products' colours and metals go together, and how
close the candidate sits to the anchor in the index's text and image spaces."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from bijou.catalog.schema import Product
from bijou.retrieval.index import ProductIndex, VectorQuery
from bijou.retrieval.lexicon import load_lexicon
from bijou.retrieval.look import look_of
from bijou.retrieval.query import QueryFilters, normalise
from bijou.retrieval.reasons import (
    Reason,
    for_children,
    in_price_band,
    near_substitute,
    reasons,
)

if TYPE_CHECKING:
    from bijou.fusion.models import Fuser
    from bijou.retrieval.compatibility import CompatibilityModel

# Bump when mining changes, so cached tables from the old miner are re-mined.
MINER_VERSION = 1
# A note naming two articles ties them together, but less than the product it describes.
CO_MENTION_WEIGHT = 0.25
# Variety must not promote a partner the notes barely name (a stray "tie" in "tie-dye"):
# only partners at least this strong get a category's first slot.
VARIETY_FLOOR = 0.05

_T = TypeVar("_T")


# --- (a) pairings mined from the stylist notes ----------------------------------------------


_WORD = re.compile(r"[a-z0-9]+")
# The article vocabulary's English terms as word tuples. The query parser's regex does the
# same matching but costs ~0.4 ms a note (a 200-way alternation tried at every character);
# this word lookup gives the same terms (checked by the tests) ~8x faster.
_TERM_WORDS = {
    tuple(text.split()): term.values
    for text, term in load_lexicon().articles.terms.items()
    if text.isascii()
}
_MAX_WORDS = max(len(words) for words in _TERM_WORDS)
_FIRST_WORDS = frozenset(words[0] for words in _TERM_WORDS)


def note_terms(note: str) -> list[tuple[str, ...]]:
    """The article terms a note names, as their canonical articles, once each, in order."""
    text = normalise(note).lower()  # the same normalisation the query parser applies
    if not text.isascii():  # Chinese terms: the parser's own matcher
        return list(dict.fromkeys(term.values for _, term in load_lexicon().articles.find(text)))
    words = list(_WORD.finditer(text))
    found: list[tuple[str, ...]] = []
    i = 0
    while i < len(words):
        if words[i][0] not in _FIRST_WORDS:  # most words start no term: skip them cheaply
            i += 1
            continue
        for n in range(min(_MAX_WORDS, len(words) - i), 0, -1):  # longest first, as the parser
            span = words[i : i + n]
            # A multi-word term matches words one space apart only ("ear ring", not "ear, ring").
            if any(b.start() != a.end() + 1 for a, b in itertools.pairwise(span)):
                continue
            canon = _TERM_WORDS.get(tuple(m[0] for m in span))
            if canon is not None:
                found.append(canon)
                i += n
                break
        else:
            i += 1
    return list(dict.fromkeys(found))


def catalog_digest(products: Iterable[Product]) -> str:
    """Changes when any input of the mining changes; independent of catalog order."""
    digest = hashlib.sha256(f"miner:{MINER_VERSION}".encode())
    for row in sorted((p.id, p.article, p.sub, p.style_note) for p in products):
        digest.update(json.dumps(row).encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class PairingTable:
    # source article -> partner article -> strength in [0, 1] (1 = its best partner)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    # article -> its category in the catalog (Jewellery, Bags, Watches, ...): the unit of
    # variety. The catalog's master category is too coarse for that: jewellery, watches and
    # bags are all "Accessories".
    groups: dict[str, str] = field(default_factory=dict)
    digest: str = ""

    @classmethod
    def mine(cls, products: Iterable[Product]) -> PairingTable:
        products = list(products)
        raw: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        parsed: dict[str, list[tuple[str, ...]]] = {}  # many products share one note
        for product in products:
            if not product.style_note:
                continue
            terms = parsed.get(product.style_note)
            if terms is None:
                terms = parsed[product.style_note] = note_terms(product.style_note)
            # One note is one vote per partner: the strongest mention counts, not their sum.
            votes: dict[tuple[str, str], float] = {}
            for canon in terms:
                # A generic word ("bag": 10 articles) spreads one vote thinly.
                weight = 1.0 / len(canon)
                for article in canon:
                    key = (product.article, article)
                    votes[key] = max(votes.get(key, 0.0), weight)
            for one, two in itertools.combinations(terms, 2):
                weight = CO_MENTION_WEIGHT / (len(one) * len(two))
                for a, b in itertools.product(one, two):
                    for key in ((a, b), (b, a)):
                        votes[key] = max(votes.get(key, 0.0), weight)
            for (source, target), weight in votes.items():
                if source != target:
                    raw[source][target] += weight
        scores = {}
        for source, row in sorted(raw.items()):
            top = max(row.values())
            scores[source] = {t: round(w / top, 6) for t, w in sorted(row.items())}
        return cls(scores, _article_groups(products), catalog_digest(products))

    def score(self, source: str, target: str) -> float:
        return 0.0 if source == target else self.scores.get(source, {}).get(target, 0.0)

    def group(self, article: str) -> str:
        return self.groups.get(article, article)

    def targets(self, article: str, k: int = 5) -> list[tuple[str, float]]:
        """The best ``k`` partner articles the shop sells, best first; the best of each
        category is taken before a second of any, so a necklace gets earrings and a clutch,
        not five kinds of jewellery."""
        row = [
            (target, s)
            for target, s in self.scores.get(article, {}).items()
            if target != article and target in self.groups and s > 0
        ]
        row.sort(key=lambda item: (-item[1], item[0]))
        return diverse(
            row, lambda item: self.group(item[0]), k, promote=lambda item: item[1] >= VARIETY_FLOOR
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": MINER_VERSION,
            "digest": self.digest,
            "groups": self.groups,
            "scores": self.scores,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PairingTable:
        if raw.get("version") != MINER_VERSION:
            raise ValueError(f"pairing table version {raw.get('version')}, want {MINER_VERSION}")
        return cls(raw["scores"], raw["groups"], raw["digest"])

    @classmethod
    def load_or_mine(cls, products: Iterable[Product], cache_path: Path) -> PairingTable:
        """The cached table when it was mined from these very products, else mine and cache."""
        products = list(products)
        digest = catalog_digest(products)
        try:
            cached = cls.from_json(json.loads(cache_path.read_text()))
            if cached.digest == digest:
                return cached
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # missing, unreadable or from another miner: mine again
        table = cls.mine(products)
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_path.with_suffix(cache_path.suffix + ".tmp")
            tmp.write_text(json.dumps(table.to_json()))
            tmp.replace(cache_path)  # atomic: a reader never sees half a table
        except OSError:
            pass  # the cache only saves a restart a fraction of a second; never fail for it
        return table


def _article_groups(products: Sequence[Product]) -> dict[str, str]:
    """article -> its most common category (a stray "Free Gifts" clutch stays a bag)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for p in products:
        counts[p.article][p.sub or p.master or p.article] += 1
    return {
        article: min(c.items(), key=lambda item: (-item[1], item[0]))[0]
        for article, c in sorted(counts.items())
    }


def diverse(
    ranked: Sequence[_T],
    group: Callable[[_T], str],
    k: int,
    *,
    promote: Callable[[_T], bool] = lambda _: True,
    cap: Callable[[_T], str] | None = None,
    per_cap: int = 1,
) -> list[_T]:
    """Up to ``k`` of ``ranked`` (best first): the best promotable item of each group first,
    then the rest in rank order, at most ``per_cap`` sharing a ``cap`` key; in rank order."""
    chosen: list[int] = []  # positions in ranked
    seen_groups: set[str] = set()
    capped: Counter[str] = Counter()

    def take(i: int) -> None:
        chosen.append(i)
        seen_groups.add(group(ranked[i]))
        if cap is not None:
            capped[cap(ranked[i])] += 1

    def fits(i: int) -> bool:
        return len(chosen) < k and (cap is None or capped[cap(ranked[i])] < per_cap)

    for i, item in enumerate(ranked):
        if fits(i) and promote(item) and group(item) not in seen_groups:
            take(i)
    for i in range(len(ranked)):
        if fits(i) and i not in chosen:
            take(i)
    return [ranked[i] for i in sorted(chosen)]


# --- (b) colour and metal harmony ---------------------------------------------------------

_METALS = frozenset({"Gold", "Rose", "Copper", "Bronze", "Silver", "Steel"})
# Warm: yellow-based metals, earth tones, reds and yellows. Cool: white metals, blues,
# greens, purples and the greys.
_WARM = frozenset({
    "Gold", "Rose", "Copper", "Bronze", "Brown", "Coffee Brown", "Mushroom Brown", "Tan",
    "Beige", "Cream", "Off White", "Skin", "Taupe", "Khaki", "Mustard", "Yellow", "Orange",
    "Rust", "Peach", "Red", "Maroon", "Burgundy", "Olive",
})  # fmt: skip
_COOL = frozenset({
    "Silver", "Steel", "White", "Grey", "Grey Melange", "Charcoal", "Black", "Navy Blue",
    "Blue", "Turquoise Blue", "Teal", "Purple", "Lavender", "Mauve", "Magenta", "Pink",
    "Green", "Sea Green", "Lime Green", "Fluorescent Green",
})  # fmt: skip
# Neutrals go with everything. Brown and tan count: leather brown is worn with gold and
# silver alike. They keep their family too, so black with silver scores above black with gold.
# Multi and Metallic already hold many colours, so nothing clashes with them.
_NEUTRALS = frozenset({
    "Black", "White", "Off White", "Grey", "Grey Melange", "Charcoal", "Beige", "Cream",
    "Skin", "Taupe", "Khaki", "Brown", "Coffee Brown", "Mushroom Brown", "Tan", "Multi",
    "Metallic",
})  # fmt: skip

SAME_TONE = 1.0
SAME_FAMILY = 0.85
WITH_NEUTRAL = 0.7
METAL_WITH_COLOUR = 0.55  # gold with a red saree is classic, with a blue one less so
UNKNOWN = 0.5  # a product without a colour: no evidence either way
OTHER_COLOURS = 0.4
WARM_WITH_COOL = 0.3
MIXED_METALS = 0.2


def _family(tone: str) -> str | None:
    return "warm" if tone in _WARM else "cool" if tone in _COOL else None


def _tone_pair(a: str, b: str) -> float:
    if a == b:
        return SAME_TONE
    family_a, family_b = _family(a), _family(b)
    if a in _METALS and b in _METALS:
        return SAME_FAMILY if family_a == family_b else MIXED_METALS
    if family_a is not None and family_a == family_b:
        return SAME_FAMILY
    if a in _NEUTRALS or b in _NEUTRALS:
        return WITH_NEUTRAL
    if a in _METALS or b in _METALS:
        return METAL_WITH_COLOUR
    if family_a is not None and family_b is not None:
        return WARM_WITH_COOL
    return OTHER_COLOURS


def harmony(a: Product, b: Product) -> float:
    """How well two products' colours and metals go together, in [0, 1]."""
    tones_a, tones_b = look_of(a).sure_tones, look_of(b).sure_tones
    if not tones_a or not tones_b:
        return UNKNOWN
    metals_a = [t for t in tones_a if t in _METALS]
    metals_b = [t for t in tones_b if t in _METALS]
    # Mixed metals spoil a look even when a neutral colour would otherwise carry it.
    if metals_a and metals_b and max(_tone_pair(x, y) for x in metals_a for y in metals_b) < 0.5:
        return MIXED_METALS
    return max(_tone_pair(x, y) for x in tones_a for y in tones_b)


def shared_tone(a: Product, b: Product) -> str | None:
    """The tone both share, for the explanation ("both Gold"): a metal before a colour."""
    shared = set(look_of(a).sure_tones) & set(look_of(b).sure_tones)
    if not shared:
        return None
    return min(shared, key=lambda t: (t not in _METALS, t in _NEUTRALS, t))


# --- (c) + combination: finding complements -----------------------------------------------


@dataclass(frozen=True)
class Complement:
    product: Product
    score: float
    pairing: float  # (a) for (anchor article, this article)
    harmony: float  # (b)
    # (c) how well the two go together: the learned compatibility in [0, 1] where the model
    # ships, else the mean cosine to the anchor over the text and image vectors, >= 0
    similarity: float
    shared_tone: str | None
    reasons: tuple[Reason, ...] = ()  # why they go together, each checkable


@dataclass(frozen=True)
class Bundle:
    anchor: Product
    items: tuple[Complement, ...]
    total: float  # anchor price + items' prices
    budget: float | None


@dataclass(frozen=True)
class ComplementWeights:
    pairing: float = 0.4
    harmony: float = 0.2
    similarity: float = 0.4


class Compatibility:
    """The learned compatibility on fused product vectors (bijou.retrieval.compatibility):
    wins within a category on held-out stylist notes (docs/complements.md), so it ranks the
    candidates of each target category; the mined pairings choose the categories."""

    def __init__(self, model: CompatibilityModel, fuser: Fuser) -> None:
        self.model = model
        self.fuser = fuser

    @classmethod
    def load(cls) -> Compatibility | None:
        from bijou.fusion.models import load_fuser
        from bijou.retrieval.compatibility import load_compatibility

        model = load_compatibility()
        fuser = load_fuser("gated")
        return None if model is None or fuser is None else cls(model, fuser)

    def scores(
        self,
        anchor: Product,
        held: dict[str, np.ndarray],
        products: Sequence[Product],
        vectors: dict[str, dict[str, np.ndarray]],
    ) -> dict[str, float]:
        """product id -> compatibility with the anchor in [0, 1], in one batch: the fusion
        model runs once over the anchor and the candidates, the type-aware head once per
        article."""
        rows = [held, *(vectors.get(p.id, {}) for p in products)]
        keep = [i for i, row in enumerate(rows) if "text" in row]
        if not keep or keep[0] != 0:
            return {}
        text = np.stack([rows[i]["text"] for i in keep])
        image = np.stack([rows[i].get("image", np.zeros_like(rows[i]["text"])) for i in keep])
        fused = self.fuser.products(text, image, np.array(["image" in rows[i] for i in keep]))
        by_article: dict[str, list[int]] = defaultdict(list)
        for j, i in enumerate(keep[1:], start=1):
            by_article[products[i - 1].article].append(j)
        out: dict[str, float] = {}
        for article, js in by_article.items():
            found = self.model.score(fused[0], anchor.article, fused[js], article)
            for j, value in zip(js, found, strict=True):
                out[products[keep[j] - 1].id] = float((value + 1) / 2)
        return out


VECTORS = ("text", "image")
_BUNDLE_CANDIDATES = 5  # per article; 5^(size-1) combinations are searched exactly
_PRICE_SLACK = 1e-6  # float sums of prices must not fail an exact budget
NO_FILTERS = QueryFilters()  # frozen, so one shared default is safe


def compatible_genders(gender: str) -> tuple[str, ...]:
    """Genders whose products suit the wearer of the anchor (Unisex fits both). An adult's
    anchor leaves children's sizes out; a child's may take small adult pieces."""
    if gender == "Women":
        return ("Women", "Unisex")
    if gender == "Men":
        return ("Men", "Unisex")
    if gender == "Girls":
        return ("Girls", "Women", "Unisex")
    if gender == "Boys":
        return ("Boys", "Men", "Unisex")
    return ()  # a Unisex (or unknown) anchor constrains nothing


class ComplementFinder:
    def __init__(
        self,
        index: ProductIndex,
        pairings: PairingTable,
        weights: ComplementWeights | None = None,
        candidates: int = 20,
        compatibility: Compatibility | None = None,
    ) -> None:
        self.index = index
        self.pairings = pairings
        self.weights = weights or ComplementWeights()
        self.candidates = candidates  # nearest products per target article and vector
        self.compatibility = compatibility

    def find(
        self,
        anchor: Product,
        *,
        articles: Sequence[str] | None = None,
        filters: QueryFilters = NO_FILTERS,
        k: int = 3,
        per_article: int = 1,
        exclude_ids: Sequence[str] = (),
    ) -> list[Complement]:
        """The best ``k`` products to wear or carry with ``anchor``, at most ``per_article``
        of each article, the best of each category before a second of any. Without
        ``articles``, the anchor's mined partners (then, if they run short, other categories)."""
        if k <= 0:
            return []
        found = self._gather(anchor, articles, filters, exclude_ids, k, per_article)
        return self._select(found, k, per_article)

    def bundle(
        self,
        anchor: Product,
        *,
        budget: float | None,
        articles: Sequence[str] | None = None,
        size: int = 3,
        filters: QueryFilters = NO_FILTERS,
        exclude_ids: Sequence[str] = (),
    ) -> Bundle | None:
        """The anchor and one product of each of up to ``size - 1`` articles, the best total
        score within ``budget``; fewer items when an article has nothing that fits, None when
        nothing does (or the anchor alone breaks the budget)."""
        if size < 2 or (budget is not None and anchor.price > budget + _PRICE_SLACK):
            return None
        if budget is not None:
            # No single item may cost more than what the anchor leaves of the budget.
            left = budget - anchor.price
            cap = left if filters.max_price is None else min(left, filters.max_price)
            filters = replace(filters, max_price=cap)
        found = self._gather(anchor, articles, filters, exclude_ids, size - 1, 1)
        # The articles are those of the best single suggestions (variety included); the
        # exact search then trades quality for price within them.
        chosen = [c.product.article for c in self._select(found, size - 1, 1)]
        pools = [found[a][:_BUNDLE_CANDIDATES] for a in chosen]
        best = best_combination(pools, anchor.price, budget)
        if not best:
            return None
        return Bundle(anchor, best, anchor.price + sum(c.product.price for c in best), budget)

    def _gather(
        self,
        anchor: Product,
        articles: Sequence[str] | None,
        filters: QueryFilters,
        exclude_ids: Sequence[str],
        k: int,
        per_article: int,
    ) -> dict[str, list[Complement]]:
        if articles is not None:
            return self._candidates(anchor, articles, filters, exclude_ids, asked=True)
        # A few spare partners stand in for those the filters (often gender) leave empty.
        targets = [a for a, _ in self.pairings.targets(anchor.article, k + 3)]
        found = self._candidates(anchor, targets, filters, exclude_ids)
        if sum(min(len(cs), per_article) for cs in found.values()) >= k:
            return found
        # The notes pair little for some shoppers (a men's watch's partners are women's
        # jewellery): fill from the other categories the shop sells, on harmony and
        # similarity alone, never the anchor's own category.
        own = self.pairings.group(anchor.article)
        rest = [
            a
            for a in sorted(self.pairings.groups)
            if a not in targets and a != anchor.article and self.pairings.group(a) != own
        ]
        return {**found, **self._candidates(anchor, rest, filters, exclude_ids)}

    def _select(
        self, found: dict[str, list[Complement]], k: int, per_article: int
    ) -> list[Complement]:
        ranked = sorted(
            (c for cs in found.values() for c in cs), key=lambda c: (-c.score, c.product.id)
        )
        return diverse(
            ranked,
            lambda c: self.pairings.group(c.product.article),
            k,
            # Unpaired articles (named by the caller, or filling in) deserve variety too; only
            # barely-paired ones would push a strong partner out of its category's slot.
            promote=lambda c: c.pairing >= VARIETY_FLOOR or c.pairing == 0.0,
            cap=lambda c: c.product.article,
            per_cap=per_article,
        )

    def _candidates(
        self,
        anchor: Product,
        articles: Sequence[str],
        filters: QueryFilters,
        exclude_ids: Sequence[str],
        asked: bool = False,
    ) -> dict[str, list[Complement]]:
        """article -> its scored candidates, best first (ties by product id)."""
        articles = list(dict.fromkeys(articles))
        if not articles:
            return {}
        held = self.index.vectors([anchor.id], VECTORS).get(anchor.id, {})
        if not held:
            raise KeyError(f"product {anchor.id} is not in the index")
        if not filters.genders:
            filters = replace(filters, genders=compatible_genders(anchor.gender))
        exclude = tuple(dict.fromkeys([anchor.id, *exclude_ids]))
        queries = [
            VectorQuery(
                name, vector, replace(filters, articles=(article,)), self.candidates, exclude
            )
            for article in articles
            for name, vector in held.items()
        ]
        ids = sorted({hit.product_id for hits in self.index.search(queries) for hit in hits})
        if not ids:
            return {}
        vectors = self.index.vectors(ids, VECTORS)
        kept = [
            p
            for p in self.index.get_many(ids)
            # The index filters on price already; never trust one layer alone.
            if (filters.max_price is None or p.price <= filters.max_price)
            # No second bag beside a bag, no bangle beside a watch.
            and not near_substitute(anchor, p, asked=asked)
            and (filters.max_price is not None or in_price_band(anchor, p))
            and (for_children(anchor) or not for_children(p))
        ]
        compatible = (
            self.compatibility.scores(anchor, held, kept, vectors) if self.compatibility else {}
        )
        found: dict[str, list[Complement]] = defaultdict(list)
        for product in kept:
            scored = self._score(anchor, product, held, vectors, compatible.get(product.id))
            if scored.reasons:  # a suggestion with nothing true to say for it is none
                found[product.article].append(scored)
        for scored in found.values():
            scored.sort(key=lambda c: (-c.score, c.product.id))
        return dict(found)

    def _score(
        self,
        anchor: Product,
        product: Product,
        held: dict[str, np.ndarray],
        vectors: dict[str, dict[str, np.ndarray]],
        compatible: float | None = None,
    ) -> Complement:
        mine = vectors.get(product.id, {})
        if compatible is not None:
            similarity = compatible
        else:
            cosines = [_cosine(held[n], mine[n]) for n in VECTORS if n in held and n in mine]
            similarity = max(0.0, float(np.mean(cosines))) if cosines else 0.0
        pairing = self.pairings.score(anchor.article, product.article)
        fit = harmony(anchor, product)
        w = self.weights
        score = w.pairing * pairing + w.harmony * fit + w.similarity * similarity
        return Complement(
            product,
            round(score, 6),
            pairing,
            fit,
            round(similarity, 6),
            shared_tone(anchor, product),
            reasons(anchor, product),
        )


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b)) / norm if norm else 0.0


def best_combination(
    pools: Sequence[Sequence[Complement]], anchor_price: float, budget: float | None
) -> tuple[Complement, ...]:
    """At most one item from each pool, the highest total score whose price with the anchor
    stays within ``budget``; exhaustive, since pools are a handful of items each. Ties go to
    more items, then the cheaper total, then the smaller ids."""
    best: tuple[Complement, ...] = ()
    best_key: tuple[Any, ...] | None = None
    for combo in itertools.product(*[[None, *pool] for pool in pools]):
        items = tuple(c for c in combo if c is not None)
        if not items:
            continue
        price = anchor_price + sum(c.product.price for c in items)
        if budget is not None and price > budget + _PRICE_SLACK:
            continue
        key = (
            -round(sum(c.score for c in items), 9),
            -len(items),
            price,
            [c.product.id for c in items],
        )
        if best_key is None or key < best_key:
            best, best_key = items, key
    return best


# --- described anchors and looks without one ------------------------------------------------


def harmony_with(tones: Sequence[str], product: Product) -> float:
    """How well a product's colours go with colours the shopper described, in [0, 1]."""
    theirs = look_of(product).sure_tones
    if not tones or not theirs:
        return UNKNOWN
    return max(_tone_pair(a, b) for a in tones for b in theirs)


def best_look(pools: Sequence[Sequence[Product]], budget: float | None) -> list[Product]:
    """One product from each pool (each a category's candidates, best first), the set whose
    rank and colour harmony are best within ``budget``; exhaustive over a handful per pool.
    Empty when no full set fits."""
    best: list[Product] = []
    best_key: tuple[float, float, list[str]] | None = None
    for combo in itertools.product(*pools):
        total = sum(p.price for p in combo)
        if budget is not None and total > budget + _PRICE_SLACK:
            continue
        ranks = sum(list(pool).index(p) for pool, p in zip(pools, combo, strict=True))
        pairs = list(itertools.combinations(combo, 2))
        fit = sum(harmony(a, b) for a, b in pairs) / max(len(pairs), 1)
        key = (ranks / len(combo) - 2 * fit, total, [p.id for p in combo])
        if best_key is None or key < best_key:
            best, best_key = list(combo), key
    return best
