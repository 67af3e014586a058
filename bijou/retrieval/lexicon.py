"""The shop's vocabularies, loaded once from the data files in ``vocab/``: how shoppers name
categories, colours, recipients, occasions, numbers, budgets, negations, ranks, dialog moves
and product attributes, in English, Chinese and Hinglish.

Every parser reads its words from here; nothing else in Bijou keeps a word list. A language
file maps shoppers' words onto the catalog's own values (``catalog.yaml``); ``A | B`` names
several values, ``@group`` a group of articles. Chinese is stored in simplified characters:
`to_simplified` converts traditional text before anything reads it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

VOCAB_DIR = Path(__file__).with_name("vocab")
LANGUAGE_FILES = ("en.yaml", "zh.yaml", "hi.yaml")  # the first one glosses the others
CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_RE = re.compile(f"[{CJK}]")
# Words, with each Chinese character a word of its own (Chinese is written without spaces).
TOKEN_RE = re.compile(f"[{CJK}]|[^\\W_]+")


def language_of(text: str, fallback: str = "en") -> str:
    """The reply language for a message: Chinese if it has Chinese characters, English if it
    has Latin words (Hinglish is answered in English), else ``fallback``."""
    if CJK_RE.search(text):
        return "zh"
    return "en" if re.search(r"[A-Za-z]{2,}", text) else fallback


@cache
def _converter(config: str) -> Any:
    import opencc  # a C++ library with its dictionaries in the wheel; loads in ~0.1 s

    return opencc.OpenCC(config)


def to_simplified(text: str) -> str:
    """Traditional Chinese characters as simplified ones (項鍊 -> 项链); other text as is."""
    return _converter("t2s").convert(text) if CJK_RE.search(text) else text


def to_traditional(text: str) -> str:
    """Simplified Chinese as traditional, for a shopper who writes traditional characters."""
    # Taiwan's standard forms (為, 裡), which Hong Kong readers read as well.
    return _converter("s2tw").convert(text) if CJK_RE.search(text) else text


def script_of(text: str) -> str:
    """``hant`` for traditional Chinese, ``hans`` for simplified, ``latin`` for the rest."""
    if not CJK_RE.search(text):
        return "latin"
    return "hant" if to_simplified(text) != text else "hans"


def alternation(terms: Iterable[str]) -> str:
    """Longest-first alternation; ASCII edges get word boundaries so "ring" misses "earring"."""
    parts = []
    for term in sorted(set(terms), key=lambda t: (-len(t), t)):
        left = "(?<![a-z0-9])" if term[0].isascii() and term[0].isalnum() else ""
        right = "(?![a-z0-9])" if term[-1].isascii() and term[-1].isalnum() else ""
        parts.append(left + re.escape(term) + right)
    return "|".join(parts)


def any_of(words: Iterable[str]) -> str:
    """A group matching any of the phrases (longest first, word-bounded); one matching
    nothing when there are none."""
    words = [w for w in words if w]
    return f"(?:{alternation(words)})" if words else r"(?!x)x"


@dataclass(frozen=True)
class Term:
    """A shopper's word and what it means."""

    text: str
    values: tuple[str, ...]  # catalog values, or the concept's own keys
    gloss: str  # the English word the search engines see for it
    language: str


@dataclass(frozen=True)
class Vocabulary:
    """One concept (articles, colours...) across languages: every surface form, matched
    longest first, case-insensitively, on normalised lower-case text."""

    name: str
    terms: Mapping[str, Term]
    pattern: re.Pattern[str]

    @classmethod
    def of(cls, name: str, terms: Iterable[Term]) -> Vocabulary:
        table: dict[str, Term] = {}
        for term in terms:
            table.setdefault(term.text, term)
        body = alternation(table) if table else r"(?!x)x"
        return cls(name, table, re.compile(body))

    def find(self, text: str) -> Iterator[tuple[re.Match[str], Term]]:
        for match in self.pattern.finditer(text):
            yield match, self.terms[match[0]]

    def values(self) -> set[str]:
        return {v for t in self.terms.values() for v in t.values}


@dataclass(frozen=True)
class NumberWords:
    """Number words of the Latin-script languages, and Chinese numerals."""

    units: Mapping[str, float]
    scales: Mapping[str, float]
    fractions: Mapping[str, float]
    shifts: Mapping[str, float]  # "saade teen" = 3.5: added to the next unit
    joiners: frozenset[str]
    zh_digits: Mapping[str, int]
    zh_units: Mapping[str, int]


@dataclass(frozen=True)
class BudgetCues:
    currency_before: tuple[str, ...]
    currency_after: tuple[str, ...]
    ceiling_before: tuple[str, ...]
    ceiling_after: tuple[str, ...]
    floor_before: tuple[str, ...]
    floor_after: tuple[str, ...]
    approx_before: tuple[str, ...]
    approx_after: tuple[str, ...]
    range_before: tuple[str, ...]
    range_joiners: tuple[str, ...]
    floor_regret_after: tuple[str, ...]
    # A floor's words after one of these are a ceiling: "don't want to spend over 2500".
    floor_negated_before: tuple[str, ...]
    total: tuple[str, ...]
    quantity_units: tuple[str, ...]


@dataclass(frozen=True)
class Contrast:
    """ "rather A than B": the term after ``cue`` is avoided when a ``when`` word came first."""

    cue: str
    when: tuple[str, ...]


@dataclass(frozen=True)
class NegationCues:
    before: tuple[str, ...]
    after: tuple[str, ...]
    contrast: tuple[Contrast, ...]


@dataclass(frozen=True)
class RankWords:
    ordinals: Mapping[str, int]  # 0 is "the middle one"
    nouns: tuple[str, ...]
    numbered: tuple[str, ...]
    counts: Mapping[str, int]
    both: tuple[str, ...]
    picks: Mapping[str, tuple[str, ...]]  # cheapest / most_expensive -> phrases


@dataclass(frozen=True)
class Link:
    phrase: str
    direction: str  # "after": the anchor follows the phrase; "before": it precedes it


@dataclass(frozen=True)
class AnchorCues:
    owned: tuple[str, ...]
    links: tuple[Link, ...]


@dataclass(frozen=True)
class RecordAttribute:
    """Where a product record answers a question about one attribute."""

    fields: tuple[str, ...]
    words: tuple[str, ...]


@dataclass(frozen=True)
class Styling:
    """The shop's styling rules (catalog.yaml): where pieces are worn, which pairs complete
    each other, which colour contrasts are endorsed, which colours are neutral, and the
    price band of a suggestion beside its anchor."""

    places: Mapping[str, str]  # article -> place
    completes: Mapping[frozenset[str], str]  # {article, article} -> how
    completes_base: Mapping[frozenset[str], str]  # -> the article the other is for, if one
    contrasts: Mapping[str, frozenset[str]]  # tone -> colours it stands out against
    neutrals: frozenset[str]
    children: frozenset[str]  # title words of a child's piece
    max_ratio: float
    floor: float
    min_ratio: float


@dataclass(frozen=True)
class Lexicon:
    articles: Vocabulary
    garments: Vocabulary
    colours: Vocabulary
    recipients: Vocabulary
    occasions: Vocabulary
    relations: Vocabulary  # who a gift is for: "wife", "colleague"
    events: Vocabulary  # what it is for: "birthday", "diwali"
    styles: Vocabulary  # a style named outright: "traditional", "western"
    refinements: Vocabulary
    attributes: Vocabulary  # question topics -> attribute names
    numbers: NumberWords
    budget: BudgetCues
    negation: NegationCues
    ranks: RankWords
    anchors: AnchorCues
    moves: Mapping[str, tuple[str, ...]]  # move -> cue patterns, every language
    stopwords: frozenset[str]  # Latin-script
    zh_stopwords: tuple[str, ...]
    shopping: tuple[str, ...]  # "gift", "recommend": a request without a category
    openers: tuple[str, ...]  # "please", "ok": what may precede a cue anchored at the start
    relax: Mapping[str, tuple[str, ...]]  # any_colour / any_price / other_brand -> phrases
    alternatives: tuple[str, ...]  # "or": categories named as alternatives
    cart_both: tuple[str, ...]  # "both" in a cart request
    typos: Mapping[str, str]  # common slips -> the word meant
    brand_words: frozenset[str]  # brand names that are also ordinary words: never "fixed"
    groups: Mapping[str, tuple[str, ...]]
    relation_genders: Mapping[str, str]  # relation -> a "recipients" key (women, men...)
    record_attributes: Mapping[str, RecordAttribute]
    palette: Mapping[str, tuple[int, int, int]]  # colour name -> sRGB, for photos
    styling: Styling
    sources: Mapping[str, Mapping[str, Any]] = field(repr=False)  # the raw files, for tests

    @property
    def jewellery(self) -> tuple[str, ...]:
        return self.groups["jewellery"]

    def all_phrases(self) -> set[str]:
        """Every word and phrase of every vocabulary, lower case."""
        phrases: set[str] = set(self.stopwords) | set(self.zh_stopwords)
        for vocab in (self.articles, self.garments, self.colours, self.recipients,
                      self.occasions, self.relations, self.events, self.styles,
                      self.refinements, self.attributes):  # fmt: skip
            phrases |= set(vocab.terms)
        n, b, g, r = self.numbers, self.budget, self.negation, self.ranks
        phrases |= {*n.units, *n.scales, *n.fractions, *n.shifts, *n.joiners}
        for name in BudgetCues.__dataclass_fields__:
            phrases |= set(getattr(b, name))
        phrases |= {*g.before, *g.after, *r.ordinals, *r.nouns, *r.numbered, *r.both}
        phrases |= {w for words in r.picks.values() for w in words}
        phrases |= {
            c.replace("...", " ").strip("^$ ") for cues in self.moves.values() for c in cues
        }
        phrases |= {*self.shopping, *self.openers, *self.alternatives, *self.cart_both}
        phrases |= {w for words in self.relax.values() for w in words}
        phrases |= {*self.anchors.owned, *(link.phrase for link in self.anchors.links)}
        return phrases


class LexiconError(ValueError):
    """A vocabulary file that does not follow the format: the message names file and key."""


def _read(path: Path) -> dict[str, Any]:
    # Every scalar is a string (YAML would read "no" and "on" as booleans); numbers are
    # converted where they are numbers. The C loader where PyYAML has it: the pure-Python
    # one takes most of a second on these files.
    loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    if not isinstance(data, dict):
        raise LexiconError(f"{path.name}: not a YAML mapping")
    return data


def _values(key: str, groups: Mapping[str, tuple[str, ...]], where: str) -> tuple[str, ...]:
    out: list[str] = []
    for part in (p.strip() for p in key.split("|")):
        if part.startswith("@"):
            if part[1:] not in groups:
                raise LexiconError(f"{where}: unknown group {part!r}")
            out += groups[part[1:]]
        elif part:
            out.append(part)
    return tuple(dict.fromkeys(out))


def _lower(term: object, where: str) -> str:
    if not isinstance(term, str | int | float) or not str(term).strip():
        raise LexiconError(f"{where}: a term must be a non-empty string, not {term!r}")
    return " ".join(str(term).lower().split())


def _mapping_terms(
    files: list[tuple[str, dict[str, Any]]],
    section: str,
    groups: Mapping[str, tuple[str, ...]],
) -> list[Term]:
    """Terms of a ``{key: [words]}`` section in every file; the gloss of a key is its first
    English word (English words gloss as themselves)."""
    glosses: dict[str, str] = {}
    terms: list[Term] = []
    for name, data in files:
        table = data.get(section) or {}
        if not isinstance(table, dict):
            raise LexiconError(f"{name}: {section} must be a mapping")
        for key, words in table.items():
            where = f"{name}: {section}.{key}"
            if not isinstance(words, list) or not words:
                raise LexiconError(f"{where}: give a non-empty list of words")
            values = _values(str(key), groups, where)
            english = data.get("language") == "en"
            if english:
                glosses.setdefault(str(key), _lower(words[0], where))
            for word in words:
                text = _lower(word, where)
                gloss = text if english else glosses.get(str(key), text)
                terms.append(Term(text, values, gloss, data.get("language", name)))
    return terms


def _phrases(files: list[tuple[str, dict[str, Any]]], *path: str) -> tuple[str, ...]:
    out: list[str] = []
    for name, data in files:
        node: Any = data
        for key in path:
            node = (node or {}).get(key)
        for word in node or ():
            out.append(_lower(word, f"{name}: {'.'.join(path)}"))
    return tuple(dict.fromkeys(out))


def _merged(files: list[tuple[str, dict[str, Any]]], *path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for _, data in files:
        node: Any = data
        for key in path:
            node = (node or {}).get(key)
        out.update({_lower(k, ".".join(path)): str(v) for k, v in (node or {}).items()})
    return out


def _numbers(files: list[tuple[str, dict[str, Any]]], *path: str) -> dict[str, float]:
    where = ".".join(path)
    try:
        return {k: float(v) for k, v in _merged(files, *path).items()}
    except ValueError as exc:
        raise LexiconError(f"{where}: {exc}") from None


@cache
def load_lexicon(folder: Path = VOCAB_DIR) -> Lexicon:
    """Every vocabulary file of ``folder``, parsed and checked once per process."""
    catalog = _read(folder / "catalog.yaml")
    groups = {k: tuple(v) for k, v in (catalog.get("groups") or {}).items()}
    files = [(name, _read(folder / name)) for name in LANGUAGE_FILES]
    budget = {
        key: _phrases(files, "budget", key)
        for key in BudgetCues.__dataclass_fields__
        if key != "quantity_units"
    }
    moves: dict[str, tuple[str, ...]] = {}
    for name, data in files:
        for move, cues in (data.get("moves") or {}).items():
            moves[move] = moves.get(move, ()) + tuple(
                _lower(c, f"{name}: moves.{move}") for c in cues
            )
    zh_numbers = next((d.get("numerals") for _, d in files if d.get("numerals")), {})
    contrast = tuple(
        Contrast(_lower(c["cue"], "contrast"), tuple(_lower(w, "contrast") for w in c["when"]))
        for _, data in files
        for c in ((data.get("negation") or {}).get("contrast") or ())
    )
    links = tuple(
        Link(_lower(link["phrase"], "anchors.links"), str(link["direction"]))
        for _, data in files
        for link in ((data.get("anchors") or {}).get("links") or ())
    )
    if bad := [link for link in links if link.direction not in ("after", "before")]:
        raise LexiconError(f"anchors.links: direction must be after or before: {bad}")
    picks: dict[str, tuple[str, ...]] = {}
    for name, data in files:
        for pick, words in ((data.get("ranks") or {}).get("picks") or {}).items():
            picks[pick] = picks.get(pick, ()) + tuple(_lower(w, f"{name}: picks") for w in words)
    attributes = catalog.get("attributes") or {}
    return Lexicon(
        articles=Vocabulary.of("articles", _mapping_terms(files, "articles", groups)),
        garments=Vocabulary.of("garments", _mapping_terms(files, "garments", groups)),
        colours=Vocabulary.of("colours", _mapping_terms(files, "colours", groups)),
        recipients=Vocabulary.of("recipients", _mapping_terms(files, "recipients", groups)),
        occasions=Vocabulary.of("occasions", _mapping_terms(files, "occasions", groups)),
        relations=Vocabulary.of("relations", _mapping_terms(files, "relations", groups)),
        events=Vocabulary.of("events", _mapping_terms(files, "events", groups)),
        styles=Vocabulary.of("styles", _mapping_terms(files, "styles", groups)),
        refinements=Vocabulary.of("refinements", _mapping_terms(files, "refinements", groups)),
        attributes=Vocabulary.of("attributes", _mapping_terms(files, "attributes", groups)),
        numbers=NumberWords(
            units=_numbers(files, "numbers", "units"),
            scales=_numbers(files, "numbers", "scales"),
            fractions=_numbers(files, "numbers", "fractions"),
            shifts=_numbers(files, "numbers", "shifts"),
            joiners=frozenset(_phrases(files, "numbers", "joiners")),
            zh_digits={k: int(v) for k, v in ((zh_numbers or {}).get("digits") or {}).items()},
            zh_units={k: int(v) for k, v in ((zh_numbers or {}).get("units") or {}).items()},
        ),
        budget=BudgetCues(**budget, quantity_units=_phrases(files, "quantity_units")),
        negation=NegationCues(
            before=_phrases(files, "negation", "before"),
            after=_phrases(files, "negation", "after"),
            contrast=contrast,
        ),
        ranks=RankWords(
            ordinals={k: int(v) for k, v in _numbers(files, "ranks", "ordinals").items()},
            nouns=_phrases(files, "ranks", "nouns"),
            numbered=_phrases(files, "ranks", "numbered"),
            counts={k: int(v) for k, v in _numbers(files, "ranks", "counts").items()},
            both=_phrases(files, "ranks", "both"),
            picks=picks,
        ),
        anchors=AnchorCues(owned=_phrases(files, "anchors", "owned"), links=links),
        moves=moves,
        stopwords=frozenset(
            w
            for _, d in files
            if d.get("language") != "zh"
            for w in _phrases([("", d)], "stopwords")
        ),
        zh_stopwords=_phrases([f for f in files if f[1].get("language") == "zh"], "stopwords"),
        shopping=_phrases(files, "shopping"),
        openers=_phrases(files, "openers"),
        relax={
            key: _phrases(files, "relax", key) for key in ("any_colour", "any_price", "other_brand")
        },
        alternatives=_phrases(files, "alternatives"),
        cart_both=_phrases(files, "cart_both"),
        typos={k: v.lower() for k, v in _merged(files, "typos").items()},
        brand_words=frozenset(_phrases(files, "brand_words")),
        groups=groups,
        relation_genders={
            str(k): str(v) for k, v in (catalog.get("relation_genders") or {}).items()
        },
        record_attributes={
            name: RecordAttribute(tuple(spec.get("fields") or ()), tuple(spec.get("words") or ()))
            for name, spec in attributes.items()
        },
        palette={
            name: tuple(int(c) for c in rgb)  # type: ignore[misc]
            for name, rgb in (catalog.get("palette") or {}).items()
        },
        styling=_styling(catalog),
        sources={"catalog.yaml": catalog, **dict(files)},
    )


def _styling(catalog: dict[str, Any]) -> Styling:
    band = catalog.get("price_band") or {}
    return Styling(
        places={a: place for place, arts in (catalog.get("places") or {}).items() for a in arts},
        completes={
            frozenset(row["articles"]): str(row["how"]) for row in catalog.get("completes") or ()
        },
        completes_base={
            frozenset(row["articles"]): row["articles"][0]
            for row in catalog.get("completes") or ()
            if not row.get("either_way")
        },
        contrasts={k: frozenset(v) for k, v in (catalog.get("contrasts") or {}).items()},
        neutrals=frozenset(catalog.get("neutrals") or ()),
        children=frozenset(catalog.get("children") or ()),
        max_ratio=float(band.get("max_ratio", 3)),
        floor=float(band.get("floor", 0)),
        min_ratio=float(band.get("min_ratio", 0)),
    )
