"""What every encoder offers, and the one place that picks encoders from the configuration.

Image vectors live in the text encoder's space, so a text query can search product images
and a shopper's photo can search product texts."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
from PIL import Image

from bijou.config import BijouConfig

if TYPE_CHECKING:
    from bijou.fusion.models import Fuser


class TextEncoder(Protocol):
    version: str  # names the weights; the index records it and refuses to mix versions
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised rows."""
        ...


class ImageEncoder(Protocol):
    version: str
    dim: int

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(len(images), dim) float32, L2-normalised rows, in the text encoder's space."""
        ...


@dataclass(frozen=True)
class Encoders:
    text: TextEncoder
    image: ImageEncoder
    fuser: Fuser | None = None  # joins text, image and video into the index's "fused" vector

    @property
    def versions(self) -> dict[str, str]:
        fusion = self.fuser.version if self.fuser else "none"
        return {"text": self.text.version, "image": self.image.version, "fusion": fusion}


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def load_encoders(config: BijouConfig) -> Encoders:
    """Text, image and fusion models as configured (imports are local: each is heavy)."""
    from bijou.fusion.models import load_fuser

    fuser = load_fuser(config.fusion.kind, config.fusion.checkpoint)
    if config.text_encoder.kind == "clip" or config.image_encoder.kind == "clip":
        if config.text_encoder.kind != config.image_encoder.kind:
            raise ValueError("a CLIP encoder must be used for both text and image")
        from bijou.fusion.clip import load_clip_encoders

        return dataclasses.replace(load_clip_encoders(config), fuser=fuser)
    from bijou.fusion.image import load_image_encoder
    from bijou.fusion.text import load_text_encoder

    return Encoders(load_text_encoder(config), load_image_encoder(config), fuser)
