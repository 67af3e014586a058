"""Train every fusion model on the same data and compare them with single modalities on the
test split (products never seen in training), plus the cost of fusing one product or query.

    python bench/fusion_compare.py [--epochs 20] [--videos var/demo_videos/products.jsonl]
                                   [--save-dir DIR] [--json OUT]

With --videos, the products listed there carry synthetic clips (zoom/pan/rotate of their own
photo: the catalog has no real videos) and a "with video" row is added: the best model
retrained with video, evaluated with the clips and with video masked out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import numpy as np

from bijou.config import load_config
from bijou.fusion.encoders import load_encoders
from bijou.fusion.models import MODELS, Fuser, FusionCheckpoint, FusionConfig, FusionModel
from bijou.fusion.train_fusion import (
    FusionData,
    FusionTrainOptions,
    catalog_data,
    compare,
    metrics_table,
    split_rows,
    train_fusion,
)


def fuse_latency_ms(model: FusionModel, data: FusionData, rows: np.ndarray) -> tuple[float, float]:
    """Median single-item time to fuse one product (all its modalities) and one text query."""
    fuser = Fuser(FusionCheckpoint.of(model, {}, {}, 0))
    product_times, query_times = [], []
    for i in rows[:200]:
        start = time.perf_counter()
        fuser.products(data.text[i : i + 1], data.image[i : i + 1], data.has_image[i : i + 1],
                       data.video[i : i + 1], data.frames[i : i + 1])  # fmt: skip
        product_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        fuser.query(data.queries["title"][i], None)
        query_times.append(time.perf_counter() - start)
    return statistics.median(product_times) * 1000, statistics.median(query_times) * 1000


def without_video(data: FusionData) -> FusionData:
    return dataclasses.replace(data, frames=np.zeros_like(data.frames))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--videos", type=Path, default=None)
    parser.add_argument("--save-dir", type=Path, default=None, help="keep each checkpoint here")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    config = load_config(args.config)
    data = catalog_data(config, load_encoders(config), args.videos)
    options = FusionTrainOptions(epochs=args.epochs, seed=config.seed)
    test = split_rows(data, options, "test")
    plain = without_video(data)

    trained: dict[str, FusionModel] = {}
    latency: dict[str, tuple[float, float]] = {}
    for kind in MODELS:
        start = time.perf_counter()
        model, _ = train_fusion(plain, FusionConfig(kind=kind), options)
        print(f"{kind}: trained in {time.perf_counter() - start:.0f} s", flush=True)
        trained[kind] = model
        latency[kind] = fuse_latency_ms(model, plain, test)
        if args.save_dir:
            FusionCheckpoint.of(model, {}, {}, config.seed).save(
                args.save_dir / f"fusion_{kind}.pt"
            )
    systems = compare(plain, trained, test)
    best = max(MODELS, key=lambda k: systems[k]["all"].ndcg)
    if args.videos:
        model, _ = train_fusion(data, FusionConfig(kind=best), options)
        with_clips = compare(data, {f"{best} + video": model}, test)
        masked = compare(plain, {f"{best} + video, video masked": model}, test)
        systems |= {k: v for k, v in (with_clips | masked).items() if "video" in k}
    print(metrics_table(systems))
    print("\n| model | fuse one product (ms) | fuse one query (ms) |\n|---|---:|---:|")
    for kind, (p_ms, q_ms) in latency.items():
        print(f"| {kind} | {p_ms:.2f} | {q_ms:.2f} |")
    if args.json:
        out = {
            name: {k: dataclasses.asdict(m) for k, m in r.items()} for name, r in systems.items()
        }
        args.json.write_text(json.dumps({"systems": out, "latency_ms": latency}, indent=2))


if __name__ == "__main__":
    main()
