"""The grounding check every reply passes before a shopper sees it.

A sentence may name only prices, colours, categories, brands and materials that the turn's
tool results (or the shopper's own words) contain, must be in the shopper's language, and
must not quote the system prompt. Sentences that fail are dropped; if nothing is left the
agent falls back to its template.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bijou.catalog.schema import Product
from bijou.retrieval.lexicon import CJK_RE, TOKEN_RE, alternation, load_lexicon, to_simplified
from bijou.retrieval.look import look_of
from bijou.retrieval.query import QueryParser

_LEXICON = load_lexicon()

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
_WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
# Currency words and signs a reply may not use unless the shop's currency is that one.
_CURRENCY_RE = re.compile(
    r"[$¥￥€£]|元|人民币|美元|欧元|英镑|\b(?:yuan|rmb|usd|dollars?|euros?|pounds?)\b", re.IGNORECASE
)
_SMALL_NUMBER = 10  # ranks, quantities, "2 pieces": not prices
# A number framed as the shopper's budget: the lexicon's ceiling and floor cues.
_BUDGET_CUE = re.compile(
    "|".join(
        alternation(words)
        for words in (
            _LEXICON.budget.ceiling_before,
            _LEXICON.budget.ceiling_after,
            _LEXICON.budget.floor_before,
            _LEXICON.budget.approx_before,
            _LEXICON.budget.floor_after,
            _LEXICON.budget.range_before,
            ("budget", "预算", "your", "from"),
        )
    ),
    re.IGNORECASE,
)
ROLE_LABEL = re.compile(
    r"(?:^|[\s\"'“(。！？，、])(?:shopper|customer|user|assistant|system|human|bot|ai|"
    r"顾客|用户|助手|客服|系统|购物者)\s*[:：]",
    re.IGNORECASE,
)
THIRD_PERSON = re.compile(
    r"\bthe (?:shopper|customer|user|buyer|client)\b|\bshopping assistant\b|"
    r"\bthe assistant\b|顾客|购物者|该用户|这位用户|购物助手",
    re.IGNORECASE,
)
COMPARATIVE = re.compile(
    r"\b(?:than|cheaper|pricier|costlier|better|bigger|smaller|lighter|heavier)\b|比|更",
    re.IGNORECASE,
)
_ECHO_WORDS = 6
_AMOUNT_RE = re.compile(
    r"(?<![\w.])(\d+(?:\.\d+)?)\s?(ml|mm|cm|kg|gms?|grams?|g|carats?|ct|kt|karats?|"
    r"atm|bar|m|years?|yrs?|months?|毫升|毫米|厘米|克拉|克)(?![\w])",
    re.IGNORECASE,
)
_UNITS = {
    "毫升": "ml", "毫米": "mm", "厘米": "cm", "克": "g", "gm": "g", "gms": "g", "gram": "g",
    "grams": "g", "克拉": "ct", "carat": "ct", "carats": "ct", "karat": "kt", "karats": "kt",
    "year": "years", "yr": "years", "yrs": "years", "month": "months",
}  # fmt: skip


@dataclass(frozen=True)
class Grounding:
    """What a reply may mention this turn, each number in its role."""

    prices: frozenset[float]  # of the products shown, and totals the reply states
    budgets: frozenset[float]  # the shopper's: said only as a budget ("under ₹2,000")
    amounts: frozenset[tuple[float, str]]  # quantities with units in the records ("100 ml")
    colours: frozenset[str]
    articles: frozenset[str]
    brands: frozenset[str]
    materials: frozenset[str]  # English material words found in the products' own text
    occasions: frozenset[str]  # the products' usages and the shopper's
    language: str
    secret: str  # the system prompt: never quoted
    currency: str = "₹"  # the shop's own: any other currency in a reply is invented
    titles: frozenset[str] = frozenset()  # of the products shown, lower case
    allow_numbers: bool = True  # False for a lead sentence, which should hold none
    said: str = ""  # the shopper's own words, lower case

    @classmethod
    def of(
        cls,
        products: Iterable[Product],
        language: str,
        secret: str,
        *,
        said: str = "",
        parser: QueryParser,
        totals: Iterable[float] = (),
        budgets: Iterable[float] = (),
        extra_text: str = "",
        currency: str = "₹",
        allow_numbers: bool = True,
    ) -> Grounding:
        """``said``: the shopper's message and stated constraints, which may be echoed;
        ``extra_text``: facts the LLM was given (a record's sentences), whose numbers and
        amounts it may quote."""
        products = list(products)
        request = parser.parse(said).filters
        prices = {p.price for p in products} | {p.list_price for p in products}
        prices |= {float(n) for n in totals} | _numbers(extra_text)
        stated = {float(n) for n in budgets}
        stated |= {v for v in (request.min_price, request.max_price) if v is not None}
        text = " ".join([said, extra_text, *(_text_of(p) for p in products)])
        colours = {c for p in products for c in (*p.tones, *look_of(p).tones)}
        colours |= set(request.colours) | set(request.exclude_colours)
        return cls(
            prices=frozenset(prices),
            budgets=frozenset(stated),
            amounts=frozenset(amounts(text)),
            colours=frozenset(c for c in colours if c),
            articles=frozenset({p.article for p in products} | set(request.articles)),
            brands=frozenset(
                {p.brand for p in products} | set(request.brands) | set(request.exclude_brands)
            ),
            materials=frozenset(MATERIALS[m.lower()] for m in _materials(text)),
            occasions=frozenset({p.usage for p in products if p.usage} | set(request.usages)),
            language=language,
            secret=secret,
            currency=currency,
            titles=frozenset(p.title.lower() for p in products),
            allow_numbers=allow_numbers,
            said=said.lower(),
        )


@dataclass(frozen=True)
class Violation:
    sentence: str
    # price | budget | amount | currency | colour | article | brand | material | occasion |
    # language |
    # leak | label | person | echo | self_comparison
    kind: str
    detail: str


class ReplyVerifier:
    def __init__(self, parser: QueryParser) -> None:
        self.parser = parser  # knows the shop's brands

    def check(self, sentence: str, grounding: Grounding, *, asked: str = "") -> list[Violation]:
        """Every way ``sentence`` breaks the grounding; ``asked``: the shopper's message,
        which a reply must not parrot."""
        found: list[Violation] = []

        def bad(kind: str, detail: str) -> None:
            found.append(Violation(sentence, kind, detail))

        self._numbers(sentence, grounding, bad)
        parsed = self.parser.parse(sentence).filters
        for colour in (*parsed.colours, *parsed.exclude_colours):
            if colour not in grounding.colours and colour.lower() not in grounding.materials:
                bad("colour", colour)
        # Generic words ("jewellery") stand for several articles; any shown one grounds them.
        if parsed.articles and not set(parsed.articles) & grounding.articles:
            bad("article", "/".join(parsed.articles))
        # "A perfect choice for a wedding" of casual earrings nobody asked about for one.
        if parsed.usages and not set(parsed.usages) & grounding.occasions:
            bad("occasion", "/".join(parsed.usages))
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
        has_cjk = bool(CJK_RE.search(sentence))
        if (grounding.language == "zh") != has_cjk and re.search(r"\w{2}", sentence):
            bad("language", "zh" if has_cjk else "en")
        if _quotes(sentence, grounding.secret):
            bad("leak", "system prompt")
        if m := ROLE_LABEL.search(sentence):
            bad("label", m[0].strip())
        if m := THIRD_PERSON.search(sentence):
            bad("person", m[0])
        if asked and (run := _echo(sentence, asked, grounding.titles)):
            bad("echo", run)
        if COMPARATIVE.search(sentence) and any(
            sentence.lower().count(t) >= 2 for t in grounding.titles
        ):
            bad("self_comparison", "one product compared with itself")
        return found

    def _numbers(self, sentence: str, g: Grounding, bad: Callable[[str, str], None]) -> None:
        """Each number keeps its role: a price is a shown product's price (or a total), a
        budget is the shopper's and is said as one, an amount with a unit is in a record."""
        units = {(value, unit) for value, unit in amounts(sentence)}
        for value, unit in units:
            if (value, unit) not in g.amounts:
                bad("amount", f"{value:g} {unit}")
        measured = {value for value, _ in units}
        for value in _numbers(sentence):
            if value < _SMALL_NUMBER or value in measured:
                continue
            if not g.allow_numbers:
                if not _said_as_is(value, sentence, g.said):
                    bad("price", f"{value:g}")
            elif any(abs(value - p) < 0.5 for p in g.prices):
                continue
            elif any(abs(value - b) < 0.5 for b in g.budgets):
                if not speaks_of_budget(sentence):
                    bad("budget", f"{value:g}")  # the shopper's budget said as a price
            else:
                bad("price", f"{value:g}")


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
                     product.size_fit, *product.attributes.values()])  # fmt: skip


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
    han, said = "".join(CJK_RE.findall(secret)), "".join(CJK_RE.findall(sentence))
    return any(han[i : i + chars] in said for i in range(0, max(len(han) - chars + 1, 0)))


def amounts(text: str) -> set[tuple[float, str]]:
    """Amounts with a unit, as (value, canonical unit): "100ml" and "100 毫升" are (100, "ml")."""
    return {
        (float(m[1]), _UNITS.get(m[2].lower(), m[2].lower())) for m in _AMOUNT_RE.finditer(text)
    }


def _said_as_is(value: float, sentence: str, said: str) -> bool:
    """A number the shopper said, repeated in the same form and not as money ("your mom's
    60th birthday")."""
    for m in re.finditer(r"(\d+)(st|nd|rd|th)\b", sentence.lower()):
        if float(m[1]) == value and m[0] in said:
            return True
    return False


def _echo(sentence: str, asked: str, titles: frozenset[str]) -> str:
    """A run of the shopper's words the sentence repeats (product titles aside)."""
    text = sentence.lower()
    for title in sorted(titles, key=len, reverse=True):
        text = text.replace(title, " | ")
    asked_tokens = TOKEN_RE.findall(asked.lower())
    runs = {
        tuple(asked_tokens[i : i + _ECHO_WORDS]) for i in range(len(asked_tokens) - _ECHO_WORDS + 1)
    }
    for part in text.split("|"):
        tokens = TOKEN_RE.findall(part)
        for i in range(len(tokens) - _ECHO_WORDS + 1):
            if tuple(tokens[i : i + _ECHO_WORDS]) in runs:
                return " ".join(tokens[i : i + _ECHO_WORDS])
    return ""


def speaks_of_budget(sentence: str) -> bool:
    """The sentence frames its number as a budget ("under ₹2,000", "在₹2,000預算內"), in
    either Chinese script."""
    return bool(_BUDGET_CUE.search(to_simplified(sentence).lower()))
