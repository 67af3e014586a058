"""Deterministic shopper-query parser: free text (English or Chinese) -> hard filters + remainder.

Standard library only: it runs on every request, so it must be cheap, predictable and testable.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, fields

_MAX_CHARS = 1000  # real queries are short; the cap keeps the regex passes cheap on junk input
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{_CJK}]")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _alternation(terms: Iterable[str]) -> str:
    """Longest-first alternation; ASCII edges get word boundaries so "ring" misses "earring"."""
    parts = []
    for term in sorted(set(terms), key=len, reverse=True):
        left = "(?<![a-z0-9])" if term[0].isascii() and term[0].isalnum() else ""
        right = "(?![a-z0-9])" if term[-1].isascii() and term[-1].isalnum() else ""
        parts.append(left + re.escape(term) + right)
    return "|".join(parts)


# fmt: off
_JEWELLERY = ("Earrings", "Pendant", "Necklace and Chains", "Ring", "Bangle", "Bracelet",
              "Jewellery Set")
_BAGS = ("Handbags", "Clutches", "Backpacks", "Duffel Bag", "Laptop Bag", "Messenger Bag",
         "Rucksacks", "Trolley Bag", "Waist Pouch", "Mobile Pouch")
_W, _M = ("Women", "Unisex"), ("Men", "Unisex")

# (synonyms, canonical catalog values, English gloss used in search_text for Chinese synonyms).
# English synonyms get their plural added automatically; matching is longest-first.
_Entry = tuple[tuple[str, ...], tuple[str, ...], str]

_ARTICLES: tuple[_Entry, ...] = (
    (("earring", "ear ring", "stud", "jhumka", "jhumki", "hoop", "dangler", "耳环", "耳钉", "耳坠"),
     ("Earrings",), "earrings"),
    (("pendant", "locket", "吊坠"), ("Pendant",), "pendant"),
    (("necklace", "chain", "choker", "mangalsutra", "项链", "链子"), ("Necklace and Chains",),
     "necklace"),
    (("ring", "戒指"), ("Ring",), "ring"),
    (("bangle", "kada", "手镯"), ("Bangle",), "bangle"),
    (("bracelet", "手链"), ("Bracelet",), "bracelet"),
    (("jewellery set", "jewelry set", "套装首饰", "首饰套装"), ("Jewellery Set",), "jewellery set"),
    (("jewellery", "jewelry", "jewel", "首饰", "珠宝"), _JEWELLERY, "jewellery"),
    (("watch", "wristwatch", "timepiece", "手表", "腕表"), ("Watches",), "watch"),
    (("handbag", "purse", "tote", "手提包"), ("Handbags",), "handbag"),
    (("bag", "包", "包包"), _BAGS, "bag"),
    (("clutch", "手拿包"), ("Clutches",), "clutch"),
    (("backpack", "双肩包", "背包"), ("Backpacks", "Rucksacks"), "backpack"),
    (("rucksack",), ("Rucksacks", "Backpacks"), "rucksack"),
    (("duffel bag", "duffle bag", "duffel", "gym bag"), ("Duffel Bag",), "duffel bag"),
    (("laptop bag", "电脑包"), ("Laptop Bag",), "laptop bag"),
    (("messenger bag", "sling bag", "斜挎包"), ("Messenger Bag",), "messenger bag"),
    (("trolley bag", "trolley", "suitcase", "luggage", "行李箱", "拉杆箱"), ("Trolley Bag",),
     "trolley bag"),
    (("waist pouch", "belt bag", "fanny pack", "腰包"), ("Waist Pouch",), "waist pouch"),
    (("mobile pouch", "phone pouch", "手机包"), ("Mobile Pouch",), "mobile pouch"),
    (("tablet sleeve", "laptop sleeve"), ("Tablet Sleeve",), "tablet sleeve"),
    (("wallet", "钱包"), ("Wallets",), "wallet"),
    (("belt", "皮带", "腰带"), ("Belts",), "belt"),
    (("perfume", "fragrance", "scent", "body mist", "cologne", "香水"),
     ("Perfume and Body Mist", "Fragrance Gift Set"), "perfume"),
    (("fragrance gift set", "perfume gift set", "香水礼盒"), ("Fragrance Gift Set",),
     "perfume gift set"),
    (("deodorant", "deo", "止汗露"), ("Deodorant",), "deodorant"),
    (("sunglasses", "sunglass", "shades", "sunnies", "太阳镜", "墨镜"), ("Sunglasses",),
     "sunglasses"),
    (("dress", "连衣裙", "裙子"), ("Dresses",), "dress"),
    (("saree", "sari", "纱丽"), ("Sarees",), "saree"),
    (("scarf", "scarves", "stole", "围巾", "丝巾"), ("Scarves",), "scarf"),
    (("cufflink", "cuff link", "袖扣"), ("Cufflinks", "Ties and Cufflinks"), "cufflinks"),
    (("tie", "necktie", "领带"), ("Ties and Cufflinks",), "tie"),
    (("jumpsuit", "连体裤"), ("Jumpsuit",), "jumpsuit"),
)

_PLAIN_COLOURS = ("Maroon", "Olive", "Teal", "Mustard", "Peach", "Lavender", "Tan", "Magenta",
                  "Khaki", "Charcoal", "Rust", "Mauve", "Taupe", "Rose")
_COLOURS: tuple[_Entry, ...] = (
    (("gold", "golden", "gold plated", "gold tone", "gold toned", "yellow gold", "金", "金色",
      "黄金"), ("Gold",), "gold"),
    (("silver", "sterling", "sterling silver", "silver plated", "silver tone", "oxidised",
      "oxidized", "银", "银色", "纯银"), ("Silver",), "silver"),
    # The catalog has no "Rose Gold": such pieces are tagged Rose, Gold or Copper, so take all 3.
    (("rose gold", "rosegold", "玫瑰金"), ("Rose", "Gold", "Copper"), "rose gold"),
    (("white gold", "platinum", "白金", "铂金"), ("Silver", "White"), "white gold"),
    (("steel", "stainless", "stainless steel", "不锈钢", "钢"), ("Steel",), "steel"),
    (("navy", "navy blue", "藏青", "藏蓝", "海军蓝"), ("Navy Blue",), "navy blue"),
    (("grey", "gray", "灰", "灰色"), ("Grey",), "grey"),
    (("multi", "multicolour", "multicolor", "multi colour", "multi color", "multicoloured",
      "multicolored", "colourful", "colorful", "多色", "彩色"), ("Multi",), "multicolour"),
    (("wine", "burgundy", "wine red", "酒红", "酒红色"), ("Burgundy", "Maroon"), "burgundy"),
    (("off white", "ivory", "米白", "米白色"), ("Off White",), "off white"),
    (("black", "黑", "黑色"), ("Black",), "black"),
    (("white", "白", "白色"), ("White",), "white"),
    (("red", "红", "红色"), ("Red",), "red"),
    (("blue", "蓝", "蓝色"), ("Blue",), "blue"),
    (("green", "绿", "绿色"), ("Green",), "green"),
    (("pink", "粉", "粉色", "粉红", "粉红色"), ("Pink",), "pink"),
    (("purple", "violet", "紫", "紫色"), ("Purple",), "purple"),
    (("brown", "棕", "棕色", "咖啡色", "褐色"), ("Brown",), "brown"),
    (("yellow", "黄", "黄色"), ("Yellow",), "yellow"),
    (("orange", "橙", "橙色"), ("Orange",), "orange"),
    (("beige", "米色"), ("Beige",), "beige"),
    (("cream", "奶油色"), ("Cream",), "cream"),
    (("copper", "铜", "铜色"), ("Copper",), "copper"),
    (("bronze", "古铜", "古铜色"), ("Bronze",), "bronze"),
    (("metallic", "金属"), ("Metallic",), "metallic"),
    (("turquoise", "turquoise blue", "绿松石"), ("Turquoise Blue",), "turquoise"),
    (("coffee brown", "coffee"), ("Coffee Brown",), "coffee brown"),
    (("mushroom brown",), ("Mushroom Brown",), "mushroom brown"),
    (("sea green",), ("Sea Green",), "sea green"),
    (("fluorescent green", "neon green"), ("Fluorescent Green",), "fluorescent green"),
    (("lime green", "lime"), ("Lime Green",), "lime green"),
    (("nude", "skin tone"), ("Skin",), "nude"),  # bare "skin" is too often not a colour
    *(((c.lower(),), (c,), c.lower()) for c in _PLAIN_COLOURS),
)

_GENDERS: tuple[_Entry, ...] = (
    (("wife", "girlfriend", "gf", "mom", "mum", "mummy", "mommy", "mother", "sister", "her",
      "she", "women", "woman", "ladies", "lady", "female", "womens", "aunt", "aunty", "auntie",
      "fiancee", "fiancée", "bride", "grandma", "grandmother", "granny", "bhabhi", "didi",
      "女士", "女性", "女式", "女款", "女生", "女人", "老婆", "妻子", "太太", "女朋友", "女友",
      "妈妈", "母亲", "姐姐", "妹妹", "奶奶", "外婆", "姥姥", "阿姨", "婶婶", "舅妈", "未婚妻",
      "新娘", "她", "女"), _W, ""),
    (("husband", "hubby", "boyfriend", "bf", "dad", "daddy", "papa", "father", "brother", "him",
      "his", "he", "men", "man", "gents", "gent", "male", "mens", "uncle", "fiance", "fiancé",
      "groom", "grandpa", "grandfather", "grandad", "granddad", "bhaiya", "男士", "男性", "男式",
      "男款", "男生", "男人", "老公", "丈夫", "男朋友", "男友", "爸爸", "父亲", "哥哥", "弟弟",
      "爷爷", "外公", "姥爷", "叔叔", "舅舅", "伯伯", "未婚夫", "新郎", "他", "男"), _M, ""),
    (("daughter", "girl", "niece", "女儿", "女孩"), ("Girls", "Women", "Unisex"), ""),
    (("son", "boy", "nephew", "儿子", "男孩"), ("Boys", "Men", "Unisex"), ""),
    (("unisex", "中性", "男女通用"), ("Unisex",), ""),
)

_USAGES: tuple[_Entry, ...] = (
    (("wedding", "bridal", "婚礼", "结婚"), ("Ethnic", "Party"), "wedding"),
    (("festive", "festival", "diwali", "节日"), ("Ethnic", "Party"), "festive"),
    (("traditional", "ethnic", "传统"), ("Ethnic", "Party"), "ethnic"),
    (("party", "parties", "cocktail", "night out", "date night", "派对", "聚会", "晚宴", "约会"),
     ("Party",), "party"),
    (("office", "work", "formal", "business", "interview", "meeting", "corporate", "上班",
      "办公", "正式", "商务", "面试", "职场"), ("Formal", "Smart Casual"), "office"),
    (("smart casual",), ("Smart Casual",), "smart casual"),
    (("casual", "everyday", "daily", "日常", "休闲"), ("Casual",), "casual"),
    (("sports", "sport", "sporty", "gym", "running", "workout", "运动", "健身"), ("Sports",),
     "sports"),
    (("travel", "trip", "travelling", "traveling", "vacation", "旅行", "旅游"), ("Travel",),
     "travel"),
)

_STOPWORDS = _words(
    "a an the for my me i im m s t d ll ve re want wants wanted wanna would like to looking look "
    "searching search show find get buy need needs some something any please pls plz with of in "
    "on at and or that which is are be it can could you your we us our have has do does don "
    "price priced prices cost costs costing range rupee rupees rs inr bucks budget pair one "
    "suggest recommend help give colour colours color colors coloured colored what nothing "
    "spend spending surprise coming up soon there this these those got really very nice "
    "lower raise increase reduce change make now instead"
)
_ZH_STOP_RE = re.compile(_alternation(_words(
    "我想要 我想买 我要买 我要 我想 想要 想买 帮我找 帮我 给我 请问 请 推荐 找一下 找 买 送给 "
    "送 给 一条 一对 一个 一副 一只 一款 一件 一串 一枚 一套 一块 一些 的 我 有没有 吗 呢 吧 "
    "啊 价格 价位 预算 在 和 或者 或 还有 适合 戴 款 卢比 块钱 元 买个 个"
)))
# Brand names that are also ordinary words only count when the shopper capitalised them.
_ORDINARY = _words(
    "guess police only mango arrow axe gas force mint just kiss forever lotus royal classic "
    "basics jewel diva style fashion united colors life being human spice sparkle charm"
)

# --- prices -------------------------------------------------------------------------------
_ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
              "七": 7, "八": 8, "九": 9}
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000}
_MULTIPLIERS = {"k": 1e3, "thousand": 1e3, "千": 1e3, "lakh": 1e5, "lakhs": 1e5, "lac": 1e5,
                "lacs": 1e5, "万": 1e4, "百": 1e2}
_ZH_NUM = "[一二两三四五六七八九十][零〇一二两三四五六七八九十百千万]*"
_NUM = (rf"(?:\d+(?:,\d{{2,3}})*(?:\.\d+)?(?:\s*(?:k(?!\s*gold)|thousand|lakhs?|lacs?)(?![a-z])"
        rf"|\s*[百千万])?|{_ZH_NUM})")
_NUM_PARTS = re.compile(
    rf"(\d+(?:,\d{{2,3}})*(?:\.\d+)?)\s*(k|thousand|lakhs?|lacs?|[百千万])?|({_ZH_NUM})"
)
_CUR_PRE = r"(?:(?<![a-z])(?:rs\.?|inr|rupees?)|₹)"
_CUR_POST = r"(?:(?:rupees?|rs\.?|inr|bucks)(?![a-z])|/-|₹|卢比|块钱|块|元)"
_CURRENCY_RE = re.compile(f"{_CUR_PRE}|{_CUR_POST}")
_UNIT = r"(?:ml|gms?|grams?|cm|mm|inch(?:es)?|pcs|pieces?|packs?|carats?|karats?|kt|ct|pairs?)"
_MONEY = (rf"(?:{_CUR_PRE}\s*|(?<![a-z0-9])(?<!\d[.,])){_NUM}(?:\s*{_CUR_POST})?(?![a-z0-9])"
          rf"(?!\s*(?:{_UNIT}(?![a-z])|[克件个只枚对条套副]|毫升))")


def _cue(words: str) -> str:
    return f"(?:{_alternation(words.split('|'))})"


_CEIL_PRE = _cue("under|below|less than|lesser than|lower than|up to|upto|max|maximum|within|"
                 "budget to|budget at|budget now|budget is now|limit to|cap at|cap it at|"
                 "lower to|down to|drop to|reduce to|bring it to|bring it down to|"
                 "no more than|not more than|not over|not above|no higher than|cheaper than|"
                 "at most|at the most|at max|budget of|budget is|budget|<|<=|≤|"
                 "can't spend more than|cant spend more than|cannot spend more than|"
                 "can not spend more than|don't want to spend more than|not spend more than|"
                 "nothing above|nothing over|nothing more than|nothing beyond|not beyond|"
                 "my max is|max is|my limit is|limit is|limit of|limit|keep it under|"
                 "低于|少于|不超过|不高于|不到|最多|最高|预算|预算是|预算为")
_CEIL_POST = _cue("以内|以下|之内|内|budget|or less|or below|or under|and under|and below|max|"
                  "tops|or cheaper")
_FLOOR_PRE = _cue("over|above|more than|greater than|higher than|at least|atleast|min|minimum|"
                  "starting|starting at|starting from|starts at|starts from|from|>|>=|≥|超过|高于|"
                  "至少|最低|不低于|不少于|大于|多于")
_FLOOR_POST = _cue("以上|起|and above|and up|or more|or above|plus|+|onwards|upwards|and more")
_APPROX_PRE = _cue("around|about|roughly|approximately|approx|nearly|close to|~|大约|大概|约")
_APPROX_POST = _cue("左右|上下|ish")
_RANGE_CUE = _cue("between|from|budget|budget is|budget of|预算|预算在|预算是|价格在|在")
_PRICE_RE = re.compile(
    rf"(?P<range>(?:(?P<rcue>{_RANGE_CUE})\s*)?(?P<lo>{_MONEY})\s*(?:-|~|{_cue('to|and|到|至|和')})"
    rf"\s*(?P<hi>{_MONEY})(?:\s*(?P<rpost>之间|之内|以内))?)"
    rf"|(?P<approx>{_APPROX_PRE}\s*(?P<a1>{_MONEY})(?:\s*{_APPROX_POST})?"
    rf"|(?P<a2>{_MONEY})\s*{_APPROX_POST})"
    rf"|(?P<ceil>{_CEIL_PRE}\s*:?\s*(?P<c1>{_MONEY})(?:\s*{_CEIL_POST})?|(?P<c2>{_MONEY})\s*{_CEIL_POST})"
    rf"|(?P<floor>{_FLOOR_PRE}\s*:?\s*(?P<f1>{_MONEY})(?:\s*{_FLOOR_POST})?"
    rf"|(?P<f2>{_MONEY})\s*{_FLOOR_POST})"
    rf"|(?P<bare>{_MONEY})"
)
_BARE_RANGE_MIN = 50  # an uncued, currency-less "6-8" is a size; shop prices start well above

# --- negation and normalisation --------------------------------------------------------------
_NEG_TAIL = re.compile(
    r"(?:(?<![a-z])(?:no|not|non|nothing|isn't|isnt|aren't|arent|without|except|excluding|"
    r"avoid|anything but|other than|"
    r"don't want|dont want|do not want|never)(?:\s+(?:by|from))?|不要|非|除了|不是|别|不含)\s*$",
    re.IGNORECASE,
)
_LIST_SEP = re.compile(r"\s*(?:,|/|or|nor|and|、|或者|或|和)?\s*", re.IGNORECASE)
_SCRIPT_EDGE = re.compile(f"(?<=[{_CJK}])(?=[^{_CJK}\\s])|(?<=[^{_CJK}\\s])(?=[{_CJK}])")
_LETTER_HYPHEN = re.compile(r"(?<=[^\W\d_])-(?=[^\W\d_])")  # "gold-plated" -> "gold plated"
_POSSESSIVE = re.compile(r"(?<=[a-z])'s\b", re.IGNORECASE)  # "women's" -> "women"
_PUNCT = str.maketrans({"’": "'", "‘": "'", "–": "-", "—": "-", "－": "-", "～": "~"})
_NUMBER_TOKEN = re.compile(rf"\d+(?:[.,]\d+)*k?|thousand|lakhs?|lacs?|{_ZH_NUM}")

# fmt: on


@dataclass(frozen=True)
class QueryFilters:
    articles: tuple[str, ...] = ()
    colours: tuple[str, ...] = ()
    genders: tuple[str, ...] = ()
    usages: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    exclude_colours: tuple[str, ...] = ()
    exclude_brands: tuple[str, ...] = ()
    min_price: float | None = None
    max_price: float | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) in ((), None) for f in fields(self))


@dataclass(frozen=True)
class ParsedQuery:
    raw: str
    language: str
    filters: QueryFilters
    remainder: str
    search_text: str


@dataclass(frozen=True)
class _Vocab:
    pattern: re.Pattern[str]
    values: dict[str, tuple[str, ...]]
    gloss: dict[str, str]  # CJK synonym -> English; English synonyms gloss as themselves


def _forms(term: str) -> tuple[str, ...]:
    if not term.isascii():
        return (term,)
    return (term, term + ("es" if term.endswith(("s", "x", "ch", "sh")) else "s"))


def _vocab(entries: Iterable[_Entry]) -> _Vocab:
    values: dict[str, tuple[str, ...]] = {}
    gloss: dict[str, str] = {}
    for synonyms, canonical, english in entries:
        for term in (form for s in synonyms for form in _forms(s)):
            values.setdefault(term, canonical)
            if not term.isascii():
                gloss[term] = english
    return _Vocab(re.compile(_alternation(values)), values, gloss)


_VOCABS = {
    kind: _vocab(table)
    for kind, table in (
        ("articles", _ARTICLES),
        ("colours", _COLOURS),
        ("genders", _GENDERS),
        ("usages", _USAGES),
    )
}
# The category vocabulary, for modules that match it in other texts (stylist notes).
ARTICLE_VOCAB = _VOCABS["articles"]


# Shoppers type fast. A word one edit (or one swap) away from a catalog term of 6+ letters
# ("silvr", "earings", "braclet") is read as that term; shorter terms are too close to
# ordinary words ("good" is one edit from "gold"), so only listed slips are fixed for them.
_TYPOS = {
    "undr": "under",
    "udner": "under",
    "unde": "under",
    "bellow": "below",
    "belw": "below",
    "neckless": "necklace",
    "necklas": "necklace",
    "jewlery": "jewellery",
    "jewelery": "jewellery",
    "jewlry": "jewelry",
    "jwellery": "jewellery",
    "rign": "ring",
    "rngs": "rings",
    "wach": "watch",
    "watchs": "watches",
    "glod": "gold",
    "gld": "gold",
    "blak": "black",
    "blck": "black",
    "balck": "black",
    "whte": "white",
}
_TYPO_TARGETS: dict[str, tuple[str, ...]] = {}
for _term in sorted({w for v in _VOCABS.values() for k in v.values for w in k.split()}):
    if _term.isascii() and _term.isalpha() and len(_term) >= 6:
        _TYPO_TARGETS.setdefault(_term[0], ())
        _TYPO_TARGETS[_term[0]] += (_term,)
_KNOWN_WORDS = frozenset(w for v in _VOCABS.values() for k in v.values for w in k.split())


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


def _fix_typo(match: re.Match[str]) -> str:
    word = match[0]
    if word in _TYPOS:
        return _TYPOS[word]
    if len(word) < 5 or word in _KNOWN_WORDS or word in _STOPWORDS or word in _ORDINARY:
        return word
    found = [t for t in _TYPO_TARGETS.get(word[0], ()) if _one_edit(word, t)]
    return found[0] if len(found) == 1 else word


def _fix_typos(text: str) -> str:
    return re.sub(r"(?<![\w])[a-z]+(?![\w])", _fix_typo, text)


def normalise(text: str) -> str:
    """The form every parse starts from: NFKC, plain punctuation, scripts spaced apart."""
    text = unicodedata.normalize("NFKC", text).translate(_PUNCT)
    text = _POSSESSIVE.sub("", _LETTER_HYPHEN.sub(" ", text))
    return " ".join(_SCRIPT_EDGE.sub(" ", text).split())


def _zh_number(text: str) -> float:
    total = section = digit = 0
    last_unit = 1
    for ch in text:
        if ch in _ZH_DIGITS:
            digit = _ZH_DIGITS[ch]
            if digit == 0:
                last_unit = 10  # "一千零五": a digit after 零 counts units
        elif ch in _ZH_UNITS:
            section += (digit or 1) * _ZH_UNITS[ch]
            digit, last_unit = 0, _ZH_UNITS[ch]
        else:  # 万
            total += (section + digit) * 10_000
            section = digit = 0
            last_unit = 10_000
    # A trailing bare digit abbreviates the next unit down: "三千五" is 3500.
    return float(total + section + digit * max(last_unit // 10, 1))


def _amount(text: str) -> float | None:
    m = _NUM_PARTS.search(text)
    if m is None:
        return None
    if m[3]:
        return _zh_number(m[3])
    return float(m[1].replace(",", "")) * _MULTIPLIERS.get((m[2] or "").strip(), 1.0)


def _blank(buf: list[str], start: int, end: int) -> None:
    buf[start:end] = " " * (end - start)


def _negation_start(text: str, start: int, prev_neg_end: int | None) -> int | None:
    """Where the negation governing a match at `start` begins, or None if it is not negated."""
    if prev_neg_end is not None and _LIST_SEP.fullmatch(text, prev_neg_end, start):
        return start  # "no gold or silver": the negation carries along the list
    window = max(0, start - 24)
    m = _NEG_TAIL.search(text[window:start])
    return None if m is None else window + m.start()


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


class QueryParser:
    def __init__(self, brands: Iterable[str] = ()) -> None:
        self._brands = {normalise(b).lower(): b for b in brands if b and b.strip()}
        known = _ORDINARY | _STOPWORDS | {t for v in _VOCABS.values() for t in v.values}
        self._ordinary = {k for k in self._brands if all(w in known for w in k.split())}
        alternation = "|".join(re.escape(k) for k in sorted(self._brands, key=len, reverse=True))
        self._brand_re = (
            re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)
            if (self._brands)
            else None
        )

    def parse(self, text: str) -> ParsedQuery:
        raw = text if isinstance(text, str) else ""
        try:
            return self._parse(raw)
        except Exception:  # a bad query must never break search; fall back to no filters
            return ParsedQuery(raw, _language(raw), QueryFilters(), "", "")

    def _parse(self, raw: str) -> ParsedQuery:
        text = normalise(raw[:_MAX_CHARS])
        glosses: list[tuple[int, str]] = []  # (position, English term) for search_text
        found: dict[str, list[str]] = {}
        text = _fix_typos(self._take_brands(text, glosses, found).lower())
        text, min_price, max_price = _take_prices(text)
        for kind, vocab in _VOCABS.items():
            text = _take_terms(kind, vocab, text, glosses, found)
        exclude_colours = _unique(found.get("exclude_colours", ()))
        exclude_brands = _unique(found.get("exclude_brands", ()))
        filters = QueryFilters(
            articles=_unique(found.get("articles", ())),
            colours=_unique(c for c in found.get("colours", ()) if c not in exclude_colours),
            genders=_unique(found.get("genders", ())),
            usages=_unique(found.get("usages", ())),
            brands=_unique(b for b in found.get("brands", ()) if b not in exclude_brands),
            exclude_colours=exclude_colours,
            exclude_brands=exclude_brands,
            min_price=min_price,
            max_price=max_price,
        )
        rest = _remainder(text)
        english = [g for _, g in sorted(glosses)] + [t for t in rest if t.isascii()]
        search_text = " ".join(_unique(w for w in english if not _CJK_RE.search(w)))
        return ParsedQuery(raw, _language(raw), filters, " ".join(rest), search_text)

    def _take_brands(
        self, text: str, glosses: list[tuple[int, str]], found: dict[str, list[str]]
    ) -> str:
        if self._brand_re is None:
            return text
        buf, prev_neg = list(text), None
        for m in self._brand_re.finditer(text):
            key = " ".join(m[0].lower().split())
            if key in self._ordinary and not m[0][0].isupper():
                continue  # "guess what" is not the brand Guess
            neg = _negation_start(text, m.start(), prev_neg)
            kind = "brands" if neg is None else "exclude_brands"
            found.setdefault(kind, []).append(self._brands[key])
            if neg is None:
                glosses.append((m.start(), key))
            else:
                prev_neg = m.end()
            _blank(buf, m.start() if neg is None else neg, m.end())
        return "".join(buf)


def _take_prices(text: str) -> tuple[str, float | None, float | None]:
    buf, low, high = list(text), None, None
    for m in _PRICE_RE.finditer(text):
        if m["range"]:
            a, b = _amount(m["lo"]), _amount(m["hi"])
            cued = m["rcue"] or m["rpost"] or _CURRENCY_RE.search(m["range"])
            if a is None or b is None or not (cued or min(a, b) >= _BARE_RANGE_MIN):
                continue
            low, high = a, b
        elif m["approx"]:
            value = _amount(m["a1"] or m["a2"])
            if value is None or (value < _BARE_RANGE_MIN and not _CURRENCY_RE.search(m[0])):
                continue  # "简约一点" (more minimalist) holds 约一, "about 1": not a price
            low, high = round(value * 0.8, 2), round(value * 1.2, 2)
        elif m["ceil"] or m["floor"]:
            value = _amount(m["c1"] or m["c2"] or m["f1"] or m["f2"])
            if value is None:
                continue
            low, high = (low, value) if m["ceil"] else (value, high)
        else:  # a lone amount is a price only with a currency, and then it is the budget
            value = _amount(m["bare"])
            if value is None or value < 10 or not _CURRENCY_RE.search(m["bare"]):
                continue  # also keeps "一块手表" (one watch) from being ₹1
            high = value
        _blank(buf, m.start(), m.end())
    if low is not None and high is not None and low > high:
        low, high = high, low
    return "".join(buf), low, high


def _take_terms(
    kind: str,
    vocab: _Vocab,
    text: str,
    glosses: list[tuple[int, str]],
    found: dict[str, list[str]],
) -> str:
    buf, prev_neg = list(text), None
    for m in vocab.pattern.finditer(text):
        neg = _negation_start(text, m.start(), prev_neg) if kind == "colours" else None
        if neg is None:
            found.setdefault(kind, []).extend(vocab.values[m[0]])
            if kind != "genders":
                glosses.append((m.start(), vocab.gloss.get(m[0], m[0])))
        else:
            found.setdefault("exclude_colours", []).extend(vocab.values[m[0]])
            prev_neg = m.end()
        _blank(buf, m.start() if neg is None else neg, m.end())
    return "".join(buf)


def _remainder(text: str) -> list[str]:
    tokens = re.split(r"[\W_]+", _ZH_STOP_RE.sub(" ", text))
    return [t for t in tokens if t and t not in _STOPWORDS and not _NUMBER_TOKEN.fullmatch(t)]


def _language(text: str) -> str:
    return "zh" if _CJK_RE.search(text) else "en"


_DEFAULT_PARSER = QueryParser()


def parse_query(text: str) -> ParsedQuery:
    return _DEFAULT_PARSER.parse(text)
