"""One typed understanding of each shopper message, for the agent and for search alike.

`Understander.understand` reads a message in the context of the dialog (what was shown, what
is in the cart) and returns an `Understanding`: the dialog move, the products pointed at, the
wanted categories and colours and those to avoid, the budget, the recipient and occasion,
the anchor a wanted item must go with, the attribute a question is about, the language.

Numbers, categories and colours come from the query parser and the vocabulary files, so
every one of them is derivable from the message and maps to the catalog's own values. The
move comes from cue phrases (rules); where no cue decides, a trained classifier and then,
optionally, an LLM give their opinion (`MoveStrategy`). Nothing here calls an LLM itself:
the agent passes one in as a `SecondOpinion`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from bijou.retrieval.lexicon import Lexicon, any_of, language_of, load_lexicon, script_of
from bijou.retrieval.query import AnchorPhrase, ParsedQuery, QueryFilters, QueryParser, normalise

if TYPE_CHECKING:
    from bijou.retrieval.move_classifier import MoveClassifier


class Move(StrEnum):
    SEARCH = "search"
    CHEAPER = "cheaper"
    MORE_LIKE = "more_like"
    QUESTION = "question"  # about a product shown: material, size, care...
    COMPARE = "compare"
    COMPLEMENTS = "complements"  # something to go with an anchor
    LOOK = "look"  # several categories together, with or without an anchor
    BLURB = "blurb"  # a description of the products shown, to post or share
    CART_ADD = "cart_add"
    CART_REMOVE = "cart_remove"
    CART_VIEW = "cart_view"
    BLOCK = "block"  # "don't show me that again"
    GREETING = "greeting"
    THANKS = "thanks"
    CHAT = "chat"  # about the assistant itself
    COMPLAINT = "complaint"
    OFF_TOPIC = "off_topic"
    INJECTION = "injection"
    # Only the dialog state tracker's model tells these (no cue phrase does): praise or
    # hesitation with no request ("the second one is perfect!", "I'll think about it"), and
    # a kind of product the shop does not sell ("gold coins", "headphones").
    ACKNOWLEDGE = "acknowledge"
    NOT_SOLD = "not_sold"


# Cue rules are tried in this order: the first move whose cue matches wins (an injection
# over the request inside it, a cart action over the product it names, and so on).
RULE_ORDER = (
    Move.INJECTION,
    Move.CART_VIEW,
    Move.CART_REMOVE,
    Move.CART_ADD,
    Move.BLOCK,
    Move.BLURB,
    Move.LOOK,
    Move.COMPLEMENTS,
    Move.COMPARE,
    Move.MORE_LIKE,
    Move.CHEAPER,
    Move.QUESTION,
    Move.THANKS,
    Move.GREETING,
    Move.CHAT,
    Move.COMPLAINT,
    Move.OFF_TOPIC,
)
# Moves about products shown before: with nothing shown and a product named, a search.
POINTING = frozenset(
    {Move.QUESTION, Move.COMPARE, Move.CART_ADD, Move.MORE_LIKE, Move.BLOCK, Move.BLURB}
)
# Pointing moves that, naming a category not shown, are a new request instead.
_ELSEWHERE = frozenset({Move.CART_ADD, Move.MORE_LIKE, Move.COMPARE, Move.BLOCK})
# Moves that never carry a product request of their own.
SMALL_TALK = frozenset(
    {
        Move.GREETING,
        Move.THANKS,
        Move.CHAT,
        Move.COMPLAINT,
        Move.OFF_TOPIC,
        Move.ACKNOWLEDGE,
        Move.NOT_SOLD,
    }
)

MoveStrategy = Literal["rules", "classifier", "hybrid"]
Source = Literal["rules", "parse", "classifier", "llm", "default"]


class Anchor(BaseModel):
    """What a wanted item must go with: a product shown (by rank, or the one discussed), a
    photo, or something the shopper describes ("my maroon lehenga")."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["shown", "photo", "described"]
    articles: tuple[str, ...] = ()
    colours: tuple[str, ...] = ()
    garment: str | None = None  # a thing the shop does not sell
    text: str = ""


class Understanding(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    text: str
    language: Literal["en", "zh"]
    script: Literal["latin", "hans", "hant"]
    move: Move
    move_source: Source = "rules"
    ranks: tuple[int, ...] = ()  # 1-based positions in the list shown; -1 the last, 0 middle
    pick: Literal["cheapest", "most_expensive"] | None = None
    # What is wanted (for complements and looks: the targets), as search filters.
    filters: QueryFilters = Field(default_factory=QueryFilters)
    budget_total: bool = False  # the budget is for several items together
    article_groups: tuple[tuple[str, ...], ...] = ()  # one per category named
    recipient: str | None = None
    anchor: Anchor | None = None
    attribute: str | None = None
    quantity: int = 1
    refinements: tuple[str, ...] = ()  # "smaller", "simpler": soft search terms
    any_colour: bool = False  # "any colour is fine": drop the colour
    any_price: bool = False  # "no budget": drop the budget
    other_brand: bool = False  # "not that brand": exclude the brand pointed at
    parsed: ParsedQuery = Field(exclude=True, repr=False)

    @property
    def search_text(self) -> str:
        """Soft words for the search engines: the parser's, plus refinements."""
        words = [self.parsed.search_text, *self.refinements]
        return " ".join(dict.fromkeys(w for w in " ".join(words).split() if w))


@dataclass(frozen=True)
class DialogContext:
    """What a message may refer to."""

    shown: int = 0  # products in the last list
    shown_articles: tuple[str, ...] = ()
    has_bundle: bool = False
    cart: int = 0  # lines in the cart
    category: tuple[str, ...] = ()  # the category being searched
    photo: bool = False  # a photo came with this message
    language: str = "en"  # of the conversation so far: "#2" keeps it


class SecondOpinion(Protocol):
    """An LLM asked for the move when neither cues nor the classifier are sure."""

    def __call__(self, message: str, context: DialogContext) -> Move | None: ...


@dataclass(frozen=True)
class MoveVote:
    move: Move
    confidence: float
    source: Source


def _cue_regex(cue: str, openers: str) -> str:
    """A cue phrase as a pattern: "..." is a gap of a few words, "^"/"$" anchor it (after
    any ``openers``: "please add it")."""
    start, end = cue.startswith("^"), cue.endswith("$")
    body = cue.strip("^$").strip()
    parts = []
    for part in (p.strip() for p in body.split("...")):
        if not part:
            continue
        left = r"(?<![a-z0-9])" if part[0].isascii() and part[0].isalnum() else ""
        right = r"(?![a-z0-9])" if part[-1].isascii() and part[-1].isalnum() else ""
        parts.append(left + re.escape(part).replace(r"\ ", r"\s+") + right)
    pattern = r".{0,40}?".join(parts)
    if start:
        pattern = rf"^\W*(?:{openers}[\W]+)*" + pattern
    if end:
        pattern += r"[\s.!?。！？~]*$"
    return pattern


@dataclass(frozen=True)
class _Grammar:
    cues: dict[Move, re.Pattern[str]]
    ranks: re.Pattern[str]
    spans: re.Pattern[str]
    both: re.Pattern[str]
    picks: dict[str, re.Pattern[str]]
    quantity: re.Pattern[str]
    any_colour: re.Pattern[str]
    any_price: re.Pattern[str]
    other_brand: re.Pattern[str]
    alternatives: re.Pattern[str]
    cart_both: re.Pattern[str]
    shopping: re.Pattern[str]


@cache
def _grammar() -> _Grammar:
    lex = load_lexicon()
    openers = any_of(lex.openers)
    # Cues are read on normalised text, so they are normalised too ("what's" -> "what").
    cues = {
        Move(name): re.compile(
            # Longest first, so a match covers all of its cue ("add it to my bag").
            "|".join(
                f"(?:{_cue_regex(normalise(c).lower(), openers)})"
                for c in sorted(phrases, key=len, reverse=True)
            )
        )
        for name, phrases in lex.moves.items()
    }
    r = lex.ranks
    latin = {k: v for k, v in r.ordinals.items() if k.isascii() and not k.isdigit()}
    zh = {k: v for k, v in r.ordinals.items() if not k.isascii() or k.isdigit()}
    nouns_latin = any_of([n for n in r.nouns if n.isascii()])
    nouns_zh = any_of([n for n in r.nouns if not n.isascii()])
    ordinal = any_of(list(latin))
    numbered = any_of([n for n in r.numbered if n.isascii()])
    ranks = re.compile(
        rf"(?<![a-z])(?:the\s+)?(?P<o1>{ordinal})\s+{nouns_latin}(?![a-z])"
        rf"|(?<![a-z])the\s+(?P<o2>{ordinal})(?![a-z])"
        rf"|(?:(?<![a-z0-9])|(?<=#)){numbered}\s*(?P<n>[1-9])(?![0-9])"
        rf"|#\s*(?P<h>[1-9])(?![0-9])"
        rf"|第\s*(?P<z>{any_of(list(zh))})\s*{nouns_zh}?"
        rf"|(?P<zl>最后一){nouns_zh}"
    )
    counts = any_of(list(r.counts))
    spans = re.compile(
        rf"(?<![a-z])(?P<w>first|top|last)\s+(?P<c>{counts})(?![a-z0-9])"
        rf"|(?P<zw>前|后|最后)\s*(?P<zc>{counts})\s*{nouns_zh}"
    )
    picks = {name: re.compile(any_of(list(words))) for name, words in r.picks.items()}
    return _Grammar(
        cues=cues,
        ranks=ranks,
        spans=spans,
        both=re.compile(any_of(list(r.both))),
        picks=picks,
        quantity=re.compile(
            r"(?<![\w#])([2-9])\s*(?:of (?:them|it|those|these)|pieces|pcs|x)(?![a-z])"
            # Not "第2个" (a rank; normalising puts a space after 第).
            r"|(?<![第前后\d])(?<![第前后]\s)([2-9两二三四五六七八九])\s*[个件条对只]"
        ),
        any_colour=re.compile(any_of(lex.relax["any_colour"])),
        any_price=re.compile(any_of(lex.relax["any_price"])),
        other_brand=re.compile(any_of(lex.relax["other_brand"])),
        alternatives=re.compile(any_of(lex.alternatives)),
        cart_both=re.compile(any_of(lex.cart_both)),
        shopping=re.compile(any_of(lex.shopping)),
    )


_ZH_COUNT = {"两": 2, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


class Understander:
    """The one pipeline from a message to an `Understanding`."""

    def __init__(
        self,
        parser: QueryParser,
        *,
        strategy: MoveStrategy = "hybrid",
        classifier: MoveClassifier | None = None,
        threshold: float = 0.6,
        second_opinion: SecondOpinion | None = None,
    ) -> None:
        if strategy != "rules" and classifier is None:
            from bijou.retrieval.move_classifier import load_move_classifier

            classifier = load_move_classifier()
        self.parser = parser
        self.strategy = strategy
        self.classifier = classifier
        self.threshold = threshold
        self.second_opinion = second_opinion
        self.lexicon: Lexicon = load_lexicon()
        self._g = _grammar()

    def understand(self, message: str, context: DialogContext | None = None) -> Understanding:
        context = context or DialogContext()
        raw = " ".join((message or "").split())
        parsed = self.parser.parse(raw)
        text = parsed.text or normalise(raw).lower()
        vote = self._move(text, parsed, context)
        ranks = self._ranks(text, vote.move)
        anchor = self._anchor(parsed.anchor, vote.move, context, ranks)
        f = parsed.filters
        articles = f.articles
        if parsed.anchor is not None and anchor is None and not articles:
            # "My gold earrings" with nothing to go with them: a description, not an anchor.
            articles = parsed.anchor.articles
        refinements = tuple(
            dict.fromkeys(term.values[0] for _, term in self.lexicon.refinements.find(text))
        )
        quantity = self._quantity(text)
        return Understanding(
            text=text,
            language=language_of(raw, context.language),  # type: ignore[arg-type]
            script=script_of(raw),  # type: ignore[arg-type]
            move=vote.move,
            move_source=vote.source,
            ranks=ranks,
            pick=self._pick(text),
            filters=dataclasses.replace(f, articles=articles),
            budget_total=parsed.budget_total,
            article_groups=parsed.article_groups,
            recipient=parsed.recipient,
            anchor=anchor,
            attribute=self._attribute(text) if vote.move is Move.QUESTION else None,
            quantity=quantity,
            refinements=refinements,
            any_colour=bool(self._g.any_colour.search(text)),
            any_price=bool(self._g.any_price.search(text)),
            other_brand=bool(self._g.other_brand.search(text)),
            parsed=parsed,
        )

    # --- the move ----------------------------------------------------------------------------
    def _move(self, text: str, parsed: ParsedQuery, context: DialogContext) -> MoveVote:
        rules = self._rules(text, parsed, context)
        if self.strategy == "rules":
            return rules or MoveVote(self._default(parsed, context), 0.5, "default")
        if self.strategy == "classifier":
            predicted = self._classify(text)
            return predicted if predicted is not None else MoveVote(Move.SEARCH, 0.0, "default")
        if rules is not None:
            return rules
        predicted = self._classify(text)
        if predicted is not None and predicted.confidence >= self.threshold:
            return self._fit(predicted, parsed, context)
        if self.second_opinion is not None:
            opinion = self.second_opinion(text, context)
            if opinion is not None:
                return self._fit(MoveVote(opinion, 0.5, "llm"), parsed, context)
        if predicted is not None and self._productany_of(parsed) == 0:
            return self._fit(predicted, parsed, context)
        return MoveVote(self._default(parsed, context), 0.5, "default")

    def _classify(self, text: str) -> MoveVote | None:
        if self.classifier is None:
            return None
        move, confidence = self.classifier.predict(text)
        return MoveVote(Move(move), confidence, "classifier")

    def _fit(self, vote: MoveVote, parsed: ParsedQuery, context: DialogContext) -> MoveVote:
        """A learned move that cannot apply (a question with nothing shown) gives way."""
        if vote.move in POINTING and context.shown == 0 and not context.has_bundle:
            return MoveVote(self._default(parsed, context), vote.confidence, vote.source)
        if vote.move in SMALL_TALK and self._productany_of(parsed) > 0:
            return MoveVote(Move.SEARCH, vote.confidence, vote.source)
        return vote

    def _rules(self, text: str, parsed: ParsedQuery, context: DialogContext) -> MoveVote | None:
        g = self._g
        products = self._productany_of(parsed)
        for move in RULE_ORDER:
            pattern = g.cues.get(move)
            cue = pattern.search(text) if pattern is not None else None
            if cue is None:
                continue
            if move in POINTING and products and not (context.shown or context.has_bundle):
                continue  # "I'll take a gold ring under 2000" with nothing shown: a search
            rest = text[: cue.start()] + " " + text[cue.end() :]
            if move in _ELSEWHERE and self._names_other(rest, context):
                continue  # "I'd like to buy a watch" while earrings are shown: a new search
            if move in SMALL_TALK and self._productany_of(parsed, occasions=False):
                continue  # "hi, I need earrings"; "write a letter" names no product
            if move == Move.COMPLEMENTS and self._look(parsed, text):
                return MoveVote(Move.LOOK, 1.0, "rules")
            if move == Move.LOOK and context.shown and self._one_more(self.parser.parse(rest)):
                # "complete the look: a clutch under 1500": one piece to go with what is
                # shown (the cue's own words, "poora set", name none).
                return MoveVote(Move.COMPLEMENTS, 1.0, "rules")
            return MoveVote(move, 1.0, "rules")
        # "cufflinks and a belt to go with my navy suit, 2000 together": a look around it.
        if self._look(parsed, text):
            return MoveVote(Move.LOOK, 1.0, "parse")
        if parsed.anchor is not None and (
            parsed.filters.articles or parsed.anchor.garment or parsed.anchor.pointer
        ):
            return MoveVote(Move.COMPLEMENTS, 1.0, "parse")
        if products or self._relaxes(text):
            return MoveVote(Move.SEARCH, 1.0, "parse")
        if (context.shown or context.category) and self.lexicon.refinements.pattern.search(text):
            return MoveVote(Move.SEARCH, 0.9, "parse")  # "smaller ones": refine the search
        return None

    def _names_other(self, text: str, context: DialogContext) -> bool:
        """The text names a category that is not among those shown (the cue's own words,
        like "bag" in "add it to my bag", aside)."""
        named = {v for _, term in self.lexicon.articles.find(text) for v in term.values}
        return bool(named) and not context.has_bundle and not named & set(context.shown_articles)

    def _several(self, parsed: ParsedQuery, text: str) -> bool:
        """Two or more categories asked for together ("a watch and a wallet"), not as
        alternatives ("earrings or a pendant")."""
        distinct = {group for group in parsed.article_groups}
        return len(distinct) >= 2 and not self._g.alternatives.search(text)

    @staticmethod
    def _one_more(parsed: ParsedQuery) -> bool:
        """One category named, its budget its own."""
        return len(set(parsed.article_groups)) == 1 and not parsed.budget_total

    def _look(self, parsed: ParsedQuery, text: str) -> bool:
        """Several categories within one total: a look, with or without an anchor."""
        return self._several(parsed, text) and parsed.budget_total

    def _relaxes(self, text: str) -> bool:
        g = self._g
        return bool(
            g.any_colour.search(text) or g.any_price.search(text) or g.other_brand.search(text)
        )

    @staticmethod
    def _productany_of(parsed: ParsedQuery, *, occasions: bool = True) -> int:
        """How much of a product request the message holds: categories, colours, prices,
        brands, occasions (a recipient alone is not one: "write a letter to my mom"; nor,
        for small talk, an occasion: "how do you work")."""
        f = parsed.filters
        return sum(
            bool(v)
            for v in (
                f.articles,
                f.colours,
                f.exclude_colours,
                f.brands,
                f.exclude_brands,
                f.usages if occasions else (),
                f.min_price is not None or f.max_price is not None,
                parsed.anchor is not None,
            )
        )

    def _default(self, parsed: ParsedQuery, context: DialogContext) -> Move:
        """No cue: a search when the message holds any request, else small talk."""
        if self._productany_of(parsed) or parsed.filters.genders or context.photo:
            return Move.SEARCH
        text = parsed.text or ""
        shopping = self._g.shopping.search(text) or self.lexicon.refinements.pattern.search(text)
        return Move.SEARCH if shopping else Move.CHAT

    # --- references --------------------------------------------------------------------------
    def _ranks(self, text: str, move: Move) -> tuple[int, ...]:
        g, r = self._g, self.lexicon.ranks
        found: list[tuple[int, int]] = []
        taken: list[tuple[int, int]] = []
        for m in g.spans.finditer(text):
            where = m["w"] or m["zw"]
            count = r.counts[m["c"] or m["zc"]]
            values = range(-count, 0) if where in ("last", "后", "最后") else range(1, count + 1)
            found += [(m.start(), v) for v in values]
            taken.append(m.span())
        for m in g.ranks.finditer(text):
            if any(m.start() < end and start < m.end() for start, end in taken):
                continue  # "the last" in "the last two"
            if m["n"] or m["h"]:
                value = int(m["n"] or m["h"])
            elif m["zl"]:
                value = -1
            else:
                value = r.ordinals[(m["o1"] or m["o2"] or m["z"]).strip()]
            found.append((m.start(), value))
        ranks = tuple(dict.fromkeys(v for _, v in sorted(found)))
        both = g.both.search(text) if move is Move.COMPARE else g.cart_both.search(text)
        if not ranks and move in (Move.COMPARE, Move.CART_ADD) and both:
            ranks = (1, 2)
        return ranks

    def _pick(self, text: str) -> Literal["cheapest", "most_expensive"] | None:
        for name, pattern in self._g.picks.items():
            if pattern.search(text):
                return name  # type: ignore[return-value]
        return None

    def _anchor(
        self,
        phrase: AnchorPhrase | None,
        move: Move,
        context: DialogContext,
        ranks: tuple[int, ...],
    ) -> Anchor | None:
        if move not in (Move.COMPLEMENTS, Move.LOOK, Move.MORE_LIKE):
            return None
        if phrase is not None and not phrase.pointer:
            return Anchor(
                kind="described",
                articles=phrase.articles,
                colours=phrase.colours,
                garment=phrase.garment,
                text=phrase.text,
            )
        if context.photo and not ranks:
            return Anchor(kind="photo")
        if ranks or context.shown or (phrase is not None and phrase.pointer):
            return Anchor(kind="shown")
        return None

    def _attribute(self, text: str) -> str | None:
        for _, term in self.lexicon.attributes.find(text):
            return term.values[0]
        return None

    def _quantity(self, text: str) -> int:
        m = self._g.quantity.search(text)
        if m is None:
            return 1
        count = m[1] or m[2]
        return int(count) if count.isdigit() else _ZH_COUNT[count]
