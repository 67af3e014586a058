"""Real shopper utterances for the move classifier, weakly labelled from their datasets' own
annotations: MGShopDial client turns (greetings, thanks, questions about products shown,
requests, purchase decisions) and Fashion-IQ relative captions, which are refinements of a
search ("is shorter and black"). Writes bijou/retrieval/training/real_utterances.jsonl.

    python scripts/extract_real_utterances.py ../shared/data/dialogs
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

OUT = Path(__file__).parents[1] / "bijou/retrieval/training/real_utterances.jsonl"
THANKS = re.compile(r"\b(thanks?|thank you|thx|cheers)\b", re.I)
GREETING = re.compile(r"^\W*(hi|hello|hey|good (morning|afternoon|evening))\b", re.I)
BUY = re.compile(
    r"\b(i'?ll (go for|take|buy|get)|basket|cart|put it in|make a order|order it)\b", re.I
)
WANT = re.compile(r"\b(looking for|i need|i want|searching for|do you have|would like)\b", re.I)


def mgshopdial(path: Path) -> list[dict[str, str]]:
    rows = []
    for dialog in json.loads(path.read_text(encoding="utf-8")):
        for turn in dialog["utterances"]:
            if turn["participant"] != "Client":
                continue
            text = " ".join(turn["utterance"].split())
            intents = {name for name, _ in turn["intents"]}
            move = None
            if THANKS.search(text) and len(text) < 60:
                move = "thanks"
            elif GREETING.search(text) and len(text) < 25:
                move = "greeting"
            elif BUY.search(text):
                move = "cart_add"
            elif turn["goal"] == "qa" and "o_question" in intents and "?" in text:
                move = "question"
            elif turn["goal"] == "recommendation" and WANT.search(text):
                move = "search"
            if move:
                rows.append({"text": text, "move": move, "source": "MGShopDial"})
    return rows


def fashion_iq(folder: Path, count: int, seed: int = 13) -> list[dict[str, str]]:
    captions = []
    for path in sorted(folder.glob("cap.*.train.json")):
        for item in json.loads(path.read_text(encoding="utf-8")):
            captions += [" ".join(c.split()) for c in item["captions"] if c.strip()]
    random.Random(seed).shuffle(captions)
    return [{"text": c, "move": "search", "source": "Fashion-IQ"} for c in captions[:count]]


def main(dialogs: Path) -> None:
    rows = mgshopdial(dialogs / "MGShopDial.json") + fashion_iq(
        dialogs / "fashion-iq/captions", 300
    )
    OUT.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    print(f"{len(rows)} utterances -> {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/dialogs"))
