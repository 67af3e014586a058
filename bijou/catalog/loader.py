"""Read a catalog (JSONL, gzipped JSONL or CSV) into products, reporting every bad row.

A bad row is skipped with its line, field and reason; every good row loads."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bijou.catalog.clean import (
    clean_text,
    is_missing,
    normalize_colour,
    normalize_gender,
    parse_price,
    title_case,
)
from bijou.catalog.schema import Product
from bijou.config import BijouConfig

BUNDLED_DIR = Path(__file__).parent / "data"
BUNDLED_CATALOG = BUNDLED_DIR / "products.jsonl.gz"
BUNDLED_IMAGES = BUNDLED_DIR / "images.zip"
# The demo shop's own documents (policies, care, size charts) and its size chart data.
BUNDLED_SHOP = Path(__file__).parent / "shop"

MIN_PRICE = 1.0
VIDEO_SUFFIXES = (".mp4", ".webm")
_TEXT_FIELDS = ("description", "style_note", "materials_care", "size_fit")


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass
class CatalogLoad:
    products: list[Product] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    def summary(self) -> str:
        bad_lines = len({e.line for e in self.errors})
        return f"{len(self.products)} products loaded, {bad_lines} rows skipped"


def open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def csv_rows(handle: io.TextIOBase) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """(line number, row by column) pairs of a CSV file; a row with more fields than the
    header comes as a RowError."""
    reader = csv.DictReader(handle)
    for row in reader:
        line = reader.line_num
        if None in row:
            yield line, RowError(line, "*", "more fields than the header has")
            continue
        yield line, {k.strip(): v for k, v in row.items() if k is not None}


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """(line number, raw row) pairs; a row that cannot even be parsed comes as a RowError."""
    name = path.name.lower().removesuffix(".gz")
    with open_text(path) as handle:
        if name.endswith(".csv"):
            yield from csv_rows(handle)
            return
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                yield line, RowError(line, "*", f"invalid JSON: {exc.msg}")
                continue
            if not isinstance(row, dict):
                yield line, RowError(line, "*", "a row must be a JSON object")
                continue
            yield line, row


def _attributes(row: dict[str, Any]) -> dict[str, str]:
    """A JSON object (JSONL) or a JSON string (CSV) plus any ``attr:<Name>`` CSV columns."""
    raw = row.get("attributes")
    if is_missing(raw):
        raw = {}
    elif isinstance(raw, str):
        raw = json.loads(raw)
    if not isinstance(raw, dict):
        raise ValueError("attributes must be an object of name -> value")
    raw = dict(raw)  # never mutate the caller's row
    for key, value in row.items():
        if key.startswith("attr:"):
            raw[key[5:]] = value
    return {clean_text(k): clean_text(v) for k, v in raw.items() if not is_missing(v)}


def _path(value: object) -> str | None:
    return None if is_missing(value) else str(value).strip()


def _video_path(value: object) -> str | None:
    path = _path(value)
    if path is not None and Path(path).suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"a product video must be {' or '.join(VIDEO_SUFFIXES)}: {path!r}")
    return path


def _year(value: object) -> int | None:
    if is_missing(value):
        return None
    return int(float(str(value)))


def product_from_row(row: dict[str, Any]) -> Product:
    """Clean and validate one raw row; raises ValueError naming the bad field."""
    values: dict[str, Any] = {}

    def take(name: str, convert: Any, *sources: str) -> None:
        source = next((s for s in sources if not is_missing(row.get(s))), sources[0])
        try:
            values[name] = convert(row.get(source))
        except (ValueError, TypeError, OverflowError) as exc:  # JSONDecodeError is a ValueError
            raise _FieldError(source, str(exc)) from exc

    take("id", lambda v: "" if is_missing(v) else str(v).strip(), "id")
    take("title", clean_text, "title", "name")
    take("brand", clean_text, "brand")
    take("gender", normalize_gender, "gender")
    take("master", title_case, "master")
    take("sub", title_case, "sub")
    take("article", title_case, "article", "category")
    take("colour", normalize_colour, "colour", "color")
    take("season", clean_text, "season")
    take("year", _year, "year")
    take("usage", title_case, "usage", "occasion")
    try:  # reads the whole row: the ``attributes`` value plus any ``attr:<Name>`` columns
        values["attributes"] = _attributes(row)
    except ValueError as exc:  # includes json.JSONDecodeError
        raise _FieldError("attributes", str(exc)) from exc
    for name in _TEXT_FIELDS:
        take(name, clean_text, name)
    take("image", _path, "image_path", "image")
    take("video", _video_path, "video_path", "video")
    take("price", parse_price, "discounted_price_inr", "price", "price_inr")
    take("list_price", parse_price, "price_inr", "list_price", "price")
    if not values["title"] and values["brand"] and values["article"]:
        # Some rows carry "NA" titles but full facts: name them the way the catalog does.
        parts = (values["brand"], values["gender"], values["colour"], values["article"])
        values["title"] = " ".join(p for p in parts if p)
    if values["price"] is None:
        raise _FieldError("price", "missing")
    if values["price"] < MIN_PRICE:
        # The source marks unpriced items 0 or 0.1; quoting that to a shopper would be wrong.
        raise _FieldError("price", f"{values['price']:g} is a placeholder, not a price")
    values["list_price"] = max(values["list_price"] or 0.0, values["price"])
    if not values["id"]:
        raise _FieldError("id", "missing")
    try:
        return Product(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _FieldError(".".join(map(str, first["loc"])) or "*", first["msg"]) from None


class _FieldError(ValueError):
    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field_name
        self.reason = reason


def load_catalog(path: Path | None = None) -> CatalogLoad:
    """Load every good row of ``path`` (default: the bundled catalog)."""
    path = path or BUNDLED_CATALOG
    if not path.is_file():
        raise FileNotFoundError(f"catalog not found: {path}")
    result = CatalogLoad()
    seen: dict[str, int] = {}
    for line, row in _rows(path):
        if isinstance(row, RowError):
            result.errors.append(row)
            continue
        try:
            product = product_from_row(row)
        except _FieldError as exc:
            result.errors.append(RowError(line, exc.field, exc.reason))
            continue
        if product.id in seen:
            result.errors.append(
                RowError(
                    line, "id", f"duplicate id {product.id!r} (first on line {seen[product.id]})"
                )
            )
            continue
        seen[product.id] = line
        result.products.append(product)
    return result


def catalog_sources(config: BijouConfig) -> tuple[Path, Path]:
    """The configured catalog file and its image store (a folder or a .zip)."""
    if config.catalog.path is None:
        return BUNDLED_CATALOG, config.catalog.images or BUNDLED_IMAGES
    path = config.catalog.path
    if config.catalog.images is not None:
        return path, config.catalog.images
    beside = path.parent / "images.zip"
    return path, beside if beside.is_file() else path.parent
