"""Indexing throughput: products/s to encode (text + image + BM25) and upsert into a fresh
embedded index; the median of several runs, and peak memory.

    python bench/index_throughput.py [--catalog PATH] [--images PATH] [--limit 1000] [--runs 3]
                                     [--engines local ray:1 ray:2] [--json OUT]

``local`` is the one-process build (models loaded once beforehand, excluded); ``ray:N`` is
the Ray Data build with N encoder actors (`indexing.engine: ray`). Ray itself is started
once before the runs, but each run's actors load their encoders inside the timed build, as
every real build does. Every engine is measured in the same invocation, so the ratios to
``local`` compare runs on the same (possibly shared) machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from bijou.catalog.loader import load_catalog
from bijou.config import BijouConfig
from bijou.fusion.encoders import load_encoders
from bijou.retrieval.search import SearchEngine


def engine_config(base: dict, engine: str, data_dir: str) -> BijouConfig:
    kind, _, workers = engine.partition(":")
    indexing = {"engine": kind, "workers": int(workers or 1)}
    return BijouConfig.model_validate({**base, "data_dir": data_dir, "indexing": indexing})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", type=Path, default=None, help="default: the bundled one")
    parser.add_argument("--images", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engines", nargs="+", default=["local"], help="local, ray:N")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    # Encoding is what is measured: the vectors shipped for the bundled catalog are not reused.
    base = {
        "catalog": {"path": args.catalog, "images": args.images},
        "index": {"shipped_vectors": False},
    }
    encoders = load_encoders(BijouConfig.model_validate(base))
    products = load_catalog(args.catalog).products[: args.limit]
    if any(e.startswith("ray") for e in args.engines):
        import ray

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(include_dashboard=False, logging_level="ERROR", object_store_memory=500_000_000)
    rates: dict[str, list[float]] = {engine: [] for engine in args.engines}
    for _ in range(args.runs):
        for engine_name in args.engines:  # interleaved: a burst of load hits every engine
            with tempfile.TemporaryDirectory() as tmp:
                engine = SearchEngine.load(engine_config(base, engine_name, tmp), encoders)
                start = time.perf_counter()
                engine.sync(products)
                rates[engine_name].append(len(products) / (time.perf_counter() - start))
                engine.index.close()
    medians = {name: statistics.median(r) for name, r in rates.items()}
    baseline = medians.get("local")
    result = {
        "products": len(products),
        "cpus": os.cpu_count(),
        "engines": {
            name: {
                "runs": [round(r, 1) for r in rates[name]],
                "median_products_per_s": round(medians[name], 1),
                "vs_local": round(medians[name] / baseline, 2) if baseline else None,
            }
            for name in args.engines
        },
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
