#!/usr/bin/env python3
"""Feasibility check for the held-out dialog suite.

Written by the independent test author from the catalog data only (not from the agent's code).

For every turn (in family `none`, every turn except the impossible one itself):
  * a `products` expectation naming an article (or any_article), colour, not_colour, gender,
    min_price or max_price must be met by at least 3 catalog products together;
  * a `look` expectation must have at least one product of each article, and the cheapest
    product of each article (within any colour/gender the scenario states in CHECK_LOOK_EXTRA)
    must fit `max_total` together;
  * `image: catalog:<id>` must name a real product that has an image;
  * `audio:` must name an existing file.
For family `none`, the impossible request written in NONE_CONSTRAINTS below must match
0 products (so the scenario really is impossible).

A product counts as colour C if its `colour` is C or its attributes' "Base Metal" is C.
For `not_colour`, a product is excluded if either its colour or its Base Metal is listed.
Gender: `women` accepts Women and Unisex, `men` accepts Men and Unisex (Girls/Boys are not
counted, to stay conservative). Price is the product's selling `price` in rupees.

Run:  python3 check_feasible.py   (exit status 1 on any failure)
"""
import gzip
import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
CATALOG = HERE.parent.parent / "bijou" / "catalog" / "data" / "products.jsonl.gz"
MIN_MATCHES = 3

# The impossible request of each `none` scenario, as catalog filters (checked to match 0).
NONE_CONSTRAINTS = {
    "none-01": {"article": "Ring", "max_price": 150},
    "none-02": {"article": "Necklace and Chains", "max_price": 60},
    "none-03": {"article": "Cufflinks", "max_price": 300},
    "none-04": {"article": "Earrings", "gender": "men_only"},
    "none-05": {"article": "Sarees", "max_price": 500},
    "none-06": {"article": "Jewellery Set", "colour": ["Silver"], "max_price": 1000},
}


def load_catalog():
    with gzip.open(CATALOG, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def colours_of(p):
    out = {p.get("colour") or ""}
    bm = (p.get("attributes") or {}).get("Base Metal")
    if bm:
        out.add(bm)
    return out


def matches(p, c):
    arts = [c["article"]] if "article" in c else c.get("any_article")
    if arts and p.get("article") not in arts:
        return False
    if "colour" in c and not (colours_of(p) & set(c["colour"])):
        return False
    if "not_colour" in c and (colours_of(p) & set(c["not_colour"])):
        return False
    g = c.get("gender")
    if g == "women" and p.get("gender") not in ("Women", "Unisex"):
        return False
    if g == "men" and p.get("gender") not in ("Men", "Unisex"):
        return False
    if g == "men_only" and p.get("gender") not in ("Men", "Boys"):
        return False
    price = float(p.get("price") or 0)
    if "max_price" in c and price > c["max_price"]:
        return False
    if "min_price" in c and price < c["min_price"]:
        return False
    return True


FILTER_KEYS = {"article", "any_article", "colour", "not_colour", "gender", "max_price", "min_price"}


def main():
    cat = load_catalog()
    by_id = {str(p["id"]): p for p in cat}
    articles = {p["article"] for p in cat}
    colours = {p["colour"] for p in cat}
    errors, checked = [], 0
    ids = set()
    for path in sorted(HERE.glob("*.yaml")):
        for sc in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            sid = sc["id"]
            if sid in ids:
                errors.append(f"{sid}: duplicate id")
            ids.add(sid)
            family = sid.split("-")[0]
            for ti, turn in enumerate(sc["turns"], 1):
                where = f"{path.name} {sid} turn {ti}"
                img = turn.get("image")
                if isinstance(img, str) and img.startswith("catalog:"):
                    p = by_id.get(img.split(":", 1)[1])
                    if not p or not p.get("image"):
                        errors.append(f"{where}: {img} is not a catalog product with an image")
                aud = turn.get("audio")
                if aud and not (path.parent / aud).exists():
                    errors.append(f"{where}: audio {aud} missing")
                exp = turn.get("expect") or {}
                for key in ("products", "cross_sell"):
                    c = exp.get(key) or {}
                    for a in ([c["article"]] if "article" in c else []) + list(c.get("any_article", [])):
                        if a not in articles:
                            errors.append(f"{where}: unknown article {a!r}")
                    for col in list(c.get("colour", [])) + list(c.get("not_colour", [])):
                        if col not in colours:
                            errors.append(f"{where}: unknown colour {col!r}")
                look = exp.get("look")
                if look:
                    for a in look["articles"]:
                        if a not in articles:
                            errors.append(f"{where}: unknown look article {a!r}")
                if family == "none" and exp.get("mentions_relaxation_or_none"):
                    continue  # the impossible turn itself: see NONE_CONSTRAINTS
                c = exp.get("products") or {}
                if FILTER_KEYS & set(c) and c.get("max_count") != 0:
                    n = sum(1 for p in cat if matches(p, c))
                    checked += 1
                    if n < MIN_MATCHES:
                        errors.append(f"{where}: only {n} products match {c}")
                if look:
                    total = 0.0
                    for a in look["articles"]:
                        prices = [float(p["price"]) for p in cat if p["article"] == a]
                        if not prices:
                            errors.append(f"{where}: no {a}")
                            continue
                        total += min(prices)
                    checked += 1
                    if "max_total" in look and total > look["max_total"]:
                        errors.append(f"{where}: cheapest look costs {total} > {look['max_total']}")
                    elif "max_total" in look:
                        # also require some slack: at least 3 distinct ways to fill the look
                        a0 = look["articles"][0]
                        rest = sum(min(float(p["price"]) for p in cat if p["article"] == a)
                                   for a in look["articles"][1:])
                        n = sum(1 for p in cat if p["article"] == a0
                                and float(p["price"]) + rest <= look["max_total"])
                        if n < MIN_MATCHES:
                            errors.append(f"{where}: look too tight ({n} options)")
    for sid, c in NONE_CONSTRAINTS.items():
        if sid not in ids:
            errors.append(f"{sid}: listed in NONE_CONSTRAINTS but not in the suite")
            continue
        n = sum(1 for p in cat if matches(p, c))
        if n:
            errors.append(f"{sid}: the 'impossible' request matches {n} products")
    for sid in ids:
        if sid.startswith("none-") and sid not in NONE_CONSTRAINTS:
            errors.append(f"{sid}: no NONE_CONSTRAINTS entry")
    for e in errors:
        print("FAIL", e)
    print(f"{len(ids)} scenarios, {checked} expectations checked, {len(errors)} failures")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
