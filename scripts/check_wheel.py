"""Build the wheel, install it alone into a fresh folder, and check that the installed
package (not this checkout) holds its data and serves the chat widget. CI runs it once.

    python scripts/check_wheel.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEEDED = (
    "bijou/web/bijou.js",
    "bijou/web/index.html",
    "bijou/retrieval/vocab/en.yaml",
    "bijou/retrieval/checkpoints/move_classifier.npz",
    "bijou/retrieval/checkpoints/compatibility.npz",
    "bijou/agent/templates.yaml",
    "bijou/agent/prompts.yaml",
    "bijou/catalog/data/products.jsonl.gz",
    "bijou/serve/serve.yaml",
    "bijou/serve/tryon.yaml",
)
PROBE = """
import sys
from pathlib import Path
import bijou
assert Path(bijou.__file__).resolve().is_relative_to(Path(sys.argv[1]).resolve()), bijou.__file__
from fastapi.testclient import TestClient
from bijou.config import BijouConfig
from bijou.serve.api import create_app
client = TestClient(create_app(BijouConfig(), lambda: None))
for path in ("/widget/bijou.js", "/"):
    response = client.get(path)
    assert response.status_code == 200 and response.content, (path, response.status_code)
print("the installed wheel serves the widget")
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dist, target = Path(tmp) / "dist", Path(tmp) / "site"
        pip = [sys.executable, "-m", "pip"]
        subprocess.run([*pip, "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)], check=True)
        wheel = next(dist.glob("bijou-*.whl"))
        import zipfile

        names = set(zipfile.ZipFile(wheel).namelist())
        missing = [n for n in NEEDED if n not in names]
        if missing:
            sys.exit(f"{wheel.name} lacks {missing}")
        subprocess.run(
            [*pip, "install", "--no-deps", "-q", "--target", str(target), str(wheel)], check=True
        )
        # The installed copy first on the path, the environment's dependencies after it.
        subprocess.run(
            [sys.executable, "-c", PROBE, str(target)],
            check=True,
            cwd=tmp,
            env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        )
        print(f"{wheel.name}: {len(names)} files, the data and the widget included")


if __name__ == "__main__":
    main()
