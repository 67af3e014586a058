"""Rebuild the bundled demo catalog from the shared Myntra data (run once; output is committed).

python scripts/bundle_catalog.py ../shared/data/catalog
"""

from __future__ import annotations

import gzip
import json
import sys
import zipfile
from pathlib import Path

from bijou.catalog.loader import BUNDLED_CATALOG, BUNDLED_IMAGES, load_catalog


def main(source: Path) -> None:
    loaded = load_catalog(source / "jewelry_adjacent.jsonl.gz")
    print(loaded.summary(), *loaded.errors, sep="\n")
    BUNDLED_CATALOG.parent.mkdir(parents=True, exist_ok=True)
    with (
        zipfile.ZipFile(source / "images_60x80.zip") as src,
        zipfile.ZipFile(BUNDLED_IMAGES, "w", compression=zipfile.ZIP_STORED) as dst,
        gzip.open(BUNDLED_CATALOG, "wt", encoding="utf-8", compresslevel=9) as out,
    ):
        names = set(src.namelist())
        for product in loaded.products:
            row = product.model_dump()
            if product.image and product.image in names:
                row["image"] = f"images/{product.id}.jpg"
                dst.writestr(row["image"], src.read(product.image))
            else:
                row["image"] = None
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
