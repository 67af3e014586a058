"""Index round trips on both engines: persist, reopen, idempotent sync, update, delete,
single-product upserts and the encoder-version guard."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bijou.catalog.schema import Product
from bijou.fusion.encoders import Encoders
from bijou.retrieval.index import IndexMismatchError
from bijou.retrieval.search import SearchEngine, SearchRequest, index_points, index_versions


@pytest.fixture(params=["edge", "server"])
def open_engine(
    request: pytest.FixtureRequest, tmp_path: Path, make_config: Callable, encoders: Encoders
) -> Callable[[], SearchEngine]:
    """Opens (or reopens) an engine on one index directory, on each engine kind."""
    return lambda: SearchEngine.load(make_config(tmp_path, request.param), encoders)


def test_sync_persists_reopens_and_is_idempotent(
    open_engine: Callable[[], SearchEngine], small_products: list[Product], encoders: Encoders
) -> None:
    engine = open_engine()
    report = engine.sync(small_products)
    assert (report.added, report.updated, report.deleted) == (len(small_products), 0, 0)
    assert engine.index.count() == len(small_products)
    engine.index.close()

    reopened = open_engine()
    assert reopened.index.count() == len(small_products)
    again = reopened.sync(small_products)
    assert (again.added, again.updated, again.deleted) == (0, 0, 0)
    assert again.unchanged == len(small_products)
    first = small_products[0]
    assert reopened.index.get(first.id) == first
    assert set(reopened.index.values("brand")) == {p.brand for p in small_products if p.brand}
    reopened.index.close()


def test_update_delete_and_single_upsert(
    open_engine: Callable[[], SearchEngine], small_products: list[Product], encoders: Encoders
) -> None:
    engine = open_engine()
    engine.sync(small_products)
    target, gone = small_products[3], small_products[4]

    cheaper = target.model_copy(update={"price": 1.0})
    report = engine.sync([cheaper if p.id == target.id else p for p in small_products])
    assert (report.added, report.updated, report.deleted) == (0, 1, 0)
    assert engine.index.get(target.id).price == 1.0

    engine.index.delete([gone.id])
    assert engine.index.get(gone.id) is None
    assert engine.index.count() == len(small_products) - 1

    # A new product with an id that is not a number, added on its own.
    novel = target.model_copy(update={"id": "SKU-ZZ-9", "title": "Zanzibar Quokka Brooch"})
    assert engine.upsert([novel]) == 1
    found = engine.search.search(SearchRequest(text="zanzibar quokka brooch", top_k=3))
    assert found.ids[0] == "SKU-ZZ-9"

    # The catalog is the source of truth for sync: what it lacks is deleted.
    # The first ten hold the re-priced product (now reverted) and the deleted one (re-added).
    report = engine.sync(small_products[:10])
    stale = len(small_products) - 9  # everything else, the novel product included
    assert (report.added, report.updated, report.deleted, report.unchanged) == (1, 1, stale, 8)
    assert engine.index.count() == 10
    engine.index.close()


def test_changed_encoder_forces_rebuild(
    open_engine: Callable[[], SearchEngine], small_products: list[Product], encoders: Encoders
) -> None:
    engine = open_engine()
    engine.sync(small_products[:20])
    versions, dims = index_versions(encoders)
    other = {**versions, "image": "some-other-image-model:0"}
    with pytest.raises(IndexMismatchError, match="rebuild"):
        engine.index.ensure(other, dims)
    # Still intact after the refusal.
    assert engine.index.count() == 20
    engine.index.ensure(other, dims, rebuild=True)
    assert engine.index.count() == 0
    assert engine.index.manifest.encoders == other
    with pytest.raises(IndexMismatchError):
        engine.sync(small_products[:20])
    report = engine.sync(small_products[:20], rebuild=True)
    assert report.added == 20
    engine.index.close()


def test_a_build_stopped_midway_is_never_served_and_resumes(
    open_engine: Callable[[], SearchEngine], small_products: list[Product], encoders: Encoders
) -> None:
    engine = open_engine()
    versions, dims = index_versions(engine.encoders)
    engine.index.ensure(versions, dims)
    half = small_products[: len(small_products) // 2]
    engine.index.upsert(index_points(half, engine.encoders, engine.search.sparse, engine.store))
    engine.index.close()  # what a killed `bijou index` leaves: part of the products, flushed

    stopped = open_engine()
    assert stopped.index.manifest is not None and not stopped.index.serving
    report = stopped.sync(small_products)
    assert report.unchanged == len(half)  # resumed: the half already there is not re-encoded
    assert report.added == len(small_products) - len(half)
    assert stopped.index.serving and stopped.index.count() == len(small_products)
    stopped.index.close()
    reopened = open_engine()
    assert reopened.index.serving
    reopened.index.close()


def test_server_collection_takes_the_cluster_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shards, replicas and write consistency reach Qdrant when the collection is created
    (qdrant-client's local mode accepts them but keeps only on_disk, so the call is read)."""
    from bijou.config import IndexConfig
    from bijou.retrieval.index import Manifest
    from bijou.retrieval.server import ServerBackend

    config = IndexConfig(
        mode="server", url=":memory:", shards=6, replicas=2, write_consistency=2, on_disk=True
    )
    backend = ServerBackend(config)
    sent: dict = {}
    create = backend.client.create_collection

    def recording(*args: object, **kwargs: object) -> bool:
        sent.update(kwargs)
        return create(*args, **kwargs)

    monkeypatch.setattr(backend.client, "create_collection", recording)
    backend.create(Manifest(1, {"text": "t"}, {"text": 4, "image": 4, "fused": 4}))
    assert (sent["shard_number"], sent["replication_factor"]) == (6, 2)
    assert sent["write_consistency_factor"] == 2
    params = backend.client.get_collection(config.collection).config.params
    assert all(params.vectors[name].on_disk for name in ("text", "image", "fused"))
    assert backend.manifest() == Manifest(1, {"text": "t"}, {"text": 4, "image": 4, "fused": 4})
    backend.close()


def test_edge_on_disk_keeps_vectors_mapped_and_searches(
    tmp_path: Path, small_products: list[Product]
) -> None:
    """index.on_disk on the embedded engine: the shard is created with its dense vectors
    memory-mapped (kept when reopened without the setting), and search still finds them."""
    import json

    import numpy as np

    from bijou.config import IndexConfig
    from bijou.retrieval.index import IndexPoint, ProductIndex, Sparse, VectorQuery

    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((len(small_products), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = ProductIndex.open(IndexConfig(on_disk=True), tmp_path / "index")
    index.ensure({"text": "t"}, {"text": 8, "image": 8, "fused": 8})
    index.upsert(
        IndexPoint(p, {"text": v}, Sparse([1], [1.0]))
        for p, v in zip(small_products, vectors, strict=True)
    )
    index.optimize()
    index.close()
    stored = json.loads((tmp_path / "index" / "shard" / "edge_config.json").read_text())
    assert {v["memory"] for v in stored["vectors"].values()} == {"cold"}

    reopened = ProductIndex.open(IndexConfig(), tmp_path / "index")
    [hits] = reopened.search([VectorQuery("text", vectors[5], limit=3)])
    assert hits[0].product_id == small_products[5].id
    reopened.close()
