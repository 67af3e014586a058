"""Normalisation of raw catalog values: text debris, placeholders, categories, colours, prices."""

from __future__ import annotations

import html
import re

PLACEHOLDERS = frozenset({"", "na", "n/a", "n.a.", "-", "--", "null", "none", "nan", "nil"})

# Entity debris in the source looks like "&  rsquo s" or "&bull": an ampersand, spaces, a name.
_ENTITY_DEBRIS = re.compile(r"&\s*(#\d+|[a-zA-Z]{2,8})(\s*;?)")
# Debris swallows the spaces after the name; one is given back except after an opening quote
# ("& lsquo luminous" -> "'luminous"); apostrophes rejoin below ("it' s" -> "it's").
_OPENING_QUOTES = frozenset({"lsquo", "ldquo"})
_ENTITY_NAMES = {
    "rsquo": "'", "lsquo": "'", "rdquo": '"', "ldquo": '"', "bull": " • ", "ndash": "-",
    "mdash": "-", "amp": "&", "nbsp": " ", "quot": '"', "trade": "™", "reg": "®",
    "euro": "€", "tilde": "~", "hellip": "...", "deg": "°", "times": "x",
}  # fmt: skip
_SPACE = re.compile(r"[ \t\r\f\v]+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_APOSTROPHE_GAP = re.compile(r"(\w)\s*'\s*(s|t|re|ll|ve|d|m)\b")
_O_CLOCK = re.compile(r"\b([oO0])\s*'\s*clock\b")

GENDERS = {
    "women": "Women", "woman": "Women", "female": "Women", "ladies": "Women", "f": "Women",
    "men": "Men", "man": "Men", "male": "Men", "gents": "Men", "m": "Men",
    "unisex": "Unisex", "girls": "Girls", "girl": "Girls", "boys": "Boys", "boy": "Boys",
}  # fmt: skip
_COLOUR_ALIASES = {"gray": "Grey", "golden": "Gold", "multicolour": "Multi", "multicolor": "Multi"}
_PRICE = re.compile(
    r"^\s*(?:rs\.?|inr|₹|\$|€|£)?\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*(?:/-|rs|inr)?\s*$", re.I
)


def is_missing(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in PLACEHOLDERS)


def clean_text(value: object) -> str:
    """Decode entity debris, drop placeholders, collapse whitespace."""
    if is_missing(value):
        return ""
    text = html.unescape(str(value))

    def entity(match: re.Match[str]) -> str:
        name = match.group(1).lower()
        if name.startswith("#"):
            code = int(name[1:])
            out = chr(code) if 0 < code <= 0x10FFFF else ""
        elif name in _ENTITY_NAMES:
            out = _ENTITY_NAMES[name]
        else:
            return match.group(0)
        after = match.string[match.end() : match.end() + 1]  # 5' 8" stays 5'8"; 33" ) stays 33")
        word_follows = after.isalpha() or (after.isdigit() and out != "'")
        gap = match.group(2)[:1].isspace() and word_follows and name not in _OPENING_QUOTES
        return out + " " if gap else out

    for _ in range(2):  # twice: debris can be double-escaped ("&  amp nbsp" -> "&nbsp" -> " ")
        text = _ENTITY_DEBRIS.sub(entity, text)
    text = _APOSTROPHE_GAP.sub(r"\1'\2", text)
    text = _O_CLOCK.sub(r"\1'clock", text)
    lines = [_SPACE.sub(" ", line).strip() for line in text.splitlines()]
    text = " ".join(line for line in lines if line)
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text).strip()


def title_case(value: object) -> str:
    """Category-like values: "necklace and chains" -> "Necklace and Chains"."""
    text = clean_text(value)
    small = {"and", "or", "of", "the", "with"}
    words = text.split()
    return " ".join(
        w if (w.lower() in small and i) else (w[:1].upper() + w[1:]) for i, w in enumerate(words)
    )


def normalize_gender(value: object) -> str:
    text = clean_text(value)
    if not text:
        return "Unisex"
    try:
        return GENDERS[text.lower()]
    except KeyError:
        raise ValueError(f"unknown gender {text!r}") from None


def normalize_colour(value: object) -> str:
    text = clean_text(value)
    return _COLOUR_ALIASES.get(text.lower(), title_case(text))


def parse_price(value: object) -> float | None:
    """Numbers, or strings like "Rs 1,299", "₹999", "1299.00". None when missing."""
    if is_missing(value):
        return None
    if isinstance(value, bool):
        raise ValueError("not a price")
    if isinstance(value, int | float):
        number = float(value)
    else:
        match = _PRICE.match(str(value))
        if not match:
            raise ValueError(f"not a price: {value!r}")
        number = float(match.group(1).replace(",", ""))
    if number != number or number < 0:  # NaN or negative
        raise ValueError(f"price must be a non-negative number, got {value!r}")
    return number
