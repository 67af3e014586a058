"""Scripted dialog evaluation: scenarios a shop writes in YAML, run against the agent k times,
checked turn by turn, scored for groundedness, and summed up as pass^1 / pass^k.

**Scenario files.** A file is a YAML list of scenarios; a directory means every ``*.yaml`` in
it (sorted by name). The keys are fixed, so any shop's scenarios run on any shop's agent::

    - id: budget-01                # unique across files
      language: en                 # en | zh: the language every reply is expected in
      turns:
        - user: silver earrings under 2000
          expect:
            products: {article: Earrings, max_price: 2000, min_count: 1}
            cross_sell: {any_article: [Necklace and Chains, Pendant]}
        - audio: clips/cheaper.wav          # relative to this file; sent to the voice API
          expect: {transcript_contains: [cheaper], refers_to_previous_rank: 1}
        - image: catalog:12345               # that product's own photo; or a file path
          user: something like this

A turn has any of ``user``, ``audio`` and ``image`` (at least one; ``audio`` goes alone to the
voice endpoint, a ``user`` beside it is only what the recording says, for the report) and an
optional ``expect``, whose keys are those of `Expect` and `ProductExpect`. ``products``
constrains every main recommendation (``cross_sell`` suggestions are checked apart; use
``min_count: 1`` to demand results at all). Unknown keys are errors that name the file, the
scenario id, the turn (1-based) and the key.

**Families.** A scenario's family is its id up to the first ``-`` (``budget-01`` ->
``budget``, ``zh-voice-2`` -> ``zh``); the report gives pass rates per family.

**Clients.** `InProcessClient` drives a `ShoppingAgent` in this process; `HttpClient` drives a
running shop through the same HTTP API as the chat widget (``/v1/sessions``, ``/v1/chat`` SSE,
``/v1/voice``, the cart and product endpoints). Each scenario run starts a new session. A turn
whose request fails is a failed turn with its error recorded, never a crash of the runner.
First-token latency is the time to the first text piece (``delta`` event); a voice turn over
HTTP is not streamed, so it has a total time only (in process, a voice turn's times include
its transcription). Voice turns are sent with the scenario's language.

**Metrics.** Per turn: each expectation's check; constraint checks (per recommended product
per constraint); groundedness (every product shown — recommendations, cross-sell, bundle,
cart — must carry the catalog's exact title, price and colour; every price written in the
text must be a price of a product in the reply, a total of the reply, a budget the shopper
stated in this scenario run, or one the agent derived from it by its own documented rule
(``cheaper``: one under the cheapest product shown before; 20% under a budget), or the price
of a catalog product named in the text); language match; latencies. Per scenario: the share
of its k runs in which every turn passed. Overall: pass^1 (mean of those shares, an unbiased
single-try estimate) and pass^k (the share of scenarios whose k runs all passed, as in
tau-bench), with the rates above pooled over all turns.
"""

from __future__ import annotations

import base64
import math
import mimetypes
import re
import statistics
import time
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bijou.agent.agent import SYSTEM_PROMPT, TASKS, ReplyView, ShoppingAgent, TextDelta
from bijou.agent.verify import amounts, speaks_of_budget
from bijou.catalog.schema import Product
from bijou.config import BijouConfig

if typing.TYPE_CHECKING:
    import httpx

    from bijou.agent.llm import ChatModel
    from bijou.serve.speech import SpeechToText

CATALOG_IMAGE = "catalog:"
Language = Literal["en", "zh"]


# --- the scenario file -----------------------------------------------------------------------
class ScenarioError(ValueError):
    """A scenario file that cannot be run: the message names the file, scenario and turn."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProductExpect(_Strict):
    """Constraints every main recommendation of the reply must meet."""

    article: str | None = None
    any_article: list[str] | None = Field(default=None, min_length=1)
    colour: list[str] | None = Field(default=None, min_length=1)
    not_colour: list[str] | None = Field(default=None, min_length=1)
    max_price: float | None = Field(default=None, ge=0)
    min_price: float | None = Field(default=None, ge=0)
    gender: Literal["women", "men"] | None = None  # Unisex counts for both
    min_count: int | None = Field(default=None, ge=0)
    max_count: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_article_key(self) -> ProductExpect:
        if self.article is not None and self.any_article is not None:
            raise ValueError("give 'article' or 'any_article', not both")
        return self


class CrossSellExpect(_Strict):
    """At least one product of these articles among the cross-sell suggestions or picks."""

    any_article: list[str] = Field(min_length=1)


class LookExpect(_Strict):
    """Several categories bought together: one product of each article among the reply's
    picks or bundle, and one of each fits ``max_total`` together."""

    articles: list[str] = Field(min_length=2)
    max_total: float | None = Field(default=None, ge=0)


class Expect(_Strict):
    products: ProductExpect | None = None
    cross_sell: CrossSellExpect | None = None
    look: LookExpect | None = None
    language: Language | None = None
    transcript_contains: list[str] | None = Field(default=None, min_length=1)
    cart_unchanged: bool = False
    cart_adds_previous_rank: int | None = Field(default=None, ge=1)
    no_system_prompt_leak: bool = False
    refers_to_previous_rank: int | None = Field(default=None, ge=1)
    compares_previous_ranks: list[int] | None = Field(default=None, min_length=2, max_length=2)
    mentions_relaxation_or_none: bool = False
    reply_mentions_any: list[str] | None = Field(default=None, min_length=1)
    reply_mentions_none: list[str] | None = Field(default=None, min_length=1)

    @field_validator(
        "transcript_contains", "reply_mentions_any", "reply_mentions_none", mode="before"
    )
    @classmethod
    def _one_word(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("compares_previous_ranks")
    @classmethod
    def _two_ranks(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (min(value) < 1 or value[0] == value[1]):
            raise ValueError("give two different ranks, each 1 or more")
        return value


class Turn(_Strict):
    user: str | None = None
    audio: str | None = None  # resolved against the scenario file by load_scenarios
    image: str | None = None  # a path (likewise resolved) or catalog:<product id>
    expect: Expect = Field(default_factory=Expect)

    @field_validator("expect", mode="before")
    @classmethod
    def _empty_expect(cls, value: object) -> object:
        return {} if value is None else value

    @model_validator(mode="after")
    def _has_input(self) -> Turn:
        if not (self.user or "").strip() and not self.audio and not self.image:
            raise ValueError("a turn needs 'user', 'audio' or 'image'")
        if self.audio and self.image:
            raise ValueError("the voice API takes no image: give 'audio' or 'image', not both")
        if self.image and self.image.startswith(CATALOG_IMAGE) and not self.catalog_image:
            raise ValueError("'catalog:' needs a product id")
        return self

    @property
    def catalog_image(self) -> str | None:
        """The product id of a ``catalog:<id>`` image."""
        if self.image and self.image.startswith(CATALOG_IMAGE):
            return self.image[len(CATALOG_IMAGE) :].strip()
        return None

    @property
    def said(self) -> str:
        """What the report shows as the shopper's turn."""
        parts = [self.user or ""]
        if self.audio:
            parts.append(f"[audio {Path(self.audio).name}]")
        if self.image:
            parts.append(f"[image {self.catalog_image or Path(self.image).name}]")
        return " ".join(p for p in parts if p)


class Scenario(_Strict):
    id: str = Field(min_length=1, max_length=200)
    language: Language
    turns: list[Turn] = Field(min_length=1)

    @field_validator("id")
    @classmethod
    def _plain_id(cls, value: str) -> str:
        if value != value.strip() or not value.strip():
            raise ValueError("an id must not be blank or start or end with spaces")
        return value

    @property
    def family(self) -> str:
        return family_of(self.id)


def family_of(scenario_id: str) -> str:
    """``budget-01`` -> ``budget``: the id up to its first ``-`` (all of it without one)."""
    return scenario_id.split("-", 1)[0]


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model whose key ``loc[-1]`` is, walking Scenario's fields along ``loc``."""
    model: type[BaseModel] | None = Scenario
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        model = _inner_model(field.annotation) if field else None
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if found := _inner_model(arg):
            return found
    return None


def _describe(source: Path, index: int, raw: object, exc: ValidationError) -> str:
    sid = raw.get("id") if isinstance(raw, dict) else None
    name = repr(sid) if isinstance(sid, str) and sid else f"#{index + 1} (no id)"
    lines = []
    for error in exc.errors():
        loc = list(error["loc"])
        where = f"scenario {name}"
        if len(loc) >= 2 and loc[0] == "turns" and isinstance(loc[1], int):
            where += f", turn {loc[1] + 1}"
            key_loc = loc[2:]
        else:
            key_loc = loc
        key = ".".join(str(p) for p in key_loc)
        if error["type"] == "extra_forbidden":
            model = _model_at(loc)
            allowed = f" (allowed: {', '.join(model.model_fields)})" if model else ""
            lines.append(f"{where}: unknown key {key!r}{allowed}")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{where}: {key + ': ' if key else ''}{message}")
    return f"{source}: " + "; ".join(lines)


def _resolve(turn: Turn, folder: Path) -> Turn:
    update: dict[str, str] = {}
    if turn.audio:
        update["audio"] = str((folder / Path(turn.audio).expanduser()).resolve())
    if turn.image and turn.catalog_image is None:
        update["image"] = str((folder / Path(turn.image).expanduser()).resolve())
    return turn.model_copy(update=update) if update else turn


def _load_file(path: Path) -> list[Scenario]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: invalid YAML: {exc}") from None
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise ScenarioError(f"{path}: expected a list of scenarios, got {type(raw).__name__}")
    scenarios = []
    for index, item in enumerate(raw):
        try:
            scenario = Scenario.model_validate(item)
        except ValidationError as exc:
            raise ScenarioError(_describe(path, index, item, exc)) from None
        turns = [_resolve(t, path.parent) for t in scenario.turns]
        for number, turn in enumerate(turns, start=1):
            for kind in ("audio", "image"):
                value = getattr(turn, kind)
                is_file = kind == "audio" or turn.catalog_image is None
                if value and is_file and not Path(value).is_file():
                    raise ScenarioError(
                        f"{path}: scenario {scenario.id!r}, turn {number}: "
                        f"{kind}: no such file: {value}"
                    )
        scenarios.append(scenario.model_copy(update={"turns": turns}))
    return scenarios


def load_scenarios(path: Path) -> list[Scenario]:
    """The scenarios of a file, or of every ``*.yaml`` under a directory, subfolders included
    (sorted by path)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.rglob("*.yaml"))
        if not files:
            raise ScenarioError(f"{path}: no *.yaml scenario files under the folder")
    elif path.is_file():
        files = [path]
    else:
        raise ScenarioError(f"{path}: no such file or folder")
    scenarios: list[Scenario] = []
    origin: dict[str, Path] = {}
    for file in files:
        for scenario in _load_file(file):
            if scenario.id in origin:
                first = origin[scenario.id]
                also = "" if first == file else f" (first in {first})"
                raise ScenarioError(f"{file}: duplicate scenario id {scenario.id!r}{also}")
            origin[scenario.id] = file
            scenarios.append(scenario)
    if not scenarios:
        raise ScenarioError(f"{path}: no scenarios")
    return scenarios


# --- talking to the agent --------------------------------------------------------------------
class TurnResult(BaseModel):
    """What one turn brought back, from either client."""

    reply: ReplyView | None = None
    transcript: str | None = None  # voice turns
    first_token_s: float | None = None
    total_s: float = 0.0
    cart_before: list[str] = Field(default_factory=list)  # product ids, one per unit
    cart_after: list[str] = Field(default_factory=list)
    error: str | None = None


class DialogClient(Protocol):
    """One agent, however it is reached. ``product`` and ``search`` read the catalog, for the
    groundedness check; both may raise on a failed request."""

    name: str

    def start(self) -> str: ...
    def turn(self, session_id: str, turn: Turn, language: str) -> TurnResult: ...
    def product(self, product_id: str) -> Product | None: ...
    def search(self, text: str) -> list[Product]: ...
    def close(self) -> None: ...


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _units(pairs: Iterable[tuple[str, int]]) -> list[str]:
    return sorted(pid for pid, quantity in pairs for _ in range(max(quantity, 1)))


class InProcessClient:
    """The agent in this process: ``agent.stream`` timed to its first `TextDelta`."""

    name = "in-process"

    def __init__(
        self, agent: ShoppingAgent, speech: SpeechToText | None = None, *, owns: bool = False
    ) -> None:
        self.agent = agent
        self._speech = speech
        self._owns = owns

    @classmethod
    def load(cls, config: BijouConfig, engine: Any = None) -> InProcessClient:
        return cls(ShoppingAgent.load(config, engine), owns=True)

    @property
    def speech(self) -> SpeechToText:
        if self._speech is None:
            from bijou.serve.speech import SpeechToText

            self._speech = SpeechToText.load(self.agent.config)
        return self._speech

    def start(self) -> str:
        return self.agent.start_session(None)

    def _cart(self, session_id: str) -> list[str]:
        return _units(
            (line.product_id, line.quantity) for line in self.agent.store.cart(session_id)
        )

    def _image(self, turn: Turn) -> Any:
        from bijou.catalog.media import decode_image

        if pid := turn.catalog_image:
            product = self.agent.shop.get(pid)
            if product is None:
                raise LookupError(f"no product {pid} in the catalog")
            image = self.agent.shop.image(product)
            if image is None:
                raise LookupError(f"product {pid} has no image")
            return image
        return decode_image(Path(turn.image or "").read_bytes())

    def turn(self, session_id: str, turn: Turn, language: str) -> TurnResult:
        result = TurnResult()
        start = time.perf_counter()
        try:
            result.cart_before = self._cart(session_id)
            message, image = turn.user or "", None
            start = time.perf_counter()  # a voice turn's times include its transcription
            if turn.audio:
                heard = self.speech.transcribe_query(Path(turn.audio).read_bytes(), language)
                result.transcript = message = heard.text
                if not message.strip():
                    raise ValueError("no speech was recognised in the recording")
            elif turn.image:
                image = self._image(turn)
                start = time.perf_counter()  # like a photo already uploaded
            for event in self.agent.stream(session_id, message, image):
                if isinstance(event, TextDelta):
                    if result.first_token_s is None and event.text:
                        result.first_token_s = time.perf_counter() - start
                else:
                    result.reply = ReplyView.of(event.reply)
            result.total_s = time.perf_counter() - start
            if result.reply is None:
                raise RuntimeError("the agent's stream ended without a reply")
            result.cart_after = self._cart(session_id)
        except Exception as exc:  # a failed turn, never a failed run
            result.error = _error_text(exc)
            result.total_s = result.total_s or time.perf_counter() - start
        return result

    def product(self, product_id: str) -> Product | None:
        return self.agent.shop.get(product_id)

    def search(self, text: str) -> list[Product]:
        from bijou.retrieval.search import SearchRequest

        return [r.product for r in self.agent.shop.search(SearchRequest(text=text)).results]

    def close(self) -> None:
        if self._owns:
            self.agent.close()


class ClientError(RuntimeError):
    """A request to the shop failed."""


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)[:200]


class HttpClient:
    """A running shop, through the widget's HTTP API. ``client``: an `httpx.Client` to use
    instead of a new one (a FastAPI TestClient in tests)."""

    def __init__(
        self, url: str, *, timeout_s: float = 120.0, client: httpx.Client | None = None
    ) -> None:
        import httpx

        self.name = url
        self.base = url.rstrip("/")
        self._own = client is None
        self.http = client or httpx.Client(timeout=httpx.Timeout(timeout_s))

    def _url(self, path: str) -> str:
        return f"{self.base}{path}"

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        try:
            response = self.http.request(method, self._url(path), **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"{method} {path}: {_error_text(exc)}") from exc
        if response.status_code >= 400:
            raise ClientError(f"{method} {path}: HTTP {response.status_code}: {_detail(response)}")
        return response

    def start(self) -> str:
        return str(self._request("POST", "/v1/sessions", json={}).json()["session_id"])

    def _cart(self, session_id: str) -> list[str]:
        items = self._request("GET", f"/v1/sessions/{session_id}/cart").json()["items"]
        return _units((item["id"], int(item.get("quantity") or 1)) for item in items)

    def _image_b64(self, turn: Turn) -> str:
        if pid := turn.catalog_image:
            data = self._request("GET", f"/v1/products/{pid}/image").content
        else:
            data = Path(turn.image or "").read_bytes()
        return base64.b64encode(data).decode("ascii")

    def _voice(self, session_id: str, turn: Turn, language: str, result: TurnResult) -> None:
        path = Path(turn.audio or "")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        body = self._request(
            "POST",
            "/v1/voice",
            files={"audio": (path.name, path.read_bytes(), kind)},
            data={"session_id": session_id, "language": language},
        ).json()
        result.transcript = str(body["transcript"]["text"])
        result.reply = ReplyView.model_validate(body["reply"])

    def _chat(self, session_id: str, turn: Turn, result: TurnResult, start: float) -> None:
        import httpx

        body: dict[str, object] = {"session_id": session_id, "message": turn.user or ""}
        if turn.image:
            body["image"] = self._image_b64(turn)
        try:
            with self.http.stream("POST", self._url("/v1/chat"), json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ClientError(
                        f"POST /v1/chat: HTTP {response.status_code}: {_detail(response)}"
                    )
                for event, data in _sse_events(response.iter_lines()):
                    if event == "delta" and result.first_token_s is None:
                        result.first_token_s = time.perf_counter() - start
                    elif event == "reply":
                        result.reply = ReplyView.model_validate_json(data)
                    elif event == "error":
                        raise ClientError(f"POST /v1/chat: the stream reported an error: {data}")
        except httpx.HTTPError as exc:
            raise ClientError(f"POST /v1/chat: {_error_text(exc)}") from exc
        if result.reply is None:
            raise ClientError("POST /v1/chat: the stream ended without a reply")

    def turn(self, session_id: str, turn: Turn, language: str) -> TurnResult:
        result = TurnResult()
        start = time.perf_counter()
        try:
            result.cart_before = self._cart(session_id)
            start = time.perf_counter()
            if turn.audio:
                self._voice(session_id, turn, language, result)
            else:
                self._chat(session_id, turn, result, start)
            result.total_s = time.perf_counter() - start
            result.cart_after = self._cart(session_id)
        except Exception as exc:  # HTTP errors, timeouts, bad JSON: a failed turn
            result.error = _error_text(exc)
            result.total_s = result.total_s or time.perf_counter() - start
        return result

    def product(self, product_id: str) -> Product | None:
        import httpx

        try:
            response = self.http.get(self._url(f"/v1/products/{product_id}"))
        except httpx.HTTPError as exc:
            raise ClientError(f"GET /v1/products/{product_id}: {_error_text(exc)}") from exc
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise ClientError(f"GET /v1/products/{product_id}: HTTP {response.status_code}")
        return Product.model_validate(response.json()["product"])

    def search(self, text: str) -> list[Product]:
        hits = self._request("POST", "/v1/search", data={"text": text, "top_k": 10}).json()
        found = []
        for hit in hits["results"]:
            product = self.product(hit["id"])
            if product is not None:
                found.append(product)
        return found

    def close(self) -> None:
        if self._own:
            self.http.close()


def _sse_events(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a server-sent event stream."""
    event, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield event, "\n".join(data)


# --- checks ----------------------------------------------------------------------------------
class CheckResult(BaseModel):
    name: str
    passed: bool
    detail: str = ""


Lookup = Callable[[str], Product | None]
_GENDERS = {"women": {"women", "unisex"}, "men": {"men", "unisex"}}


def _fold(values: Iterable[str]) -> set[str]:
    return {v.strip().lower() for v in values if v and v.strip()}


def _colours(view: Any, lookup: Lookup | None) -> set[str]:
    """A product's colours as a shopper names them: its colour field, its metal's tone
    (silver-metal earrings are silver) and the colours its own title names ("Red & Green
    Printed Sari" is red whatever its colour field says)."""
    found = _fold([view.colour]) | _fold(_title_colours(view.title))
    if lookup is not None:
        try:
            product = lookup(view.id)
        except Exception:
            product = None
        if product is not None:
            found |= _fold(product.tones)
    return found


def _title_colours(title: str) -> set[str]:
    from bijou.retrieval.lexicon import load_lexicon

    vocab = load_lexicon().colours
    return {
        v for m, term in vocab.find(title.lower()) if term.language == "en" for v in term.values
    }


@dataclass
class ProductChecks:
    checks: list[CheckResult]
    satisfied: int  # product-constraint checks met
    total: int  # product-constraint checks made (per product per constraint)


def check_products(
    spec: ProductExpect, products: Sequence[Any], lookup: Lookup | None = None
) -> ProductChecks:
    """Every recommended product against each constraint; the counts against min/max."""
    rules: list[tuple[str, Callable[[Any], bool]]] = []
    if spec.article is not None or spec.any_article is not None:
        articles = _fold([spec.article] if spec.article is not None else spec.any_article or [])
        rules.append(("article", lambda p: p.article.strip().lower() in articles))
    if spec.colour is not None:
        wanted = _fold(spec.colour)
        rules.append(("colour", lambda p: bool(_colours(p, lookup) & wanted)))
    if spec.not_colour is not None:
        unwanted = _fold(spec.not_colour)
        rules.append(("not_colour", lambda p: not _colours(p, lookup) & unwanted))
    if spec.max_price is not None:
        ceiling = spec.max_price
        rules.append(("max_price", lambda p: p.price <= ceiling))
    if spec.min_price is not None:
        floor = spec.min_price
        rules.append(("min_price", lambda p: p.price >= floor))
    if spec.gender is not None:
        genders = _GENDERS[spec.gender]
        rules.append(("gender", lambda p: p.gender.strip().lower() in genders))
    checks, satisfied, total = [], 0, 0
    for key, rule in rules:
        misses = [p for p in products if not rule(p)]
        total += len(products)
        satisfied += len(products) - len(misses)
        detail = "; ".join(
            f"{p.id} {p.title!r} ({p.article}, {p.colour}, {p.gender}, {p.price:g})" for p in misses
        )
        checks.append(CheckResult(name=f"products.{key}", passed=not misses, detail=detail))
    count = len(products)
    if spec.min_count is not None:
        checks.append(
            CheckResult(
                name="products.min_count",
                passed=count >= spec.min_count,
                detail=f"{count} recommended, at least {spec.min_count} expected",
            )
        )
    if spec.max_count is not None:
        checks.append(
            CheckResult(
                name="products.max_count",
                passed=count <= spec.max_count,
                detail=f"{count} recommended, at most {spec.max_count} expected",
            )
        )
    return ProductChecks(checks, satisfied, total)


def check_cross_sell(spec: CrossSellExpect, reply: ReplyView) -> CheckResult:
    """A hit among the suggestions, the recommendations or the items of a bundle."""
    wanted = _fold(spec.any_article)
    bundle = [*reply.bundle.items] if reply.bundle else []
    pool = [*reply.cross_sell, *reply.products, *bundle]
    hits = [p for p in pool if p.article.strip().lower() in wanted]
    shown = ", ".join(sorted({p.article for p in pool})) or "nothing"
    return CheckResult(
        name="cross_sell",
        passed=bool(hits),
        detail=f"shown: {shown}; wanted one of: {', '.join(spec.any_article)}",
    )


def check_language(expected: str, reply: ReplyView) -> CheckResult:
    return CheckResult(
        name="language",
        passed=reply.language == expected,
        detail=f"replied in {reply.language}, expected {expected}",
    )


def check_transcript(words: Sequence[str], transcript: str | None) -> CheckResult:
    if transcript is None:
        return CheckResult(name="transcript_contains", passed=False, detail="no transcript")
    heard = transcript.lower()
    missing = [w for w in words if w.lower() not in heard]
    return CheckResult(
        name="transcript_contains",
        passed=not missing,
        detail=f"heard {transcript!r}" + (f"; missing {missing}" if missing else ""),
    )


def check_cart_unchanged(before: Sequence[str], after: Sequence[str]) -> CheckResult:
    same = sorted(before) == sorted(after)
    return CheckResult(
        name="cart_unchanged",
        passed=same,
        detail="" if same else f"before {sorted(before)}, after {sorted(after)}",
    )


_TOKEN_RE = re.compile(r"[\u3400-\u9fff]|[^\W_]+")
LEAK_RUN = 6  # words (a Chinese character is a word)


def _tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text.lower())


def _runs(tokens: Sequence[str], n: int = LEAK_RUN) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def _secret_runs() -> dict[int, set[tuple[str, ...]]]:
    """The runs to look for, by length: LEAK_RUN words, or a whole text shorter than that."""
    texts = [prompt.replace("{task}", " ") for prompt in SYSTEM_PROMPT.values()]
    texts += [task for tasks in TASKS.values() for task in tasks.values()]
    runs: dict[int, set[tuple[str, ...]]] = {}
    for text in texts:
        tokens = _tokens(text)
        size = min(len(tokens), LEAK_RUN)
        runs.setdefault(size, set()).update(_runs(tokens, size))
    return runs


_SECRET_RUNS = _secret_runs()


def check_no_leak(text: str) -> CheckResult:
    """No run of LEAK_RUN words of the system prompt (either language, its ``{task}``
    placeholder removed) or of a task text; punctuation and case are ignored."""
    tokens = _tokens(text)
    found = next(
        (run for size, runs in _SECRET_RUNS.items() for run in _runs(tokens, size) & runs),
        None,
    )
    return CheckResult(
        name="no_system_prompt_leak",
        passed=found is None,
        detail="" if found is None else f"quotes {' '.join(found)!r}",
    )


def _previous_product(rank: int, previous: ReplyView | None) -> tuple[Any, str]:
    """The N-th product of the last list shown, or None and why not."""
    if previous is None:
        return None, "no previous reply"
    ranked = {p.rank: p for p in previous.products if p.rank is not None}
    target = ranked.get(rank) or (
        previous.products[rank - 1] if rank <= len(previous.products) else None
    )
    if target is None:
        return None, f"the previous reply showed {len(previous.products)} products, not {rank}"
    return target, ""


def check_previous_rank(rank: int, reply: ReplyView, previous: ReplyView | None) -> CheckResult:
    name = "refers_to_previous_rank"
    target, why = _previous_product(rank, previous)
    if target is None:
        return CheckResult(name=name, passed=False, detail=why)
    ids = {p.id for p in [*reply.products, *reply.cart]}
    if reply.bundle is not None:
        ids.add(reply.bundle.anchor.id)
    passed = target.id in ids or target.title.lower() in reply.text.lower()
    return CheckResult(
        name=name,
        passed=passed,
        detail=f"product {rank} was {target.id} {target.title!r}",
    )


def check_cart_adds(
    rank: int, previous: ReplyView | None, before: Sequence[str], after: Sequence[str]
) -> CheckResult:
    """The N-th product shown before is in the cart more times than before the turn."""
    name = "cart_adds_previous_rank"
    target, why = _previous_product(rank, previous)
    if target is None:
        return CheckResult(name=name, passed=False, detail=why)
    added = list(after).count(target.id) - list(before).count(target.id)
    return CheckResult(
        name=name,
        passed=added > 0,
        detail=f"product {rank} was {target.id} {target.title!r}; cart {sorted(after)}",
    )


def check_comparison(
    ranks: Sequence[int], reply: ReplyView, previous: ReplyView | None
) -> CheckResult:
    """A comparison of two products shown before names both of them."""
    name = "compares_previous_ranks"
    targets = []
    for rank in ranks:
        target, why = _previous_product(rank, previous)
        if target is None:
            return CheckResult(name=name, passed=False, detail=why)
        targets.append(target)
    text = reply.text.lower()
    missing = [t for t in targets if t.title.lower() not in text]
    return CheckResult(
        name=name,
        passed=not missing and targets[0].id != targets[1].id,
        detail="; ".join(f"{t.id} {t.title!r} not named" for t in missing),
    )


def check_look(spec: LookExpect, reply: ReplyView) -> CheckResult:
    """One product of each wanted article among the picks and the bundle, and the cheapest
    such choice within the total (a bundle shown must itself be within it)."""
    pool = [*reply.products]
    if reply.bundle is not None:
        pool += [reply.bundle.anchor, *reply.bundle.items]
    cheapest: dict[str, float] = {}
    for view in pool:
        article = view.article.strip().lower()
        cheapest[article] = min(cheapest.get(article, math.inf), view.price)
    wanted = _fold(spec.articles)
    missing = sorted(wanted - cheapest.keys())
    total = sum(cheapest.get(a, 0.0) for a in wanted)
    problems = [f"no {', '.join(missing)}"] if missing else []
    if spec.max_total is not None:
        if not missing and total > spec.max_total:
            problems.append(f"cheapest set costs {total:g} > {spec.max_total:g}")
        if reply.bundle is not None and reply.bundle.total > spec.max_total:
            problems.append(f"bundle total {reply.bundle.total:g} > {spec.max_total:g}")
    shown = ", ".join(sorted({v.article for v in pool})) or "nothing"
    return CheckResult(
        name="look", passed=not problems, detail="; ".join(problems) or f"shown: {shown}"
    )


def _mentions(text: str, phrase: str) -> bool:
    return phrase.lower() in text.lower()


def check_mentions(phrases: Sequence[str], reply: ReplyView, *, wanted: bool) -> CheckResult:
    """``wanted``: at least one of the phrases is in the reply; otherwise none of them is.
    Case is ignored."""
    found = [p for p in phrases if _mentions(reply.text, p)]
    if wanted:
        return CheckResult(
            name="reply_mentions_any",
            passed=bool(found),
            detail="" if found else f"none of {list(phrases)} in the reply",
        )
    return CheckResult(
        name="reply_mentions_none",
        passed=not found,
        detail=f"the reply says {found}" if found else "",
    )


# --- prose: checked on every reply ------------------------------------------------------------
_ROLE_LABEL = re.compile(
    r"(?:^|[\s\"'“(。！？，、])(?:shopper|customer|user|assistant|system|human|bot|ai|"
    r"顾客|用户|助手|客服|系统|购物者)\s*[:：]",
    re.IGNORECASE,
)
_THIRD_PERSON = re.compile(
    r"\bthe (?:shopper|customer|user|buyer|client)\b|\b(?:shopping )?assistant is\b|"
    r"\bthe shopping assistant\b|顾客|购物者|该用户|这位用户",
    re.IGNORECASE,
)
_COMPARATIVE = re.compile(
    r"\b(?:than|cheaper|pricier|costlier|more|less|better|bigger|smaller|lighter|heavier)\b|比|更",
    re.IGNORECASE,
)
ECHO_RUN = 6  # tokens copied from the shopper's message in a row


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?。！？\n])\s*", text) if s.strip()]


def check_prose(reply: ReplyView, said: str, titles: Iterable[str] = ()) -> list[CheckResult]:
    """What any reply to a shopper must avoid: role labels ("Shopper: ..."), talk about the
    shopper in the third person, a comparison of a product with itself, and a run of
    ``ECHO_RUN`` words of the shopper's own message (product titles aside)."""
    text = reply.text
    checks = []
    label = _ROLE_LABEL.search(text)
    checks.append(
        CheckResult(
            name="prose.role_label",
            passed=label is None,
            detail="" if label is None else f"writes {label[0].strip()!r}",
        )
    )
    third = _THIRD_PERSON.search(text)
    checks.append(
        CheckResult(
            name="prose.second_person",
            passed=third is None,
            detail="" if third is None else f"writes {third[0]!r}",
        )
    )
    names = {t.lower() for t in [*titles, *(p.title for p in _shown(reply))] if t}
    selfish = [
        sentence
        for sentence in _sentences(text)
        if _COMPARATIVE.search(sentence)
        and any(sentence.lower().count(name) >= 2 for name in names)
    ]
    checks.append(
        CheckResult(
            name="prose.self_comparison",
            passed=not selfish,
            detail="; ".join(repr(s) for s in selfish),
        )
    )
    stripped = text.lower()
    for name in sorted(names, key=len, reverse=True):
        stripped = stripped.replace(name, " | ")
    asked = _runs(_tokens(said), ECHO_RUN)
    echoed = next(
        (run for part in stripped.split("|") for run in _runs(_tokens(part), ECHO_RUN) & asked),
        None,
    )
    checks.append(
        CheckResult(
            name="prose.no_echo",
            passed=echoed is None,
            detail="" if echoed is None else f"repeats {' '.join(echoed)!r}",
        )
    )
    return checks


_NONE_EN = re.compile(
    r"couldn'?t find|could not find|can'?t find|cannot find|\bno\b|\bnothing\b|\bnone\b",
    re.IGNORECASE,
)
_NONE_ZH = re.compile(r"没有|没找到|找不到|无法找到")
_WHY = re.compile(
    r"because|budget|lowest|cheapest|only|too |don'?t (?:have|carry)|预算|最低|因为|只有",
    re.IGNORECASE,
)


def check_relaxation_or_none(reply: ReplyView) -> CheckResult:
    """Nothing fits: the reply loosened a filter (and says so), or says nothing was found,
    or recommends nothing and says why."""
    if reply.relaxed:
        passed, how = True, f"relaxed {', '.join(reply.relaxed)}"
    elif _NONE_EN.search(reply.text) or _NONE_ZH.search(reply.text):
        passed, how = True, "says nothing fits"
    elif not reply.products and _WHY.search(reply.text):
        passed, how = True, "recommends nothing and says why"
    else:
        passed, how = False, f"{len(reply.products)} products, nothing relaxed or explained"
    return CheckResult(name="mentions_relaxation_or_none", passed=passed, detail=how)


@dataclass
class TurnChecks:
    checks: list[CheckResult]
    constraint_satisfied: int
    constraint_total: int
    cross_sell_hit: bool | None  # None: no cross_sell expectation


def check_turn(
    expect: Expect,
    reply: ReplyView,
    *,
    transcript: str | None = None,
    cart_before: Sequence[str] = (),
    cart_after: Sequence[str] = (),
    previous: ReplyView | None = None,
    lookup: Lookup | None = None,
    said: str = "",
) -> TurnChecks:
    checks: list[CheckResult] = []
    satisfied = total = 0
    hit: bool | None = None
    earlier = [p.title for p in previous.products] if previous is not None else []
    checks += check_prose(reply, said, earlier)
    if expect.products is not None:
        found = check_products(expect.products, reply.products, lookup)
        checks += found.checks
        satisfied, total = found.satisfied, found.total
    if expect.cross_sell is not None:
        check = check_cross_sell(expect.cross_sell, reply)
        checks.append(check)
        hit = check.passed
    if expect.language is not None:
        checks.append(check_language(expect.language, reply))
    if expect.transcript_contains is not None:
        checks.append(check_transcript(expect.transcript_contains, transcript))
    if expect.cart_unchanged:
        checks.append(check_cart_unchanged(cart_before, cart_after))
    if expect.no_system_prompt_leak:
        checks.append(check_no_leak(reply.text))
    if expect.refers_to_previous_rank is not None:
        checks.append(check_previous_rank(expect.refers_to_previous_rank, reply, previous))
    if expect.mentions_relaxation_or_none:
        checks.append(check_relaxation_or_none(reply))
    if expect.look is not None:
        checks.append(check_look(expect.look, reply))
    if expect.cart_adds_previous_rank is not None:
        checks.append(
            check_cart_adds(expect.cart_adds_previous_rank, previous, cart_before, cart_after)
        )
    if expect.compares_previous_ranks is not None:
        checks.append(check_comparison(expect.compares_previous_ranks, reply, previous))
    if expect.reply_mentions_any is not None:
        checks.append(check_mentions(expect.reply_mentions_any, reply, wanted=True))
    if expect.reply_mentions_none is not None:
        checks.append(check_mentions(expect.reply_mentions_none, reply, wanted=False))
    return TurnChecks(checks, satisfied, total, hit)


# --- groundedness ----------------------------------------------------------------------------
class Grounding(BaseModel):
    facts: int = 0  # 3 per product shown, 1 per price written in the text
    matching: int = 0
    invented: int = 0  # unknown products + mismatching facts + invented text prices
    problems: list[str] = Field(default_factory=list)


_PRICE_RE = re.compile(
    r"(?:₹|\bRs\.?|\bINR)\s?(\d{1,3}(?:,\d{2,3})+(?:\.\d+)?|\d+(?:\.\d+)?)", re.IGNORECASE
)
_NUMBER_RE = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{2,3})+|\d+)(?:\.(\d+))?\s*(k\b)?", re.IGNORECASE)


# A bare number said to be a price ("a discounted price of 3000", "售价3000").
_CUED_PRICE_RE = re.compile(
    r"(?:\bpric(?:e|ed)(?: of| at| is)?|\bcosts?|\bfor (?:just|only)|\bat (?:just|only)|"
    r"售价|价格|价钱)\s*(?:is\s*|为|是)?(\d{1,3}(?:,\d{2,3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?!\s*%)",
    re.IGNORECASE,
)
_SENTENCE_ENDS = ("\n", ". ", "。", "！", "？")


def _sentence_at(text: str, start: int, end: int) -> str:
    first = max(text.rfind(mark, 0, start) for mark in _SENTENCE_ENDS)
    last = min(
        (i for i in (text.find(mark, end) for mark in _SENTENCE_ENDS) if i >= 0),
        default=len(text),
    )
    return text[first + 1 : last]


def text_prices(text: str) -> list[tuple[float, str]]:
    """Prices written with a currency (``₹1,299``, ``₹1299``, ``Rs 1299``, ``Rs. 1,299.50``)
    or a bare number called a price ("priced at 1299"): (value, the sentence it is in, the
    price itself blanked)."""
    found = []
    matches = sorted([*_PRICE_RE.finditer(text), *_CUED_PRICE_RE.finditer(text)], key=_span)
    taken = -1
    for match in matches:
        if match.start(1) < taken:  # "priced at ₹1,299" is one price, not two
            continue
        taken = match.end(1)
        value = float(match[1].replace(",", ""))
        sentence = _sentence_at(text, match.start(), match.end())
        found.append((value, sentence.replace(match[0], " ").strip()))
    return found


def _span(match: re.Match[str]) -> int:
    return match.start(1)


def text_quantities(text: str) -> set[tuple[float, str]]:
    """Amounts with a unit, as (value, canonical unit): ``100ml`` and ``100 毫升`` are
    ``(100.0, "ml")`` (the verifier's own reading, so both judge amounts alike)."""
    return amounts(text)


def _record_text(product: Product) -> str:
    parts = [product.title, product.description, product.materials_care, product.size_fit]
    parts += [product.style_note, *product.attributes.values()]
    return " ".join(p for p in parts if p)


def said_numbers(text: str) -> set[float]:
    """Numbers a shopper wrote (``2000``, ``1,500``, ``1.5k``) and the budget the query
    parser reads (``两千以内``, ``around 2000`` as a 1,600-2,400 range)."""
    from bijou.retrieval.query import QueryParser

    numbers = set()
    for match in _NUMBER_RE.finditer(text):
        value = float(match[1].replace(",", "") + (f".{match[2]}" if match[2] else ""))
        numbers.add(value * 1000 if match[3] else value)
    filters = QueryParser().parse(text).filters
    numbers |= {v for v in (filters.min_price, filters.max_price) if v is not None}
    return numbers


def _shown(reply: ReplyView) -> list[Any]:
    views = [*reply.products, *reply.cross_sell, *reply.cart]
    if reply.bundle is not None:
        views += [reply.bundle.anchor, *reply.bundle.items]
    return views


def _close(value: float, allowed: Iterable[float]) -> bool:
    return any(abs(value - a) < 0.005 for a in allowed)


def ground(
    reply: ReplyView,
    lookup: Lookup,
    allowed_numbers: Iterable[float] = (),
    search: Callable[[str], list[Product]] | None = None,
    said: Iterable[str] = (),
    earlier: Iterable[str] = (),
) -> Grounding:
    """The reply's facts against the catalog: each product shown (title, price, colour),
    each price in its text and each amount with a unit. A price must be one of a product
    shown or a total of the reply; ``allowed_numbers`` (budgets the shopper stated, or the
    agent derived from them) pass only in a sentence that speaks of a budget ("under ₹2,000"),
    never as what something costs. An amount with a unit ("100 ml") must be in the record of
    a product shown or in the shopper's own words (``said``). Products shown earlier in the
    dialog (``earlier``, ids) may be spoken of again: an answer about "the second one".
    ``search`` finds a catalog product named next to a text price."""
    result = Grounding()
    records: list[Product] = []
    for view in _shown(reply):
        result.facts += 3
        product = lookup(view.id)
        if product is None:
            result.invented += 1
            result.problems.append(f"{view.id} {view.title!r} is not in the catalog")
            continue
        records.append(product)
        for name, shown, real in (
            ("title", view.title, product.title),
            ("price", float(view.price), float(product.price)),
            ("colour", view.colour, product.colour),
        ):
            if shown == real:
                result.matching += 1
            else:
                result.invented += 1
                result.problems.append(f"{view.id} {name} {shown!r} != catalog {real!r}")
    budgets = {float(n) for n in allowed_numbers}
    prices: set[float] = set()
    for view in _shown(reply):
        prices |= {float(view.price), float(view.list_price)}
    for pid in dict.fromkeys(earlier):
        product = lookup(pid)
        if product is not None:
            records.append(product)
            prices |= {float(product.price), float(product.list_price)}
    if reply.bundle is not None:
        prices.add(float(reply.bundle.total))
        if reply.bundle.budget is not None:
            budgets.add(float(reply.bundle.budget))
    if reply.cart:
        prices.add(round(sum(v.price * (v.quantity or 1) for v in reply.cart), 2))
    text = reply.text.lower()
    for value, sentence in text_prices(reply.text):
        result.facts += 1
        as_budget = _close(value, budgets) and speaks_of_budget(sentence)
        if (
            _close(value, prices)
            or as_budget
            or (search is not None and _named_price(value, sentence, text, search))
        ):
            result.matching += 1
        else:
            result.invented += 1
            role = " (a budget, said as a price)" if _close(value, budgets) else ""
            result.problems.append(f"text price {value:g} matches no product{role}")
    known = set().union(*(text_quantities(_record_text(p)) for p in records))
    known |= set().union(*(text_quantities(words) for words in said))
    for value, unit in sorted(text_quantities(reply.text)):
        result.facts += 1
        if (value, unit) in known:
            result.matching += 1
        else:
            result.invented += 1
            result.problems.append(f"amount {value:g} {unit} is in no product record shown")
    return result


def _named_price(
    value: float, sentence: str, text: str, search: Callable[[str], list[Product]]
) -> bool:
    """A catalog product whose title the text names has this price ("the lowest-priced
    option I have is X at ₹499")."""
    if not sentence.strip():
        return False
    try:
        found = search(sentence)
    except Exception:
        return False
    return any(_close(value, (p.price, p.list_price)) and p.title.lower() in text for p in found)


# --- running ---------------------------------------------------------------------------------
class TurnRecord(BaseModel):
    number: int  # 1-based
    said: str
    result: TurnResult
    checks: list[CheckResult] = Field(default_factory=list)
    passed: bool = False
    constraint_satisfied: int = 0
    constraint_total: int = 0
    grounding: Grounding = Field(default_factory=Grounding)
    language_expected: str = "en"
    language_match: bool = False
    cross_sell_hit: bool | None = None
    judge: dict[str, int] | None = None

    @property
    def failed_checks(self) -> list[CheckResult]:
        failed = [c for c in self.checks if not c.passed]
        if self.result.error:
            failed.insert(0, CheckResult(name="request", passed=False, detail=self.result.error))
        return failed


class RunRecord(BaseModel):
    run: int  # 1-based
    session_id: str | None = None
    turns: list[TurnRecord]

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.turns)


class ScenarioRecord(BaseModel):
    id: str
    family: str
    language: str
    runs: list[RunRecord]

    @property
    def passes(self) -> int:
        return sum(r.passed for r in self.runs)


class EvalResults(BaseModel):
    target: str  # "in-process" or the shop's URL
    k: int
    started_at: float
    elapsed_s: float = 0.0
    scenarios: list[ScenarioRecord] = Field(default_factory=list)
    judge_model: str | None = None


def _score(
    scenario: Scenario,
    number: int,
    turn: Turn,
    result: TurnResult,
    client: DialogClient,
    previous: ReplyView | None,
    allowed: set[float],
    said: Sequence[str] = (),
    earlier: Sequence[str] = (),
) -> TurnRecord:
    expected = turn.expect.language or scenario.language
    record = TurnRecord(number=number, said=turn.said, result=result, language_expected=expected)
    if result.error or result.reply is None:
        record.result.error = result.error or "no reply"
        record.cross_sell_hit = False if turn.expect.cross_sell is not None else None
        return record
    reply = result.reply
    cache: dict[str, Product | None] = {}

    def lookup(pid: str) -> Product | None:
        if pid not in cache:
            cache[pid] = client.product(pid)
        return cache[pid]

    try:
        found = check_turn(
            turn.expect,
            reply,
            transcript=result.transcript,
            cart_before=result.cart_before,
            cart_after=result.cart_after,
            previous=previous,
            lookup=lookup,
            said=result.transcript or turn.user or "",
        )
        record.grounding = ground(reply, lookup, allowed, client.search, said, earlier)
    except Exception as exc:  # a catalog lookup that failed: the turn cannot be judged
        record.result.error = f"scoring failed: {_error_text(exc)}"
        return record
    record.checks = found.checks
    record.constraint_satisfied = found.constraint_satisfied
    record.constraint_total = found.constraint_total
    record.cross_sell_hit = found.cross_sell_hit
    record.language_match = reply.language == expected
    record.passed = all(c.passed for c in found.checks)
    return record


class RunScorer:
    """Scores one run's turns in order, carrying what later turns are judged against: the
    last list shown, the numbers the shopper said, the products shown so far."""

    def __init__(self, scenario: Scenario, client: DialogClient) -> None:
        self.scenario = scenario
        self.client = client
        self.previous: ReplyView | None = None
        self.allowed: set[float] = set()
        self.said: list[str] = []
        self.seen: list[str] = []  # product ids shown so far in this run

    def score(self, number: int, turn: Turn, result: TurnResult) -> TurnRecord:
        for words in (turn.user, result.transcript):
            if words:
                self.said.append(words)
                heard = said_numbers(words)
                self.allowed |= heard | {round(n * 0.8, 2) for n in heard}  # "cheaper"
        record = _score(
            self.scenario, number, turn, result, self.client, self.previous, self.allowed,
            self.said, self.seen,
        )  # fmt: skip
        if result.reply is not None:
            self.seen += [v.id for v in _shown(result.reply)]
        if result.reply is not None and result.reply.products:
            # "cheaper": one under the cheapest shown.
            self.allowed.add(round(min(p.price for p in result.reply.products) - 1, 2))
            # "The second one" points into the last list shown, which a reply without
            # products (an answer, a cart change) leaves in place.
            self.previous = result.reply
        return record


def run_scenario(scenario: Scenario, client: DialogClient, run: int) -> RunRecord:
    """One run of a scenario in a new session."""
    try:
        session: str | None = client.start()
        failure = None
    except Exception as exc:
        session, failure = None, f"could not start a session: {_error_text(exc)}"
    scorer = RunScorer(scenario, client)
    turns: list[TurnRecord] = []
    for number, turn in enumerate(scenario.turns, start=1):
        if session is None:
            result = TurnResult(error=failure)
        else:
            try:
                result = client.turn(session, turn, scenario.language)
            except Exception as exc:  # a client that raised anyway
                result = TurnResult(error=_error_text(exc))
        turns.append(scorer.score(number, turn, result))
    return RunRecord(run=run, session_id=session, turns=turns)


def rescore(results: EvalResults, scenarios: Sequence[Scenario], client: DialogClient) -> None:
    """Judges recorded replies again with today's checks, in place: a run made before a
    check changed is compared with a new one on equal terms, without replaying it."""
    by_id = {s.id: s for s in scenarios}
    for record in results.scenarios:
        scenario = by_id[record.id]
        for run in record.runs:
            scorer = RunScorer(scenario, client)
            run.turns = [
                scorer.score(t.number, scenario.turns[t.number - 1], _recorded(t.result))
                for t in run.turns
            ]


def recorded_results(summary: dict[str, Any]) -> EvalResults:
    """The runs of a written report.json, as results to judge again."""
    return EvalResults(
        target=summary["target"],
        k=summary["k"],
        started_at=summary["started_at"],
        elapsed_s=summary["elapsed_s"],
        scenarios=[
            ScenarioRecord(
                id=s["id"],
                family=s["family"],
                language=s["language"],
                runs=[
                    RunRecord(
                        run=r["run"],
                        session_id=r["session_id"],
                        turns=[TurnRecord.model_validate(t) for t in r["turns"]],
                    )
                    for r in s["runs"]
                ],
            )
            for s in summary["scenarios"]
        ],
    )


class CatalogClient:
    """Only the catalog side of a client: what judging recorded replies needs."""

    name = "catalog"

    def __init__(self, shop: Any) -> None:
        self.shop = shop

    def start(self) -> str:
        raise NotImplementedError("a catalog client runs no dialog")

    def turn(self, session_id: str, turn: Turn, language: str) -> TurnResult:
        raise NotImplementedError("a catalog client runs no dialog")

    def product(self, product_id: str) -> Product | None:
        return self.shop.get(product_id)

    def search(self, text: str) -> list[Product]:
        from bijou.retrieval.search import SearchRequest

        return [r.product for r in self.shop.search(SearchRequest(text=text)).results]

    def close(self) -> None:
        self.shop.close()


def _recorded(result: TurnResult) -> TurnResult:
    # A reply that failed scoring (not the request) is judged again from its reply.
    error = result.error if result.reply is None else None
    return result.model_copy(update={"error": error})


def run_scenarios(
    scenarios: Sequence[Scenario],
    client: DialogClient,
    k: int = 3,
    *,
    progress: Callable[[str], None] | None = None,
) -> EvalResults:
    """Every scenario ``k`` times, each run in its own session."""
    if k < 1:
        raise ValueError("k must be at least 1")
    results = EvalResults(target=client.name, k=k, started_at=time.time())
    start = time.perf_counter()
    for scenario in scenarios:
        runs = []
        for run in range(1, k + 1):
            record = run_scenario(scenario, client, run)
            runs.append(record)
            if progress is not None:
                mark = "pass" if record.passed else "FAIL"
                progress(f"{scenario.id} run {run}/{k}: {mark}")
        results.scenarios.append(
            ScenarioRecord(
                id=scenario.id, family=scenario.family, language=scenario.language, runs=runs
            )
        )
    results.elapsed_s = time.perf_counter() - start
    return results


# --- the LLM judge ---------------------------------------------------------------------------
_SCORE = {"type": "integer", "enum": [1, 2, 3, 4, 5]}
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"helpfulness": _SCORE, "clarity": _SCORE},
    "required": ["helpfulness", "clarity"],
}
JUDGE_PROMPT = (
    "You grade a jewelry shop assistant's reply to a shopper. Give two scores from 1 (poor) "
    "to 5 (excellent): helpfulness (does it answer what the shopper asked, with suitable "
    "products or a clear next step) and clarity (is it easy to read and unambiguous). "
    'Answer with JSON only, like {"helpfulness": 4, "clarity": 5}.'
)


def judge_results(
    results: EvalResults, model: ChatModel, *, timeout_s: float | None = None
) -> None:
    """Scores every answered turn with the LLM (soft scores, reported apart from the checks);
    a turn the judge fails on is left unscored."""
    from bijou.agent.llm import ChatMessage

    results.judge_model = getattr(model, "name", type(model).__name__)
    for scenario in results.scenarios:
        for run in scenario.runs:
            for turn in run.turns:
                reply = turn.result.reply
                if reply is None:
                    continue
                shopper = turn.result.transcript or turn.said
                messages = [
                    ChatMessage("system", JUDGE_PROMPT),
                    ChatMessage("user", f"Shopper: {shopper}\nAssistant: {reply.text}"),
                ]
                try:
                    score = model.complete_json(
                        messages, JUDGE_SCHEMA, max_tokens=30, timeout_s=timeout_s
                    )
                    turn.judge = {key: int(score[key]) for key in ("helpfulness", "clarity")}
                except Exception:
                    turn.judge = None


# --- metrics ---------------------------------------------------------------------------------
def pass_hat(successes: int, trials: int, k: int) -> float:
    """tau-bench's pass^k for one task: the chance that k of its trials, drawn without
    replacement, all passed."""
    if not 0 < k <= trials:
        raise ValueError(f"k={k} must be in 1..{trials}")
    return math.comb(successes, k) / math.comb(trials, k)


def pass_rates(outcomes: Sequence[Sequence[bool]]) -> tuple[float | None, float | None]:
    """(pass^1, pass^k) over scenarios, each a list of its runs' outcomes: pass^1 is the mean
    share of passed runs, pass^k the share of scenarios whose every run passed."""
    if not outcomes:
        return None, None
    ones = [pass_hat(sum(o), len(o), 1) for o in outcomes]
    alls = [pass_hat(sum(o), len(o), len(o)) for o in outcomes]
    return statistics.fmean(ones), statistics.fmean(alls)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation), None for no values."""
    data = sorted(values)
    if not data:
        return None
    pos = (len(data) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return data[low] + (data[high] - data[low]) * (pos - low)


def _rate(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def turn_metrics(turns: Sequence[TurnRecord]) -> dict[str, Any]:
    """The pooled turn-level numbers of any set of turns."""
    first = [t.result.first_token_s for t in turns if t.result.first_token_s is not None]
    total = [t.result.total_s for t in turns if t.result.reply is not None]
    facts = sum(t.grounding.facts for t in turns)
    cross = [t.cross_sell_hit for t in turns if t.cross_sell_hit is not None]
    return {
        "turns": len(turns),
        "turns_passed": sum(t.passed for t in turns),
        "errors": sum(t.result.error is not None for t in turns),
        "constraint_satisfaction": _round(
            _rate(
                sum(t.constraint_satisfied for t in turns), sum(t.constraint_total for t in turns)
            )
        ),
        "constraint_checks": sum(t.constraint_total for t in turns),
        "groundedness": _round(_rate(sum(t.grounding.matching for t in turns), facts)),
        "facts": facts,
        "invented_count": sum(t.grounding.invented for t in turns),
        "cross_sell_hit_rate": _round(_rate(sum(cross), len(cross))),
        "cross_sell_turns": len(cross),
        "language_match": _round(_rate(sum(t.language_match for t in turns), len(turns))),
        "first_token_p50_s": _round(percentile(first, 50)),
        "first_token_p95_s": _round(percentile(first, 95)),
        "turn_p50_s": _round(percentile(total, 50)),
        "turn_p95_s": _round(percentile(total, 95)),
    }


def _check_rates(turns: Iterable[TurnRecord]) -> dict[str, dict[str, Any]]:
    counts: dict[str, list[int]] = {}
    for turn in turns:
        for check in turn.checks:
            tally = counts.setdefault(check.name, [0, 0])
            tally[0] += check.passed
            tally[1] += 1
    return {
        name: {"passed": ok, "total": n, "rate": _round(ok / n)}
        for name, (ok, n) in sorted(counts.items())
    }


def _judge_summary(turns: Sequence[TurnRecord], model: str | None) -> dict[str, Any] | None:
    if model is None:
        return None
    scored = [t.judge for t in turns if t.judge]
    answered = sum(t.result.reply is not None for t in turns)
    return {
        "model": model,
        "helpfulness": _round(_rate(sum(s["helpfulness"] for s in scored), len(scored))),
        "clarity": _round(_rate(sum(s["clarity"] for s in scored), len(scored))),
        "judged": len(scored),
        "failed": answered - len(scored),
    }


def _all_turns(scenarios: Iterable[ScenarioRecord]) -> list[TurnRecord]:
    return [t for s in scenarios for r in s.runs for t in r.turns]


def summarize(results: EvalResults) -> dict[str, Any]:
    """Every number of the evaluation: the overall ones at the top level, then per family,
    per scenario, per turn (across runs) and every run's turns in full."""
    outcomes = [[r.passed for r in s.runs] for s in results.scenarios]
    pass_1, pass_k = pass_rates(outcomes)
    turns = _all_turns(results.scenarios)
    families: dict[str, list[ScenarioRecord]] = {}
    for scenario in results.scenarios:
        families.setdefault(scenario.family, []).append(scenario)
    family_rows = {}
    for family, members in sorted(families.items()):
        f1, fk = pass_rates([[r.passed for r in s.runs] for s in members])
        family_rows[family] = {
            "scenarios": len(members),
            "pass_1": _round(f1),
            "pass_k": _round(fk),
            **turn_metrics(_all_turns(members)),
        }
    return {
        "target": results.target,
        "k": results.k,
        "started_at": results.started_at,
        "elapsed_s": _round(results.elapsed_s, 2),
        "scenarios_count": len(results.scenarios),
        "pass_1": _round(pass_1),
        "pass_k": _round(pass_k),
        **turn_metrics(turns),
        "checks": _check_rates(turns),
        "judge": _judge_summary(turns, results.judge_model),
        "families": family_rows,
        "scenarios": [_scenario_summary(s, results.judge_model) for s in results.scenarios],
    }


def _scenario_summary(scenario: ScenarioRecord, judge_model: str | None) -> dict[str, Any]:
    f1, fk = pass_rates([[r.passed for r in scenario.runs]])
    turns = _all_turns([scenario])
    by_number: dict[int, list[TurnRecord]] = {}
    for turn in turns:
        by_number.setdefault(turn.number, []).append(turn)
    return {
        "id": scenario.id,
        "family": scenario.family,
        "language": scenario.language,
        "runs_passed": scenario.passes,
        "runs_count": len(scenario.runs),
        "pass_1": _round(f1),
        "pass_k": _round(fk),
        **turn_metrics(turns),
        "judge": _judge_summary(turns, judge_model),
        "turns": [
            {
                "number": number,
                "said": group[0].said,
                "pass_rate": _round(sum(t.passed for t in group) / len(group)),
                "checks": _check_rates(group),
                **turn_metrics(group),
            }
            for number, group in sorted(by_number.items())
        ],
        "runs": [
            {
                "run": run.run,
                "session_id": run.session_id,
                "passed": run.passed,
                "turns": [t.model_dump(mode="json") for t in run.turns],
            }
            for run in scenario.runs
        ],
    }
