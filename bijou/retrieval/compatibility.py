"""A learned compatibility model: how well two products go together, on their fused
multimodal vectors (text + image, video when present, joined by the shipped gated fusion).

Type-aware, after Vasileva et al. (ECCV 2018, "Learning Type-Aware Embeddings for Fashion
Compatibility"): one shared projection into a compatibility space, and for each pair of
article groups a learned mask that picks the dimensions that matter for that pair (a
watch with a wallet is judged on other traits than earrings with a saree). The score of a
pair is the cosine of the two masked projections.

Supervision is the shop's own: stylist notes that name another article, with its colour
where they give one ("team it with a silver watch"), and weak labels from rules (metal tone
and colour families, occasion, gender, price tier). `bijou train-compatibility` trains it
(seeded, split by product, progress bar); the checkpoint ships in ``checkpoints/``.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from bijou.catalog.schema import Product
from bijou.retrieval.lexicon import load_lexicon
from bijou.retrieval.look import look_of

CHECKPOINT = Path(__file__).parent / "checkpoints" / "compatibility.npz"
DIM = 64
_NEAR_WORDS = 3  # a colour word names the article it comes this close before


@dataclass(frozen=True)
class NotePair:
    """A stylist note of ``anchor_id`` names ``article`` (with ``colours``, when it says)."""

    anchor_id: str
    article: str
    colours: tuple[str, ...] = ()


def note_pairs(products: Sequence[Product]) -> list[NotePair]:
    """Every (product, named article[, its colour]) that products' stylist notes give; a
    note naming the product's own article pairs nothing."""
    lex = load_lexicon()
    pairs = []
    for product in products:
        note = product.style_note.lower()
        if not note:
            continue
        colour_spans = [
            (m.start(), m.end(), term.values)
            for m, term in lex.colours.find(note)
            if term.language == "en"
        ]
        for m, term in lex.articles.find(note):
            if len(term.values) != 1 or term.values[0] == product.article:
                continue  # "bag" or "jewellery" name no one article
            before = note[: m.start()]
            colours = [
                v
                for start, end, values in colour_spans
                if end <= m.start() and len(re.findall(r"\w+", before[start:])) <= _NEAR_WORDS
                for v in values
            ]
            pairs.append(NotePair(product.id, term.values[0], tuple(dict.fromkeys(colours))))
    return list(dict.fromkeys(pairs))


def group_of(article: str) -> str:
    """The unit of type-awareness: jewellery pieces are one type each, bags one type."""
    groups = load_lexicon().groups
    return "bags" if article in groups["bags"] else article


@dataclass(frozen=True)
class CompatibilityModel:
    projection: np.ndarray  # (DIM, in_dim)
    masks: np.ndarray  # (pairs, DIM), non-negative
    pair_index: dict[tuple[str, str], int]  # sorted (group, group) -> row of masks
    version: str = ""

    def _mask(self, a: str, b: str) -> np.ndarray:
        key = tuple(sorted((group_of(a), group_of(b))))
        row = self.pair_index.get(key)  # type: ignore[arg-type]
        return self.masks[row] if row is not None else np.ones(DIM, np.float32)

    def embed(self, vectors: np.ndarray) -> np.ndarray:
        z = np.asarray(vectors, np.float32) @ self.projection.T
        return z / np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-9)

    def score(self, a: np.ndarray, a_article: str, b: np.ndarray, b_article: str) -> np.ndarray:
        """Compatibility in [-1, 1] of anchor vector ``a`` with each row of ``b``."""
        mask = self._mask(a_article, b_article)
        za, zb = self.embed(a[None])[0] * mask, self.embed(np.atleast_2d(b)) * mask
        za = za / max(float(np.linalg.norm(za)), 1e-9)
        zb = zb / np.maximum(np.linalg.norm(zb, axis=1, keepdims=True), 1e-9)
        return zb @ za

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self.pair_index, key=self.pair_index.__getitem__)
        np.savez_compressed(
            path,
            projection=self.projection.astype(np.float16),
            masks=self.masks.astype(np.float16),
            pairs=np.array([f"{a}|{b}" for a, b in keys]),
            version=np.array(self.version),
        )

    @classmethod
    def load(cls, path: Path) -> CompatibilityModel:
        with np.load(path) as data:
            pairs = [tuple(str(p).split("|")) for p in data["pairs"]]
            return cls(
                data["projection"].astype(np.float32),
                data["masks"].astype(np.float32),
                {p: i for i, p in enumerate(pairs)},  # type: ignore[misc]
                str(data["version"]),
            )


@cache
def load_compatibility(path: Path = CHECKPOINT) -> CompatibilityModel | None:
    return CompatibilityModel.load(path) if path.is_file() else None


# --- training data ------------------------------------------------------------------------
@dataclass
class PairSet:
    anchors: list[int] = field(default_factory=list)  # rows into the vectors
    partners: list[int] = field(default_factory=list)
    labels: list[float] = field(default_factory=list)  # 1 goes together, 0 does not


def split_products(products: Sequence[Product], seed: int) -> dict[str, str]:
    """product id -> train / val / test (70 / 10 / 20), seeded, by stylist note: catalogs
    repeat one note over many listings, and a note seen in training is no test."""
    groups: dict[str, list[str]] = defaultdict(list)
    for p in products:
        groups[p.style_note.strip().lower() or f"id:{p.id}"].append(p.id)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    n = len(keys)
    out = {}
    for i, key in enumerate(keys):
        part = "train" if i < 0.7 * n else "val" if i < 0.8 * n else "test"
        out.update({pid: part for pid in groups[key]})
    return out


def rule_score(a: Product, b: Product) -> float:
    """The weak label of a pair from rules: colour and metal harmony, occasion, gender and
    price tier (the same reading the rule-based complements rank by)."""
    from bijou.retrieval.complements import compatible_genders, harmony

    genders = compatible_genders(a.gender)
    if genders and b.gender not in genders:
        return 0.0
    score = harmony(a, b)
    if a.usage and b.usage:
        score += 0.15 if a.usage == b.usage else -0.1
    ratio = max(a.price, 1.0) / max(b.price, 1.0)
    if not 0.2 <= ratio <= 5.0:
        score -= 0.2
    return float(np.clip(score, 0.0, 1.0))


def training_pairs(
    products: Sequence[Product],
    split: dict[str, str],
    part: str,
    *,
    per_note: int = 8,
    rule_pairs: int = 20000,
    seed: int = 13,
) -> PairSet:
    """Pairs of products of one split: note pairs (the named article, tone-matched when a
    colour is named, against same-article pieces of a clashing tone) and rule pairs."""
    rng = random.Random(seed)
    row = {p.id: i for i, p in enumerate(products)}
    in_part = [p for p in products if split[p.id] == part]
    by_article: dict[str, list[Product]] = defaultdict(list)
    for p in in_part:
        by_article[p.article].append(p)
    out = PairSet()

    def add(a: Product, b: Product, label: float) -> None:
        out.anchors.append(row[a.id])
        out.partners.append(row[b.id])
        out.labels.append(label)

    anchors = {p.id: p for p in in_part}
    for pair in note_pairs(in_part):
        anchor = anchors[pair.anchor_id]
        pool = by_article.get(pair.article, [])
        if not pool:
            continue
        good = [p for p in pool if not pair.colours or set(look_of(p).tones) & set(pair.colours)]
        bad = [p for p in pool if pair.colours and p not in good]
        for partner in rng.sample(good, min(per_note, len(good))):
            add(anchor, partner, 1.0)
        for partner in rng.sample(bad, min(per_note, len(bad))):
            add(anchor, partner, 0.0)
    articles = sorted(by_article)
    for _ in range(rule_pairs):
        a = rng.choice(in_part)
        other = rng.choice([x for x in articles if group_of(x) != group_of(a.article)] or articles)
        b = rng.choice(by_article[other])
        label = rule_score(a, b)
        if label >= 0.8 or label <= 0.35:
            add(a, b, 1.0 if label >= 0.8 else 0.0)
    return out


def product_vectors(engine: Any, products: Sequence[Product]) -> np.ndarray:
    """The fused multimodal vector of each product: the index's text and image vectors
    joined by the shipped gated fusion model (videos where the catalog has them)."""
    from bijou.fusion.models import load_fuser
    from bijou.fusion.video import product_videos

    fuser = engine.encoders.fuser or load_fuser("gated")
    out = []
    for start in range(0, len(products), 512):
        part = products[start : start + 512]
        held = engine.index.vectors([p.id for p in part], ["text", "image"])
        texts = np.stack([held[p.id]["text"] for p in part])
        images = np.zeros_like(texts)
        has_image = np.zeros(len(part), bool)
        for i, p in enumerate(part):
            if "image" in held[p.id]:
                images[i], has_image[i] = held[p.id]["image"], True
        video, frames = product_videos(part, engine.store, engine.encoders.image, 8)
        out.append(fuser.products(texts, images, has_image, video, frames))
    return np.concatenate(out).astype(np.float32)


def train(
    products: Sequence[Product],
    vectors: np.ndarray,
    split: dict[str, str],
    *,
    epochs: int = 30,
    seed: int = 13,
    progress: bool = True,
) -> CompatibilityModel:
    """Trains the type-aware model with binary cross-entropy on the train split's pairs."""
    import torch
    from tqdm import tqdm

    torch.manual_seed(seed)
    pairs = training_pairs(products, split, "train", seed=seed)
    groups = sorted({group_of(p.article) for p in products})
    keys = [(a, b) for i, a in enumerate(groups) for b in groups[i:]]
    pair_index = {k: i for i, k in enumerate(keys)}
    x = torch.from_numpy(vectors)
    articles = [group_of(p.article) for p in products]
    pair_rows = torch.tensor(
        [
            pair_index[tuple(sorted((articles[a], articles[b])))]  # type: ignore[index]
            for a, b in zip(pairs.anchors, pairs.partners, strict=True)
        ]
    )
    a_idx, b_idx = torch.tensor(pairs.anchors), torch.tensor(pairs.partners)
    labels = torch.tensor(pairs.labels)
    projection = torch.nn.Linear(vectors.shape[1], DIM, bias=False)
    masks = torch.nn.Parameter(torch.zeros(len(keys), DIM))  # softplus(0) ~ 0.69: all on
    scale = torch.nn.Parameter(torch.tensor(5.0))
    bias = torch.nn.Parameter(torch.tensor(0.0))
    optimiser = torch.optim.Adam([*projection.parameters(), masks, scale, bias], lr=3e-3)
    for _ in tqdm(range(epochs), desc="training compatibility", unit="epoch", disable=not progress):
        order = torch.randperm(len(labels))
        for start in range(0, len(order), 512):
            batch = order[start : start + 512]
            m = torch.nn.functional.softplus(masks[pair_rows[batch]])
            za = torch.nn.functional.normalize(projection(x[a_idx[batch]]), dim=1) * m
            zb = torch.nn.functional.normalize(projection(x[b_idx[batch]]), dim=1) * m
            cos = torch.nn.functional.cosine_similarity(za, zb, dim=1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                scale * cos + bias, labels[batch]
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return CompatibilityModel(
        projection.weight.detach().numpy().copy(),
        torch.nn.functional.softplus(masks).detach().numpy().copy(),
        pair_index,  # type: ignore[arg-type]
        f"compat-typeaware-d{DIM}-seed{seed}-pairs{len(labels)}",
    )
