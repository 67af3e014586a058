"""A product's real look: its visible metal tone and main colours, from all its evidence.

Catalog records disagree with themselves: the "Lencia Sterling Silver Pendant" has colour
White; "Royal Diadem Rust Earrings" have colour Gold (gold-tone with rust stones); a watch's
colour is its strap's while its title names the dial. `look_of` reads the title's words, the
attributes that name a metal or a colour (Base Metal, Plating, Strap/Dial/Frame/Lens Colour)
and the colour field, in that order of trust, and records where they disagree. The image's
colours (`image_colours`) are evidence too: they settle a record with no colour at all and
count as a conflict where they contradict it. Everything that matches or says a colour reads
the look, not the colour field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

from bijou.catalog.schema import METAL_TONES, Product
from bijou.retrieval.lexicon import load_lexicon

LOOK_VERSION = "look:1"  # part of the index's payload: a change re-writes payloads, not vectors
METALS = ("Gold", "Silver", "Rose", "Copper", "Bronze", "Steel")
# Attributes whose values name a visible colour; their order is their trust.
COLOUR_ATTRIBUTES = ("Plating", "Dial Colour", "Strap Colour", "Frame Colour", "Lens Colour")
# Articles worn for their metal: their look leads with it.
_METAL_FIRST = frozenset({"Watches", "Cufflinks", "Ties and Cufflinks"})
_SHADOWS = frozenset({"Black", "Charcoal", "Grey", "Coffee Brown", "Navy Blue"})


@dataclass(frozen=True)
class Look:
    metal: str | None  # the visible metal tone: Gold, Silver, Rose, Copper, Bronze, Steel
    colours: tuple[str, ...]  # the other visible colours, main first
    conflicts: tuple[str, ...] = ()  # where the evidence disagrees, in words
    # Colours only the colour field claims, against the colours the title names: kept so a
    # search for them still finds the product, never said as a reason to pair it.
    disputed: tuple[str, ...] = ()

    @property
    def tones(self) -> tuple[str, ...]:
        """Every colour a shopper may call it by, the metal first."""
        return tuple(dict.fromkeys([*([self.metal] if self.metal else []), *self.colours]))

    @property
    def sure_tones(self) -> tuple[str, ...]:
        """The tones no evidence disputes: what a reason may say."""
        return tuple(t for t in self.tones if t not in self.disputed)

    def main(self, article: str) -> str | None:
        """The colour to name the product by: jewellery and watches by their metal."""
        metal_first = article in load_lexicon().jewellery or article in _METAL_FIRST
        if self.metal and (metal_first or not self.colours):
            return self.metal
        return self.colours[0] if self.colours else self.metal


@cache
def _english_colours() -> dict[str, tuple[str, ...]]:
    vocab = load_lexicon().colours
    return {text: term.values for text, term in vocab.terms.items() if term.language == "en"}


def _named(text: str) -> list[tuple[str, ...]]:
    """The colour terms in a piece of record text, in order: "Rose Gold" is one term."""
    vocab = load_lexicon().colours
    english = _english_colours()
    return [english[m[0]] for m in vocab.pattern.finditer(text.lower()) if m[0] in english]


def _split(terms: list[tuple[str, ...]]) -> tuple[list[str], list[str]]:
    """(metal tones, other colours) of colour terms; "rose gold" is the metal Rose."""
    metals: list[str] = []
    colours: list[str] = []
    for values in terms:
        metal = next((v for v in values if v in METALS), None)
        if metal is not None and all(v in METALS or v == "White" for v in values):
            metals.append(metal)
        else:
            colours += [v for v in values if v not in METALS]
    return list(dict.fromkeys(metals)), list(dict.fromkeys(colours))


def look_of(product: Product, image_colours: Sequence[str] = ()) -> Look:
    """The product's look from its record (and, when given, its image's main colours)."""
    conflicts: list[str] = []
    title_metals, title_colours = _split(_named(product.title))
    attr_terms = [t for name in COLOUR_ATTRIBUTES for t in _named(product.attributes.get(name, ""))]
    attr_metals, attr_colours = _split(attr_terms)
    base = METAL_TONES.get(product.metal.lower()) if product.metal else None
    field_metals, field_colours = _split([(product.colour,)] if product.colour else [])
    metal = next(iter([*title_metals, *attr_metals, *field_metals]), None) or base
    # Near names are one look (Coffee Brown and Brown, Steel and Silver, rose gold and Copper).
    if title_metals and field_metals and not _near(field_metals[0], title_metals[0]):
        conflicts.append(f"colour field {product.colour}, the title says {title_metals[0]}")
    # "Sterling Silver Pendant", colour White: the title names the metal it shows, and the
    # field another colour (a rose-gold watch listed Pink is one look, not two).
    if (
        title_metals
        and product.colour
        and not field_metals
        and not title_colours
        and (product.colour == "White" or not _near(product.colour, title_metals[0]))
    ):
        conflicts.append(f"colour field {product.colour}, the title says {title_metals[0]}")
    disputed: list[str] = []
    if (
        title_colours
        and field_colours
        and not any(_near(a, b) for a in field_colours for b in title_colours)
    ):
        conflicts.append(f"colour field {product.colour}, the title says {title_colours[0]}")
        disputed = [c for c in field_colours if c not in attr_colours]
    colours = [*title_colours, *attr_colours]
    if field_colours and not (title_metals and not title_colours and product.colour == "White"):
        colours += field_colours
    # Dark neutrals in a 60x80 photo are as often shadows and straps as the product.
    evidence = [c for c in image_colours if c not in _SHADOWS]
    if evidence:
        seen = set(colours) | ({metal} if metal else set())
        if seen and not any(_near(a, b) for a in image_colours for b in seen):
            conflicts.append(f"the image looks {evidence[0]}, the record says {sorted(seen)}")
        if not seen:
            colours += [c for c in evidence if c not in METALS][:1]
            metal = metal or next((c for c in evidence if c in METALS), None)
    colours = list(dict.fromkeys(c for c in colours if c != metal))
    return Look(metal, tuple(colours), tuple(conflicts), tuple(disputed))


# --- the image's colours --------------------------------------------------------------------
@cache
def _palette() -> tuple[tuple[str, ...], np.ndarray]:
    palette = load_lexicon().palette
    return tuple(palette), np.array(list(palette.values()), dtype=np.float32)


NEAR = 95.0  # sRGB distance within which two named colours look alike on a 60x80 photo


def _near(a: str, b: str) -> bool:
    """Two colour names look alike (Grey and Steel, Navy Blue and Blue); names without a
    reference colour are never contradicted."""
    if set(a.split()) & set(b.split()):  # a shade of the same colour: Navy Blue, Blue
        return True
    palette = load_lexicon().palette
    if a not in palette or b not in palette:
        return True
    return float(np.linalg.norm(np.subtract(palette[a], palette[b]))) <= NEAR


def image_colours(image: Image.Image, k: int = 2) -> tuple[str, ...]:
    """The ``k`` palette colours that most of the object's pixels (the white studio
    background left out) are closest to, most first."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1, 3)
    background = (rgb.min(axis=1) > 232) & (np.ptp(rgb, axis=1) < 18)
    pixels = rgb[~background]
    if len(pixels) < 20:
        return ()
    names, reference = _palette()
    distance = ((pixels[:, None, :] - reference[None, :, :]) ** 2).sum(axis=2)
    counts = np.bincount(np.argmin(distance, axis=1), minlength=len(names))
    order = [int(i) for i in np.argsort(-counts) if counts[i] >= 0.3 * len(pixels)]
    return tuple(names[i] for i in order[:k])
