"""Write the full 44k Myntra catalog from ../shared with each product's image path filled in
(the source file names no image; its zip holds ``images_60x80/<id>.jpg``), for the 44k
benchmarks: ``python bench/full_catalog.py ../shared/data/catalog var/full44k/products.jsonl.gz``
"""

from __future__ import annotations

import gzip
import json
import sys
import zipfile
from pathlib import Path


def main(source: Path, out: Path) -> None:
    with zipfile.ZipFile(source / "images_60x80.zip") as archive:
        names = set(archive.namelist())
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        gzip.open(source / "myntra_styles.jsonl.gz", "rt", encoding="utf-8") as rows,
        gzip.open(out, "wt", encoding="utf-8") as dst,
    ):
        for line in rows:
            row = json.loads(line)
            image = f"images_60x80/{row['id']}.jpg"
            row["image_path"] = image if image in names else None
            dst.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
