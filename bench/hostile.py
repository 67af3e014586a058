"""Replays the hostile corpus (tests/data/hostile) against a running Bijou server and reports
what it answered: the share of expected refusals that were a 4xx with a clear `detail`
(target 100%), 5xx answers and crashes (target 0), per family.

    python bench/hostile.py [--url http://127.0.0.1:8000] [--admin-key KEY] [--json OUT]

The server needs the rate limits off or raised (one client sends every case):
BIJOU__SERVE__RATE_LIMIT__ENABLED=false; and an admin key for the upsert cases
(BIJOU__SERVE__ADMIN_API_KEY=...), or they are refused as unauthorised.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path

import httpx

from bijou.eval.hostile import Replayer, load_cases, summary, write_files

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "hostile"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--admin-key", default=os.environ.get("BIJOU__SERVE__ADMIN_API_KEY"))
    parser.add_argument("--json", type=Path, help="write the summary and every outcome here")
    args = parser.parse_args()
    write_files(CORPUS)
    cases = load_cases(CORPUS)
    with httpx.Client(base_url=args.url, timeout=300) as client:
        outcomes = Replayer(client, CORPUS, args.admin_key).run(cases)
    result = summary(outcomes)
    by_family = Counter(o.family for o in outcomes)
    failed_by_family = Counter(o.family for o in outcomes if not o.ok)
    for outcome in outcomes:
        mark = "ok  " if outcome.ok else "FAIL"
        print(f"{mark} {outcome.status} {outcome.seconds:6.2f}s  {outcome.family:9} {outcome.case}")
        for problem in outcome.problems:
            print(f"       {problem}")
    print()
    for family, count in sorted(by_family.items()):
        print(f"{family:10} {count - failed_by_family[family]}/{count} ok")
    print(json.dumps({k: v for k, v in result.items() if k != "failed"}, indent=2))
    if args.json:
        detail = [o.__dict__ | {"ok": o.ok} for o in outcomes]
        args.json.write_text(json.dumps({"summary": result, "outcomes": detail}, indent=2))


if __name__ == "__main__":
    main()
