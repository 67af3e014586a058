"""Make synthetic product videos (zoom, pan or rotate over the product's still image) for demos,
tests and benchmarks: the catalog has no real product videos, so anything measured on these
clips measures synthetic video, and must say so.

    python scripts/make_demo_videos.py --catalog bijou/catalog/data/products.jsonl.gz \
        --out /tmp/demo --count 30 --seed 0

Writes OUT/videos/<id>.mp4 and OUT/products.jsonl (those products, ``video`` set, ``image``
unchanged: still relative to the source catalog's image store).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from bijou.catalog.loader import BUNDLED_CATALOG, load_catalog
from bijou.catalog.media import ImageDecodeError, MediaStore, decode_image
from bijou.catalog.schema import Product
from bijou.fusion.video import MOTIONS, make_clip


def pick(products: list[Product], count: int, seed: int) -> list[Product]:
    """Round-robin over articles (each shuffled with ``seed``) so every article is represented."""
    rng = random.Random(seed)
    by_article: dict[str, list[Product]] = defaultdict(list)
    for product in products:
        if product.image:
            by_article[product.article].append(product)
    queues = [by_article[article] for article in sorted(by_article)]
    for queue in queues:
        rng.shuffle(queue)
    chosen: list[Product] = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop())
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", type=Path, default=BUNDLED_CATALOG)
    parser.add_argument("--images", type=Path, help="image store (default: images.zip beside)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args(argv)

    images = args.images or args.catalog.parent / "images.zip"
    store = MediaStore(images if images.exists() else args.catalog.parent)
    products = load_catalog(args.catalog).products
    (args.out / "videos").mkdir(parents=True, exist_ok=True)
    written = skipped = 0
    with open(args.out / "products.jsonl", "w", encoding="utf-8") as out:
        # Pick spares so an unreadable image does not leave the output short.
        for product in pick(products, len(products), args.seed):
            if written == args.count:
                break
            data = store.read_bytes(product.image or "")
            try:
                still = decode_image(data) if data else None
            except ImageDecodeError:
                still = None
            if still is None:
                skipped += 1
                continue
            motion = MOTIONS[written % len(MOTIONS)]
            clip = make_clip(still, motion, args.seconds, args.fps, args.size)
            video = f"videos/{product.id}.mp4"
            (args.out / video).write_bytes(clip)
            row = product.model_dump() | {"video": video}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            written += 1
    print(
        f"{written} synthetic clips (zoom/pan/rotate of the product image, not real videos) "
        f"-> {args.out / 'products.jsonl'}; {skipped} products skipped (unreadable image)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
