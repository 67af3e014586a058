"""The shopping agent: one turn is understand -> tools -> grounded reply.

The understanding (`bijou.retrieval.understanding`) decides the dialog move and every hard
constraint; tools fetch real products; the LLM writes only the lead sentence (or an answer,
or a blurb) under a verifier. Product lines, prices, comparisons and reasons are rendered
from the catalog records themselves, so a reply can never quote a price the shop does not
charge. Any LLM failure falls back to a template.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from PIL import Image
from pydantic import BaseModel

from bijou.agent import phrases, tools
from bijou.agent.llm import ChatMessage, ChatModel, LLMError, load_chat_model
from bijou.agent.memory import NotInCartError, SessionStore
from bijou.agent.opinion import LLMMoveOpinion
from bijou.agent.phrases import money, say
from bijou.agent.tools import CartItem, ShopContext, ToolCall, ToolResult
from bijou.agent.turns import cheaper, exclude_brand_of, referenced, remember
from bijou.agent.verify import Grounding, ReplyVerifier, sentence_end
from bijou.catalog.schema import Product
from bijou.config import AgentConfig, BijouConfig
from bijou.retrieval.complements import best_look, harmony_with
from bijou.retrieval.lexicon import load_lexicon, to_traditional
from bijou.retrieval.reasons import Reason, colour_reasons
from bijou.retrieval.search import SearchEngine, SearchRequest
from bijou.retrieval.shop import LocalShop, Shop
from bijou.retrieval.sizes import SizeChart, SizeQuestion
from bijou.retrieval.understanding import (
    POINTING,
    SMALL_TALK,
    DialogContext,
    Move,
    Understander,
    Understanding,
)
from bijou.understanding.learned import MODEL_PATH, TrackerModel, load_tracker_model
from bijou.understanding.state import DialogState
from bijou.understanding.tracker import StateTracker, TrackedTurn, TrackerOptions

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000
PHOTO_VOTES = 5  # nearest products that vote on what a shopper's photo shows
LOOK_CANDIDATES = 5  # per category, for the exact search of a look within a total
DESCRIBED_CANDIDATES = 20  # products ranked by colour harmony with a described anchor

PROMPTS_FILE = Path(__file__).with_name("prompts.yaml")
_PROMPTS = yaml.safe_load(PROMPTS_FILE.read_text(encoding="utf-8"))
SYSTEM_PROMPT: dict[str, str] = _PROMPTS["system"]
TASKS: dict[str, dict[str, str]] = _PROMPTS["tasks"]
EXAMPLES: dict[str, dict[str, list[str]]] = _PROMPTS["examples"]


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReplyDone:
    reply: Reply


AgentEvent = TextDelta | ReplyDone


@dataclass
class _Turn:
    """What one turn has gathered before it is rendered."""

    ctx: ShopContext
    understanding: Understanding
    about: str | None = None  # what a question is about: product, policy, care, sizes
    move: str = ""  # what the turn did
    lead: str = ""  # templated opening (used as is, or followed by the LLM's sentence)
    llm_task: str | None = None  # intro | answer | blurb: what the LLM may write
    llm_facts: str = ""
    lines: list[str] = field(default_factory=list)
    cards: list[ProductView] = field(default_factory=list)  # the recommendations
    cross_sell: list[ProductView] = field(default_factory=list)
    bundle: BundleView | None = None
    cart: list[CartItem] = field(default_factory=list)
    relaxed: tuple[str, ...] = ()
    tools: list[str] = field(default_factory=list)
    grounded: list[Product] = field(default_factory=list)  # what the LLM text may mention
    totals: list[float] = field(default_factory=list)  # sums the reply states
    sources: list[str] = field(default_factory=list)  # the shop's pages quoted ("file#section")

    @property
    def language(self) -> str:
        return self.understanding.language


class ShoppingAgent:
    def __init__(
        self,
        config: BijouConfig,
        shop: Shop,
        store: SessionStore,
        llm: ChatModel,
    ) -> None:
        self.config = config
        self.settings: AgentConfig = config.agent
        self.shop = shop
        self.store = store
        self.llm = llm
        self.currency = config.agent.currency
        self._understander: Understander | None = None
        self._tracker: StateTracker | None = None
        # Loaded once here, not on a shopper's first turn.
        s = config.agent
        self._tracker_model: TrackerModel | None = (
            load_tracker_model(s.tracker_model or MODEL_PATH) if s.tracker != "rules" else None
        )
        group = self.settings.lead_group
        self.lead_articles = load_lexicon().groups.get(group, ()) if group else ()
        self.sizes = SizeChart.load(shop.size_chart)

    @classmethod
    def load(cls, config: BijouConfig, engine: SearchEngine | None = None) -> ShoppingAgent:
        """The agent on the catalog in this process (``engine``: one already loaded)."""
        shop = LocalShop.load(config, engine)
        return cls(config, shop, SessionStore.open(config), load_chat_model(config))

    def close(self) -> None:
        self.store.close()
        if isinstance(self.shop, LocalShop):
            self.shop.close()

    def start_session(self, shopper_id: str | None = None) -> str:
        return self.store.create_session(shopper_id).id

    def focus_on(self, session_id: str, product_id: str) -> None:
        """The conversation turns to a product the shopper acted on outside the chat (tried
        it on): "add it to my cart" and "what goes with it?" then mean that one."""
        session = self.store.get_session(session_id)
        if session is None:
            self.store.history(session_id)  # raises UnknownSessionError with the id
            return
        self.store.save_state(session_id, session.state.model_copy(update={"focus": product_id}))

    def run_tool(self, call: ToolCall) -> ToolResult:
        """One tool called from outside a conversation; an unknown cart session raises
        UnknownSessionError."""
        if call.session_id is not None:
            self.store.cart(call.session_id)
        state = call.state or DialogState()
        ctx = ShopContext(self.shop, self.store, call.session_id or "", state, call.image)
        return tools.call(call.name, ctx, **call.args)

    @property
    def understander(self) -> Understander:
        """The understanding pipeline on the shop's current parser (it learns new brands)."""
        parser = self.shop.parser
        if self._understander is None or self._understander.parser is not parser:
            s = self.settings
            opinion = LLMMoveOpinion(self.llm, self.config.llm.timeout_s) if s.llm_moves else None
            self._understander = Understander(
                parser,
                strategy=s.understanding,
                threshold=s.move_threshold,
                second_opinion=opinion,
            )
        return self._understander

    @property
    def tracker(self) -> StateTracker:
        """The dialog state tracker over the current understanding pipeline."""
        understander = self.understander
        if self._tracker is None or self._tracker.understander is not understander:
            options = TrackerOptions(
                strategy=self.settings.tracker,
                page_topics=tuple(self.config.knowledge.topics),
            )
            self._tracker = StateTracker(understander, options, self._tracker_model)
        return self._tracker

    def reply(self, session_id: str, message: str, image: Image.Image | None = None) -> Reply:
        for event in self.stream(session_id, message, image):
            if isinstance(event, ReplyDone):
                return event.reply
        raise AssertionError("stream ended without a reply")

    def stream(
        self, session_id: str, message: str, image: Image.Image | None = None
    ) -> Iterator[AgentEvent]:
        """Text pieces as they are ready, then the whole reply with its products."""
        start = time.monotonic()
        session = self.store.get_session(session_id)
        if session is None:
            self.store.history(session_id)  # raises UnknownSessionError with the id
        message = (message or "").strip()[:MAX_MESSAGE_CHARS]
        state = session.state
        tracked = self.tracker.step(state, message, self._context(session_id, state, image))
        u = tracked.understanding
        assert u is not None
        ctx = ShopContext(self.shop, self.store, session_id, state, image)
        turn = _Turn(ctx, u, about=tracked.question_about)
        try:
            self._act(turn, message, image, tracked)
        except Exception:
            # A tool failure must not lose the session: answer with an apology and go on.
            log.exception("turn failed in session %s", session_id)
            turn = _Turn(ctx, u, lead=say(u.language, "error"))
        traditional = u.language == "zh" and ctx.state.script == "hant"
        first_token: float | None = None
        pieces: list[str] = []
        fallback, repaired = False, 0
        for piece, meta in self._render(turn, message):
            if piece:
                piece = to_traditional(piece) if traditional else piece
                first_token = first_token or time.monotonic() - start
                pieces.append(piece)
                yield TextDelta(piece)
            if meta is not None:
                fallback, repaired = meta
        reply = Reply(
            session_id=session_id,
            text="".join(pieces).strip(),
            language=u.language,
            move=turn.move or u.move.value,
            products=turn.cards,
            cross_sell=turn.cross_sell,
            bundle=turn.bundle,
            cart=[ProductView.of(i.product, quantity=i.quantity) for i in turn.cart],
            relaxed=list(turn.relaxed),
            tools=turn.tools,
            sources=turn.sources,
            fallback=fallback,
            repaired=repaired,
            first_token_s=first_token,
            total_s=time.monotonic() - start,
        )
        self._save(session.shopper_id, session_id, ctx.state, message, reply)
        yield ReplyDone(reply)

    def _context(
        self, session_id: str, state: DialogState, image: Image.Image | None
    ) -> DialogContext:
        shown = self.shop.get_many(state.shown) if state.shown else []
        return DialogContext(
            shown=len(state.shown),
            shown_articles=tuple(p.article for p in shown),
            has_bundle=bool(state.bundle),
            cart=len(self.store.cart(session_id)),
            category=tuple(state.articles),
            photo=image is not None,
            language=state.language,
        )

    # --- acting --------------------------------------------------------------------------
    def _call(self, turn: _Turn, name: str, **args: object) -> ToolResult:
        turn.tools.append(name)
        return tools.call(name, turn.ctx, **args)

    def _act(
        self, turn: _Turn, message: str, image: Image.Image | None, tracked: TrackedTurn
    ) -> None:
        u = turn.understanding
        ctx, lang = turn.ctx, u.language
        # Every request a message holds is served, in its order; small talk beside a request
        # ("hi! silver rings under 2k") gives way to it.
        moves = [Move(m) for m in tracked.moves]
        requests = [m for m in moves if m not in SMALL_TALK] or moves[:1]
        move = requests[0]
        if not message and image is None:
            turn.lead, turn.move = say(lang, "empty"), "empty"
            return
        # A photo is a search unless the words ask for something else ("something like
        # this" points at the photo, not at an earlier result).
        small_talk = move in SMALL_TALK and move is not Move.COMPLAINT
        if image is not None and (small_talk or (move is Move.MORE_LIKE and not u.ranks)):
            move = Move.SEARCH
        turn.move = move.value
        # "US 7 in Indian?", "my bangle is 2-6, what is that in China": a size to convert,
        # whatever the cues made of it (the category it names is not a search).
        asked = self.sizes.read(u.text) if image is None else None
        if asked is not None and move in (Move.SEARCH, Move.QUESTION, Move.CHAT):
            self._convert_size(turn, asked)
            if Move.SEARCH in requests and u.filters.articles:
                # "Ring size for 17 mm? And show me silver rings under 3000": both.
                ctx.state = tracked.state
                self._also(turn, self._do_search, [])
            return
        if move is Move.INJECTION:
            # Never acted on, never shown to the LLM; a product request in it is still served.
            turn.lead = say(lang, "injection")
            if not u.filters.is_empty():
                ctx.state = tracked.state
                self._search(turn, lead=False)
            return
        # "Can I pay cash when it arrives?" names no cue of a question: where the shop's
        # pages answer a message the cues took for small talk, the pages answer it.
        if move in (Move.CHAT, Move.OFF_TOPIC) and image is None and self._documents(turn):
            return
        if move in SMALL_TALK:
            turn.lead = say(lang, move.value)
            return
        ctx.state = tracked.state
        if u.filters.articles:
            ctx.state.led = False
        state = ctx.state
        known = {p.id: p for p in self.shop.get_many([*state.shown, *state.bundle])}
        targets = referenced(state, u.ranks, known, u)
        if u.ranks and len(targets) < len(u.ranks) and move in (*POINTING, Move.COMPLEMENTS):
            # "The second one" after a single result: ask rather than guess.
            turn.lead = say(lang, "out_of_range", count=len(state.shown))
            return
        if image is not None and not u.ranks and move in (Move.COMPLEMENTS, Move.LOOK):
            # "What goes with this [photo]": the catalog product the photo looks most like.
            look = self.shop.search(SearchRequest(image=image, top_k=1))
            targets = look.ids[:1] or targets
        # "Not that brand": the brand of the product pointed at, or of the top result.
        pointed = targets[0] if targets else (state.shown[0] if state.shown else None)
        if pointed:
            ctx.state = exclude_brand_of(ctx.state, known.get(pointed) or self.shop.get(pointed), u)
        handlers = self._handlers()
        handlers[move](turn, targets)
        for also in dict.fromkeys(requests[1:]):
            if also is not move and also in handlers:
                self._also(turn, handlers[also], targets)

    def _also(
        self, turn: _Turn, handler: Callable[[_Turn, list[str]], None], targets: list[str]
    ) -> None:
        """A second request of the same message, served after the first: its lead and lines
        follow the first's; the templates speak for both (no LLM sentence for two answers)."""
        lead, lines = turn.lead, list(turn.lines)
        turn.lead, turn.lines = "", []
        handler(turn, targets)
        turn.lines = [*lines, *([turn.lead] if turn.lead else []), *turn.lines]
        turn.lead, turn.llm_task = lead, None

    def _handlers(self) -> dict[Move, Callable[[_Turn, list[str]], None]]:
        return {
            Move.SEARCH: self._do_search,
            Move.CHEAPER: self._do_cheaper,
            Move.MORE_LIKE: self._do_more_like,
            Move.QUESTION: self._do_question,
            Move.COMPARE: self._do_compare,
            Move.COMPLEMENTS: self._do_complements,
            Move.LOOK: self._do_look,
            Move.BLURB: self._do_blurb,
            Move.CART_ADD: self._do_cart_add,
            Move.CART_REMOVE: self._do_cart_remove,
            Move.CART_VIEW: self._do_cart_view,
            Move.BLOCK: self._do_block,
        }

    # --- search --------------------------------------------------------------------------
    def _do_search(self, turn: _Turn, targets: list[str]) -> None:
        self._search(turn)

    def _search(self, turn: _Turn, *, like: str | None = None, lead: bool = True) -> None:
        ctx, lang = turn.ctx, turn.language
        u = turn.understanding
        if ctx.image is not None and like is None and not u.filters.articles:
            # A new photo says what is wanted; the category of earlier turns gives way.
            ctx.state.articles = self._photo_article(ctx.image)
            ctx.state.led = False
        if not ctx.state.articles and ctx.image is None and like is None and self.lead_articles:
            # A jewelry shop leads with jewelry; other categories come as suggestions.
            ctx.state.articles, ctx.state.led = list(self.lead_articles), True
        result = self._call(
            turn,
            "search_products",
            query=_query_text(ctx.state) or u.text,
            like_product_id=like,
            limit=self.settings.max_products,
        )
        turn.relaxed = result.relaxed
        state = ctx.state
        if not result.products:
            self._nothing(turn)
            return
        self._show(turn, result.products, result.exact)
        if lead:
            if like:
                anchor = self.shop.get(like)
                turn.lead = say(lang, "more_like", title=anchor.title if anchor else "")
            else:
                turn.lead = say(
                    lang,
                    "found" if len(result.products) > 1 else "found_one",
                    count=len(result.products),
                    scope=phrases.scope(state, lang, self.currency),
                )
            turn.llm_task = "intro"
        if result.relaxed:
            joiner = "、" if lang == "zh" else ", "
            what = joiner.join(phrases.filter_name(r, lang) for r in result.relaxed)
            turn.lead += (" " if lang == "en" else "") + say(lang, "relaxed", what=what)
            turn.llm_task = None  # the relaxation must be said exactly
        self._cross_sell(turn, result.products[0])

    def _show(self, turn: _Turn, products: list[Product], exact: list[bool] | None = None) -> None:
        """The products as the turn's recommendations: cards, lines, the list "the second
        one" points into."""
        state, lang = turn.ctx.state, turn.language
        state.shown = [p.id for p in products]
        state.focus = state.shown[0] if len(state.shown) == 1 else None
        exact = exact or [True] * len(products)
        turn.cards = [
            ProductView.of(p, rank=i, reason=phrases.reason(p, state, lang, self.currency), exact=e)
            for i, (p, e) in enumerate(zip(products, exact, strict=True), 1)
        ]
        turn.grounded += products
        turn.lines += [phrases.product_line(c.rank, c, c.reason, self.currency) for c in turn.cards]

    def _photo_article(self, image: Image.Image) -> list[str]:
        """The category a photo shows, when its closest products mostly agree ("same style
        but in black" keeps to handbags for a handbag photo)."""
        look = self.shop.search(SearchRequest(image=image, top_k=PHOTO_VOTES))
        articles = [r.product.article for r in look.results]
        best = max(set(articles), key=articles.count, default=None)
        return [best] if best and articles.count(best) > PHOTO_VOTES // 2 else []

    def _nothing(self, turn: _Turn) -> None:
        """No product fits: say so, and where the budget is the reason, what the floor is."""
        ctx, lang = turn.ctx, turn.language
        turn.lead = say(lang, "none", scope=phrases.scope(ctx.state, lang, self.currency))
        if ctx.state.max_price is None:
            return
        unbounded = ctx.state.model_copy(update={"max_price": None, "min_price": None})
        probe = ShopContext(self.shop, self.store, ctx.session_id, unbounded)
        found = tools.call(
            "search_products", probe, query=_query_text(ctx.state) or turn.understanding.text,
            limit=10,
        )  # fmt: skip
        if found.products:
            low = min(found.products, key=lambda p: (p.price, p.id))
            turn.lead += " " + say(
                lang, "cheapest", title=low.title, price=money(low.price, self.currency)
            )

    def _cross_sell(self, turn: _Turn, anchor: Product) -> None:
        if self.settings.cross_sell <= 0:
            return
        result = self._call(
            turn, "find_complements", product_id=anchor.id, limit=self.settings.cross_sell
        )
        lang = turn.language
        turn.cross_sell = [
            ProductView.of(
                c.product, anchor_id=anchor.id, reason=self._why(c.reasons, anchor, lang)
            )
            for c in result.complements
        ]
        if turn.cross_sell:
            turn.lines.append(say(lang, "cross_sell"))
            turn.lines += [
                phrases.product_line(None, c, c.reason, self.currency) for c in turn.cross_sell
            ]

    def _do_cheaper(self, turn: _Turn, targets: list[str]) -> None:
        # "Cheaper, under 500" names the new budget itself; a bare "cheaper" goes below
        # what was shown.
        if turn.understanding.filters.max_price is None:
            shown = self.shop.get_many(turn.ctx.state.shown)
            turn.ctx.state = cheaper(turn.ctx.state, [p.price for p in shown])
        self._search(turn)

    def _do_more_like(self, turn: _Turn, targets: list[str]) -> None:
        if not targets:
            turn.lead = say(turn.language, "which" if turn.ctx.state.shown else "nothing_shown")
            return
        self._search(turn, like=targets[0])

    def _one_target(self, turn: _Turn, targets: list[str]) -> str | None:
        state = turn.ctx.state
        target = targets[0] if targets else (state.shown[0] if len(state.shown) == 1 else None)
        if target is None:
            turn.lead = say(turn.language, "which" if state.shown else "nothing_shown")
        return target

    # --- questions and comparisons ---------------------------------------------------------
    def _do_question(self, turn: _Turn, targets: list[str]) -> None:
        state, u = turn.ctx.state, turn.understanding
        target = (
            targets[0] if targets else (state.focus or (state.shown[0] if state.shown else None))
        )
        # The shop's own pages answer its policies; a product's listing answers the rest,
        # and the pages stand in where the listing is silent (care, purity, sizes).
        pages_first = (
            u.attribute in self.config.knowledge.topics
            or turn.about in ("policy", "care", "sizes")
            or target is None
        )
        if pages_first and self._documents(turn):
            return
        if target is None:
            turn.lead = say(turn.language, "no_documents")
            return
        result = self._call(
            turn,
            "answer_product_question",
            product_id=target,
            question=u.text,
            attribute=u.attribute,
        )
        product, lang = result.products[0], turn.language
        state.focus = product.id
        turn.grounded.append(product)
        topic = phrases.attribute_name(u.attribute, lang)
        if not result.facts:
            if u.attribute is not None and self._documents(turn):
                return
            turn.lead = say(lang, "no_facts", title=product.title, topic=topic)
            return
        turn.lead = say(lang, "question", title=product.title)
        facts = [f"{phrases.field_name(f.field, lang)}: {f.value}" for f in result.facts]
        turn.lines += facts
        turn.llm_task, turn.llm_facts = "answer", f"Product: {product.title}\n" + "\n".join(facts)

    def _documents(self, turn: _Turn) -> bool:
        """Answer from the shop's documents, quoting the sections and naming their pages;
        False when they do not say. No LLM writes here: a policy is quoted, not reworded,
        and no product fact is mixed in."""
        result = self._call(turn, "answer_shop_question", question=turn.understanding.text)
        if not result.passages:
            return False
        turn.move = "shop_question"
        first = result.passages[0]
        turn.lead = say(turn.language, "documents", title=first.title, section=first.section)
        for passage in result.passages:
            if passage is not first:
                turn.lines.append(say(turn.language, "documents_also", title=passage.title,
                                      section=passage.section))  # fmt: skip
            turn.lines += [ln for ln in passage.text.splitlines() if ln.strip()]
        turn.sources += [f"{p.source}#{p.section}" for p in result.passages]
        return True

    def _convert_size(self, turn: _Turn, asked: SizeQuestion) -> None:
        result = self._call(
            turn, "convert_size", kind=asked.kind, system=asked.system, size=asked.size
        )
        turn.move = "size_conversion"
        lang = turn.language
        if result.size is None:
            turn.lead = say(lang, "size_unknown", detail=result.error or "")
            return
        conversion, row = result.size, result.size.row
        named = phrases.size_system(asked.system, lang)
        sizes = ", ".join(f"{phrases.size_system(k, lang)} {v}" for k, v in row.sizes.items())
        key = "size_exact" if conversion.exact else "size_nearest"
        turn.lead = say(lang, key, kind=phrases.size_kind(asked.kind, lang), system=named,
                        size=asked.size.upper(), sizes=sizes, diameter=f"{row.diameter_mm:g}",
                        circumference=f"{row.circumference_mm:g}")  # fmt: skip
        turn.sources.append(f"{self.shop.size_chart.name}#{asked.kind}")

    def _do_compare(self, turn: _Turn, targets: list[str]) -> None:
        state, lang = turn.ctx.state, turn.language
        ids = list(dict.fromkeys(targets if len(targets) >= 2 else state.shown[:2]))
        if len(ids) < 2:
            turn.lead = say(lang, "nothing_shown" if not state.shown else "which")
            return
        result = self._call(turn, "compare_products", product_ids=ids[:4])
        rank_of = {pid: state.shown.index(pid) + 1 for pid in ids if pid in state.shown}
        turn.lead = phrases.comparison(result.products, result.facts, rank_of, lang, self.currency)
        for product in result.products:
            diffs = "; ".join(
                f"{phrases.field_name(f.field, lang)}: {f.value}"
                for f in result.facts
                if f.product_id == product.id and f.field != "price"
            )
            turn.lines.append(
                phrases.product_line(rank_of.get(product.id), product, diffs, self.currency)
            )
        turn.grounded += result.products

    # --- what goes with what -----------------------------------------------------------------
    def _do_complements(self, turn: _Turn, targets: list[str]) -> None:
        u = turn.understanding
        if u.anchor is not None and u.anchor.kind == "described":
            self._complements_for_description(turn)
            return
        state, lang = turn.ctx.state, turn.language
        # "A clutch to carry with it" after several picks: the top pick, the one led with.
        target = next(iter([*targets, *([state.focus] if state.focus else []), *state.shown]), None)
        if target is None:
            turn.lead = say(lang, "nothing_shown")
            return
        anchor = self.shop.get(target)
        wanted = list(u.filters.articles) or None
        if wanted and anchor and anchor.article in wanted:
            wanted = [a for a in wanted if a != anchor.article] or None
        result = self._call(
            turn,
            "find_complements",
            product_id=target,
            articles=wanted,
            colours=list(u.filters.colours) or None,
            max_price=u.filters.max_price,
            limit=self.settings.max_products,
        )
        anchor = result.products[0]
        state.focus = anchor.id
        if not result.complements:
            turn.lead = say(lang, "none", scope="")
            return
        products = [c.product for c in result.complements]
        self._show(turn, products)
        turn.cards = [
            ProductView.of(c.product, rank=i, reason=self._why(c.reasons, anchor, lang))
            for i, c in enumerate(result.complements, 1)
        ]
        turn.lines = [phrases.product_line(c.rank, c, c.reason, self.currency) for c in turn.cards]
        state.focus = anchor.id
        turn.lead = say(lang, "complements", title=anchor.title)
        turn.llm_task = "intro"
        turn.grounded.append(anchor)

    def _complements_for_description(self, turn: _Turn) -> None:
        """For something the shopper owns or describes ("my maroon lehenga"): the wanted
        category (jewellery when none is named), ranked by how well its colours go with the
        described ones."""
        u, state, lang = turn.understanding, turn.ctx.state, turn.language
        anchor = u.anchor
        assert anchor is not None
        if not u.filters.articles:
            articles = [a for a in self.lead_articles if a not in anchor.articles]
            state.articles, state.led = articles, True
        words = " ".join(w for w in (u.search_text, anchor.garment or "", *state.usages) if w)
        result = self._call(
            turn,
            "search_products",
            query=words or _query_text(state),
            limit=DESCRIBED_CANDIDATES,
        )
        if not result.products:
            self._nothing(turn)
            return
        # What is said for each: its colour facts against the described colours, and the
        # occasion when it is the one asked for; the ones with the most to say come first.
        said = {
            p.id: (
                *colour_reasons(anchor.colours, p),
                *[Reason("occasion", (p.usage,)) for _ in [1] if p.usage in state.usages],
            )
            for p in result.products
        }
        ranked = sorted(
            enumerate(result.products),
            key=lambda item: (-len(said[item[1].id][:2]), -harmony_with(anchor.colours, item[1]),
                              item[0]),
        )  # fmt: skip
        picks = [p for _, p in ranked[: self.settings.max_products]]
        self._show(turn, picks)
        noun = (
            phrases.garment_name(anchor.garment, lang)
            if anchor.garment
            else (phrases.article_name(anchor.articles[0], lang) if anchor.articles else "")
        )
        joiner = "" if lang == "zh" else " "
        what = joiner.join([*(phrases.colour_name(c, lang) for c in anchor.colours[:1]), noun])
        what = what.strip() or anchor.text
        turn.cards = [
            c.model_copy(update={"reason": phrases.pair_reason(said[c.id], noun, lang, yours=True)})
            for c in turn.cards
        ]
        turn.lines = [phrases.product_line(c.rank, c, c.reason, self.currency) for c in turn.cards]
        turn.lead = say(lang, "goes_with", what=what)
        turn.llm_task = "intro"

    def _do_look(self, turn: _Turn, targets: list[str]) -> None:
        u, state, lang = turn.understanding, turn.ctx.state, turn.language
        groups = [g for g in u.article_groups]
        if len(set(groups)) >= 2 and not (u.ranks or (turn.ctx.image is not None)):
            self._look_of_categories(turn, groups)
            return
        target = targets[0] if targets else state.focus or next(iter(state.shown), None)
        if target is None:
            turn.lead = say(lang, "look_which")
            return
        self._bundle_around(turn, target)

    def _look_of_categories(self, turn: _Turn, groups: list[tuple[str, ...]]) -> None:
        """One product of each named category, the best set within the total budget."""
        u, state, lang = turn.understanding, turn.ctx.state, turn.language
        budget = u.filters.max_price
        pools: list[list[Product]] = []
        for articles in dict.fromkeys(groups):
            probe = state.model_copy(update={"articles": list(articles), "max_price": budget})
            ctx = ShopContext(self.shop, self.store, turn.ctx.session_id, probe)
            found = tools.call(
                "search_products", ctx, query=" ".join([state.soft, *articles]),
                limit=LOOK_CANDIDATES,
            )  # fmt: skip
            turn.tools.append("search_products")
            pool = list(found.products)
            if u.anchor is not None and u.anchor.colours:  # around "my navy suit"
                pool.sort(key=lambda p: -harmony_with(u.anchor.colours, p))
            if pool:
                pools.append(pool)
        chosen = best_look(pools, budget) if len(pools) >= 2 else []
        budget_words = phrases.budget_words(budget, lang, self.currency)
        if not chosen:
            turn.lead = say(lang, "no_look", budget=budget_words)
            return
        total = sum(p.price for p in chosen)
        turn.bundle = _bundle(chosen[0], chosen[1:], total, budget)
        state.bundle = [p.id for p in chosen]
        self._show(turn, chosen)
        turn.lead = say(
            lang, "look", count=len(chosen), total=money(total, self.currency), budget=budget_words
        )
        turn.totals.append(total)
        turn.llm_task = "intro"

    def _bundle_around(self, turn: _Turn, target: str) -> None:
        u, state, lang = turn.understanding, turn.ctx.state, turn.language
        # Only a budget said for the set: "earrings under 1000" earlier capped earrings.
        budget = u.filters.max_price
        result = self._call(
            turn,
            "build_bundle",
            anchor_id=target,
            budget=budget,
            articles=list(u.filters.articles) or None,
            size=self.settings.bundle_size,
        )
        anchor = result.products[0]
        state.focus = anchor.id
        budget_words = phrases.budget_words(budget, lang, self.currency)
        if result.bundle is None or not result.bundle.items:
            turn.lead = say(lang, "no_bundle", title=anchor.title, budget=budget_words)
            return
        bundle = result.bundle
        items = [c.product for c in bundle.items]
        why = {c.product.id: self._why(c.reasons, anchor, lang) for c in bundle.items}
        turn.bundle = _bundle(anchor, items, bundle.total, budget)
        state.bundle = [anchor.id, *(p.id for p in items)]
        turn.lead = say(
            lang,
            "bundle",
            title=anchor.title,
            total=money(bundle.total, self.currency),
            budget=budget_words,
        )
        turn.lines.append(phrases.product_line(None, anchor, "", self.currency))
        turn.lines += [phrases.product_line(None, p, why[p.id], self.currency) for p in items]
        turn.grounded += [anchor, *items]
        turn.totals.append(bundle.total)

    @staticmethod
    def _why(reasons: tuple[Reason, ...], anchor: Product, lang: str) -> str:
        return phrases.pair_reason(reasons, phrases.article_name(anchor.article, lang), lang)

    def _do_blurb(self, turn: _Turn, targets: list[str]) -> None:
        """A description to post: of the last set, or of the products pointed at."""
        state, lang = turn.ctx.state, turn.language
        ids = state.bundle or targets or state.shown[:1]
        products = self.shop.get_many(ids)
        if not products:
            turn.lead = say(lang, "nothing_shown")
            return
        turn.grounded += products
        turn.lead = say(lang, "blurb_lead")
        turn.llm_task = "blurb"
        turn.llm_facts = "Set: " + "; ".join(
            f"{p.title} ({p.article}, {p.colour})" for p in products
        )
        turn.bundle = (
            _bundle(products[0], products[1:], sum(p.price for p in products), None)
            if len(products) > 1
            else None
        )

    # --- the cart ----------------------------------------------------------------------------
    def _do_cart_add(self, turn: _Turn, targets: list[str]) -> None:
        """Adds what the shopper pointed at: "the second one", "both", or the one product."""
        if len(targets) < 2:
            target = self._one_target(turn, targets)
            if target is None:
                return
            targets = [target]
        quantity = turn.understanding.quantity if len(targets) == 1 else 1
        titles = []
        for target in targets:
            result = self._call(turn, "add_to_cart", product_id=target, quantity=quantity)
            titles.append(result.products[0].title)
            turn.cart = result.cart
        turn.ctx.state.focus = targets[-1]
        joiner = "、" if turn.language == "zh" else "; "
        turn.lead = say(turn.language, "added", title=joiner.join(titles), quantity=quantity)
        self._cart_lines(turn)

    def _do_cart_remove(self, turn: _Turn, targets: list[str]) -> None:
        lang, u = turn.language, turn.understanding
        lines = self.store.cart(turn.ctx.session_id)
        in_cart = [li.product_id for li in lines]
        target = next((t for t in targets if t in in_cart), None)
        if target is None and u.ranks:
            rank = u.ranks[0]
            if 0 < rank <= len(in_cart) or -len(in_cart) <= rank < 0:
                target = in_cart[rank - 1 if rank > 0 else rank]
        if target is None and u.filters.articles:
            named = [p.id for p in self.shop.get_many(in_cart) if p.article in u.filters.articles]
            target = named[0] if named else None
        if target is None and len(in_cart) == 1:
            target = in_cart[0]
        if target is None:
            turn.lead = say(lang, "cart_empty" if not in_cart else "which")
            return
        try:
            result = self._call(turn, "remove_from_cart", product_id=target)
        except NotInCartError:
            product = self.shop.get(target)
            turn.lead = say(lang, "not_in_cart", title=product.title if product else target)
            return
        turn.cart = result.cart
        turn.lead = say(lang, "removed", title=result.products[0].title)
        self._cart_lines(turn)

    def _do_cart_view(self, turn: _Turn, targets: list[str]) -> None:
        turn.cart = self._call(turn, "view_cart").cart
        self._cart_lines(turn, lead=True)

    def _cart_lines(self, turn: _Turn, lead: bool = False) -> None:
        lang = turn.language
        total = sum(item.product.price * item.quantity for item in turn.cart)
        count = sum(item.quantity for item in turn.cart)
        summary = (
            say(lang, "cart", count=count, total=money(total, self.currency))
            if turn.cart
            else say(lang, "cart_empty")
        )
        if lead:
            turn.lead = summary
        else:
            turn.lines.append(summary)
        turn.lines += [
            phrases.product_line(i, item.product, f"x{item.quantity}", self.currency)
            for i, item in enumerate(turn.cart, 1)
        ]

    def _do_block(self, turn: _Turn, targets: list[str]) -> None:
        state, lang, u = turn.ctx.state, turn.language, turn.understanding
        colours = [*u.filters.colours, *u.filters.exclude_colours]
        if not targets and (colours or u.filters.brands):
            # "Don't show me gold again": an exclusion, not one product.
            state.exclude_colours = list(dict.fromkeys([*state.exclude_colours, *colours]))
            state.colours = [c for c in state.colours if c not in colours]
            state.exclude_brands = list(dict.fromkeys([*state.exclude_brands, *u.filters.brands]))
            state.brands = [b for b in state.brands if b not in u.filters.brands]
            self._search(turn)
            return
        target = targets[0] if targets else state.focus
        if target is None:
            turn.lead = say(lang, "which" if state.shown else "nothing_shown")
            return
        product = self.shop.get(target)
        state.blocked_ids = list(dict.fromkeys([*state.blocked_ids, target]))
        title = product.title if product else target
        self._search(turn)
        turn.lead = say(lang, "blocked", title=title) + (" " if lang == "en" else "") + turn.lead

    # --- rendering -----------------------------------------------------------------------
    def _render(self, turn: _Turn, message: str) -> Iterator[tuple[str, tuple[bool, int] | None]]:
        """(text piece, None) while streaming, then ("", (fallback, repaired)). The templated
        lead goes first, so the shopper sees the scope at once; the LLM's checked sentences
        follow, then the product lines."""
        lang = turn.language
        space = "" if lang == "zh" else " "
        fallback, repaired = False, 0
        if turn.lead:
            yield turn.lead, None
        if turn.llm_task:
            emitted = False
            for sentence, dropped in self._llm_sentences(turn, message):
                repaired += dropped
                if sentence:
                    yield (space if turn.lead or emitted else "") + sentence, None
                    emitted = True
            fallback = not emitted
            if fallback and turn.llm_task == "blurb":
                yield space + self._template_blurb(turn), None
        for line in turn.lines:
            yield "\n" + line, None
        yield "", (fallback, repaired)

    def _llm_sentences(self, turn: _Turn, message: str) -> Iterator[tuple[str, int]]:
        """The LLM's text, a checked sentence at a time: (sentence or "", sentences dropped)."""
        lang = turn.language
        task = turn.llm_task or "intro"
        system = SYSTEM_PROMPT[lang].format(task=TASKS[lang][task])
        state = turn.ctx.state
        grounding = Grounding.of(
            turn.grounded,
            lang,
            system,
            said=f"{message} {state.soft}",
            parser=self.shop.parser,
            totals=turn.totals,
            budgets=_state_numbers(state),
            extra_text=turn.llm_facts,
            currency=self.currency,
            allow_numbers=task != "intro",
        )
        verifier = ReplyVerifier(self.shop.parser)
        messages = [ChatMessage("system", system)]
        if example := EXAMPLES[lang].get(task):
            messages += [ChatMessage("user", example[0]), ChatMessage("assistant", example[1])]
        messages.append(ChatMessage("user", self._facts_prompt(turn)))
        buffer, kept, seen = "", 0, 0
        limit = 1 if task == "intro" else 3  # sentences kept
        budget = limit + 2  # sentences read: a model that keeps inventing is cut short

        def judge(sentence: str) -> tuple[str, int]:
            nonlocal kept, seen
            seen += 1
            sentence = phrases.tidy(sentence)
            if not sentence or verifier.check(sentence, grounding, asked=message):
                return "", 1
            kept += 1
            return sentence, 0

        try:
            # The lead sentence is a nicety: under load the template's lead stands alone.
            timeout = self.settings.lead_timeout_s if task == "intro" else self.config.llm.timeout_s
            stream = self.llm.stream(
                messages, max_tokens=self.config.llm.max_tokens, timeout_s=timeout
            )
            for piece in stream:
                buffer += piece
                while kept < limit and seen < budget and (end := sentence_end(buffer)) >= 0:
                    sentence, buffer = buffer[:end].strip(), buffer[end:]
                    if sentence:
                        yield judge(sentence)
                if kept >= limit or seen >= budget:
                    stream.close()
                    return
        except LLMError:
            log.warning("LLM failed; the template answers", exc_info=True)
            return
        if buffer.strip() and kept < limit and seen < budget:
            yield judge(buffer.strip())

    def _facts_prompt(self, turn: _Turn) -> str:
        """What the LLM is told: the facts, and what was asked in the shop's own words (the
        parsed request, not the shopper's sentence, which a small model echoes)."""
        lang = turn.language
        if turn.llm_task in ("answer", "blurb"):
            question = f"Question: {turn.understanding.text}\n" if turn.llm_task == "answer" else ""
            return question + turn.llm_facts
        wanted = phrases.scope(turn.ctx.state, lang, self.currency, prices=False).strip()
        head = ("想要：" if lang == "zh" else "Looking for: ") + (wanted or "gifts")
        known = {p.id: p for p in turn.grounded}
        items = "\n".join(
            f"- {p.title} ({p.article}, {p.colour}, {p.usage})"
            for p in (known[c.id] for c in turn.cards if c.id in known)
        )
        return f"{head}\n{'商品：' if lang == 'zh' else 'Pieces:'}\n{items}"

    def _template_blurb(self, turn: _Turn) -> str:
        products = turn.grounded
        lang = turn.language
        if not products:
            return ""
        joiner = "、" if lang == "zh" else " and "
        return say(
            lang,
            "blurb",
            anchor=products[0].title,
            items=joiner.join(p.title for p in products[1:]) or products[0].article.lower(),
        )

    def _save(
        self,
        shopper_id: str | None,
        session_id: str,
        state: DialogState,
        message: str,
        reply: Reply,
    ) -> None:
        self.store.save_state(session_id, state)
        self.store.append_turn(session_id, "user", message)
        shown = [c.id for c in reply.products] + [c.id for c in reply.cross_sell]
        self.store.append_turn(session_id, "assistant", reply.text, shown)
        if shopper_id:
            prefs = self.store.preferences(shopper_id)
            self.store.save_preferences(shopper_id, remember(prefs, state))


def _query_text(state: DialogState) -> str:
    """What the state says to search for: the soft words and the category."""
    articles = state.articles if len(state.articles) <= 3 else []
    return " ".join(t for t in (state.soft, *articles) if t)


def _state_numbers(state: DialogState) -> list[float]:
    return [v for v in (state.min_price, state.max_price) if v is not None]


class ProductView(BaseModel):
    """A product as a shopper sees it in a reply, the cart or search results."""

    id: str
    title: str
    price: float
    list_price: float
    article: str
    colour: str
    brand: str
    gender: str
    # Per context: rank and exactness (recommendations), the product a suggestion goes with,
    # why it fits, how many are in the cart.
    rank: int | None = None
    exact: bool | None = None
    anchor_id: str | None = None
    reason: str | None = None
    quantity: int | None = None

    @classmethod
    def of(cls, product: Product, **extra: object) -> ProductView:
        fields = ("id", "title", "price", "list_price", "article", "colour", "brand", "gender")
        return cls(**{f: getattr(product, f) for f in fields}, **extra)


class BundleView(BaseModel):
    anchor: ProductView
    items: list[ProductView]
    total: float
    budget: float | None


class Reply(BaseModel):
    """A whole reply: what the chat streams last, `bijou chat --json` prints and the HTTP API
    returns."""

    session_id: str
    text: str
    language: str
    move: str
    products: list[ProductView]
    cross_sell: list[ProductView]  # suggestions from other categories, apart from the picks
    bundle: BundleView | None
    cart: list[ProductView]
    relaxed: list[str]
    tools: list[str]
    sources: list[str] = []  # the shop's documents quoted, "file#section"
    fallback: bool  # the LLM's text was replaced by a template (error, timeout, failed check)
    repaired: int  # LLM sentences the verifier dropped
    first_token_s: float | None
    total_s: float


def _bundle(
    anchor: Product, items: list[Product], total: float, budget: float | None
) -> BundleView:
    return BundleView(
        anchor=ProductView.of(anchor),
        items=[ProductView.of(p) for p in items],
        total=total,
        budget=budget,
    )
