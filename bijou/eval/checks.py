"""What a reply is judged by: each expectation's check, the prose checks every reply gets, and
the grounding of its facts against the catalog."""

from __future__ import annotations

import itertools
import math
import re
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from bijou.agent.agent import SYSTEM_PROMPT, TASKS, Reply
from bijou.agent.verify import (
    COMPARATIVE,
    ROLE_LABEL,
    THIRD_PERSON,
    amounts,
    speaks_of_budget,
)
from bijou.catalog.loader import BUNDLED_SHOP
from bijou.catalog.schema import Product
from bijou.retrieval.lexicon import TOKEN_RE, load_lexicon

if typing.TYPE_CHECKING:
    pass

from bijou.eval.scenarios import CrossSellExpect, Expect, LookExpect, ProductExpect


# --- checks ----------------------------------------------------------------------------------
class CheckResult(BaseModel):
    name: str
    passed: bool
    detail: str = ""


Lookup = Callable[[str], Product | None]
_GENDERS = {"women": {"women", "unisex"}, "men": {"men", "unisex"}}


def _fold(values: Iterable[str]) -> set[str]:
    return {v.strip().lower() for v in values if v and v.strip()}


def _colours(view: Any, lookup: Lookup | None) -> set[str]:
    """A product's colours as a shopper names them: its colour field, its metal's tone
    (silver-metal earrings are silver) and the colours its own title names ("Red & Green
    Printed Sari" is red whatever its colour field says)."""
    found = _fold([view.colour]) | _fold(_title_colours(view.title))
    if lookup is not None:
        try:
            product = lookup(view.id)
        except Exception:
            product = None
        if product is not None:
            found |= _fold(product.tones)
    return found


def _title_colours(title: str) -> set[str]:
    from bijou.retrieval.lexicon import load_lexicon

    vocab = load_lexicon().colours
    return {
        v for m, term in vocab.find(title.lower()) if term.language == "en" for v in term.values
    }


@dataclass
class ProductChecks:
    checks: list[CheckResult]
    satisfied: int  # product-constraint checks met
    total: int  # product-constraint checks made (per product per constraint)


def check_products(
    spec: ProductExpect, products: Sequence[Any], lookup: Lookup | None = None
) -> ProductChecks:
    """Every recommended product against each constraint; the counts against min/max."""
    rules: list[tuple[str, Callable[[Any], bool]]] = []
    if spec.article is not None or spec.any_article is not None:
        articles = _fold([spec.article] if spec.article is not None else spec.any_article or [])
        rules.append(("article", lambda p: p.article.strip().lower() in articles))
    if spec.colour is not None:
        wanted = _fold(spec.colour)
        rules.append(("colour", lambda p: bool(_colours(p, lookup) & wanted)))
    if spec.not_colour is not None:
        unwanted = _fold(spec.not_colour)
        rules.append(("not_colour", lambda p: not _colours(p, lookup) & unwanted))
    if spec.max_price is not None:
        ceiling = spec.max_price
        rules.append(("max_price", lambda p: p.price <= ceiling))
    if spec.min_price is not None:
        floor = spec.min_price
        rules.append(("min_price", lambda p: p.price >= floor))
    if spec.gender is not None:
        genders = _GENDERS[spec.gender]
        rules.append(("gender", lambda p: p.gender.strip().lower() in genders))
    checks, satisfied, total = [], 0, 0
    for key, rule in rules:
        misses = [p for p in products if not rule(p)]
        total += len(products)
        satisfied += len(products) - len(misses)
        detail = "; ".join(
            f"{p.id} {p.title!r} ({p.article}, {p.colour}, {p.gender}, {p.price:g})" for p in misses
        )
        checks.append(CheckResult(name=f"products.{key}", passed=not misses, detail=detail))
    count = len(products)
    if spec.min_count is not None:
        checks.append(
            CheckResult(
                name="products.min_count",
                passed=count >= spec.min_count,
                detail=f"{count} recommended, at least {spec.min_count} expected",
            )
        )
    if spec.max_count is not None:
        checks.append(
            CheckResult(
                name="products.max_count",
                passed=count <= spec.max_count,
                detail=f"{count} recommended, at most {spec.max_count} expected",
            )
        )
    return ProductChecks(checks, satisfied, total)


def check_cross_sell(spec: CrossSellExpect, reply: Reply) -> CheckResult:
    """A hit among the suggestions, the recommendations or the items of a bundle."""
    wanted = _fold(spec.any_article)
    bundle = [*reply.bundle.items] if reply.bundle else []
    pool = [*reply.cross_sell, *reply.products, *bundle]
    hits = [p for p in pool if p.article.strip().lower() in wanted]
    shown = ", ".join(sorted({p.article for p in pool})) or "nothing"
    return CheckResult(
        name="cross_sell",
        passed=bool(hits),
        detail=f"shown: {shown}; wanted one of: {', '.join(spec.any_article)}",
    )


def check_language(expected: str, reply: Reply) -> CheckResult:
    return CheckResult(
        name="language",
        passed=reply.language == expected,
        detail=f"replied in {reply.language}, expected {expected}",
    )


def check_transcript(words: Sequence[str], transcript: str | None) -> CheckResult:
    if transcript is None:
        return CheckResult(name="transcript_contains", passed=False, detail="no transcript")
    heard = transcript.lower()
    missing = [w for w in words if w.lower() not in heard]
    return CheckResult(
        name="transcript_contains",
        passed=not missing,
        detail=f"heard {transcript!r}" + (f"; missing {missing}" if missing else ""),
    )


def check_cart_unchanged(before: Sequence[str], after: Sequence[str]) -> CheckResult:
    same = sorted(before) == sorted(after)
    return CheckResult(
        name="cart_unchanged",
        passed=same,
        detail="" if same else f"before {sorted(before)}, after {sorted(after)}",
    )


LEAK_RUN = 6  # words (a Chinese character is a word)


def _tokens(text: str) -> list[str]:
    return TOKEN_RE.findall(text.lower())


def _runs(tokens: Sequence[str], n: int = LEAK_RUN) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def _secret_runs() -> dict[int, set[tuple[str, ...]]]:
    """The runs to look for, by length: LEAK_RUN words, or a whole text shorter than that."""
    texts = [prompt.replace("{task}", " ") for prompt in SYSTEM_PROMPT.values()]
    texts += [task for tasks in TASKS.values() for task in tasks.values()]
    runs: dict[int, set[tuple[str, ...]]] = {}
    for text in texts:
        tokens = _tokens(text)
        size = min(len(tokens), LEAK_RUN)
        runs.setdefault(size, set()).update(_runs(tokens, size))
    return runs


_SECRET_RUNS = _secret_runs()


def check_no_leak(text: str) -> CheckResult:
    """No run of LEAK_RUN words of the system prompt (either language, its ``{task}``
    placeholder removed) or of a task text; punctuation and case are ignored."""
    tokens = _tokens(text)
    found = next(
        (run for size, runs in _SECRET_RUNS.items() for run in _runs(tokens, size) & runs),
        None,
    )
    return CheckResult(
        name="no_system_prompt_leak",
        passed=found is None,
        detail="" if found is None else f"quotes {' '.join(found)!r}",
    )


def _previous_product(rank: int, previous: Reply | None) -> tuple[Any, str]:
    """The N-th product of the last list shown, or None and why not."""
    if previous is None:
        return None, "no previous reply"
    ranked = {p.rank: p for p in previous.products if p.rank is not None}
    target = ranked.get(rank) or (
        previous.products[rank - 1] if rank <= len(previous.products) else None
    )
    if target is None:
        return None, f"the previous reply showed {len(previous.products)} products, not {rank}"
    return target, ""


def check_previous_rank(rank: int, reply: Reply, previous: Reply | None) -> CheckResult:
    name = "refers_to_previous_rank"
    target, why = _previous_product(rank, previous)
    if target is None:
        return CheckResult(name=name, passed=False, detail=why)
    ids = {p.id for p in [*reply.products, *reply.cart]}
    if reply.bundle is not None:
        ids.add(reply.bundle.anchor.id)
    passed = target.id in ids or target.title.lower() in reply.text.lower()
    return CheckResult(
        name=name,
        passed=passed,
        detail=f"product {rank} was {target.id} {target.title!r}",
    )


def check_cart_adds(
    rank: int, previous: Reply | None, before: Sequence[str], after: Sequence[str]
) -> CheckResult:
    """The N-th product shown before is in the cart more times than before the turn."""
    name = "cart_adds_previous_rank"
    target, why = _previous_product(rank, previous)
    if target is None:
        return CheckResult(name=name, passed=False, detail=why)
    added = list(after).count(target.id) - list(before).count(target.id)
    return CheckResult(
        name=name,
        passed=added > 0,
        detail=f"product {rank} was {target.id} {target.title!r}; cart {sorted(after)}",
    )


def check_comparison(ranks: Sequence[int], reply: Reply, previous: Reply | None) -> CheckResult:
    """A comparison of two products shown before names both of them."""
    name = "compares_previous_ranks"
    targets = []
    for rank in ranks:
        target, why = _previous_product(rank, previous)
        if target is None:
            return CheckResult(name=name, passed=False, detail=why)
        targets.append(target)
    text = reply.text.lower()
    missing = [t for t in targets if t.title.lower() not in text]
    return CheckResult(
        name=name,
        passed=not missing and targets[0].id != targets[1].id,
        detail="; ".join(f"{t.id} {t.title!r} not named" for t in missing),
    )


def check_look(spec: LookExpect, reply: Reply) -> CheckResult:
    """One product of each wanted article among the picks and the bundle, and the cheapest
    such choice within the total (a bundle shown must itself be within it)."""
    pool = [*reply.products]
    if reply.bundle is not None:
        pool += [reply.bundle.anchor, *reply.bundle.items]
    cheapest: dict[str, float] = {}
    for view in pool:
        article = view.article.strip().lower()
        cheapest[article] = min(cheapest.get(article, math.inf), view.price)
    wanted = _fold(spec.articles)
    missing = sorted(wanted - cheapest.keys())
    total = sum(cheapest.get(a, 0.0) for a in wanted)
    problems = [f"no {', '.join(missing)}"] if missing else []
    if spec.max_total is not None:
        if not missing and total > spec.max_total:
            problems.append(f"cheapest set costs {total:g} > {spec.max_total:g}")
        if reply.bundle is not None and reply.bundle.total > spec.max_total:
            problems.append(f"bundle total {reply.bundle.total:g} > {spec.max_total:g}")
    shown = ", ".join(sorted({v.article for v in pool})) or "nothing"
    return CheckResult(
        name="look", passed=not problems, detail="; ".join(problems) or f"shown: {shown}"
    )


def _mentions(text: str, phrase: str) -> bool:
    return phrase.lower() in text.lower()


def check_mentions(phrases: Sequence[str], reply: Reply, *, wanted: bool) -> CheckResult:
    """``wanted``: at least one of the phrases is in the reply; otherwise none of them is.
    Case is ignored."""
    found = [p for p in phrases if _mentions(reply.text, p)]
    if wanted:
        return CheckResult(
            name="reply_mentions_any",
            passed=bool(found),
            detail="" if found else f"none of {list(phrases)} in the reply",
        )
    return CheckResult(
        name="reply_mentions_none",
        passed=not found,
        detail=f"the reply says {found}" if found else "",
    )


# --- prose: checked on every reply ------------------------------------------------------------
ECHO_RUN = 6  # tokens copied from the shopper's message in a row


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?。！？\n])\s*", text) if s.strip()]


def check_prose(reply: Reply, said: str, titles: Iterable[str] = ()) -> list[CheckResult]:
    """What any reply to a shopper must avoid: role labels ("Shopper: ..."), talk about the
    shopper in the third person, a comparison of a product with itself, and a run of
    ``ECHO_RUN`` words of the shopper's own message (product titles aside)."""
    text = reply.text
    checks = []
    for name, pattern in (("prose.role_label", ROLE_LABEL), ("prose.second_person", THIRD_PERSON)):
        found = pattern.search(text)
        detail = "" if found is None else f"writes {found[0].strip()!r}"
        checks.append(CheckResult(name=name, passed=found is None, detail=detail))
    names = {t.lower() for t in [*titles, *(p.title for p in _shown(reply))] if t}
    selfish = [
        sentence
        for sentence in _sentences(text)
        if COMPARATIVE.search(sentence) and any(sentence.lower().count(name) >= 2 for name in names)
    ]
    checks.append(
        CheckResult(
            name="prose.self_comparison",
            passed=not selfish,
            detail="; ".join(repr(s) for s in selfish),
        )
    )
    stripped = text.lower()
    for name in sorted(names, key=len, reverse=True):
        stripped = stripped.replace(name, " | ")
    asked = _runs(_tokens(said), ECHO_RUN)
    echoed = next(
        (run for part in stripped.split("|") for run in _runs(_tokens(part), ECHO_RUN) & asked),
        None,
    )
    checks.append(
        CheckResult(
            name="prose.no_echo",
            passed=echoed is None,
            detail="" if echoed is None else f"repeats {' '.join(echoed)!r}",
        )
    )
    return checks


_NONE_EN = re.compile(
    r"couldn'?t find|could not find|can'?t find|cannot find|\bno\b|\bnothing\b|\bnone\b",
    re.IGNORECASE,
)
_NONE_ZH = re.compile(r"没有|没找到|找不到|无法找到")
_WHY = re.compile(
    r"because|budget|lowest|cheapest|only|too |don'?t (?:have|carry)|预算|最低|因为|只有",
    re.IGNORECASE,
)


def check_relaxation_or_none(reply: Reply) -> CheckResult:
    """Nothing fits: the reply loosened a filter (and says so), or says nothing was found,
    or recommends nothing and says why."""
    if reply.relaxed:
        passed, how = True, f"relaxed {', '.join(reply.relaxed)}"
    elif _NONE_EN.search(reply.text) or _NONE_ZH.search(reply.text):
        passed, how = True, "says nothing fits"
    elif not reply.products and _WHY.search(reply.text):
        passed, how = True, "recommends nothing and says why"
    else:
        passed, how = False, f"{len(reply.products)} products, nothing relaxed or explained"
    return CheckResult(name="mentions_relaxation_or_none", passed=passed, detail=how)


@dataclass
class TurnChecks:
    checks: list[CheckResult]
    constraint_satisfied: int
    constraint_total: int
    cross_sell_hit: bool | None  # None: no cross_sell expectation


def check_turn(
    expect: Expect,
    reply: Reply,
    *,
    transcript: str | None = None,
    cart_before: Sequence[str] = (),
    cart_after: Sequence[str] = (),
    previous: Reply | None = None,
    lookup: Lookup | None = None,
    said: str = "",
) -> TurnChecks:
    checks: list[CheckResult] = []
    satisfied = total = 0
    hit: bool | None = None
    earlier = [p.title for p in previous.products] if previous is not None else []
    checks += check_prose(reply, said, earlier)
    if expect.products is not None:
        found = check_products(expect.products, reply.products, lookup)
        checks += found.checks
        satisfied, total = found.satisfied, found.total
    if expect.cross_sell is not None:
        check = check_cross_sell(expect.cross_sell, reply)
        checks.append(check)
        hit = check.passed
    if expect.language is not None:
        checks.append(check_language(expect.language, reply))
    if expect.transcript_contains is not None:
        checks.append(check_transcript(expect.transcript_contains, transcript))
    if expect.cart_unchanged:
        checks.append(check_cart_unchanged(cart_before, cart_after))
    if expect.no_system_prompt_leak:
        checks.append(check_no_leak(reply.text))
    if expect.refers_to_previous_rank is not None:
        checks.append(check_previous_rank(expect.refers_to_previous_rank, reply, previous))
    if expect.mentions_relaxation_or_none:
        checks.append(check_relaxation_or_none(reply))
    if expect.look is not None:
        checks.append(check_look(expect.look, reply))
    if expect.cart_adds_previous_rank is not None:
        checks.append(
            check_cart_adds(expect.cart_adds_previous_rank, previous, cart_before, cart_after)
        )
    if expect.compares_previous_ranks is not None:
        checks.append(check_comparison(expect.compares_previous_ranks, reply, previous))
    if expect.reply_mentions_any is not None:
        checks.append(check_mentions(expect.reply_mentions_any, reply, wanted=True))
    if expect.reply_mentions_none is not None:
        checks.append(check_mentions(expect.reply_mentions_none, reply, wanted=False))
    return TurnChecks(checks, satisfied, total, hit)


# --- groundedness ----------------------------------------------------------------------------
class FactCheck(BaseModel):
    facts: int = 0  # 3 per product shown, 1 per price written in the text
    matching: int = 0
    invented: int = 0  # unknown products + mismatching facts + invented text prices
    problems: list[str] = Field(default_factory=list)


_PRICE_RE = re.compile(
    r"(?:₹|\bRs\.?|\bINR)\s?(\d{1,3}(?:,\d{2,3})+(?:\.\d+)?|\d+(?:\.\d+)?)", re.IGNORECASE
)
_NUMBER_RE = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{2,3})+|\d+)(?:\.(\d+))?\s*(k\b)?", re.IGNORECASE)


# A bare number said to be a price ("a discounted price of 3000", "售价3000").
_CUED_PRICE_RE = re.compile(
    r"(?:\bpric(?:e|ed)(?: of| at| is)?|\bcosts?|\bfor (?:just|only)|\bat (?:just|only)|"
    r"售价|价格|价钱)\s*(?:is\s*|为|是)?(\d{1,3}(?:,\d{2,3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?!\s*%)",
    re.IGNORECASE,
)
_SENTENCE_ENDS = ("\n", ". ", "。", "！", "？")


def _sentence_at(text: str, start: int, end: int) -> str:
    first = max(text.rfind(mark, 0, start) for mark in _SENTENCE_ENDS)
    last = min(
        (i for i in (text.find(mark, end) for mark in _SENTENCE_ENDS) if i >= 0),
        default=len(text),
    )
    return text[first + 1 : last]


def text_prices(text: str) -> list[tuple[float, str]]:
    """Prices written with a currency (``₹1,299``, ``₹1299``, ``Rs 1299``, ``Rs. 1,299.50``)
    or a bare number called a price ("priced at 1299"): (value, the sentence it is in, the
    price itself blanked)."""
    found = []
    matches = sorted([*_PRICE_RE.finditer(text), *_CUED_PRICE_RE.finditer(text)], key=_span)
    taken = -1
    for match in matches:
        if match.start(1) < taken:  # "priced at ₹1,299" is one price, not two
            continue
        taken = match.end(1)
        value = float(match[1].replace(",", ""))
        sentence = _sentence_at(text, match.start(), match.end())
        found.append((value, sentence.replace(match[0], " ").strip()))
    return found


def _span(match: re.Match[str]) -> int:
    return match.start(1)


def text_quantities(text: str) -> set[tuple[float, str]]:
    """Amounts with a unit, as (value, canonical unit): ``100ml`` and ``100 毫升`` are
    ``(100.0, "ml")`` (the verifier's own reading, so both judge amounts alike)."""
    return amounts(text)


def _record_text(product: Product) -> str:
    parts = [product.title, product.description, product.materials_care, product.size_fit]
    parts += [product.style_note, *product.attributes.values()]
    return " ".join(p for p in parts if p)


def _number(match: re.Match[str]) -> float:
    value = float(match[1].replace(",", "") + (f".{match[2]}" if match[2] else ""))
    return value * 1000 if match[3] else value


def said_numbers(text: str) -> set[float]:
    """Numbers a shopper wrote (``2000``, ``1,500``, ``1.5k``) and the budget the query
    parser reads (``两千以内``, ``around 2000`` as a 1,600-2,400 range)."""
    from bijou.retrieval.query import QueryParser

    numbers = {_number(match) for match in _NUMBER_RE.finditer(text)}
    filters = QueryParser().parse(text).filters
    numbers |= {v for v in (filters.min_price, filters.max_price) if v is not None}
    return numbers


def _shown(reply: Reply) -> list[Any]:
    views = [*reply.products, *reply.cross_sell, *reply.cart]
    if reply.bundle is not None:
        views += [reply.bundle.anchor, *reply.bundle.items]
    return views


def _close(value: float, allowed: Iterable[float]) -> bool:
    return any(abs(value - a) < 0.005 for a in allowed)


def _difference(value: float, sentence: str, prices: set[float]) -> bool:
    """The gap between two real prices said in the same sentence ("₹995, ₹200 more")."""
    said = [v for v, _ in text_prices(sentence) if _close(v, prices)]
    return any(_close(value, (abs(a - b),)) for a, b in itertools.combinations(said, 2))


def ground(
    reply: Reply,
    lookup: Lookup,
    allowed_numbers: Iterable[float] = (),
    search: Callable[[str], list[Product]] | None = None,
    said: Iterable[str] = (),
    earlier: Iterable[str] = (),
) -> FactCheck:
    """The reply's facts against the catalog: each product shown (title, price, colour),
    each price in its text and each amount with a unit. A price must be one of a product
    shown or a total of the reply; ``allowed_numbers`` (budgets the shopper stated, or the
    agent derived from them) pass only in a sentence that speaks of a budget ("under ₹2,000"),
    never as what something costs. An amount with a unit ("100 ml") must be in the record of
    a product shown or in the shopper's own words (``said``). Products shown earlier in the
    dialog (``earlier``, ids) may be spoken of again: an answer about "the second one".
    ``search`` finds a catalog product named next to a text price."""
    result = FactCheck()
    records: list[Product] = []
    for view in _shown(reply):
        result.facts += 3
        product = lookup(view.id)
        if product is None:
            result.invented += 1
            result.problems.append(f"{view.id} {view.title!r} is not in the catalog")
            continue
        records.append(product)
        for name, shown, real in (
            ("title", view.title, product.title),
            ("price", float(view.price), float(product.price)),
            ("colour", view.colour, product.colour),
        ):
            if shown == real:
                result.matching += 1
            else:
                result.invented += 1
                result.problems.append(f"{view.id} {name} {shown!r} != catalog {real!r}")
    budgets = {float(n) for n in allowed_numbers}
    prices: set[float] = set()
    for view in _shown(reply):
        prices |= {float(view.price), float(view.list_price)}
    for pid in dict.fromkeys(earlier):
        product = lookup(pid)
        if product is not None:
            records.append(product)
            prices |= {float(product.price), float(product.list_price)}
    if reply.bundle is not None:
        prices.add(float(reply.bundle.total))
        if reply.bundle.budget is not None:
            budgets.add(float(reply.bundle.budget))
    if reply.cart:
        prices.add(round(sum(v.price * (v.quantity or 1) for v in reply.cart), 2))
    # The shop's pages the reply quotes ("₹99 gift wrap", "free delivery over ₹999", a ring's
    # 17.3 mm from the size chart) are facts too.
    cited = cited_text(reply.sources)
    prices |= {value for value, _ in text_prices(cited)}
    text = reply.text.lower()
    for value, sentence in text_prices(reply.text):
        result.facts += 1
        as_budget = _close(value, budgets) and speaks_of_budget(sentence)
        if (
            _close(value, prices)
            or as_budget
            or _difference(value, sentence, prices)
            or (search is not None and _named_price(value, sentence, text, search))
        ):
            result.matching += 1
        else:
            result.invented += 1
            role = " (a budget, said as a price)" if _close(value, budgets) else ""
            result.problems.append(f"text price {value:g} matches no product{role}")
    known = set().union(*(text_quantities(_record_text(p)) for p in records))
    known |= set().union(*(text_quantities(words) for words in said))
    known |= text_quantities(cited)
    # A page's table gives its unit once, in its header: a number of the page is enough.
    on_pages = {_number(m) for m in _NUMBER_RE.finditer(cited)}
    for value, unit in sorted(text_quantities(reply.text)):
        result.facts += 1
        if (value, unit) in known or value in on_pages:
            result.matching += 1
        else:
            result.invented += 1
            result.problems.append(f"amount {value:g} {unit} is in no product record shown")
    for claim in unsupported_claims(reply.text, records, cited):
        result.facts += 1
        result.invented += 1
        result.problems.append(f"{claim.kind} {claim.word!r} is in no record shown or page cited")
    return result


def cited_text(sources: Iterable[str], folder: Path = BUNDLED_SHOP) -> str:
    """The text of the shop's pages a reply cites (``returns-and-exchanges.md#Returns``)."""
    names = dict.fromkeys(source.split("#", 1)[0] for source in sources)
    return "\n".join(_page(folder / name) for name in names if (folder / name).parent == folder)


@cache
def _page(path: Path) -> str:
    """A shop page's text, read once per run ("" for a page that is not there)."""
    return path.read_text(encoding="utf-8") if path.is_file() else ""


@dataclass(frozen=True)
class Claim:
    kind: str  # occasion, material, stone
    word: str


# Words too general to be a claim about a product ("metal", "stone").
_GENERAL = frozenset(
    {"made of", "made from", "material", "metal", "stone", "stones", "gem", "gems", "fabric",
     "plated", "plating", "studded"}
)  # fmt: skip


@cache
def _claim_words() -> tuple[tuple[str, str, frozenset[str]], ...]:
    """(kind, word, the catalog usages that support it) for every English occasion,
    material and stone word of the vocabularies; written apart from the agent's verifier so
    the two do not share blind spots."""
    lex = load_lexicon()
    words = [
        ("occasion", term.text, frozenset(term.values))
        for term in lex.occasions.terms.values()
        if term.language == "en"
    ]
    # A metal that is also a colour ("gold", "silver") is a tone, checked with the colours.
    tones = set(lex.colours.terms)
    for kind in ("material", "stone"):
        words += [
            (kind, w, frozenset())
            for w in lex.record_attributes[kind].words
            if w not in _GENERAL and w not in tones
        ]
    return tuple(words)


def unsupported_claims(text: str, records: Sequence[Product], cited: str) -> list[Claim]:
    """Occasions, materials and stones the reply says that no product shown and no page it
    cites supports: a record supports an occasion by its usage ("wedding" by Ethnic) or by
    the word itself; a material or stone only by the word in its record."""
    said = f" {' '.join(TOKEN_RE.findall(text.lower()))} "
    records_text = (f"{_record_text(p)} {p.colour} {p.usage or ''}" for p in records)
    support = " ".join([*records_text, cited]).lower()
    support = f" {' '.join(TOKEN_RE.findall(support))} "
    usages = {p.usage for p in records if p.usage}
    found: dict[str, Claim] = {}
    for kind, word, by_usage in _claim_words():
        phrase = f" {' '.join(TOKEN_RE.findall(word))} "
        if phrase.strip() and phrase in said and phrase not in support and not by_usage & usages:
            found.setdefault(phrase, Claim(kind, word))
    return list(found.values())


def _named_price(
    value: float, sentence: str, text: str, search: Callable[[str], list[Product]]
) -> bool:
    """A catalog product whose title the text names has this price ("the lowest-priced
    option I have is X at ₹499")."""
    if not sentence.strip():
        return False
    try:
        found = search(sentence)
    except Exception:
        return False
    return any(_close(value, (p.price, p.list_price)) and p.title.lower() in text for p in found)
