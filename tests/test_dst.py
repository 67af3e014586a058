"""Tests of the dialog state tracker and of how it is measured: the corpus's format, the
scorer both ways (a perfect tracker scores 1, a wrong slot is counted), refused categories,
a new recipient starting a new wish, and the learned parts trained from examples."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from bijou.eval import dst
from bijou.retrieval.index import build_filter
from bijou.retrieval.lexicon import load_lexicon
from bijou.retrieval.query import QueryFilters, QueryParser
from bijou.retrieval.understanding import DialogContext, Understander
from bijou.understanding.learned import Example, TrackerModel
from bijou.understanding.state import DialogState
from bijou.understanding.tracker import StateTracker, TrackedTurn, TrackerOptions

CORPUS = Path(__file__).parents[1] / "eval" / "dst-corpus"
PARSER = QueryParser(strict=True)
UNDERSTANDER = Understander(PARSER, strategy="rules")
VOCAB = dst.Vocabulary.of(load_lexicon())


def _validator():  # the authors' own checker, a script beside the corpus
    spec = importlib.util.spec_from_file_location("validate", CORPUS / "validate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_corpus_file_passes_the_authors_checker_and_loads() -> None:
    files = sorted((CORPUS / "authors").glob("*/*.jsonl"))
    assert files, "the corpus is empty"
    assert _validator().main([str(f) for f in files]) == 0
    dialogs = dst.load_corpus(CORPUS)
    split = dst.load_split(CORPUS)
    authors = {d.author for d in dialogs}
    assert set(split.train) | set(split.test) == authors
    assert not set(split.train) & set(split.test)


def test_the_checker_rejects_a_wrong_value() -> None:
    bad = {
        "dialog_id": "Z1-001",
        "author": "Z1",
        "language": "en",
        "turns": [
            {
                "user": "hi",
                "gold": {"moves": ["search"], "state": {"categories": ["Shoes"]}},
                "assistant": {"did": "x", "shown": 0},
            }
        ]
        * 4,
    }
    problems = _validator().check_dialog(json.loads(json.dumps(bad)), "t")
    assert any("Shoes" in p for p in problems)


def dialog(*turns: tuple[str, dict[str, object]], shown: int = 3) -> dst.CorpusDialog:
    return dst.CorpusDialog.model_validate(
        {
            "dialog_id": "T-001",
            "author": "T",
            "language": "en",
            "turns": [
                {
                    "user": user,
                    "gold": {"moves": ["search"], "state": state},
                    "assistant": {"did": "showed", "shown": shown},
                }
                for user, state in turns
            ],
        }
    )


class Gold:
    """A tracker that answers the gold state: the scorer must give it every slot."""

    def __init__(self, d: dst.CorpusDialog) -> None:
        self.d = d

    def track(
        self, messages: Sequence[str], contexts: Sequence[DialogContext]
    ) -> list[TrackedTurn]:
        out = []
        for turn in self.d.turns:
            s = turn.gold.state
            state = DialogState(
                articles=s.categories,
                colours=s.colours,
                max_price=s.max_price,
                recipient=s.recipient,
                genders=[s.gender] if s.gender else [],
            )
            out.append(TrackedTurn(state=state, moves=tuple(turn.gold.moves)))
        return out


def test_scorer_gives_a_perfect_tracker_every_slot_and_counts_a_wrong_one() -> None:
    d = dialog(
        ("earrings for my wife under 2k", {"categories": ["jewellery"], "max_price": 2000}),
        ("gold ones", {"categories": ["jewellery"], "max_price": 2000, "colours": ["Gold"]}),
    )
    perfect = dst.score(Gold(d), [d], VOCAB)
    assert perfect.joint_goal == 1.0 and perfect.turns == 2
    wrong = dst.score(StateTracker(UNDERSTANDER, TrackerOptions(strategy="rules")), [d], VOCAB)
    # The tracker reads "earrings" where the gold says the whole group: every turn wrong.
    assert wrong.slots["categories"] == 0.0
    assert wrong.joint_goal == 0.0
    assert {m.slot for m in wrong.misses} >= {"categories"}


def test_a_refused_category_is_excluded_not_wanted() -> None:
    f = PARSER.parse("not a wallet after all, a belt instead").filters
    assert f.articles == ("Belts",)
    assert f.exclude_articles == ("Wallets",)
    # A refused colour before a category does not refuse the category.
    f = PARSER.parse("no gold earrings please").filters
    assert f.articles == ("Earrings",) and "Gold" in f.exclude_colours
    assert f.exclude_articles == ()


def test_a_refused_category_reaches_the_engine_filter() -> None:
    qmodels = pytest.importorskip("qdrant_client.models")
    query = build_filter(QueryFilters(exclude_articles=("Wallets",)), (), qmodels)
    assert query is not None and query.must_not and not query.must


def track(*messages: str, strategy: str = "rules") -> list[TrackedTurn]:
    tracker = StateTracker(UNDERSTANDER, TrackerOptions(strategy="rules"))
    return tracker.track(list(messages), [DialogContext(shown=3)] * len(messages))


def test_the_tracker_keeps_the_wish_and_names_recipient_and_occasion() -> None:
    first, second = track("a birthday gift for my wife, earrings under 2000", "silver ones")
    assert first.state.recipient == "wife" and first.state.occasion == "birthday"
    assert first.state.articles == ["Earrings"] and first.state.max_price == 2000
    assert second.state.colours == ["Silver"] and second.state.articles == ["Earrings"]
    assert second.state.recipient == "wife"


def test_a_new_person_starts_a_new_wish() -> None:
    *_, last = track("silver earrings for my wife under 2000", "now a watch for my dad")
    assert last.state.recipient == "father"
    assert last.state.articles == ["Watches"]
    assert last.state.colours == [] and last.state.max_price is None


def test_small_talk_leaves_the_wish_alone() -> None:
    first, second = track("gold bangles under 3000", "thanks!")
    assert second.state.articles == first.state.articles
    assert second.state.max_price == 3000


def test_the_learned_parts_learn_from_examples() -> None:
    moves = [
        Example("put the second one in my cart", ("__shown_3",), ("cart_add",)),
        Example("add the first to the cart", ("__shown_3",), ("cart_add",)),
        Example("the second one is perfect", ("__shown_3",), ("acknowledge",)),
        Example("love the first one", ("__shown_3",), ("acknowledge",)),
    ] * 3
    about = [
        Example("can i return it", (), ("policy",)),
        Example("is it real silver", (), ("product",)),
    ] * 3
    ops = {
        "articles": [
            Example("a belt instead", ("__new",), ("replace",)),
            Example("also show belts", ("__new",), ("add",)),
        ]
        * 3
    }
    model = TrackerModel.fit(moves, about, ops, {})
    assert model.moves("put the first one in my cart", ["__shown_3"]).labels[0] == "cart_add"
    assert model.question_about("can i return it", []) == "policy"
    assert model.slot_op("articles", "also show belts", ["__new"]) == "add"
    assert model.slot_op("colours", "gold", []) == "replace"  # no examples: the rule


def test_the_shipped_model_loads_and_the_combined_tracker_runs() -> None:
    from bijou.understanding.learned import MODEL_PATH, load_tracker_model

    if not MODEL_PATH.exists():
        pytest.fail(f"{MODEL_PATH} is missing: run `bijou train-tracker`")
    tracker = StateTracker(UNDERSTANDER, TrackerOptions(), load_tracker_model())
    turns = tracker.track(["silver earrings under 2000", "put the 2nd one in my cart"],
                          [DialogContext(), DialogContext(shown=3)])  # fmt: skip
    assert turns[0].state.articles == ["Earrings"]
    assert "cart_add" in turns[1].moves and turns[1].ranks == (2,)
    assert turns[1].state.articles == ["Earrings"]
