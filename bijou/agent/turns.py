"""The deterministic half of understanding a shopper's message: what they want done (a dialog
move), which earlier result they point at, and how the hard constraints change.

The LLM never sets a price, a category or a cart action; those come from here. English and
Chinese, standard library plus the query parser, so every rule is testable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from bijou.agent.state import DialogState, Preferences
from bijou.catalog.schema import Product
from bijou.retrieval.query import ParsedQuery, QueryParser


class Move(StrEnum):
    SEARCH = "search"
    CHEAPER = "cheaper"
    MORE_LIKE = "more_like"
    QUESTION = "question"  # about a product shown: material, size, care...
    COMPARE = "compare"
    COMPLEMENTS = "complements"  # "what goes with it?"
    BUNDLE = "bundle"
    BLURB = "blurb"  # a marketing blurb for the last bundle
    CART_ADD = "cart_add"
    CART_REMOVE = "cart_remove"
    CART_VIEW = "cart_view"
    BLOCK = "block"  # "don't show me that again"
    GREETING = "greeting"
    THANKS = "thanks"
    INJECTION = "injection"
    UNKNOWN = "unknown"  # no shopping signal: the LLM decides between chat and off-topic


@dataclass(frozen=True)
class Understanding:
    move: Move
    parsed: ParsedQuery
    language: str
    ranks: tuple[int, ...] = ()  # 1-based ranks of earlier results; -1 is the last one
    quantity: int = 1


def _re(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


# Order matters: the first move whose pattern matches wins (cart before search, and so on).
_MOVES: tuple[tuple[Move, re.Pattern[str]], ...] = (
    (Move.INJECTION, _re(
        r"\b(ignore|disregard|forget)\b.{0,30}\b(instructions?|rules|prompt|above|previous)",
        r"\b(system|developer|hidden)\s+(prompt|message|instructions?)",
        r"\byou are now\b", r"\bact as\b.{0,20}\b(admin|developer|dan|jailbr)", r"\bjailbreak",
        r"\b(reveal|print|show|repeat|leak)\b.{0,25}\b(prompt|instructions|rules)\b",
        r"忽略.{0,12}(指令|提示|规则|设定)", r"系统提示", r"提示词", r"你现在是",
    )),
    (Move.CART_VIEW, _re(
        r"\b(show|view|see|check|open|what'?s in|what is in)\b.{0,12}\b(my )?(cart|basket)\b",
        r"^\s*(my )?(cart|basket)\s*\??\s*$", r"查看购物车", r"看看?(我的)?购物车",
        r"购物车里(有|都有)", r"^\s*(我的)?购物车\s*[?？]?\s*$",
    )),
    (Move.CART_REMOVE, _re(
        r"\b(remove|delete|take out|drop|get rid of)\b.{0,40}\b(cart|basket)\b",
        r"\btake\b.{0,30}\bout of\b.{0,10}\b(cart|basket)\b",
        r"^\s*(please\s+)?(remove|delete)\s+(it|that|this|that one|this one)\b",
        r"(从)?购物车.{0,8}(删除|删掉|移除|去掉|拿掉|拿出)",
        r"(删除|删掉|移除|去掉|拿掉).{0,8}购物车",
    )),
    (Move.CART_ADD, _re(
        r"\b(add|put|throw|place)\b.{0,40}\b(cart|basket)\b",
        r"\b(i'?ll|i will|let me|i want to|i'd like to)\s+(take|buy|get|order)\b.{0,20}"
        r"\b(it|that|this|one|them|both)\b",
        r"^\s*(please\s+)?(add|buy|take)\s+(it|that|this|that one|this one|the \w+ one)\b",
        r"(加|放|添加).{0,8}(到|进|入)购物车", r"加购",
        r"^\s*(这|那)?(两个|两件|俩)?都(要|买)", r"我要买(这|那|第)", r"买(这个|那个|它)",
    )),
    (Move.BLOCK, _re(
        r"\b(don'?t|do not|never|stop)\b.{0,12}\b(show|recommend|suggest|see)(ing)?\b.{0,30}"
        r"\bagain\b",
        r"\bnot interested in (that|this|it|the)\b",
        r"(别|不要|不想)再.{0,6}(看到|推荐|显示|给我看)",
    )),
    (Move.BLURB, _re(
        r"\b(blurb|tagline|slogan|ad copy|marketing|promo|pitch|caption)\b",
        r"\bwrite\b.{0,30}\b(description|ad|copy|post)\b", r"文案", r"广告语", r"宣传语",
    )),
    (Move.BUNDLE, _re(
        r"\bbundle\b", r"\b(complete|whole|full|entire)\s+(the\s+)?(look|outfit|set)\b",
        r"\bcombo\b", r"\bput together\b", r"\bgift (set|box|hamper) (of|with)\b",
        r"整套", r"套餐", r"组合", r"搭配一套", r"配一整套",
    )),
    (Move.COMPLEMENTS, _re(
        r"\b(go|goes|going|match|matches|pair|pairs|team|wear)\s+(well\s+)?with\b",
        r"\bmatching\b", r"\bcomplement", r"\baccessori[sz]e\b", r"\bstyle (it|this|that)\b",
        r"\bmatch(es)? (it|this|that|them|these|those)\b",
        r"\bwhat else\b", r"搭配", r"配什么", r"相配", r"配套", r"配得上",
    )),
    (Move.COMPARE, _re(
        r"\bcompare\b", r"\b(vs\.?|versus)\b", r"\bdifference between\b",
        r"\bwhich (one )?is (better|cheaper|nicer)\b", r"比较", r"对比", r"哪个更", r"区别",
    )),
    (Move.MORE_LIKE, _re(
        r"\bmore like\b", r"\bsimilar\b", r"\bsomething like\b", r"\blike the (\w+) one\b",
        r"\bother(s)? like\b", r"类似", r"相似", r"差不多的", r"像第",
    )),
    (Move.CHEAPER, _re(
        r"\bcheaper\b(?!\s+than\s+[\d₹])", r"\bless expensive\b",
        r"\btoo (expensive|pricey|costly)\b",
        r"\bmore affordable\b", r"\blower price", r"\bbudget[- ]friendly\b",
        r"便宜(一)?点", r"更便宜", r"太贵", r"便宜些", r"实惠",
    )),
    (Move.QUESTION, _re(
        r"\b(what|which|how|is|are|does|do|can|tell me)\b.{0,40}\b(made|material|metal|size|"
        r"length|weight|care|clean|stone|plated|plating|wash|fit|adjustable|warranty|"
        r"waterproof|water[- ]resistant|hypoallergenic|real|genuine|details?|more about)\b",
        r"\bhow much\b.{0,20}\b(it|that|this|they|them|these|those|one)\b",
        r"\b(price|cost)\b.{0,20}\b(it|that|this|they|them|these|those|one)\b",
        r"\b(what|how much) (does|do|did) (it|that|this|they|these|those)\b.{0,15}\bcost\b",
        r"材质|什么材料|什么做的|尺寸|多大|多长|多重|保养|详情|介绍一下|是真的|防水|过敏",
        r"多少钱|什么价|价格是多少|价格多少",
    )),
    (Move.THANKS, _re(
        r"^\s*((ok|okay|great|perfect|cool),?\s+)?(thanks|thank you|thx|ty|bye|goodbye|"
        r"that'?s all)\b,?\s*(a lot|so much|very much|again|(and )?bye)?[\s!.]*$",
        r"^\s*(好的?，?)?(谢谢|多谢|再见|拜拜)(你|您|啦|了)?[\s!！。]*$",
    )),
    (Move.GREETING, _re(
        r"^\s*(hi|hello|hey|hiya|good (morning|afternoon|evening)|namaste)\b[\s!.,]*(there)?"
        r"[\s!.]*$", r"^\s*(你好|您好|嗨|哈喽)[\s!！。]*$",
    )),
)  # fmt: skip

_ORDINALS = {
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
    "fifth": 5, "5th": 5, "last": -1, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
    "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "最后一": -1,
}  # fmt: skip
_RANK_RE = re.compile(
    r"\b(?:the\s+)?(first|1st|second|2nd|third|3rd|fourth|4th|fifth|5th|last)\s+"
    r"(?:one|item|option|product|piece|pick|choice|result)s?\b"
    r"|\bthe\s+(first|1st|second|2nd|third|3rd|fourth|4th|fifth|5th|last)\b"
    r"|(?:#|\bno\.?\s*|\bnumber\s+|\boption\s+|\bitem\s+)([1-5])\b"
    r"|第\s*([一二三四五1-5])\s*[个款条件只对枚]?|(最后一)[个款条件只对枚]",
    re.IGNORECASE,
)
# "The first two", "the last 3", "前两个": a run of ranks.
_COUNTS = {"two": 2, "three": 3, "four": 4, "five": 5, "两": 2, "二": 2, "三": 3, "四": 4, "五": 5}
_SPAN_RE = re.compile(
    r"\b(first|top|last)\s+(two|three|four|five|[2-5])\b"
    r"|(前|后|最后)\s*([两二三四五2-5])\s*[个款条件只对枚]",
    re.IGNORECASE,
)
# "Add 2 of them" is a quantity; only "both" means the first two in a cart request.
_BOTH_CART_RE = re.compile(r"\bboth\b|\b(the|these|those) two\b|两个都|都要|都加", re.I)
_BOTH_RE = re.compile(r"\b(both|the two|these two|them)\b|两个|这两", re.IGNORECASE)
_QUANTITY_RE = re.compile(
    r"\b([2-9])\s*(?:of (?:them|it|those)|pieces|pcs|x)\b"
    r"|(?<![第前后\d])([2-9两二三四五六七八九])\s*[个件条对只]"  # not "第2个" (a rank)
)
_ZH_QUANTITY = {"两": 2, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_SHOPPING_RE = _re(
    r"\b(gift|present|jewel|jewell?ery|accessor|recommend|suggest|looking for|show me|"
    r"want|need|buy|shop|something|anything|options?|ideas?|style|wear|outfit|look)\w*",
    r"礼物|推荐|想买|想要|看看|有没有|首饰|送给|饰品|配饰|适合",
)
_ANY_COLOUR_RE = _re(r"\bany (colou?r|metal|tone)\b", r"颜色不限|不限颜色|什么颜色都")
_ANY_PRICE_RE = _re(
    r"\b(no|any|without a?) (budget|price limit)\b",
    r"\bprice (doesn'?t|does not) matter\b",
    r"不限价格|价格不限|预算不限|不差钱",
)
_NOT_THAT_BRAND_RE = _re(
    r"\bnot (that|this) brand\b", r"\bother brands?\b", r"不要这个牌子|换个牌子"
)
_CJK_RE = re.compile(r"[\u3400-\u9fff]")


def language_of(text: str, fallback: str = "en") -> str:
    """Chinese if the message has Chinese characters, English if it has Latin words."""
    if _CJK_RE.search(text):
        return "zh"
    return "en" if re.search(r"[A-Za-z]{2,}", text) else fallback


def shopping_signal(text: str, parser: QueryParser) -> bool:
    """Does the text ask for something a shop sells (a category, colour, price, gift...)?"""
    return not parser.parse(text).filters.is_empty() or bool(_SHOPPING_RE.search(text))


def _ranks(text: str) -> tuple[int, ...]:
    found: list[tuple[int, int]] = []  # (position, rank)
    spans = []
    for m in _SPAN_RE.finditer(text):
        where, count = (m[1] or m[3]).lower(), m[2] or m[4]
        n = int(count) if count.isdigit() else _COUNTS[count.lower()]
        ranks = range(-n, 0) if where in ("last", "后", "最后") else range(1, n + 1)
        found += [(m.start(), r) for r in ranks]
        spans.append(m.span())
    for m in _RANK_RE.finditer(text):
        if any(m.start() < end and start < m.end() for start, end in spans):
            continue  # "the last" in "the last two"
        word = next(g for g in m.groups() if g)
        found.append((m.start(), _ORDINALS[word.lower()]))
    return tuple(dict.fromkeys(rank for _, rank in sorted(found, key=lambda f: f[0])))


def understand(message: str, state: DialogState, parser: QueryParser) -> Understanding:
    text = " ".join(message.split())
    parsed = parser.parse(text)
    language = language_of(text, state.language)
    move = next((m for m, pattern in _MOVES if pattern.search(text)), None)
    has_constraints = not parsed.filters.is_empty()
    if move is None:
        # "Any colour is fine", "no budget": dropping a constraint is a search too.
        relaxes = (
            _ANY_COLOUR_RE.search(text)
            or _ANY_PRICE_RE.search(text)
            or _NOT_THAT_BRAND_RE.search(text)
        )
        shopping = has_constraints or relaxes or _SHOPPING_RE.search(text)
        move = Move.SEARCH if shopping else Move.UNKNOWN
    elif move in (Move.GREETING, Move.THANKS) and has_constraints:
        move = Move.SEARCH
    ranks = _ranks(text)
    if not ranks and (
        (move is Move.COMPARE and _BOTH_RE.search(text))
        or (move is Move.CART_ADD and _BOTH_CART_RE.search(text))
    ):
        ranks = (1, 2)
    m = _QUANTITY_RE.search(text)
    count = (m.group(1) or m.group(2)) if m else "1"
    quantity = int(count) if count.isdigit() else _ZH_QUANTITY[count]
    return Understanding(move, parsed, language, ranks, quantity)


def referenced(state: DialogState, ranks: tuple[int, ...]) -> list[str]:
    """Product ids the ranks point at among the last results; the focus product otherwise."""
    ids = []
    for rank in ranks:
        index = rank - 1 if rank > 0 else len(state.shown) + rank
        if 0 <= index < len(state.shown):
            ids.append(state.shown[index])
    if not ranks and state.focus:
        ids.append(state.focus)
    return ids


def apply_constraints(state: DialogState, turn: Understanding) -> DialogState:
    """Carry the hard constraints forward: what the new message says replaces what it names;
    everything else (budget, recipient, exclusions) holds."""
    f = turn.parsed.filters
    new = state.model_copy(deep=True)
    new.language = turn.language
    text = turn.parsed.raw
    if f.articles and list(f.articles) != state.articles:
        new.articles = list(f.articles)
        new.soft = ""  # a new category starts a new description
    for name in ("colours", "genders", "usages", "brands"):
        if values := getattr(f, name):
            setattr(new, name, list(values))
    if _ANY_COLOUR_RE.search(text):
        new.colours = []
    # Naming an excluded colour or brand again ("gold is fine after all") lifts its exclusion.
    kept_colours = [c for c in new.exclude_colours if c not in f.colours]
    kept_brands = [b for b in new.exclude_brands if b not in f.brands]
    new.exclude_colours = _union(kept_colours, f.exclude_colours)
    new.exclude_brands = _union(kept_brands, f.exclude_brands)
    new.colours = [c for c in new.colours if c not in new.exclude_colours]
    new.brands = [b for b in new.brands if b not in new.exclude_brands]
    if _ANY_PRICE_RE.search(text):
        new.min_price = new.max_price = None
    elif f.min_price is not None or f.max_price is not None:
        new.min_price, new.max_price = f.min_price, f.max_price
    if turn.parsed.remainder.strip() and turn.move in (Move.SEARCH, Move.MORE_LIKE):
        new.soft = turn.parsed.search_text
    if f.usages:
        new.occasion = f.usages[0]
    if f.genders:
        new.recipient = f.genders[0]
    return new


def exclude_brand_of(state: DialogState, product: Product | None, text: str) -> DialogState:
    """ "Not that brand": the brand of the product being discussed is excluded from now on."""
    if product is None or not product.brand or not _NOT_THAT_BRAND_RE.search(text):
        return state
    new = state.model_copy(deep=True)
    new.exclude_brands = _union(new.exclude_brands, (product.brand,))
    new.brands = [b for b in new.brands if b != product.brand]
    return new


def cheaper(state: DialogState, shown_prices: list[float]) -> DialogState:
    """Below the cheapest product shown; with nothing shown, 20% under the current budget."""
    new = state.model_copy(deep=True)
    if shown_prices:
        new.max_price = round(min(shown_prices) - 1, 2)
    elif state.max_price is not None:
        new.max_price = round(state.max_price * 0.8, 2)
    if new.min_price is not None and new.max_price is not None and new.min_price > new.max_price:
        new.min_price = None
    return new


def remember(preferences: Preferences, state: DialogState) -> Preferences:
    """What a returning shopper keeps: taste and exclusions, not one gift's budget."""
    return preferences.model_copy(
        update={
            "colours": list(state.colours),
            "exclude_colours": list(state.exclude_colours),
            "exclude_brands": list(state.exclude_brands),
            "blocked_ids": list(state.blocked_ids),
            "language": state.language,
        }
    )


def _union(a: list[str], b: tuple[str, ...] | list[str]) -> list[str]:
    return list(dict.fromkeys([*a, *b]))
