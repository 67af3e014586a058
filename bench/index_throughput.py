"""Indexing throughput: products/s to encode (text + image + BM25) and upsert into a fresh
embedded index, model load excluded; the median of several runs, and peak memory.

    python bench/index_throughput.py [--catalog PATH] [--images PATH] [--limit 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

from bijou.catalog.loader import load_catalog
from bijou.config import BijouConfig
from bijou.fusion.encoders import load_encoders
from bijou.retrieval.search import SearchEngine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", type=Path, default=None, help="default: the bundled one")
    parser.add_argument("--images", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    base = {"catalog": {"path": args.catalog, "images": args.images}}
    config = BijouConfig.model_validate(base)
    encoders = load_encoders(config)
    products = load_catalog(args.catalog).products[: args.limit]
    rates = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            engine = SearchEngine.load(
                BijouConfig.model_validate({**base, "data_dir": tmp}), encoders
            )
            start = time.perf_counter()
            engine.sync(products)
            rates.append(len(products) / (time.perf_counter() - start))
            engine.index.close()
    result = {
        "products": len(products),
        "runs": [round(r, 1) for r in rates],
        "median_products_per_s": round(statistics.median(rates), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
