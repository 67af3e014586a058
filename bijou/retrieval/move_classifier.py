"""A small learned classifier of dialog moves, for messages no cue phrase decides.

A fastText-style model: hashed word uni- and bigrams and character 2-4-grams (which read
Chinese and Hinglish as well as English), averaged into a 32-d vector, then a linear layer.
It trains in seconds on a CPU (`bijou train-moves`) from the templates in
``training/move_examples.yaml`` filled with the vocabularies, plus real shopper utterances
(``training/real_utterances.jsonl``); the checkpoint ships in ``checkpoints/``.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import yaml

from bijou.retrieval.lexicon import CJK_RE, Lexicon, load_lexicon
from bijou.retrieval.query import normalise

HERE = Path(__file__).parent
EXAMPLES = HERE / "training" / "move_examples.yaml"
REAL_UTTERANCES = HERE / "training" / "real_utterances.jsonl"
CHECKPOINT = HERE / "checkpoints" / "move_classifier.npz"
BUCKETS = 1 << 16
DIM = 32
_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")


def features(text: str) -> list[int]:
    """Hashed feature ids of a message: words, word pairs and character n-grams."""
    text = _DIGITS.sub("0", normalise(text).lower())
    words = re.findall(r"[^\W\d_]+|0|[^\s\w]", text)
    grams = [f"w:{w}" for w in words]
    grams += [f"b:{a} {b}" for a, b in itertools.pairwise(words)]
    for word in words:
        padded = f"<{word}>" if not CJK_RE.match(word) else word
        for n in (2, 3, 4):
            grams += [f"c:{padded[i : i + n]}" for i in range(max(len(padded) - n + 1, 0))]
        if CJK_RE.match(word):
            grams += [f"c:{ch}" for ch in word]
    return [zlib.crc32(g.encode()) % BUCKETS for g in grams] or [0]


@dataclass(frozen=True)
class MoveClassifier:
    labels: tuple[str, ...]
    embedding: np.ndarray  # (BUCKETS, DIM)
    weight: np.ndarray  # (labels, DIM)
    bias: np.ndarray  # (labels,)

    def probabilities(self, text: str) -> np.ndarray:
        hidden = self.embedding[features(text)].astype(np.float32).mean(axis=0)
        logits = self.weight.astype(np.float32) @ hidden + self.bias
        exp = np.exp(logits - logits.max())
        return exp / exp.sum()

    def predict(self, text: str) -> tuple[str, float]:
        p = self.probabilities(text)
        best = int(p.argmax())
        return self.labels[best], float(p[best])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            labels=np.array(self.labels),
            embedding=self.embedding.astype(np.float16),
            weight=self.weight.astype(np.float16),
            bias=self.bias.astype(np.float32),
        )

    @classmethod
    def load(cls, path: Path) -> MoveClassifier:
        with np.load(path) as data:
            return cls(
                tuple(str(v) for v in data["labels"]),
                data["embedding"],
                data["weight"],
                data["bias"],
            )


@cache
def load_move_classifier(path: Path = CHECKPOINT) -> MoveClassifier:
    if not path.is_file():
        raise FileNotFoundError(f"no move classifier at {path}: run `bijou train-moves`")
    return MoveClassifier.load(path)


# --- the training corpus ----------------------------------------------------------------------
_SLOT = re.compile(r"\{(\w+)\}")


def _fillers(lexicon: Lexicon, language: str, extra: dict[str, list[str]]) -> dict[str, list[str]]:
    """Slot values for one language's templates: the vocabulary's own words (Hinglish mixes
    in English category words), plus the example file's ranks and budgets."""
    languages = {"en": ("en",), "zh": ("zh",), "hi": ("en", "hi")}[language]
    table: dict[str, list[str]] = {}
    for slot, vocab in (
        ("article", lexicon.articles),
        ("colour", lexicon.colours),
        ("recipient", lexicon.recipients),
        ("occasion", lexicon.occasions),
        ("attribute", lexicon.attributes),
        ("garment", lexicon.garments),
    ):
        table[slot] = sorted(t for t, term in vocab.terms.items() if term.language in languages)
    return {**table, **extra}


def synthetic_examples(
    per_move: int = 300, seed: int = 13, path: Path = EXAMPLES
) -> list[tuple[str, str]]:
    """(text, move) pairs: every template filled with random vocabulary, ``per_move`` per
    move, spread over the languages that have templates."""
    rng = random.Random(seed)
    lexicon = load_lexicon()
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    slots = data.pop("fillers")
    fillers = {lang: _fillers(lexicon, lang, slots[lang]) for lang in ("en", "zh", "hi")}
    out: list[tuple[str, str]] = []
    for move, by_language in data.items():
        templates = [(lang, t) for lang, items in by_language.items() for t in items]
        for i in range(per_move):
            lang, template = (
                templates[i % len(templates)] if i < len(templates) else rng.choice(templates)
            )
            text = _SLOT.sub(lambda m, lang=lang: rng.choice(fillers[lang][m[1]]), template)
            out.append((_vary(text, rng), move))
    return out


def _vary(text: str, rng: random.Random) -> str:
    """Shopper-style noise: case, trailing punctuation, a dropped apostrophe."""
    if rng.random() < 0.3:
        text = text.capitalize()
    if rng.random() < 0.2:
        text = text.replace("'", "")
    if rng.random() < 0.25:
        text += rng.choice(["?", "!", " pls", " please", "..", " 🙂"])
    return text


def real_examples(path: Path = REAL_UTTERANCES) -> list[tuple[str, str]]:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [(row["text"], row["move"]) for row in rows]


# --- training --------------------------------------------------------------------------------
def train(
    examples: Sequence[tuple[str, str]],
    *,
    epochs: int = 12,
    seed: int = 13,
    progress: bool = True,
) -> MoveClassifier:
    """Trains the classifier with Adam and cross-entropy (torch, CPU)."""
    import torch
    from tqdm import tqdm

    torch.manual_seed(seed)
    labels = tuple(sorted({move for _, move in examples}))
    index = {label: i for i, label in enumerate(labels)}
    encoded = [(features(text), index[move]) for text, move in examples]
    bag = torch.nn.EmbeddingBag(BUCKETS, DIM, mode="mean")
    head = torch.nn.Linear(DIM, len(labels))
    params = [*bag.parameters(), *head.parameters()]
    optimiser = torch.optim.Adam(params, lr=0.05)
    rng = random.Random(seed)
    for _ in tqdm(range(epochs), desc="training moves", unit="epoch", disable=not progress):
        rng.shuffle(encoded)
        for batch in _batches(encoded, 64):
            ids = torch.tensor([i for f, _ in batch for i in f])
            offsets = torch.tensor(np.cumsum([0] + [len(f) for f, _ in batch[:-1]]).tolist())
            target = torch.tensor([y for _, y in batch])
            loss = torch.nn.functional.cross_entropy(head(bag(ids, offsets)), target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return MoveClassifier(
        labels,
        bag.weight.detach().numpy().copy(),
        head.weight.detach().numpy().copy(),
        head.bias.detach().numpy().copy(),
    )


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
