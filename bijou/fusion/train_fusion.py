"""`bijou train-fusion`: train a fusion model contrastively on (query, product) pairs built
from the catalog, and measure it against single modalities on held-out products.

Queries are what shoppers send: a title, an attribute phrase ("silver earrings for women"), a
stylist note, or the product's photo. Products carry every modality they have. Batches mix
random products with products of one article (hard negatives from the same category);
modality dropout on the product side teaches the models to cope with missing inputs."""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from bijou.catalog.loader import catalog_sources, load_catalog
from bijou.catalog.media import MediaStore
from bijou.catalog.schema import Product
from bijou.config import BijouConfig
from bijou.fusion.encoders import Encoders
from bijou.fusion.models import FusionConfig, FusionModel, Modalities, build_fusion
from bijou.fusion.train_image import split_of
from bijou.fusion.video import product_videos
from bijou.metrics import RetrievalMetrics, evaluate

QUERY_KINDS = ("title", "attributes", "note", "photo")


@dataclass(frozen=True)
class FusionTrainOptions:
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.05
    modality_dropout: float = 0.2
    dev_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 13
    # None: a GPU when torch sees one, else the CPU.
    device: str | None = None


@dataclass
class FusionData:
    """Everything training needs, as arrays aligned with ``products``."""

    products: list[Product]
    text: np.ndarray  # (N, D) product documents
    image: np.ndarray  # (N, D); rows without an image are zero and masked
    has_image: np.ndarray  # (N,) bool
    video: np.ndarray  # (N, T, D) frame vectors
    frames: np.ndarray  # (N, T) bool
    queries: dict[str, np.ndarray]  # kind -> (N, D) query vectors (photo: the image vector)
    has_query: dict[str, np.ndarray] = field(default_factory=dict)  # kind -> (N,) bool


def attribute_phrase(product: Product) -> str:
    who = {"Women": "for women", "Men": "for men", "Girls": "for girls", "Boys": "for boys"}
    words = [product.colour.lower(), product.article.lower(), who.get(product.gender, "")]
    return " ".join(w for w in words if w)


def note_of(product: Product) -> str:
    """A stylist note, or failing that the description's first sentence: how shops talk."""
    text = product.style_note or product.description
    return " ".join(text.split(".")[0].split()[:40])


def cached(
    cache: Path | None, name: str, key: Sequence[str], compute: Callable[[], np.ndarray]
) -> np.ndarray:
    """``compute()``, kept on disk under a hash of ``key`` (encoder versions, texts, ids)."""
    digest = hashlib.sha256("\n".join(key).encode()).hexdigest()[:16]
    path = cache / f"{name}-{digest}.npy" if cache else None
    if path is not None and path.is_file():
        return np.load(path)
    vectors = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


def prepare_data(
    products: Sequence[Product],
    encoders: Encoders,
    store: MediaStore,
    cache: Path | None,
    num_frames: int = 8,
    chunk: int = 256,
) -> FusionData:
    """Encode every product and every query once (cached); videos are read from ``store``."""
    products = list(products)
    ids = [p.id for p in products]
    dim = encoders.text.dim

    def texts(name: str, values: list[str]) -> np.ndarray:
        key = [encoders.text.version, *values]
        return cached(cache, name, key, lambda: encoders.text.encode(values))

    def images() -> np.ndarray:
        out = np.zeros((len(products), dim), np.float32)
        for start in tqdm(range(0, len(products), chunk), desc="image vectors", unit="batch"):
            part = products[start : start + chunk]
            loaded = [(i, store.load(p)) for i, p in enumerate(part, start)]
            rows = [(i, img) for i, img in loaded if img is not None]
            if rows:
                out[[i for i, _ in rows]] = encoders.image.encode([img for _, img in rows])
        return out

    def videos() -> np.ndarray:
        parts = [
            product_videos(products[i : i + chunk], store, encoders.image, num_frames)[0]
            for i in range(0, len(products), chunk)
        ]
        return np.concatenate(parts)

    image = cached(cache, "fusion-image", [encoders.image.version, *ids], images)
    video_key = [encoders.image.version, str(num_frames), *(f"{p.id}:{p.video}" for p in products)]
    video = cached(cache, "fusion-video", video_key, videos)
    frames = np.abs(video).sum(axis=-1) > 0  # frame vectors are unit length; padding is zero
    has_image = np.array([p.image is not None for p in products]) & (np.abs(image).sum(1) > 0)
    queries = {k: texts(f"fusion-q-{k}", v) for k, v in query_texts(products).items()}
    queries["photo"] = image
    has_query = {
        k: np.array([bool(t.strip()) for t in v]) for k, v in query_texts(products).items()
    }
    has_query["photo"] = has_image
    return FusionData(
        products=products,
        text=texts("fusion-doc", [p.document() for p in products]),
        image=image,
        has_image=has_image,
        video=video,
        frames=frames,
        queries=queries,
        has_query=has_query,
    )


def query_texts(products: Sequence[Product]) -> dict[str, list[str]]:
    return {
        "title": [p.title for p in products],
        "attributes": [attribute_phrase(p) for p in products],
        "note": [note_of(p) for p in products],
    }


def _modalities(
    data: FusionData, rows: np.ndarray, present: torch.Tensor | None = None
) -> Modalities:
    batch = Modalities(
        torch.from_numpy(data.text[rows]),
        torch.from_numpy(data.image[rows]),
        torch.from_numpy(data.video[rows]),
        torch.from_numpy(data.frames[rows]),
        torch.stack(
            [
                torch.ones(len(rows), dtype=torch.bool),
                torch.from_numpy(data.has_image[rows]),
                torch.from_numpy(data.frames[rows].any(axis=1)),
            ],
            dim=1,
        ),
    )
    return batch if present is None else batch.with_present(batch.present & present)


def _query_batch(data: FusionData, kind: str, rows: np.ndarray) -> Modalities:
    vectors = torch.from_numpy(data.queries[kind][rows])
    if kind == "photo":
        return Modalities.build(image=vectors, dim=vectors.shape[1])
    return Modalities.build(text=vectors, dim=vectors.shape[1])


def _batches(
    train: np.ndarray, articles: np.ndarray, size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Half of each batch random, half from one article: in-batch hard negatives."""
    by_article: dict[str, np.ndarray] = {}
    for article in np.unique(articles[train]):
        by_article[article] = train[articles[train] == article]
    names = list(by_article)
    order = rng.permutation(train)
    out = []
    half = size // 2
    for start in range(0, len(order), half):
        pool = by_article[names[rng.integers(len(names))]]
        hard = rng.choice(pool, size=min(half, len(pool)), replace=False)
        out.append(np.unique(np.concatenate([order[start : start + half], hard])))
    return out


def encode_products(model: FusionModel, data: FusionData, rows: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        parts = [model(_modalities(data, rows[i : i + 1024])) for i in range(0, len(rows), 1024)]
    return torch.cat(parts).numpy() if parts else np.zeros((0, model.config.out_dim), np.float32)


def encode_queries(model: FusionModel, data: FusionData, kind: str, rows: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        return model(_query_batch(data, kind, rows)).numpy()


def train_fusion(
    data: FusionData,
    config: FusionConfig,
    options: FusionTrainOptions,
    progress: Callable[[range], object] = lambda r: r,
) -> tuple[FusionModel, dict[str, float]]:
    random.seed(options.seed)
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    train = split_rows(data, options, "train")
    articles = np.array([p.article for p in data.products])
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = build_fusion(config).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), options.lr, weight_decay=options.weight_decay)
    losses = []
    for _ in progress(range(options.epochs)):
        model.train()
        for rows in _batches(train, articles, options.batch_size, rng):
            kinds = [k for k in QUERY_KINDS if data.has_query[k][rows].all()]
            kind = kinds[rng.integers(len(kinds))] if kinds else "title"
            keep = torch.rand(len(rows), 3) >= options.modality_dropout
            keep[:, 0] |= ~(keep[:, 1] & torch.from_numpy(data.has_image[rows]))  # keep one
            products = model(_modalities(data, rows, keep).to(device))
            queries = model(_query_batch(data, kind, rows).to(device))
            logits = queries @ products.T / options.temperature
            labels = torch.arange(len(rows), device=device)
            loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
    metrics = {"final_loss": float(np.mean(losses[-20:])) if losses else float("nan")}
    return model.cpu(), metrics


@dataclass(frozen=True)
class Judged:
    """Queries of one kind over a product pool, with graded judgements."""

    kind: str
    rows: np.ndarray  # query rows (products the queries come from)
    qrels: dict[str, dict[str, int]]


def judgements(data: FusionData, pool: np.ndarray) -> list[Judged]:
    """Per query kind: the source product is rel 2; pool products sharing its title (title,
    photo) or its article, colour and gender (attributes) are rel 1."""
    products = data.products
    by_title: dict[str, list[str]] = {}
    by_facts: dict[tuple[str, str, str], list[str]] = {}
    for i in pool:
        p = products[i]
        by_title.setdefault(p.title.lower(), []).append(p.id)
        by_facts.setdefault((p.article, p.colour, p.gender), []).append(p.id)
    out = []
    for kind in QUERY_KINDS:
        rows = pool[data.has_query[kind][pool]]
        qrels = {}
        for i in rows:
            p = products[i]
            similar = (
                by_facts[(p.article, p.colour, p.gender)]
                if kind == "attributes"
                else (by_title[p.title.lower()] if kind in ("title", "photo") else [])
            )
            qrels[p.id] = {pid: 1 for pid in similar} | {p.id: 2}
        out.append(Judged(kind, rows, qrels))
    return out


def rank(
    queries: np.ndarray, products: np.ndarray, ids: Sequence[str], k: int = 10
) -> list[list[str]]:
    scores = queries @ products.T
    top = np.argsort(-scores, axis=1)[:, :k]
    return [[ids[j] for j in row] for row in top]


def evaluate_system(
    data: FusionData,
    pool: np.ndarray,
    product_vectors: np.ndarray,
    query_vectors: Callable[[str, np.ndarray], np.ndarray],
) -> dict[str, RetrievalMetrics]:
    ids = [data.products[i].id for i in pool]
    results: dict[str, RetrievalMetrics] = {}
    run: dict[str, list[str]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for judged in judgements(data, pool):
        ranked = rank(query_vectors(judged.kind, judged.rows), product_vectors, ids)
        kind_run = {data.products[i].id: r for i, r in zip(judged.rows, ranked, strict=True)}
        results[judged.kind] = evaluate(kind_run, judged.qrels)
        run |= {f"{judged.kind}:{q}": r for q, r in kind_run.items()}
        qrels |= {f"{judged.kind}:{q}": j for q, j in judged.qrels.items()}
    results["all"] = evaluate(run, qrels)
    return results


def split_rows(data: FusionData, options: FusionTrainOptions, name: str) -> np.ndarray:
    splits = [
        split_of(p.id, options.seed, options.dev_fraction, options.test_fraction)
        for p in data.products
    ]
    return np.array([i for i, s in enumerate(splits) if s == name], dtype=int)


def compare(
    data: FusionData, models: dict[str, FusionModel], pool: np.ndarray
) -> dict[str, dict[str, RetrievalMetrics]]:
    """Single modalities (the product as its text vector, or as its image vector; queries as
    their own vector, in the shared space) against each fusion model, on the same queries."""

    def raw(kind: str, rows: np.ndarray) -> np.ndarray:
        return data.queries[kind][rows]

    systems = {
        "text only": evaluate_system(data, pool, data.text[pool], raw),
        "image only": evaluate_system(data, pool, data.image[pool], raw),
    }
    for name, model in models.items():
        queries = functools.partial(encode_queries, model, data)
        systems[name] = evaluate_system(data, pool, encode_products(model, data, pool), queries)
    return systems


def metrics_table(systems: dict[str, dict[str, RetrievalMetrics]]) -> str:
    kinds = [*QUERY_KINDS, "all"]
    head = "| system | " + " | ".join(f"{k} nDCG@10" for k in kinds) + " | all R@10 | all MRR |"
    lines = [head, "|---" * (len(kinds) + 3) + "|"]
    for name, results in systems.items():
        cells = [f"{results[k].ndcg:.3f}" for k in kinds]
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {results['all'].recall:.3f} | {results['all'].mrr:.3f} |"
        )
    return "\n".join(lines)


def catalog_data(config: BijouConfig, encoders: Encoders, videos: Path | None) -> FusionData:
    """The configured catalog, encoded; products listed in ``videos`` (a catalog file whose
    rows carry videos, found beside it) replace their namesakes."""
    catalog_path, images = catalog_sources(config)
    products = {p.id: p for p in load_catalog(catalog_path).products}
    roots = [images]
    if videos is not None:
        products |= {p.id: p for p in load_catalog(videos).products}
        roots.append(videos.parent)
    store = MediaStore(*roots)
    return prepare_data(list(products.values()), encoders, store, config.data_dir / "cache")
