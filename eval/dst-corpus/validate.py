"""Checks dialog-state corpus files against GUIDELINES.md: every key, value and type.

Standalone on purpose (no project imports): authors who never read the code run it.
Usage: python3 eval/dst-corpus/validate.py FILE [FILE ...]; exits 1 on any problem.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CATEGORIES = {
    "Earrings",
    "Pendant",
    "Necklace and Chains",
    "Ring",
    "Bangle",
    "Bracelet",
    "Jewellery Set",
    "Watches",
    "Handbags",
    "Clutches",
    "Backpacks",
    "Duffel Bag",
    "Laptop Bag",
    "Messenger Bag",
    "Wallets",
    "Belts",
    "Perfume and Body Mist",
    "Fragrance Gift Set",
    "Deodorant",
    "Sunglasses",
    "Dresses",
    "Sarees",
    "Scarves",
    "Cufflinks",
    "Mobile Pouch",
    "jewellery",
    "bags",
    "fragrance",
}
COLOURS = {
    "Gold",
    "Silver",
    "Rose",
    "Copper",
    "Bronze",
    "Steel",
    "Black",
    "White",
    "Off White",
    "Cream",
    "Beige",
    "Brown",
    "Tan",
    "Grey",
    "Blue",
    "Navy Blue",
    "Turquoise Blue",
    "Green",
    "Olive",
    "Teal",
    "Red",
    "Maroon",
    "Burgundy",
    "Pink",
    "Peach",
    "Purple",
    "Lavender",
    "Magenta",
    "Yellow",
    "Mustard",
    "Orange",
    "Multi",
    "Metallic",
}
MOVES = {
    "search",
    "cheaper",
    "more_like",
    "question",
    "compare",
    "complements",
    "look",
    "blurb",
    "cart_add",
    "cart_remove",
    "cart_view",
    "block",
    "acknowledge",
    "greeting",
    "thanks",
    "chat",
    "complaint",
    "off_topic",
    "not_sold",
    "injection",
}
RECIPIENTS = {
    "self",
    "wife",
    "husband",
    "girlfriend",
    "boyfriend",
    "partner",
    "fiance",
    "fiancee",
    "mother",
    "father",
    "sister",
    "brother",
    "daughter",
    "son",
    "grandmother",
    "grandfather",
    "aunt",
    "uncle",
    "niece",
    "nephew",
    "mother_in_law",
    "father_in_law",
    "friend",
    "colleague",
    "boss",
    "teacher",
    "other",
}
GENDERS = {"Women", "Men", "Girls", "Boys", "Unisex"}
OCCASIONS = {
    "wedding",
    "engagement",
    "birthday",
    "anniversary",
    "valentine",
    "diwali",
    "eid",
    "raksha_bandhan",
    "karva_chauth",
    "festival",
    "christmas",
    "new_year",
    "party",
    "date",
    "office",
    "interview",
    "daily",
    "travel",
    "graduation",
    "farewell",
    "housewarming",
    "other",
}
STYLES = {"Ethnic", "Casual", "Formal", "Party", "Sports", "Western"}
LANGUAGES = {"en", "zh-hans", "zh-hant", "hinglish"}
ABOUT = {"product", "policy", "care", "sizes"}
TOPICS = {
    "material",
    "stone",
    "size",
    "colour",
    "weight",
    "warranty",
    "price",
    "stock",
    "returns",
    "delivery",
    "payment",
    "gift_wrap",
    "engraving",
    "purity",
    "care",
    "other",
}
STATE_LISTS = {
    "categories": CATEGORIES,
    "exclude_categories": CATEGORIES,
    "colours": COLOURS,
    "exclude_colours": COLOURS,
    "brands": None,
    "exclude_brands": None,
}
STATE_ONE = {"recipient": RECIPIENTS, "gender": GENDERS, "occasion": OCCASIONS, "style": STYLES}
GOLD_KEYS = {"moves", "state", "ranks", "question", "anchor", "not_sold_item"}


def _check_state(state: object, where: str) -> list[str]:
    if not isinstance(state, dict):
        return [f"{where}: state must be an object"]
    errors = []
    for key, value in state.items():
        if key in STATE_LISTS:
            allowed = STATE_LISTS[key]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                errors.append(f"{where}: state.{key} must be a list of strings")
            elif allowed is not None:
                errors += [
                    f"{where}: state.{key} has unknown value {v!r}"
                    for v in value
                    if v not in allowed
                ]
            if isinstance(value, list) and len(set(value)) != len(value):
                errors.append(f"{where}: state.{key} repeats a value")
        elif key in STATE_ONE:
            if value not in STATE_ONE[key]:
                errors.append(f"{where}: state.{key} has unknown value {value!r}")
        elif key in ("min_price", "max_price"):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                errors.append(f"{where}: state.{key} must be a non-negative number")
        else:
            errors.append(f"{where}: state has unknown key {key!r}")
    low, high = state.get("min_price"), state.get("max_price")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
        errors.append(f"{where}: min_price is above max_price")
    return errors


def _check_gold(gold: object, where: str, shown_before: int) -> list[str]:
    if not isinstance(gold, dict):
        return [f"{where}: gold must be an object"]
    errors = [f"{where}: gold has unknown key {k!r}" for k in gold if k not in GOLD_KEYS]
    moves = gold.get("moves")
    if not isinstance(moves, list) or not moves:
        errors.append(f"{where}: gold.moves must be a non-empty list")
        moves = []
    errors += [f"{where}: unknown move {m!r}" for m in moves if m not in MOVES]
    errors += (
        _check_state(gold.get("state"), where)
        if "state" in gold
        else [f"{where}: gold.state missing"]
    )
    ranks = gold.get("ranks")
    if ranks is not None:
        if not isinstance(ranks, list) or not all(
            isinstance(r, int) and r >= -1 and r != 0 for r in ranks
        ):
            errors.append(f"{where}: ranks must be a list of 1-based positions or -1")
        elif any(r > shown_before for r in ranks):
            errors.append(f"{where}: a rank points past the {shown_before} products on screen")
    question = gold.get("question")
    if ("question" in moves) != (question is not None):
        errors.append(f"{where}: a question move and the question key go together")
    if question is not None and (
        not isinstance(question, dict)
        or question.get("about") not in ABOUT
        or question.get("topic") not in TOPICS
    ):
        errors.append(
            f"{where}: question needs about in {sorted(ABOUT)} and topic in {sorted(TOPICS)}"
        )
    anchor = gold.get("anchor")
    if "complements" in moves and anchor is None:
        errors.append(f"{where}: a complements move needs an anchor")
    if anchor is not None:
        kind = anchor.get("kind") if isinstance(anchor, dict) else None
        if kind not in {"shown", "focus", "described", "cart"}:
            errors.append(f"{where}: anchor.kind must be shown, focus, described or cart")
        elif kind == "shown" and not isinstance(anchor.get("rank"), int):
            errors.append(f"{where}: a shown anchor needs its rank")
        elif kind == "described" and not anchor.get("text"):
            errors.append(f"{where}: a described anchor needs its text")
    if ("not_sold" in moves) != bool(gold.get("not_sold_item")):
        errors.append(f"{where}: the not_sold move and not_sold_item go together")
    return errors


def check_dialog(dialog: object, where: str) -> list[str]:
    if not isinstance(dialog, dict):
        return [f"{where}: a dialog must be an object"]
    errors = []
    for key in ("dialog_id", "author", "language", "turns"):
        if key not in dialog:
            errors.append(f"{where}: missing {key}")
    if errors:
        return errors
    if dialog["language"] not in LANGUAGES:
        errors.append(f"{where}: language must be one of {sorted(LANGUAGES)}")
    if not str(dialog["dialog_id"]).startswith(f"{dialog['author']}-"):
        errors.append(f"{where}: dialog_id must start with the author id and a dash")
    turns = dialog["turns"]
    if not isinstance(turns, list) or not 4 <= len(turns) <= 9:
        return [*errors, f"{where}: 4 to 9 turns"]
    shown = 0
    for number, turn in enumerate(turns, 1):
        at = f"{where} turn {number}"
        if (
            not isinstance(turn, dict)
            or not isinstance(turn.get("user"), str)
            or not turn["user"].strip()
        ):
            errors.append(f"{at}: needs a non-empty user message")
            continue
        errors += _check_gold(turn.get("gold"), at, shown)
        reply = turn.get("assistant")
        if not isinstance(reply, dict) or not isinstance(reply.get("did"), str):
            errors.append(f"{at}: assistant needs did")
            continue
        if not isinstance(reply.get("shown"), int) or reply["shown"] < 0:
            errors.append(f"{at}: assistant.shown must be a count")
        else:
            shown = reply["shown"]
        if "cart" in reply and (not isinstance(reply["cart"], int) or reply["cart"] < 0):
            errors.append(f"{at}: assistant.cart must be the number of cart lines")
        cats = reply.get("shown_categories", [])
        if not isinstance(cats, list) or any(c not in CATEGORIES for c in cats):
            errors.append(f"{at}: assistant.shown_categories must use the category names")
    return errors


def main(paths: list[str]) -> int:
    problems, dialogs, turns, seen = [], 0, 0, set()
    for path in paths:
        for line_number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{line_number}"
            try:
                dialog = json.loads(line)
            except json.JSONDecodeError as error:
                problems.append(f"{where}: not JSON ({error})")
                continue
            problems += check_dialog(dialog, where)
            if isinstance(dialog, dict):
                if dialog.get("dialog_id") in seen:
                    problems.append(f"{where}: dialog_id {dialog.get('dialog_id')} repeated")
                seen.add(dialog.get("dialog_id"))
                dialogs += 1
                turns += len(dialog.get("turns") or [])
    for problem in problems:
        print(problem)
    print(f"{dialogs} dialogs, {turns} turns, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
