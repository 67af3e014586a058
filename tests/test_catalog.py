"""The catalog loader's contract: bad rows are reported (line, field, reason) and skipped;
every good row loads; a summary says how many of each. Plus cleaning, images and sources."""

from __future__ import annotations

import csv
import gzip
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bijou.catalog.clean import clean_text, is_missing, normalize_gender, parse_price
from bijou.catalog.loader import (
    BUNDLED_CATALOG,
    BUNDLED_IMAGES,
    CatalogLoad,
    RowError,
    catalog_sources,
    load_catalog,
)
from bijou.catalog.media import ImageDecodeError, MediaStore, decode_image
from bijou.catalog.schema import Product
from bijou.config import BijouConfig

# ---------------------------------------------------------------- helpers and fixtures


def good(id_: str, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": id_,
        "title": f"Gold Ring {id_}",
        "brand": "Titan",
        "gender": "Women",
        "article": "Ring",
        "colour": "Gold",
        "price_inr": 1299,
        "discounted_price_inr": 999,
    }
    row.update(over)
    return {k: v for k, v in row.items() if v is not ...}


def write_jsonl(path: Path, lines: list[dict[str, Any] | str]) -> Path:
    text = "".join(
        (x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)) + "\n" for x in lines
    )
    path.write_text(text, encoding="utf-8")
    return path


def load_rows(tmp_path: Path, lines: list[dict[str, Any] | str]) -> CatalogLoad:
    return load_catalog(write_jsonl(tmp_path / "shop.jsonl", lines))


def only(tmp_path: Path, row: dict[str, Any]) -> Product:
    loaded = load_rows(tmp_path, [row])
    assert loaded.errors == []
    assert len(loaded.products) == 1
    return loaded.products[0]


def only_error(tmp_path: Path, row: dict[str, Any] | str) -> RowError:
    loaded = load_rows(tmp_path, [good("before"), row, good("after")])
    assert [p.id for p in loaded.products] == ["before", "after"]
    assert len(loaded.errors) == 1
    assert loaded.errors[0].line == 2
    return loaded.errors[0]


def jpeg_bytes(
    size: tuple[int, int] = (30, 40), colour: tuple[int, int, int] = (212, 175, 55)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bundled_load() -> CatalogLoad:
    return load_catalog()


# ---------------------------------------------------------------- bad rows, one at a time


def test_invalid_json_line_is_reported_and_skipped(tmp_path: Path) -> None:
    error = only_error(tmp_path, '{"id": "x", "title": ')
    assert error.field == "*"
    assert error.reason.startswith("invalid JSON: ")


def test_json_array_instead_of_object_is_reported(tmp_path: Path) -> None:
    error = only_error(tmp_path, json.dumps([good("x")]))
    assert error == RowError(2, "*", "a row must be a JSON object")


@pytest.mark.parametrize("scalar", ['"just a string"', "42", "null"])
def test_json_scalar_rows_are_reported(tmp_path: Path, scalar: str) -> None:
    assert only_error(tmp_path, scalar) == RowError(2, "*", "a row must be a JSON object")


def test_missing_price_is_reported(tmp_path: Path) -> None:
    row = good("x", price_inr=..., discounted_price_inr=...)
    assert only_error(tmp_path, row) == RowError(2, "price", "missing")


def test_placeholder_prices_count_as_missing(tmp_path: Path) -> None:
    row = good("x", price_inr="NA", discounted_price_inr="-")
    assert only_error(tmp_path, row) == RowError(2, "price", "missing")


def test_negative_price_is_reported(tmp_path: Path) -> None:
    row = good("x", price_inr=..., discounted_price_inr=..., price=-5)
    assert only_error(tmp_path, row) == RowError(
        2, "price", "price must be a non-negative number, got -5"
    )


def test_negative_price_string_is_reported(tmp_path: Path) -> None:
    row = good("x", discounted_price_inr="-499")
    assert only_error(tmp_path, row) == RowError(2, "discounted_price_inr", "not a price: '-499'")


def test_unparseable_list_price_is_reported(tmp_path: Path) -> None:
    row = good("x", price_inr="twelve hundred")
    assert only_error(tmp_path, row) == RowError(2, "price_inr", "not a price: 'twelve hundred'")


def test_unknown_gender_is_reported(tmp_path: Path) -> None:
    assert only_error(tmp_path, good("x", gender="Martian")) == RowError(
        2, "gender", "unknown gender 'Martian'"
    )


def test_missing_id_is_reported(tmp_path: Path) -> None:
    assert only_error(tmp_path, good("NA")) == RowError(2, "id", "missing")


def test_na_title_without_brand_is_reported(tmp_path: Path) -> None:
    error = only_error(tmp_path, good("x", title="NA", brand=...))
    assert (error.line, error.field) == (2, "title")
    assert "at least 1 character" in error.reason


def test_blank_article_is_reported(tmp_path: Path) -> None:
    error = only_error(tmp_path, good("x", article="   "))
    assert (error.line, error.field) == (2, "article")
    assert "at least 1 character" in error.reason


def test_absurd_year_is_reported_not_a_crash(tmp_path: Path) -> None:
    # 1e999 parses as float infinity: int() of it raises OverflowError, not ValueError.
    line = json.dumps(good("x")).replace('"id"', '"year": 1e999, "id"', 1)
    error = only_error(tmp_path, line)
    assert (error.line, error.field) == (2, "year")


def test_bad_attributes_are_reported(tmp_path: Path) -> None:
    error = only_error(tmp_path, good("x", attributes=["Base Metal", "Brass"]))
    assert error == RowError(2, "attributes", "attributes must be an object of name -> value")


def test_duplicate_id_keeps_first_and_reports_second_with_first_line(tmp_path: Path) -> None:
    loaded = load_rows(
        tmp_path,
        [good("a"), good("dup", title="First"), good("b"), good("dup", title="Second")],
    )
    assert [p.id for p in loaded.products] == ["a", "dup", "b"]
    assert loaded.products[1].title == "First"
    assert loaded.errors == [RowError(4, "id", "duplicate id 'dup' (first on line 2)")]


def test_a_bad_first_occurrence_does_not_make_the_second_a_duplicate(tmp_path: Path) -> None:
    loaded = load_rows(tmp_path, [good("dup", gender="Martian"), good("dup", title="Second")])
    assert [p.title for p in loaded.products] == ["Second"]
    assert [(e.line, e.field) for e in loaded.errors] == [(1, "gender")]


# ---------------------------------------------------------------- good rows around bad ones


def test_good_rows_around_bad_rows_all_load_with_exact_line_numbers(tmp_path: Path) -> None:
    lines: list[dict[str, Any] | str] = [
        good("g1"),  # 1
        "{broken",  # 2
        good("g3"),  # 3
        "",  # 4: blank lines are neither products nor errors
        "[1, 2, 3]",  # 5
        good("g6", price_inr=..., discounted_price_inr=...),  # 6
        good("g7"),  # 7
        good("g8", price=-1, price_inr=..., discounted_price_inr=...),  # 8
        good("g9", gender="robot"),  # 9
        good("g1"),  # 10: duplicate
        good("g11", title="NA", brand="NA"),  # 11
        good("g12", article=""),  # 12
        good("g13"),  # 13
        "   ",  # 14
        good("g15"),  # 15
    ]
    loaded = load_rows(tmp_path, lines)
    assert [p.id for p in loaded.products] == ["g1", "g3", "g7", "g13", "g15"]
    assert [(e.line, e.field) for e in loaded.errors] == [
        (2, "*"),
        (5, "*"),
        (6, "price"),
        (8, "price"),
        (9, "gender"),
        (10, "id"),
        (11, "title"),
        (12, "article"),
    ]
    assert loaded.summary() == "5 products loaded, 8 rows skipped"
    assert str(loaded.errors[2]) == "line 6: price: missing"


def test_summary_counts_rows_not_errors() -> None:
    load = CatalogLoad(errors=[RowError(3, "a", "x"), RowError(3, "b", "y"), RowError(9, "c", "z")])
    assert load.summary() == "0 products loaded, 2 rows skipped"


def test_empty_catalog(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("", encoding="utf-8")
    loaded = load_catalog(path)
    assert (loaded.products, loaded.errors) == ([], [])
    assert loaded.summary() == "0 products loaded, 0 rows skipped"


def test_missing_catalog_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="catalog not found"):
        load_catalog(tmp_path / "nope.jsonl")


# ---------------------------------------------------------------- values and cleaning


def test_full_row_is_cleaned(tmp_path: Path) -> None:
    product = only(
        tmp_path,
        good(
            "7",
            title="  Titan  Women  Gold\tRing ",
            gender="female",
            article="necklace and chains",
            colour="golden",
            master="accessories",
            usage="NA",
            season="-",
            year="2016",
            brand="Titan",
            attributes={"Base Metal": "Brass", "Plating": "NA", "Stone": "&  amp Pearl"},
            description="From fastrack&  rsquo s basics &  bull Metal case &  bull Tang clasp",
            style_note="null",
            image_path="images/7.jpg",
        ),
    )
    assert product.title == "Titan Women Gold Ring"
    assert product.gender == "Women"
    assert product.article == "Necklace and Chains"
    assert product.colour == "Gold"
    assert product.master == "Accessories"
    assert (product.usage, product.season, product.style_note) == ("", "", "")
    assert product.year == 2016
    assert product.attributes == {"Base Metal": "Brass", "Stone": "& Pearl"}
    assert product.metal == "Brass"
    assert product.description == "From fastrack's basics • Metal case • Tang clasp"
    assert product.image == "images/7.jpg"


def test_jsonl_attributes_survive_loading(tmp_path: Path) -> None:
    product = only(tmp_path, good("x", attributes={"Base Metal": "Silver", "Plating": "Rhodium"}))
    assert product.attributes == {"Base Metal": "Silver", "Plating": "Rhodium"}
    assert product.metal == "Silver"
    assert "Silver" in product.document()


def test_row_without_attributes_loads(tmp_path: Path) -> None:
    assert only(tmp_path, good("x")).attributes == {}


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("fastrack&  rsquo s basics", "fastrack's basics"),
        ("brand name above 6 o&  rsquo  clock", "brand name above 6 o'clock"),
        ("&  bull  Metallic case", "• Metallic case"),
        ("dial &  bull  strap", "dial • strap"),
        ("10&ndash20 mm", "10-20 mm"),
        ("smells fresh & ndash  at work", "smells fresh - at work"),
        (
            "classic drivers&  rsquo  and racers&  rsquo  watch",
            "classic drivers' and racers' watch",
        ),
        ("or & lsquo luminous star", "or 'luminous star"),
        ("height 5&  rsquo 8&  rdquo , chest 33& rdquo ) is", 'height 5\'8", chest 33") is'),
        ("at 12 0&  rsquo  clock", "at 12 0'clock"),
        ("&      amp nbsp    DIFFERENT BRAND", "DIFFERENT BRAND"),
        ("&  amp Pearl", "& Pearl"),
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("line one\n\n  line two  ", "line one line two"),
        ("Gold , silver .", "Gold, silver."),
        ("Tiffany & Co", "Tiffany & Co"),
        ("caf&#233;", "café"),
        ("NA", ""),
        ("na", ""),
        ("N/A", ""),
        ("-", ""),
        ("  --  ", ""),
        ("null", ""),
        ("None", ""),
        (None, ""),
        ("  ", ""),
    ],
)
def test_clean_text(raw: object, clean: str) -> None:
    assert clean_text(raw) == clean


def test_is_missing() -> None:
    assert is_missing(None) and is_missing(" NA ") and is_missing("")
    assert not is_missing(0) and not is_missing("0") and not is_missing("Nadia")


@pytest.mark.parametrize(
    ("raw", "price"),
    [
        ("Rs 1,299", 1299.0),
        ("₹999", 999.0),
        ("Rs. 1,299.50", 1299.5),
        ("INR 500", 500.0),
        ("1299.00", 1299.0),
        ("750/-", 750.0),
        (1299, 1299.0),
        (0, 0.0),
        ("NA", None),
        (None, None),
    ],
)
def test_parse_price(raw: object, price: float | None) -> None:
    assert parse_price(raw) == price


@pytest.mark.parametrize("raw", ["-5", -5, "abc", "1.2.3", True, float("nan"), "Rs"])
def test_parse_price_rejects(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_price(raw)


def test_normalize_gender() -> None:
    assert [normalize_gender(g) for g in ("MEN", "ladies", "Boys", "NA", None)] == [
        "Men",
        "Women",
        "Boys",
        "Unisex",
        "Unisex",
    ]
    with pytest.raises(ValueError, match="unknown gender 'robot'"):
        normalize_gender("robot")


def test_price_strings_load(tmp_path: Path) -> None:
    product = only(tmp_path, good("x", price_inr="Rs 1,299", discounted_price_inr="₹999"))
    assert (product.price, product.list_price) == (999.0, 1299.0)


def test_discounted_price_is_preferred_for_price(tmp_path: Path) -> None:
    product = only(tmp_path, good("x", price_inr=1299, discounted_price_inr=999, price=1100))
    assert (product.price, product.list_price) == (999.0, 1299.0)


def test_price_falls_back_when_discount_is_missing(tmp_path: Path) -> None:
    product = only(tmp_path, good("x", price_inr=1299, discounted_price_inr="NA"))
    assert (product.price, product.list_price) == (1299.0, 1299.0)


def test_plain_price_and_list_price_fields(tmp_path: Path) -> None:
    row = good("x", price_inr=..., discounted_price_inr=..., price=450, list_price=600)
    product = only(tmp_path, row)
    assert (product.price, product.list_price) == (450.0, 600.0)


def test_list_price_is_never_below_price(tmp_path: Path) -> None:
    product = only(tmp_path, good("x", price_inr=500, discounted_price_inr=800))
    assert (product.price, product.list_price) == (800.0, 800.0)


@pytest.mark.parametrize("price", [0, 0.1, "0"])
def test_placeholder_prices_are_reported(tmp_path: Path, price: object) -> None:
    loaded = load_rows(tmp_path, [good("x", price_inr=..., discounted_price_inr=price), good("y")])
    assert [p.id for p in loaded.products] == ["y"]
    assert [(e.line, e.field) for e in loaded.errors] == [(1, "price")]
    assert "placeholder" in loaded.errors[0].reason


def test_na_title_with_brand_and_article_is_rebuilt(tmp_path: Path) -> None:
    product = only(
        tmp_path,
        good("x", title="NA", brand="Titan", gender="women", colour="gold", article="ring"),
    )
    assert product.title == "Titan Women Gold Ring"


def test_na_title_rebuilt_without_colour(tmp_path: Path) -> None:
    product = only(tmp_path, good("x", title="-", brand="Titan", gender=..., colour="NA"))
    assert product.title == "Titan Unisex Ring"


def test_name_and_category_aliases(tmp_path: Path) -> None:
    row = good("x", title=..., article=..., colour=..., name="Pearl Studs", category="earrings")
    product = only(tmp_path, {**row, "color": "gray", "occasion": "party"})
    assert (product.title, product.article, product.colour, product.usage) == (
        "Pearl Studs",
        "Earrings",
        "Grey",
        "Party",
    )


def test_numeric_id_becomes_string(tmp_path: Path) -> None:
    assert only(tmp_path, good(12345)).id == "12345"  # type: ignore[arg-type]


# ---------------------------------------------------------------- CSV and gzip


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


CSV_HEADER = [
    "id",
    "title",
    "gender",
    "article",
    "price_inr",
    "discounted_price_inr",
    "attributes",
    "attr:Base Metal",
]


def test_csv_catalog(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "shop.csv",
        CSV_HEADER,
        [
            [
                "c1",
                "Brass Ring",
                "women",
                "ring",
                "Rs 1,299",
                "₹999",
                '{"Plating": "Gold"}',
                "Brass",
            ],
            ["c2", "Extra", "men", "ring", "100", "90", "{}", "Silver", "surplus"],
            ["c3", "Plain Bangle", "", "bangle", "500", "", "", ""],
            ["c4", "Broken Attrs", "women", "ring", "100", "90", "{oops", "Brass"],
            ["c5", "NA Attrs", "girls", "pendant", "300", "NA", "NA", "Silver"],
            ["c6", "Listy Attrs", "women", "ring", "100", "90", '["Brass"]', ""],
        ],
    )
    loaded = load_catalog(path)
    assert [p.id for p in loaded.products] == ["c1", "c3", "c5"]
    c1, c3, c5 = loaded.products
    assert c1.attributes == {"Plating": "Gold", "Base Metal": "Brass"}
    assert c1.metal == "Brass"
    assert (c1.price, c1.list_price, c1.gender, c1.article) == (999.0, 1299.0, "Women", "Ring")
    assert (c3.attributes, c3.price, c3.gender) == ({}, 500.0, "Unisex")
    assert (c5.attributes, c5.price, c5.gender) == ({"Base Metal": "Silver"}, 300.0, "Girls")
    errors = loaded.errors
    assert [(e.line, e.field) for e in errors] == [(3, "*"), (5, "attributes"), (7, "attributes")]
    assert errors[0].reason == "more fields than the header has"
    assert errors[1].reason.startswith("Expecting property name")
    assert loaded.summary() == "3 products loaded, 3 rows skipped"


def test_csv_short_row_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "shop.csv"
    path.write_bytes(
        "\ufeffid,title,article,price\nr1,Ring,ring,100\nr2,Ring\nr3,Stud,earrings,50\n".encode()
    )
    loaded = load_catalog(path)
    assert [p.id for p in loaded.products] == ["r1", "r3"]
    assert [(e.line, e.field) for e in loaded.errors] == [(3, "price")]


def test_gzipped_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "shop.jsonl.gz"
    rows = [good("z1"), good("z2", gender="alien"), good("z3", attributes={"Base Metal": "Gold"})]
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(json.dumps(r) for r in rows) + "\n")
    loaded = load_catalog(path)
    assert [p.id for p in loaded.products] == ["z1", "z3"]
    assert loaded.products[1].metal == "Gold"
    assert loaded.errors == [RowError(2, "gender", "unknown gender 'alien'")]


@pytest.mark.parametrize("name", ["shop.jsonl", "shop.jsonl.gz"])
def test_utf8_bom_is_tolerated(tmp_path: Path, name: str) -> None:
    data = ("\ufeff" + json.dumps(good("bom")) + "\n").encode()
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    loaded = load_catalog(path)
    assert [p.id for p in loaded.products] == ["bom"]
    assert loaded.errors == []


def test_gzipped_csv(tmp_path: Path) -> None:
    path = tmp_path / "shop.csv.gz"
    path.write_bytes(gzip.compress(b"id,title,article,price\nq1,Ring,ring,10\n"))
    assert [p.id for p in load_catalog(path).products] == ["q1"]


# ---------------------------------------------------------------- the bundled catalog and images


def test_bundled_catalog_loads_every_product(bundled_load: CatalogLoad) -> None:
    # The 13 unpriced source rows (0 or 0.1) were left out when the bundle was made.
    assert bundled_load.errors == []
    assert len(bundled_load.products) == 11_627
    assert bundled_load.summary() == "11627 products loaded, 0 rows skipped"
    assert len({p.id for p in bundled_load.products}) == 11_627


def test_every_bundled_image_is_in_the_zip_and_a_sample_decodes(bundled_load: CatalogLoad) -> None:
    with_image = [p for p in bundled_load.products if p.image]
    assert with_image
    with zipfile.ZipFile(BUNDLED_IMAGES) as archive:
        names = set(archive.namelist())
    assert [p.id for p in with_image if p.image not in names] == []
    store = MediaStore(BUNDLED_IMAGES)
    sample = with_image[:: max(1, len(with_image) // 50)][:50]
    assert len(sample) == 50
    for product in sample:
        image = store.load(product)
        assert image is not None, product.id
        assert image.mode == "RGB" and image.width > 0 and image.height > 0


def test_image_store_returns_none_for_missing_images(bundled_load: CatalogLoad) -> None:
    store = MediaStore(BUNDLED_IMAGES)
    product = bundled_load.products[0].model_copy(update={"image": "images/does-not-exist.jpg"})
    assert store.load(product) is None
    assert store.load(product.model_copy(update={"image": None})) is None
    assert store.read_bytes("images/does-not-exist.jpg") is None


def test_image_store_folder(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(jpeg_bytes())
    (tmp_path / "images" / "bad.jpg").write_bytes(b"not a jpeg")
    store = MediaStore(tmp_path)
    base = Product(id="a", title="Ring", article="Ring", price=1, list_price=1)
    image = store.load(base.model_copy(update={"image": "images/a.jpg"}))
    assert image is not None and image.size == (30, 40)
    absolute = str(tmp_path / "images" / "a.jpg")
    assert store.load(base.model_copy(update={"image": absolute})) is not None
    assert store.load(base.model_copy(update={"image": "images/bad.jpg"})) is None
    assert store.load(base.model_copy(update={"image": "images/missing.jpg"})) is None


def test_decode_image_reads_a_jpeg() -> None:
    image = decode_image(jpeg_bytes((12, 7)))
    assert (image.size, image.mode) == ((12, 7), "RGB")


def test_decode_image_converts_to_rgb() -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (5, 5), (1, 2, 3, 4)).save(buffer, format="PNG")
    assert decode_image(buffer.getvalue()).mode == "RGB"


@pytest.mark.parametrize(
    "data", [b"", b"garbage bytes, not an image", b"\xff\xd8\xff" + b"\0" * 20]
)
def test_decode_image_rejects_garbage(data: bytes) -> None:
    with pytest.raises(ImageDecodeError):
        decode_image(data)


def test_decode_image_rejects_a_truncated_jpeg() -> None:
    data = jpeg_bytes((64, 64), (10, 200, 30))
    for cut in (len(data) // 2, 200):
        with pytest.raises(ImageDecodeError):
            decode_image(data[:cut])


# ---------------------------------------------------------------- catalog_sources


def test_catalog_sources_default_is_bundled() -> None:
    assert catalog_sources(BijouConfig()) == (BUNDLED_CATALOG, BUNDLED_IMAGES)


def test_catalog_sources_picks_images_zip_beside_the_catalog(tmp_path: Path) -> None:
    catalog = write_jsonl(tmp_path / "shop.jsonl", [good("x")])
    config = BijouConfig.model_validate({"catalog": {"path": catalog}})
    assert catalog_sources(config) == (catalog, tmp_path)
    (tmp_path / "images.zip").write_bytes(b"")
    assert catalog_sources(config) == (catalog, tmp_path / "images.zip")


def test_catalog_sources_explicit_images_win(tmp_path: Path) -> None:
    catalog = write_jsonl(tmp_path / "shop.jsonl", [good("x")])
    (tmp_path / "images.zip").write_bytes(b"")
    other = tmp_path / "pictures"
    config = BijouConfig.model_validate({"catalog": {"path": catalog, "images": other}})
    assert catalog_sources(config) == (catalog, other)
    bundled_with_images = BijouConfig.model_validate({"catalog": {"images": other}})
    assert catalog_sources(bundled_with_images) == (BUNDLED_CATALOG, other)
