"""The `bijou` command line on the small catalog's index: single, JSON and batch search
(stdout carries nothing but results), bad inputs, and indexing a catalog with bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bijou.catalog.loader import load_catalog
from bijou.catalog.schema import Product
from bijou.cli import app
from bijou.config import load_config
from bijou.fusion.encoders import Encoders
from bijou.retrieval.edge import EdgeBackend
from bijou.retrieval.index import IndexBusyError
from bijou.retrieval.search import SearchEngine


@pytest.fixture(scope="module")
def cli_env(
    tmp_path_factory: pytest.TempPathFactory, small_catalog: Path, encoders: Encoders
) -> dict[str, str]:
    """An index of the small catalog that only the CLI opens (an embedded index admits one
    opener at a time, and the session's search engine keeps its own open)."""
    env = {
        "BIJOU__DATA_DIR": str(tmp_path_factory.mktemp("cli-data")),
        "BIJOU__CATALOG__PATH": str(small_catalog),
    }
    config = load_config(environ=env)
    engine = SearchEngine.load(config, encoders)
    engine.sync(load_catalog(small_catalog).products)
    engine.index.close()
    return env


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory, small_products: list[Product]) -> Path:
    from bijou.catalog.loader import BUNDLED_IMAGES
    from bijou.catalog.media import MediaStore

    watch = next(p for p in small_products if p.article == "Watches")
    path = tmp_path_factory.mktemp("photos") / "watch.jpg"
    MediaStore(BUNDLED_IMAGES).load(watch).save(path)
    return path


def test_json_search(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        app, ["search", "silver earrings under 1000", "--json"], env=cli_env
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["filters"]["articles"] == ["Earrings"]
    assert body["results"] and all(r["price"] <= 1000 for r in body["results"])


def test_batch_writes_one_line_per_query_and_nothing_else(
    cli_env: dict[str, str], photo: Path, tmp_path: Path
) -> None:
    lines = [
        {"qid": "q1", "text": "black watch for men"},
        {"qid": "q2", "image": str(photo)},
        {"qid": "q3", "text": "a watch like this", "image": photo.name},  # relative to the file
        "this is not json",
        {"qid": "q5", "image": "missing.jpg"},
        {"text": "no qid"},
    ]
    batch = tmp_path / "queries.jsonl"
    photo_copy = tmp_path / photo.name
    photo_copy.write_bytes(photo.read_bytes())
    batch.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    result = CliRunner().invoke(
        app, ["search", "--batch", str(batch), "--top-k", "5", "--json"], env=cli_env
    )
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["qid"] for o in out] == ["q1", "q2", "q3", "q5"]
    assert all(len(o["ids"]) == 5 for o in out[:3])
    assert out[3]["ids"] == [] and "missing.jpg" in out[3]["error"]
    assert ":4:" in result.stderr and ":6:" in result.stderr


def test_bad_photo_is_a_clear_error(cli_env: dict[str, str], tmp_path: Path) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8 not really a jpeg")
    result = CliRunner().invoke(app, ["search", "--image", str(junk)], env=cli_env)
    assert result.exit_code == 2
    assert "cannot decode image" in result.output


def test_index_reports_bad_rows_and_loads_the_rest(
    tmp_path: Path, small_products: list[Product], encoders: object
) -> None:
    rows = [json.dumps(p.model_dump()) for p in small_products[:5]]
    rows.insert(2, '{"id": "bad", "title": "Broken", "article": "Ring", "price": -5}')
    catalog = tmp_path / "shop.jsonl"
    catalog.write_text("\n".join(rows) + "\n")
    env = {"BIJOU__DATA_DIR": str(tmp_path / "data"), "BIJOU__CATALOG__PATH": str(catalog)}
    result = CliRunner().invoke(app, ["index"], env=env)
    assert result.exit_code == 0, result.output
    assert "line 3: price" in result.stderr
    assert "5 products loaded, 1 rows skipped" in result.stderr
    assert "5 added" in result.stderr


def test_a_second_process_cannot_open_an_open_index(tmp_path: Path) -> None:
    first = EdgeBackend(tmp_path)
    with pytest.raises(IndexBusyError, match="another process"):
        EdgeBackend(tmp_path)
    first.close()
    EdgeBackend(tmp_path).close()


def test_upsert_and_delete_single_products(
    tmp_path: Path, small_products: list[Product], encoders: object
) -> None:
    catalog = tmp_path / "shop.jsonl"
    catalog.write_text("\n".join(json.dumps(p.model_dump()) for p in small_products[:3]) + "\n")
    env = {"BIJOU__DATA_DIR": str(tmp_path / "data"), "BIJOU__CATALOG__PATH": str(catalog)}
    assert CliRunner().invoke(app, ["index"], env=env).exit_code == 0

    novel = small_products[5].model_copy(update={"id": "NEW-1", "image": None})
    extra = tmp_path / "new.jsonl"
    extra.write_text(json.dumps(novel.model_dump()) + "\n" + '{"id": "bad"}\n')
    result = CliRunner().invoke(app, ["upsert", str(extra)], env=env)
    assert result.exit_code == 0, result.output
    assert "line 2" in result.stderr and "1 upserted, 4 products in all" in result.stderr

    result = CliRunner().invoke(app, ["delete", "NEW-1", "nope"], env=env)
    assert result.exit_code == 0, result.output
    assert "not in the index: nope" in result.stderr and "1 deleted, 3 left" in result.stderr


def test_chat_script_prints_a_json_transcript(
    cli_env: dict[str, str], photo: Path, tmp_path: Path
) -> None:
    script = tmp_path / "dialog.txt"
    script.write_text(
        f"silver earrings under 1000\n\n@{photo} something like this\n@/no/such.jpg hi\n",
        encoding="utf-8",
    )
    env = {**cli_env, "BIJOU__LLM__THREADS": "1"}
    result = CliRunner().invoke(app, ["chat", "--script", str(script), "--json"], env=env)
    assert result.exit_code == 0, result.output
    transcript = json.loads(result.stdout)
    assert [t["user"] for t in transcript] == [
        "silver earrings under 1000",
        f"@{photo} something like this",
    ]
    first, second = (t["reply"] for t in transcript)
    assert first["products"] and all(p["price"] <= 1000 for p in first["products"])
    assert {p["article"] for p in second["products"]} == {"Watches"}
    assert "cannot read image" in result.stderr  # the bad photo line is reported and skipped


def test_tryon_writes_the_image_or_says_why_not(tmp_path: Path, bundled: list[Product]) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    earrings = next(p for p in bundled if p.article == "Earrings" and p.image)
    selfie, cat = tmp_path / "me.png", tmp_path / "cat.jpg"
    Image.fromarray(skimage_data.astronaut()).save(selfie)
    Image.fromarray(skimage_data.chelsea()).save(cat)
    runner = CliRunner()
    out = tmp_path / "out.png"
    done = runner.invoke(app, ["tryon", str(selfie), earrings.id, "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert Image.open(out).size == (512, 512)
    assert "earring image-left, earring image-right" in done.output
    no_face = runner.invoke(app, ["tryon", str(cat), earrings.id, "-o", str(tmp_path / "c.png")])
    assert no_face.exit_code == 2 and "no face" in no_face.output
    assert not (tmp_path / "c.png").exists()
    unknown = runner.invoke(app, ["tryon", str(selfie), "no-such", "-o", str(tmp_path / "u.png")])
    assert unknown.exit_code == 2 and "no product" in unknown.output
    gif = runner.invoke(app, ["tryon", str(selfie), earrings.id, "-o", str(tmp_path / "x.gif")])
    assert gif.exit_code == 2
