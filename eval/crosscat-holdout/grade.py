#!/usr/bin/env python3
"""Grade the cross-category held-out set from catalog attributes only.

Usage (from anywhere):
    python3 grade.py [--catalog PATH] [--queries PATH] [--out PATH] [--check]

Reads the catalog JSONL(.gz) and queries.jsonl, writes qrels.jsonl lines
{"qid", "id", "rel"} with rel 2 (article + gender + price fit AND a tone/colour
in harmony_colours) or 1 (article + gender + price fit, colour not in harmony).
Everything else is grade 0 and omitted. See README.md for the rules.
"""
import argparse
import gzip
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CATALOG = os.path.normpath(
    os.path.join(HERE, "..", "..", "bijou", "catalog", "data", "products.jsonl.gz"))

# Gender compatibility: Unisex counts for both; Girls count as women, Boys as men.
GENDER_OK = {
    "women": {"Women", "Girls", "Unisex"},
    "men": {"Men", "Boys", "Unisex"},
}

# Metal-tone words read from the TITLE (order matters: rose gold before gold).
TITLE_TONES = [
    (re.compile(r"\brose[\s-]?gold"), "Rose Gold"),
    (re.compile(r"(?<!rose )(?<!rose-)(?<!rose)\bgold(en)?\b"), "Gold"),
    (re.compile(r"\bsilver\b|\bsterling\b"), "Silver"),
    (re.compile(r"\bsteel[\s-]?toned?\b"), "Steel"),
    (re.compile(r"\bcopper\b"), "Copper"),
    (re.compile(r"\bbronze\b"), "Bronze"),
    (re.compile(r"\bgun[\s-]?metal\b"), "Gunmetal"),
]

# Attribute values that name a metal tone.
ATTR_TONE_KEYS = ("Strap Colour", "Frame Colour")
ATTR_TONE_MAP = {
    "silver toned": "Silver", "silver-toned": "Silver", "silver": "Silver",
    "steel toned": "Steel", "steel-toned": "Steel", "steel": "Steel",
    "gold toned": "Gold", "gold-toned": "Gold", "gold": "Gold",
    "rose gold": "Rose Gold", "copper": "Copper", "bronze": "Bronze",
}
BASE_METAL_MAP = {"silver": "Silver", "stainless steel": "Steel"}


def tones(p):
    """The set of colour/tone strings a product counts as.

    1. its `colour` field;
    2. metal-tone words in its title (gold/golden -> Gold, rose gold -> Rose Gold,
       silver/sterling -> Silver, steel-toned -> Steel, copper, bronze, gunmetal);
    3. `Strap Colour` / `Frame Colour` attribute values naming a metal tone;
    4. `Base Metal` (Silver -> Silver, Stainless Steel -> Steel), but ONLY when the
       title names no gold or rose-gold tone: a "Gold Plated Ring" with base metal
       silver shows gold, not silver.
    """
    out = set()
    c = (p.get("colour") or "").strip()
    if c:
        out.add(c)
    title = (p.get("title") or "").lower()
    title_tones = set()
    for rx, tone in TITLE_TONES:
        if rx.search(title):
            title_tones.add(tone)
    out |= title_tones
    attrs = p.get("attributes") or {}
    for k in ATTR_TONE_KEYS:
        v = (attrs.get(k) or "").strip().lower()
        if v in ATTR_TONE_MAP:
            out.add(ATTR_TONE_MAP[v])
    bm = (attrs.get("Base Metal") or "").strip().lower()
    if bm in BASE_METAL_MAP and not (title_tones & {"Gold", "Rose Gold"}):
        out.add(BASE_METAL_MAP[bm])
    return out


def load_jsonl(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rt", encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def grade(products, queries):
    rows, stats = [], {}
    for q in queries:
        f = q["facts"]
        arts = set(f["target_articles"])
        g = f.get("gender")
        ok_g = GENDER_OK.get(g) if g else None
        mp = f.get("max_price")
        harm = set(f["harmony_colours"])
        n2 = n1 = 0
        for p in products:
            if p.get("article") not in arts:
                continue
            if ok_g is not None and p.get("gender") not in ok_g:
                continue
            price = p.get("price")
            if mp is not None and (price is None or float(price) > float(mp)):
                continue
            rel = 2 if tones(p) & harm else 1
            rows.append({"qid": q["qid"], "id": str(p["id"]), "rel": rel})
            if rel == 2:
                n2 += 1
            else:
                n1 += 1
        stats[q["qid"]] = (n2, n1)
    return rows, stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--catalog", default=DEFAULT_CATALOG)
    ap.add_argument("--queries", default=os.path.join(HERE, "queries.jsonl"))
    ap.add_argument("--out", default=os.path.join(HERE, "qrels.jsonl"))
    ap.add_argument("--check", action="store_true",
                    help="print per-query counts; exit 1 if any query has < 3 grade-2")
    a = ap.parse_args()
    products = load_jsonl(a.catalog)
    queries = load_jsonl(a.queries)
    rows, stats = grade(products, queries)
    rows.sort(key=lambda r: (r["qid"], -r["rel"], int(r["id"]) if r["id"].isdigit() else 0, r["id"]))
    with open(a.out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    bad = [qid for qid, (n2, _) in stats.items() if n2 < 3]
    if a.check:
        for qid, (n2, n1) in stats.items():
            print(qid, "rel2=%d rel1=%d" % (n2, n1))
    print("queries=%d qrels=%d (rel2=%d rel1=%d); queries with <3 grade-2: %s" % (
        len(queries), len(rows), sum(s[0] for s in stats.values()),
        sum(s[1] for s in stats.values()), bad or "none"), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
