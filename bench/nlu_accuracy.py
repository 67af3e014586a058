"""Field accuracy of each understanding candidate on the frozen NLU held-out set
(eval/nlu-holdout/messages.jsonl, labelled by a helper who did not read the code).

Candidates: cue rules only; the move classifier for every move; cues then the classifier
(hybrid); hybrid with the LLM as second opinion; and the LLM deciding every move. Fields
other than the move come from the same parser in every candidate. A field counts where the
label gives it; "spurious" counts fields the parser filled that the label leaves empty.

    python bench/nlu_accuracy.py [--llm-model qwen2.5-coder-0.5b] [--candidates rules,hybrid]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bijou.retrieval.query import QueryParser

HOLDOUT = Path(__file__).parents[1] / "eval" / "nlu-holdout" / "messages.jsonl"
FIELDS = (
    "move", "language", "script", "articles", "colours", "exclude_colours", "max_price",
    "min_price", "budget_total", "gender", "occasion", "ranks", "pick", "anchor", "attribute",
    "quantity",
)  # fmt: skip
_GENDER = {"Women": "women", "Men": "men", "Girls": "women", "Boys": "men"}


def context_of(note: str) -> Any:
    """ "3 earrings shown", "cart has 2 items" -> what the message may refer to."""
    from bijou.retrieval.lexicon import load_lexicon
    from bijou.retrieval.understanding import DialogContext

    lex = load_lexicon()
    shown = re.search(r"(\d+)\s+\w+(?:\s+\w+)?\s+shown", note)
    cart = re.search(r"cart has (\d+)", note)
    articles = tuple(v for _, term in lex.articles.find(note.lower()) for v in term.values)
    count = int(shown[1]) if shown else (1 if "shown" in note else 0)
    return DialogContext(
        shown=count,
        shown_articles=articles[:1] * count if articles else (),
        has_bundle="set" in note or "look" in note,
        cart=int(cart[1]) if cart else 0,
        category=articles[:1],
    )


def predicted(u: Any) -> dict[str, Any]:
    genders = {_GENDER[g] for g in u.filters.genders if g in _GENDER}
    anchor = None
    if u.anchor is not None:
        anchor = {"kind": u.anchor.kind}
        if u.anchor.kind == "described":
            anchor["article"] = u.anchor.articles[0] if u.anchor.articles else None
    return {
        "move": u.move.value,
        "language": u.language,
        "script": None if u.script == "latin" else u.script,
        "articles": sorted(u.filters.articles) or None,
        "colours": sorted(u.filters.colours) or None,
        "exclude_colours": sorted(u.filters.exclude_colours) or None,
        "max_price": u.filters.max_price,
        "min_price": u.filters.min_price,
        "budget_total": u.budget_total or None,
        "gender": genders.pop() if len(genders) == 1 else None,
        "occasion": list(u.filters.usages) or None,
        "ranks": list(u.ranks) or None,
        "pick": u.pick,
        "anchor": anchor,
        "attribute": u.attribute,
        "quantity": u.quantity if u.quantity > 1 else None,
    }


def right(field: str, label: Any, guess: Any) -> bool:
    if field in ("articles", "colours", "exclude_colours"):
        return sorted(label) == (guess or [])
    if field in ("max_price", "min_price"):
        return guess is not None and abs(float(label) - guess) < 1
    if field == "occasion":
        return guess is not None and label in guess
    if field == "anchor":
        if guess is None or guess["kind"] != label.get("kind"):
            return False
        return label.get("kind") != "described" or label.get("article") == guess.get("article")
    return label == guess


def guesses(understand: Any, rows: list[dict[str, Any]]) -> tuple[list[dict], list[float]]:
    out, times = [], []
    for row in rows:
        start = time.perf_counter()
        u = understand(row["text"], context_of(row["context"]))
        times.append(time.perf_counter() - start)
        out.append(predicted(u))
    return out, times


def score(guessed: list[dict[str, Any]], times: list[float], rows: list[dict]) -> dict[str, Any]:
    hits: dict[str, list[bool]] = defaultdict(list)
    spurious: dict[str, int] = defaultdict(int)
    moves: dict[str, list[bool]] = defaultdict(list)
    for row, guess in zip(rows, guessed, strict=True):
        labels = row["labels"]
        for field in FIELDS:
            if field in labels:
                ok = right(field, labels[field], guess[field])
                hits[field].append(ok)
                if field == "move":
                    moves[labels["move"]].append(ok)
            elif guess[field] not in (None, False) and field not in ("language",):
                spurious[field] += 1
    total = sum(len(v) for v in hits.values())
    correct = sum(sum(v) for v in hits.values())
    return {
        "fields_right": correct,
        "fields": total,
        "accuracy": round(correct / total, 4),
        "move_accuracy": round(statistics.fmean(hits["move"]), 4),
        "per_field": {f: round(statistics.fmean(v), 3) for f, v in hits.items()},
        "per_move": {m: f"{sum(v)}/{len(v)}" for m, v in sorted(moves.items())},
        "spurious": dict(spurious),
        "p50_ms": round(1000 * statistics.median(times), 2) if times else None,
        "p95_ms": round(1000 * sorted(times)[int(0.95 * (len(times) - 1))], 2) if times else None,
    }


def baseline_guesses(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Field guesses of the understanding before this suite existed (run with PYTHONPATH at
    that older tree, whose ``bijou.agent.turns.understand`` read the moves)."""
    from bijou.agent.turns import understand as old  # type: ignore[attr-defined]
    from bijou.understanding.state import DialogState

    parser = QueryParser()
    rename = {"bundle": "look", "unknown": "chat"}
    out = []
    for row in rows:
        shown = re.search(r"(\d+)\s+\w+(?:\s+\w+)?\s+shown", row["context"])
        o = old(row["text"], DialogState(shown=["x"] * (int(shown[1]) if shown else 0)), parser)
        f = o.parsed.filters
        genders = {_GENDER[g] for g in f.genders if g in _GENDER}
        out.append(
            {
                "move": rename.get(o.move.value, o.move.value),
                "language": o.language,
                "script": "hans" if o.language == "zh" else None,
                "articles": sorted(f.articles) or None,
                "colours": sorted(f.colours) or None,
                "exclude_colours": sorted(f.exclude_colours) or None,
                "max_price": f.max_price,
                "min_price": f.min_price,
                "budget_total": None,
                "gender": genders.pop() if len(genders) == 1 else None,
                "occasion": list(f.usages) or None,
                "ranks": list(o.ranks) or None,
                "pick": None,
                "anchor": None,
                "attribute": None,
                "quantity": o.quantity if o.quantity > 1 else None,
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", default="rules,classifier,hybrid")
    ap.add_argument("--llm-model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--out", type=Path, default=Path("var/bench/nlu_accuracy.json"))
    args = ap.parse_args()
    rows = [json.loads(line) for line in HOLDOUT.read_text(encoding="utf-8").splitlines()]
    parser = QueryParser()
    results: dict[str, Any] = {}
    for name in args.candidates.split(","):
        if name == "baseline":
            label = "baseline (before this work)"
            results[label] = score(baseline_guesses(rows), [], rows)
            _print(label, results[label])
            continue
        from bijou.retrieval.understanding import Move, Understander

        if name in ("hybrid+llm", "llm"):
            from bijou.agent.llm import load_chat_model
            from bijou.agent.opinion import LLMMoveOpinion
            from bijou.config import load_config

            config = load_config()
            config = config.model_copy(
                update={"llm": config.llm.model_copy(update={"model": args.llm_model})}
            )
            opinion = LLMMoveOpinion(load_chat_model(config), timeout_s=60)
            if name == "llm":
                base = Understander(parser, strategy="rules")

                def understand(text: str, ctx: Any, base: Any = base, ask: Any = opinion) -> Any:
                    u = base.understand(text, ctx)
                    move = ask(text, ctx) or u.move
                    return u.model_copy(update={"move": Move(move)})

            else:
                understand = Understander(
                    parser, strategy="hybrid", second_opinion=opinion
                ).understand
            label = f"{name} ({args.llm_model})"
        else:
            understand = Understander(parser, strategy=name).understand  # type: ignore[arg-type]
            label = name
        results[label] = score(*guesses(understand, rows), rows)
        _print(label, results[label])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"messages": len(rows), "results": results}, indent=2))
    print(f"wrote {args.out}")


def _print(label: str, r: dict[str, Any]) -> None:
    print(
        f"{label:32s} fields {r['fields_right']}/{r['fields']} ({r['accuracy']:.3f}) "
        f"move {r['move_accuracy']:.3f} p50 {r['p50_ms']} ms p95 {r['p95_ms']} ms"
    )


if __name__ == "__main__":
    main()
