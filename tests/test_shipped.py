"""The shipped catalog vectors: reused only where they are what the configured encoders
compute (same version, same input), and an index built from them searches like one built
by encoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bijou.catalog.loader import BUNDLED_IMAGES, load_catalog
from bijou.catalog.media import MediaStore
from bijou.catalog.schema import Product
from bijou.config import BijouConfig
from bijou.fusion.encoders import Encoders
from bijou.retrieval.search import SearchEngine, SearchRequest
from bijou.retrieval.shipped import (
    SHIPPED_VECTORS,
    ShippedVectors,
    dequantize,
    quantize,
    write_shipped,
)

VERSIONS = {"text": "text:1", "image": "image:1", "fusion": "none"}


def _unit(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    rows = rng.normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_int8_rows_keep_their_direction() -> None:
    rows = _unit(np.random.default_rng(0), 50, 384)
    back = dequantize(*quantize(rows))
    assert np.min(np.sum(rows * back, axis=1)) > 0.9999
    assert np.allclose(np.linalg.norm(back, axis=1), 1.0, atol=1e-5)


@pytest.fixture(scope="module")
def few() -> list[Product]:
    return [p for p in load_catalog().products if p.image][:20]


def test_reused_only_for_the_same_encoder_and_input(tmp_path: Path, few: list[Product]) -> None:
    store = MediaStore(BUNDLED_IMAGES)
    rng = np.random.default_rng(1)
    texts, images = _unit(rng, len(few)), _unit(rng, len(few))
    held = {p.id: {"text": texts[i], "image": images[i]} for i, p in enumerate(few)}
    path = tmp_path / "vectors.npz"
    counts = write_shipped(path, few, held, store, VERSIONS)
    assert counts == {"text": len({p.document() for p in few}), "image": len(few)}
    shipped = ShippedVectors.load(path)
    assert shipped is not None

    found = shipped.vectors_for(few, store, VERSIONS)
    assert set(found) == {p.id for p in few}
    first = few[0]
    assert float(found[first.id]["text"] @ texts[0]) > 0.9999
    assert float(found[first.id]["image"] @ images[0]) > 0.9999

    # A changed title changes the text the encoder reads: encode that product.
    renamed = first.model_copy(update={"title": first.title + " (new)"})
    assert shipped.vectors_for([renamed], store, VERSIONS) == {}
    # A photo the file has no vector for: the product is encoded whole.
    ids = {p.id for p in few}
    unseen = next(p.image for p in load_catalog().products if p.image and p.id not in ids)
    rephotographed = first.model_copy(update={"image": unseen})
    assert rephotographed.id not in shipped.vectors_for([rephotographed], store, VERSIONS)
    # Another encoder: nothing is reused.
    assert shipped.vectors_for(few, store, {**VERSIONS, "text": "text:2"}) == {}
    assert shipped.vectors_for(few, store, {**VERSIONS, "image": "image:2"}) == {}
    # No file (a source checkout without it) is no shipped vectors, not an error.
    assert ShippedVectors.load(tmp_path / "missing.npz") is None


def test_the_shipped_file_matches_the_default_encoders(encoders: Encoders) -> None:
    """Retraining an encoder without `bijou ship-vectors` would silently slow first runs."""
    shipped = ShippedVectors.load(SHIPPED_VECTORS)
    assert shipped is not None, f"{SHIPPED_VECTORS} is missing: run bijou ship-vectors"
    assert shipped.version("text") == encoders.versions["text"]
    assert shipped.version("image") == encoders.versions["image"]


def test_an_index_from_shipped_vectors_searches_like_an_encoded_one(
    tmp_path: Path, small_catalog: Path, small_engine: SearchEngine, encoders: Encoders
) -> None:
    products = load_catalog(small_catalog).products
    ids = [p.id for p in products]
    encoded = small_engine.index.vectors(ids, ["text", "image"])
    path = tmp_path / "vectors.npz"
    write_shipped(path, products, encoded, small_engine.store, encoders.versions)

    config = BijouConfig.model_validate(
        {"data_dir": tmp_path / "data", "catalog": {"path": small_catalog}}
    )
    engine = SearchEngine.load(config, encoders)
    engine.shipped = ShippedVectors.load(path)
    try:
        report = engine.sync(products)
        assert report.added == len(products)
        reused = engine.index.vectors(ids, ["text", "image"])
        for pid in ids:
            for name, vector in encoded[pid].items():
                assert float(vector @ reused[pid][name]) > 0.9999
        for query in ("gold earrings", "black leather watch for men", "silver ring"):
            request = SearchRequest(text=query, top_k=5)
            a = {r.product.id: r.score for r in small_engine.search.search(request).results}
            b = {r.product.id: r.score for r in engine.search.search(request).results}
            # int8 rows move near-tied neighbours by a rank or two (a CPU's float order
            # decides which), so the same products with about the same fused scores.
            shared = a.keys() & b.keys()
            assert len(shared) >= len(a) - 1, (query, a, b)
            assert all(abs(a[pid] - b[pid]) < 0.001 for pid in shared), (query, a, b)
    finally:
        engine.index.close()
