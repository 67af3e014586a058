"""A shop's own export, mapped to Bijou's product schema: Shopify's product CSV and
WooCommerce's product CSV, with their documented columns (variants and options, images by
URL or path, prices, tags).

Every purchasable variant becomes one product (Bijou recommends what a shopper can buy),
titled with its options and carrying them as attributes. Images are read only from local
files: a path in the export (relative to the export's folder), or, for a URL, the file of
that name in the configured images directory; nothing is fetched from the network. Every
bad row is reported with its line and reason and skipped; a missing image is reported and
the product kept without one.

Shopify: https://help.shopify.com/en/manual/products/import-export/using-csv
WooCommerce: https://woocommerce.com/document/product-csv-importer-exporter/
"""

from __future__ import annotations

import hashlib
import html
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import unquote, urlparse

from pydantic import ValidationError

from bijou.catalog.clean import (
    GENDERS,
    clean_text,
    is_missing,
    normalize_colour,
    parse_price,
    title_case,
)
from bijou.catalog.loader import MIN_PRICE, RowError, csv_rows, open_text
from bijou.catalog.schema import Product

FORMATS = ("shopify", "woocommerce")
_TAG = re.compile(r"<[^>]+>")
_BLOCK = re.compile(r"</?(?:p|br|li|div|h\d)\b[^>]*>", re.I)
_COLOUR_OPTIONS = {"color", "colour", "metal", "metal colour", "metal color", "finish", "tone"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


@dataclass
class ImportResult:
    products: list[Product] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)  # rows skipped
    warnings: list[RowError] = field(default_factory=list)  # rows kept, e.g. without image

    def summary(self) -> str:
        bad = len({e.line for e in self.errors})
        return (
            f"{len(self.products)} products imported, {bad} rows skipped, "
            f"{len(self.warnings)} warnings"
        )


class _RowProblem(ValueError):
    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


def _text(html_text: str) -> str:
    """HTML from a shop's product description -> plain sentences."""
    return clean_text(html.unescape(_TAG.sub(" ", _BLOCK.sub(". ", html_text or ""))))


def _price(row: dict[str, str], column: str, required: bool) -> float | None:
    value = row.get(column, "")
    if is_missing(value):
        if required:
            raise _RowProblem(column, "missing")
        return None
    try:
        price = parse_price(value)
    except ValueError as exc:
        raise _RowProblem(column, str(exc)) from None
    if price is None:
        raise _RowProblem(column, f"not a price: {value!r}")
    if required and price < MIN_PRICE:
        raise _RowProblem(column, f"{price:g} is not a price a shopper can pay")
    return price


def _gender(tags: list[str]) -> str:
    for tag in tags:
        if tag.lower() in GENDERS:
            return GENDERS[tag.lower()]
    return "Unisex"


def _colour(options: dict[str, str]) -> str:
    for name, value in options.items():
        if name.lower() in _COLOUR_OPTIONS:
            return normalize_colour(value)
    return ""


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, str] | RowError]]:
    with open_text(path) as handle:
        for line, row in csv_rows(handle):
            if isinstance(row, RowError):
                yield line, row
            else:
                yield line, {k: (v or "").strip() for k, v in row.items()}


class _Images:
    """Local image files for an export, copied into the import's image folder."""

    def __init__(self, export: Path, images_dir: Path | None, out_dir: Path) -> None:
        self.export_dir = export.parent
        self.images_dir = images_dir
        self.out_dir = out_dir

    def find(self, reference: str) -> Path | None:
        """A path: relative to the export's folder, else the images folder. A URL: the
        file of its name in the images folder (never downloaded)."""
        parsed = urlparse(reference)
        if parsed.scheme in ("http", "https"):
            name = Path(unquote(parsed.path)).name
            candidates = [self.images_dir / name] if self.images_dir and name else []
        else:
            path = Path(reference).expanduser()
            roots = [self.export_dir, *([self.images_dir] if self.images_dir else [])]
            candidates = [path] if path.is_absolute() else [r / path for r in roots]
            if self.images_dir:
                candidates.append(self.images_dir / path.name)
        return next((c for c in candidates if c.is_file()), None)

    def take(self, reference: str, line: int, warnings: list[RowError], column: str) -> str | None:
        """The image's path in the import folder, or None (warned) when it is not local."""
        if not reference:
            return None
        found = self.find(reference)
        if found is None or found.suffix.lower() not in IMAGE_SUFFIXES:
            where = f"in {self.images_dir}" if self.images_dir else "(no --images folder given)"
            reason = f"image {reference!r} is not a local file {where}; imported without it"
            warnings.append(RowError(line, column, reason))
            return None
        data = found.read_bytes()
        name = hashlib.sha256(data).hexdigest()[:16] + found.suffix.lower()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        target = self.out_dir / name
        if not target.exists():
            shutil.copyfile(found, target)
        return name


def _product(values: dict[str, object]) -> Product:
    try:
        return Product.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _RowProblem(".".join(map(str, first["loc"])) or "*", first["msg"]) from None


def _keep(
    result: ImportResult, seen: dict[str, int], line: int, build: Callable[[], Product]
) -> None:
    """The product ``build`` makes of the row at ``line``, or the row's error."""
    try:
        product = build()
    except _RowProblem as exc:
        result.errors.append(RowError(line, exc.column, exc.reason))
        return
    if product.id in seen:
        reason = f"duplicate product id {product.id!r} (first on line {seen[product.id]})"
        result.errors.append(RowError(line, "id", reason))
        return
    seen[product.id] = line
    result.products.append(product)


# --- Shopify -------------------------------------------------------------------------------
def import_shopify(path: Path, images_dir: Path | None, out_dir: Path) -> ImportResult:
    """Shopify's products_export.csv: one row per variant (and extra image rows); the
    product's own columns are on the first row of its Handle."""
    result, seen = ImportResult(), {}
    images = _Images(path, images_dir, out_dir)
    parents: dict[str, dict[str, str]] = {}
    counts: dict[str, int] = {}
    for line, row in _csv_rows(path):
        if isinstance(row, RowError):
            result.errors.append(row)
            continue
        handle = row.get("Handle", "")
        if not handle:
            result.errors.append(RowError(line, "Handle", "missing"))
            continue
        first = handle not in parents
        if first:
            parents[handle] = row
        product_row = parents[handle]
        if not first and not row.get("Option1 Value") and not row.get("Variant Price"):
            continue  # an extra image of a product already read
        if product_row.get("Status", "active").lower() not in ("", "active"):
            reason = f"{product_row['Status']}: not for sale, skipped"
            result.warnings.append(RowError(line, "Status", reason))
            continue
        counts[handle] = counts.get(handle, 0) + 1
        number = counts[handle]
        build = partial(_shopify_variant, row, product_row, number, line, images, result)
        _keep(result, seen, line, build)
    return result


def _shopify_variant(
    row: dict[str, str],
    product_row: dict[str, str],
    number: int,
    line: int,
    images: _Images,
    result: ImportResult,
) -> Product:
    title = clean_text(product_row.get("Title"))
    if not title:
        raise _RowProblem("Title", "missing on the product's first row")
    options = {}
    for n in (1, 2, 3):
        name = product_row.get(f"Option{n} Name", "")
        value = row.get(f"Option{n} Value", "")
        if name and value and not (name == "Title" and value == "Default Title"):
            options[clean_text(name)] = clean_text(value)
    category = product_row.get("Product Category", "")
    article = title_case(product_row.get("Type") or category.split(">")[-1])
    if not article:
        raise _RowProblem("Type", "no product type or category to file it under")
    price = _price(row, "Variant Price", required=True)
    compare = _price(row, "Variant Compare At Price", required=False)
    tags = [t.strip() for t in product_row.get("Tags", "").split(",") if t.strip()]
    handle = product_row["Handle"]
    plain = number == 1 and not options
    pid = row.get("Variant SKU") or (handle if plain else f"{handle}-{number}")
    image_ref, column = (row.get("Variant Image"), "Variant Image")
    if not image_ref:
        image_ref, column = product_row.get("Image Src", ""), "Image Src"
    attributes = {**options}
    if tags:
        attributes["Tags"] = ", ".join(tags)
    if grams := row.get("Variant Grams"):
        attributes["Weight (g)"] = grams
    suffix = " - " + " / ".join(options.values()) if options else ""
    return _product({
        "id": pid,
        "title": title + suffix,
        "brand": clean_text(product_row.get("Vendor")),
        "gender": _gender(tags),
        "sub": title_case(category.split(">")[-2]) if category.count(">") >= 1 else "",
        "article": article,
        "colour": _colour(options),
        "price": price,
        "list_price": max(compare or 0.0, price or 0.0),
        "attributes": attributes,
        "description": _text(product_row.get("Body (HTML)", "")),
        "image": images.take(image_ref, line, result.warnings, column),
    })  # fmt: skip


# --- WooCommerce ---------------------------------------------------------------------------
def import_woocommerce(path: Path, images_dir: Path | None, out_dir: Path) -> ImportResult:
    """WooCommerce's product export: simple products, and variable products with one
    "variation" row each (Parent: "id:<ID>" or the parent's SKU)."""
    result, seen = ImportResult(), {}
    images = _Images(path, images_dir, out_dir)
    rows = list(_csv_rows(path))
    parents: dict[str, dict[str, str]] = {}
    for _, row in rows:
        if isinstance(row, dict) and row.get("Type", "").lower() == "variable":
            for key in (f"id:{row.get('ID', '')}", row.get("SKU", "")):
                if key and key != "id:":
                    parents[key] = row
    for line, row in rows:
        if isinstance(row, RowError):
            result.errors.append(row)
            continue
        kind = row.get("Type", "simple").lower() or "simple"
        if kind == "variable":
            continue  # its variations are what a shopper buys
        if kind not in ("simple", "variation"):
            reason = f"{kind} products are not sold as one item here, skipped"
            result.warnings.append(RowError(line, "Type", reason))
            continue
        parent = parents.get(row.get("Parent", "")) if kind == "variation" else None
        if kind == "variation" and parent is None:
            reason = f"no variable product {row.get('Parent')!r}"
            result.errors.append(RowError(line, "Parent", reason))
            continue
        if row.get("Published", "1") in ("0", "-1"):
            result.warnings.append(RowError(line, "Published", "not published, skipped"))
            continue
        _keep(result, seen, line, partial(_woo_product, row, parent or {}, line, images, result))
    return result


def _woo_product(
    row: dict[str, str], parent: dict[str, str], line: int, images: _Images, result: ImportResult
) -> Product:
    def get(column: str) -> str:
        return row.get(column) or parent.get(column, "")

    name = clean_text(get("Name"))
    if not name:
        raise _RowProblem("Name", "missing")
    options = {}
    for n in range(1, 10):
        key = clean_text(row.get(f"Attribute {n} name"))
        value = clean_text(row.get(f"Attribute {n} value(s)"))
        if key and value:
            options[key] = value
    categories = [c.strip() for c in get("Categories").split(",") if c.strip()]
    leaf = categories[0].split(">")[-1] if categories else ""
    article = title_case(leaf)
    if not article:
        raise _RowProblem("Categories", "no category to file it under")
    regular = _price(row, "Regular price", required=True)
    sale = _price(row, "Sale price", required=False)
    price = sale if sale is not None and sale >= MIN_PRICE else regular
    tags = [t.strip() for t in get("Tags").split(",") if t.strip()]
    pid = row.get("SKU") or (f"woo-{row['ID']}" if row.get("ID") else "")
    if not pid:
        raise _RowProblem("SKU", "neither SKU nor ID")
    pictures = [p.strip() for p in get("Images").split(",") if p.strip()]
    attributes = {**options}
    if tags:
        attributes["Tags"] = ", ".join(tags)
    if weight := get("Weight (g)") or get("Weight (kg)"):
        attributes["Weight"] = weight
    shown = name if _names_options(name, options) else f"{name} - {' / '.join(options.values())}"
    description = _text(get("Description")) or _text(get("Short description"))
    return _product({
        "id": pid,
        "title": shown,
        "brand": clean_text(get("Brands") or get("Brand")),
        "gender": _gender(tags + categories),
        "sub": title_case(categories[0].split(">")[-2]) if ">" in categories[0] else "",
        "article": article,
        "colour": _colour(options),
        "price": price,
        "list_price": max(regular or 0.0, price or 0.0),
        "attributes": attributes,
        "description": description,
        "image": images.take(pictures[0], line, result.warnings, "Images") if pictures else None,
    })  # fmt: skip


def _names_options(name: str, options: dict[str, str]) -> bool:
    """WooCommerce names a variation "Ring - Silver" itself; a name without its options
    (or a simple product with none) is shown as is."""
    return not options or all(v.lower() in name.lower() for v in options.values())


def import_export(kind: str, path: Path, images_dir: Path | None, out_dir: Path) -> ImportResult:
    if kind == "shopify":
        return import_shopify(path, images_dir, out_dir)
    if kind == "woocommerce":
        return import_woocommerce(path, images_dir, out_dir)
    raise ValueError(f"unknown export format {kind!r}: {' or '.join(FORMATS)}")
