"""Synthetic catalogs grown from the real one, written straight into an embedded index.

    python bench/synthetic_catalog.py --size 100000 --out var/scale/100000 [--source var]
                                      [--noise 0.5] [--seed 13]

Every synthetic product has one real *parent*, drawn uniformly from the source index (so the
articles keep their real shares), and is built like this:

- id ``syn-<seed>-<n>``; article, master/sub category and colour are the parent's (its
  vectors show that colour and that kind of piece);
- title: a brand drawn from the titles' article (any real product of the same article), then
  the words of another same-article title with that title's own brand taken off its front
  ("Sukkhi" + "Gold Plated Jhumka Earrings");
- brand, gender, usage, season, year and the attribute set (Base Metal, Plating, ...) each
  taken from an independently drawn real product of the same article;
- price: a real same-article product's price times exp(N(0, 0.15²)), whole rupees, at least
  1; list price keeps that product's list/price ratio; description and image are the parent's;
- dense vectors: each of the parent's stored vectors (``text``, and ``image`` where it has
  one) plus Gaussian noise, ``noise`` times the real catalog's standard deviation of that
  dimension, then L2-normalised again: the cloud around each real product has the real
  catalog's shape, not an isotropic one. With the default noise of 0.5 a child keeps a
  cosine of about 0.9 to its parent (printed when generating);
- the BM25 vector is computed from the new product's own text (no model runs).

Nothing is re-encoded, so a million products are written in minutes, not days; then the
engine's optimizer builds its HNSW graphs (what `bijou index` does after a build)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bijou.catalog.schema import Product
from bijou.config import IndexConfig
from bijou.retrieval.index import IndexPoint, ProductIndex
from bijou.retrieval.search import SparseEncoder

PRICE_SIGMA = 0.15
CHUNK = 4096  # products per upsert: fewer flushes, bounded memory


@dataclass(frozen=True)
class Source:
    """The real catalog as the generator reads it from an index."""

    products: list[Product]
    vectors: dict[str, np.ndarray]  # name -> (len(products), dim); zero rows where missing
    present: dict[str, np.ndarray]  # name -> bool per product: has this vector
    spread: dict[str, np.ndarray]  # name -> per-dimension standard deviation (real rows)
    by_article: dict[str, np.ndarray]  # article -> indices of its products
    encoders: dict[str, str]
    dims: dict[str, int]

    @classmethod
    def read(cls, index: ProductIndex, names: tuple[str, ...] = ("text", "image")) -> Source:
        manifest = index.manifest
        if manifest is None:
            raise SystemExit("the source index is empty: run `bijou index` first")
        ids = sorted(index.fingerprints())
        products: list[Product] = []
        held: dict[str, dict[str, np.ndarray]] = {}
        for start in range(0, len(ids), 512):
            part = ids[start : start + 512]
            products += index.get_many(part)
            held.update(index.vectors(part, list(names)))
        vectors, present, spread = {}, {}, {}
        for name in names:
            dim = manifest.dims[name]
            mask = np.array([name in held[p.id] for p in products])
            matrix = np.zeros((len(products), dim), np.float32)
            for row, product in enumerate(products):
                if mask[row]:
                    matrix[row] = held[product.id][name]
            vectors[name], present[name] = matrix, mask
            spread[name] = matrix[mask].std(axis=0).astype(np.float32)
        groups: dict[str, list[int]] = defaultdict(list)
        for row, product in enumerate(products):
            groups[product.article].append(row)
        by_article = {a: np.array(rows) for a, rows in groups.items()}
        return cls(products, vectors, present, spread, by_article, manifest.encoders, manifest.dims)


def title_tail(product: Product) -> str:
    """The title without its brand in front ("Sukkhi Gold Jhumkas" -> "Gold Jhumkas")."""
    words = product.title.split()
    brand = product.brand.split()
    if brand and [w.lower() for w in words[: len(brand)]] == [w.lower() for w in brand]:
        words = words[len(brand) :]
    return " ".join(words) or product.article


class Generator:
    def __init__(self, source: Source, noise: float, seed: int) -> None:
        self.source = source
        self.noise = noise
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.sparse = SparseEncoder()

    def _donor(self, article: str) -> Product:
        rows = self.source.by_article[article]
        return self.source.products[int(rows[self.rng.integers(len(rows))])]

    def product(self, n: int, parent: Product) -> Product:
        article = parent.article
        brand_from, title_from, attrs_from, price_from = (self._donor(article) for _ in range(4))
        brand = brand_from.brand
        price = max(1.0, round(price_from.price * float(np.exp(self.rng.normal(0, PRICE_SIGMA)))))
        ratio = price_from.list_price / price_from.price if price_from.price else 1.0
        return parent.model_copy(
            update={
                "id": f"syn-{self.seed}-{n}",
                "title": f"{brand} {title_tail(title_from)}".strip(),
                "brand": brand,
                "gender": attrs_from.gender,
                "usage": attrs_from.usage,
                "season": attrs_from.season,
                "year": attrs_from.year,
                "attributes": dict(attrs_from.attributes),
                "price": price,
                "list_price": max(price, round(price * ratio)),
            }
        )

    def noisy(self, name: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of the parents ``rows`` with noise added, renormalised; and which exist."""
        base = self.source.vectors[name][rows]
        noise = self.rng.standard_normal(base.shape, dtype=np.float32)
        moved = base + noise * (self.noise * self.source.spread[name])
        moved /= np.maximum(np.linalg.norm(moved, axis=1, keepdims=True), 1e-12)
        return moved, self.source.present[name][rows]

    def points(self, size: int) -> Iterator[IndexPoint]:
        for start in range(0, size, CHUNK):
            count = min(CHUNK, size - start)
            rows = self.rng.integers(len(self.source.products), size=count)
            dense = {name: self.noisy(name, rows) for name in self.source.vectors}
            for i, row in enumerate(rows):
                product = self.product(start + i, self.source.products[int(row)])
                vectors = {name: v[i] for name, (v, has) in dense.items() if has[i]}
                yield IndexPoint(product, vectors, self.sparse.document(product.document()))

    def parent_cosine(self, name: str = "text", samples: int = 2000) -> float:
        """Mean cosine between a child's vector and its parent's (how far the noise moves)."""
        present = np.flatnonzero(self.source.present[name])
        rows = present[self.rng.integers(len(present), size=samples)]
        moved, _ = self.noisy(name, rows)
        return float(np.mean(np.sum(moved * self.source.vectors[name][rows], axis=1)))


class MemoryWatch:
    """Peak anonymous and file-backed resident memory of this process, sampled twice a
    second (ru_maxrss counts memory-mapped index files, which the kernel can drop, as if
    they were the process's own). When the machine's available memory falls below
    ``floor_mb`` the build stops with a message instead of meeting the OOM killer."""

    def __init__(self, floor_mb: float = 1536, interval_s: float = 0.5) -> None:
        self.floor_mb = floor_mb
        self.interval_s = interval_s
        self.peak_anon_mb = self.peak_file_mb = 0.0
        self.lowest_available_mb = float("inf")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _kib(path: str, keys: tuple[str, ...]) -> dict[str, float]:
        found = {}
        for line in Path(path).read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in keys:
                found[key] = int(rest.split()[0]) / 1024
        return found

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            own = self._kib("/proc/self/status", ("RssAnon", "RssFile"))
            self.peak_anon_mb = max(self.peak_anon_mb, own.get("RssAnon", 0.0))
            self.peak_file_mb = max(self.peak_file_mb, own.get("RssFile", 0.0))
            available = self._kib("/proc/meminfo", ("MemAvailable",))["MemAvailable"]
            self.lowest_available_mb = min(self.lowest_available_mb, available)
            if available < self.floor_mb:
                print(f"stopped: {available:.0f} MiB left on the machine (RssAnon "
                      f"{own.get('RssAnon', 0):.0f} MiB)", file=sys.stderr, flush=True)  # fmt: skip
                os._exit(3)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self) -> dict[str, int]:
        return {
            "build_peak_anon_mb": round(self.peak_anon_mb),
            "build_peak_file_mb": round(self.peak_file_mb),
            "lowest_available_mb": round(self.lowest_available_mb),
        }


def directory_bytes(path: Path) -> int:
    """Bytes the files under ``path`` take on disk (the engine preallocates sparse files, so
    their apparent size overstates it)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


def generate(
    source_dir: Path, out_dir: Path, size: int, noise: float, seed: int, on_disk: bool = False
) -> dict:
    """Write ``size`` synthetic products into a fresh embedded index under ``out_dir``/index
    (vectors memory-mapped with ``on_disk``), optimise it, and report times and sizes."""
    source_index = ProductIndex.open(IndexConfig(), source_dir / "index")
    try:
        source = Source.read(source_index)
    finally:
        source_index.close()
    generator = Generator(source, noise, seed)
    index = ProductIndex.open(IndexConfig(on_disk=on_disk), out_dir / "index")
    watch = MemoryWatch()
    with watch:
        timings = _write_and_optimise(index, generator, size)
    return {
        **timings,
        "source_products": len(source.products),
        "noise": noise,
        "seed": seed,
        "on_disk": on_disk,
        "parent_cosine_text": round(generator.parent_cosine("text"), 3),
        "parent_cosine_image": round(generator.parent_cosine("image"), 3),
        "index_bytes": directory_bytes(out_dir / "index"),
        "build_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        **watch.report(),
    }


def _write_and_optimise(index: ProductIndex, generator: Generator, size: int) -> dict:
    source = generator.source
    try:
        index.ensure(source.encoders, source.dims, rebuild=True)
        start = time.perf_counter()
        bar = tqdm(generator.points(size), total=size, desc="writing", unit="product")
        written = index.upsert(bar, batch=CHUNK)
        write_s = time.perf_counter() - start
        start = time.perf_counter()
        index.optimize()
        optimize_s = time.perf_counter() - start
        count = index.count()
    finally:
        index.close()
    return {
        "size": written,
        "count": count,
        "write_s": round(write_s, 1),
        "optimize_s": round(optimize_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="a data directory to create")
    parser.add_argument(
        "--source", type=Path, default=Path("var"), help="data dir of the real index"
    )
    parser.add_argument("--noise", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--on-disk", action="store_true", help="index.on_disk: mmap'd vectors")
    args = parser.parse_args()
    report = generate(args.source, args.out, args.size, args.noise, args.seed, args.on_disk)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
