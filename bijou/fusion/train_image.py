"""`bijou train-image-encoder`: fit the image projection head to the frozen text encoder.

Symmetric InfoNCE between each product image and its text (title, plus attribute phrases
sampled each epoch); products split train/dev/test by id with a seed, so every number is
measured on products the head never saw."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from bijou.catalog.media import MediaStore
from bijou.catalog.schema import Product
from bijou.fusion.encoders import TextEncoder
from bijou.fusion.image import (
    FeatureExtractor,
    ImageCheckpoint,
    ImageHeadConfig,
    ProjectionHead,
)


@dataclass(frozen=True)
class ImageTrainOptions:
    epochs: int = 60
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-4
    temperature: float = 0.05
    dev_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 13


def split_of(product_id: str, seed: int, dev: float, test: float) -> str:
    """ "train", "dev" or "test", stable per product id and seed (not per catalog order)."""
    digest = hashlib.sha256(f"{seed}:{product_id}".encode()).digest()
    x = int.from_bytes(digest[:8], "big") / 2**64
    return "test" if x < test else "dev" if x < test + dev else "train"


def captions(product: Product) -> list[str]:
    """Texts a shopper might use for this product; the first is the canonical caption."""
    out = [product.caption()]
    if product.colour:
        out.append(f"{product.colour} {product.article}".lower())
    out.append(f"{product.article} for {product.gender}".lower())
    if product.metal:
        out.append(f"{product.metal} {product.article}".lower())
    return out


def extract_features(
    products: Sequence[Product],
    store: MediaStore,
    extractor: FeatureExtractor,
    cache: Path | None,
    chunk: int = 256,
) -> tuple[list[Product], np.ndarray]:
    """Products that have a readable image, and their features (cached on disk by version)."""
    keyed = [(p, store.load(p)) for p in products]
    keyed = [(p, img) for p, img in keyed if img is not None]
    ids = [p.id for p, _ in keyed]
    key = hashlib.sha256((extractor.version + "|".join(ids)).encode()).hexdigest()[:16]
    path = cache / f"image-features-{key}.npy" if cache else None
    if path is not None and path.is_file():
        return [p for p, _ in keyed], np.load(path)
    parts = []
    for start in tqdm(range(0, len(keyed), chunk), desc="image features", unit="batch"):
        parts.append(extractor([img for _, img in keyed[start : start + chunk]]))
    features = np.concatenate(parts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, features)
    return [p for p, _ in keyed], features


def recall_at_k(queries: np.ndarray, keys: np.ndarray, k: int = 10) -> float:
    """Row i of queries should find row i of keys among its top k."""
    if len(queries) == 0:
        return 0.0
    scores = queries @ keys.T
    target = np.diag(scores)[:, None]
    rank = (scores > target).sum(axis=1)
    return float((rank < k).mean())


def train_image_head(
    products: Sequence[Product],
    features: np.ndarray,
    text_encoder: TextEncoder,
    head_config: ImageHeadConfig,
    options: ImageTrainOptions,
    progress: Callable[[Sequence[int]], Sequence[int]] = lambda r: r,
) -> ImageCheckpoint:
    random.seed(options.seed)
    np.random.seed(options.seed)
    torch.manual_seed(options.seed)
    split = [
        split_of(p.id, options.seed, options.dev_fraction, options.test_fraction) for p in products
    ]
    idx = {name: [i for i, s in enumerate(split) if s == name] for name in ("train", "dev", "test")}
    texts = [captions(p) for p in products]
    # Each product's captions, encoded once; each epoch samples one per product.
    flat = [t for group in texts for t in group]
    encoded = text_encoder.encode(flat)
    offsets = np.cumsum([0] + [len(g) for g in texts])
    caption_vectors = [encoded[offsets[i] : offsets[i + 1]] for i in range(len(products))]

    head = ProjectionHead(head_config)
    train_x = torch.from_numpy(features[idx["train"]])
    head.mean.copy_(train_x.mean(0))
    head.std.copy_(train_x.std(0).clamp_min(1e-4))
    optimiser = torch.optim.AdamW(
        head.parameters(), lr=options.lr, weight_decay=options.weight_decay
    )
    steps = options.epochs * max(1, -(-len(idx["train"]) // options.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, options.lr, total_steps=steps)
    rng = np.random.default_rng(options.seed)

    for _ in progress(range(options.epochs)):
        head.train()
        order = rng.permutation(idx["train"])
        for start in range(0, len(order), options.batch_size):
            batch = order[start : start + options.batch_size]
            if len(batch) < 2:
                continue
            target = np.stack(
                [caption_vectors[i][rng.integers(len(caption_vectors[i]))] for i in batch]
            )
            image = F.normalize(head(torch.from_numpy(features[batch])), dim=-1)
            logits = image @ torch.from_numpy(target).T / options.temperature
            labels = torch.arange(len(batch))
            loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()

    head.eval()
    metrics = {"train_products": float(len(idx["train"]))}
    with torch.inference_mode():
        for name in ("dev", "test"):
            rows = idx[name]
            image = F.normalize(head(torch.from_numpy(features[rows])), dim=-1).numpy()
            text = np.stack([caption_vectors[i][0] for i in rows]) if rows else image
            metrics[f"{name}_text_to_image_recall@10"] = recall_at_k(text, image)
            metrics[f"{name}_products"] = float(len(rows))
    return ImageCheckpoint(
        config=head_config,
        state={k: v.detach().clone() for k, v in head.state_dict().items()},
        text_encoder_version=text_encoder.version,
        metrics=metrics,
        seed=options.seed,
    )
