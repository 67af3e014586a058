"""Exact-expectation tests for the deterministic shopper-query parser."""

from __future__ import annotations

import pytest

from bijou.retrieval.lexicon import load_lexicon
from bijou.retrieval.query import ParsedQuery, QueryFilters, QueryParser

F = QueryFilters
STRICT = QueryParser(strict=True)  # a parser bug fails the test, not silently
W, M = ("Women", "Unisex"), ("Men", "Unisex")
JEWELLERY = load_lexicon().jewellery
BAGS = (
    "Handbags",
    "Clutches",
    "Backpacks",
    "Duffel Bag",
    "Laptop Bag",
    "Messenger Bag",
    "Rucksacks",
    "Trolley Bag",
    "Waist Pouch",
    "Mobile Pouch",
)
BRANDS = ("Titan", "Fastrack", "Guess", "Police", "Fossil", "Peter England", "Lino Perros")

ENGLISH = [
    # (query, filters, remainder)
    (
        "silver earrings for my wife under 1,000 rupees",
        F(articles=("Earrings",), colours=("Silver",), genders=W, max_price=1000),
        "",
    ),
    ("below Rs 700", F(max_price=700), ""),
    ("below Rs. 700 studs", F(articles=("Earrings",), max_price=700), ""),
    ("between 500 and 900", F(min_price=500, max_price=900), ""),
    ("between 900 and 500", F(min_price=500, max_price=900), ""),
    ("necklace 500-900", F(articles=("Necklace and Chains",), min_price=500, max_price=900), ""),
    ("rings from 500 to 900", F(articles=("Ring",), min_price=500, max_price=900), ""),
    ("Rs 500–900 jhumkas", F(articles=("Earrings",), min_price=500, max_price=900), ""),
    ("pendant 500 to 900 rupees", F(articles=("Pendant",), min_price=500, max_price=900), ""),
    ("bangles under ₹2,500", F(articles=("Bangle",), max_price=2500), ""),
    ("watch less than 1.5k", F(articles=("Watches",), max_price=1500), ""),
    ("a bracelet up to 2k please", F(articles=("Bracelet",), max_price=2000), ""),
    ("upto 700 inr hoops", F(articles=("Earrings",), max_price=700), ""),
    ("earrings within 2 thousand", F(articles=("Earrings",), max_price=2000), ""),
    ("no more than 800 for a ring", F(articles=("Ring",), max_price=800), ""),
    ("not more than INR 1200", F(max_price=1200), ""),
    ("cheaper than 999 bucks", F(max_price=999), ""),
    ("clutch at most 1500", F(articles=("Clutches",), max_price=1500), ""),
    ("my budget is 3000 for a saree", F(articles=("Sarees",), max_price=3000), ""),
    ("budget 1500", F(max_price=1500), ""),
    ("wallet <500", F(articles=("Wallets",), max_price=500), ""),
    (
        "perfume over 2000",
        F(articles=("Perfume and Body Mist",), min_price=2000),
        "",
    ),
    ("watches above Rs 5,000 for men", F(articles=("Watches",), genders=M, min_price=5000), ""),
    ("at least 700 rupees", F(min_price=700), ""),
    ("rings starting from 400", F(articles=("Ring",), min_price=400), ""),
    ("earrings 500 and above", F(articles=("Earrings",), min_price=500), ""),
    ("over 500 but under 2000", F(min_price=500, max_price=2000), "but"),
    ("around 1000 pendant", F(articles=("Pendant",), min_price=800, max_price=1200), ""),
    ("about Rs 2000", F(min_price=1600, max_price=2400), ""),
    ("700 bucks watch", F(articles=("Watches",), max_price=700), ""),
    # A number with a scale word is money even without a currency ("2k", "1 lakh").
    ("1 lakh diamond necklace", F(articles=("Necklace and Chains",), max_price=100000), "diamond"),
    ("kuch aur suggest karo, 2k", F(max_price=2000), ""),
    ("3-4k mein watch", F(articles=("Watches",), min_price=3000, max_price=4000), ""),
    # Numbers without a price cue or currency are not prices.
    ("3 piece set", F(), "piece set"),
    ("2 rings for my sister", F(articles=("Ring",), genders=W), ""),
    ("size 6-8 rings", F(articles=("Ring",)), "size"),
    ("18k gold ring", F(articles=("Ring",), colours=("Gold",)), ""),
    (
        "100 ml perfume under 3000",
        F(articles=("Perfume and Body Mist",), max_price=3000),
        "ml",
    ),
    # Categories.
    (
        "elegant floral gold necklace for a wedding",
        F(articles=("Necklace and Chains",), colours=("Gold",), usages=("Ethnic", "Party")),
        "elegant floral",
    ),
    ("show me some jewellery for my mom", F(articles=JEWELLERY, genders=W), ""),
    ("jewelry set for bridal", F(articles=("Jewellery Set",), usages=("Ethnic", "Party")), ""),
    ("earring and matching ring", F(articles=("Earrings", "Ring")), "matching"),
    ("a bag for travel", F(articles=BAGS, usages=("Travel",)), ""),
    ("laptop bag for work", F(articles=("Laptop Bag",), usages=("Formal", "Smart Casual")), ""),
    (
        "black backpack for the gym",
        F(articles=("Backpacks", "Rucksacks"), colours=("Black",), usages=("Sports",)),
        "",
    ),
    ("shades for my boyfriend", F(articles=("Sunglasses",), genders=M), ""),
    (
        "cufflinks for my husband's interview",
        F(
            articles=("Cufflinks", "Ties and Cufflinks"),
            genders=M,
            usages=("Formal", "Smart Casual"),
        ),
        "",
    ),
    ("scarves and stoles", F(articles=("Scarves",)), ""),
    ("I want a wristwatch and a belt", F(articles=("Watches", "Belts")), ""),
    ("tote or purse for everyday", F(articles=("Handbags",), usages=("Casual",)), ""),
    (
        "party dress for my daughter",
        F(articles=("Dresses",), genders=("Girls", "Women", "Unisex"), usages=("Party",)),
        "",
    ),
    ("deodorant for my son", F(articles=("Deodorant",), genders=("Boys", "Men", "Unisex")), ""),
    ("unisex sunglasses", F(articles=("Sunglasses",), genders=("Unisex",)), ""),
    # Colours.
    (
        "golden jhumka for diwali",
        F(articles=("Earrings",), colours=("Gold",), usages=("Ethnic", "Party")),
        "",
    ),
    ("gold-plated bangles", F(articles=("Bangle",), colours=("Gold",)), ""),
    (
        "sterling silver pendant for her",
        F(articles=("Pendant",), colours=("Silver",), genders=W),
        "",
    ),
    (
        "rose gold watch for him",
        F(articles=("Watches",), colours=("Rose", "Gold", "Copper"), genders=M),
        "",
    ),
    ("stainless steel bracelet", F(articles=("Bracelet",), colours=("Steel",)), ""),
    ("navy handbag", F(articles=("Handbags",), colours=("Navy Blue",)), ""),
    ("gray multicolor scarf", F(articles=("Scarves",), colours=("Grey", "Multi")), ""),
    (
        "wine coloured clutch for a cocktail",
        F(articles=("Clutches",), colours=("Burgundy", "Maroon"), usages=("Party",)),
        "",
    ),
    (
        "off-white saree for a festival",
        F(articles=("Sarees",), colours=("Off White",), usages=("Ethnic", "Party")),
        "",
    ),
    # Negation.
    ("earrings, no gold", F(articles=("Earrings",), exclude_colours=("Gold",)), ""),
    (
        "necklace not gold or silver",
        F(articles=("Necklace and Chains",), exclude_colours=("Gold", "Silver")),
        "",
    ),
    ("anything but black sunglasses", F(articles=("Sunglasses",), exclude_colours=("Black",)), ""),
    (
        "silver ring without gold plating",
        F(articles=("Ring",), colours=("Silver",), exclude_colours=("Gold",)),
        "plating",
    ),
    (
        "minimal studs for office",
        F(articles=("Earrings",), usages=("Formal", "Smart Casual")),
        "minimal",
    ),
    ("smart casual watch", F(articles=("Watches",), usages=("Smart Casual",)), ""),
    # Budget idioms that say "more than" but mean a ceiling.
    ("I can't spend more than 1500 on earrings", F(articles=("Earrings",), max_price=1500), ""),
    ("a wallet, nothing above 3k", F(articles=("Wallets",), max_price=3000), ""),
    ("my max is 900 for a bangle", F(articles=("Bangle",), max_price=900), ""),
    ("pendant for my aunt, limit 2500", F(articles=("Pendant",), genders=W, max_price=2500), ""),
    ("watch for my uncle", F(articles=("Watches",), genders=M), ""),
    ("a necklace for the bride", F(articles=("Necklace and Chains",), genders=W), ""),
    ("cufflinks for my fiancé", F(articles=("Cufflinks", "Ties and Cufflinks"), genders=M), ""),
]

CHINESE = [
    (
        "女士银色耳环，1000卢比以内",
        F(articles=("Earrings",), colours=("Silver",), genders=W, max_price=1000),
        "",
    ),
    (
        "我想给老婆买一条金项链",
        F(articles=("Necklace and Chains",), colours=("Gold",), genders=W),
        "",
    ),
    (
        "不要金色的项链，两千以内",
        F(articles=("Necklace and Chains",), exclude_colours=("Gold",), max_price=2000),
        "",
    ),
    ("非金色的戒指", F(articles=("Ring",), exclude_colours=("Gold",)), ""),
    ("男士手表 三千五以内", F(articles=("Watches",), genders=M, max_price=3500), ""),
    ("五百以下的耳钉", F(articles=("Earrings",), max_price=500), ""),
    ("1千以下的手链", F(articles=("Bracelet",), max_price=1000), ""),
    ("2万以内的腕表", F(articles=("Watches",), max_price=20000), ""),
    ("500到900的手镯", F(articles=("Bangle",), min_price=500, max_price=900), ""),
    ("500至900", F(min_price=500, max_price=900), ""),
    ("价格在500和900之间的吊坠", F(articles=("Pendant",), min_price=500, max_price=900), ""),
    ("500-900之间", F(min_price=500, max_price=900), ""),
    ("1000左右的手链", F(articles=("Bracelet",), min_price=800, max_price=1200), ""),
    (
        "大约两千的香水",
        F(articles=("Perfume and Body Mist",), min_price=1600, max_price=2400),
        "",
    ),
    ("预算1500", F(max_price=1500), ""),
    ("不超过1000块的钱包", F(articles=("Wallets",), max_price=1000), ""),
    ("不低于800元的戒指", F(articles=("Ring",), min_price=800), ""),
    ("3000以上的手提包", F(articles=("Handbags",), min_price=3000), ""),
    ("一块手表", F(articles=("Watches",)), ""),
    ("玫瑰金的手链", F(articles=("Bracelet",), colours=("Rose", "Gold", "Copper")), ""),
    ("婚礼用的首饰", F(articles=JEWELLERY, usages=("Ethnic", "Party")), "用"),
    (
        "上班戴的黑色皮带",
        F(articles=("Belts",), colours=("Black",), usages=("Formal", "Smart Casual")),
        "",
    ),
    ("送妈妈的粉色丝巾", F(articles=("Scarves",), colours=("Pink",), genders=W), ""),
    ("精致的银手镯", F(articles=("Bangle",), colours=("Silver",)), "精致"),
    ("旅行用的双肩包", F(articles=("Backpacks", "Rucksacks"), usages=("Travel",)), "用"),
    ("派对穿的连衣裙", F(articles=("Dresses",), usages=("Party",)), "穿"),
    ("gold 耳坠 under 800", F(articles=("Earrings",), colours=("Gold",), max_price=800), ""),
    ("给奶奶买个玉手镯", F(articles=("Bangle",), genders=W), "玉"),
    ("送叔叔的黑色钱包", F(articles=("Wallets",), colours=("Black",), genders=M), ""),
]

CASES = ENGLISH + CHINESE


@pytest.mark.parametrize(("text", "filters", "remainder"), CASES, ids=[c[0] for c in CASES])
def test_filters_and_remainder(text: str, filters: QueryFilters, remainder: str) -> None:
    parsed = STRICT.parse(text)
    assert parsed.filters == filters
    assert parsed.remainder == remainder


def test_case_count() -> None:
    assert len({c[0] for c in CASES}) >= 60


@pytest.mark.parametrize(
    ("text", "search_text"),
    [
        ("silver earrings for my wife under 1,000 rupees", "silver earrings"),
        ("elegant floral gold necklace for a wedding", "gold necklace wedding elegant floral"),
        ("女士银色耳环，1000卢比以内", "silver earrings"),
        ("婚礼用的金项链", "wedding gold necklace"),
        ("earrings, no gold", "earrings"),
        ("below Rs 700", ""),
    ],
)
def test_search_text(text: str, search_text: str) -> None:
    assert STRICT.parse(text).search_text == search_text


@pytest.mark.parametrize(
    ("text", "brands", "exclude", "remainder"),
    [
        ("Titan watch for my dad", ("Titan",), (), ""),
        ("titan watch", ("Titan",), (), ""),
        ("fastrack or titan watches", ("Fastrack", "Titan"), (), ""),
        ("Guess handbag", ("Guess",), (), ""),
        ("guess what i want", (), (), "guess"),
        ("POLICE sunglasses not Titan", ("Police",), ("Titan",), ""),
        ("watch, no fastrack", (), ("Fastrack",), ""),
        ("peter england belt", ("Peter England",), (), ""),
        ("Lino Perros clutch not by Peter England", ("Lino Perros",), ("Peter England",), ""),
    ],
)
def test_brands(
    text: str, brands: tuple[str, ...], exclude: tuple[str, ...], remainder: str
) -> None:
    parsed = QueryParser(BRANDS, strict=True).parse(text)
    assert parsed.filters.brands == brands
    assert parsed.filters.exclude_brands == exclude
    assert parsed.remainder == remainder


@pytest.mark.parametrize(
    "text",
    ["", "   ", "😀💍✨", "x" * 20000, "价格" * 3000, "¥$%^&*()", "\x00\ud800", "１０００以内"],
    ids=["empty", "blank", "emoji", "long", "long-zh", "symbols", "control", "fullwidth"],
)
def test_never_raises(text: str) -> None:
    parsed = STRICT.parse(text)
    assert isinstance(parsed, ParsedQuery)
    assert parsed.raw == text
    assert not _has_cjk(parsed.search_text)


def test_non_string_input_is_empty() -> None:
    parsed = QueryParser(strict=True).parse(None)  # type: ignore[arg-type]
    assert parsed.filters.is_empty()
    assert (parsed.raw, parsed.remainder, parsed.search_text) == ("", "", "")


def test_is_empty() -> None:
    assert STRICT.parse("something sparkly").filters.is_empty()
    assert not STRICT.parse("under 500").filters.is_empty()
    assert STRICT.parse("something sparkly").remainder == "sparkly"


def test_fullwidth_digits_normalised() -> None:
    assert STRICT.parse("１０００以内").filters == F(max_price=1000)


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_a_tiny_uncued_approximate_amount_is_not_a_price() -> None:
    # "简约一点的" (a bit more minimalist) contains 约一, "about one".
    assert QueryParser(strict=True).parse("简约一点的").filters.max_price is None
    assert QueryParser(strict=True).parse("about 3 rings").filters.min_price is None
    assert QueryParser(strict=True).parse("around 2000").filters.max_price == 2400


def test_nothing_from_a_brand_excludes_it() -> None:
    filters = QueryParser(["Tanishq"], strict=True).parse("nothing from Tanishq").filters
    assert filters.exclude_brands == ("Tanishq",) and filters.brands == ()


@pytest.mark.parametrize(
    ("text", "articles", "colours", "max_price"),
    [
        ("silvr earings undr 1000", ("Earrings",), ("Silver",), 1000),
        ("a braclet", ("Bracelet",), (), None),
        ("neckless for my wife", ("Necklace and Chains",), (), None),
        ("sliver pendant", ("Pendant",), ("Silver",), None),
        ("jewlery below 500", load_lexicon().jewellery, (), 500),
    ],
)
def test_common_typos_are_read_as_the_term(
    text: str, articles: tuple[str, ...], colours: tuple[str, ...], max_price: float | None
) -> None:
    filters = QueryParser(strict=True).parse(text).filters
    assert (filters.articles, filters.colours, filters.max_price) == (articles, colours, max_price)


@pytest.mark.parametrize("text", ["good gift for mom", "stone earrings", "a cold day", "bolder"])
def test_ordinary_words_are_not_corrected(text: str) -> None:
    parsed = QueryParser(strict=True).parse(text)
    assert "Gold" not in parsed.filters.colours and "Belts" not in parsed.filters.articles


@pytest.mark.parametrize(
    ("text", "max_price"),
    [("lower my budget to 1000", 1000), ("raise the budget to 5k", 5000), ("cap it at 800", 800)],
)
def test_budget_changes(text: str, max_price: float) -> None:
    parsed = QueryParser(strict=True).parse(text)
    assert parsed.filters.max_price == max_price
    assert parsed.remainder == ""


def test_isnt_negates_colours() -> None:
    filters = QueryParser(strict=True).parse("a handbag that isn't black or brown").filters
    assert filters.exclude_colours == ("Black", "Brown") and filters.colours == ()


@pytest.mark.parametrize(
    ("query", "articles"),
    [
        ("a fragrance for him", ("Perfume and Body Mist", "Fragrance Gift Set")),
        ("a bag for school, a backpack", ("Backpacks", "Rucksacks")),
        ("some jewellery, maybe rings", ("Ring",)),
        ("not a wallet after all, a belt instead", ("Belts",)),
    ],
)
def test_the_narrowest_category_named_is_the_one_wanted(
    query: str, articles: tuple[str, ...]
) -> None:
    assert STRICT.parse(query).filters.articles == articles
