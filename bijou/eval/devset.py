"""A dev query set generated from the catalog itself, with graded relevance judgements.

Deterministic for a catalog and a seed. Two families of queries, each tagged ``"family"``:

**attribute** (about 150, about 20% Chinese): what a shopper types when buying by facts: an
article, a colour, who it is for and a budget. Combos (article, colour, women/men) are sampled
from those the catalog holds at least 3 products of, round-robin over the articles so that a
jewelry shop's small jewellery categories weigh as much as its 2,500 watches. A product "has" a
colour when it is its catalog colour or its metal tone (a silver-metal pendant is silver).
Articles whose catalog colour is packaging (perfume, deodorant) are left out: nobody shops for
a black perfume. The budget is a round number (100s under 1,000, 500s under 10,000, 1,000s
above) near a random 30th-70th percentile of the combo's prices, kept only when it really cuts
(some products above it and some at or below). Each query is rendered by an English template
in shopper voice, with varied article words (necklace/chain, sunglasses/shades, saree/sari ...),
recipients (my wife, my dad ...) or gender words (ladies, gents ...), and budgets written as
1500, 1,500 or 1.5k (the forms a templates file allows); or by a Chinese template. Grades: 2 when a
product meets every stated attribute (article, colour, gender compatible: women -> Women or
Unisex, men -> Men or Unisex, price <= budget); 1 when it meets article and colour and misses
exactly one of budget and gender.

**descriptive** (about 100, English): a shopper half-remembering one product. A target product
is sampled (round-robin over the articles) and described by colour, article word, who it is
for and one distinctive feature found in its text (attributes, style note, description): a
term from a fixed shopper vocabulary (pearls, studs, kundan, chronograph, aviator, leather,
quilted, georgette ...), choosing the feature that the fewest products of the same article,
colour and gender share, and at most 10 of them. The title is never copied. Grades: 2 for the
target; 1 for the other products of the same article and colour, compatible gender, whose text
has that feature.

**Phrasing is data.** The templates and the words they are filled with (article, colour,
recipient and gender words, budget forms) come from a YAML file loaded by ``Templates.load``;
which products a query is about, the grading, the combo sampling and ``FEATURES`` stay here.
Two files, two sets:

- ``eval/dev/templates.yaml`` -> ``eval/dev/`` (``--seed 7``, the default templates). The query
  parser was later improved by someone who had read these queries, so dev scores are
  optimistic: use dev for debugging, not for reporting.
- ``eval/holdout/templates.yaml`` -> ``eval/holdout/`` (``--seed 11``). Written independently,
  without looking at the parser or at scores, in other voices (chat-style, terse search-box,
  Hinglish, questions, requests inside a story, "1,999 max"-style ceilings, Chinese with other
  structures and words). Same catalog logic and grading. **Report holdout numbers.** It is
  frozen: changing it after seeing scores would make it a second dev set.

Run: ``python -m bijou.eval.devset --catalog PATH --out DIR --seed 7 [--templates YAML]``;
``--templates`` defaults to ``eval/dev/templates.yaml``, found relative to this module, so it
works from a source checkout or an editable install (other installs pass it). Writes
``queries.jsonl`` (``{"qid", "text", "family", "lang", "facts"}``, facts being what the query
states in catalog terms; ``budget`` is the ceiling the text states) and ``qrels.jsonl``
(``{"qid", "id", "rel"}``). The holdout set::

    python -m bijou.eval.devset --templates eval/holdout/templates.yaml \\
        --catalog bijou/catalog/data/products.jsonl.gz --out eval/holdout --seed 11
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bijou.catalog.loader import load_catalog
from bijou.catalog.schema import Product

# Which catalog genders a shopper buying for women or men accepts.
GENDERS = {"women": ("Women", "Unisex"), "men": ("Men", "Unisex")}


@dataclass(frozen=True)
class Word:
    text: str
    plural: bool = False


# fmt: off
# The articles queried -> the kind of article for FEATURES: Jewellery, Watch, Bag, Eyewear,
# Textile. Articles whose catalog colour is packaging (perfume, deodorant) are not here.
ARTICLE_KINDS: dict[str, str] = {
    "Earrings": "J", "Necklace and Chains": "J", "Pendant": "J", "Ring": "J", "Bangle": "J",
    "Bracelet": "J", "Jewellery Set": "J", "Watches": "W", "Handbags": "B", "Clutches": "B",
    "Wallets": "B", "Sunglasses": "E", "Sarees": "T", "Scarves": "T", "Belts": "B",
    "Backpacks": "B", "Cufflinks": "J",
}
# The catalog colours queried (a product has a colour when it is its colour or metal tone).
COLOURS_QUERIED: tuple[str, ...] = (
    "Black", "White", "Silver", "Gold", "Blue", "Navy Blue", "Red", "Maroon", "Pink", "Purple",
    "Green", "Olive", "Brown", "Tan", "Grey", "Charcoal", "Steel", "Beige", "Cream", "Off White",
    "Yellow", "Mustard", "Orange", "Peach", "Multi", "Teal", "Turquoise Blue", "Lavender",
    "Magenta", "Copper", "Bronze",
)
# fmt: on
SIDES = tuple(GENDERS)
BUDGET_FORMS = ("plain", "comma", "k", "nines", "qian", "zh_words")
_PLACEHOLDER = re.compile(r"\{(\w*)\}")
_ATTRIBUTE_EN_FIELDS = {
    "colour",
    "article",
    "budget",
    "budget_words",
    "a",
    "recipient",
    "gender_adj",
    "gender_noun",
}
_ATTRIBUTE_ZH_FIELDS = {"colour", "article", "budget", "recipient", "gender"}
_DESCRIPTIVE_FIELDS = {"item", "a", "recipient", "gender_adj", "gender_noun"}
_GENDER_FIELDS = {"recipient", "gender_adj", "gender_noun", "gender"}
# The templates file of the dev set. Resolved from this module, so it is found in a source
# checkout and an editable install; any other install passes ``--templates``.
DEFAULT_TEMPLATES = Path(__file__).resolve().parents[2] / "eval" / "dev" / "templates.yaml"


def _fields(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


@dataclass(frozen=True)
class Templates:
    """The phrasing of a query set: templates and the words they are filled with.

    ``articles`` maps a catalog article to (English words, Chinese word); ``colours`` a catalog
    colour to (English words, Chinese word or "" when shoppers have no common one, which keeps
    that colour out of Chinese queries). The other word lists map a side ("women", "men") to
    its words. See ``eval/dev/templates.yaml`` for the file format.
    """

    attribute_en: tuple[str, ...]
    attribute_zh: tuple[str, ...]
    descriptive: tuple[str, ...]
    articles: dict[str, tuple[tuple[Word, ...], str]]
    colours: dict[str, tuple[tuple[str, ...], str]]
    recipients: dict[str, tuple[str, ...]]
    recipients_zh: dict[str, tuple[str, ...]]
    gender_adj: dict[str, tuple[str, ...]]
    gender_noun: dict[str, tuple[str, ...]]
    gender_zh: dict[str, tuple[str, ...]] = field(default_factory=dict)
    budget_forms: tuple[str, ...] = ("plain", "comma", "k")
    budget_forms_zh: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: Path | str) -> Templates:
        """Read and check a templates file; a ValueError names the file and what is wrong."""
        path = Path(path)
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        try:
            return cls._from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"{path}: {e}") from e

    @classmethod
    def _from_dict(cls, data: dict) -> Templates:
        def strings(value: object, what: str) -> tuple[str, ...]:
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ValueError(f"{what} must be a list of non-empty strings")
            return tuple(value)

        def by_side(key: str, required: bool = True) -> dict[str, tuple[str, ...]]:
            value = data.get(key) or {}
            if not required and not value:
                return {}
            if set(value) != set(SIDES):
                raise ValueError(f"{key} must have exactly the sides {list(SIDES)}")
            return {side: strings(value[side], f"{key}.{side}") for side in SIDES}

        articles: dict[str, tuple[tuple[Word, ...], str]] = {}
        for article, entry in (data.get("articles") or {}).items():
            words = strings(entry["en"], f"articles.{article}.en")
            plural = set(strings(entry.get("plural", []), f"articles.{article}.plural"))
            if plural - set(words):
                raise ValueError(f"articles.{article}.plural lists words not in en")
            articles[article] = (tuple(Word(w, w in plural) for w in words), str(entry["zh"]))
        colours: dict[str, tuple[tuple[str, ...], str]] = {}
        for colour, entry in (data.get("colours") or {}).items():
            colours[colour] = (strings(entry["en"], f"colours.{colour}.en"), entry.get("zh") or "")
        if missing := set(ARTICLE_KINDS) - set(articles):
            raise ValueError(f"articles has no words for {sorted(missing)}")
        if missing := set(COLOURS_QUERIED) - set(colours):
            raise ValueError(f"colours has no words for {sorted(missing)}")
        templates = cls(
            attribute_en=strings(data["attribute_en"], "attribute_en"),
            attribute_zh=strings(data["attribute_zh"], "attribute_zh"),
            descriptive=strings(data["descriptive"], "descriptive"),
            # In the code's order, whatever the file's: iteration order is part of the sample.
            articles={a: articles[a] for a in ARTICLE_KINDS},
            colours={c: colours[c] for c in COLOURS_QUERIED},
            recipients=by_side("recipients"),
            recipients_zh=by_side("recipients_zh"),
            gender_adj=by_side("gender_adj"),
            gender_noun=by_side("gender_noun"),
            gender_zh=by_side("gender_zh", required=False),
            budget_forms=strings(data.get("budget_forms", ["plain"]), "budget_forms"),
            budget_forms_zh=tuple(data.get("budget_forms_zh") or ()),
        )
        templates._check()
        return templates

    def _check(self) -> None:
        if not self.budget_forms:
            raise ValueError("budget_forms must not be empty")
        for form in (*self.budget_forms, *self.budget_forms_zh):
            if form not in BUDGET_FORMS:
                raise ValueError(f"unknown budget form {form!r}; known: {list(BUDGET_FORMS)}")
        families = (
            ("attribute_en", self.attribute_en, _ATTRIBUTE_EN_FIELDS, {"colour", "article"}),
            ("attribute_zh", self.attribute_zh, _ATTRIBUTE_ZH_FIELDS, {"colour", "article"}),
            ("descriptive", self.descriptive, _DESCRIPTIVE_FIELDS, {"item"}),
        )
        for name, templates, allowed, needed in families:
            for template in templates:
                fields = _fields(template)
                if unknown := fields - allowed:
                    raise ValueError(f"{name}: {template!r} has unknown {sorted(unknown)}")
                if missing := needed - fields:
                    raise ValueError(f"{name}: {template!r} lacks {sorted(missing)}")
                if name != "descriptive" and len(fields & {"budget", "budget_words"}) != 1:
                    raise ValueError(f"{name}: {template!r} must state one budget")
                if name == "descriptive" and not fields & _GENDER_FIELDS:
                    raise ValueError(f"{name}: {template!r} names nobody to grade gender by")
                if "{a}" in template and not re.search(r"\{a\}\{\w+\}", template):
                    raise ValueError(f"{name}: {template!r}: {{a}} must precede a placeholder")
        if "{gender}" in "".join(self.attribute_zh) and not self.gender_zh:
            raise ValueError("attribute_zh uses {gender} but gender_zh is empty")


# fmt: off
# Features a shopper names: (pattern in the product's text, words before the article, words
# after it, the article kinds it describes: Jewellery, Watch, Bag, Eyewear, Textile). Scoped
# because a word means something else elsewhere ("cotton" in a ring's care note).
FEATURES: tuple[tuple[str, str, str, str], ...] = (
    (r"pearls?", "", "with pearls", "J"), (r"crystals?", "", "with crystals", "JW"),
    (r"studs?", "stud", "", "J"), (r"hoops?", "hoop", "", "J"),
    (r"jhumk[ai]s?", "jhumka style", "", "J"), (r"kundan", "kundan", "", "J"),
    (r"enamel(?:led)?", "", "with enamel work", "J"), (r"beads?|beaded", "beaded", "", "J"),
    (r"hearts?", "", "with a heart", "J"), (r"butterfl(?:y|ies)", "", "with a butterfly", "J"),
    (r"flowers?|floral", "flower", "", "JBT"), (r"leaf|leaves", "", "with a leaf design", "J"),
    (r"feathers?", "", "with feathers", "J"), (r"peacock", "peacock", "", "JT"),
    (r"tassels?|tasselled", "", "with tassels", "JT"), (r"oxidi[sz]ed", "oxidised", "", "J"),
    (r"onyx", "", "with onyx", "J"), (r"amethyst", "", "with amethyst", "J"),
    (r"cz|cubic zirconia|zircons?", "", "with cz stones", "J"), (r"charms", "", "with charms", "J"),
    (r"infinity", "infinity", "", "J"), (r"owl", "owl", "", "J"),
    (r"evil eye", "evil eye", "", "J"), (r"initial|alphabet", "initial", "", "J"),
    (r"chunky", "chunky", "", "J"), (r"braided", "braided", "", "JB"),
    (r"studded", "studded", "", "JB"), (r"chronograph", "chronograph", "", "W"),
    (r"digital", "digital", "", "W"), (r"leather strap", "", "with a leather strap", "W"),
    (r"metal strap|bracelet strap|chain strap", "", "with a metal strap", "W"),
    (r"rectangular dial|square dial", "", "with a square dial", "W"),
    (r"day and date|day-date|day date", "", "that shows day and date", "W"),
    (r"skeleton", "skeleton", "", "W"), (r"aviators?", "aviator", "", "E"),
    (r"polari[sz]ed", "polarised", "", "E"), (r"oversized", "oversized", "", "EB"),
    (r"wayfarers?", "wayfarer", "", "E"), (r"cat ?eye", "cat eye", "", "E"),
    (r"tote", "tote style", "", "B"), (r"sling", "sling", "", "B"),
    (r"quilted", "quilted", "", "B"), (r"genuine leather|real leather", "real leather", "", "B"),
    (r"suede", "suede", "", "B"), (r"nylon", "nylon", "", "B"), (r"canvas", "canvas", "", "B"),
    (r"laptop", "", "that fits a laptop", "B"), (r"passport", "passport", "", "B"),
    (r"card slots?", "", "with card slots", "B"), (r"coin pocket", "", "with a coin pocket", "B"),
    (r"reversible", "reversible", "", "B"), (r"buckle", "", "with a big buckle", "B"),
    (r"embroider(?:ed|y)", "embroidered", "", "BT"), (r"sequins?|sequinned", "", "with sequins",
    "BT"), (r"printed", "printed", "", "BT"), (r"striped|stripes", "striped", "", "BT"),
    (r"checked|checks", "checked", "", "BT"), (r"woven", "woven", "", "T"),
    (r"silk", "silk", "", "T"), (r"chiffon", "chiffon", "", "T"),
    (r"georgette", "georgette", "", "T"), (r"cotton", "cotton", "", "T"),
    (r"linen", "linen", "", "T"), (r"zari", "", "with zari work", "T"),
    (r"border", "", "with a nice border", "T"),
)
# fmt: on
_FEATURE_RES = tuple(re.compile(rf"\b(?:{f[0]})\b", re.IGNORECASE) for f in FEATURES)
MAX_FEATURE_GROUP = 10  # more products than this share the feature: no longer "known item"


@dataclass(frozen=True)
class DevQuery:
    qid: str
    text: str
    family: str
    lang: str
    qrels: dict[str, int]
    # What the query states, in catalog terms (article, colour, gender, budget or feature), so
    # results can be broken down and the judgements checked.
    facts: dict[str, str | int]


def attribute_grade(
    product: Product, article: str, colour: str, side: str | None, budget: float
) -> int:
    """``side`` is None when the query names nobody: then gender cannot be missed."""
    if product.article != article or colour not in product.tones:
        return 0
    misses = (product.price > budget) + (side is not None and product.gender not in GENDERS[side])
    return {0: 2, 1: 1}.get(misses, 0)


def round_budget(price: float) -> list[int]:
    """Round candidates near ``price``, nearest first, at the grain shoppers speak in."""
    step = 100 if price < 1000 else 500 if price < 10_000 else 1000
    down = max(step, int(price // step) * step)
    up = down + step
    return [up, down] if up - price < price - down else [down, up]


_ONES = (
    "", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ZH_DIGITS = "零一二三四五六七八九"


def _english(n: int) -> str:
    """1..99 in words."""
    return _ONES[n] if n < 20 else " ".join(w for w in (_TENS[n // 10], _ONES[n % 10]) if w)


def budget_words(budget: int) -> str | None:
    """As spoken: 700 "seven hundred", 1500 "fifteen hundred", 12000 "twelve thousand"."""
    if budget % 100 or not 0 < budget < 100_000:
        return None
    if budget % 1000 == 0:
        return f"{_english(budget // 1000)} thousand"
    return f"{_english(budget // 100)} hundred" if budget < 10_000 else None


def _zh_words(budget: int) -> str | None:
    """As spoken in Chinese: 800 八百, 2000 两千, 1500 一千五."""
    if budget % 100 or not 0 < budget < 10_000:
        return None
    thousands, hundreds = divmod(budget // 100, 10)
    if not thousands:
        return ("两" if hundreds == 2 else _ZH_DIGITS[hundreds]) + "百"
    text = ("两" if thousands == 2 else _ZH_DIGITS[thousands]) + "千"
    return text + (_ZH_DIGITS[hundreds] if hundreds else "")


def budget_options(budget: int, forms: Sequence[str], floor: float = 0) -> list[tuple[str, int]]:
    """(text, the ceiling it states) for each form in ``forms`` that can write ``budget``.

    ``nines`` (1,499 for 1,500) states one less, and only when that keeps ``floor``, the
    cheapest matching product, within the budget.
    """
    options: list[tuple[str, int]] = []
    for form in forms:
        if form == "plain":
            options.append((str(budget), budget))
        elif form == "comma" and budget >= 1000:
            options.append((f"{budget:,}", budget))
        elif form == "k" and budget >= 1000 and budget % 100 == 0:
            options.append((f"{budget / 1000:g}k", budget))
        elif form == "nines" and budget - 1 >= floor:
            options.append((f"{budget - 1:,}", budget - 1))
        elif form == "qian" and budget % 1000 == 0:
            options.append((f"{budget // 1000}千", budget))
        elif form == "zh_words" and (words := _zh_words(budget)):
            options.append((words, budget))
    return options


def format_budget(
    budget: int,
    rng: random.Random,
    forms: Sequence[str] = ("plain", "comma", "k"),
    floor: float = 0,
) -> tuple[str, int]:
    """The budget as written, drawn among the forms that fit, and the ceiling it states."""
    options = budget_options(budget, forms, floor)
    return rng.choice(options) if options else (str(budget), budget)


def _a(word: str, plural: bool) -> str:
    if plural:
        return ""
    return "an " if word[0] in "aeiou" else "a "


def _a_for(template: str, values: dict[str, str], plural: bool) -> str:
    """``{a}`` agreeing with the placeholder right after it ("" before a plural article)."""
    found = re.search(r"\{a\}\{(\w+)\}", template)
    return _a(values[found.group(1)], plural) if found else ""


def _round_robin(groups: dict[str, list], rng: random.Random, count: int) -> list:
    """Up to ``count`` items drawn one article at a time, in a seeded order."""
    pools = {k: rng.sample(v, len(v)) for k, v in sorted(groups.items())}
    order = sorted(pools)
    rng.shuffle(order)
    picked: list = []
    while len(picked) < count and any(pools.values()):
        for key in order:
            if pools[key] and len(picked) < count:
                picked.append(pools[key].pop())
    return picked


def attribute_queries(
    products: Sequence[Product],
    rng: random.Random,
    count: int = 150,
    zh_share: float = 0.22,
    templates: Templates | None = None,
) -> list[DevQuery]:
    templates = templates or Templates.load(DEFAULT_TEMPLATES)
    combos: dict[tuple[str, str, str], list[Product]] = defaultdict(list)
    for p in products:
        if p.article not in ARTICLE_KINDS:
            continue
        for colour in set(p.tones) & templates.colours.keys():
            for side, genders in GENDERS.items():
                if p.gender in genders:
                    combos[(p.article, colour, side)].append(p)
    by_article: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for key, matching in combos.items():
        if len(matching) >= 3:
            by_article[key[0]].append(key)
    of_article: dict[str, list[Product]] = defaultdict(list)
    for p in products:
        of_article[p.article].append(p)
    queries: list[DevQuery] = []
    for article, colour, side in _round_robin(by_article, rng, count):
        prices = sorted(p.price for p in combos[(article, colour, side)])
        target = prices[int(rng.uniform(0.3, 0.7) * (len(prices) - 1))]
        budget = next((b for b in round_budget(target) if prices[0] <= b < prices[-1]), None)
        if budget is None:  # every candidate keeps all or nothing: the budget would not cut
            continue
        zh = (
            bool(templates.colours[colour][1] and templates.attribute_zh)
            and rng.random() < zh_share
        )
        text, names_gender, ceiling = _render_attribute(
            article, colour, side, budget, zh, rng, templates, prices[0]
        )
        stated = side if names_gender else None
        grades = {
            p.id: g
            for p in of_article[article]
            if (g := attribute_grade(p, article, colour, stated, ceiling))
        }
        qid = f"attr-{len(queries) + 1:03d}"
        facts: dict[str, str | int] = {"article": article, "colour": colour, "budget": ceiling}
        if stated:
            facts["gender"] = stated
        queries.append(DevQuery(qid, text, "attribute", "zh" if zh else "en", grades, facts))
    return queries


def _render_attribute(
    article: str,
    colour: str,
    side: str,
    budget: int,
    zh: bool,
    rng: random.Random,
    templates: Templates,
    floor: float = 0,
) -> tuple[str, bool, int]:
    """The query text, whether it says who the gift is for, and the budget ceiling it states.

    The draws come in a fixed order (word, colour, template, recipient, gender words, budget
    form), so a templates file with the same words gives the same queries.
    """
    words, article_zh = templates.articles[article]
    colour_words, colour_zh = templates.colours[colour]
    if zh:
        template = rng.choice(templates.attribute_zh)
        fields = _fields(template)
        values = {
            "recipient": rng.choice(templates.recipients_zh[side]),
            "colour": colour_zh,
            "article": article_zh,
        }
        if "gender" in fields:
            values["gender"] = rng.choice(templates.gender_zh[side])
        values["budget"], ceiling = format_budget(budget, rng, templates.budget_forms_zh, floor)
        return template.format(**values), bool(fields & _GENDER_FIELDS), ceiling
    word = rng.choice(words)
    colour_word = rng.choice(colour_words)
    template = rng.choice(templates.attribute_en)
    fields = _fields(template)
    values = {
        "colour": colour_word,
        "article": word.text,
        "recipient": rng.choice(templates.recipients[side]),
        "gender_adj": rng.choice(templates.gender_adj[side]),
        "gender_noun": rng.choice(templates.gender_noun[side]),
    }
    values["budget"], ceiling = format_budget(budget, rng, templates.budget_forms, floor)
    if "budget_words" in fields:
        values["budget_words"] = budget_words(budget) or str(budget)
        ceiling = budget
    values["a"] = _a_for(template, values, word.plural)
    return template.format(**values), bool(fields & _GENDER_FIELDS), ceiling


def _features(product: Product) -> list[int]:
    kind = ARTICLE_KINDS[product.article]
    text = product.document()
    return [i for i, f in enumerate(FEATURES) if kind in f[3] and _FEATURE_RES[i].search(text)]


def descriptive_queries(
    products: Sequence[Product],
    rng: random.Random,
    count: int = 100,
    templates: Templates | None = None,
) -> list[DevQuery]:
    templates = templates or Templates.load(DEFAULT_TEMPLATES)
    candidates = [
        p
        for p in products
        if p.article in ARTICLE_KINDS
        and p.colour in COLOURS_QUERIED
        and p.gender in ("Women", "Men", "Unisex")
    ]
    features = {p.id: _features(p) for p in products if p.article in ARTICLE_KINDS}
    by_article: dict[str, list[Product]] = defaultdict(list)
    for p in candidates:
        if features[p.id]:
            by_article[p.article].append(p)
    # Products per (article, colour or metal tone, feature); gender is checked per query.
    groups: dict[tuple[str, str, int], list[Product]] = defaultdict(list)
    for p in products:
        for f in features.get(p.id, ()):
            for tone in p.tones:
                groups[(p.article, tone, f)].append(p)
    queries: list[DevQuery] = []
    seen: set[tuple[str, str, int, str]] = set()
    for target in _round_robin(by_article, rng, len(candidates)):
        if len(queries) == count:
            break
        side = next((s for s, g in GENDERS.items() if target.gender == g[0]), None)
        side = side or rng.choice(sorted(GENDERS))
        shared = {
            f: [p for p in groups[(target.article, target.colour, f)] if p.gender in GENDERS[side]]
            for f in features[target.id]
        }
        best = min(shared.values(), key=len)
        options = [f for f, members in shared.items() if len(members) == len(best)]
        feature = rng.choice(options)
        key = (target.article, target.colour, feature, side)
        if len(best) > MAX_FEATURE_GROUP or key in seen:
            continue
        seen.add(key)
        grades = {p.id: 1 for p in shared[feature]} | {target.id: 2}
        qid = f"desc-{len(queries) + 1:03d}"
        text = _render_descriptive(target, feature, side, rng, templates)
        facts = {
            "article": target.article,
            "colour": target.colour,
            "gender": side,
            "feature": FEATURES[feature][0],
            "target": target.id,
        }
        queries.append(DevQuery(qid, text, "descriptive", "en", grades, facts))
    return queries


def _render_descriptive(
    product: Product, feature: int, side: str, rng: random.Random, templates: Templates
) -> str:
    word = rng.choice(templates.articles[product.article][0])
    _, before, after, _ = FEATURES[feature]
    colour = rng.choice(templates.colours[product.colour][0])
    item = " ".join(w for w in (colour, before, word.text, after) if w)
    template = rng.choice(templates.descriptive)
    fields = _fields(template)
    values = {"item": item, "recipient": rng.choice(templates.recipients[side])}
    gender_words = {"gender_adj": templates.gender_adj, "gender_noun": templates.gender_noun}
    for key, words in gender_words.items():
        if key in fields:
            values[key] = rng.choice(words[side])
    values["a"] = _a_for(template, values, word.plural)
    return template.format(**values)


def generate(
    products: Sequence[Product], seed: int = 7, templates: Templates | None = None
) -> list[DevQuery]:
    """``templates``: the phrasing; the dev set's (``DEFAULT_TEMPLATES``) when None."""
    templates = templates or Templates.load(DEFAULT_TEMPLATES)
    # Separate generators: changing one family's size leaves the other's queries unchanged.
    return attribute_queries(
        products, random.Random(f"{seed}:attribute"), templates=templates
    ) + descriptive_queries(products, random.Random(f"{seed}:descriptive"), templates=templates)


def write(queries: Sequence[DevQuery], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (
        open(out / "queries.jsonl", "w", encoding="utf-8") as q,
        open(out / "qrels.jsonl", "w", encoding="utf-8") as r,
    ):
        for query in queries:
            row = {
                "qid": query.qid,
                "text": query.text,
                "family": query.family,
                "lang": query.lang,
                "facts": query.facts,
            }
            q.write(json.dumps(row, ensure_ascii=False) + "\n")
            for pid, rel in sorted(query.qrels.items(), key=lambda kv: (-kv[1], kv[0])):
                r.write(json.dumps({"qid": query.qid, "id": pid, "rel": rel}) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", type=Path, default=None, help="default: the bundled one")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--templates",
        type=Path,
        default=DEFAULT_TEMPLATES,
        help="the phrasing (YAML); default: eval/dev/templates.yaml of this checkout",
    )
    args = parser.parse_args(argv)
    templates = Templates.load(args.templates)
    queries = generate(load_catalog(args.catalog).products, args.seed, templates)
    write(queries, args.out)
    families = defaultdict(int)
    for query in queries:
        families[query.family] += 1
    print(f"{len(queries)} queries ({dict(families)}) written to {args.out}")


if __name__ == "__main__":
    main()
