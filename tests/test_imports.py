"""Shopify and WooCommerce product exports (the examples under examples/): variants become
products with their options, prices and local images; every bad row is reported with its
line and reason; nothing is fetched from the network."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from bijou.catalog.imports import import_shopify, import_woocommerce
from bijou.catalog.loader import load_catalog
from bijou.cli import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SHOPIFY = EXAMPLES / "shopify" / "products_export.csv"
WOO = EXAMPLES / "woocommerce" / "products.csv"


def test_shopify_variants_prices_and_images(tmp_path: Path) -> None:
    result = import_shopify(SHOPIFY, EXAMPLES / "shopify" / "images", tmp_path)
    by_id = {p.id: p for p in result.products}
    assert set(by_id) == {"BA-HOOP-S", "BA-HOOP-L", "BA-HOOP-RS", "BA-KADA-24", "BA-KADA-26",
                          "BA-SOL-1"}  # fmt: skip
    small = by_id["BA-HOOP-S"]
    assert small.title == "Silver Hoop Earrings - Silver / Small"
    assert (small.price, small.list_price) == (1299.0, 1599.0)
    assert small.attributes["Metal"] == "Silver" and small.attributes["Size"] == "Small"
    assert small.article == "Earrings" and small.brand == "Bijou Atelier"
    assert small.gender == "Women" and small.colour == "Silver"
    assert "925 sterling silver" in small.description and "<" not in small.description
    # Later variant rows take the product's columns from its first row.
    assert by_id["BA-HOOP-RS"].description == small.description
    assert by_id["BA-HOOP-RS"].list_price == 1399.0  # no compare-at price: the price
    # "Default Title" is Shopify's single variant: no options in the title.
    assert by_id["BA-SOL-1"].title == "Solitaire CZ Ring"
    # A local path (relative to the export) and a URL found by name in the images folder.
    assert small.image and (tmp_path / small.image).is_file()
    assert by_id["BA-SOL-1"].image and (tmp_path / by_id["BA-SOL-1"].image).is_file()
    problems = {(e.line, e.field): e.reason for e in result.errors}
    assert problems == {
        (8, "Variant Price"): "not a price: 'two thousand'",
        (11, "Title"): "missing on the product's first row",
        (12, "Variant Price"): "0 is not a price a shopper can pay",
    }
    assert [(w.line, w.field) for w in result.warnings] == [(10, "Status")]


def test_a_url_without_a_local_copy_is_reported_not_fetched(tmp_path: Path) -> None:
    result = import_shopify(SHOPIFY, None, tmp_path)
    ring = next(p for p in result.products if p.id == "BA-SOL-1")
    assert ring.image is None
    warning = next(w for w in result.warnings if w.line == 9)
    assert "not a local file" in warning.reason and "https://cdn.shopify.com" in warning.reason


def test_woocommerce_simple_and_variable_products(tmp_path: Path) -> None:
    result = import_woocommerce(WOO, EXAMPLES / "woocommerce" / "images", tmp_path)
    by_id = {p.id: p for p in result.products}
    assert set(by_id) == {"WC-PEARL-1", "WC-LAYER-G", "WC-LAYER-S", "WC-STUD-2"}
    pearl = by_id["WC-PEARL-1"]
    assert (pearl.price, pearl.list_price) == (1799.0, 2199.0)  # on sale
    assert pearl.article == "Pendant" and pearl.sub == "Jewellery"
    gold, silver = by_id["WC-LAYER-G"], by_id["WC-LAYER-S"]
    # Variations inherit the variable product's description, category and image; the
    # parent is named by "id:<ID>" or by its SKU.
    assert gold.description == silver.description and "40 and 45 cm" in gold.description
    assert gold.article == silver.article == "Necklace and Chains"
    assert gold.image and gold.image == silver.image
    assert (gold.colour, silver.colour) == ("Gold", "Silver")
    assert (silver.price, silver.list_price) == (1199.0, 1399.0)
    assert by_id["WC-STUD-2"].image  # a URL, found by name in the images folder
    problems = {(e.line, e.field): e.reason for e in result.errors}
    assert problems == {
        (6, "Parent"): "no variable product 'id:999'",
        (7, "Regular price"): "not a price: 'free'",
    }
    assert [(w.line, w.field) for w in result.warnings] == [(8, "Type")]


def test_import_command_writes_a_catalog_bijou_loads(tmp_path: Path) -> None:
    out = tmp_path / "shop"
    images = str(EXAMPLES / "woocommerce" / "images")
    args = ["import", "woocommerce", str(WOO), "--images", images, "--out", str(out), "--no-index"]
    result = CliRunner().invoke(app, args, env={"BIJOU__DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 0, result.output
    assert "line 6: Parent: no variable product 'id:999'" in result.stderr
    assert "4 products imported, 2 rows skipped, 1 warnings" in result.stderr
    loaded = load_catalog(out / "products.jsonl")
    assert not loaded.errors and len(loaded.products) == 4
    assert all((out / "images" / p.image).is_file() for p in loaded.products if p.image)
    first = json.loads((out / "products.jsonl").read_text().splitlines()[0])
    assert first["id"] == "WC-PEARL-1"
    bad = CliRunner().invoke(app, ["import", "magento", str(WOO)])
    assert bad.exit_code != 0 and "shopify or woocommerce" in bad.output
