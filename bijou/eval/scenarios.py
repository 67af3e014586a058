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

import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

if typing.TYPE_CHECKING:
    pass

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
