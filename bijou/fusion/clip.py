"""Text and image encoders over one local CLIP (or SigLIP) model: both towers were trained
together, so their vectors share a space by construction. Nothing here reaches a model hub."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoTokenizer

from bijou.config import BijouConfig
from bijou.fusion.encoders import Encoders, l2_normalize

# SigLIP was trained on texts padded to the full length, and pools the last position.
_PADDING: dict[str, bool | str] = {"clip": True, "siglip": "max_length"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def _model_version(path: Path) -> str:
    """Digest of config.json plus the weight files' names and sizes: it changes with the weights
    without hashing gigabytes at every start."""
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for weights in sorted(p for p in path.iterdir() if p.name.endswith(_WEIGHT_SUFFIXES)):
        digest.update(f"\n{weights.name}:{weights.stat().st_size}".encode())
    return "clip:" + digest.hexdigest()[:16]


def _features(output: Any) -> torch.Tensor:
    # transformers 5 returns a BaseModelOutputWithPooling whose pooler_output holds the
    # projected features; 4.x returns the tensor itself.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ClipModel:
    """The model, tokenizer and image processor, shared by both encoders."""

    def __init__(self, path: Path, device: str) -> None:
        model_type = AutoConfig.from_pretrained(path, local_files_only=True).model_type
        if model_type not in _PADDING:
            raise ValueError(f"{path}: expected a CLIP or SigLIP model, found {model_type!r}")
        self.padding = _PADDING[model_type]
        self.device = torch.device(device)
        # float32 whatever the stored dtype, so vectors do not depend on how weights were saved.
        model = AutoModel.from_pretrained(path, local_files_only=True).float()
        self.model = model.to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        # The PIL backend: torchvision is not installed, and a fixed backend keeps vectors stable.
        self.processor = AutoImageProcessor.from_pretrained(
            path, local_files_only=True, backend="pil"
        )
        config = model.config
        self.max_length: int = config.text_config.max_position_embeddings
        self.dim: int = (
            getattr(config, "projection_dim", None) or config.text_config.projection_size
        )
        self.version = _model_version(path)

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenizer(
            list(texts),
            padding=self.padding,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        return _features(self.model.get_text_features(**batch))

    def embed_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        rgb = [image.convert("RGB") for image in images]
        pixels = self.processor(images=rgb, return_tensors="pt")["pixel_values"]
        return _features(self.model.get_image_features(pixel_values=pixels.to(self.device)))

    def encode(self, items: Sequence[Any], batch_size: int, embed: Callable) -> np.ndarray:
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch.inference_mode():
            parts = [
                embed(items[start : start + batch_size]).float().cpu().numpy()
                for start in range(0, len(items), batch_size)
            ]
        return l2_normalize(np.concatenate(parts))


class ClipTextEncoder:
    def __init__(self, model: ClipModel, batch_size: int) -> None:
        self._model, self._batch_size = model, batch_size
        self.version, self.dim = model.version, model.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._model.encode(texts, self._batch_size, self._model.embed_texts)


class ClipImageEncoder:
    def __init__(self, model: ClipModel, batch_size: int) -> None:
        self._model, self._batch_size = model, batch_size
        self.version, self.dim = model.version, model.dim

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self._model.encode(images, self._batch_size, self._model.embed_images)


def load_clip_encoders(config: BijouConfig) -> Encoders:
    path = config.clip.model_path
    if path is None:
        raise ValueError("clip.model_path must name a local CLIP/SigLIP directory")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"clip.model_path: no model (config.json) in {path}")
    # One model serves both towers, so it can live on only one device.
    if config.text_encoder.device != config.image_encoder.device:
        raise ValueError("CLIP text and image encoders must use the same device")
    model = ClipModel(path, config.text_encoder.device)
    return Encoders(
        text=ClipTextEncoder(model, config.text_encoder.batch_size),
        image=ClipImageEncoder(model, config.image_encoder.batch_size),
    )
