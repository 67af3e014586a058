"""The Qdrant product index: one collection layout, two engines.

Embedded (default): `qdrant-edge-py`, Qdrant's in-process engine, persisted under the data
directory. Server: `qdrant-client` against a Qdrant URL (or its local mode for tests). Both
hold named dense vectors ``text``, ``image`` and ``fused``, a sparse BM25 vector with IDF
weighting, and payload indexes for the fields shoppers filter by. The index records the
encoder versions that built it; opening it with other encoders demands a rebuild."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bijou.catalog.schema import Product
from bijou.config import IndexConfig
from bijou.retrieval.look import look_of
from bijou.retrieval.query import QueryFilters

LAYOUT_VERSION = 1
DENSE_VECTORS = ("text", "image", "fused")
SPARSE_VECTOR = "bm25"
KEYWORD_FIELDS = (
    "product_id",
    "article",
    "category",
    "colour",
    "tones",
    "gender",
    "usage",
    "brand",
)
FLOAT_FIELDS = ("price",)
_ID_NAMESPACE = uuid.UUID("6f1d8c52-4d0e-4f43-9a0c-7b1f7c1d2a55")


class IndexMismatchError(RuntimeError):
    """The index was built by other encoders or another layout: rebuild it."""


class IndexBusyError(RuntimeError):
    """Another process has the embedded index open."""


@dataclass(frozen=True)
class Manifest:
    layout: int
    encoders: dict[str, str]
    dims: dict[str, int]
    # False from the creation of a new index until a sync has put in every product: an index
    # whose build was killed is finished (resumed) before it is served, never served part-built.
    complete: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "encoders": self.encoders,
            "dims": self.dims,
            "complete": self.complete,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Manifest:
        # Indexes from before the flag were written whole by a sync.
        return cls(raw["layout"], raw["encoders"], raw["dims"], raw.get("complete", True))

    def holds(self, other: Manifest) -> bool:
        """Same layout and vectors from the same encoders (built or still building)."""
        return (self.layout, self.encoders, self.dims) == (other.layout, other.encoders, other.dims)


@dataclass(frozen=True)
class Sparse:
    indices: list[int]
    values: list[float]


@dataclass(frozen=True)
class IndexPoint:
    product: Product
    dense: dict[str, np.ndarray]  # name -> vector; a product without image has no "image"
    sparse: Sparse


@dataclass(frozen=True)
class VectorQuery:
    using: str
    vector: np.ndarray | Sparse
    filters: QueryFilters = field(default_factory=QueryFilters)
    limit: int = 100
    exclude_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hit:
    product_id: str
    score: float


def point_id(product_id: str) -> str:
    """Qdrant ids are UUIDs or integers; shop ids are any string."""
    return str(uuid.uuid5(_ID_NAMESPACE, product_id))


def payload_of(product: Product) -> dict[str, Any]:
    return {
        **product.model_dump(),
        "product_id": product.id,
        "category": product.sub,
        # Colours are matched against the product's real look, not its colour field alone.
        "tones": list(look_of(product).tones),
        "fingerprint": product.fingerprint,
    }


def product_of(payload: dict[str, Any]) -> Product:
    data = {k: v for k, v in payload.items() if k in Product.model_fields}
    return Product.model_validate(data)


# Payload fields read back with search hits and when diffing the index against a catalog.
PRODUCT_ID_FIELD = ["product_id"]
FINGERPRINT_FIELDS = ["product_id", "fingerprint"]


def products_in_order(records: Sequence[Any], product_ids: Sequence[str]) -> list[Product]:
    """Engine records -> products, in the order asked for, skipping ids the index lacks."""
    by_id = {r.payload["product_id"]: product_of(r.payload) for r in records if r.payload}
    return [by_id[i] for i in product_ids if i in by_id]


def vectors_by_id(records: Sequence[Any], names: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """Engine records -> {product id: {vector name: vector}} for the named vectors."""
    return {
        r.payload["product_id"]: {
            k: np.asarray(v, np.float32) for k, v in (r.vector or {}).items() if k in names
        }
        for r in records
        if r.payload
    }


class EngineTypes(Protocol):
    """The model classes an engine offers (edge and client name them alike)."""

    Filter: Any
    FieldCondition: Any
    MatchAny: Any
    Range: Any
    SparseVector: Any


def engine_vector(value: np.ndarray | Sparse, types: EngineTypes) -> Any:
    if isinstance(value, Sparse):
        return types.SparseVector(indices=value.indices, values=value.values)
    return np.asarray(value, np.float32).tolist()  # Python floats, ten times faster than a loop


def build_filter(
    filters: QueryFilters, exclude_ids: Sequence[str], types: EngineTypes
) -> Any | None:
    """QueryFilters -> an engine filter; None when nothing constrains the query."""
    must: list[Any] = []
    must_not: list[Any] = []

    def any_of(key: str, values: Sequence[str]) -> Any:
        return types.FieldCondition(key=key, match=types.MatchAny(any=list(values)))

    for key, values in (
        ("article", filters.articles),
        ("tones", filters.colours),
        ("gender", filters.genders),
        ("usage", filters.usages),
        ("brand", filters.brands),
    ):
        if values:
            must.append(any_of(key, values))
    for key, values in (
        ("tones", filters.exclude_colours),
        ("brand", filters.exclude_brands),
        ("article", filters.exclude_articles),
        ("product_id", exclude_ids),
    ):
        if values:
            must_not.append(any_of(key, values))
    if filters.min_price is not None or filters.max_price is not None:
        price_range = types.Range(gte=filters.min_price, lte=filters.max_price)
        must.append(types.FieldCondition(key="price", range=price_range))
    if not must and not must_not:
        return None
    return types.Filter(must=must or None, must_not=must_not or None)


class IndexBackend(Protocol):
    def manifest(self) -> Manifest | None: ...
    def create(self, manifest: Manifest) -> None: ...
    def drop(self) -> None: ...
    def upsert(self, points: Sequence[IndexPoint]) -> None: ...
    def delete(self, product_ids: Sequence[str]) -> None: ...
    def search(self, queries: Sequence[VectorQuery]) -> list[list[Hit]]: ...
    def retrieve(self, product_ids: Sequence[str]) -> list[Product]: ...
    def count(self) -> int: ...
    def scroll(self, offset: Any, fields: list[str]) -> tuple[Sequence[Any], Any]: ...
    def vectors(self, product_ids: Sequence[str], names: Sequence[str]) -> dict[str, dict]: ...
    def set_vectors(self, name: str, vectors: dict[str, np.ndarray]) -> None: ...
    def write_manifest(self, manifest: Manifest) -> None: ...
    def facet(self, key: str, limit: int) -> list[str]: ...
    def optimize(self) -> None: ...
    def close(self) -> None: ...


class ProductIndex:
    """The one index API the rest of Bijou sees; the engine is chosen by configuration."""

    def __init__(self, backend: IndexBackend) -> None:
        self.backend = backend

    @classmethod
    def open(cls, config: IndexConfig, index_dir: Path) -> ProductIndex:
        if config.mode == "edge":
            from bijou.retrieval.edge import EdgeBackend

            return cls(EdgeBackend(index_dir, on_disk=config.on_disk))
        from bijou.retrieval.server import ServerBackend

        return cls(ServerBackend(config))

    def ensure(self, encoders: dict[str, str], dims: dict[str, int], rebuild: bool = False) -> None:
        """Open the layout for these encoders, creating (or with ``rebuild``, recreating) it.

        Raises IndexMismatchError when it holds vectors of other encoders and ``rebuild`` is
        False: mixing vectors from two models silently ruins search."""
        wanted = Manifest(LAYOUT_VERSION, dict(encoders), dict(dims), complete=False)
        current = self.backend.manifest()
        if current is not None and current.holds(wanted) and not rebuild:
            return  # built, or a build to resume
        if current is not None and not rebuild:
            raise IndexMismatchError(
                f"the index was built with {current.encoders} (layout {current.layout}); "
                f"the configured encoders are {wanted.encoders}: rebuild it (bijou index --rebuild)"
            )
        self.backend.drop()
        self.backend.create(wanted)

    @property
    def manifest(self) -> Manifest | None:
        return self.backend.manifest()

    def upsert(self, points: Iterable[IndexPoint], batch: int = 256) -> int:
        chunk: list[IndexPoint] = []
        total = 0
        for point in points:
            chunk.append(point)
            if len(chunk) == batch:
                self.backend.upsert(chunk)
                total, chunk = total + len(chunk), []
        if chunk:
            self.backend.upsert(chunk)
            total += len(chunk)
        return total

    def delete(self, product_ids: Sequence[str]) -> None:
        self.backend.delete(product_ids)

    def search(self, queries: Sequence[VectorQuery]) -> list[list[Hit]]:
        return self.backend.search(queries) if queries else []

    def get(self, product_id: str) -> Product | None:
        found = self.backend.retrieve([product_id])
        return found[0] if found else None

    def get_many(self, product_ids: Sequence[str]) -> list[Product]:
        return self.backend.retrieve(product_ids)

    def count(self) -> int:
        return self.backend.count()

    def vectors(
        self, product_ids: Sequence[str], names: Sequence[str]
    ) -> dict[str, dict[str, np.ndarray]]:
        """product id -> {vector name -> vector} for the named dense vectors it has."""
        return self.backend.vectors(product_ids, names)

    def set_vectors(self, name: str, vectors: dict[str, np.ndarray]) -> None:
        self.backend.set_vectors(name, vectors)

    def refit(self, encoders: dict[str, str]) -> None:
        """Record that the vectors now come from ``encoders`` (after recomputing some)."""
        current = self.backend.manifest()
        if current is None:
            raise RuntimeError("no index to refit")
        self.backend.write_manifest(replace(current, encoders=dict(encoders)))

    def mark_complete(self) -> None:
        current = self.backend.manifest()
        if current is not None and not current.complete:
            self.backend.write_manifest(replace(current, complete=True))

    @property
    def serving(self) -> bool:
        """True when the index is whole: built, and not a build that was stopped midway."""
        manifest = self.backend.manifest()
        return manifest is not None and manifest.complete

    def fingerprints(self) -> dict[str, str]:
        """product id -> fingerprint of what the index holds for it."""
        found: dict[str, str] = {}
        offset = None
        while True:
            records, offset = self.backend.scroll(offset, FINGERPRINT_FIELDS)
            found.update({r.payload["product_id"]: r.payload["fingerprint"] for r in records})
            if offset is None:
                return found

    def optimize(self) -> None:
        """Build the search structures (HNSW graphs, merged segments) after bulk writes;
        without it the embedded engine scans every vector of a query (docs/benchmarks.md)."""
        self.backend.optimize()

    def values(self, key: str, limit: int = 10_000) -> list[str]:
        """Distinct values of a payload field (e.g. every brand), most frequent first."""
        return self.backend.facet(key, limit)

    def close(self) -> None:
        self.backend.close()


def read_manifest_file(path: Path) -> Manifest | None:
    return Manifest.from_json(json.loads(path.read_text())) if path.is_file() else None


def write_manifest_file(path: Path, manifest: Manifest) -> None:
    # Written aside and renamed over: a crash leaves the old manifest or the new, never half.
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as out:
        out.write(json.dumps(manifest.to_json(), indent=2))
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def remove_tree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
