"""Search latency and memory for one configuration (indexing throughput is measured elsewhere).

    python bench/search_latency.py [--config C] [--queries Q] [-n 100] [-m 30] [-r 3] [--json OUT]

Model loading is timed apart from opening the index. Text queries come from the dev set,
shuffled with a seed; image queries are catalog product photos standing in for shoppers'
photos, decoded before timing (an upload is decoded once, outside search). Each run clears
the query-embedding cache, warms up on 10 queries that are not measured, then times every
query once; the report is the median over runs of each run's p50 and p95.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from bijou.catalog.loader import catalog_sources, load_catalog
from bijou.catalog.schema import Product
from bijou.config import BijouConfig, load_config
from bijou.fusion.encoders import load_encoders
from bijou.metrics import percentile, read_queries
from bijou.retrieval.search import SearchEngine, SearchRequest

DEV_QUERIES = Path(__file__).resolve().parent.parent / "eval" / "dev" / "queries.jsonl"
WARMUPS = 10
TOP_K = 10


@dataclass(frozen=True)
class Latency:
    queries: int
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True)
class Report:
    model_load_s: float
    index_open_s: float
    text: Latency
    image: Latency
    peak_rss_mb: float
    current_rss_mb: float


def time_each(
    requests: Sequence[SearchRequest], search: Callable[[SearchRequest], object]
) -> list[float]:
    """Seconds per request, each run once."""
    timings = []
    for request in requests:
        start = time.perf_counter()
        search(request)
        timings.append(time.perf_counter() - start)
    return timings


def measure(
    engine: SearchEngine,
    warmups: Sequence[SearchRequest],
    requests: Sequence[SearchRequest],
    repeats: int,
    search: Callable[[SearchRequest], object] | None = None,
) -> Latency:
    """``search`` defaults to the engine's whole search (parse, rank, relax, read)."""
    search = search or engine.search.search
    p50s, p95s = [], []
    for _ in range(repeats):
        # Otherwise every run after the first times cache hits, not embedding + search.
        engine.search._embed_text.cache_clear()
        time_each(warmups, search)
        timings = time_each(requests, search)
        p50s.append(percentile(timings, 0.50) * 1000)
        p95s.append(percentile(timings, 0.95) * 1000)
    return Latency(len(requests), statistics.median(p50s), statistics.median(p95s))


def text_requests(path: Path, count: int, rng: random.Random) -> list[SearchRequest]:
    texts = [q.text for q in read_queries(path) if q.text]
    rng.shuffle(texts)
    return [SearchRequest(text, top_k=TOP_K) for text in texts[: WARMUPS + count]]


def photos(
    engine: SearchEngine, count: int, rng: random.Random
) -> list[tuple[Product, Image.Image]]:
    """``count`` catalog products with their decoded photos, drawn with ``rng``."""
    catalog, _ = catalog_sources(engine.config)
    products = [p for p in load_catalog(catalog).products if p.image]
    found: list[tuple[Product, Image.Image]] = []
    for product in rng.sample(products, min(len(products), 3 * count)):
        if len(found) == count:
            break
        if (photo := engine.store.load(product)) is not None:
            found.append((product, photo))
    return found


def image_requests(engine: SearchEngine, count: int, rng: random.Random) -> list[SearchRequest]:
    return [
        SearchRequest(image=photo, top_k=TOP_K) for _, photo in photos(engine, WARMUPS + count, rng)
    ]


def rss_mb() -> tuple[float, float]:
    """(peak, current) resident memory in MiB; Linux reports maxrss in KiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    current = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            current = int(line.split()[1]) / 1024
    return peak, current


def run(config: BijouConfig, queries: Path, n: int, m: int, repeats: int, seed: int) -> Report:
    start = time.perf_counter()
    encoders = load_encoders(config)
    model_load = time.perf_counter() - start
    start = time.perf_counter()
    engine = SearchEngine.load(config, encoders)
    index_open = time.perf_counter() - start
    if engine.index.manifest is None:
        raise SystemExit("the index is empty: run `bijou index` first")
    rng = random.Random(seed)
    texts = text_requests(queries, n, rng)
    images = image_requests(engine, m, rng)
    text = measure(engine, texts[:WARMUPS], texts[WARMUPS:], repeats)
    image = measure(engine, images[:WARMUPS], images[WARMUPS:], repeats)
    peak, current = rss_mb()
    return Report(model_load, index_open, text, image, peak, current)


def markdown(report: Report) -> str:
    rows = [
        ("model load", f"{report.model_load_s:.2f} s"),
        ("index open", f"{report.index_open_s:.2f} s"),
        (
            f"text search p50 / p95 ({report.text.queries} queries)",
            f"{report.text.p50_ms:.1f} / {report.text.p95_ms:.1f} ms",
        ),
        (
            f"image search p50 / p95 ({report.image.queries} queries)",
            f"{report.image.p50_ms:.1f} / {report.image.p95_ms:.1f} ms",
        ),
        ("peak RSS", f"{report.peak_rss_mb:.0f} MiB"),
        ("current RSS", f"{report.current_rss_mb:.0f} MiB"),
    ]
    return "\n".join(["| measure | value |", "|---|---:|", *(f"| {k} | {v} |" for k, v in rows)])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=None, help="default: $BIJOU_CONFIG")
    parser.add_argument("--queries", type=Path, default=DEV_QUERIES)
    parser.add_argument("-n", "--text-queries", type=int, default=100)
    parser.add_argument("-m", "--image-queries", type=int, default=30)
    parser.add_argument("-r", "--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    report = run(
        config, args.queries, args.text_queries, args.image_queries, args.repeats, args.seed
    )
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
