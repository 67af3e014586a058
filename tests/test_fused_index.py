"""The "fused" vector in the index: filled at indexing, used by search, refreshed from the
vectors the index holds when only the fusion model changes, and fed by product videos."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bijou.catalog.media import MediaStore
from bijou.catalog.schema import Product
from bijou.config import BijouConfig
from bijou.fusion.encoders import Encoders
from bijou.fusion.models import Fuser, FusionCheckpoint, FusionConfig, build_fusion
from bijou.fusion.video import make_clip
from bijou.retrieval.search import SearchEngine, SearchRequest


def _fuser(kind: str, seed: int) -> Fuser:
    torch.manual_seed(seed)
    model = build_fusion(FusionConfig(kind=kind))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return Fuser(FusionCheckpoint(model.config, state, {}, {}, seed))


@pytest.fixture
def products(small_products: list[Product]) -> list[Product]:
    return small_products[:40]


def _engine(tmp_path: Path, encoders: Encoders, fuser: Fuser, catalog: Path) -> SearchEngine:
    # Encoded here, not taken from the shipped int8 vectors: the tests compare vectors that
    # `sync` and `upsert` wrote, and only encoding gives both the same float values.
    config = BijouConfig.model_validate(
        {"data_dir": tmp_path, "catalog": {"path": catalog}, "index": {"shipped_vectors": False}}
    )
    return SearchEngine.load(config, dataclasses.replace(encoders, fuser=fuser))


def test_fused_vectors_are_indexed_searched_and_refreshed(
    tmp_path: Path, small_catalog: Path, encoders: Encoders, products: list[Product]
) -> None:
    engine = _engine(tmp_path, encoders, _fuser("gated", 1), small_catalog)
    engine.sync(products)
    ids = [p.id for p in products]
    first = engine.index.vectors(ids, ["fused"])
    assert set(first) == set(ids) and all(v["fused"].shape == (384,) for v in first.values())
    assert engine.index.manifest.encoders["fusion"].startswith("fusion-gated:")

    result = engine.search.search(SearchRequest(text="black watch for men under 3000", top_k=5))
    assert result.results and all(r.product.price <= 3000 for r in result.results if r.exact)
    engine.index.close()

    # Another fusion model: the index refreshes its fused vectors without re-encoding.
    other = _engine(tmp_path, encoders, _fuser("attention", 2), small_catalog)
    assert other.fusion_outdated()
    report = other.sync(products)
    assert (report.added, report.updated, report.unchanged) == (0, 0, len(products))
    assert not other.fusion_outdated()
    second = other.index.vectors(ids, ["fused"])
    assert not np.allclose(first[ids[0]]["fused"], second[ids[0]]["fused"])
    assert other.index.manifest.encoders["fusion"].startswith("fusion-attention:")
    other.index.close()


def test_a_product_video_changes_its_fused_vector(
    tmp_path: Path, encoders: Encoders, products: list[Product], small_catalog: Path
) -> None:
    product = next(p for p in products if p.image)
    store = MediaStore(small_catalog.parent / "images.zip")
    clip = make_clip(store.load(product), motion="zoom")
    media = tmp_path / "media.zip"
    with (
        zipfile.ZipFile(small_catalog.parent / "images.zip") as src,
        zipfile.ZipFile(media, "w") as dst,
    ):
        dst.writestr(product.image, src.read(product.image))
        dst.writestr("videos/clip.mp4", clip)
    with_video = product.model_copy(update={"video": "videos/clip.mp4", "id": "with-video"})
    engine = _engine(tmp_path / "data", encoders, _fuser("gated", 1), small_catalog)
    engine.sync([product])
    engine.upsert([with_video], media)
    held = engine.index.vectors([product.id, "with-video"], ["fused", "text"])
    assert np.allclose(held[product.id]["text"], held["with-video"]["text"], atol=1e-5)
    assert not np.allclose(held[product.id]["fused"], held["with-video"]["fused"], atol=1e-4)
    engine.index.close()
