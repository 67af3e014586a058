"""Dialog state tracking measured as MultiWOZ measures it: joint goal accuracy (every state
slot right after a turn) and per-slot accuracy, on the hand-written corpus in
`eval/dst-corpus` (see its GUIDELINES.md), split by author.

A tracker reads a dialog's shopper messages in order, with what the shop had on screen
before each (count, categories, cart lines: the corpus's `assistant` notes), and returns
one `TrackedTurn` per message. Slot values are compared as the guidelines define them:
lists as sets, a category group ("jewellery") as its articles, prices to the rupee.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bijou.agent.turns import apply_constraints
from bijou.catalog.loader import load_catalog
from bijou.retrieval.lexicon import Lexicon, load_lexicon
from bijou.retrieval.query import QueryParser
from bijou.retrieval.understanding import DialogContext, Move, Understander
from bijou.understanding.learned import Example, SlotOp, TrackerModel
from bijou.understanding.state import DialogState
from bijou.understanding.tracker import (
    LEARNED_SLOTS,
    NAMED_SLOTS,
    STATE_NEUTRAL,
    Named,
    TrackedTurn,
    TrackerOptions,
    context_tokens,
    named_values,
    reading_context,
    rule_about,
    slot_tokens,
)

Language = Literal["en", "zh-hans", "zh-hant", "hinglish"]
# The state slots of joint goal accuracy, in the order reports list them.
STATE_SLOTS = (
    "categories",
    "exclude_categories",
    "colours",
    "exclude_colours",
    "min_price",
    "max_price",
    "recipient",
    "gender",
    "occasion",
    "style",
    "brands",
    "exclude_brands",
)
# What one message means beyond the state: scored per turn, apart from the joint goal.
TURN_SLOTS = ("moves", "ranks", "question", "anchor")


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GoldQuestion(_Wire):
    about: str
    topic: str


class GoldAnchor(_Wire):
    kind: str
    rank: int | None = None
    text: str | None = None


class GoldState(_Wire):
    categories: list[str] = Field(default_factory=list)
    exclude_categories: list[str] = Field(default_factory=list)
    colours: list[str] = Field(default_factory=list)
    exclude_colours: list[str] = Field(default_factory=list)
    min_price: float | None = None
    max_price: float | None = None
    recipient: str | None = None
    gender: str | None = None
    occasion: str | None = None
    style: str | None = None
    brands: list[str] = Field(default_factory=list)
    exclude_brands: list[str] = Field(default_factory=list)


class Gold(_Wire):
    moves: list[str]
    state: GoldState
    ranks: list[int] = Field(default_factory=list)
    question: GoldQuestion | None = None
    anchor: GoldAnchor | None = None
    not_sold_item: str | None = None


class AssistantNote(_Wire):
    did: str
    shown: int
    shown_categories: list[str] = Field(default_factory=list)
    cart: int | None = None

    @field_validator("cart", mode="before")
    @classmethod
    def _count(cls, value: object) -> object:
        # Early files listed the cart's lines instead of counting them.
        return len(value) if isinstance(value, list) else value


class CorpusTurn(_Wire):
    user: str
    gold: Gold
    assistant: AssistantNote


class CorpusDialog(_Wire):
    dialog_id: str
    author: str
    language: Language
    turns: list[CorpusTurn]

    def contexts(self) -> Iterator[DialogContext]:
        """What was on screen before each message, from the notes of the replies before it."""
        shown, cart = 0, 0
        categories: tuple[str, ...] = ()
        for turn in self.turns:
            yield DialogContext(shown=shown, shown_articles=categories, cart=cart)
            note = turn.assistant
            shown, categories = note.shown, tuple(note.shown_categories)
            cart = note.cart if note.cart is not None else cart


def load_corpus(root: Path, authors: Iterable[str] | None = None) -> list[CorpusDialog]:
    """Every dialog under ``root/authors/<author>/*.jsonl``, of ``authors`` if given."""
    wanted = set(authors) if authors is not None else None
    dialogs = []
    for folder in sorted((root / "authors").iterdir()):
        if not folder.is_dir() or (wanted is not None and folder.name not in wanted):
            continue
        for path in sorted(folder.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    dialogs.append(CorpusDialog.model_validate_json(line))
    return dialogs


class Split(BaseModel):
    """Which authors train and which are only ever scored (`eval/dst-corpus/split.json`)."""

    train: list[str]
    test: list[str]


def load_split(root: Path) -> Split:
    return Split.model_validate_json((root / "split.json").read_text(encoding="utf-8"))


class Tracker(Protocol):
    def track(
        self, messages: Sequence[str], contexts: Sequence[DialogContext]
    ) -> list[TrackedTurn]:
        """One reading per message, each in the light of the ones before it."""
        ...


# --- comparing a tracked turn with the gold one ----------------------------------------------
@dataclass(frozen=True)
class Vocabulary:
    """How gold and tracked values are put on equal terms: groups to their articles, catalog
    aliases to one name, a colour phrase searched as several tones ("rose gold": Rose, Gold,
    Copper) to the colour the shopper said (its first)."""

    groups: Mapping[str, tuple[str, ...]]
    aliases: Mapping[str, str] = field(default_factory=dict)
    colour_phrases: tuple[tuple[str, ...], ...] = ()

    @classmethod
    def of(cls, lexicon: Lexicon) -> Vocabulary:
        phrases = {t.values for t in lexicon.colours.terms.values() if len(t.values) > 1}
        return cls(
            groups=lexicon.groups,
            aliases=ARTICLE_ALIASES,
            colour_phrases=tuple(sorted(phrases, key=len, reverse=True)),
        )

    def articles(self, values: Iterable[str]) -> frozenset[str]:
        out: set[str] = set()
        for value in values:
            for article in self.groups.get(value, (value,)):
                out.add(self.aliases.get(article, article))
        return frozenset(out)

    def colours(self, values: Iterable[str]) -> frozenset[str]:
        left = set(values)
        for phrase in self.colour_phrases:
            if set(phrase) <= left:
                left -= set(phrase[1:])
        return frozenset(left)


# Catalog articles the corpus names by their nearest neighbour.
ARTICLE_ALIASES = {"Rucksacks": "Backpacks", "Ties and Cufflinks": "Cufflinks"}


def gold_turn(gold: Gold) -> TrackedTurn:
    """The annotation as a tracker's reading, so both are compared by one view."""
    s = gold.state
    state = DialogState(
        articles=s.categories,
        exclude_articles=s.exclude_categories,
        colours=s.colours,
        exclude_colours=s.exclude_colours,
        min_price=s.min_price,
        max_price=s.max_price,
        recipient=s.recipient,
        genders=[s.gender] if s.gender else [],
        occasion=s.occasion,
        style=s.style,
        brands=s.brands,
        exclude_brands=s.exclude_brands,
    )
    return TrackedTurn(
        state=state,
        moves=tuple(gold.moves),
        ranks=tuple(gold.ranks),
        question_about=gold.question.about if gold.question else None,
        anchor_kind=gold.anchor.kind if gold.anchor else None,
    )


def tracked_slots(turn: TrackedTurn, vocab: Vocabulary) -> dict[str, object]:
    s = turn.state
    low, high = s.min_price, s.max_price
    if s.budget_around is not None:  # searched as a range; the guidelines call it a ceiling
        low, high = None, s.budget_around
    return {
        "categories": vocab.articles(s.articles),
        "exclude_categories": vocab.articles(s.exclude_articles),
        "colours": vocab.colours(s.colours),
        "exclude_colours": vocab.colours(s.exclude_colours),
        "min_price": _price(low),
        "max_price": _price(high),
        "recipient": s.recipient,
        "gender": s.genders[0] if s.genders else None,
        "occasion": s.occasion,
        "style": s.style,
        "brands": frozenset(b.lower() for b in s.brands),
        "exclude_brands": frozenset(b.lower() for b in s.exclude_brands),
        "moves": frozenset(turn.moves),
        "ranks": tuple(turn.ranks),
        "question": turn.question_about,
        "anchor": turn.anchor_kind,
    }


def _price(value: float | None) -> int | None:
    return None if value is None else round(value)


# --- scores ------------------------------------------------------------------------------------
class SlotMiss(BaseModel):
    dialog_id: str
    turn: int  # 1-based
    slot: str
    gold: str
    tracked: str


class DstScore(BaseModel):
    """Joint goal accuracy and per-slot accuracy, overall and per language."""

    dialogs: int
    turns: int
    joint_goal: float
    turn_joint: float  # the state and every per-message slot right
    slots: dict[str, float]
    languages: dict[str, dict[str, float]]  # language -> {"turns", "joint_goal"}
    misses: list[SlotMiss] = Field(default_factory=list, exclude=True)


def score(tracker: Tracker, dialogs: Sequence[CorpusDialog], vocab: Vocabulary) -> DstScore:
    right: Counter[str] = Counter()
    turns = joint = turn_joint = 0
    per_language: dict[str, Counter[str]] = defaultdict(Counter)
    misses: list[SlotMiss] = []
    for dialog in dialogs:
        tracked = tracker.track([t.user for t in dialog.turns], list(dialog.contexts()))
        for number, (annotated, guess) in enumerate(zip(dialog.turns, tracked, strict=True), 1):
            gold = tracked_slots(gold_turn(annotated.gold), vocab)
            mine = tracked_slots(guess, vocab)
            wrong = [slot for slot in (*STATE_SLOTS, *TURN_SLOTS) if gold[slot] != mine[slot]]
            for slot in (*STATE_SLOTS, *TURN_SLOTS):
                right[slot] += slot not in wrong
            for slot in wrong:
                misses.append(
                    SlotMiss(
                        dialog_id=dialog.dialog_id,
                        turn=number,
                        slot=slot,
                        gold=_show(gold[slot]),
                        tracked=_show(mine[slot]),
                    )
                )
            state_right = not any(slot in STATE_SLOTS for slot in wrong)
            turns += 1
            joint += state_right
            turn_joint += not wrong
            per_language[dialog.language]["turns"] += 1
            per_language[dialog.language]["joint"] += state_right
    return DstScore(
        dialogs=len(dialogs),
        turns=turns,
        joint_goal=joint / turns if turns else 0.0,
        turn_joint=turn_joint / turns if turns else 0.0,
        slots={slot: right[slot] / turns if turns else 0.0 for slot in (*STATE_SLOTS, *TURN_SLOTS)},
        languages={
            lang: {"turns": c["turns"], "joint_goal": c["joint"] / c["turns"]}
            for lang, c in sorted(per_language.items())
        },
        misses=misses,
    )


def _show(value: object) -> str:
    if isinstance(value, frozenset):
        return json.dumps(sorted(value), ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, default=str)


# --- what the agent does today, measured the same way ----------------------------------------
class AgentTracker:
    """The agent's own state update (`bijou.agent.turns.apply_constraints`) over the same
    understanding: the tracker's baseline."""

    def __init__(self, understander: Understander) -> None:
        self.understander = understander
        self.page_topics = TrackerOptions().page_topics

    def track(
        self, messages: Sequence[str], contexts: Sequence[DialogContext]
    ) -> list[TrackedTurn]:
        state, out = DialogState(), []
        for message, context in zip(messages, contexts, strict=True):
            u = self.understander.understand(message, reading_context(context, state))
            if u.move.value in STATE_NEUTRAL:
                state = state.model_copy(update={"language": u.language})
            else:
                state = apply_constraints(state, u)
                if u.filters.max_price is not None or u.filters.min_price is not None:
                    # The agent searches "around 2000" as 1600-2400; say what was said.
                    state = state.model_copy(update={"budget_around": u.parsed.budget_around})
            out.append(
                TrackedTurn(
                    state=state,
                    moves=(u.move.value,),
                    ranks=u.ranks,
                    question_about=rule_about(u, self.page_topics)
                    if u.move is Move.QUESTION
                    else None,
                    anchor_kind=u.anchor.kind if u.anchor and u.move is Move.COMPLEMENTS else None,
                )
            )
        return out


def catalog_understander() -> Understander:
    """The agent's understanding of the bundled catalog (its brands), without an LLM."""
    brands = sorted({p.brand for p in load_catalog().products if p.brand})
    return Understander(QueryParser(brands), strategy="hybrid")


# --- training the tracker's learned parts from the corpus -----------------------------------
def _gold_state(gold: GoldState, vocab: Vocabulary) -> DialogState:
    return DialogState(
        articles=sorted(vocab.articles(gold.categories)), colours=sorted(gold.colours)
    )


def slot_label(old: frozenset[str], new: frozenset[str]) -> SlotOp:
    """What a message did to a list slot, read from the gold states around it."""
    if new == old:
        return "keep"
    if not new:
        return "clear"
    if old and old < new:
        return "add"
    return "replace"


@dataclass(frozen=True)
class TrainingSet:
    moves: list[Example]
    about: list[Example]
    slot_ops: dict[str, list[Example]]
    mentions: dict[str, list[Example]]


def mention_label(named: Named, gold: GoldState, vocab: Vocabulary) -> str:
    """What a value named in a message is to the gold wish after it."""
    if named.slot == "relations":
        return "recipient" if gold.recipient == named.values[0] else "other"
    if named.slot == "recipients":
        return "want" if gold.gender == named.values[0] else "other"
    if named.slot == "events":
        return "want" if gold.occasion == named.values[0] else "other"
    if named.slot == "articles":
        values = vocab.articles(named.values)
        wanted, refused = vocab.articles(gold.categories), vocab.articles(gold.exclude_categories)
    else:
        values = frozenset(named.values)
        wanted, refused = frozenset(gold.colours), frozenset(gold.exclude_colours)
    if values & wanted:
        return "want"
    return "refuse" if values & refused else "other"


def training_set(
    dialogs: Sequence[CorpusDialog], understander: Understander, vocab: Vocabulary
) -> TrainingSet:
    """Examples read with the gold state before each message (teacher forcing)."""
    moves: list[Example] = []
    about: list[Example] = []
    ops: dict[str, list[Example]] = {slot: [] for slot in LEARNED_SLOTS}
    mentions: dict[str, list[Example]] = {slot: [] for slot in NAMED_SLOTS}
    lexicon = load_lexicon()
    for dialog in dialogs:
        before = GoldState()
        for turn, context in zip(dialog.turns, dialog.contexts(), strict=True):
            state = _gold_state(before, vocab)
            u = understander.understand(turn.user, reading_context(context, state))
            gold = turn.gold
            moves.append(Example(u.text, tuple(context_tokens(context, state)), tuple(gold.moves)))
            if gold.question is not None:
                about.append(
                    Example(u.text, tuple(context_tokens(context, None)), (gold.question.about,))
                )
            move_tokens = tuple(f"__move_{m}" for m in gold.moves)
            for named in named_values(lexicon, u):
                mentions[named.slot].append(
                    Example(
                        named.around,
                        move_tokens,
                        (mention_label(named, gold.state, vocab),),
                    )
                )
            after = _gold_state(gold.state, vocab)
            for slot in LEARNED_SLOTS:
                named = getattr(u.filters, slot)
                if not named:
                    continue
                tokens = slot_tokens(slot, state, named, tuple(gold.moves), context)
                old, new = _slot_values(slot, state, vocab), _slot_values(slot, after, vocab)
                ops[slot].append(Example(u.text, tuple(tokens), (slot_label(old, new),)))
            before = gold.state
    return TrainingSet(moves, about, ops, mentions)


def _slot_values(slot: str, state: DialogState, vocab: Vocabulary) -> frozenset[str]:
    values = getattr(state, slot)
    return vocab.articles(values) if slot == "articles" else vocab.colours(values)


def fit_model(
    dialogs: Sequence[CorpusDialog], understander: Understander, vocab: Vocabulary
) -> TrackerModel:
    data = training_set(dialogs, understander, vocab)
    return TrackerModel.fit(data.moves, data.about, data.slot_ops, data.mentions)
