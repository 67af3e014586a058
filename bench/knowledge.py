"""Shop-knowledge answers on a question set: the share of answerable questions answered from
the right document, and the share of unanswerable ones declined.

    python bench/knowledge.py eval/knowledge/dev.jsonl [--config C] [--json OUT]

Each line: {"id", "question", "source": "<file>.md" or null (the documents do not say)}. An
answerable question counts when the first section quoted comes from its source; an
unanswerable one when nothing is quoted. A held-out set is scored once, as frozen.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bijou.config import load_config
from bijou.fusion.text import load_text_encoder
from bijou.retrieval.knowledge import ShopKnowledge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", type=Path)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--json", type=Path, help="write per-question results here")
    args = parser.parse_args()
    rows = [json.loads(ln) for ln in args.questions.read_text().splitlines() if ln.strip()]
    config = load_config(args.config)
    knowledge = ShopKnowledge.open(config, load_text_encoder(config))
    results = []
    try:
        for row in rows:
            answer = knowledge.answer(row["question"])
            got = answer.passages[0].source if answer.answered else None
            score = answer.passages[0].score if answer.answered else None
            results.append({**row, "got": got, "score": score, "ok": got == row["source"]})
    finally:
        knowledge.close()
    answerable = [r for r in results if r["source"]]
    unanswerable = [r for r in results if not r["source"]]
    for r in results:
        mark = "ok  " if r["ok"] else "MISS"
        print(f"{mark} {r['id']}: {r['question']!r} -> {r['got']} (want {r['source']})")
    answered = sum(r["ok"] for r in answerable)
    declined = sum(r["ok"] for r in unanswerable)
    print(f"answered correctly with the right source: {answered}/{len(answerable)}")
    print(f"correctly declined: {declined}/{len(unanswerable)}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
