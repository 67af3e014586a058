"""Table-driven tests for the reply grounding verifier and the templated phrases. Two
hand-made products, the query parser with three brands; no models, no index."""

from __future__ import annotations

import pytest

from bijou.agent import phrases
from bijou.agent.phrases import money, pair_reason, product_line, reason, say, scope
from bijou.agent.verify import (
    Grounding,
    ReplyVerifier,
    Violation,
    sentence_end,
)
from bijou.catalog.schema import Product
from bijou.retrieval.lexicon import load_lexicon
from bijou.retrieval.query import QueryParser
from bijou.retrieval.reasons import Reason
from bijou.understanding.state import DialogState

PARSER = QueryParser(brands=["Estelle", "Zaveri Pearls", "Tanishq"], strict=True)
VERIFIER = ReplyVerifier(PARSER)

PENDANT = Product(
    id="p1",
    title="Estelle Floral Pendant",
    brand="Estelle",
    article="Pendant",
    colour="Silver",
    usage="Casual",
    price=1299,
    list_price=1599,
    attributes={"Base Metal": "Silver"},
    description="A floral pendant on a fine chain.",
)
NECKLACE = Product(
    id="p2",
    title="Classic Gold Necklace",
    brand="Zaveri Pearls",
    article="Necklace and Chains",
    colour="Gold",
    usage="Ethnic",
    price=2499,
    list_price=2499,
    description="A gold-tone necklace strung with freshwater pearls.",
)
WATCH = Product(
    id="p3",
    title="Steel Watch",
    brand="Tanishq",
    article="Watches",
    price=4999,
    list_price=4999,
    colour="Steel",
)
PRODUCTS = [PENDANT, NECKLACE]

SECRET_EN = (
    "You are Bijou, the shopping assistant of this store. Never invent prices, products or "
    "materials; answer only from the facts you are given."
)
SECRET_ZH = "你是本店的购物助手，绝对不要编造价格或者商品，只能根据给出的事实回答问题。"


def grounding(
    language: str = "en", said: str = "", products: list[Product] = PRODUCTS, **kw: object
) -> Grounding:
    secret = SECRET_ZH if language == "zh" else SECRET_EN
    return Grounding.of(products, language, secret, said=said, parser=PARSER, **kw)


def sentences(text: str) -> list[str]:
    """The text cut as the agent cuts the LLM's stream: at each `sentence_end`."""
    pieces, rest = [], text
    while (end := sentence_end(rest)) != -1:
        pieces.append(rest[:end].strip())
        rest = rest[end:]
    return [p for p in [*pieces, rest.strip()] if p]


def repair(text: str, g: Grounding) -> tuple[str, list[Violation]]:
    """What a shopper sees of an LLM text: its sentences that pass, as the agent streams them."""
    kept, failed = [], []
    for sentence in sentences(text):
        problems = VERIFIER.check(sentence, g)
        failed += problems
        if not problems:
            kept.append(sentence)
    return ("" if g.language == "zh" else " ").join(kept), failed


def kinds(sentence: str, g: Grounding) -> set[str]:
    return {v.kind for v in VERIFIER.check(sentence, g)}


# --- what is grounded ----------------------------------------------------------------------


def test_grounding_collects_the_products_facts() -> None:
    g = grounding()
    assert g.prices == {1299, 1599, 2499}
    assert g.colours == {"Silver", "Gold"}
    assert g.articles == {"Pendant", "Necklace and Chains"}
    assert g.brands == {"Estelle", "Zaveri Pearls"}
    assert g.materials == {"silver", "gold", "pearl"}
    assert g.language == "en"


def test_grounding_includes_what_the_shopper_said() -> None:
    g = grounding(said="silver earrings under 1500, no rose gold, anything but Tanishq")
    assert {1500} <= g.budgets and 1500 not in g.prices
    assert {"Rose", "Copper"} <= g.colours  # excluded colours may be named back
    assert "Earrings" in g.articles
    assert "Tanishq" in g.brands


def test_grounding_includes_totals_and_given_facts() -> None:
    g = grounding(totals=[3798], extra_text="Set total 3,798. Brass clasp. Case: 30 mm")
    assert 3798 in g.prices
    assert "brass" in g.materials
    assert (30.0, "mm") in g.amounts


def test_chinese_material_words_in_product_text_ground_english_ones() -> None:
    ring = Product(
        id="r",
        title="戒指",
        article="Ring",
        price=999,
        list_price=999,
        description="镶嵌锆石，纯银底材",
    )
    g = grounding(products=[ring])
    assert {"zircon", "silver"} <= g.materials


# --- accepted sentences --------------------------------------------------------------------

ACCEPTED_EN = [
    "The pendant is 1299.",
    "The pendant costs ₹1,299, down from ₹1,599.",
    "It is only 1,299 rupees.",
    "It is 1299.00.",
    "The necklace is ₹2,499.",
    "The necklace is 2499 rupees.",
    "A lovely silver pendant.",
    "It comes in gold.",
    "Silver-toned and lovely.",
    "It is sterling silver.",
    "Estelle makes the pendant.",
    "The Zaveri Pearls necklace.",
    "The necklace has freshwater pearls.",
    "Beautiful jewellery for her.",
    "Both are jewelry she can wear every day.",
    "Pendants and necklaces suit any outfit.",
    "A pendant on a fine chain.",
    "It has a floral design.",
    "The second one is my favourite.",
    "Here are 2 picks.",
    "Pick 1 or 3.",
    "Hello there, nice choice!",
    "Within your 1500 budget.",  # the shopper's own number, as a budget
    "Everything here is under ₹1,500.",
    "OK!",
]


@pytest.mark.parametrize("sentence", ACCEPTED_EN)
def test_grounded_english_sentences_pass(sentence: str) -> None:
    g = grounding(said="silver pendant under 1500 for my wife")
    assert VERIFIER.check(sentence, g) == []


ACCEPTED_ZH = [
    "这款吊坠售价₹1,299。",
    "吊坠原价1599，现价1299。",
    "这条项链2499卢比。",
    "这款吊坠是银色的。",
    "这条项链是金色的，镶有珍珠。",
    "Estelle 的吊坠很精致。",
    "这两件首饰都很适合她。",
    "都在1500预算内。",
    "第2个最受欢迎。",
]


@pytest.mark.parametrize("sentence", ACCEPTED_ZH)
def test_grounded_chinese_sentences_pass(sentence: str) -> None:
    g = grounding("zh", said="1500以内的银吊坠")
    assert VERIFIER.check(sentence, g) == []


@pytest.mark.parametrize(
    ("said", "sentence", "language"),
    [
        ("earrings under 2k", "Everything is under ₹2,000.", "en"),
        ("earrings under 2k", "Nothing over 2000 here.", "en"),
        ("两千以内的耳环", "都在₹2,000以内。", "zh"),
        ("三千五以内的手表", "都在3500以内。", "zh"),
        ("a watch, budget 1.5k", "All of these are within ₹1,500.", "en"),
        ("一千五以内的手链", "都在1500以内。", "zh"),
    ],
)
def test_the_shoppers_budget_in_other_words_is_grounded(
    said: str, sentence: str, language: str
) -> None:
    assert VERIFIER.check(sentence, grounding(language, said=said)) == []


# --- rejected sentences --------------------------------------------------------------------

REJECTED_EN = [
    ("It is only 999.", {"price"}),
    ("Now just ₹1,199!", {"price"}),
    ("It costs 1300.", {"price"}),  # close to a price is not the price
    ("It costs ₹1,299.50.", {"price"}),
    ("It comes in rose gold.", {"colour"}),
    ("It comes in black.", {"colour"}),
    ("Tanishq has similar pieces.", {"brand"}),
    ("This watch is lovely.", {"article"}),
    ("These earrings are lovely.", {"article"}),
    ("Made with real diamonds.", {"material"}),
    ("A ruby pendant.", {"material"}),
    ("Gold plated brass.", {"material"}),
    ("这款吊坠是银色的。", {"language"}),
    ("Tanishq makes this watch for 999.", {"brand", "article", "price"}),
]


@pytest.mark.parametrize(("sentence", "expected"), REJECTED_EN)
def test_invented_facts_are_rejected_in_english(sentence: str, expected: set[str]) -> None:
    assert kinds(sentence, grounding(said="silver pendant under 1500")) == expected


REJECTED_ZH = [
    ("只要999。", {"price"}),
    ("这款吊坠售价1199元。", {"price", "currency"}),
    ("这款是玫瑰金的。", {"colour"}),
    ("这条项链镶有钻石。", {"material"}),
    ("Tanishq 的吊坠。", {"brand"}),
    ("这块手表很好。", {"article"}),
    ("This pendant is lovely.", {"language"}),
]


@pytest.mark.parametrize(("sentence", "expected"), REJECTED_ZH)
def test_invented_facts_are_rejected_in_chinese(sentence: str, expected: set[str]) -> None:
    assert kinds(sentence, grounding("zh", said="1500以内的银吊坠")) == expected


def test_violation_details_name_what_was_invented() -> None:
    found = VERIFIER.check("Tanishq sells it for 999 in rose gold.", grounding())
    assert all(isinstance(v, Violation) for v in found)
    assert all(v.sentence == "Tanishq sells it for 999 in rose gold." for v in found)
    details = {(v.kind, v.detail) for v in found}
    assert ("price", "999") in details
    assert ("brand", "Tanishq") in details
    assert ("colour", "Rose") in details


def test_jewellery_needs_a_piece_of_jewellery() -> None:
    assert kinds("Beautiful jewellery for her.", grounding(products=[WATCH])) == {"article"}
    assert kinds("A handsome watch.", grounding(products=[WATCH])) == set()


def test_a_material_must_be_in_the_products_own_text() -> None:
    assert kinds("It has pearls.", grounding()) == set()
    assert kinds("It has pearls.", grounding(products=[PENDANT])) == {"material"}


@pytest.mark.parametrize("number", [1, 2, 3, 5, 9])
def test_small_numbers_are_ranks_not_prices(number: int) -> None:
    assert kinds(f"Number {number} is the best pick.", grounding()) == set()
    assert kinds(f"第{number}个最好看。", grounding("zh")) == set()


@pytest.mark.parametrize("number", [10, 12, 99, 500])
def test_numbers_from_ten_up_must_be_grounded(number: int) -> None:
    assert kinds(f"It is {number}.", grounding()) == {"price"}
    assert kinds(f"只要{number}。", grounding("zh")) == {"price"}


# --- every number in its role ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("It is available at a discounted price of 1500.", {"budget"}),  # a budget as a price
        ("Earrings for ₹1,500 each.", {"budget", "article"}),
        ("All under your ₹1,500 budget.", set()),
        ("Nothing here goes above 1500.", set()),
        ("A gold handbag with a 3000 ml Eau de Parfum.", {"amount", "article"}),
        ("The chain is 45 cm long.", {"amount"}),
    ],
)
def test_numbers_keep_their_roles(sentence: str, expected: set[str]) -> None:
    assert kinds(sentence, grounding(said="silver pendant under 1500")) == expected


def test_an_amount_from_the_record_is_grounded() -> None:
    chain = PRODUCTS[1].model_copy(update={"size_fit": "Length: 45 cm"})
    assert kinds("The chain is 45 cm long.", grounding(products=[chain])) == set()


def test_a_lead_sentence_holds_no_numbers_but_the_shoppers_own() -> None:
    g = grounding(said="a pendant for my mom's 60th birthday", allow_numbers=False)
    assert kinds("Lovely for her 60th birthday.", g) == set()
    assert kinds("Only 1299 for this one.", g) == {"price"}


@pytest.mark.parametrize(
    ("sentence", "kind"),
    [
        ("Shopper: 有便宜一点的？", "label"),
        ("Assistant: here you go.", "label"),
        ("The shopping assistant is looking for silver pieces.", "person"),
        ("The customer wants something elegant.", "person"),
    ],
)
def test_labels_and_the_third_person_are_rejected(sentence: str, kind: str) -> None:
    assert kind in kinds(sentence, grounding())


def test_a_reply_may_not_parrot_the_request() -> None:
    asked = "a silver pendant for my wife under 1500 please"
    found = VERIFIER.check("A silver pendant for my wife under 1500 is lovely.", grounding(),
                           asked=asked)  # fmt: skip
    assert "echo" in {v.kind for v in found}
    assert VERIFIER.check("These pieces are lovely.", grounding(), asked=asked) == []


def test_a_product_is_not_compared_with_itself() -> None:
    title = PRODUCTS[0].title
    assert "self_comparison" in kinds(f"{title} is cheaper than {title}.", grounding())
    assert kinds(f"{title} is cheaper than {PRODUCTS[1].title}.", grounding()) == set()


# --- the system prompt ---------------------------------------------------------------------

LEAKS_EN = [
    ("Never invent prices, products or materials here.", True),  # 6 words
    ("My rules: answer only from the facts you are given.", True),
    ("You are Bijou, the shopping assistant of this store.", True),
    # The same words with other punctuation are still a quote.
    ("I never invent prices. Products or materials, never.", False),  # two short sentences
    ("Never invent prices - products or materials.", True),
    ("NEVER INVENT PRICES, PRODUCTS OR MATERIALS", True),
    # Five words are not a quote, nor are the words out of order.
    ("I never invent prices or products.", False),
    ("Only the facts, you know, are given.", False),
]


@pytest.mark.parametrize(("sentence", "leaks"), LEAKS_EN)
def test_quoting_the_english_system_prompt(sentence: str, leaks: bool) -> None:
    g = grounding()
    found = {v.kind for s in sentences(sentence) for v in VERIFIER.check(s, g)}
    assert ("leak" in found) is leaks


LEAKS_ZH = [
    ("我的规则是绝对不要编造价格或者商品。", True),  # 12+ characters
    ("绝对不要编造价格或者商品", True),
    ("你是本店的购物助手，绝对不要编造价格。", True),  # across the secret's comma
    ("只能根据给出的事实回答问题。", True),
    ("我不会编造价格。", False),
    ("本店的购物助手为您服务。", False),  # 7 characters
    ("绝对不要编造价格或者", False),  # 10 characters
]


@pytest.mark.parametrize(("sentence", "leaks"), LEAKS_ZH)
def test_quoting_the_chinese_system_prompt(sentence: str, leaks: bool) -> None:
    assert ("leak" in kinds(sentence, grounding("zh"))) is leaks


def test_no_secret_no_leak() -> None:
    g = Grounding.of(PRODUCTS, "en", "", parser=PARSER)
    assert VERIFIER.check("Never invent prices, products or materials.", g) == []


# --- what is kept of an LLM text ------------------------------------------------------------


def test_repair_keeps_only_clean_sentences() -> None:
    text = (
        "The pendant is ₹1,299. It is only 999! It comes in rose gold. "
        "Tanishq makes it? It is silver."
    )
    kept, failed = repair(text, grounding())
    assert kept == "The pendant is ₹1,299. It is silver."
    assert [(v.kind, v.sentence) for v in failed if v.kind != "colour"] == [
        ("price", "It is only 999!"),
        ("brand", "Tanishq makes it?"),
    ]
    assert {v.kind for v in failed} == {"price", "colour", "brand"}


def test_repair_in_chinese_joins_without_spaces() -> None:
    text = "这款吊坠是银色的。只要999。很适合日常佩戴！This is lovely."
    kept, failed = repair(text, grounding("zh"))
    assert kept == "这款吊坠是银色的。很适合日常佩戴！"
    assert [v.kind for v in failed] == ["price", "language"]


def test_repair_of_a_fully_invented_reply_leaves_nothing() -> None:
    kept, failed = repair("Only 999. Tanishq diamonds.", grounding())
    assert kept == ""
    assert {v.kind for v in failed} == {"price", "brand", "material"}


def test_repair_of_a_clean_reply_changes_nothing() -> None:
    text = "The pendant is ₹1,299. The necklace has pearls."
    assert repair(text, grounding()) == (text, [])
    assert repair("", grounding()) == ("", [])


# --- sentences -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cut"),
    [
        ("One. Two! Three?", ["One.", "Two!", "Three?"]),
        ("第一句。第二句！第三句？", ["第一句。", "第二句！", "第三句？"]),
        (
            "Here are two picks. 第一个很好！Second is nice?  好的。\nNew line",
            ["Here are two picks.", "第一个很好！", "Second is nice?", "好的。", "New line"],
        ),
        ("It costs ₹1,299.50 today.", ["It costs ₹1,299.50 today."]),
        ("No end", ["No end"]),
        ("Lines\n\nand more\n", ["Lines", "and more"]),
        ("  ", []),
        ("", []),
    ],
)
def test_sentences(text: str, cut: list[str]) -> None:
    assert sentences(text) == cut


@pytest.mark.parametrize(
    ("text", "end"),
    [
        ("Here are", -1),
        ("Here are some. And", len("Here are some.")),
        ("Here are some.", len("Here are some.")),
        ("Wait! More", len("Wait!")),
        ("Really? Yes", len("Really?")),
        ("Price 1.5k is", -1),  # a decimal point is not the end
        ("It costs ₹1,299.50 and", -1),
        ("你好。我们", len("你好。")),
        ("价格是₹1,299。接着", len("价格是₹1,299。")),
        ("太好了！还有", len("太好了！")),
        ("Hi\nthere", len("Hi\n")),
        ("", -1),
    ],
)
def test_sentence_end(text: str, end: int) -> None:
    assert sentence_end(text) == end


def test_streaming_by_sentence_end_gives_the_sentences() -> None:
    text = "Here are two picks. 第一个很好！The second is ₹1,299."
    pieces, buffer = [], ""
    for char in text:
        buffer += char
        while (end := sentence_end(buffer)) != -1:
            pieces.append(buffer[:end].strip())
            buffer = buffer[end:]
    pieces += [buffer.strip()] if buffer.strip() else []
    assert pieces == sentences(text)


# --- phrases -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1299, "₹1,299"),
        (1299.0, "₹1,299"),
        (12.5, "₹12.50"),
        (0, "₹0"),
        (999, "₹999"),
        (1234567, "₹1,234,567"),
        (1499.99, "₹1,499.99"),
    ],
)
def test_money(value: float, text: str) -> None:
    assert money(value, "₹") == text


def test_money_other_currency() -> None:
    assert money(25, "$") == "$25"


@pytest.mark.parametrize("language", ["en", "zh"])
def test_reason_names_the_matched_tone_and_the_budget(language: str) -> None:
    two_tone = Product(
        id="t",
        title="Two Tone Ring",
        article="Ring",
        colour="Gold",
        price=900,
        list_price=900,
        attributes={"Base Metal": "Silver"},
    )
    state = DialogState(colours=["Silver"], max_price=1500)
    text = reason(two_tone, state, language, "₹")
    assert "\n" not in text and text
    # Gold plating on a silver base shows gold: the reason says what a shopper sees, and the
    # base metal beside it.
    if language == "en":
        assert text.startswith("Gold tone, silver base")
        assert "within your ₹1,500 budget" in text
    else:
        assert text.startswith("金色，银材质")
        assert "在₹1,500预算内" in text


def test_reason_for_the_pendant() -> None:
    state = DialogState(colours=["Silver"], max_price=1500)
    en = reason(PENDANT, state, "en", "₹")
    # The metal is said once: "silver tone, silver base" says nothing twice.
    assert en == "Silver tone, within your ₹1,500 budget, 19% off"
    zh = reason(PENDANT, state, "zh", "₹")
    assert zh.startswith("银色，") and zh.endswith("，在₹1,500预算内，优惠19%")
    assert zh.count("，") == 2 and "\n" not in zh


def test_reason_mentions_the_occasion_only_when_asked() -> None:
    assert "suits ethnic wear" not in reason(NECKLACE, DialogState(), "en", "₹")
    assert "suits ethnic wear" in reason(NECKLACE, DialogState(occasion="Ethnic"), "en", "₹")
    assert "适合传统节庆" in reason(NECKLACE, DialogState(occasion="Ethnic"), "zh", "₹")


def test_reason_without_anything_to_say() -> None:
    bare = Product(id="b", title="Belt", article="Belts", price=500, list_price=510)
    assert reason(bare, DialogState(), "en", "₹") == ""  # 2% off is not worth a word


@pytest.mark.parametrize(
    ("state", "language", "expected"),
    [
        (DialogState(), "en", ""),
        (DialogState(), "zh", "商品"),
        (
            DialogState(colours=["Silver"], articles=["Earrings"], max_price=2000),
            "en",
            " for silver earrings under ₹2,000",
        ),
        (
            DialogState(colours=["Silver"], articles=["Earrings"], max_price=2000),
            "zh",
            "₹2,000以内的银色耳环",
        ),
        (DialogState(articles=["Watches"]), "en", " for watches"),
        (DialogState(articles=["Watches"]), "zh", "手表"),
        (DialogState(min_price=500), "en", " for from ₹500"),
        (DialogState(colours=["Gold"]), "zh", "金色"),
        # Many articles (a generic "jewellery") are not spelled out.
        (
            DialogState(articles=["Earrings", "Ring", "Pendant"], max_price=999),
            "en",
            " for under ₹999",
        ),
    ],
)
def test_scope(state: DialogState, language: str, expected: str) -> None:
    assert scope(state, language, "₹") == expected


def test_scope_fills_the_found_template() -> None:
    state = DialogState(colours=["Silver"], articles=["Earrings"], max_price=2000)
    assert say("en", "found", count=3, scope=scope(state, "en", "₹")) == (
        "Here are 3 picks for silver earrings under ₹2,000."
    )
    assert say("zh", "found", count=3, scope=scope(state, "zh", "₹")) == (
        "为您找到3件₹2,000以内的银色耳环。"
    )


@pytest.mark.parametrize(
    ("rank", "item", "why", "expected"),
    [
        (1, PENDANT, "silver tone", "1. Estelle Floral Pendant: ₹1,299. silver tone"),
        (2, NECKLACE, "", "2. Classic Gold Necklace (Zaveri Pearls): ₹2,499"),
        (None, NECKLACE, "x1", "- Classic Gold Necklace (Zaveri Pearls): ₹2,499. x1"),
    ],
)
def test_product_line(rank: int | None, item: Product, why: str, expected: str) -> None:
    assert product_line(rank, item, why, "₹") == expected


def test_templates_have_the_same_keys_in_both_languages() -> None:
    assert phrases.TEMPLATES["en"].keys() == phrases.TEMPLATES["zh"].keys()
    assert say("fr", "thanks") == phrases.TEMPLATES["en"]["thanks"]


def test_every_completing_pair_is_said_the_right_way_round() -> None:
    styling = load_lexicon().styling
    one_way = {styling.completes[pair] for pair in styling.completes_base}
    for language in ("en", "zh"):
        table = phrases._FILE["reasons"][language]
        assert set(styling.completes.values()) <= table["completes"].keys()
        assert one_way == table["completes_reverse"].keys()
    chain = Reason("completes", ("chain",))
    assert pair_reason([chain], "pendant", "en") == "A chain for the pendant"
    pendant = Reason("completes", ("chain", "reverse"))
    assert pair_reason([pendant], "chain", "en") == "To hang on the chain"
    silver = Reason("contrast", ("Pink", "Silver"))
    assert pair_reason([silver], "earrings", "en") == "Pink stands out against the earrings' silver"
    navy = Reason("contrast", ("Silver", "Navy Blue"))
    assert pair_reason([navy], "dress", "en") == "Silver stands out against the dress's navy blue"
    saree = Reason("completes", ("drape", "reverse"))
    assert pair_reason([saree], "earrings", "en") == "A classic drape to wear the earrings with"


def test_repair_keeps_a_decimal_price_in_one_sentence() -> None:
    scarf = Product(id="s", title="Silk Scarf", article="Scarves", price=12.5, list_price=12.5)
    text = "It is just ₹12.50. The silk feels soft."
    assert repair(text, grounding(products=[scarf])) == (text, [])


@pytest.mark.parametrize("sentence", ["它只要225元。", "Only $225 today.", "Just 225 dollars."])
def test_a_foreign_currency_is_invented(sentence: str) -> None:
    grounding = Grounding.of(
        [], "zh" if "元" in sentence else "en", "", parser=QueryParser(strict=True), totals=[225]
    )
    kinds = {v.kind for v in ReplyVerifier(QueryParser(strict=True)).check(sentence, grounding)}
    assert "currency" in kinds


def test_the_shops_currency_is_fine() -> None:
    grounding = Grounding.of([], "en", "", parser=QueryParser(strict=True), totals=[225])
    assert ReplyVerifier(QueryParser(strict=True)).check("Only ₹225 today.", grounding) == []


def test_an_occasion_is_said_only_of_products_for_it_or_when_asked() -> None:
    casual = grounding(products=[PENDANT])
    assert "occasion" in kinds("It is a perfect choice for a wedding.", casual)
    assert "occasion" in kinds("非常适合婚礼场合。", grounding("zh", products=[PENDANT]))
    assert "occasion" not in kinds("A lovely pick for a wedding.", grounding(products=[NECKLACE]))
    asked = grounding(said="a pendant for a wedding", products=[PENDANT])
    assert "occasion" not in kinds("A pretty pendant for the wedding.", asked)
    assert "occasion" not in kinds("A fine floral pendant.", casual)
