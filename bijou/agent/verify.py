"""The grounding check every reply passes before a shopper sees it.

A sentence may name only prices, colours, categories, brands and materials that the turn's
tool results (or the shopper's own words) contain, must be in the shopper's language, and
must not quote the system prompt. Sentences that fail are dropped; if nothing is left the
agent falls back to its template.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bijou.catalog.schema import Product
from bijou.retrieval.query import QueryParser

# Material words a small model likes to invent ("real diamonds"); Chinese ones map to English.
MATERIALS = {
    "gold": "gold", "silver": "silver", "platinum": "platinum", "diamond": "diamond",
    "pearl": "pearl", "leather": "leather", "steel": "steel", "brass": "brass",
    "copper": "copper", "titanium": "titanium", "crystal": "crystal", "zircon": "zircon",
    "zirconia": "zircon", "ruby": "ruby", "emerald": "emerald", "sapphire": "sapphire",
    "kundan": "kundan", "ceramic": "ceramic", "silk": "silk", "cotton": "cotton",
    "鎏金": "gold", "黄金": "gold", "金": "gold", "银": "silver", "铂金": "platinum",
    "钻石": "diamond", "钻": "diamond", "珍珠": "pearl", "皮革": "leather", "真皮": "leather",
    "不锈钢": "steel", "黄铜": "brass", "铜": "copper", "钛": "titanium", "水晶": "crystal",
    "锆石": "zircon", "红宝石": "ruby", "祖母绿": "emerald", "蓝宝石": "sapphire",
    "陶瓷": "ceramic", "丝绸": "silk", "棉": "cotton",
}  # fmt: skip
_MATERIAL_RE = re.compile(
    "|".join(
        (rf"\b{re.escape(w)}(?:s|es)?\b" if w.isascii() else re.escape(w))
        for w in sorted(MATERIALS, key=len, reverse=True)
    ),
    re.IGNORECASE,
)
# ASCII look-behinds: a number right after a Chinese character ("只要999") is still a number.
_NUMBER_RE = re.compile(
    r"(?<![A-Za-z0-9_.])\d{1,3}(?:,\d{2,3})+(?:\.\d+)?|(?<![A-Za-z0-9_.,])\d+(?:\.\d+)?"
)
# Like sentence_end: an ASCII stop ends a sentence only before a space ("₹1,299.50" is one).
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*|\n+")
_CJK_RE = re.compile(r"[\u3400-\u9fff]")
_WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
# Currency words and signs a reply may not use unless the shop's currency is that one.
_CURRENCY_RE = re.compile(
    r"[$¥￥€£]|元|人民币|美元|欧元|英镑|\b(?:yuan|rmb|usd|dollars?|euros?|pounds?)\b", re.IGNORECASE
)
_SMALL_NUMBER = 10  # ranks, quantities, "2 pieces": not prices


@dataclass(frozen=True)
class Grounding:
    """What a reply may mention this turn."""

    prices: frozenset[float]
    colours: frozenset[str]
    articles: frozenset[str]
    brands: frozenset[str]
    materials: frozenset[str]  # English material words found in the products' own text
    language: str
    secret: str  # the system prompt: never quoted
    currency: str = "₹"  # the shop's own: any other currency in a reply is invented

    @classmethod
    def of(
        cls,
        products: Iterable[Product],
        language: str,
        secret: str,
        *,
        said: str = "",
        parser: QueryParser,
        extra_numbers: Iterable[float] = (),
        extra_text: str = "",
        currency: str = "₹",
    ) -> Grounding:
        """``said``: the shopper's message and stated constraints, which may be echoed."""
        products = list(products)
        request = parser.parse(said).filters
        prices = {p.price for p in products} | {p.list_price for p in products}
        prices |= {float(n) for n in extra_numbers}
        prices |= _numbers(said) | _numbers(extra_text)
        # The budget as parsed ("under 2k", "两千以内") may be echoed as "₹2,000".
        prices |= {v for v in (request.min_price, request.max_price) if v is not None}
        text = " ".join([said, extra_text, *(_text_of(p) for p in products)])
        colours = {c for p in products for c in p.tones} | {p.colour for p in products}
        colours |= set(request.colours) | set(request.exclude_colours)
        return cls(
            prices=frozenset(prices),
            colours=frozenset(c for c in colours if c),
            articles=frozenset({p.article for p in products} | set(request.articles)),
            brands=frozenset(
                {p.brand for p in products} | set(request.brands) | set(request.exclude_brands)
            ),
            materials=frozenset(MATERIALS[m.lower()] for m in _materials(text)),
            language=language,
            secret=secret,
            currency=currency,
        )


@dataclass(frozen=True)
class Violation:
    sentence: str
    kind: str  # price | currency | colour | article | brand | material | language | leak
    detail: str


class ReplyVerifier:
    def __init__(self, parser: QueryParser) -> None:
        self.parser = parser  # knows the shop's brands

    def check(self, sentence: str, grounding: Grounding) -> list[Violation]:
        found: list[Violation] = []

        def bad(kind: str, detail: str) -> None:
            found.append(Violation(sentence, kind, detail))

        for value in _numbers(sentence):
            if value >= _SMALL_NUMBER and not any(abs(value - p) < 0.5 for p in grounding.prices):
                bad("price", f"{value:g}")
        parsed = self.parser.parse(sentence).filters
        for colour in (*parsed.colours, *parsed.exclude_colours):
            if colour not in grounding.colours and colour.lower() not in grounding.materials:
                bad("colour", colour)
        # Generic words ("jewellery") stand for several articles; any shown one grounds them.
        if parsed.articles and not set(parsed.articles) & grounding.articles:
            bad("article", "/".join(parsed.articles))
        for brand in (*parsed.brands, *parsed.exclude_brands):
            if brand not in grounding.brands:
                bad("brand", brand)
        for word in _materials(sentence):
            if MATERIALS[word.lower()] not in grounding.materials:
                bad("material", word)
        if (found_currency := _CURRENCY_RE.search(sentence)) and found_currency[
            0
        ] != grounding.currency:
            bad("currency", found_currency[0])  # "225元": the shop does not price in yuan
        has_cjk = bool(_CJK_RE.search(sentence))
        if (grounding.language == "zh") != has_cjk and re.search(r"\w{2}", sentence):
            bad("language", "zh" if has_cjk else "en")
        if _quotes(sentence, grounding.secret):
            bad("leak", "system prompt")
        return found

    def repair(self, text: str, grounding: Grounding) -> tuple[str, list[Violation]]:
        """The text without its failing sentences, and what failed."""
        kept, failed = [], []
        for sentence in split_sentences(text):
            problems = self.check(sentence, grounding)
            failed += problems
            if not problems:
                kept.append(sentence)
        joiner = "" if grounding.language == "zh" else " "
        return joiner.join(kept), failed


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_RE.split(text) if s and s.strip()]


def sentence_end(text: str) -> int:
    """Where the first complete sentence of streamed text ends, or -1."""
    m = re.search(r"[.!?。！？](?=\s|$)|[。！？]|\n", text)
    return -1 if m is None else m.end()


def _numbers(text: str) -> set[float]:
    return {float(m.replace(",", "")) for m in _NUMBER_RE.findall(text)}


def _materials(text: str) -> list[str]:
    return [m.rstrip("s") if m.lower().rstrip("s") in MATERIALS else m
            for m in _MATERIAL_RE.findall(text)]  # fmt: skip


def _text_of(product: Product) -> str:
    return " ".join([product.title, product.colour, product.materials_care, product.description,
                     *product.attributes.values()])  # fmt: skip


def _quotes(sentence: str, secret: str, words: int = 6, chars: int = 12) -> bool:
    """True if the sentence repeats a run of the secret: 6 words, or 12 Chinese characters."""
    if not secret:
        return False
    # Words and Han characters only, so a changed comma or full stop does not hide a quote.
    low = f" {' '.join(_WORD_RE.findall(sentence.lower()))} "
    tokens = _WORD_RE.findall(secret.lower())
    for i in range(len(tokens) - words + 1):
        if f" {' '.join(tokens[i : i + words])} " in low:
            return True
    han, said = "".join(_CJK_RE.findall(secret)), "".join(_CJK_RE.findall(sentence))
    return any(han[i : i + chars] in said for i in range(0, max(len(han) - chars + 1, 0)))
