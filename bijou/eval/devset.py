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
(some products above it and some at or below). Each query is rendered by one of 16 English
templates in shopper voice, with varied article words (necklace/chain, sunglasses/shades,
saree/sari ...), recipients (my wife, my dad ...) or gender words (ladies, gents ...), and
budgets written as 1500, 1,500 or 1.5k; or by one of 5 Chinese templates. Grades: 2 when a
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

Run: ``python -m bijou.eval.devset --catalog PATH --out DIR --seed 7``; writes
``queries.jsonl`` (``{"qid", "text", "family", "lang", "facts"}``, facts being what the query
states in catalog terms) and ``qrels.jsonl``
(``{"qid", "id", "rel"}``).
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bijou.catalog.loader import load_catalog
from bijou.catalog.schema import Product

# Which catalog genders a shopper buying for women or men accepts.
GENDERS = {"women": ("Women", "Unisex"), "men": ("Men", "Unisex")}


@dataclass(frozen=True)
class Word:
    text: str
    plural: bool = False


# fmt: off
# article -> (English words, Chinese word, kind for FEATURES)
ARTICLES: dict[str, tuple[tuple[Word, ...], str, str]] = {
    "Earrings": ((Word("earrings", True), Word("ear rings", True)), "耳环", "J"),
    "Necklace and Chains": ((Word("necklace"), Word("chain")), "项链", "J"),
    "Pendant": ((Word("pendant"),), "吊坠", "J"),
    "Ring": ((Word("ring"),), "戒指", "J"),
    "Bangle": ((Word("bangle"), Word("bangles", True)), "手镯", "J"),
    "Bracelet": ((Word("bracelet"),), "手链", "J"),
    "Jewellery Set": ((Word("jewellery set"), Word("jewelry set")), "首饰套装", "J"),
    "Watches": ((Word("watch"), Word("wrist watch")), "手表", "W"),
    "Handbags": ((Word("handbag"), Word("hand bag")), "手提包", "B"),
    "Clutches": ((Word("clutch"), Word("clutch bag")), "手拿包", "B"),
    "Wallets": ((Word("wallet"),), "钱包", "B"),
    "Sunglasses": ((Word("sunglasses", True), Word("shades", True)), "太阳镜", "E"),
    "Sarees": ((Word("saree"), Word("sari")), "纱丽", "T"),
    "Scarves": ((Word("scarf"),), "围巾", "T"),
    "Belts": ((Word("belt"),), "皮带", "B"),
    "Backpacks": ((Word("backpack"),), "双肩包", "B"),
    "Cufflinks": ((Word("cufflinks", True),), "袖扣", "J"),
}

# catalog colour -> (English words, Chinese word or "" when shoppers have no common one)
COLOURS: dict[str, tuple[tuple[str, ...], str]] = {
    "Black": (("black",), "黑色"), "White": (("white",), "白色"),
    "Silver": (("silver",), "银色"), "Gold": (("gold", "golden"), "金色"),
    "Blue": (("blue",), "蓝色"), "Navy Blue": (("navy", "navy blue"), "藏青色"),
    "Red": (("red",), "红色"), "Maroon": (("maroon",), "酒红色"),
    "Pink": (("pink",), "粉色"), "Purple": (("purple",), "紫色"),
    "Green": (("green",), "绿色"), "Olive": (("olive", "olive green"), "橄榄绿"),
    "Brown": (("brown",), "棕色"), "Tan": (("tan",), ""),
    "Grey": (("grey", "gray"), "灰色"), "Charcoal": (("charcoal",), ""),
    "Steel": (("steel", "stainless steel"), "钢色"), "Beige": (("beige",), "米色"),
    "Cream": (("cream",), "奶油色"), "Off White": (("off-white",), "米白色"),
    "Yellow": (("yellow",), "黄色"), "Mustard": (("mustard",), ""),
    "Orange": (("orange",), "橙色"), "Peach": (("peach",), ""),
    "Multi": (("multicolour", "multi-coloured", "colourful"), "彩色"),
    "Teal": (("teal",), ""), "Turquoise Blue": (("turquoise",), "绿松石色"),
    "Lavender": (("lavender",), ""), "Magenta": (("magenta",), ""),
    "Copper": (("copper",), "铜色"), "Bronze": (("bronze",), "古铜色"),
}

RECIPIENTS = {
    "women": ("wife", "girlfriend", "mom", "mother", "sister", "fiancee", "aunt"),
    "men": ("husband", "boyfriend", "dad", "father", "brother", "fiance", "uncle"),
}
RECIPIENTS_ZH = {
    "women": ("老婆", "女朋友", "妈妈", "姐姐", "妹妹"),
    "men": ("老公", "男朋友", "爸爸", "哥哥", "弟弟"),
}
GENDER_ADJ = {"women": ("women's", "ladies", "womens"), "men": ("men's", "gents", "mens")}
GENDER_NOUN = {"women": ("women", "ladies", "her"), "men": ("men", "gents", "him")}

ATTRIBUTE_TEMPLATES = (
    "{colour} {article} for my {recipient} under {budget} rupees",
    "looking for {a}{colour} {article}, budget {budget}",
    "gift for my {recipient}: {article} in {colour}, max Rs {budget}",
    "{gender_adj} {colour} {article} below ₹{budget}",
    "need {a}{colour} {article} for my {recipient}, nothing above {budget}",
    "my {recipient}'s birthday is coming up - {colour} {article} within {budget} rs?",
    "{colour} {article} for {gender_noun} under {budget}",
    "what {colour} {article} do you have for {gender_noun} under Rs. {budget}?",
    "show me {colour} {article} for my {recipient}, up to {budget}",
    "anniversary gift for my {recipient}, {a}{colour} {article} less than {budget} inr",
    "{article} for my {recipient} in {colour} - can't spend more than {budget}",
    "something {colour}... {a}{article} for my {recipient}, budget is {budget} rupees",
    "i want to surprise my {recipient} with {a}{colour} {article}, under {budget}",
    "searching for {gender_adj} {article}, {colour} colour, price below {budget}",
    "{budget} budget, {colour} {article} for my {recipient}",
    "any nice {colour} {article} for {gender_noun}? my max is {budget}",
)
ATTRIBUTE_TEMPLATES_ZH = (
    "给{recipient}买{colour}{article}，{budget}元以内",
    "想给{recipient}买个{colour}的{article}，预算{budget}",
    "{colour}{article}，送{recipient}的，不超过{budget}元",
    "有没有{budget}元以下的{colour}{article}？想送{recipient}",
    "{recipient}生日快到了，想买{colour}{article}，{budget}块以内",
)
DESCRIPTIVE_TEMPLATES = (
    "{item} for my {recipient}",
    "looking for {a}{item}, it's for my {recipient}",
    "my {recipient} would love {a}{item}",
    "gift idea: {item} for my {recipient}",
    "do you have {a}{item}? for my {recipient}",
    "show me {item} for my {recipient}",
    "want to buy {a}{item} for my {recipient}'s birthday",
    "i saw {a}{item} somewhere, want one for my {recipient}",
    "{recipient} gift - {item}",
    "need {a}{item} to give my {recipient}",
)

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


def format_budget(budget: int, rng: random.Random) -> str:
    forms = [str(budget)]
    if budget >= 1000:
        forms.append(f"{budget:,}")
        if budget % 100 == 0:
            forms.append(f"{budget / 1000:g}k")
    return rng.choice(forms)


def _a(word: str, plural: bool) -> str:
    if plural:
        return ""
    return "an " if word[0] in "aeiou" else "a "


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
    products: Sequence[Product], rng: random.Random, count: int = 150, zh_share: float = 0.22
) -> list[DevQuery]:
    combos: dict[tuple[str, str, str], list[Product]] = defaultdict(list)
    for p in products:
        if p.article not in ARTICLES:
            continue
        for colour in set(p.tones) & COLOURS.keys():
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
        zh = bool(COLOURS[colour][1]) and rng.random() < zh_share
        text, names_gender = _render_attribute(article, colour, side, budget, zh, rng)
        stated = side if names_gender else None
        grades = {
            p.id: g
            for p in of_article[article]
            if (g := attribute_grade(p, article, colour, stated, budget))
        }
        qid = f"attr-{len(queries) + 1:03d}"
        facts: dict[str, str | int] = {"article": article, "colour": colour, "budget": budget}
        if stated:
            facts["gender"] = stated
        queries.append(DevQuery(qid, text, "attribute", "zh" if zh else "en", grades, facts))
    return queries


def _render_attribute(
    article: str, colour: str, side: str, budget: int, zh: bool, rng: random.Random
) -> tuple[str, bool]:
    """The query text, and whether it says who the gift is for."""
    words, article_zh, _ = ARTICLES[article]
    colour_words, colour_zh = COLOURS[colour]
    if zh:
        text = rng.choice(ATTRIBUTE_TEMPLATES_ZH).format(
            recipient=rng.choice(RECIPIENTS_ZH[side]),
            colour=colour_zh,
            article=article_zh,
            budget=budget,
        )
        return text, True
    word = rng.choice(words)
    colour_word = rng.choice(colour_words)
    template = rng.choice(ATTRIBUTE_TEMPLATES)
    # "a {colour} {article}" and "a {article}" need the article agreeing with the next word.
    after_a = colour_word if "{a}{colour}" in template else word.text
    text = template.format(
        a=_a(after_a, word.plural),
        colour=colour_word,
        article=word.text,
        recipient=rng.choice(RECIPIENTS[side]),
        gender_adj=rng.choice(GENDER_ADJ[side]),
        gender_noun=rng.choice(GENDER_NOUN[side]),
        budget=format_budget(budget, rng),
    )
    return text, any(f in template for f in ("{recipient}", "{gender_adj}", "{gender_noun}"))


def _features(product: Product) -> list[int]:
    kind = ARTICLES[product.article][2]
    text = product.document()
    return [i for i, f in enumerate(FEATURES) if kind in f[3] and _FEATURE_RES[i].search(text)]


def descriptive_queries(
    products: Sequence[Product], rng: random.Random, count: int = 100
) -> list[DevQuery]:
    candidates = [
        p
        for p in products
        if p.article in ARTICLES and p.colour in COLOURS and p.gender in ("Women", "Men", "Unisex")
    ]
    features = {p.id: _features(p) for p in products if p.article in ARTICLES}
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
        text = _render_descriptive(target, feature, side, rng)
        facts = {
            "article": target.article,
            "colour": target.colour,
            "gender": side,
            "feature": FEATURES[feature][0],
            "target": target.id,
        }
        queries.append(DevQuery(qid, text, "descriptive", "en", grades, facts))
    return queries


def _render_descriptive(product: Product, feature: int, side: str, rng: random.Random) -> str:
    word = rng.choice(ARTICLES[product.article][0])
    _, before, after, _ = FEATURES[feature]
    colour = rng.choice(COLOURS[product.colour][0])
    item = " ".join(w for w in (colour, before, word.text, after) if w)
    return rng.choice(DESCRIPTIVE_TEMPLATES).format(
        item=item, a=_a(item, word.plural), recipient=rng.choice(RECIPIENTS[side])
    )


def generate(products: Sequence[Product], seed: int = 7) -> list[DevQuery]:
    # Separate generators: changing one family's size leaves the other's queries unchanged.
    return attribute_queries(products, random.Random(f"{seed}:attribute")) + descriptive_queries(
        products, random.Random(f"{seed}:descriptive")
    )


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
    args = parser.parse_args(argv)
    queries = generate(load_catalog(args.catalog).products, args.seed)
    write(queries, args.out)
    families = defaultdict(int)
    for query in queries:
        families[query.family] += 1
    print(f"{len(queries)} queries ({dict(families)}) written to {args.out}")


if __name__ == "__main__":
    main()
