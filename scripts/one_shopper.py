"""One shopper's conversation against a running Bijou with several Agent replicas (run by
scripts/two_nodes.sh --postgres): which replica, on which node, answered each turn, and
whether the dialog state ("cheaper" than what was shown) and the cart carried over.

    python scripts/one_shopper.py --url http://127.0.0.1:8000 [--log var/two_nodes.log]

The replica of a turn is read from the Serve access log line that carries the turn's
x-request-id; the node of a replica from Ray's actor list.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

TURNS = [
    "gold earrings under 3000",
    "cheaper",
    "add the first one to my cart",
    "a watch for my father",
    "add the second one to my cart",
    "cheaper",
    "what is in my cart",
]


def reply_of(text: str) -> dict:
    for block in text.split("\n\n"):
        if block.startswith("event: reply"):
            return json.loads(block.split("data: ", 1)[1])
    raise RuntimeError(f"no reply in {text[:300]!r}")


def replica_nodes() -> dict[str, str]:
    """Agent replica id -> node id (first 8 characters)."""
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "ray"), "list", "actors", "--detail", "--format",
         "json", "--filter", "state=ALIVE", "--limit", "200"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = {}
    for actor in json.loads(listed.stdout):
        name = actor.get("name") or ""
        if "#Agent#" in name:
            found[name.rsplit("#", 1)[1]] = actor["node_id"][:8]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--log", type=Path, default=Path("var/two_nodes.log"))
    args = parser.parse_args()
    problems: list[str] = []
    turns = []
    with httpx.Client(base_url=args.url, timeout=600) as client:
        session = client.post("/v1/sessions", json={}).json()["session_id"]
        shown_prices: list[float] = []
        for message in TURNS:
            answer = client.post("/v1/chat", json={"session_id": session, "message": message})
            reply = reply_of(answer.text)
            prices = [p["price"] for p in reply["products"]]
            cheaper = message == "cheaper" and shown_prices and prices
            if cheaper and not all(price < min(shown_prices) for price in prices):
                problems.append(f"'cheaper' showed {prices}, not below {min(shown_prices)}")
            if prices:
                shown_prices = prices
            turns.append(
                {
                    "message": message,
                    "request": answer.headers.get("x-request-id", ""),
                    "products": len(reply["products"]),
                    "cart": [item["id"] for item in reply["cart"]],
                }
            )
        cart = [item["id"] for item in client.get(f"/v1/sessions/{session}/cart").json()["items"]]
    time.sleep(3)  # the access log reaches the driver's log a moment later
    log = args.log.read_text(errors="replace")
    nodes = replica_nodes()
    for turn in turns:
        found = re.search(rf"bijou_Agent (\w+) {re.escape(turn['request'])} -- CALL chat", log)
        turn["replica"] = found.group(1) if found else "?"
        turn["node"] = nodes.get(turn["replica"], "?")
    for n, turn in enumerate(turns, 1):
        print(
            f"turn {n}: replica {turn['replica']} on node {turn['node']}  "
            f"{turn['message']!r}: {turn['products']} products, cart {turn['cart']}"
        )
    print(f"cart at the end: {cart}")
    replicas = {t["replica"] for t in turns} - {"?"}
    used_nodes = {t["node"] for t in turns} - {"?"}
    print(f"{len(replicas)} Agent replicas on {len(used_nodes)} nodes answered this shopper")
    added = {item for t in turns if t["message"].startswith("add") for item in t["cart"]}
    if not added:
        problems.append("no cart addition was made")
    if not added <= set(cart):
        problems.append(f"the cart holds {cart}, not every addition {sorted(added)}")
    held: set[str] = set()
    for turn in turns:  # a reply names the cart on cart turns only
        if turn["cart"]:
            if not held <= set(turn["cart"]):
                problems.append(f"the cart lost {held - set(turn['cart'])}")
            held = set(turn["cart"])
    if len(used_nodes) < 2:
        problems.append("every turn landed on one node (routing is random: run it again)")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("state and cart carried over" if not problems else "FAILED")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
