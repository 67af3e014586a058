"""Complements as a shopper sees them: over many generated suggestions, the share whose
reason holds against the two products' derived looks, the share with no content, the
near-substitutes, and the prices out of proportion; plus sample looks for the docs.

Anchors are drawn at random (seeded), in turn from each of the catalog's jewellery, watch,
bag, saree and dress articles; each gets the cross-sell suggestions the agent would show
beside it, with the reasons rendered as the agent renders them. Each claim is re-checked
from the records: a shared tone must be in both looks (undisputed), a contrast's tones in
the right looks and in the styling table, a note must name the suggestion's article, a
completing pair must be in the table.

    python bench/complement_reasons.py [--suggestions 500] [--samples 20] [--json OUT]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
from pathlib import Path

from bijou.agent.phrases import article_name, money, pair_reason
from bijou.config import load_config
from bijou.retrieval.complements import note_terms
from bijou.retrieval.lexicon import load_lexicon
from bijou.retrieval.look import look_of
from bijou.retrieval.query import QueryFilters
from bijou.retrieval.reasons import Reason, in_price_band, near_substitute
from bijou.retrieval.shop import LocalShop

ANCHOR_ARTICLES = (
    "Earrings", "Pendant", "Necklace and Chains", "Ring", "Bangle", "Bracelet", "Jewellery Set",
    "Watches", "Handbags", "Clutches", "Sarees", "Dresses", "Wallets",
)  # fmt: skip


def claim_is_true(reason: Reason, anchor, product) -> bool:
    """The reason's fact, checked from the records directly."""
    styling = load_lexicon().styling
    mine, theirs = look_of(anchor).sure_tones, look_of(product).sure_tones
    if reason.kind == "tone":
        return reason.values[0] in mine and reason.values[0] in theirs
    if reason.kind == "contrast":
        tone, other = reason.values
        listed = other in styling.contrasts.get(tone, ()) or tone in styling.contrasts.get(
            other, ()
        )
        return tone in theirs and other in mine and listed
    if reason.kind == "neutral":
        return reason.values[0] in styling.neutrals and reason.values[0] in theirs
    if reason.kind == "note":
        return any(product.article in t for t in note_terms(anchor.style_note))
    if reason.kind == "completes":
        pair = frozenset({anchor.article, product.article})
        return styling.completes.get(pair) == reason.values[0]
    return anchor.usage == product.usage == reason.values[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suggestions", type=int, default=500)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--json", type=Path, default=Path("var/bench/complement_reasons.json"))
    ap.add_argument("--markdown", type=Path, default=Path("var/bench/complement_samples.md"))
    args = ap.parse_args()
    shop = LocalShop.load(load_config())
    rng = random.Random(args.seed)
    ids = sorted(shop.engine.index.fingerprints())
    # Round-robin over the anchor articles, each shuffled: every kind of anchor is seen as
    # often as the others, so the catalog's many dresses do not drown its rings.
    by_article: dict[str, list] = {a: [] for a in ANCHOR_ARTICLES}
    for p in shop.get_many(ids):
        if p.article in by_article:
            by_article[p.article].append(p)
    for members in by_article.values():
        rng.shuffle(members)
    products = [p for row in itertools.zip_longest(*by_article.values()) for p in row if p]
    total = holding = contentless = substitutes = off_band = 0
    kinds: dict[str, int] = {}
    samples: list[str] = []
    for anchor in products:
        if total >= args.suggestions:
            break
        found = shop.complements(anchor, articles=None, filters=QueryFilters(), k=3, exclude_ids=[])
        lines = []
        for c in found:
            total += 1
            text = pair_reason(c.reasons, article_name(anchor.article, "en"), "en")
            if not c.reasons or not text.strip():
                contentless += 1
            if c.reasons and all(claim_is_true(r, anchor, c.product) for r in c.reasons[:2]):
                holding += 1
            substitutes += near_substitute(anchor, c.product)
            off_band += not in_price_band(anchor, c.product)
            for r in c.reasons[:2]:
                kinds[r.kind] = kinds.get(r.kind, 0) + 1
            lines.append(f"  - {c.product.title} ({money(c.product.price, '₹')}): {text}")
        if found and len(samples) < args.samples:
            look = look_of(anchor)
            samples.append(
                f"- **{anchor.title}** ({money(anchor.price, '₹')}; looks "
                f"{', '.join(look.tones) or 'unknown'})\n" + "\n".join(lines)
            )
    result = {
        "suggestions": total,
        "reason_holds": round(holding / total, 4),
        "contentless": round(contentless / total, 4),
        "near_substitutes": round(substitutes / total, 4),
        "outside_price_band": round(off_band / total, 4),
        "reason_kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
    }
    print(json.dumps(result, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    args.markdown.write_text("\n".join(samples) + "\n", encoding="utf-8")
    print(f"wrote {args.json} and {args.markdown}")


if __name__ == "__main__":
    main()
