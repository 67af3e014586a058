"""Deterministic shopper-query parser: free text (English, Chinese simplified or traditional,
Hinglish) -> hard filters, a budget, the anchor a wanted item must go with, and a remainder.

Every word it knows comes from the vocabulary files (`bijou.retrieval.lexicon`); this module
holds only the grammar: how numbers, budgets, negations and "to go with" phrases are built.
It runs on every request, so it is cheap, predictable and testable.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cache

from bijou.retrieval.lexicon import (
    CJK,
    CJK_RE,
    Lexicon,
    Vocabulary,
    alternation,
    any_of,
    load_lexicon,
    to_simplified,
)

log = logging.getLogger(__name__)

_MAX_CHARS = 1000  # real queries are short; the cap keeps the regex passes cheap on junk input
_BARE_RANGE_MIN = 50  # an uncued, currency-less "6-8" is a size; shop prices start well above
_NEGATION_WINDOW = 30  # characters before a term in which a "not" governs it
_AFTER_WINDOW = 18  # characters after a term in which "nahi", "不要" negate it
# The text before a word that begins a sentence: nothing, or a full stop and spaces.
_SENTENCE_START = re.compile(r"(?:^|[.!?。！？]\s*)\W*$")
_ANCHOR_WORDS = {"owned": 4, "link": 7}  # words after "my" / "to go with" to the anchor's noun
_ANCHOR_CJK_CHARS = 12  # the same reach in Chinese, which has no spaces
_INTERROGATIVE = re.compile(r"^\s*(?:which|what|kaunsa|konsa|kaun sa|kya|什么|哪|啥)")
_PRONOUN = re.compile(
    r"^\s*(?:it|this|that|these|those|them|this one|that one|the (?:first|second|third|last)"
    r"|它|这个|那个|这款|那款|ye|yeh|isse|is)\b"
)
_CLAUSE_END = re.compile(r"[,.;!?，。；！？、]|\bbut\b|\band\b(?= (?:under|below|within|for))")

# --- normalisation ----------------------------------------------------------------------------
_SCRIPT_EDGE = re.compile(f"(?<=[{CJK}])(?=[^{CJK}\\s])|(?<=[^{CJK}\\s])(?=[{CJK}])")
_LETTER_HYPHEN = re.compile(r"(?<=[^\W\d_])-(?=[^\W\d_])")  # "gold-plated" -> "gold plated"
_POSSESSIVE = re.compile(r"(?<=[a-z])'s\b", re.IGNORECASE)  # "women's" -> "women"
_PUNCT = str.maketrans({"’": "'", "‘": "'", "–": "-", "—": "-", "－": "-", "～": "~"})


def normalise(text: str) -> str:
    """The form every parse starts from: NFKC, simplified Chinese, plain punctuation, scripts
    spaced apart."""
    text = to_simplified(unicodedata.normalize("NFKC", text).translate(_PUNCT))
    text = _POSSESSIVE.sub("", _LETTER_HYPHEN.sub(" ", text))
    return " ".join(_SCRIPT_EDGE.sub(" ", text).split())


@dataclass(frozen=True)
class QueryFilters:
    articles: tuple[str, ...] = ()
    colours: tuple[str, ...] = ()
    genders: tuple[str, ...] = ()
    usages: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    exclude_colours: tuple[str, ...] = ()
    exclude_brands: tuple[str, ...] = ()
    exclude_articles: tuple[str, ...] = ()
    min_price: float | None = None
    max_price: float | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) in ((), None) for f in fields(self))


@dataclass(frozen=True)
class AnchorPhrase:
    """What a wanted item must go with, as the shopper described it ("my maroon lehenga",
    "gold jhumkas", "it")."""

    text: str
    articles: tuple[str, ...] = ()  # catalog articles it names, if the shop sells such things
    colours: tuple[str, ...] = ()
    garment: str | None = None  # something the shop does not sell ("lehenga")
    pointer: bool = False  # "it", "this one": a product shown before


@dataclass(frozen=True)
class ParsedQuery:
    raw: str
    filters: QueryFilters
    remainder: str
    search_text: str
    budget_total: bool = False  # the budget is for several items together
    budget_around: float | None = None  # "around 2000": searched as 1600-2400
    article_groups: tuple[tuple[str, ...], ...] = ()  # the articles of each category named
    anchor: AnchorPhrase | None = None
    recipient: str | None = None  # the shopper's own word ("mom"), if any
    text: str = ""  # the normalised text the parse read


# --- the grammar the vocabularies are put into --------------------------------------------------
@dataclass(frozen=True)
class Grammar:
    lexicon: Lexicon
    price: re.Pattern[str]
    currency: re.Pattern[str]
    currency_after: re.Pattern[str]  # a currency word right after an amount
    number_parts: re.Pattern[str]
    scales: Mapping[str, float]  # a digit's multiplier words: "3k", "3 grand", "2 hazaar"
    number_token: re.Pattern[str]
    scaled: re.Pattern[str]  # a digit with a scale word: "2k", "3 thousand", "2 hazaar"
    number_words: re.Pattern[str]
    total: re.Pattern[str]
    floor_negated: re.Pattern[str]  # matched against the text just before a floor cue
    regret: re.Pattern[str]
    neg_before: re.Pattern[str]
    neg_after: re.Pattern[str]
    # A category is negated only by a cue right before it ("not a wallet"), never across a
    # colour ("no gold earrings" wants earrings).
    article_neg_before: re.Pattern[str]
    list_sep: re.Pattern[str]
    owned: re.Pattern[str]
    links: tuple[tuple[re.Pattern[str], str], ...]
    zh_stop: re.Pattern[str]
    structure: re.Pattern[str]  # "to go with", "my": phrases that shape a query, not search it
    typo_targets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    known_words: frozenset[str] = frozenset()


@cache
def grammar() -> Grammar:
    """The parser's patterns, built once from the vocabularies."""
    lex = load_lexicon()
    b, n = lex.budget, lex.numbers
    zh_num = f"[{''.join(n.zh_digits)}十][{''.join(n.zh_digits)}{''.join(n.zh_units)}]*"
    scales = {"k": 1e3, **n.scales, "千": 1e3, "万": 1e4, "百": 1e2}
    # "3k" but not "18k gold" (a purity); the longest word first ("lakhs" before "lakh").
    words = sorted((w for w in scales if w.isascii() and w != "k"), key=len, reverse=True)
    multipliers = "|".join(["k(?!\\s*gold)", *map(re.escape, words)])
    num = (
        rf"(?:\d+(?:,\d{{2,3}})*(?:\.\d+)?(?:\s*(?:{multipliers})(?![a-z])|\s*[百千万])?"
        rf"|{zh_num})"
    )
    cur_pre = any_of(b.currency_before)
    cur_post = any_of(b.currency_after)
    units = any_of(b.quantity_units)
    money = (
        rf"(?:{cur_pre}\s*|(?<![a-z0-9])(?<!\d[.,])){num}(?:\s*{cur_post})?(?![a-z0-9])"
        rf"(?!\s*{units})"
    )
    # "4000 all together", "一共3000": a total is a ceiling too.
    ceil_pre = any_of([*b.ceiling_before, *b.total])
    ceil_post = any_of([*b.ceiling_after, *b.total])
    floor_pre, floor_post = any_of(b.floor_before), any_of(b.floor_after)
    approx_pre, approx_post = any_of(b.approx_before), any_of(b.approx_after)
    range_pre, joiners = any_of(b.range_before), any_of(b.range_joiners)
    price = re.compile(
        rf"(?P<range>(?:(?P<rcue>{range_pre})\s*)?(?P<lo>{money})\s*{joiners}"
        rf"\s*(?P<hi>{money})(?:\s*(?P<rpost>之间|之内|以内|{ceil_post}))?)"
        rf"|(?P<approx>{approx_pre}\s*(?P<a1>{money})(?:\s*{approx_post})?"
        rf"|(?P<a2>{money})\s*{approx_post})"
        rf"|(?P<ceil>{ceil_pre}\s*:?\s*(?P<c1>{money})(?:\s*{ceil_post})?"
        rf"|(?P<c2>{money})\s*{ceil_post})"
        rf"|(?P<floor>{floor_pre}\s*:?\s*(?P<f1>{money})(?:\s*{floor_post})?"
        rf"|(?P<f2>{money})\s*{floor_post})"
        rf"|(?P<bare>{money})"
    )
    word_numbers = [*n.units, *n.scales, *n.fractions, *n.shifts, *n.joiners]
    word = any_of(word_numbers)
    neg = lex.negation
    # Typo targets are the catalog's words; every word any vocabulary knows is left alone
    # ("stones" is not a slip for "stoles", nor "chautha" for "chauth").
    targets_from = frozenset(
        w
        for vocab in (lex.articles, lex.colours, lex.recipients, lex.occasions)
        for t in vocab.terms
        for w in t.split()
    )
    known = targets_from | frozenset(w for phrase in lex.all_phrases() for w in phrase.split())
    targets: dict[str, tuple[str, ...]] = {}
    for term in sorted(targets_from):
        if term.isascii() and term.isalpha() and len(term) >= 6:
            targets[term[0]] = (*targets.get(term[0], ()), term)
    return Grammar(
        lexicon=lex,
        price=price,
        currency=re.compile(f"{cur_pre}|{cur_post}"),
        currency_after=re.compile(rf"\s*{cur_post}"),
        number_parts=re.compile(
            rf"(\d+(?:,\d{{2,3}})*(?:\.\d+)?)\s*((?:{multipliers})(?![a-z])|[百千万])?|({zh_num})"
        ),
        scales=scales,
        number_token=re.compile(rf"\d+(?:[.,]\d+)*k?|{'|'.join(map(re.escape, words))}|{zh_num}"),
        scaled=re.compile(rf"\d\s*(?:{multipliers})(?![a-z])"),
        number_words=re.compile(rf"{word}(?:\s+{word})*"),
        total=re.compile(any_of(b.total)),
        # English words may stand between ("don't want to spend over"); Chinese is adjacent.
        floor_negated=re.compile(rf"(?:{any_of(b.floor_negated_before)})(?:\s+[a-z]+){{0,4}}\s*$"),
        regret=re.compile(
            rf"\W{{0,3}}(?:is |are |would be |seems )?{any_of(b.floor_regret_after)}"
        ),
        neg_before=re.compile(rf"(?:{any_of(neg.before)})(?:\s+(?:by|from))?\s*$"),
        neg_after=re.compile(rf"^\s*(?:colou?r|tone|wala|wali|的)?\s*{any_of(neg.after)}"),
        article_neg_before=re.compile(
            rf"(?:{any_of(neg.before)})(?:\s+(?:a|an|the|any|more|of|those|these|some))*\s*$"
        ),
        list_sep=re.compile(r"\s*(?:,|/|or|nor|and|、|或者|或|和|ya)?\s*"),
        owned=re.compile(any_of(lex.anchors.owned)),
        links=tuple((re.compile(any_of([ln.phrase])), ln.direction) for ln in lex.anchors.links),
        zh_stop=re.compile(alternation(lex.zh_stopwords)),
        structure=re.compile(
            any_of([*lex.anchors.owned, *(ln.phrase for ln in lex.anchors.links), *b.total])
        ),
        typo_targets=targets,
        known_words=known,
    )


# --- numbers ---------------------------------------------------------------------------------
def _zh_number(text: str, g: Grammar) -> float:
    digits, units = g.lexicon.numbers.zh_digits, g.lexicon.numbers.zh_units
    total = section = digit = 0
    last_unit = 1
    for ch in text:
        if ch in digits:
            digit = digits[ch]
            if digit == 0:
                last_unit = 10  # "一千零五": a digit after 零 counts units
        elif ch in units and units[ch] < 10_000:
            section += (digit or 1) * units[ch]
            digit, last_unit = 0, units[ch]
        elif ch in units:  # 万
            total += (section + digit) * units[ch]
            section = digit = 0
            last_unit = units[ch]
    # A trailing bare digit abbreviates the next unit down: "三千五" is 3500.
    return float(total + section + digit * max(last_unit // 10, 1))


def _amount(text: str, g: Grammar) -> float | None:
    m = g.number_parts.search(text)
    if m is None:
        return None
    if m[3]:
        return _zh_number(m[3], g)
    value = float(m[1].replace(",", ""))
    # "3 grand" is 3,000; "4000 grand total" is 4,000: nobody counts thousands of thousands.
    scale = g.scales.get((m[2] or "").strip(), 1.0) if value < 1000 else 1.0
    return value * scale


def _scale(text: str, g: Grammar) -> float:
    m = g.number_parts.search(text)
    return g.scales.get((m[2] or "").strip(), 1.0) if m is not None else 1.0


def words_value(tokens: list[str], g: Grammar) -> float | None:
    """The value of a run of number words ("twelve hundred", "do hazaar paanch sau",
    "saade teen hazaar"), or None when the run is not a number."""
    n = g.lexicon.numbers
    total, current, shift = 0.0, None, 0.0
    for token in tokens:
        if token in n.joiners:
            continue
        if token in n.shifts:
            shift += n.shifts[token]
        elif token in n.units:
            current = (current or 0.0) + n.units[token] + shift
            shift = 0.0
        elif token in n.fractions:
            current = (current or 0.0) + n.fractions[token]
        elif token in n.scales:
            scale = n.scales[token]
            if scale < 1000:
                current = (current or 1.0) * scale
            else:
                total += (current or 1.0) * scale
                current = None
        else:
            return None
    value = total + (current or 0.0)
    return value or None


def _number_words(text: str, g: Grammar) -> str:
    """Number words become digits where they are surely an amount: the run has a scale word
    ("three grand", "do hazaar") or a currency follows ("fifty rupees"). "The first one" and
    "do you have" stay words."""
    n = g.lexicon.numbers

    def replace(m: re.Match[str]) -> str:
        phrase = m[0]
        tokens = _number_tokens(phrase, g)
        counted = any(t in n.units or t in n.fractions for t in tokens)
        if not counted or tokens[0] in n.joiners or re.search(r"\d\s*$", text[: m.start()]):
            return phrase  # "2 thousand" is read with its digits
        has_scale = any(t in n.scales for t in tokens)
        if not (has_scale or g.currency_after.match(text, m.end())):
            return phrase
        value = words_value(tokens, g)
        return phrase if value is None else f"{value:g}"

    return g.number_words.sub(replace, text)


def _number_tokens(phrase: str, g: Grammar) -> list[str]:
    n = g.lexicon.numbers
    words = {*n.units, *n.scales, *n.fractions, *n.shifts, *n.joiners}
    vocab = sorted(words, key=len, reverse=True)
    tokens, rest = [], phrase.strip()
    while rest:
        word = next((w for w in vocab if rest.startswith(w) and _edge(rest, len(w))), None)
        if word is None:
            return []
        tokens.append(word)
        rest = rest[len(word) :].strip()
    return tokens


def _edge(text: str, end: int) -> bool:
    return end >= len(text) or not text[end].isalnum()


# --- typos -----------------------------------------------------------------------------------
# Shoppers type fast. A word one edit (or one swap) away from a catalog term of 6+ letters
# ("silvr", "earings", "braclet") is read as that term; shorter terms are too close to
# ordinary words ("good" is one edit from "gold"), so only the listed slips (vocabulary
# ``typos``) are fixed for them, and words that are brands as well as ordinary words
# (``brand_words``: "guess what") are never corrected.


def _one_edit(a: str, b: str) -> bool:
    """One insertion, deletion, substitution or swap of neighbours turns ``a`` into ``b``."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = next((i for i in range(len(short)) if short[i] != long[i]), len(short))
    return short[i:] == long[i + 1 :]


def _fix_typos(text: str, g: Grammar) -> str:
    lex = g.lexicon

    def fix(match: re.Match[str]) -> str:
        word = match[0]
        if word in lex.typos:
            return lex.typos[word]
        if len(word) < 5 or word in g.known_words or word in lex.stopwords:
            return word
        if word in lex.brand_words:
            return word
        found = [t for t in g.typo_targets.get(word[0], ()) if _one_edit(word, t)]
        return found[0] if len(found) == 1 else word

    return re.sub(r"(?<![\w])[a-z]+(?![\w])", fix, text)


# --- the parser ------------------------------------------------------------------------------
def _blank(buf: list[str], start: int, end: int) -> None:
    buf[start:end] = " " * (end - start)


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


@dataclass
class _Found:
    """What a parse has taken out of the text so far."""

    values: dict[str, list[str]] = field(default_factory=dict)
    glosses: list[tuple[int, str]] = field(default_factory=list)  # (position, English term)
    article_groups: list[tuple[str, ...]] = field(default_factory=list)
    anchor_articles: list[str] = field(default_factory=list)
    anchor_colours: list[str] = field(default_factory=list)
    garment: str | None = None
    recipient: str | None = None

    def add(self, kind: str, values: Iterable[str]) -> None:
        self.values.setdefault(kind, []).extend(values)

    def get(self, kind: str) -> tuple[str, ...]:
        return _unique(self.values.get(kind, ()))


class QueryParser:
    def __init__(self, brands: Iterable[str] = (), *, strict: bool = False) -> None:
        """``strict``: a parser bug raises (tests) instead of searching without filters and
        logging it (production)."""
        self.strict = strict
        self.grammar = grammar()
        self.lexicon = self.grammar.lexicon
        self._brands = {normalise(b).lower(): b for b in brands if b and b.strip()}
        lex = self.lexicon
        known = (
            lex.brand_words
            | lex.stopwords
            | set(lex.articles.terms)
            | set(lex.colours.terms)
            | set(lex.recipients.terms)
            | set(lex.occasions.terms)
        )
        self._ordinary = {k for k in self._brands if all(w in known for w in k.split())}
        alternation_ = "|".join(re.escape(k) for k in sorted(self._brands, key=len, reverse=True))
        self._brand_re = (
            re.compile(rf"(?<!\w)(?:{alternation_})(?!\w)", re.IGNORECASE) if self._brands else None
        )

    def parse(self, text: str) -> ParsedQuery:
        raw = text if isinstance(text, str) else ""
        try:
            return self._parse(raw)
        except Exception:  # a bad query must never break search: no filters, but say so
            if self.strict:
                raise
            log.exception("query parser failed on %r; searching without filters", raw[:200])
            return ParsedQuery(raw, QueryFilters(), "", "")

    def _parse(self, raw: str) -> ParsedQuery:
        g = self.grammar
        text = normalise(raw[:_MAX_CHARS])
        found = _Found()
        text = _fix_typos(self._take_brands(text, found).lower(), g)
        text = _number_words(text, g)
        read = text
        text, min_price, max_price, total, around = _take_prices(text, g)
        spans = _anchor_spans(text, g)
        lex = self.lexicon
        for kind, vocab in (
            ("articles", lex.articles),
            ("colours", lex.colours),
            ("genders", lex.recipients),
            ("usages", lex.occasions),
        ):
            text = _take_terms(kind, vocab, text, found, spans, g)
        anchor = _anchor(read, spans, found, g)
        exclude_colours = found.get("exclude_colours")
        exclude_brands = found.get("exclude_brands")
        exclude_articles = found.get("exclude_articles")
        filters = QueryFilters(
            articles=tuple(a for a in _specific(found) if a not in exclude_articles),
            colours=tuple(c for c in found.get("colours") if c not in exclude_colours),
            genders=found.get("genders"),
            usages=found.get("usages"),
            brands=tuple(b for b in found.get("brands") if b not in exclude_brands),
            exclude_colours=exclude_colours,
            exclude_brands=exclude_brands,
            exclude_articles=exclude_articles,
            min_price=min_price,
            max_price=max_price,
        )
        rest = _remainder(text, g)
        english = [gl for _, gl in sorted(found.glosses)] + [t for t in rest if t.isascii()]
        search_text = " ".join(_unique(w for w in english if not CJK_RE.search(w)))
        return ParsedQuery(
            raw,
            filters,
            " ".join(rest),
            search_text,
            budget_total=total and max_price is not None,
            budget_around=around,
            article_groups=_narrow_groups(found.article_groups),
            anchor=anchor,
            recipient=found.recipient,
            text=read,
        )

    def _take_brands(self, text: str, found: _Found) -> str:
        if self._brand_re is None:
            return text
        buf, prev_neg = list(text), None
        for m in self._brand_re.finditer(text):
            key = " ".join(m[0].lower().split())
            opens = _SENTENCE_START.search(text[: m.start()]) and not m[0].isupper()
            product_next = self.lexicon.articles.pattern.match(text.lower(), m.end() + 1)
            if key in self._ordinary and (not m[0][0].isupper() or (opens and not product_next)):
                continue  # "guess what", "And kindly..." are not the brands Guess and AND
            neg = _negation(text.lower(), m.start(), m.end(), prev_neg, self.grammar)
            found.add("brands" if neg is None else "exclude_brands", [self._brands[key]])
            if neg is None:
                found.glosses.append((m.start(), key))
            else:
                prev_neg = m.end()
            _blank(buf, min(m.start(), neg or m.start()), max(m.end(), _neg_end(neg, m)))
        return "".join(buf)


def _narrow_groups(groups: Sequence[tuple[str, ...]]) -> tuple[tuple[str, ...], ...]:
    """The categories named, less a broad one that a narrower one names inside it: "a bag,
    a backpack" wants backpacks, "jewellery, maybe rings" rings."""
    sets = [set(g) for g in groups]
    return _unique(g for g, s in zip(groups, sets, strict=True) if not any(h < s for h in sets))


def narrowest(groups: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    """The articles of the narrowest categories named (`_narrow_groups`)."""
    return _unique(a for g in _narrow_groups(groups) for a in g)


def _specific(found: _Found) -> tuple[str, ...]:
    named = narrowest(found.article_groups)
    return tuple(a for a in found.get("articles") if a in named)


def _neg_end(neg: int | None, m: re.Match[str]) -> int:
    return m.end() if neg is None or neg <= m.start() else neg


def _take_prices(
    text: str, g: Grammar
) -> tuple[str, float | None, float | None, bool, float | None]:
    """The text less its prices, the floor, the ceiling, whether the budget is a total, and
    the amount of an approximate budget (the last one said wins, as for the others)."""
    buf, low, high, around = list(text), None, None, None
    for m in g.price.finditer(text):
        if m["range"]:
            a, b = _amount(m["lo"], g), _amount(m["hi"], g)
            if a is not None and b is not None and a < b / 100 and not g.scaled.search(m["lo"]):
                a *= _scale(m["hi"], g)  # "3-4k": the scale said once serves both ends
            cued = m["rcue"] or m["rpost"] or g.currency.search(m["range"])
            if a is None or b is None or not (cued or min(a, b) >= _BARE_RANGE_MIN):
                continue
            low, high, around = a, b, None
        elif m["approx"]:
            value = _amount(m["a1"] or m["a2"], g)
            if value is None or (value < _BARE_RANGE_MIN and not g.currency.search(m[0])):
                continue  # "简约一点" (more minimalist) holds 约一, "about 1": not a price
            low, high, around = round(value * 0.8, 2), round(value * 1.2, 2), value
        elif m["ceil"] or m["floor"]:
            value = _amount(m["c1"] or m["c2"] or m["f1"] or m["f2"], g)
            if value is None:
                continue
            # "Anything over 2000 is too much", "don't want to spend over 2000": ceilings
            # said with a floor's words.
            ceiling = (
                bool(m["ceil"])
                or bool(g.regret.match(text, m.end()))
                or bool(m["f1"] and g.floor_negated.search(text, max(0, m.start() - 40), m.start()))
            )
            low, high = (low, value) if ceiling else (value, high)
            around = None
        else:
            # A lone amount is the budget when it says it is money: a currency, or a scale
            # word ("2k", "3 thousand"); "一块手表" (one watch) is not ₹1.
            value = _amount(m["bare"], g)
            scaled = g.scaled.search(m["bare"]) is not None
            if value is None or value < 10 or not (g.currency.search(m["bare"]) or scaled):
                continue
            high, around = value, None
        _blank(buf, m.start(), m.end())
    if low is not None and high is not None and low > high:
        low, high = high, low
    total = bool(g.total.search(text)) and (low is not None or high is not None)
    return "".join(buf), low, high, total, around


def _negation(text: str, start: int, end: int, prev_neg_end: int | None, g: Grammar) -> int | None:
    """Where the negation of a term at ``start:end`` is (its start before the term, or its end
    after it), or None if the term is wanted."""
    if prev_neg_end is not None and g.list_sep.fullmatch(text, prev_neg_end, start):
        return start  # "no gold or silver": the negation carries along the list
    window = max(0, start - _NEGATION_WINDOW)
    if m := g.neg_before.search(text[window:start]):
        return window + m.start()
    for contrast in g.lexicon.negation.contrast:
        before = text[max(0, start - len(contrast.cue) - 12) : start]
        if re.search(rf"(?<![a-z]){re.escape(contrast.cue)}\s+(?:\w+\s+)?$", before) and any(
            re.search(rf"(?<![a-z]){re.escape(w)}(?![a-z])", text[:start]) for w in contrast.when
        ):
            return start
    if m := g.neg_after.match(text[end : end + _AFTER_WINDOW]):
        return end + m.end()
    return None


def _article_negation(text: str, start: int, end: int, g: Grammar) -> int | None:
    """Where the negation of a category named at ``start:end`` is, or None if it is wanted."""
    if m := g.article_neg_before.search(text[max(0, start - _NEGATION_WINDOW) : start]):
        return max(0, start - _NEGATION_WINDOW) + m.start()
    if m := g.neg_after.match(text[end : end + _AFTER_WINDOW]):
        return end + m.end()
    return None


def _take_terms(
    kind: str,
    vocab: Vocabulary,
    text: str,
    found: _Found,
    spans: list[tuple[int, int]],
    g: Grammar,
) -> str:
    buf, prev_neg = list(text), None
    for m, term in vocab.find(text):
        in_anchor = any(s <= m.start() < e for s, e in spans)
        if kind == "genders":
            found.recipient = found.recipient or term.text
            found.add(kind, genders_of(term.values))
            _blank(buf, m.start(), m.end())
            continue
        neg = None
        if kind == "colours" and not in_anchor:
            neg = _negation(text, m.start(), m.end(), prev_neg, g)
        elif kind == "articles" and not in_anchor:
            neg = _article_negation(text, m.start(), m.end(), g)
        if in_anchor and kind in ("articles", "colours"):
            (found.anchor_articles if kind == "articles" else found.anchor_colours).extend(
                term.values
            )
        elif neg is None:
            found.add(kind, term.values)
            found.glosses.append((m.start(), term.gloss))
            if kind == "articles":
                found.article_groups.append(term.values)
        else:
            found.add(f"exclude_{kind}", term.values)
            prev_neg = m.end()
        _blank(buf, min(m.start(), neg if neg is not None else m.start()), _neg_end(neg, m))
    return "".join(buf)


_GENDERS = {
    "women": ("Women", "Unisex"),
    "men": ("Men", "Unisex"),
    "girls": ("Girls", "Women", "Unisex"),
    "boys": ("Boys", "Men", "Unisex"),
    "unisex": ("Unisex",),
}


def genders_of(keys: tuple[str, ...]) -> tuple[str, ...]:
    """The catalog genders a recipient word's keys stand for ("girls": Girls, Women, Unisex)."""
    return tuple(g for key in keys for g in _GENDERS.get(key, (key,)))


def _noun_end(text: str, start: int, g: Grammar, words: int) -> int | None:
    """The end of the first article or garment word within ``words`` words after ``start``
    in its clause, or None (a recipient or nothing comes first)."""
    lex = g.lexicon
    clause = _CLAUSE_END.search(text, start)
    stop = clause.start() if clause else len(text)
    if CJK_RE.match(text[start:].lstrip()[:1] or " "):
        stop = min(stop, start + _ANCHOR_CJK_CHARS)
    else:
        spaces = [m.start() for m in re.finditer(r"\S+", text[start:stop])]
        if len(spaces) > words:
            stop = start + spaces[words]
    firsts = []
    for vocab in (lex.articles, lex.garments, lex.recipients):
        m = vocab.pattern.search(text, start, stop)
        if m is not None:
            firsts.append((m.start(), vocab.name, m.end()))
    if not firsts:
        return None
    _, name, end = min(firsts)
    return None if name == "recipients" else end


def _anchor_spans(text: str, g: Grammar) -> list[tuple[int, int]]:
    """Where the text describes what the wanted item must go with: after "to go with",
    "I'm wearing", "my" (up to its noun), before "ke saath". A span asking "which" or "what"
    is the wanted item, not the anchor."""
    spans: list[tuple[int, int]] = []
    starts = [(m.start(), m.end(), "owned", "after") for m in g.owned.finditer(text)]
    for pattern, direction in g.links:
        starts += [(m.start(), m.end(), "link", direction) for m in pattern.finditer(text)]
    owned_end = None
    for begin, at, kind, direction in sorted(starts):
        if direction == "after" and not _INTERROGATIVE.match(text[at:]):
            end = _noun_end(text, at, g, _ANCHOR_WORDS[kind])
            pointer = _PRONOUN.match(text[at:]) if kind == "link" else None
            if kind == "owned" and end is not None:
                owned_end = end if owned_end is None else owned_end
            elif owned_end is not None and begin >= owned_end and pointer is None:
                # "我有一件红色旗袍，想配一对金色耳环": once the owned piece is said, what a
                # link introduces is the wanted item.
                continue
            if end is None and pointer is not None:
                end = at + pointer.end()
            if end is not None:
                spans.append((at, end))
        elif kind == "link":
            # "Ke saath" follows its anchor; so does "go with" when what follows asks "which
            # bag": "gold earrings go with which bag?"
            clause = max((m.end() for m in _CLAUSE_END.finditer(text, 0, begin)), default=0)
            if text[clause:begin].strip():
                spans.append((clause, begin))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _anchor(
    text: str, spans: list[tuple[int, int]], found: _Found, g: Grammar
) -> AnchorPhrase | None:
    if not spans:
        return None
    lex = g.lexicon
    garment = None
    for start, end in spans:
        m = lex.garments.pattern.search(text, start, end)
        if m is not None:
            garment = lex.garments.terms[m[0]].gloss
            break
    articles, colours = _unique(found.anchor_articles), _unique(found.anchor_colours)
    words = " ".join(" ".join(text[s:e].split()) for s, e in spans)
    pointer = not (articles or colours or garment) and any(
        _PRONOUN.match(text[s:e]) for s, e in spans
    )
    if not (articles or colours or garment or pointer):
        return None
    return AnchorPhrase(words, articles, colours, garment, pointer)


def _remainder(text: str, g: Grammar) -> list[str]:
    tokens = re.split(r"[\W_]+", g.zh_stop.sub(" ", g.structure.sub(" ", text)))
    stop = g.lexicon.stopwords
    return [t for t in tokens if t and t not in stop and not g.number_token.fullmatch(t)]
