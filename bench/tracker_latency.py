"""What the dialog state tracker costs per message, by strategy, on the corpus's test authors.

    python bench/tracker_latency.py [-r 3]

Each run reads every test-author dialog through `StateTracker.track` (the understanding
included: parser, cues, move classifier) after one unmeasured warm-up dialog. The report is
the median over runs of each run's p50 and p95 per message, and the model file's load time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from bijou.config import TrackerStrategy
from bijou.eval import dst
from bijou.metrics import percentile
from bijou.understanding.learned import load_tracker_model
from bijou.understanding.state import DialogState
from bijou.understanding.tracker import StateTracker, TrackerOptions

CORPUS = Path(__file__).resolve().parents[1] / "eval" / "dst-corpus"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-r", "--repeats", type=int, default=3)
    args = parser.parse_args()
    dialogs = dst.load_corpus(CORPUS, dst.load_split(CORPUS).test)
    understander = dst.catalog_understander()
    start = time.perf_counter()
    model = load_tracker_model()
    print(f"model load: {(time.perf_counter() - start) * 1000:.0f} ms")
    strategies: tuple[TrackerStrategy, ...] = ("rules", "learned", "combined")
    for strategy in strategies:
        tracker = StateTracker(understander, TrackerOptions(strategy=strategy), model)
        first = dialogs[0]
        tracker.track([t.user for t in first.turns], list(first.contexts()))  # warm-up
        p50s, p95s = [], []
        for _ in range(args.repeats):
            per_message = []
            for dialog in dialogs:
                state = DialogState()
                for turn, context in zip(dialog.turns, dialog.contexts(), strict=True):
                    began = time.perf_counter()
                    state = tracker.step(state, turn.user, context).state
                    per_message.append((time.perf_counter() - began) * 1000)
            p50s.append(percentile(per_message, 0.5) or 0.0)
            p95s.append(percentile(per_message, 0.95) or 0.0)
        print(
            f"{strategy:9s} messages {len(per_message)}  p50 {statistics.median(p50s):.2f} ms"
            f"  p95 {statistics.median(p95s):.2f} ms"
        )


if __name__ == "__main__":
    main()
