"""The image encoder's pure parts and its training loop, without loading the backbone."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from bijou.catalog.schema import Product
from bijou.fusion.image import (
    COLOUR_DIM,
    DEFAULT_CHECKPOINT,
    GREY_BINS,
    HUE_BINS,
    ImageCheckpoint,
    ImageHeadConfig,
    ProjectionHead,
    colour_features,
    preprocess,
)
from bijou.fusion.train_image import (
    ImageTrainOptions,
    captions,
    recall_at_k,
    split_of,
    train_image_head,
)
from bijou.retrieval.lexicon import load_lexicon

GOLD = (212, 175, 55)
SILVER = (192, 192, 192)
WHITE = (255, 255, 255)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny tensors: extra threads only contend with whatever else the machine is running."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def on_white(colour: tuple[int, int, int], size: int = 40, inner: int = 20) -> Image.Image:
    """A ``colour`` square of side ``inner`` centred on a white ``size`` square."""
    image = Image.new("RGB", (size, size), WHITE)
    start = (size - inner) // 2
    image.paste(Image.new("RGB", (inner, inner), colour), (start, start))
    return image


# ---------------------------------------------------------------- preprocess


def test_preprocess_pads_to_a_white_square_without_resizing() -> None:
    image = Image.new("RGB", (20, 10), (255, 0, 0))  # wide: padded above and below
    pixels = preprocess(image, 20)
    assert pixels.shape == (3, 20, 20)
    assert pixels.dtype == torch.float32
    assert torch.all(pixels[:, :5, :] == 1.0)  # white is +1 in every channel
    assert torch.all(pixels[:, 15:, :] == 1.0)
    assert torch.all(pixels[0, 5:15, :] == 1.0)  # red: R = +1, G = B = -1
    assert torch.all(pixels[1:, 5:15, :] == -1.0)


def test_preprocess_pads_tall_images_left_and_right() -> None:
    pixels = preprocess(Image.new("RGB", (4, 12), (0, 0, 0)), 12)
    assert pixels.shape == (3, 12, 12)
    assert torch.all(pixels[:, :, :4] == 1.0)
    assert torch.all(pixels[:, :, 4:8] == -1.0)
    assert torch.all(pixels[:, :, 8:] == 1.0)


def test_preprocess_resizes_and_stays_in_range() -> None:
    image = Image.new("RGB", (40, 4), (10, 120, 240))  # a thin band on a big white square
    pixels = preprocess(image, 8)
    assert pixels.shape == (3, 8, 8)
    assert pixels.min() >= -1.0 and pixels.max() <= 1.0
    assert torch.all(pixels[:, 0, :] == 1.0) and torch.all(pixels[:, -1, :] == 1.0)
    middle = pixels[:, 3:5, :].mean(dim=(1, 2))
    assert middle[0] < middle[1] < middle[2] < 1.0  # the band's colour shows through


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_preprocess_accepts_any_mode(mode: str) -> None:
    image = Image.new("RGB", (9, 9), GOLD).convert(mode)
    pixels = preprocess(image, 9)
    assert pixels.shape == (3, 9, 9)
    assert pixels.min() >= -1.0 and pixels.max() <= 1.0


# ---------------------------------------------------------------- colour features


def test_colour_features_shape_and_white_is_all_zero() -> None:
    features = colour_features(Image.new("RGB", (30, 20), WHITE))
    assert features.shape == (COLOUR_DIM,)
    assert features.dtype == np.float32
    assert np.all(features == 0.0)
    assert np.all(colour_features(Image.new("RGB", (30, 20), (250, 250, 250))) == 0.0)


def test_colour_features_gold_object() -> None:
    features = colour_features(on_white(GOLD))
    hue, grey = features[:HUE_BINS], features[HUE_BINS : HUE_BINS + GREY_BINS]
    expected_hue = np.zeros(HUE_BINS, np.float32)
    expected_hue[1] = 1.0  # hue 46 degrees: the second of twelve 30-degree bins
    np.testing.assert_allclose(hue, expected_hue)
    np.testing.assert_allclose(grey, 0.0)
    coverage, saturation, value = features[-3:]
    assert coverage == pytest.approx(0.25)  # 20x20 object on a 40x40 white square
    assert saturation == pytest.approx((212 - 55) / 212, abs=0.01)
    assert value == pytest.approx(212 / 255, abs=0.01)


def test_colour_features_silver_object() -> None:
    features = colour_features(on_white(SILVER))
    hue, grey = features[:HUE_BINS], features[HUE_BINS : HUE_BINS + GREY_BINS]
    np.testing.assert_allclose(hue, 0.0)
    np.testing.assert_allclose(grey, [0.0, 0.0, 0.0, 1.0])  # value 0.75: the brightest bin
    assert features[-3:].tolist() == pytest.approx([0.25, 0.0, 192 / 255], abs=0.01)


def test_colour_features_tell_gold_from_silver() -> None:
    gold, silver = colour_features(on_white(GOLD)), colour_features(on_white(SILVER))
    chromatic = slice(0, HUE_BINS)
    assert gold[chromatic].sum() == pytest.approx(1.0) and silver[chromatic].sum() == 0.0
    assert float(np.linalg.norm(gold - silver)) > 1.0


def test_colour_features_ignore_the_white_background() -> None:
    small = colour_features(on_white(GOLD, size=60, inner=10))
    full = colour_features(Image.new("RGB", (10, 10), GOLD))
    np.testing.assert_allclose(small[:-3], full[:-3])  # same histogram of the object
    np.testing.assert_allclose(small[-2:], full[-2:], atol=1e-6)  # same saturation and value
    assert small[-3] == pytest.approx(100 / 3600) and full[-3] == pytest.approx(1.0)


def test_colour_features_mixed_object() -> None:
    image = Image.new("RGB", (20, 10), WHITE)
    image.paste(Image.new("RGB", (5, 10), GOLD), (0, 0))
    image.paste(Image.new("RGB", (5, 10), (20, 20, 20)), (5, 0))  # near-black: darkest grey bin
    features = colour_features(image)
    assert features[1] == pytest.approx(0.5)
    assert features[HUE_BINS] == pytest.approx(0.5)
    assert features[-3] == pytest.approx(0.5)


# ---------------------------------------------------------------- splits and recall


def test_split_of_is_stable_seed_dependent_and_about_80_10_10() -> None:
    ids = [f"product-{i}" for i in range(5000)]
    first = [split_of(i, 13, 0.1, 0.1) for i in ids]
    assert first == [split_of(i, 13, 0.1, 0.1) for i in ids]
    counts = Counter(first)
    assert set(counts) == {"train", "dev", "test"}
    assert 3850 <= counts["train"] <= 4150
    assert 420 <= counts["dev"] <= 580
    assert 420 <= counts["test"] <= 580
    other = [split_of(i, 14, 0.1, 0.1) for i in ids]
    changed = sum(a != b for a, b in zip(first, other, strict=True))
    assert changed > 1000  # about 2 * 0.8 * 0.2 * 5000 = 1600 expected
    # Stable per id, not per position: shuffling the catalog changes nothing.
    assert split_of("product-42", 13, 0.1, 0.1) == first[42]


def test_split_of_fractions() -> None:
    ids = [str(i) for i in range(500)]
    assert {split_of(i, 1, 0.0, 0.0) for i in ids} == {"train"}
    assert {split_of(i, 1, 0.0, 1.0) for i in ids} == {"test"}
    assert {split_of(i, 1, 1.0, 0.0) for i in ids} == {"dev"}


def test_split_of_matches_its_hash() -> None:
    x = int.from_bytes(hashlib.sha256(b"13:abc").digest()[:8], "big") / 2**64
    expected = "test" if x < 0.1 else "dev" if x < 0.2 else "train"
    assert split_of("abc", 13, 0.1, 0.1) == expected


def test_recall_at_k_toy() -> None:
    queries = np.eye(3, dtype=np.float32)
    assert recall_at_k(queries, queries, k=1) == 1.0
    # Query 0 finds key 0 first; queries 1 and 2 each rank their own key second.
    keys = np.array([[1, 0, 0], [0, 0.5, 1], [0, 1, 0.5]], dtype=np.float32)
    assert recall_at_k(queries, keys, k=1) == pytest.approx(1 / 3)
    assert recall_at_k(queries, keys, k=2) == 1.0
    assert recall_at_k(queries, keys) == 1.0


def test_recall_at_k_ties_and_empty() -> None:
    queries = np.array([[1.0, 0.0]], dtype=np.float32)
    keys = np.array([[1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    assert recall_at_k(queries, keys[:1], k=1) == 1.0
    assert recall_at_k(np.ones((2, 2)), np.ones((2, 2)), k=1) == 1.0  # a tie is not a loss
    assert recall_at_k(np.zeros((0, 4)), np.zeros((0, 4))) == 0.0


def test_recall_at_k_all_wrong() -> None:
    queries = np.eye(4, dtype=np.float32)
    keys = np.roll(np.eye(4, dtype=np.float32), 1, axis=0)  # row i of keys is e_(i-1)
    assert recall_at_k(queries, keys, k=1) == 0.0
    assert recall_at_k(queries, keys, k=4) == 1.0


# ---------------------------------------------------------------- checkpoints

SMALL_HEAD = ImageHeadConfig(backbone_dim=16, colour_dim=4, hidden_dim=8, out_dim=6, dropout=0.0)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    head = ProjectionHead(SMALL_HEAD)
    head.mean.copy_(torch.arange(20, dtype=torch.float32))
    state = {k: v.detach().clone() for k, v in head.state_dict().items()}
    checkpoint = ImageCheckpoint(
        config=SMALL_HEAD,
        state=state,
        text_encoder_version="stub:1",
        metrics={"test_text_to_image_recall@10": 0.75, "train_products": 10.0},
        seed=7,
    )
    path = tmp_path / "deep" / "folder" / "head.pt"
    checkpoint.save(path)
    assert path.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == ["head.pt"]  # no .tmp left behind

    loaded = ImageCheckpoint.load(path)
    assert loaded.config == SMALL_HEAD
    assert loaded.text_encoder_version == "stub:1"
    assert loaded.metrics == {"test_text_to_image_recall@10": 0.75, "train_products": 10.0}
    assert loaded.seed == 7
    assert loaded.version == checkpoint.version
    assert loaded.version.startswith("efficientnet-lite0-head:")
    assert set(loaded.state) == set(state)
    for key, tensor in state.items():
        assert torch.equal(loaded.state[key], tensor), key

    restored = ProjectionHead(loaded.config)
    restored.load_state_dict(loaded.state)
    restored.eval()
    head.eval()
    x = torch.randn(3, 20)
    assert torch.allclose(restored(x), head(x))


def test_checkpoint_version_tracks_the_weights() -> None:
    torch.manual_seed(0)
    state = {k: v.clone() for k, v in ProjectionHead(SMALL_HEAD).state_dict().items()}
    first = ImageCheckpoint(SMALL_HEAD, state, "t", {}, 1)
    assert first.version == ImageCheckpoint(SMALL_HEAD, dict(state), "other", {"a": 1.0}, 2).version
    changed = dict(state)
    changed["mean"] = state["mean"] + 1
    assert ImageCheckpoint(SMALL_HEAD, changed, "t", {}, 1).version != first.version


def test_checkpoint_save_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "head.pt"
    for seed in (1, 2):
        torch.manual_seed(seed)
        state = dict(ProjectionHead(SMALL_HEAD).state_dict())
        ImageCheckpoint(SMALL_HEAD, state, "t", {}, seed).save(path)
    assert ImageCheckpoint.load(path).seed == 2


def test_loading_a_missing_checkpoint_says_how_to_make_one(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "head.pt"
    with pytest.raises(FileNotFoundError) as caught:
        ImageCheckpoint.load(missing)
    message = str(caught.value)
    assert "checkpoint not found" in message
    assert str(missing) in message
    assert "bijou train-image-encoder" in message


def test_shipped_checkpoint_fits_the_head() -> None:
    checkpoint = ImageCheckpoint.load(DEFAULT_CHECKPOINT)
    assert checkpoint.config.colour_dim == COLOUR_DIM
    head = ProjectionHead(checkpoint.config)
    head.load_state_dict(checkpoint.state)  # strict: every key and shape matches
    assert checkpoint.text_encoder_version
    assert 0.0 <= checkpoint.metrics["test_text_to_image_recall@10"] <= 1.0


# ---------------------------------------------------------------- training loop

FEATURE_DIM, TEXT_DIM = 48, 24


class StubTextEncoder:
    """Deterministic vectors per text: a fixed table for known texts, a hash for the rest."""

    version = "stub-text:1"
    dim = TEXT_DIM

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        rows = []
        for text in texts:
            if text in self.table:
                rows.append(self.table[text])
            else:
                seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
                rows.append(np.random.default_rng(seed).standard_normal(TEXT_DIM))
        out = np.asarray(rows, dtype=np.float32).reshape(len(texts), TEXT_DIM)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def synthetic_catalog(n: int = 300) -> tuple[list[Product], np.ndarray, StubTextEncoder]:
    """Products whose random features linearly determine their caption's text embedding."""
    rng = np.random.default_rng(5)
    products = [
        Product(
            id=f"p{i:04d}",
            title=f"Product {i}",
            article=load_lexicon().jewellery[i % len(load_lexicon().jewellery)],
            colour=("Gold", "Silver", "")[i % 3],
            price=100.0 + i,
            list_price=200.0 + i,
        )
        for i in range(n)
    ]
    features = rng.standard_normal((n, FEATURE_DIM)).astype(np.float32)
    mixing = rng.standard_normal((FEATURE_DIM, TEXT_DIM)).astype(np.float32)
    text = features @ mixing
    table = {p.caption(): text[i] for i, p in enumerate(products)}
    return products, features, StubTextEncoder(table)


TRAIN_HEAD = ImageHeadConfig(
    backbone_dim=FEATURE_DIM, colour_dim=0, hidden_dim=96, out_dim=TEXT_DIM, dropout=0.0
)
TRAIN_OPTIONS = ImageTrainOptions(epochs=40, batch_size=64, lr=3e-3, seed=13)


@pytest.fixture(scope="module")
def trained() -> tuple[list[Product], np.ndarray, StubTextEncoder, ImageCheckpoint]:
    products, features, encoder = synthetic_catalog()
    checkpoint = train_image_head(products, features, encoder, TRAIN_HEAD, TRAIN_OPTIONS)
    return products, features, encoder, checkpoint


def split_rows(products: Sequence[Product], name: str) -> list[int]:
    o = TRAIN_OPTIONS
    return [
        i
        for i, p in enumerate(products)
        if split_of(p.id, o.seed, o.dev_fraction, o.test_fraction) == name
    ]


def head_recall(
    head: ProjectionHead,
    rows: list[int],
    products: Sequence[Product],
    features: np.ndarray,
    encoder: StubTextEncoder,
    k: int,
) -> float:
    head.eval()
    with torch.inference_mode():
        image = F.normalize(head(torch.from_numpy(features[rows])), dim=-1).numpy()
    text = encoder.encode([products[i].caption() for i in rows])
    return recall_at_k(text, image, k=k)


def test_captions() -> None:
    plain = Product(id="1", title="Ring One", article="Ring", price=1, list_price=1)
    assert captions(plain) == ["Ring One. Ring", "ring for unisex"]
    full = plain.model_copy(
        update={"colour": "Gold", "gender": "Women", "attributes": {"Base Metal": "Brass"}}
    )
    assert captions(full) == [
        "Ring One. Ring. Gold",
        "gold ring",
        "ring for women",
        "brass ring",
    ]


def test_training_records_splits_and_versions(trained) -> None:
    products, _, encoder, checkpoint = trained
    test_rows, dev_rows = split_rows(products, "test"), split_rows(products, "dev")
    assert len(test_rows) >= 20 and len(dev_rows) >= 20
    assert checkpoint.metrics["train_products"] == len(split_rows(products, "train"))
    assert checkpoint.metrics["test_products"] == len(test_rows)
    assert checkpoint.metrics["dev_products"] == len(dev_rows)
    assert checkpoint.text_encoder_version == "stub-text:1"
    assert checkpoint.seed == 13
    assert checkpoint.config == TRAIN_HEAD
    assert encoder.calls >= 1


def test_training_learns_the_mapping(trained) -> None:
    products, features, encoder, checkpoint = trained
    rows = split_rows(products, "test")
    chance = 10 / len(rows)
    recall = checkpoint.metrics["test_text_to_image_recall@10"]
    assert recall >= 0.9 > chance + 0.4

    head = ProjectionHead(checkpoint.config)
    head.load_state_dict(checkpoint.state)
    assert head_recall(head, rows, products, features, encoder, k=10) == pytest.approx(recall)
    # Far stricter than the recorded metric: the right image first among all test images.
    assert head_recall(head, rows, products, features, encoder, k=1) >= 0.6


def test_trained_head_beats_an_untrained_one(trained) -> None:
    products, features, encoder, checkpoint = trained
    rows = split_rows(products, "test")
    torch.manual_seed(TRAIN_OPTIONS.seed)
    untrained = ProjectionHead(TRAIN_HEAD)
    train_x = torch.from_numpy(features[split_rows(products, "train")])
    untrained.mean.copy_(train_x.mean(0))
    untrained.std.copy_(train_x.std(0))
    before = head_recall(untrained, rows, products, features, encoder, k=10)
    after = checkpoint.metrics["test_text_to_image_recall@10"]
    assert after >= before + 0.3
    assert before <= 0.7


def test_training_is_deterministic(trained) -> None:
    products, features, encoder, checkpoint = trained
    options = ImageTrainOptions(epochs=2, batch_size=64, seed=13)
    first = train_image_head(products, features, encoder, TRAIN_HEAD, options)
    second = train_image_head(products, features, encoder, TRAIN_HEAD, options)
    assert first.version == second.version
    assert first.metrics == second.metrics
    assert first.version != checkpoint.version
