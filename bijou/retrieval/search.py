"""Hybrid product search: parsed hard filters, then dense text, text-to-image, photo and
BM25 rankings fused by weighted reciprocal-rank fusion. When the filters leave fewer than
``top_k`` products, they are relaxed one at a time (never the price) and the shopper is told
which; exact matches always rank first."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import qdrant_edge as qe
from PIL import Image
from tqdm import tqdm

from bijou.catalog.loader import catalog_sources
from bijou.catalog.media import MediaStore
from bijou.catalog.schema import Product
from bijou.config import BijouConfig, SearchConfig
from bijou.fusion.encoders import Encoders, load_encoders
from bijou.fusion.video import product_videos
from bijou.retrieval.index import DENSE_VECTORS, Hit, IndexPoint, ProductIndex, Sparse, VectorQuery
from bijou.retrieval.knowledge import ShopKnowledge
from bijou.retrieval.look import LOOK_VERSION
from bijou.retrieval.query import ParsedQuery, QueryFilters, QueryParser
from bijou.retrieval.server import ServerBackend
from bijou.retrieval.shipped import ShippedVectors

# BM25 document weights depend on these; they are part of the index's encoder versions.
BM25_CONFIG = {"k": 1.2, "b": 0.75, "avg_len": 80.0, "language": "english"}
BM25_VERSION = "bm25:" + ",".join(f"{k}={v}" for k, v in BM25_CONFIG.items())
VIDEO_FRAMES = 8
# Cross-category queries re-rank this many results per product shown (at least the minimum);
# a result's place in the text ranking is worth up to ANCHOR_RANK_COST of colour harmony.
ANCHOR_POOL, ANCHOR_MIN_POOL, ANCHOR_RANK_COST = 5, 50, 0.5


class SparseEncoder:
    """BM25 term weights (qdrant-edge's tokenizer and stemmer); IDF is applied by the index."""

    version = BM25_VERSION

    def __init__(self) -> None:
        self.model = qe.Bm25(qe.Bm25Config(**BM25_CONFIG))

    def document(self, text: str) -> Sparse:
        vector = self.model.embed_document(text)
        return Sparse(list(vector.indices), list(vector.values))

    def query(self, text: str) -> Sparse:
        vector = self.model.embed_query(text)
        return Sparse(list(vector.indices), list(vector.values))


@dataclass(frozen=True)
class SearchRequest:
    text: str = ""
    image: Image.Image | None = None
    top_k: int = 10
    # Constraints from outside the text (dialog state); merged with what the text says.
    filters: QueryFilters = field(default_factory=QueryFilters)
    exclude_ids: tuple[str, ...] = ()
    # Filters that may not be relaxed for this request (the price never is).
    keep: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScoredProduct:
    product: Product
    score: float
    exact: bool  # False when it matched only after relaxing a filter
    relaxed: tuple[str, ...] = ()  # the filters dropped before it matched


@dataclass(frozen=True)
class SearchResult:
    parsed: ParsedQuery | None
    filters: QueryFilters
    results: list[ScoredProduct]
    relaxed: tuple[str, ...] = ()

    @property
    def ids(self) -> list[str]:
        return [r.product.id for r in self.results]


def merge_filters(a: QueryFilters, b: QueryFilters) -> QueryFilters:
    """Union of two constraint sets; where both set a field, ``b`` (the newer) wins, and a
    value one side wants is never excluded by the other ("rather than" left in a query's
    words must not refuse the category the dialog asks for)."""
    values = {}
    for f in dataclasses.fields(QueryFilters):
        mine, theirs = getattr(a, f.name), getattr(b, f.name)
        values[f.name] = theirs if theirs not in ((), None) else mine
    for wanted in ("articles", "colours", "brands"):
        values[f"exclude_{wanted}"] = tuple(
            v for v in values[f"exclude_{wanted}"] if v not in values[wanted]
        )
    return QueryFilters(**values)


def rrf(rankings: Sequence[tuple[float, list[Hit]]], k: int) -> list[tuple[str, float]]:
    """Weighted reciprocal-rank fusion: sum over lists of weight / (k + rank)."""
    scores: dict[str, float] = {}
    for weight, hits in rankings:
        for rank, hit in enumerate(hits, start=1):
            scores[hit.product_id] = scores.get(hit.product_id, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


class ProductSearch:
    def __init__(
        self,
        index: ProductIndex,
        encoders: Encoders,
        config: SearchConfig,
        parser: QueryParser | None = None,
    ) -> None:
        self.index = index
        self.encoders = encoders
        self.config = config
        self.sparse = SparseEncoder()
        self.parser = parser or QueryParser()
        self._embed_text = lru_cache(maxsize=config.query_cache_size)(self._embed_text_uncached)

    def _embed_text_uncached(self, text: str) -> np.ndarray:
        return self.encoders.text.encode([text])[0]

    def search(self, request: SearchRequest) -> SearchResult:
        parsed = self.parser.parse(request.text) if request.text.strip() else None
        filters = merge_filters(parsed.filters, request.filters) if parsed else request.filters
        photo = self.encoders.image.encode([request.image])[0] if request.image else None
        text = (parsed.search_text or parsed.raw) if parsed else ""
        limit = max(self.config.prefetch_limit, request.top_k)

        def ranked(active: QueryFilters, exclude: tuple[str, ...]) -> list[tuple[str, float]]:
            plan = self._plan(text, photo, active, exclude, limit)
            if not plan:
                return []
            lists = self.index.search([q for _, q in plan])
            weighted = [(w, hits) for (w, _), hits in zip(plan, lists, strict=True)]
            return rrf(weighted, self.config.rrf_k)

        exclude = tuple(request.exclude_ids)
        found = [(pid, score, ()) for pid, score in ranked(filters, exclude)]
        relaxed: list[str] = []
        active = filters
        for name in self.config.relax_order:
            if len(found) >= request.top_k:
                break
            if name in request.keep:
                continue
            if not getattr(active, name):
                continue
            active = dataclasses.replace(active, **{name: ()})
            relaxed.append(name)
            seen = exclude + tuple(pid for pid, _, _ in found)
            found += [(pid, score, tuple(relaxed)) for pid, score in ranked(active, seen)]
        anchor = parsed.anchor if parsed else None
        if anchor is not None and anchor.colours and found:
            found = self._with_anchor(found, anchor.colours, request.top_k)
        # Rankings carry ids only; whole products are read for the few that are shown.
        top = found[: request.top_k]
        products = {p.id: p for p in self.index.get_many([pid for pid, _, _ in top])}
        results = [
            ScoredProduct(products[pid], s, not dropped, dropped)
            for pid, s, dropped in top
            if pid in products
        ]
        return SearchResult(parsed, filters, results, tuple(relaxed))

    def _with_anchor(
        self, found: list[tuple[str, float, tuple[str, ...]]], tones: tuple[str, ...], k: int
    ) -> list[tuple[str, float, tuple[str, ...]]]:
        """A cross-category query ("a bag to carry with gold jhumkas"): the wanted category's
        matches re-ranked by how well their colours go with the anchor's, which the text
        rankings cannot see (the anchor's words describe the anchor, not the bag)."""
        from bijou.retrieval.complements import harmony_with

        pool = found[: max(k * ANCHOR_POOL, ANCHOR_MIN_POOL)]
        products = {p.id: p for p in self.index.get_many([pid for pid, _, _ in pool])}
        scored = [
            (i, entry, harmony_with(tones, products[entry[0]]))
            for i, entry in enumerate(pool)
            if entry[0] in products
        ]
        scored.sort(key=lambda row: (-(row[2] - ANCHOR_RANK_COST * row[0] / len(pool)), row[0]))
        return [entry for _, entry, _ in scored] + found[len(pool) :]

    def _plan(
        self,
        text: str,
        photo: np.ndarray | None,
        filters: QueryFilters,
        exclude: tuple[str, ...],
        limit: int,
    ) -> list[tuple[float, VectorQuery]]:
        """(weight, query) per ranked list; image vectors share the text space."""
        c = self.config

        def q(using: str, vector: np.ndarray | Sparse) -> VectorQuery:
            return VectorQuery(using, vector, filters, limit, exclude)

        plan: list[tuple[float, VectorQuery]] = []
        vector = self._embed_text(text) if text else None
        if text:
            sparse = self.sparse.query(text)
            if sparse.indices:
                plan.append((c.weight_sparse, q("bm25", sparse)))
        fuser = self.encoders.fuser
        if fuser is not None and (vector is not None or photo is not None):
            # The fused list joins the per-modality lists rather than replacing them: on the
            # held-out queries replacing them lost 0.02 nDCG@10 (docs/fusion.md).
            plan.append((c.weight_fused, q("fused", fuser.query(vector, photo))))
        if vector is not None:
            plan += [(c.weight_text, q("text", vector)), (c.weight_image, q("image", vector))]
        if photo is not None:
            plan += [(c.weight_photo, q("image", photo)), (c.weight_photo / 2, q("text", photo))]
        return plan


def index_points(
    products: Sequence[Product],
    encoders: Encoders,
    sparse: SparseEncoder,
    store: MediaStore,
    batch: int = 128,
    progress: bool = True,
) -> Iterable[IndexPoint]:
    """Encode products in batches; a product without a readable image gets no image vector."""
    bar = tqdm(total=len(products), desc="indexing", unit="product", disable=not progress)
    for start in range(0, len(products), batch):
        chunk = products[start : start + batch]
        texts = encoders.text.encode([p.document() for p in chunk])
        images = [store.load(p) for p in chunk]
        with_image = [i for i, img in enumerate(images) if img is not None]
        image_vectors = encoders.image.encode([images[i] for i in with_image])
        by_row = dict(zip(with_image, image_vectors, strict=True))
        fused = fuse_products(encoders, chunk, texts, by_row, store)
        for i, product in enumerate(chunk):
            dense = {"text": texts[i]}
            if i in by_row:
                dense["image"] = by_row[i]
            if fused is not None:
                dense["fused"] = fused[i]
            yield IndexPoint(product, dense, sparse.document(product.document()))
        bar.update(len(chunk))
    bar.close()


def held_points(
    products: Sequence[Product],
    held: dict[str, dict[str, np.ndarray]],
    encoders: Encoders,
    sparse: SparseEncoder,
    store: MediaStore,
    batch: int = 512,
) -> Iterable[IndexPoint]:
    """Index points from vectors computed before (shipped ones): only the fused vector, when
    a fusion model is configured, and BM25 are computed here."""
    for start in range(0, len(products), batch):
        chunk = products[start : start + batch]
        texts = np.stack([held[p.id]["text"] for p in chunk])
        images = {i: held[p.id]["image"] for i, p in enumerate(chunk) if "image" in held[p.id]}
        fused = fuse_products(encoders, chunk, texts, images, store)
        for i, product in enumerate(chunk):
            dense = dict(held[product.id])
            if fused is not None:
                dense["fused"] = fused[i]
            yield IndexPoint(product, dense, sparse.document(product.document()))


def fuse_products(
    encoders: Encoders,
    products: Sequence[Product],
    texts: np.ndarray,
    images: dict[int, np.ndarray],
    store: MediaStore,
) -> np.ndarray | None:
    """Fused vectors for a chunk of products (None without a fusion model); ``images`` maps
    row -> image vector for the rows that have one; videos are read and encoded here."""
    if encoders.fuser is None:
        return None
    image = np.zeros_like(texts)
    has_image = np.zeros(len(products), dtype=bool)
    for row, vector in images.items():
        image[row], has_image[row] = vector, True
    video, frames = product_videos(products, store, encoders.image, VIDEO_FRAMES)
    return encoders.fuser.products(texts, image, has_image, video, frames)


def index_versions(encoders: Encoders) -> tuple[dict[str, str], dict[str, int]]:
    versions = {**encoders.versions, "sparse": BM25_VERSION, "payload": LOOK_VERSION}
    dim = encoders.text.dim
    return versions, {"text": dim, "image": encoders.image.dim, "fused": dim}


@dataclass
class SearchEngine:
    """Everything a search needs, loaded once from the configuration."""

    config: BijouConfig
    index: ProductIndex
    encoders: Encoders
    search: ProductSearch
    store: MediaStore
    shipped: ShippedVectors | None = None
    _knowledge: ShopKnowledge | None = None
    _knowledge_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def knowledge(self) -> ShopKnowledge:
        """The shop's documents in the collection beside the products (opened on first use,
        by one thread; indexed again only when the documents or the text encoder changed)."""
        with self._knowledge_lock:
            return self._open_knowledge()

    def _open_knowledge(self) -> ShopKnowledge:
        if self._knowledge is None:
            # A Qdrant server's connection is shared (qdrant-client's local mode admits one).
            backend = self.index.backend
            client = backend.client if isinstance(backend, ServerBackend) else None
            self._knowledge = ShopKnowledge.open(self.config, self.encoders.text, client)
        return self._knowledge

    def close(self) -> None:
        self.index.close()
        if self._knowledge is not None:
            self._knowledge.close()
            self._knowledge = None

    @classmethod
    def load(cls, config: BijouConfig, encoders: Encoders | None = None) -> SearchEngine:
        """``encoders`` lets several engines (or tests) share models already in memory."""
        # The index first: a busy embedded index fails in milliseconds, not after model loads.
        index = ProductIndex.open(config.index, config.index_dir)
        try:
            encoders = encoders or load_encoders(config)
        except BaseException:
            index.close()
            raise
        _, images = catalog_sources(config)
        engine = cls(
            config,
            index,
            encoders,
            ProductSearch(index, encoders, config.search),
            MediaStore(images),
            ShippedVectors.load() if config.index.shipped_vectors else None,
        )
        engine.refresh_vocabulary()
        return engine

    def refresh_vocabulary(self) -> None:
        """Teach the query parser the brands the index holds."""
        brands = self.index.values("brand") if self.index.manifest is not None else []
        self.search.parser = QueryParser(brands)

    def sync(
        self, products: Sequence[Product], rebuild: bool = False, prune: bool = True
    ) -> SyncReport:
        """Make the index hold exactly ``products``: encode only new or changed ones (upsert by
        id, so running it twice changes nothing) and, with ``prune``, delete the rest."""
        versions, dims = index_versions(self.encoders)
        if not rebuild and self.payload_outdated():
            self.repayload()
        if not rebuild and self.fusion_outdated():
            self.refuse()
        self.index.ensure(versions, dims, rebuild=rebuild)
        current = self.index.fingerprints()
        changed = [p for p in products if current.get(p.id) != p.fingerprint]
        wanted = {p.id for p in products}
        stale = [pid for pid in current if pid not in wanted] if prune else []
        if changed:
            # Each batch is flushed as it is written, and the next sync skips what the index
            # holds by fingerprint: a killed build resumes where it stopped.
            self.index.upsert(self.encode(changed), batch=self.config.indexing.batch_size)
            self.index.optimize()
        if stale:
            self.index.delete(stale)
        self.index.mark_complete()
        self.refresh_vocabulary()
        added = sum(p.id not in current for p in changed)
        return SyncReport(added, len(changed) - added, len(stale), len(products) - len(changed))

    def encode(self, products: Sequence[Product]) -> Iterable[IndexPoint]:
        """Index points of ``products``: shipped vectors where they are what the configured
        encoders would compute, the rest encoded here or by Ray actors (``indexing.engine``)."""
        held = (
            self.shipped.vectors_for(products, self.store, self.encoders.versions)
            if self.shipped is not None
            else {}
        )
        sparse = self.search.sparse
        if held:
            reused = [p for p in products if p.id in held]
            yield from held_points(reused, held, self.encoders, sparse, self.store)
        rest = [p for p in products if p.id not in held]
        if not rest:
            return
        if self.config.indexing.engine == "ray":
            from bijou.retrieval.parallel import ray_index_points

            yield from ray_index_points(rest, self.config)
        else:
            batch = self.config.indexing.batch_size
            yield from index_points(rest, self.encoders, sparse, self.store, batch)

    def payload_outdated(self) -> bool:
        """True when the index's vectors are current but its payloads were written by an
        older look reading (an index from before it has no "payload" entry)."""
        manifest = self.index.manifest
        if manifest is None:
            return False
        versions, _ = index_versions(self.encoders)
        held = {k: v for k, v in manifest.encoders.items() if k != "payload"}
        wanted = {k: v for k, v in versions.items() if k != "payload"}
        fused = {**held, "fusion": wanted.get("fusion", "")} == wanted
        return manifest.encoders.get("payload") != LOOK_VERSION and (held == wanted or fused)

    def repayload(self, chunk: int = 512) -> None:
        """Rewrite every point's payload (and BM25 vector) from the vectors the index holds:
        seconds for a new look reading, where a rebuild would re-encode every product."""
        ids = list(self.index.fingerprints())
        for start in tqdm(range(0, len(ids), chunk), desc="payloads", unit="batch"):
            part = ids[start : start + chunk]
            held = self.index.vectors(part, list(DENSE_VECTORS))
            points = [
                IndexPoint(p, held.get(p.id, {}), self.search.sparse.document(p.document()))
                for p in self.index.get_many(part)
            ]
            self.index.upsert(points)
        manifest = self.index.manifest
        assert manifest is not None
        self.index.refit({**manifest.encoders, "payload": LOOK_VERSION})

    def fusion_outdated(self) -> bool:
        """True when the index differs from the configured models in its fused vectors only."""
        manifest = self.index.manifest
        if manifest is None:
            return False
        versions, _ = index_versions(self.encoders)
        # An index from before fusion existed has no "fusion" entry; payloads are apart.
        held = {**manifest.encoders, "payload": versions["payload"]}
        return held != versions and {**held, "fusion": versions["fusion"]} == versions

    def refuse(self, chunk: int = 512) -> None:
        """Recompute the "fused" vectors from the text and image vectors the index already
        holds (and the products' videos), for a new fusion model: seconds, not a re-encode."""
        versions, _ = index_versions(self.encoders)
        if self.encoders.fuser is not None:
            ids = list(self.index.fingerprints())
            for start in tqdm(range(0, len(ids), chunk), desc="fusing", unit="batch"):
                part = ids[start : start + chunk]
                held = self.index.vectors(part, ["text", "image"])
                products = self.index.get_many(part)
                texts = np.stack([held[p.id]["text"] for p in products])
                images = {i: held[p.id]["image"] for i, p in enumerate(products)
                          if "image" in held[p.id]}  # fmt: skip
                fused = fuse_products(self.encoders, products, texts, images, self.store)
                ids_held = [p.id for p in products]
                self.index.set_vectors("fused", dict(zip(ids_held, fused, strict=True)))
        self.index.refit(versions)

    def upsert(self, products: Sequence[Product], images: Path | None = None) -> int:
        """Add or update single products (images read from ``images`` or the catalog store)."""
        store = MediaStore(images) if images else self.store
        points = index_points(products, self.encoders, self.search.sparse, store, progress=False)
        count = self.index.upsert(points)
        self.refresh_vocabulary()
        return count

    def delete(self, product_ids: Sequence[str]) -> int:
        """Remove products the index holds; the parser forgets brands no product has left.
        The count of those removed (ids it never held are not)."""
        held = [p.id for p in self.index.get_many(product_ids)]
        if held:
            self.index.delete(held)
            self.refresh_vocabulary()
        return len(held)


@dataclass(frozen=True)
class SyncReport:
    added: int
    updated: int
    deleted: int
    unchanged: int

    def __str__(self) -> str:
        return (
            f"index: {self.added} added, {self.updated} updated, "
            f"{self.deleted} deleted, {self.unchanged} unchanged"
        )
