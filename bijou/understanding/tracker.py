"""The dialog state tracker: one shopper message, in the light of the state before it, makes
the next `DialogState` and says what the message asks for (`TrackedTurn`).

Values are deterministic: categories, colours, prices, recipients, occasions and styles come
from the query parser and the vocabulary files, so each maps to the catalog's own values.
What rules decide poorly is learned from the hand-written corpus (`eval/dst-corpus`,
`bijou.understanding.learned`): which requests a message holds (several in one message),
what each value named is to the wish (wanted, refused, the recipient, only mentioned), and
whether wanted values replace the wish, join it or clear it. The tracker decides its
strategy once (`TrackerOptions`) and returns frozen readings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bijou.config import KnowledgeConfig, TrackerStrategy
from bijou.retrieval.lexicon import Lexicon, Vocabulary, load_lexicon
from bijou.retrieval.query import genders_of, narrowest, normalise
from bijou.retrieval.understanding import (
    SMALL_TALK,
    DialogContext,
    Move,
    Understander,
    Understanding,
)
from bijou.understanding.learned import SlotOp, mention_text
from bijou.understanding.state import DialogState

if TYPE_CHECKING:
    from bijou.understanding.learned import TrackerModel

# Moves whose messages carry no product request of their own: the wish stands as it was.
STATE_NEUTRAL = frozenset(m.value for m in SMALL_TALK)
# Moves no cue phrase tells; only the model's reading, when it is sure, names them.
_MODEL_ONLY = (Move.ACKNOWLEDGE.value, Move.NOT_SOLD.value)
# Moves whose categories are the wanted pieces around an anchor, not a new search.
_TARGETED = frozenset({"complements", "look"})
# The list slots whose update the model decides, by the values the message names.
LEARNED_SLOTS = ("articles", "colours")


@dataclass(frozen=True)
class TrackedTurn:
    state: DialogState
    moves: tuple[str, ...]
    ranks: tuple[int, ...] = ()
    question_about: str | None = None  # product, policy, care or sizes
    anchor_kind: str | None = None  # shown, focus, described, cart
    understanding: Understanding | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class TrackerOptions:
    strategy: TrackerStrategy = "combined"
    # Question topics the shop's pages own (`knowledge.topics`): a question on one of them is
    # about the shop's policy, not a product's record.
    page_topics: tuple[str, ...] = tuple(KnowledgeConfig().topics)
    # Below this probability a learned extra move is not added to the rules' one.
    extra_move_threshold: float = 0.5
    # How sure the model must be to call a message praise or a product not sold.
    move_threshold: float = 0.6
    # Combined: how sure the model must be to overrule the parser's reading of a value.
    role_threshold: float = 0.7


@dataclass(frozen=True)
class Named:
    """One value a message names, and what it is to the wish."""

    slot: str  # articles, colours, relations, recipients, events
    values: tuple[str, ...]
    around: str  # its sentence around it (`mention_text`), what the model reads
    role: str  # want, refuse, other; for relations: recipient, other


@dataclass(frozen=True)
class Wish:
    """What a message asks of the state's lists, read from its named values."""

    articles: tuple[str, ...]
    exclude_articles: tuple[str, ...]
    colours: tuple[str, ...]
    exclude_colours: tuple[str, ...]
    genders: tuple[str, ...]
    relation: str | None
    event: str | None
    style: str | None


# The vocabularies whose named values get a role, by the slot they fill.
NAMED_SLOTS = ("articles", "colours", "relations", "recipients", "events")


def _first_value(vocab: Vocabulary, text: str) -> str | None:
    for _, term in vocab.find(text):
        return term.values[0]
    return None


def named_values(lexicon: Lexicon, u: Understanding) -> list[Named]:
    """Every category, colour and person a message names, with the role the rules give it:
    wanted or refused as the parser read it, otherwise only mentioned; the first person
    named is the recipient."""
    f, out = u.filters, []
    for slot, wanted, refused in (
        ("articles", f.articles, f.exclude_articles),
        ("colours", f.colours, f.exclude_colours),
    ):
        for m, term in getattr(lexicon, slot).find(u.text):
            values = set(term.values)
            role = (
                "want" if values & set(wanted) else "refuse" if values & set(refused) else "other"
            )
            out.append(Named(slot, term.values, mention_text(u.text, m.start(), m.end()), role))
    # People are read on the message as written: a relation that is also a brand ("boss")
    # is blanked from the parser's text.
    plain = normalise(u.parsed.raw).lower()
    for i, (m, term) in enumerate(lexicon.relations.find(plain)):
        role = "recipient" if i == 0 else "other"
        out.append(Named("relations", term.values, mention_text(plain, m.start(), m.end()), role))
    for m, term in lexicon.events.find(u.text):
        out.append(Named("events", term.values, mention_text(u.text, m.start(), m.end()), "want"))
    # Words that say whom a product is for ("wife", "her", "ladies"): their genders.
    for m, term in lexicon.recipients.find(u.text):
        around = mention_text(u.text, m.start(), m.end())
        out.append(Named("recipients", genders_of(term.values), around, "want"))
    return out


class StateTracker:
    def __init__(
        self,
        understander: Understander,
        options: TrackerOptions | None = None,
        model: TrackerModel | None = None,
        lexicon: Lexicon | None = None,
    ) -> None:
        self.options = options or TrackerOptions()
        if self.options.strategy != "rules" and model is None:
            raise ValueError(f"the {self.options.strategy} strategy needs a trained TrackerModel")
        self.understander = understander
        self.model = model
        self.lexicon = lexicon or load_lexicon()

    # --- one dialog, for the evaluation --------------------------------------------------------
    def track(self, messages: list[str], contexts: list[DialogContext]) -> list[TrackedTurn]:
        state, out = DialogState(), []
        for message, context in zip(messages, contexts, strict=True):
            turn = self.step(state, message, context)
            out.append(turn)
            state = turn.state
        return out

    # --- one message ---------------------------------------------------------------------------
    def step(self, state: DialogState, message: str, context: DialogContext) -> TrackedTurn:
        """The state after ``message``, read with what was on screen (``context``; its
        category and language are the state's)."""
        context = reading_context(context, state)
        u = self.understander.understand(message, context)
        moves = self._moves(u, context, state)
        named = named_values(self.lexicon, u)
        if self.model is not None and self.options.strategy != "rules":
            tokens = [f"__move_{m}" for m in moves]
            named = [self._role(n, tokens) for n in named]
        wish = self._wish(u, named)
        new = self._update(state, u, wish, moves, context)
        anchor = None
        if u.anchor is not None and _TARGETED & set(moves):
            anchor = "focus" if u.anchor.kind == "shown" and not u.ranks else u.anchor.kind
            anchor = "described" if anchor == "photo" else anchor
        return TrackedTurn(
            state=new,
            moves=moves,
            ranks=u.ranks,
            question_about=self._about(u, context) if "question" in moves else None,
            anchor_kind=anchor,
            understanding=u,
        )

    # --- what the message asks for -------------------------------------------------------------
    def _moves(
        self, u: Understanding, context: DialogContext, state: DialogState
    ) -> tuple[str, ...]:
        rules = _rule_moves(u)
        if self.options.strategy == "rules" or self.model is None:
            return rules
        learned = self.model.moves(u.text, context_tokens(context, state))
        if self.options.strategy == "learned":
            return learned.labels
        # The understanding's move stays the main request (cues, then its classifier); the
        # model names what those cannot tell, when it is sure: praise or hesitation, a product
        # the shop does not sell; and adds the other requests a message holds ("what's the
        # ring size for 17 mm? and show me silver rings").
        p = learned.probabilities
        primary, *rest = rules
        if u.move_source != "rules":
            sure = [m for m in _MODEL_ONLY if p.get(m, 0.0) >= self.options.move_threshold]
            primary = sure[0] if sure else primary
            if primary == Move.CART_ADD.value:
                # The cart is written on an explicit request only, never on a guess: "the
                # second one is perfect!" and "I'll think about it" are no orders.
                primary = Move.ACKNOWLEDGE.value
        extra = [
            m
            for m, x in p.items()
            if x >= self.options.extra_move_threshold and m not in STATE_NEUTRAL
        ]
        if primary in STATE_NEUTRAL and u.filters.is_empty():
            extra = []  # small talk holds a request only if it names one ("hi! rings?")
        return tuple(dict.fromkeys([primary, *rest, *extra]))

    def _about(self, u: Understanding, context: DialogContext) -> str:
        if self.model is not None and self.options.strategy != "rules":
            return self.model.question_about(u.text, context_tokens(context, None))
        return rule_about(u, self.options.page_topics)

    # --- the next state ------------------------------------------------------------------------
    def _update(
        self,
        state: DialogState,
        u: Understanding,
        wish: Wish,
        moves: tuple[str, ...],
        context: DialogContext,
    ) -> DialogState:
        new = state.model_copy(deep=True)
        new.language = u.language
        new.script = u.script if u.language == "zh" else new.script
        if moves and all(m in STATE_NEUTRAL for m in moves):
            return new
        f = u.filters
        asks = bool(wish.articles or wish.colours) or f.max_price is not None
        if asks and wish.relation and state.recipient and wish.relation != state.recipient:
            # A different person: a new request, nothing of the old one's wish carries over.
            # Only the occasion often holds ("Diwali gifts: for mom ... now for my sister").
            new = DialogState(
                language=new.language,
                script=new.script,
                shown=list(state.shown),
                occasion=state.occasion,
            )
        before = new.model_copy(deep=True)
        for slot, named in (("articles", list(wish.articles)), ("colours", list(wish.colours))):
            op = self._slot_op(slot, before, tuple(named), u.text, moves, context)
            if op == "replace" and named:
                setattr(new, slot, named)
            elif op == "add" and named:
                setattr(new, slot, list(dict.fromkeys([*getattr(new, slot), *named])))
            elif op == "clear":
                setattr(new, slot, [])
        if new.articles != before.articles:
            new.soft = ""
        # A category named again lifts its exclusion; a category refused leaves the wish.
        kept = [a for a in new.exclude_articles if a not in wish.articles]
        new.exclude_articles = list(dict.fromkeys([*kept, *wish.exclude_articles]))
        new.articles = [a for a in new.articles if a not in wish.exclude_articles]
        if u.any_colour:
            new.colours = []
        kept = [c for c in new.exclude_colours if c not in wish.colours]
        new.exclude_colours = list(dict.fromkeys([*kept, *wish.exclude_colours]))
        new.colours = [c for c in new.colours if c not in new.exclude_colours]
        kept = [b for b in new.exclude_brands if b not in f.brands]
        new.exclude_brands = list(dict.fromkeys([*kept, *f.exclude_brands]))
        if f.brands:
            new.brands = [b for b in f.brands if b not in new.exclude_brands]
        if u.any_price:
            new.min_price = new.max_price = new.budget_around = None
        elif f.min_price is not None or f.max_price is not None:
            new.min_price, new.max_price = f.min_price, f.max_price
            new.budget_around = u.parsed.budget_around
        if wish.genders:
            new.genders = list(wish.genders)
        if f.usages:
            new.usages = list(f.usages)
        new.recipient = wish.relation or new.recipient
        new.occasion = wish.event or new.occasion
        new.style = wish.style or new.style
        if "search" in moves or "more_like" in moves:
            soft = u.search_text if u.parsed.remainder.strip() or u.refinements else ""
            new.soft = soft or new.soft
        return new

    def _role(self, named: Named, tokens: list[str]) -> Named:
        """The model's role for a named value: always for the learned strategy; combined,
        where the rules have nothing to say (people, occasions) or the model is sure that a
        value the parser took as wanted is only mentioned ("he already has a backpack")."""
        assert self.model is not None
        found = self.model.mention_role(named.slot, named.around, tokens)
        if found is None:
            return named
        role, p = found
        learned = self.options.strategy == "learned" or named.slot not in ("articles", "colours")
        if learned or (named.role == "want" and p >= self.options.role_threshold):
            return dataclasses.replace(named, role=role)
        return named

    def _wish(self, u: Understanding, named: list[Named]) -> Wish:
        def of(slot: str, role: str) -> list[tuple[str, ...]]:
            return [n.values for n in named if n.slot == slot and n.role == role]

        f = u.filters
        if self.options.strategy == "rules" or self.model is None:
            articles, excluded = f.articles, f.exclude_articles
            colours, no_colours = f.colours, f.exclude_colours
        else:
            articles = narrowest(of("articles", "want"))
            excluded = tuple(dict.fromkeys(v for g in of("articles", "refuse") for v in g))
            colours = tuple(dict.fromkeys(v for g in of("colours", "want") for v in g))
            no_colours = tuple(dict.fromkeys(v for g in of("colours", "refuse") for v in g))
        recipients = of("relations", "recipient")
        events = of("events", "want")
        genders = f.genders
        if self.options.strategy != "rules" and self.model is not None:
            whom = of("recipients", "want")
            genders = whom[0] if whom else ()
        relation = recipients[0][0] if recipients else None
        if relation and not genders and relation in self.lexicon.relation_genders:
            genders = genders_of((self.lexicon.relation_genders[relation],))
        return Wish(
            articles=tuple(a for a in articles if a not in excluded),
            exclude_articles=tuple(excluded),
            colours=tuple(c for c in colours if c not in no_colours),
            exclude_colours=tuple(no_colours),
            genders=tuple(genders),
            relation=relation,
            event=events[0][0] if events else None,
            style=_first_value(self.lexicon.styles, u.text),
        )

    def _slot_op(
        self,
        slot: str,
        state: DialogState,
        named: tuple[str, ...],
        text: str,
        moves: tuple[str, ...],
        context: DialogContext,
    ) -> SlotOp:
        if not named:
            return "keep"
        if self.model is not None and self.options.strategy != "rules":
            tokens = slot_tokens(slot, state, named, moves, context)
            return self.model.slot_op(slot, text, tokens)
        return "replace"


def reading_context(context: DialogContext, state: DialogState) -> DialogContext:
    """What a message is read with: the screen, and the state's category and language."""
    return dataclasses.replace(context, category=tuple(state.articles), language=state.language)


def rule_about(u: Understanding, page_topics: tuple[str, ...]) -> str:
    """What a question is about, by the attribute its cue words name."""
    if u.attribute in page_topics:
        return "policy"
    if u.attribute == "care":
        return "care"
    return "product"


def _rule_moves(u: Understanding) -> tuple[str, ...]:
    """The cues' move, and a search beside it when the message also names a new wish."""
    moves = [u.move.value]
    f = u.filters
    asks = bool(f.articles) and (
        f.max_price is not None or f.min_price is not None or bool(f.colours)
    )
    if u.move in (Move.QUESTION, Move.GREETING, Move.THANKS, Move.CART_ADD) and asks:
        moves.append("search")
    return tuple(moves)


def context_tokens(context: DialogContext, state: DialogState | None) -> list[str]:
    tokens = [f"__shown_{min(context.shown, 3)}", f"__cart_{min(context.cart, 1)}"]
    if state is not None:
        tokens.append("__wish" if state.articles else "__nowish")
    return tokens


def slot_tokens(
    slot: str,
    state: DialogState,
    named: tuple[str, ...],
    moves: tuple[str, ...],
    context: DialogContext,
) -> list[str]:
    """Context for the decision what ``named`` values do to ``slot``."""
    now, before = set(named), set(getattr(state, slot))
    tokens = context_tokens(context, state)
    tokens.append("__same" if now == before else "__overlap" if now & before else "__new")
    tokens.append("__empty" if not before else "__held")
    tokens += [f"__move_{m}" for m in moves]
    if slot == "articles" and set(context.shown_articles) & now:
        tokens.append("__named_shown")
    return tokens
