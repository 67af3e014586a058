"""Writes the hostile corpus' binary files (decompression bombs, broken images, odd audio, a
renamed video, invalid UTF-8) next to tests/data/hostile/cases.yaml; git keeps only the
cases. The tests and bench/hostile.py call the same writer.

    python scripts/make_hostile_corpus.py [folder]
"""

from __future__ import annotations

import sys
from pathlib import Path

from bijou.eval.hostile import write_files

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "hostile"

if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS
    print(f"{write_files(folder)} files in {folder}")
