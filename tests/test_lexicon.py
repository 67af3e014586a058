"""Every entry of every vocabulary file, read back through the parser and the understanding:
each word means what its file says it means."""

from __future__ import annotations

import pytest

from bijou.retrieval.lexicon import (
    LexiconError,
    language_of,
    load_lexicon,
    script_of,
    to_simplified,
    to_traditional,
)
from bijou.retrieval.query import QueryParser, grammar, words_value
from bijou.retrieval.understanding import DialogContext, Move, Understander

LEX = load_lexicon()
PARSER = QueryParser(strict=True)
RULES = Understander(PARSER, strategy="rules")
SHOWN = DialogContext(shown=3, shown_articles=("Earrings",) * 3, category=("Earrings",))


def _terms(vocab, language: str | None = None):
    return [
        pytest.param(text, term, id=f"{term.language}:{text}")
        for text, term in sorted(vocab.terms.items())
        if language is None or term.language == language
    ]


@pytest.mark.parametrize(("text", "term"), _terms(LEX.articles))
def test_every_article_word(text: str, term) -> None:
    assert set(term.values) <= set(PARSER.parse(text).filters.articles)


@pytest.mark.parametrize(("text", "term"), _terms(LEX.colours))
def test_every_colour_word(text: str, term) -> None:
    assert set(PARSER.parse(f"{text} ring").filters.colours) == set(term.values)


@pytest.mark.parametrize(("text", "term"), _terms(LEX.recipients))
def test_every_recipient_word(text: str, term) -> None:
    genders = PARSER.parse(f"a ring for {text}").filters.genders
    wanted = {"women": "Women", "men": "Men", "girls": "Girls", "boys": "Boys"}
    assert wanted.get(term.values[0], "Unisex") in genders


@pytest.mark.parametrize(("text", "term"), _terms(LEX.occasions))
def test_every_occasion_word(text: str, term) -> None:
    assert set(term.values) <= set(PARSER.parse(f"ring {text}").filters.usages)


@pytest.mark.parametrize(("text", "term"), _terms(LEX.garments))
def test_every_garment_word_is_an_anchor(text: str, term) -> None:
    anchor = PARSER.parse(f"earrings to go with my {text}").anchor
    assert anchor is not None and anchor.garment == term.gloss


@pytest.mark.parametrize(("text", "term"), _terms(LEX.refinements))
def test_every_refinement_word(text: str, term) -> None:
    u = RULES.understand(f"{text} ones please", SHOWN)
    assert term.values[0] in u.refinements
    assert u.move is Move.SEARCH


@pytest.mark.parametrize(("text", "term"), _terms(LEX.attributes))
def test_every_attribute_word(text: str, term) -> None:
    assert RULES._attribute(text) == term.values[0]


# --- numbers and budgets ---------------------------------------------------------------------
@pytest.mark.parametrize(("word", "value"), sorted(LEX.numbers.units.items()))
def test_every_unit_word(word: str, value: float) -> None:
    assert words_value([word, "thousand"], grammar()) == (value * 1000 or None)


@pytest.mark.parametrize(("word", "value"), sorted(LEX.numbers.scales.items()))
def test_every_scale_word(word: str, value: float) -> None:
    assert PARSER.parse(f"under two {word} rupees").filters.max_price == 2 * value


@pytest.mark.parametrize(("word", "value"), sorted(LEX.numbers.fractions.items()))
def test_every_fraction_word(word: str, value: float) -> None:
    assert words_value([word, "hazaar"], grammar()) == value * 1000


@pytest.mark.parametrize(("word", "value"), sorted(LEX.numbers.shifts.items()))
def test_every_shift_word(word: str, value: float) -> None:
    assert PARSER.parse(f"{word} teen hazaar tak").filters.max_price == (3 + value) * 1000


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("under twelve hundred", 1200),
        ("three grand max", 3000),
        ("no more than fifteen hundred rupees", 1500),
        ("two and a half thousand rupees", 2500),
        ("do hazaar paanch sau tak", 2500),
        ("dedh hazaar ke andar", 1500),
        ("pandrah sau se kam", 1500),
        ("三千五以内", 3500),
        ("一千二以下", 1200),
        ("earrings within 2 thousand", 2000),
    ],
)
def test_budgets_said_in_words(text: str, value: float) -> None:
    assert PARSER.parse(text).filters.max_price == value


def test_number_words_that_are_not_amounts_stay_words() -> None:
    assert PARSER.parse("the first one").filters.max_price is None
    assert PARSER.parse("do you have two rings").filters.max_price is None


@pytest.mark.parametrize("cue", LEX.budget.ceiling_before)
def test_every_ceiling_before(cue: str) -> None:
    f = PARSER.parse(f"ring {cue} 1500").filters
    assert (f.min_price, f.max_price) == (None, 1500)


@pytest.mark.parametrize("cue", LEX.budget.ceiling_after)
def test_every_ceiling_after(cue: str) -> None:
    f = PARSER.parse(f"ring 1500 {cue}").filters
    assert (f.min_price, f.max_price) == (None, 1500)


@pytest.mark.parametrize("cue", LEX.budget.floor_before)
def test_every_floor_before(cue: str) -> None:
    f = PARSER.parse(f"ring {cue} 1500").filters
    assert (f.min_price, f.max_price) == (1500, None)


@pytest.mark.parametrize("cue", LEX.budget.floor_after)
def test_every_floor_after(cue: str) -> None:
    f = PARSER.parse(f"ring 1500 {cue}").filters
    assert (f.min_price, f.max_price) == (1500, None)


@pytest.mark.parametrize("cue", LEX.budget.approx_before)
def test_every_approximate_before(cue: str) -> None:
    f = PARSER.parse(f"ring {cue} 1500").filters
    assert (f.min_price, f.max_price) == (1200, 1800)


@pytest.mark.parametrize("cue", LEX.budget.approx_after)
def test_every_approximate_after(cue: str) -> None:
    f = PARSER.parse(f"ring 1500 {cue}").filters
    assert (f.min_price, f.max_price) == (1200, 1800)


@pytest.mark.parametrize("cue", LEX.budget.floor_regret_after)
def test_a_floor_said_with_regret_is_a_ceiling(cue: str) -> None:
    f = PARSER.parse(f"ring, over 2000 {cue}").filters
    assert (f.min_price, f.max_price) == (None, 2000)


@pytest.mark.parametrize("cue", LEX.budget.floor_negated_before)
def test_a_negated_floor_is_a_ceiling(cue: str) -> None:
    said = f"a ring, {cue} over 2000" if cue.isascii() else f"戒指{cue}超过2000"
    f = PARSER.parse(said).filters
    assert (f.min_price, f.max_price) == (None, 2000)


@pytest.mark.parametrize("word", sorted(LEX.numbers.scales))
def test_digits_take_every_scale_word(word: str) -> None:
    value = LEX.numbers.scales[word]
    assert PARSER.parse(f"a watch under 3 {word}").filters.max_price == 3 * value


@pytest.mark.parametrize("cue", LEX.budget.total)
def test_every_total_word(cue: str) -> None:
    parsed = PARSER.parse(f"a watch and a wallet, 4000 {cue}")
    assert parsed.filters.max_price == 4000 and parsed.budget_total


@pytest.mark.parametrize("cue", LEX.budget.currency_before)
def test_every_currency_before(cue: str) -> None:
    assert PARSER.parse(f"ring {cue} 1500").filters.max_price == 1500


@pytest.mark.parametrize("cue", LEX.budget.currency_after)
def test_every_currency_after(cue: str) -> None:
    assert PARSER.parse(f"ring 1500 {cue}").filters.max_price == 1500


@pytest.mark.parametrize("unit", LEX.budget.quantity_units)
def test_every_quantity_unit_keeps_a_number_from_being_a_price(unit: str) -> None:
    assert PARSER.parse(f"ring of 50 {unit} under 2000").filters.max_price == 2000


# --- negation ------------------------------------------------------------------------------
@pytest.mark.parametrize("cue", LEX.negation.before)
def test_every_negation_before(cue: str) -> None:
    f = PARSER.parse(f"earrings, {cue} gold").filters
    assert "Gold" in f.exclude_colours and "Gold" not in f.colours


@pytest.mark.parametrize("cue", LEX.negation.after)
def test_every_negation_after(cue: str) -> None:
    f = PARSER.parse(f"earrings, gold {cue}").filters
    assert "Gold" in f.exclude_colours and "Gold" not in f.colours


@pytest.mark.parametrize("contrast", LEX.negation.contrast, ids=lambda c: c.cue)
def test_every_contrast(contrast) -> None:
    for word in contrast.when:
        f = PARSER.parse(f"i {word} silver {contrast.cue} gold").filters
        assert f.exclude_colours == ("Gold",) and "Silver" in f.colours, word


@pytest.mark.parametrize(
    ("text", "colours", "excluded"),
    [
        ("rather rose tones than yellow gold", {"Rose", "Copper"}, {"Gold"}),
        ("anything except black", set(), {"Black"}),
        ("only white metals", {"Silver", "Steel", "White"}, set()),
        ("gold nahi chahiye, silver wala", {"Silver"}, {"Gold"}),
        ("要玫瑰金而不是黄金", {"Rose", "Copper"}, {"Gold"}),
    ],
)
def test_contrast_and_preference_name_one_side(text: str, colours: set, excluded: set) -> None:
    f = PARSER.parse(text).filters
    assert (set(f.colours), set(f.exclude_colours)) == (colours, excluded)


# --- references ----------------------------------------------------------------------------
@pytest.mark.parametrize(("word", "rank"), sorted(LEX.ranks.ordinals.items()))
def test_every_ordinal(word: str, rank: int) -> None:
    if word.isascii() and not word.isdigit():
        text = (
            f"add the {word} one"
            if word in load_lexicon().sources["en.yaml"]["ranks"]["ordinals"]
            else f"{word} wala add kar do"
        )
    else:
        text = f"第{word}个"
    assert RULES.understand(text, SHOWN).ranks == (rank,)


@pytest.mark.parametrize("noun", LEX.ranks.nouns)
def test_every_rank_noun(noun: str) -> None:
    text = f"第二{noun}" if not noun.isascii() else f"the second {noun}"
    if noun in ("wala", "wali", "vala", "vali", "wale", "vale"):
        text = f"doosra {noun}"
    assert RULES.understand(text, SHOWN).ranks == (2,)


@pytest.mark.parametrize("word", [w for w in LEX.ranks.numbered if w.isascii()])
def test_every_numbered_reference(word: str) -> None:
    assert RULES.understand(f"add {word} 2", SHOWN).ranks == (2,)


@pytest.mark.parametrize(("pick", "words"), sorted(LEX.ranks.picks.items()))
def test_every_pick(pick: str, words: tuple[str, ...]) -> None:
    for word in words:
        assert RULES.understand(f"{word}", SHOWN).pick == pick, word


@pytest.mark.parametrize("word", LEX.ranks.both)
def test_every_both_in_a_comparison(word: str) -> None:
    u = RULES.understand(f"compare {word}", SHOWN)
    assert u.move is Move.COMPARE and u.ranks == (1, 2)


@pytest.mark.parametrize("word", LEX.cart_both)
def test_every_both_in_a_cart_request(word: str) -> None:
    u = RULES.understand(f"add {word} to my cart", SHOWN)
    assert u.move is Move.CART_ADD and u.ranks == (1, 2)


# --- anchors -------------------------------------------------------------------------------
@pytest.mark.parametrize("link", LEX.anchors.links, ids=lambda link: link.phrase)
def test_every_anchor_link(link) -> None:
    if link.direction == "after":
        text = f"a bag {link.phrase} gold earrings"
    else:
        text = f"gold earrings {link.phrase} kaunsa bag"
    parsed = PARSER.parse(text)
    assert parsed.anchor is not None and parsed.anchor.articles == ("Earrings",), text
    assert "Earrings" not in parsed.filters.articles
    assert "Handbags" in parsed.filters.articles


@pytest.mark.parametrize("word", LEX.anchors.owned)
def test_every_owned_word(word: str) -> None:
    parsed = PARSER.parse(f"which earrings, {word} red saree")
    assert parsed.anchor is not None and parsed.anchor.articles == ("Sarees",), word
    assert parsed.anchor.colours == ("Red",) and parsed.filters.articles == ("Earrings",)


def test_a_recipient_after_my_is_not_an_anchor() -> None:
    assert PARSER.parse("gold earrings for my wife").anchor is None
    assert PARSER.parse("my budget is 3000 for a saree").anchor is None


# --- moves and the rest --------------------------------------------------------------------
def _cues():
    for move, cues in sorted(LEX.moves.items()):
        for cue in cues:
            yield pytest.param(move, cue, id=f"{move}:{cue}")


@pytest.mark.parametrize(("move", "cue"), list(_cues()))
def test_every_move_cue(move: str, cue: str) -> None:
    text = cue.strip("^$").replace("...", "it").strip()
    assert RULES.understand(text, SHOWN).move is Move(move)


@pytest.mark.parametrize("word", LEX.openers)
def test_every_opener(word: str) -> None:
    assert RULES.understand(f"{word} add it to my cart", SHOWN).move is Move.CART_ADD


@pytest.mark.parametrize("word", LEX.shopping)
def test_every_shopping_word(word: str) -> None:
    assert RULES.understand(word).move is Move.SEARCH


@pytest.mark.parametrize(("name", "phrase"), [
    (name, phrase) for name, phrases in sorted(LEX.relax.items()) for phrase in phrases
])  # fmt: skip
def test_every_relaxing_phrase(name: str, phrase: str) -> None:
    assert getattr(RULES.understand(phrase, SHOWN), name)


@pytest.mark.parametrize(("slip", "meant"), sorted(LEX.typos.items()))
def test_every_typo(slip: str, meant: str) -> None:
    assert PARSER.parse(f"{slip} 1000").text.split()[0] == meant


@pytest.mark.parametrize("word", sorted(LEX.stopwords))
def test_every_stopword_leaves_no_remainder(word: str) -> None:
    assert word not in PARSER.parse(f"{word} earrings").remainder.split()


@pytest.mark.parametrize("word", LEX.zh_stopwords)
def test_every_chinese_stopword_leaves_no_remainder(word: str) -> None:
    assert word not in PARSER.parse(f"{word}耳环").remainder


# --- scripts and languages -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("traditional", "simplified"),
    [("項鍊", "项链"), ("手錶", "手表"), ("錢包", "钱包"), ("預算", "预算"), ("第三個", "第三个")],
)
def test_traditional_chinese_is_read_as_simplified(traditional: str, simplified: str) -> None:
    assert to_simplified(traditional) == simplified
    assert to_traditional(simplified) == traditional
    assert script_of(traditional) == "hant" and script_of(simplified) == "hans"


def test_traditional_chinese_queries_parse_like_simplified_ones() -> None:
    assert PARSER.parse("預算三千五的項鍊").filters == PARSER.parse("预算三千五的项链").filters


def test_language_of_hinglish_is_english() -> None:
    assert language_of("mummy ke liye gold jhumka 2000 tak") == "en"
    assert script_of("mummy ke liye") == "latin"


def test_a_bad_vocabulary_file_names_its_key(tmp_path) -> None:
    folder = tmp_path / "vocab"
    folder.mkdir()
    source = LEX.sources
    import shutil

    from bijou.retrieval import lexicon

    for name in ("catalog.yaml", "en.yaml", "zh.yaml", "hi.yaml"):
        shutil.copy(lexicon.VOCAB_DIR / name, folder / name)
    (folder / "hi.yaml").write_text("language: hi\narticles:\n  Earrings: []\n", encoding="utf-8")
    with pytest.raises(LexiconError, match=r"hi.yaml: articles.Earrings"):
        lexicon.load_lexicon.__wrapped__(folder)
    assert source  # the shipped files were not touched
