"""Embedded engine: a qdrant-edge shard in ``<data_dir>/index`` plus its manifest file."""

from __future__ import annotations

import fcntl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from bijou.catalog.schema import Product
from bijou.retrieval.index import (
    DENSE_VECTORS,
    FLOAT_FIELDS,
    KEYWORD_FIELDS,
    PRODUCT_ID_FIELD,
    SPARSE_VECTOR,
    Hit,
    IndexBusyError,
    IndexPoint,
    Manifest,
    Sparse,
    VectorQuery,
    build_filter,
    engine_vector,
    payload_of,
    point_id,
    products_in_order,
    read_manifest_file,
    remove_tree,
    vectors_by_id,
    write_manifest_file,
)


class _Types:
    Filter = qe.Filter
    FieldCondition = qe.FieldCondition
    MatchAny = qe.MatchAny
    Range = qe.RangeFloat
    SparseVector = qe.SparseVector


def _vector(value: np.ndarray | Sparse) -> object:
    return engine_vector(value, _Types)


class EdgeBackend:
    def __init__(self, directory: Path, on_disk: bool = False) -> None:
        self.directory = directory
        self.on_disk = on_disk
        self.shard_dir = directory / "shard"
        self.manifest_path = directory / "manifest.json"
        self._shard: qe.EdgeShard | None = None
        # An edge shard is single-process: a second writer (or a reader during a write)
        # corrupts its storage, so the whole directory is locked while it is open.
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = open(directory / ".lock", "a+")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise IndexBusyError(
                f"the index at {directory} is open in another process; stop it first "
                "(or use a Qdrant server: index.mode = server)"
            ) from None
        if self.manifest_path.is_file() and self.shard_dir.is_dir():
            self._shard = qe.EdgeShard.load(str(self.shard_dir))

    @property
    def shard(self) -> qe.EdgeShard:
        if self._shard is None:
            raise RuntimeError(f"no index at {self.directory}: run `bijou index`")
        return self._shard

    def manifest(self) -> Manifest | None:
        return read_manifest_file(self.manifest_path) if self._shard is not None else None

    def create(self, manifest: Manifest) -> None:
        # on_disk: vectors memory-mapped but not read in ahead (the page cache holds what
        # search touches, and gives it back under pressure); the graphs stay in RAM.
        memory = qe.Memory.Cold if self.on_disk else None
        vectors = {
            name: qe.EdgeVectorParams(
                size=manifest.dims[name], distance=qe.Distance.Cosine, memory=memory
            )
            for name in DENSE_VECTORS
        }
        sparse = {SPARSE_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)}
        self.directory.mkdir(parents=True, exist_ok=True)
        shard = qe.EdgeShard.create(
            str(self.shard_dir), qe.EdgeConfig(vectors=vectors, sparse_vectors=sparse)
        )
        for name in KEYWORD_FIELDS:
            shard.update(qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Keyword))
        for name in FLOAT_FIELDS:
            shard.update(qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Float))
        shard.flush()
        self._shard = shard
        write_manifest_file(self.manifest_path, manifest)

    def drop(self) -> None:
        self._close_shard()
        self.manifest_path.unlink(missing_ok=True)
        remove_tree(self.shard_dir)

    def upsert(self, points: Sequence[IndexPoint]) -> None:
        batch = []
        for point in points:
            vector = {name: _vector(v) for name, v in point.dense.items()}
            vector[SPARSE_VECTOR] = _vector(point.sparse)
            batch.append(qe.Point(point_id(point.product.id), vector, payload_of(point.product)))
        self.shard.update(qe.UpdateOperation.upsert_points(batch))
        self.shard.flush()

    def delete(self, product_ids: Sequence[str]) -> None:
        self.shard.update(qe.UpdateOperation.delete_points([point_id(i) for i in product_ids]))
        self.shard.flush()

    def search(self, queries: Sequence[VectorQuery]) -> list[list[Hit]]:
        requests = [
            qe.QueryRequest(
                limit=q.limit,
                query=qe.Query.Nearest(_vector(q.vector), using=q.using),
                filter=build_filter(q.filters, q.exclude_ids, _Types),
                with_payload=PRODUCT_ID_FIELD,
            )
            for q in queries
        ]
        results = self.shard.query_batch(qe.QueryBatchRequest(requests))
        return [[Hit(p.payload["product_id"], p.score) for p in points] for points in results]

    def retrieve(self, product_ids: Sequence[str]) -> list[Product]:
        ids = [point_id(i) for i in product_ids]
        records = self.shard.retrieve(ids, with_payload=True, with_vector=False)
        return products_in_order(records, product_ids)

    def count(self) -> int:
        return self.shard.count(qe.CountRequest(exact=True))

    def vectors(
        self, product_ids: Sequence[str], names: Sequence[str]
    ) -> dict[str, dict[str, np.ndarray]]:
        records = self.shard.retrieve(
            [point_id(i) for i in product_ids],
            with_payload=PRODUCT_ID_FIELD,
            with_vector=list(names),
        )
        return vectors_by_id(records, names)

    def set_vectors(self, name: str, vectors: dict[str, np.ndarray]) -> None:
        updates = [qe.PointVectors(point_id(i), {name: _vector(v)}) for i, v in vectors.items()]
        self.shard.update(qe.UpdateOperation.update_vectors(updates))
        self.shard.flush()

    def write_manifest(self, manifest: Manifest) -> None:
        write_manifest_file(self.manifest_path, manifest)

    def scroll(self, offset: Any, fields: list[str]) -> tuple[Sequence[Any], Any]:
        """One page of records with the given payload fields, and the next page's offset."""
        return self.shard.scroll(qe.ScrollRequest(offset=offset, limit=1000, with_payload=fields))

    def facet(self, key: str, limit: int) -> list[str]:
        response = self.shard.facet(qe.FacetRequest(key=key, limit=limit, exact=True))
        return [str(hit.value) for hit in response.hits]

    def optimize(self) -> None:
        # The embedded engine runs no background optimizer: until this runs, every write
        # sits in a plain segment that search scans in full.
        self.shard.optimize()
        self.shard.flush()

    def _close_shard(self) -> None:
        if self._shard is not None:
            self._shard.close()
            self._shard = None

    def close(self) -> None:
        self._close_shard()
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
