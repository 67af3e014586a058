"""Compatibility on held-out stylist-note pairs: which method best finds what a note says
goes with its product.

For the test split's notes (products never seen in training) that name another article:
- category: among products of every other article (gender-compatible with the anchor), the
  named article's products are the relevant ones: AUC and precision@10;
- colour: among the named article's products, those of the named colour (when the note
  names one) are the relevant ones: AUC and recall@10.
Methods: rules (colour and metal harmony, occasion, gender, price tier, the mined pairings),
raw cosine of the text vectors, raw cosine of the fused vectors, and the trained model.

    python bench/compatibility.py [--config C] [--train] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bijou.config import load_config
from bijou.retrieval import compatibility as cm
from bijou.retrieval.complements import PairingTable, compatible_genders
from bijou.retrieval.look import look_of
from bijou.retrieval.search import SearchEngine

K = 10
Scorer = Callable[[int, list[int]], np.ndarray]


def auc(scores: np.ndarray, relevant: np.ndarray) -> float | None:
    pos, neg = scores[relevant], scores[~relevant]
    if not len(pos) or not len(neg):
        return None
    # Mann-Whitney: the chance a relevant item outscores an irrelevant one (ties count half).
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path)
    ap.add_argument("--train", action="store_true", help="train the model first (and save)")
    ap.add_argument("--json", type=Path, default=Path("var/bench/compatibility.json"))
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    config = load_config(args.config)
    engine = SearchEngine.load(config)
    products = engine.index.get_many(sorted(engine.index.fingerprints()))
    vectors = cm.product_vectors(engine, products)
    texts = np.stack(
        [v["text"] for v in engine.index.vectors([p.id for p in products], ["text"]).values()]
    )
    split = cm.split_products(products, args.seed)
    if args.train:
        model = cm.train(products, vectors, split, seed=args.seed)
        model.save(cm.CHECKPOINT)
    model = cm.load_compatibility.__wrapped__(cm.CHECKPOINT)
    pairings = PairingTable.mine([p for p in products if split[p.id] == "train"])
    row = {p.id: i for i, p in enumerate(products)}

    def normalise(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)

    fused, text = normalise(vectors), normalise(texts)

    def rules(a: int, cands: list[int]) -> np.ndarray:
        anchor = products[a]
        return np.array(
            [
                cm.rule_score(anchor, products[c])
                + pairings.score(anchor.article, products[c].article)
                for c in cands
            ]
        )

    def cosine(matrix: np.ndarray) -> Scorer:
        return lambda a, cands: matrix[cands] @ matrix[a]

    def learned(a: int, cands: list[int]) -> np.ndarray:
        anchor = products[a]
        return np.concatenate(
            [
                model.score(vectors[a], anchor.article, vectors[[c]], products[c].article)
                for c in cands
            ]
        )

    methods: dict[str, Scorer] = {
        "rules": rules,
        "cosine (text)": cosine(text),
        "cosine (fused)": cosine(fused),
    }
    if model is not None:
        methods["type-aware model"] = learned

        def combined(a: int, cands: list[int]) -> np.ndarray:
            return rules(a, cands) + learned(a, cands)

        methods["rules + model"] = combined
    rng = random.Random(args.seed)
    test = [p for p in products if split[p.id] == "test"]
    pairs = cm.note_pairs(test)
    by_article: dict[str, list[int]] = {}
    for i, p in enumerate(products):
        by_article.setdefault(p.article, []).append(i)
    results: dict[str, dict[str, float | int]] = {}
    for name, score in methods.items():
        cat_auc, cat_p10, col_auc, col_r10 = [], [], [], []
        for pair in pairs:
            a = row[pair.anchor_id]
            anchor = products[a]
            genders = compatible_genders(anchor.gender)
            fits = [i for i, p in enumerate(products) if not genders or p.gender in genders]
            own = cm.group_of(anchor.article)
            others = [i for i in fits if cm.group_of(products[i].article) != own]
            cands = rng.sample(others, min(400, len(others)))
            relevant = np.array([products[c].article == pair.article for c in cands])
            if relevant.any():
                s = score(a, cands)
                value = auc(s, relevant)
                if value is not None:
                    cat_auc.append(value)
                top = np.argsort(-s)[:K]
                cat_p10.append(float(relevant[top].mean()))
            if pair.colours:
                pool = [i for i in by_article.get(pair.article, []) if i in set(fits)]
                rel = np.array(
                    [bool(set(look_of(products[c]).tones) & set(pair.colours)) for c in pool]
                )
                if rel.any() and not rel.all():
                    s = score(a, pool)
                    col_auc.append(auc(s, rel) or 0.0)
                    top = np.argsort(-s)[:K]
                    col_r10.append(float(rel[top].sum() / min(rel.sum(), K)))
        results[name] = {
            "category_auc": round(statistics.fmean(cat_auc), 4),
            "category_p10": round(statistics.fmean(cat_p10), 4),
            "colour_auc": round(statistics.fmean(col_auc), 4) if col_auc else None,
            "colour_r10": round(statistics.fmean(col_r10), 4) if col_r10 else None,
            "note_pairs": len(pairs),
            "colour_pairs": len(col_auc),
        }
        print(name, results[name])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"model": model.version if model else None, "results": results}, indent=2)
    )


if __name__ == "__main__":
    main()
