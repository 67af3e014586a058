"""The catalog scale curve: search latency, memory, index size and build time of the embedded
engine from the bundled 11.6k products to a million synthetic ones.

    python bench/scale_curve.py [--sizes 11627 100000 300000 1000000] [--root var/scale]
                                [-r 3] [--json docs/scale_curve.json] [--plot docs/scale_curve.png]

For every size a synthetic catalog (bench/synthetic_catalog.py) is written into its own
embedded index under ``root/<size>`` (once; kept for later runs) and then searched in a fresh
process, so each size's peak RSS is its own. The bundled catalog's real index (``var/``),
copied and optimised the same way, is the baseline row every ratio is taken against.

Query kinds, each timed like bench/search_latency.py (query cache cleared, 10 warm-ups, every
query once, median over runs of each run's p50 and p95):

- text, filtered: the dev queries through the whole search (every one of them names an
  article, a colour or a budget, so each runs with hard filters, and relaxes them when too
  few products match);
- text, unfiltered: the same queries' search text ranked by the same three lists (BM25,
  dense text, text-to-image) over the whole index with no filter, the top 10 read: the
  engine's cost when nothing narrows a query;
- photo, unfiltered: catalog photos standing in for shoppers' photos;
- photo, filtered: the same photos, limited to the photographed article and 1.5x its price
  (what the agent asks after a photo and "cheaper")."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from search_latency import DEV_QUERIES, TOP_K, WARMUPS, measure, photos, rss_mb, text_requests
from synthetic_catalog import MemoryWatch, directory_bytes

from bijou.catalog.schema import Product
from bijou.config import BijouConfig, IndexConfig
from bijou.retrieval.index import ProductIndex, VectorQuery
from bijou.retrieval.query import QueryFilters
from bijou.retrieval.search import SearchEngine, SearchRequest, rrf

HERE = Path(__file__).resolve().parent
BASELINE = "bundled"
KINDS = ("text_filtered", "text_unfiltered", "photo_unfiltered", "photo_filtered")


def prepare_baseline(source: Path, out: Path) -> dict:
    """The real index, copied and optimised (the engine never optimises on its own)."""
    if out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    shutil.copytree(source / "index", out / "index", ignore=shutil.ignore_patterns(".lock"))
    index = ProductIndex.open(IndexConfig(), out / "index")
    try:
        index.optimize()
        count = index.count()
    finally:
        index.close()
    peak, _ = rss_mb()
    return {
        "size": count,
        "optimize_s": round(time.perf_counter() - start, 1),
        "index_bytes": directory_bytes(out / "index"),
        "build_peak_rss_mb": round(peak),
    }


def build(size: int, root: Path, source: Path, on_disk: bool) -> dict:
    """The size's index (built once, then reused) and what building it cost."""
    report_path = root / str(size) / "build.json"
    if report_path.is_file():
        return json.loads(report_path.read_text())
    command = [sys.executable, str(HERE / "synthetic_catalog.py"), "--size", str(size),
               "--out", str(root / str(size)), "--source", str(source)]  # fmt: skip
    command += ["--on-disk"] if on_disk else []
    start = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    report = json.loads(done.stdout)
    report["wall_s"] = round(time.perf_counter() - start, 1)
    report_path.write_text(json.dumps(report, indent=2))
    return report


def search_requests(
    engine: SearchEngine, count: int, rng: random.Random
) -> dict[str, list[SearchRequest]]:
    texts = text_requests(DEV_QUERIES, count, rng)
    by_kind = {"text_filtered": texts, "text_unfiltered": texts}
    shots = photos(engine, WARMUPS + count, rng)
    by_kind["photo_unfiltered"] = [SearchRequest(image=p, top_k=TOP_K) for _, p in shots]
    by_kind["photo_filtered"] = [
        SearchRequest(
            image=photo,
            top_k=TOP_K,
            filters=QueryFilters(articles=(product.article,), max_price=1.5 * product.price),
        )
        for product, photo in shots
    ]
    return {kind: requests[: WARMUPS + count] for kind, requests in by_kind.items()}


def unfiltered(engine: SearchEngine, request: SearchRequest) -> list[Product]:
    """The hybrid ranked lists of a query's search text over the whole index, no filter."""
    parsed = engine.search.parser.parse(request.text)
    text = parsed.search_text or parsed.raw
    vector = engine.search._embed_text(text)  # cached like search's own; measure clears it
    limit = engine.config.search.prefetch_limit
    queries = [VectorQuery("text", vector, limit=limit), VectorQuery("image", vector, limit=limit)]
    sparse = engine.search.sparse.query(text)
    if sparse.indices:
        queries.append(VectorQuery("bm25", sparse, limit=limit))
    fused = rrf([(1.0, hits) for hits in engine.index.search(queries)], engine.config.search.rrf_k)
    return engine.index.get_many([pid for pid, _ in fused[:TOP_K]])


def search(data_dir: Path, count: int, repeats: int, seed: int) -> dict:
    """Latency per query kind and peak memory of one process searching ``data_dir``."""
    with MemoryWatch() as watch:
        report = _search(data_dir, count, repeats, seed)
    return {**report, "peak_anon_mb": round(watch.peak_anon_mb)}


def _search(data_dir: Path, count: int, repeats: int, seed: int) -> dict:
    config = BijouConfig.model_validate({"data_dir": data_dir})
    start = time.perf_counter()
    engine = SearchEngine.load(config)
    load_s = time.perf_counter() - start
    requests = search_requests(engine, count, random.Random(seed))
    report: dict = {"products": engine.index.count(), "load_s": round(load_s, 2)}
    for kind in KINDS:
        chosen = requests[kind]
        run = (lambda r: unfiltered(engine, r)) if kind == "text_unfiltered" else None
        report[kind] = asdict(measure(engine, chosen[:WARMUPS], chosen[WARMUPS:], repeats, run))
    peak, current = rss_mb()
    engine.index.close()
    return {**report, "peak_rss_mb": round(peak), "current_rss_mb": round(current)}


def search_in_subprocess(data_dir: Path, count: int, repeats: int, seed: int) -> dict:
    command = [sys.executable, __file__, "--search-only", str(data_dir), "-n", str(count),
               "-r", str(repeats), "--seed", str(seed)]  # fmt: skip
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(rows: Sequence[dict]) -> str:
    base = rows[0]

    def ms(row: dict, kind: str) -> str:
        return f"{row[kind]['p50_ms']:.1f} / {row[kind]['p95_ms']:.1f}"

    def memory(peak_mb: int, anon_mb: int | None) -> str:
        """Peak RSS; with the anonymous part where measured (the rest is mapped files)."""
        return f"{peak_mb:,} MiB" + (f" ({anon_mb:,} anon)" if anon_mb is not None else "")

    def ratio(row: dict, kind: str) -> str:
        return f"{row['search'][kind]['p95_ms'] / base['search'][kind]['p95_ms']:.1f}x"

    header = (
        "| catalog | products | text filtered p50 / p95 ms | text unfiltered | photo unfiltered | "
        "photo filtered | p95 vs bundled (text f / u, photo u / f) | search peak RSS | "
        "index on disk | build (write + optimise) | build peak RSS |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        b = row["build"]
        build_s = b.get("write_s", 0.0) + b["optimize_s"]
        build = f"{build_s:,.0f} s ({b.get('write_s', 0.0):,.0f} + {b['optimize_s']:,.0f})"
        ratios = " / ".join(ratio(row, k) for k in KINDS)
        lines.append(
            f"| {row['name']} | {row['search']['products']:,} | "
            + " | ".join(ms(row["search"], k) for k in KINDS)
            + f" | {ratios if row is not base else '1.0x'} | "
            f"{memory(row['search']['peak_rss_mb'], row['search'].get('peak_anon_mb'))} | "
            f"{b['index_bytes'] / 2**20:,.0f} MiB{' (vectors on disk)' if b.get('on_disk') else ''}"
            f" | {build} | {memory(b['build_peak_rss_mb'], b.get('build_peak_anon_mb'))} |"
        )
    return "\n".join(lines)


def plot(rows: Sequence[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [row["search"]["products"] for row in rows]
    fig, (latency, memory) = plt.subplots(1, 2, figsize=(11, 4.2))
    for kind in KINDS:
        latency.plot(sizes, [r["search"][kind]["p95_ms"] for r in rows], "o-", label=kind)
    latency.set(xscale="log", xlabel="products", ylabel="search p95 (ms)",
                title="Search p95, embedded engine")  # fmt: skip
    latency.legend(fontsize=8)
    latency.grid(True, which="both", alpha=0.3)
    memory.plot(
        sizes, [r["search"]["peak_rss_mb"] / 1024 for r in rows], "o-", label="search peak RSS"
    )
    memory.plot(
        sizes, [r["build"]["build_peak_rss_mb"] / 1024 for r in rows], "s--", label="build peak RSS"
    )
    memory.plot(
        sizes, [r["build"]["index_bytes"] / 2**30 for r in rows], "^:", label="index on disk"
    )
    # Where measured: the anonymous part alone (the rest is index files mapped in, which
    # the kernel can drop).
    for part, key, mark in (("search", "peak_anon_mb", "o"), ("build", "build_peak_anon_mb", "s")):
        held = [(n, r[part][key] / 1024) for n, r in zip(sizes, rows, strict=True)
                if key in r[part]]  # fmt: skip
        if held:
            memory.plot(*zip(*held, strict=True), mark, mfc="none", ms=9, label=f"{part} peak anon")
    memory.set(xscale="log", xlabel="products", ylabel="GiB", title="Memory and disk")
    memory.legend(fontsize=8)
    memory.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[11627, 100_000, 300_000, 1_000_000]
    )
    parser.add_argument("--root", type=Path, default=Path("var/scale"))
    parser.add_argument(
        "--source", type=Path, default=Path("var"), help="data dir of the real index"
    )
    parser.add_argument("-n", "--queries", type=int, default=60, help="per query kind")
    parser.add_argument("-r", "--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--on-disk-from",
        type=int,
        default=1_000_000,
        help="sizes from this one up are built with index.on_disk (memory-mapped vectors)",
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--search-only", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--from-json", type=Path, default=None, help="table and plot of an earlier run's --json"
    )
    args = parser.parse_args(argv)
    if args.from_json is not None:
        rows = json.loads(args.from_json.read_text())
        print(markdown(rows))
        if args.plot:
            plot(rows, args.plot)
        return
    if args.search_only is not None:
        print(json.dumps(search(args.search_only, args.queries, args.repeats, args.seed)))
        return
    args.root.mkdir(parents=True, exist_ok=True)
    baseline_dir = args.root / BASELINE
    baseline = prepare_baseline(args.source, baseline_dir)
    found = search_in_subprocess(baseline_dir, args.queries, args.repeats, args.seed)
    rows = [{"name": "bundled (real)", "build": baseline, "search": found}]
    for size in args.sizes:
        built = build(size, args.root, args.source, size >= args.on_disk_from)
        found = search_in_subprocess(args.root / str(size), args.queries, args.repeats, args.seed)
        rows.append({"name": f"synthetic {size:,}", "build": built, "search": found})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        if args.json:  # after every size: a long run that is stopped keeps what it measured
            args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(markdown(rows))
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
