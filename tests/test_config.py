"""Configuration: defaults, then the YAML file, then ``BIJOU__SECTION__KEY`` environment."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
import pytest
from pydantic import ValidationError

from bijou.config import BijouConfig, load_config

FILE_YAML = """\
data_dir: /srv/bijou
threads: 6
catalog:
  path: /shop/products.csv
index:
  mode: edge
  collection: from_file
search:
  weight_text: 2.0
  relax_order: [brands, usages]
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "bijou.yaml"
    path.write_text(FILE_YAML, encoding="utf-8")
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """os.environ without any BIJOU variable the machine running the tests may have."""
    for key in list(os.environ):
        if key.startswith("BIJOU"):
            monkeypatch.delenv(key)
    return monkeypatch


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    config = load_config(environ={})
    assert config == BijouConfig()
    # The platform's user data folder, never the working directory.
    assert config.data_dir == Path(platformdirs.user_data_dir("bijou", appauthor=False))
    assert config.data_dir.is_absolute()
    assert config.index_dir == config.data_dir / "index"
    assert (config.threads, config.seed) == (2, 13)
    assert (config.catalog.path, config.catalog.images) == (None, None)
    assert (config.text_encoder.kind, config.text_encoder.batch_size) == ("minilm", 64)
    assert config.image_encoder.kind == "efficientnet"
    assert config.image_encoder.checkpoint is None
    assert config.clip.model_path is None
    assert (config.index.mode, config.index.url, config.index.collection) == (
        "edge",
        None,
        "bijou_products",
    )
    search = config.search
    assert (search.prefetch_limit, search.rrf_k) == (100, 60)
    assert (search.weight_text, search.weight_image, search.weight_sparse, search.weight_photo) == (
        1.0,
        0.5,
        1.0,
        1.0,
    )
    assert search.relax_order == ["usages", "brands", "colours", "genders", "articles"]


def test_default_lists_are_not_shared() -> None:
    first, second = BijouConfig(), BijouConfig()
    first.search.relax_order.append("x")
    assert second.search.relax_order == ["usages", "brands", "colours", "genders", "articles"]


def test_yaml_file_values(config_file: Path) -> None:
    config = load_config(config_file, environ={})
    assert config.data_dir == Path("/srv/bijou")
    assert config.index_dir == Path("/srv/bijou/index")
    assert config.threads == 6
    assert config.catalog.path == Path("/shop/products.csv")
    assert config.index.collection == "from_file"
    assert config.search.weight_text == 2.0
    assert config.search.relax_order == ["brands", "usages"]
    # Keys the file leaves out keep their defaults.
    assert config.search.weight_image == 0.5
    assert config.index.mode == "edge"
    assert config.seed == 13


def test_environment_beats_the_file(config_file: Path) -> None:
    environ = {"BIJOU__INDEX__MODE": "server", "BIJOU__SEARCH__WEIGHT_TEXT": "0.5"}
    config = load_config(config_file, environ=environ)
    assert config.index.mode == "server"
    assert config.search.weight_text == 0.5
    assert isinstance(config.search.weight_text, float)
    # The rest of the file's sections survive the merge.
    assert config.index.collection == "from_file"
    assert config.search.relax_order == ["brands", "usages"]
    assert config.threads == 6


def test_environment_without_a_file() -> None:
    environ = {
        "BIJOU__INDEX__MODE": "server",
        "BIJOU__INDEX__URL": "local:/tmp/q",
        "BIJOU__THREADS": "8",
        "BIJOU__SEARCH__RELAX_ORDER": "[brands]",
        "BIJOU__CATALOG__PATH": "/data/shop.jsonl",
        "UNRELATED": "ignored",
        "BIJOU_OTHER": "ignored",
    }
    config = load_config(environ=environ)
    assert (config.index.mode, config.index.url) == ("server", "local:/tmp/q")
    assert config.threads == 8
    assert config.search.relax_order == ["brands"]
    assert config.catalog.path == Path("/data/shop.jsonl")


def test_empty_environment_value_means_none(config_file: Path) -> None:
    config_file.write_text("index:\n  url: http://qdrant:6333\n", encoding="utf-8")
    assert load_config(config_file, environ={}).index.url == "http://qdrant:6333"
    assert load_config(config_file, environ={"BIJOU__INDEX__URL": ""}).index.url is None


def test_process_environment_is_read_by_default(
    config_file: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("BIJOU__INDEX__MODE", "server")
    clean_env.setenv("BIJOU__SEARCH__WEIGHT_TEXT", "0.5")
    config = load_config(config_file)
    assert (config.index.mode, config.search.weight_text) == ("server", 0.5)


def test_bijou_config_names_the_file(config_file: Path) -> None:
    config = load_config(environ={"BIJOU_CONFIG": str(config_file)})
    assert config.index.collection == "from_file"
    assert config.threads == 6


def test_bijou_config_from_the_process_environment(
    config_file: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("BIJOU_CONFIG", str(config_file))
    clean_env.setenv("BIJOU__THREADS", "3")
    config = load_config()
    assert (config.index.collection, config.threads) == ("from_file", 3)


def test_explicit_path_beats_bijou_config(config_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("threads: 11\n", encoding="utf-8")
    config = load_config(other, environ={"BIJOU_CONFIG": str(config_file)})
    assert config.threads == 11
    assert config.index.collection == "bijou_products"


def test_empty_bijou_config_means_no_file() -> None:
    assert load_config(environ={"BIJOU_CONFIG": ""}) == BijouConfig()


def test_empty_yaml_file_gives_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing here\n", encoding="utf-8")
    assert load_config(path, environ={}) == BijouConfig()


@pytest.mark.parametrize(
    "text",
    [
        "colour: gold\n",
        "search:\n  weight_txt: 0.5\n",
        "index:\n  mode: edge\n  urll: http://x\n",
        "catalog:\n  images_dir: /x\n",
    ],
)
def test_unknown_keys_in_the_file_are_rejected(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValidationError) as caught:
        load_config(path, environ={})
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_unknown_keys_in_the_environment_are_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        load_config(environ={"BIJOU__SEARCH__WEIGHT_TXT": "0.5"})
    error = caught.value.errors()[0]
    assert (error["type"], error["loc"]) == ("extra_forbidden", ("search", "weight_txt"))


@pytest.mark.parametrize(
    "environ",
    [
        {"BIJOU__INDEX__MODE": "cloud"},
        {"BIJOU__THREADS": "many"},
        {"BIJOU__SEARCH__WEIGHT_TEXT": "heavy"},
        {"BIJOU__TEXT_ENCODER__KIND": "bert"},
    ],
)
def test_invalid_values_are_rejected(environ: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        load_config(environ=environ)


def test_missing_file_raises(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(missing, environ={})
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        load_config(environ={"BIJOU_CONFIG": str(missing)})


@pytest.mark.parametrize("text", ["- index\n- search\n", "just a string\n", "42\n"])
def test_yaml_that_is_not_a_mapping_raises_value_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="must be a YAML mapping"):
        load_config(path, environ={})


def test_the_example_file_documents_the_defaults() -> None:
    example = Path(__file__).parent.parent / "config.example.yaml"
    assert load_config(example, environ={}) == BijouConfig()


def test_price_cannot_be_relaxed() -> None:
    with pytest.raises(ValidationError):
        BijouConfig.model_validate({"search": {"relax_order": ["price"]}})


def test_bijou_home_names_the_data_directory(tmp_path: Path) -> None:
    config = load_config(environ={"BIJOU_HOME": str(tmp_path / "shop")})
    assert config.data_dir == tmp_path / "shop"
    assert config.memory_path == tmp_path / "shop" / "bijou.sqlite3"
    # An explicit setting wins over BIJOU_HOME.
    explicit = {"BIJOU_HOME": str(tmp_path / "shop"), "BIJOU__DATA_DIR": "/srv/other"}
    assert load_config(environ=explicit).data_dir == Path("/srv/other")


def test_data_directory_does_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative data_dir in a file is relative to that file; one in the environment is
    made absolute once, so a later chdir (or another folder) finds the same index."""
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "bijou.yaml"
    path.write_text("data_dir: data\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_config(path, environ={}).data_dir == folder / "data"
    assert load_config(environ={"BIJOU__DATA_DIR": "rel"}).data_dir == elsewhere / "rel"
