"""Fusion models: shapes, masks that really hide a modality, video pooling, a training step
that lowers the loss, checkpoints, and the evaluation plumbing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bijou.catalog.schema import Product
from bijou.fusion.models import (
    MODELS,
    FusionCheckpoint,
    FusionConfig,
    Modalities,
    TemporalAttentionPool,
    build_fusion,
)
from bijou.fusion.train_fusion import (
    FusionData,
    FusionTrainOptions,
    compare,
    judgements,
    split_rows,
    train_fusion,
)

D = 16
SMALL = {"in_dim": D, "hidden_dim": 32, "out_dim": 12, "heads": 2, "rank": 4, "dropout": 0.0}


def config(kind: str) -> FusionConfig:
    return FusionConfig(kind=kind, **SMALL)


@pytest.fixture(autouse=True)
def _seeded() -> Iterator[None]:
    torch.manual_seed(0)
    # Tiny models: thread hand-offs cost more than they save, and CI has 2 busy cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("kind", list(MODELS))
def test_shapes_and_unit_norm_for_every_modality_mix(kind: str) -> None:
    model = build_fusion(config(kind)).eval()
    x = torch.randn(5, D)
    video = torch.randn(5, 3, D)
    for batch in (
        Modalities.build(text=x, dim=D),
        Modalities.build(image=x, dim=D),
        Modalities.build(video=video, dim=D),
        Modalities.build(text=x, image=x, video=video, dim=D),
    ):
        out = model(batch)
        assert out.shape == (5, 12)
        assert torch.allclose(out.norm(dim=-1), torch.ones(5), atol=1e-5)
    assert model(Modalities.build(text=x[:1], dim=D)).shape == (1, 12)


@pytest.mark.parametrize("kind", list(MODELS))
def test_a_masked_modality_has_no_influence(kind: str) -> None:
    model = build_fusion(config(kind)).eval()
    text = torch.randn(4, D)
    a = Modalities.build(text=text, image=torch.randn(4, D), dim=D)
    b = Modalities.build(text=text, image=torch.randn(4, D) * 50, dim=D)
    hide = torch.tensor([[True, False, False]]).expand(4, 3)
    with torch.no_grad():
        assert torch.allclose(model(a.with_present(hide)), model(b.with_present(hide)), atol=1e-5)
        # ... and when present it does count.
        assert not torch.allclose(model(a), model(b), atol=1e-3)


def test_padding_frames_are_ignored_by_temporal_attention() -> None:
    pool = TemporalAttentionPool(D)
    torch.nn.init.normal_(pool.query)
    frames = torch.randn(2, 4, D)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    noisy = frames.clone()
    noisy[0, 2:] = 1e3
    with torch.no_grad():
        assert torch.allclose(pool(frames, mask)[0], pool(noisy, mask)[0], atol=1e-5)
        empty = pool(frames, torch.zeros(2, 4, dtype=torch.bool))
    assert torch.isfinite(empty).all()


def _toy_data(n: int = 240, seed: int = 0) -> FusionData:
    """Products whose text and image vectors are noisy views of a hidden identity; queries
    (title, attributes, note, photo) are other noisy views: fusing both views should help."""
    rng = np.random.default_rng(seed)
    identity = rng.normal(size=(n, D))

    def view(scale: float) -> np.ndarray:
        v = identity + rng.normal(scale=scale, size=(n, D))
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    articles = ["Ring", "Earrings", "Watches", "Belts"]
    products = [
        Product(id=f"p{i}", title=f"Item {i}", article=articles[i % 4], colour="Gold",
                price=100 + i, list_price=100 + i)
        for i in range(n)
    ]  # fmt: skip
    image = view(1.0)
    queries = {k: view(0.8) for k in ("title", "attributes", "note")} | {"photo": image}
    return FusionData(
        products=products,
        text=view(1.0),
        image=image,
        has_image=np.ones(n, dtype=bool),
        video=np.zeros((n, 2, D), np.float32),
        frames=np.zeros((n, 2), dtype=bool),
        queries=queries,
        has_query={k: np.ones(n, dtype=bool) for k in queries},
    )


@pytest.mark.parametrize("kind", list(MODELS))
def test_training_lowers_the_loss(kind: str) -> None:
    data = _toy_data()
    options = FusionTrainOptions(epochs=1, batch_size=64, seed=3)
    _, first = train_fusion(data, config(kind), options)
    _, longer = train_fusion(
        data, config(kind), FusionTrainOptions(epochs=8, batch_size=64, seed=3)
    )
    assert longer["final_loss"] < first["final_loss"]


def test_one_optimiser_step_lowers_the_batch_loss() -> None:
    model = build_fusion(config("gated"))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    data = _toy_data(64)
    products = Modalities.build(
        text=torch.from_numpy(data.text), image=torch.from_numpy(data.image), dim=D
    )
    queries = Modalities.build(text=torch.from_numpy(data.queries["title"]), dim=D)

    def loss() -> torch.Tensor:
        logits = model(queries) @ model(products).T / 0.1
        return F.cross_entropy(logits, torch.arange(64))

    before = loss()
    optimiser.zero_grad()
    before.backward()
    optimiser.step()
    assert loss().item() < before.item()


def test_judgements_grade_the_source_product_highest() -> None:
    data = _toy_data(40)
    pool = np.arange(40)
    by_kind = {j.kind: j for j in judgements(data, pool)}
    assert by_kind["title"].qrels["p0"] == {"p0": 2}
    # Same article, colour and gender: every fourth product here.
    assert by_kind["attributes"].qrels["p0"]["p0"] == 2
    assert sum(g == 1 for g in by_kind["attributes"].qrels["p0"].values()) == 9


def test_compare_reports_single_modalities_and_the_model() -> None:
    data = _toy_data()
    options = FusionTrainOptions(epochs=6, batch_size=64, seed=3)
    model, _ = train_fusion(data, config("gated"), options)
    pool = split_rows(data, options, "test")
    untrained = build_fusion(config("gated"))
    systems = compare(data, {"gated": model, "untrained": untrained}, pool)
    assert set(systems) == {"text only", "image only", "gated", "untrained"}
    assert systems["gated"]["all"].count == systems["text only"]["all"].count > 0
    assert systems["gated"]["all"].ndcg > systems["untrained"]["all"].ndcg + 0.1


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = build_fusion(config("attention"))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    checkpoint = FusionCheckpoint(config("attention"), state, {"text": "t:1"}, {"m": 0.5}, 7)
    path = tmp_path / "f.pt"
    checkpoint.save(path)
    loaded = FusionCheckpoint.load(path)
    assert loaded.version == checkpoint.version and loaded.version.startswith("fusion-attention:")
    assert loaded.config == checkpoint.config and loaded.metrics == {"m": 0.5}
    x = Modalities.build(text=torch.randn(2, D), dim=D)
    with torch.no_grad():
        assert torch.allclose(loaded.model()(x), model.eval()(x))
    with pytest.raises(FileNotFoundError, match="bijou train-fusion"):
        FusionCheckpoint.load(tmp_path / "missing.pt")
