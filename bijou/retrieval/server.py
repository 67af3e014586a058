"""Server engine: `qdrant-client` against a Qdrant server or cluster, same layout as the
embedded shard. ``url: local:<dir>`` or ``:memory:`` uses qdrant-client's local mode, which
speaks the same API (the tests use it; it filters in Python and is slow past 10k points)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from bijou.catalog.schema import Product
from bijou.config import IndexConfig
from bijou.retrieval.index import (
    DENSE_VECTORS,
    FLOAT_FIELDS,
    KEYWORD_FIELDS,
    PRODUCT_ID_FIELD,
    SPARSE_VECTOR,
    Hit,
    IndexPoint,
    Manifest,
    Sparse,
    VectorQuery,
    build_filter,
    engine_vector,
    payload_of,
    point_id,
    products_in_order,
    vectors_by_id,
)

_MANIFEST_KEY = "bijou_manifest"


class _Types:
    Filter = models.Filter
    FieldCondition = models.FieldCondition
    MatchAny = models.MatchAny
    Range = models.Range
    SparseVector = models.SparseVector


def _vector(value: np.ndarray | Sparse) -> object:
    return engine_vector(value, _Types)


def connect(config: IndexConfig) -> QdrantClient:
    url = config.url or ""
    if url == ":memory:":
        return QdrantClient(location=":memory:")
    if url.startswith("local:"):
        return QdrantClient(path=url.removeprefix("local:"))
    if not url:
        raise ValueError("index.mode is 'server' but index.url is not set")
    return QdrantClient(url=url, api_key=config.api_key)


class ServerBackend:
    def __init__(self, config: IndexConfig) -> None:
        self.client = connect(config)
        self.collection = config.collection
        self.config = config

    def manifest(self) -> Manifest | None:
        if not self.client.collection_exists(self.collection):
            return None
        metadata = self.client.get_collection(self.collection).config.metadata or {}
        raw = metadata.get(_MANIFEST_KEY)
        return Manifest.from_json(raw) if raw else None

    def create(self, manifest: Manifest) -> None:
        c = self.config
        vectors = {
            name: models.VectorParams(
                size=manifest.dims[name], distance=models.Distance.COSINE, on_disk=c.on_disk
            )
            for name in DENSE_VECTORS
        }
        sparse = {SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)}
        self.client.create_collection(
            self.collection,
            vectors_config=vectors,
            sparse_vectors_config=sparse,
            shard_number=c.shards,
            replication_factor=c.replicas,
            write_consistency_factor=c.write_consistency,
            on_disk_payload=True,
            metadata={_MANIFEST_KEY: manifest.to_json()},
        )
        for name in KEYWORD_FIELDS:
            self.client.create_payload_index(
                self.collection, name, models.PayloadSchemaType.KEYWORD
            )
        for name in FLOAT_FIELDS:
            self.client.create_payload_index(self.collection, name, models.PayloadSchemaType.FLOAT)

    def drop(self) -> None:
        if self.client.collection_exists(self.collection):
            self.client.delete_collection(self.collection)

    def upsert(self, points: Sequence[IndexPoint]) -> None:
        structs = []
        for point in points:
            vector = {name: _vector(v) for name, v in point.dense.items()}
            vector[SPARSE_VECTOR] = _vector(point.sparse)
            structs.append(
                models.PointStruct(
                    id=point_id(point.product.id), vector=vector, payload=payload_of(point.product)
                )
            )
        self.client.upsert(self.collection, structs, wait=True)

    def delete(self, product_ids: Sequence[str]) -> None:
        selector = models.PointIdsList(points=[point_id(i) for i in product_ids])
        self.client.delete(self.collection, selector, wait=True)

    def search(self, queries: Sequence[VectorQuery]) -> list[list[Hit]]:
        requests = [
            models.QueryRequest(
                query=_vector(q.vector),
                using=q.using,
                filter=build_filter(q.filters, q.exclude_ids, _Types),
                limit=q.limit,
                with_payload=PRODUCT_ID_FIELD,
            )
            for q in queries
        ]
        responses = self.client.query_batch_points(self.collection, requests)
        return [[Hit(p.payload["product_id"], p.score) for p in r.points] for r in responses]

    def retrieve(self, product_ids: Sequence[str]) -> list[Product]:
        records = self.client.retrieve(self.collection, [point_id(i) for i in product_ids])
        return products_in_order(records, product_ids)

    def count(self) -> int:
        return self.client.count(self.collection, exact=True).count

    def vectors(
        self, product_ids: Sequence[str], names: Sequence[str]
    ) -> dict[str, dict[str, np.ndarray]]:
        records = self.client.retrieve(
            self.collection,
            [point_id(i) for i in product_ids],
            with_payload=PRODUCT_ID_FIELD,
            with_vectors=list(names),
        )
        return vectors_by_id(records, names)

    def set_vectors(self, name: str, vectors: dict[str, np.ndarray]) -> None:
        points = [models.PointVectors(id=point_id(i), vector={name: _vector(v)})
                  for i, v in vectors.items()]  # fmt: skip
        self.client.update_vectors(self.collection, points, wait=True)

    def write_manifest(self, manifest: Manifest) -> None:
        self.client.update_collection(self.collection, metadata={_MANIFEST_KEY: manifest.to_json()})

    def scroll(self, offset: Any, fields: list[str]) -> tuple[Sequence[Any], Any]:
        """One page of records with the given payload fields, and the next page's offset."""
        return self.client.scroll(self.collection, limit=1000, offset=offset, with_payload=fields)

    def facet(self, key: str, limit: int) -> list[str]:
        response = self.client.facet(self.collection, key, limit=limit, exact=True)
        return [str(hit.value) for hit in response.hits]

    def optimize(self) -> None:
        """Nothing to do: a Qdrant server runs its optimizers in the background."""

    def close(self) -> None:
        self.client.close()
