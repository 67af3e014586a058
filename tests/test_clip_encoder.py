"""The CLIP adapter, over a tiny randomly initialised CLIP saved to disk: nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerFast
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from bijou.config import BijouConfig
from bijou.fusion.encoders import Encoders, load_encoders

WORDS = [
    "gold",
    "silver",
    "ring",
    "necklace",
    "bracelet",
    "earrings",
    "pearl",
    "diamond",
    "ruby",
    "chain",
    "for",
    "her",
    "him",
]
# eos_token_id 2 would select CLIP's legacy argmax pooling, so the eos is 3.
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
MAX_POSITIONS = 16
DIM = 16


def _save_tokenizer(path: Path) -> None:
    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 2), ("</s>", 3)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
    ).save_pretrained(path)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip")
    text = {
        "vocab_size": len(SPECIALS) + len(WORDS),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": MAX_POSITIONS,
        "pad_token_id": 0,
        "bos_token_id": 2,
        "eos_token_id": 3,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": 32,
        "patch_size": 8,
    }
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=DIM)
    CLIPModel(config).eval().save_pretrained(path)
    _save_tokenizer(path)
    CLIPImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(path)
    return path


def _config(model_path: Path | None) -> BijouConfig:
    return BijouConfig.model_validate(
        {
            "text_encoder": {"kind": "clip", "batch_size": 2},
            "image_encoder": {"kind": "clip", "batch_size": 2},
            "clip": {"model_path": model_path},
        }
    )


@pytest.fixture(scope="module")
def encoders(model_dir: Path) -> Encoders:
    return load_encoders(_config(model_dir))


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    # Varied sizes and modes exercise resize, crop and the RGB conversion.
    sizes = [(40, 50), (64, 48), (32, 32), (90, 33), (50, 50)]
    images = [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes[:n]
    ]
    return [img.convert("L") if i == 2 else img for i, img in enumerate(images)]


TEXTS = ["gold ring", "silver necklace for her", "pearl", "ruby earrings and a chain", "diamond"]


def _assert_unit_rows(vectors: np.ndarray, n: int) -> None:
    assert vectors.shape == (n, DIM)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_shapes_dtype_and_unit_norms(encoders: Encoders) -> None:
    assert encoders.text.dim == encoders.image.dim == DIM
    _assert_unit_rows(encoders.text.encode(TEXTS[:3]), 3)
    _assert_unit_rows(encoders.image.encode(_images(3)), 3)


def test_same_input_same_vector_and_different_inputs_differ(encoders: Encoders) -> None:
    np.testing.assert_array_equal(encoders.text.encode(TEXTS), encoders.text.encode(TEXTS))
    images = _images(3)
    np.testing.assert_array_equal(encoders.image.encode(images), encoders.image.encode(images))

    # Within one batch, rows may differ in the last float bit, hence allclose.
    texts = encoders.text.encode(["gold ring", "gold ring", "silver chain"])
    np.testing.assert_allclose(texts[0], texts[1], atol=1e-6)
    assert not np.allclose(texts[0], texts[2], atol=1e-3)
    vectors = encoders.image.encode([images[0], images[0], images[1]])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    assert not np.allclose(vectors[0], vectors[2], atol=1e-3)


def test_batches_match_one_at_a_time(encoders: Encoders) -> None:
    # Texts of different lengths pad differently in a batch; pooling must ignore the padding.
    batched = encoders.text.encode(TEXTS)
    single = np.concatenate([encoders.text.encode([text]) for text in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-5)

    images = _images(5)
    batched = encoders.image.encode(images)
    single = np.concatenate([encoders.image.encode([image]) for image in images])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_empty_inputs(encoders: Encoders) -> None:
    assert encoders.text.encode([]).shape == (0, DIM)
    assert encoders.image.encode([]).shape == (0, DIM)
    assert encoders.image.encode([]).dtype == np.float32


def test_long_text_is_truncated(encoders: Encoders) -> None:
    long_text = " ".join(WORDS * 5)  # far beyond MAX_POSITIONS tokens
    _assert_unit_rows(encoders.text.encode([long_text, "gold"]), 2)


def test_version_is_shared_and_stable(encoders: Encoders, model_dir: Path) -> None:
    assert encoders.text.version.startswith("clip:")
    assert encoders.text.version == encoders.image.version
    assert load_encoders(_config(model_dir)).versions == encoders.versions


def test_missing_model_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model_path"):
        load_encoders(_config(None))
    with pytest.raises(FileNotFoundError, match="model_path"):
        load_encoders(_config(tmp_path / "absent"))
