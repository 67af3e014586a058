"""First-run time on a fresh clone, install excluded: from `bijou serve` on an empty data
directory to the app ready (/readyz 200) and its first chat answer.

    python bench/first_run.py [--repo .] [-r 1] [--port 8765] [--json OUT]

Clones the repository's HEAD into a temporary folder (so only committed files count: the
shipped vectors must be in the commit), points $BIJOU_HOME at an empty folder and runs the
clone's own code (PYTHONPATH) with the installed environment. Also times `bijou index`
alone (index ready, models loaded) on its own empty folder. The LLM's model file is
assembled from its packages into the new data directory, as on a shop's first run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def _env(clone: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIJOU")}
    return {**env, "PYTHONPATH": str(clone), "BIJOU_HOME": str(home), "HF_HUB_OFFLINE": "1"}


def time_index(clone: Path, home: Path) -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "bijou.cli", "index"], cwd=clone,
                   env=_env(clone, home), check=True)  # fmt: skip
    return time.monotonic() - start


def _get(url: str, body: dict | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except OSError:
        return 0, b""


def time_serve(clone: Path, home: Path, port: int, limit_s: float = 1800) -> dict[str, float]:
    start = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "bijou.cli", "serve", "--port", str(port)],
        cwd=clone, env=_env(clone, home), start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        while _get(f"{base}/readyz")[0] != 200:
            if process.poll() is not None:
                raise RuntimeError(f"bijou serve exited with {process.returncode}")
            if time.monotonic() - start > limit_s:
                raise TimeoutError("not ready in time")
            time.sleep(1.0)
        ready = time.monotonic() - start
        question = {"messages": [{"role": "user", "content": "silver earrings under 1000"}]}
        status, _ = _get(f"{base}/v1/chat/completions", question, timeout=300)
        answered = time.monotonic() - start
        if status != 200:
            raise RuntimeError(f"the first chat answer failed: {status}")
        return {"ready_s": ready, "first_answer_s": answered}
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("-r", "--repeats", type=int, default=1)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--skip-serve", action="store_true", help="time `bijou index` only")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bijou-first-run-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", "--no-local", str(args.repo), str(clone)], check=True)
        for n in range(args.repeats):
            run = {"index_s": time_index(clone, Path(tmp) / f"home-index-{n}")}
            if not args.skip_serve:
                run |= time_serve(clone, Path(tmp) / f"home-serve-{n}", args.port)
            shutil.rmtree(Path(tmp) / f"home-index-{n}", ignore_errors=True)
            shutil.rmtree(Path(tmp) / f"home-serve-{n}", ignore_errors=True)
            print(json.dumps(run), flush=True)
            runs.append(run)
    summary = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print("median:", json.dumps({k: round(v, 1) for k, v in summary.items()}))
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "median": summary}, indent=2))


if __name__ == "__main__":
    main()
