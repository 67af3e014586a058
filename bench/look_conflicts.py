"""How many catalog records disagree with themselves about their colour: the record's own
fields (title, attributes, colour field) and, apart, the photo against the record.

    python bench/look_conflicts.py [--catalog bijou/catalog/data/products.jsonl.gz] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from bijou.catalog.loader import catalog_sources, load_catalog
from bijou.catalog.media import MediaStore
from bijou.config import load_config
from bijou.retrieval.look import image_colours, look_of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=Path("var/bench/look_conflicts.json"))
    ap.add_argument("--examples", type=int, default=12)
    args = ap.parse_args()
    config = load_config()
    products, images = catalog_sources(config)
    catalog = load_catalog(products)
    store = MediaStore(images)
    record = photo = 0
    by_article: Counter[str] = Counter()
    examples = []
    for product in catalog.products:
        image = store.load(product)
        seen = image_colours(image) if image is not None else ()
        look = look_of(product, seen)
        own = [c for c in look.conflicts if not c.startswith("the image")]
        record += bool(own)
        photo += any(c.startswith("the image") for c in look.conflicts)
        if own:
            by_article[product.article] += 1
            if len(examples) < args.examples:
                examples.append(f"{product.title} | colour {product.colour} | {own[0]}")
    total = len(catalog.products)
    result = {
        "products": total,
        "record_conflicts": record,
        "record_conflict_share": round(record / total, 4),
        "photo_disagreements": photo,
        "photo_disagreement_share": round(photo / total, 4),
        "record_conflicts_by_article": dict(by_article.most_common(12)),
        "examples": examples,
    }
    print(json.dumps(result, indent=2, ensure_ascii=False))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
