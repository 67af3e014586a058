"""Ring and bangle size conversion (US, UK, EU, India, China) from the shop's size chart, a
data file (`sizes.yaml` in the shop folder) that the shop's size-chart documents quote too.

A size is looked up in the chart of the system it is given in; a size between two rows (or
a measurement in millimetres) is matched to the nearest row by circumference and said to
be the nearest, never passed off as exact."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from bijou.catalog.loader import BUNDLED_SHOP

SIZE_CHART = BUNDLED_SHOP / "sizes.yaml"
Kind = Literal["ring", "bangle"]
System = Literal["us", "uk", "eu", "india", "china", "diameter_mm", "circumference_mm"]
SYSTEMS: tuple[str, ...] = ("us", "uk", "eu", "india", "china")
MEASURES = ("diameter_mm", "circumference_mm")


class SizeError(ValueError):
    """A size that is not one of the chart's, or a measurement out of its range."""


@dataclass(frozen=True)
class SizeRow:
    sizes: dict[str, str]  # system -> size
    diameter_mm: float
    circumference_mm: float


@dataclass(frozen=True)
class SizeConversion:
    kind: str
    system: str
    size: str  # as asked
    row: SizeRow
    exact: bool  # the size is a row of the chart (else the nearest row)


@dataclass(frozen=True)
class SizeQuestion:
    kind: str
    system: str
    size: str


@dataclass(frozen=True)
class SizeChart:
    rows: dict[str, tuple[SizeRow, ...]]  # kind -> rows, smallest first
    words: dict[str, tuple[str, ...]]  # system (and "bangle") -> how shoppers name it

    @classmethod
    def load(cls, path: Path = SIZE_CHART) -> SizeChart:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        rows = {
            kind: tuple(
                SizeRow(
                    {s: str(r[s]) for s in SYSTEMS if s in r},
                    float(r["diameter_mm"]),
                    float(r["circumference_mm"]),
                )
                for r in raw[kind]
            )
            for kind in ("ring", "bangle")
        }
        words = {k: tuple(v) for k, v in (raw.get("words") or {}).items()}
        return cls(rows, words)

    def read(self, text: str) -> SizeQuestion | None:
        """The size a message asks to convert ("what is US 7 in Indian size", "my ring is
        54 mm around", "bangle 2.6 in cm"), or None when it names none."""
        lowered = " ".join(text.lower().split())
        bangle = self.words.get("bangle", ())
        named = any(re.search(rf"\b{re.escape(w)}\b", lowered) for w in bangle)
        kind = "bangle" if named else "ring"
        indian = re.search(r"(?<![\w.])2\s?[-/.]\s?(\d{1,2})(?![\w.])", lowered)
        if kind == "bangle" and indian:  # "2-6", "2.6": only Indian bangle sizes look so
            return SizeQuestion(kind, "india", f"2-{indian[1]}")
        names = {w: system for system in SYSTEMS for w in self.words.get(system, ())}
        if names:
            alternatives = "|".join(sorted((re.escape(w) for w in names), key=len, reverse=True))
            half = r"(?:\s?½|\s1/2)?"
            size = rf"(?P<size>\d{{1,2}}(?:\.\d+)?{half}|[a-z](?:\+\d)?{half})"
            system = rf"(?P<system>{alternatives})"
            filler = r"(?:\s+(?:ring|bangle|size|sizes|is|a|an|the|in|of|me))*"
            for pattern in (rf"\b{system}\b{filler}\s+{size}(?![\w.])",
                            rf"(?<![\w.]){size}{filler}\s+{system}\b"):  # fmt: skip
                match = re.search(pattern, lowered)
                # A lone letter is a UK size only where the message speaks of sizes.
                letter = match and match["size"].isalpha() and len(match["size"]) == 1
                if match and (not letter or "size" in lowered):
                    return SizeQuestion(kind, names[match["system"]], match["size"])
        measured = re.search(r"(\d+(?:\.\d+)?)\s*(mm|cm)\b", lowered)
        if measured:
            value = float(measured[1]) * (10 if measured[2] == "cm" else 1)
            across = re.search(r"\b(diameter|across|inner|inside|width)\b", lowered)
            measure = "diameter_mm" if across else "circumference_mm"
            return SizeQuestion(kind, measure, f"{value:g}")
        return None

    def convert(self, kind: str, system: str, size: str) -> SizeConversion:
        """``size`` in ``system`` -> the chart row it is (exact) or is nearest to."""
        rows = self.rows.get(kind)
        if rows is None:
            raise SizeError(f"no size chart for {kind!r}: ring or bangle")
        if system in MEASURES:
            return self._nearest(kind, system, size, rows, _number(size, system))
        if system not in SYSTEMS:
            raise SizeError(f"unknown size system {system!r}: one of {', '.join(SYSTEMS)}")
        wanted = _normal(system, size)
        for row in rows:
            if system in row.sizes and _normal(system, row.sizes[system]) == wanted:
                return SizeConversion(kind, system, size, row, exact=True)
        # Between two rows: place it by the neighbouring numeric sizes.
        numbered = [(float(n), r) for r in rows if (n := _numeric(system, r.sizes.get(system)))]
        value = _numeric(system, wanted)
        if value is None or not numbered:
            known = ", ".join(r.sizes[system] for r in rows if system in r.sizes)
            raise SizeError(f"{size!r} is not a {system.upper()} {kind} size ({known})")
        (low, first), (high, last) = numbered[0], numbered[-1]
        if not low - 1 <= float(value) <= high + 1:
            span = f"{first.sizes[system]} to {last.sizes[system]}"
            raise SizeError(f"{size!r} is outside the {system.upper()} {kind} sizes, {span}")
        nearest = min(numbered, key=lambda pair: abs(pair[0] - float(value)))[1]
        return SizeConversion(kind, system, size, nearest, exact=False)

    def _nearest(
        self, kind: str, system: str, size: str, rows: tuple[SizeRow, ...], value: float
    ) -> SizeConversion:
        def measure(row: SizeRow) -> float:
            return row.diameter_mm if system == "diameter_mm" else row.circumference_mm

        lowest, highest = measure(rows[0]), measure(rows[-1])
        step = (highest - lowest) / max(len(rows) - 1, 1)
        if not lowest - step <= value <= highest + step:
            raise SizeError(
                f"{value:g} mm is outside the {kind} chart ({lowest:g}-{highest:g} mm {system})"
            )
        row = min(rows, key=lambda r: abs(measure(r) - value))
        return SizeConversion(kind, system, size, row, exact=abs(measure(row) - value) < 0.05)


_HALF = re.compile(r"\s*(?:½|1/2|\.5)$")


def _normal(system: str, size: str) -> str:
    """One spelling per size: "N 1/2" -> "N½", "7 1/2" -> "7.5", "2/4" or "2.4" -> "2-4"."""
    text = size.strip().upper().replace(" ", " ")
    if system == "uk":
        letters = _HALF.sub("", text).replace(" ", "")
        return letters + ("½" if _HALF.search(text) and not text.startswith("Z+") else "")
    if system == "india" and re.fullmatch(r"2\s*[-./ ]\s*\d{1,2}", text):
        return "2-" + re.split(r"[-./ ]", text.replace(" ", "-"), maxsplit=1)[1].strip("-./ ")
    if system == "us" and _HALF.search(text) and not text.endswith(".5"):
        return f"{float(_HALF.sub('', text)) + 0.5:g}"
    try:
        return f"{float(text):g}"
    except ValueError:
        return text


def _numeric(system: str, size: str | None) -> float | None:
    """A size as a number that orders the chart: UK letters count half sizes from A."""
    if size is None:
        return None
    if system == "uk":
        match = re.fullmatch(r"([A-Z])(?:\+(\d))?(½)?", size)
        if not match:
            return None
        letter, beyond, half = match.groups()
        return (ord(letter) - ord("A") + int(beyond or 0)) * 2 + (1 if half else 0)
    try:
        return float(size)
    except ValueError:
        return None


def _number(size: str, system: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:mm)?\s*", size)
    if not match:
        raise SizeError(f"{size!r} is not a measurement in millimetres ({system})")
    return float(match.group(1))
