"""Why two products go together, as facts checkable from their two records: the same
metal tone, an endorsed contrast (gold on black), a neutral, the same occasion, a stylist
note naming the other piece, or a pair that completes itself (a chain takes a pendant).
Also what makes a suggestion incoherent: a near-substitute of the anchor (a second bag
beside a bag), a piece competing for the same place (a bangle beside a watch), a price far
from the anchor's. The rules are data (catalog.yaml's styling); `holds` re-checks a reason
against the records, as the verifier checks a price."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bijou.catalog.schema import Product
from bijou.retrieval.lexicon import load_lexicon
from bijou.retrieval.look import METALS, look_of

Kind = Literal["completes", "note", "tone", "contrast", "neutral", "occasion"]
# Occasions worth a reason: everyday wear is what most of the catalog is.
_OCCASIONS = frozenset({"Ethnic", "Party", "Formal", "Smart Casual", "Sports", "Travel"})


@dataclass(frozen=True)
class Reason:
    kind: Kind
    # completes: (how,), or (how, "reverse") when the suggestion is the piece the anchor is
    # for (a pendant beside a chain); note: (article,); tone: (tone,);
    values: tuple[str, ...]
    # contrast: (the suggestion's tone, the anchor's colour) or the other way round;
    # neutral: (the neutral colour,); occasion: (usage,)


def _main(product: Product) -> str | None:
    return look_of(product).main(product.article)


def colour_reasons(tones: Sequence[str], product: Product) -> list[Reason]:
    """Colour facts between described tones (an anchor's, or a shopper's outfit) and a
    product: shared tone, endorsed contrast either way, or a neutral."""
    styling = load_lexicon().styling
    theirs = look_of(product).sure_tones
    out: list[Reason] = []
    shared = [t for t in theirs if t in tones]
    if shared:
        metal = [t for t in shared if t in METALS]
        out.append(Reason("tone", ((metal or shared)[0],)))
    contrast = next(
        (
            (mine, other)
            for mine in theirs
            for other in tones
            if other in styling.contrasts.get(mine, ()) or mine in styling.contrasts.get(other, ())
        ),
        None,
    )
    if contrast is not None:
        out.append(Reason("contrast", contrast))
    main = _main(product)
    if not out and main in styling.neutrals and tones:
        out.append(Reason("neutral", (main,)))
    return out


def reasons(anchor: Product, product: Product) -> tuple[Reason, ...]:
    """Every checkable reason the pair has, the strongest first."""
    from bijou.retrieval.complements import note_terms

    styling = load_lexicon().styling
    out: list[Reason] = []
    pair = frozenset({anchor.article, product.article})
    how = styling.completes.get(pair)
    if how:
        reverse = product.article == styling.completes_base.get(pair)
        out.append(Reason("completes", (how, "reverse") if reverse else (how,)))
    if anchor.style_note and any(product.article in t for t in note_terms(anchor.style_note)):
        out.append(Reason("note", (product.article,)))
    out += colour_reasons(look_of(anchor).sure_tones, product)
    if anchor.usage in _OCCASIONS and anchor.usage == product.usage:
        out.append(Reason("occasion", (anchor.usage,)))
    return tuple(dict.fromkeys(out))


def holds(reason: Reason, anchor: Product, product: Product) -> bool:
    """The reason is true of these two records."""
    return reason in reasons(anchor, product)


def near_substitute(anchor: Product, product: Product, *, asked: bool = False) -> bool:
    """The product stands in for the anchor rather than going with it: the same article,
    the same kind of bag, or the same place on the body with nothing that completes the
    pair (a bangle beside a watch). ``asked``: the shopper named the category."""
    if asked:
        return False
    if product.article == anchor.article:
        return True
    lex = load_lexicon()
    bags = lex.groups["bags"]
    if anchor.article in bags and product.article in bags:
        return True
    styling = lex.styling
    place = styling.places.get(anchor.article)
    same_place = place is not None and place == styling.places.get(product.article)
    return same_place and frozenset({anchor.article, product.article}) not in styling.completes


def for_children(product: Product) -> bool:
    """A child's piece, by its gender or by its title's words."""
    words = set(product.title.lower().split())
    return product.gender in ("Boys", "Girls") or bool(words & load_lexicon().styling.children)


def in_price_band(anchor: Product, product: Product) -> bool:
    """A suggestion's price is in proportion to the anchor's (a ₹150 deodorant beside a
    ₹12,000 watch, or the reverse, is no match)."""
    styling = load_lexicon().styling
    top = max(anchor.price * styling.max_ratio, styling.floor)
    return anchor.price * styling.min_ratio <= product.price <= top
