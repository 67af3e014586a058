"""Everything the agent says without the LLM, in English and Chinese: the templates of
``templates.yaml``, product lines with their one-line reasons, comparisons. Every fact in them
comes from a product record or the dialog state; Chinese names of categories and colours are
the vocabulary's own words (`bijou.retrieval.lexicon`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bijou.catalog.schema import Product
from bijou.retrieval.lexicon import load_lexicon
from bijou.retrieval.look import look_of
from bijou.retrieval.reasons import Reason
from bijou.understanding.state import DialogState

if TYPE_CHECKING:
    from bijou.agent.agent import ProductView
    from bijou.agent.tools import Fact

TEMPLATES_FILE = Path(__file__).with_name("templates.yaml")
_FILE: dict[str, Any] = yaml.safe_load(TEMPLATES_FILE.read_text(encoding="utf-8"))
TEMPLATES: dict[str, dict[str, str]] = {lang: _FILE[lang] for lang in ("en", "zh")}


def _lang(language: str) -> str:
    return language if language in TEMPLATES else "en"


def say(language: str, key: str, **values: object) -> str:
    return TEMPLATES[_lang(language)][key].format(**values)


def _named(table: str, key: str | None, language: str) -> str:
    names = _FILE[table][_lang(language)]
    return str(names.get(key, names.get(None, key or "")))


def size_system(system: str, language: str) -> str:
    return _named("size_systems", system, language)


def size_kind(kind: str, language: str) -> str:
    return _named("size_kinds", kind, language)


def attribute_name(attribute: str | None, language: str) -> str:
    return _named("attributes", attribute, language)


def field_name(name: str, language: str) -> str:
    """A product field as a reply names it ("size_fit" -> "size and fit"); attributes of the
    record (``Strap Material``) keep their own names."""
    names = _FILE["fields"][_lang(language)]
    return str(names.get(name, name))


def filter_name(name: str, language: str) -> str:
    return str(_FILE["filters"][_lang(language)][name])


def money(value: float, currency: str) -> str:
    return f"{currency}{value:,.0f}" if value == int(value) else f"{currency}{value:,.2f}"


@cache
def _names(kind: str, language: str) -> dict[str, str]:
    """catalog value -> its first word in the vocabulary of ``language``: Earrings -> 耳环,
    Watches -> watch."""
    vocab = getattr(load_lexicon(), kind)
    exact: dict[str, str] = {}
    primary: dict[str, str] = {}  # "Backpacks | Rucksacks": backpack names Backpacks first
    loose: dict[str, str] = {}
    for text, term in vocab.terms.items():
        if term.language != language:
            continue
        if len(term.values) == 1:
            exact.setdefault(term.values[0], text)
        primary.setdefault(term.values[0], text)
        for value in term.values:
            loose.setdefault(value, text)
    return {**loose, **primary, **exact}


def _chinese_names(kind: str) -> dict[str, str]:
    return _names(kind, "zh")


def _first_words(kind: str) -> dict[str, str]:
    return _names(kind, "en")


def _plural(word: str) -> str:
    if word.endswith(("ss", "x", "ch", "sh")):
        return word + "es"
    return word if word.endswith("s") else word + "s"


def article_name(article: str, language: str, plural: bool = False) -> str:
    """The article as a reply names it: "necklace" (or "necklaces"), 项链."""
    if language == "zh":
        return _chinese_names("articles").get(article, article)
    name = _first_words("articles").get(article, article.lower())
    return _plural(name) if plural else name


def colour_name(colour: str, language: str) -> str:
    if language == "zh":
        return _chinese_names("colours").get(colour, colour)
    return colour.lower()


def garment_name(garment: str, language: str) -> str:
    """ "lehenga" (the vocabulary's gloss) as a reply in ``language`` names it."""
    return _chinese_names("garments").get(garment, garment) if language == "zh" else garment


def usage_name(usage: str, language: str) -> str:
    if language == "zh":
        return _chinese_names("occasions").get(usage, usage)
    return usage.lower()


def budget_words(budget: float | None, language: str, currency: str) -> str:
    return "" if budget is None else say(language, "budget", budget=money(budget, currency))


def scope(state: DialogState, language: str, currency: str, *, prices: bool = True) -> str:
    """ "silver earrings under ₹2,000" / "2,000以内的银色耳环": the constraints, in words.
    Categories the shop chose itself (it leads with jewellery) are said as the group."""
    colours = list(state.colours)
    articles = state.articles[:2] if len(state.articles) <= 2 and not state.led else []
    led = [say(language, "lead_scope")] if state.led else []
    if language == "zh":
        parts = []
        if prices and state.max_price is not None:
            parts.append(f"{money(state.max_price, currency)}以内的")
        parts += [colour_name(c, "zh") for c in colours[:2]]
        parts += [article_name(a, "zh") for a in articles] + led
        return "".join(parts) or "商品"
    words = [c.lower() for c in colours[:2]] + [article_name(a, "en", True) for a in articles]
    text = " ".join(words + led)
    if prices and state.max_price is not None:
        text += f" under {money(state.max_price, currency)}"
    if prices and state.min_price is not None:
        text += f" from {money(state.min_price, currency)}"
    return f" for {text.strip()}" if text.strip() else ""


def reason(product: Product, state: DialogState, language: str, currency: str) -> str:
    """One line on why this product fits, from its own fields and what the shopper asked."""
    zh = language == "zh"
    parts: list[str] = []
    look = look_of(product)
    matched = [t for t in look.tones if t in state.colours]
    tone = matched[0] if matched else (look.main(product.article) or "")
    if tone:
        parts.append(colour_name(tone, "zh") if zh else f"{tone.lower()} tone")
    if product.metal and product.metal.lower() != tone.lower():
        parts.append(
            f"{_FILE['metals']['zh'].get(product.metal, product.metal)}材质"
            if zh
            else f"{product.metal.lower()} base"
        )
    if stone := product.attributes.get("Stone Type"):
        parts.append(f"镶{stone}" if zh else f"set with {stone.lower()}")
    if state.occasion and product.usage:
        parts.append(
            f"适合{usage_name(product.usage, 'zh')}"
            if zh
            else f"suits {product.usage.lower()} wear"
        )
    if state.max_price is not None:
        parts.append(
            f"在{money(state.max_price, currency)}预算内"
            if zh
            else f"within your {money(state.max_price, currency)} budget"
        )
    if product.list_price > product.price:
        off = round(100 * (1 - product.price / product.list_price))
        if off >= 5:
            parts.append(f"优惠{off}%" if zh else f"{off}% off")
    text = ("，" if zh else ", ").join(parts[:4])
    return text[:1].upper() + text[1:] if text else ""


def pair_reason(reasons: Sequence[Reason], noun: str, language: str, *, yours: bool = False) -> str:
    """Why a suggestion goes with a piece (``noun``: "necklace"; with ``yours``, something
    the shopper owns: "maroon lehenga"): its two strongest checkable reasons, in words."""
    table = _FILE["reasons"][_lang(language)]
    anchor = table["yours" if yours else "the"].format(noun=noun)
    key = "your_whose" if yours else "whose"
    if noun.endswith("s") and not noun.endswith("ss") and f"{key}_s" in table:
        key = f"{key}_s"
    whose = table[key].format(noun=noun)
    said = []
    for reason in reasons[:2]:
        values = reason.values
        if reason.kind == "completes":
            phrases = table["completes_reverse" if values[1:] == ("reverse",) else "completes"]
            said.append(phrases[values[0]].format(anchor=anchor))
        elif reason.kind == "note":
            said.append(table["note"].format(anchor=anchor))
        elif reason.kind == "tone":
            said.append(table["tone"].format(anchor=anchor, tone=colour_name(values[0], language)))
        elif reason.kind == "contrast":
            mine, other = (colour_name(v, language) for v in values)
            said.append(table["contrast"].format(whose=whose, mine=mine, other=other))
        elif reason.kind == "neutral":
            colour = colour_name(values[0], language)
            said.append(table["neutral"].format(anchor=anchor, colour=colour))
        else:
            said.append(table["occasion"].format(usage=usage_name(values[0], language)))
    text = ("，" if language == "zh" else "; ").join(said)
    return text if language == "zh" else text[:1].upper() + text[1:]


def comparison(
    products: Sequence[Product],
    facts: Sequence[Fact],
    rank_of: dict[str, int],
    language: str,
    currency: str,
) -> str:
    """The lead of a comparison: which is cheaper and by how much, and what else differs.
    Names each product once; never compares one with itself."""
    if len(products) < 2:
        return ""
    if products[0].id == products[1].id:
        return say(language, "which")
    a, b = products[0], products[1]
    # Two listings may share a title: then they are named by their place in the list.
    same = a.title == b.title

    def name(p: Product) -> str:
        rank = rank_of.get(p.id)
        if same and rank is not None:
            return say(language, "rank_name", ordinal=ordinal(rank, language))
        return p.title

    if a.price == b.price:
        lead = say(
            language,
            "compare_same_price",
            first=name(a),
            second=name(b),
            price=money(a.price, currency),
        )
    else:
        cheap, dear = (a, b) if a.price < b.price else (b, a)
        lead = say(
            language,
            "compare_cheaper",
            cheap=name(cheap),
            cheap_price=money(cheap.price, currency),
            dear=name(dear),
            dear_price=money(dear.price, currency),
            difference=money(dear.price - cheap.price, currency),
        )
    lead = lead[:1].upper() + lead[1:]
    differing = list(dict.fromkeys(f.field for f in facts if f.field not in ("price",)))
    if differing:
        joiner = "、" if language == "zh" else ", "
        what = joiner.join(field_name(name, language) for name in differing[:3])
        lead += ("" if language == "zh" else " ") + say(language, "compare_also", what=what)
    return lead


def ordinal(rank: int, language: str) -> str:
    words = _FILE["ordinals"][_lang(language)]
    return str(words[rank - 1]) if 0 < rank <= len(words) else f"#{rank}"


def product_line(rank: int | None, product: Product | ProductView, why: str, currency: str) -> str:
    head = f"{rank}. " if rank is not None else "- "
    brand = f" ({product.brand})" if product.brand and product.brand not in product.title else ""
    line = f"{head}{product.title}{brand}: {money(product.price, currency)}"
    return f"{line}. {why}" if why else line


_STRAY = re.compile(r"^[\s\"'“”‘’`*\-–—:]+|[\s\"'“”‘’`*]+$")


def tidy(sentence: str) -> str:
    """An LLM sentence without the quotes, dashes and bullets a small model wraps it in."""
    return _STRAY.sub("", sentence).strip()
