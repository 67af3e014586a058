"""Fusion models: join a product's (or a query's) text, image and video vectors into one.

Every model takes the same ``Modalities`` batch and returns L2-normalised vectors. Missing
modalities (a product without image or video, a text-only or photo-only query) are masked,
never passed in as zeros that pretend to be data. Video arrives as per-frame image vectors and
is pooled by temporal attention inside the model."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bijou.fusion.checkpoint import load_payload, save_payload, state_digest

FusionKind = Literal["concat", "gated", "attention", "lowrank"]
MODALITIES = ("text", "image", "video")


@dataclass(frozen=True)
class FusionConfig:
    kind: FusionKind = "gated"
    in_dim: int = 384
    hidden_dim: int = 512
    out_dim: int = 384
    heads: int = 4
    layers: int = 1
    rank: int = 8
    dropout: float = 0.1

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Modalities:
    """A batch: each vector (B, D) or video frames (B, T, D), with masks of what is present."""

    text: torch.Tensor
    image: torch.Tensor
    video: torch.Tensor  # (B, T, D) frame vectors
    frames: torch.Tensor  # (B, T) bool: real frames
    present: torch.Tensor  # (B, 3) bool: text, image, video

    @classmethod
    def build(
        cls,
        text: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
        video: torch.Tensor | None = None,
        frames: torch.Tensor | None = None,
        dim: int = 384,
    ) -> Modalities:
        """Absent inputs become masked placeholders of the right shape."""
        given = next(t for t in (text, image, video) if t is not None)
        batch = given.shape[0]
        blank = torch.zeros(batch, dim)
        has_video = video is not None
        if video is None:
            video, frames = torch.zeros(batch, 1, dim), torch.zeros(batch, 1, dtype=torch.bool)
        elif frames is None:
            frames = torch.ones(video.shape[:2], dtype=torch.bool)
        present = torch.stack(
            [
                torch.full((batch,), text is not None),
                torch.full((batch,), image is not None),
                frames.any(dim=1) if has_video else torch.zeros(batch, dtype=torch.bool),
            ],
            dim=1,
        )
        return cls(
            blank if text is None else text,
            blank if image is None else image,
            video,
            frames,
            present,
        )

    def select(self, index: torch.Tensor) -> Modalities:
        return Modalities(*(t[index] for t in (self.text, self.image, self.video, self.frames,
                                               self.present)))  # fmt: skip

    def with_present(self, present: torch.Tensor) -> Modalities:
        return Modalities(self.text, self.image, self.video, self.frames, present)

    def to(self, device: torch.device | str) -> Modalities:
        return Modalities(*(t.to(device) for t in (self.text, self.image, self.video, self.frames,
                                                   self.present)))  # fmt: skip


class TemporalAttentionPool(nn.Module):
    """A learned query attends over the frames; padding frames are masked out."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.zeros(dim))
        self.key = nn.Linear(dim, dim)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.key(frames) @ self.query / frames.shape[-1] ** 0.5
        scores = scores.masked_fill(~mask, float("-inf"))
        # A video with no frames gets uniform weights over padding; its modality is masked anyway.
        weights = torch.nan_to_num(scores.softmax(dim=1), nan=0.0)
        return (weights.unsqueeze(-1) * frames).sum(dim=1)


class FusionModel(nn.Module):
    """Shared plumbing: video pooling, then ``fuse`` over (B, 3, D) inputs, then normalise."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.config = config
        self.pool = TemporalAttentionPool(config.in_dim)

    def forward(self, batch: Modalities) -> torch.Tensor:
        video = self.pool(batch.video, batch.frames)
        inputs = torch.stack([batch.text, batch.image, video], dim=1)
        return F.normalize(self.fuse(inputs, batch.present), dim=-1)

    def fuse(self, inputs: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class ConcatFusion(FusionModel):
    """The naive baseline: a linear layer per modality, concatenate, a linear layer, ReLU."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        self.project = nn.ModuleList(
            nn.Linear(config.in_dim, config.hidden_dim) for _ in MODALITIES
        )
        n = len(MODALITIES)
        # The mask bits go in too, so "absent" is not confused with a zero vector.
        self.mix = nn.Linear(n * config.hidden_dim + n, config.hidden_dim)
        self.out = nn.Linear(config.hidden_dim, config.out_dim)

    def fuse(self, inputs: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        parts = [proj(inputs[:, i]) * present[:, i : i + 1] for i, proj in enumerate(self.project)]
        joined = torch.cat([*parts, present.float()], dim=-1)
        return self.out(F.relu(self.mix(joined)))


class GatedFusion(FusionModel):
    """Gated multimodal unit: per-dimension gates, a softmax over the present modalities."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        n, h = len(MODALITIES), config.hidden_dim
        self.project = nn.ModuleList(nn.Linear(config.in_dim, h) for _ in MODALITIES)
        self.gate = nn.Linear(n * config.in_dim + n, n * h)
        self.out = nn.Linear(h, config.out_dim)
        self.drop = nn.Dropout(config.dropout)

    def fuse(self, inputs: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        batch, n, _ = inputs.shape
        masked = inputs * present.unsqueeze(-1)
        hidden = torch.stack([torch.tanh(p(masked[:, i])) for i, p in enumerate(self.project)], 1)
        logits = self.gate(torch.cat([masked.flatten(1), present.float()], -1)).view(batch, n, -1)
        gates = logits.masked_fill(~present.unsqueeze(-1), float("-inf")).softmax(dim=1)
        return self.out(self.drop((gates * hidden).sum(dim=1)))


class AttentionFusion(FusionModel):
    """Multi-head scaled dot-product attention across modality tokens, pooled by a [CLS]."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        h = config.hidden_dim
        self.project = nn.Linear(config.in_dim, h)
        self.modality = nn.Parameter(torch.randn(len(MODALITIES), h) * 0.02)
        self.cls = nn.Parameter(torch.zeros(1, 1, h))
        layer = nn.TransformerEncoderLayer(
            h, config.heads, 2 * h, config.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.out = nn.Linear(h, config.out_dim)

    def fuse(self, inputs: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        tokens = self.project(inputs) + self.modality
        tokens = torch.cat([self.cls.expand(len(inputs), -1, -1), tokens], dim=1)
        keep = torch.cat([torch.ones_like(present[:, :1]), present], dim=1)
        encoded = self.encoder(tokens, src_key_padding_mask=~keep)
        return self.out(encoded[:, 0])


class LowRankFusion(FusionModel):
    """Low-rank multimodal fusion (LMF): the outer product of the modalities' [x, 1] vectors,
    times a weight tensor kept in CP form, computed without ever building the tensor."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        d, r, o = config.in_dim + 1, config.rank, config.out_dim
        self.factors = nn.ParameterList(
            nn.Parameter(torch.randn(r, d, o) * (1.0 / d) ** 0.5) for _ in MODALITIES
        )
        self.weights = nn.Parameter(torch.full((r,), 1.0 / r))
        self.bias = nn.Parameter(torch.zeros(o))

    def fuse(self, inputs: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        ones = torch.ones(*inputs.shape[:2], 1, device=inputs.device)
        augmented = torch.cat([inputs, ones], dim=-1)  # (B, 3, D+1)
        product = None
        for i, factor in enumerate(self.factors):
            term = torch.einsum("bd,rdo->bro", augmented[:, i], factor)
            # An absent modality contributes the multiplicative identity, not a zero vector.
            term = torch.where(present[:, i, None, None], term, torch.ones_like(term))
            product = term if product is None else product * term
        return torch.einsum("r,bro->bo", self.weights, product) + self.bias


MODELS: dict[str, type[FusionModel]] = {
    "concat": ConcatFusion,
    "gated": GatedFusion,
    "attention": AttentionFusion,
    "lowrank": LowRankFusion,
}


def build_fusion(config: FusionConfig) -> FusionModel:
    return MODELS[config.kind](config)


@dataclass
class FusionCheckpoint:
    config: FusionConfig
    state: dict[str, torch.Tensor]
    encoders: dict[str, str]  # versions of the text and image encoders it was trained on
    metrics: dict[str, float]
    seed: int

    @classmethod
    def of(
        cls, model: FusionModel, encoders: dict[str, str], metrics: dict[str, float], seed: int
    ) -> FusionCheckpoint:
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return cls(model.config, state, encoders, metrics, seed)

    @property
    def version(self) -> str:
        return f"fusion-{self.config.kind}:{state_digest(self.state)}"

    def save(self, path: Path) -> None:
        save_payload(
            path,
            {
                "config": self.config.to_json(),
                "state": self.state,
                "encoders": self.encoders,
                "metrics": self.metrics,
                "seed": self.seed,
            },
        )

    @classmethod
    def load(cls, path: Path) -> FusionCheckpoint:
        raw = load_payload(path, "bijou train-fusion")
        return cls(FusionConfig(**raw["config"]), raw["state"], raw["encoders"], raw["metrics"],
                   raw["seed"])  # fmt: skip

    def model(self) -> FusionModel:
        model = build_fusion(self.config)
        model.load_state_dict(self.state)
        return model.eval()


class Fuser:
    """A trained fusion model at run time: numpy vectors in, fused unit vectors out."""

    def __init__(self, checkpoint: FusionCheckpoint) -> None:
        self.model = checkpoint.model()
        self.version = checkpoint.version
        self.dim = checkpoint.config.out_dim
        self.in_dim = checkpoint.config.in_dim

    def products(
        self,
        text: np.ndarray,
        image: np.ndarray,
        has_image: np.ndarray,
        video: np.ndarray | None = None,
        frames: np.ndarray | None = None,
    ) -> np.ndarray:
        """Rows of products; ``has_image`` and ``frames`` mask what each one lacks."""
        n = len(text)
        if video is None or frames is None:
            video, frames = np.zeros((n, 1, self.in_dim), np.float32), np.zeros((n, 1), bool)
        batch = Modalities(
            torch.from_numpy(np.asarray(text, np.float32)),
            torch.from_numpy(np.asarray(image, np.float32)),
            torch.from_numpy(np.asarray(video, np.float32)),
            torch.from_numpy(frames),
            torch.from_numpy(np.stack([np.ones(n, bool), has_image, frames.any(axis=1)], axis=1)),
        )
        with torch.inference_mode():
            return self.model(batch).numpy()

    def query(self, text: np.ndarray | None, photo: np.ndarray | None) -> np.ndarray:
        """A shopper's query: its text vector, its photo's vector, or both."""
        batch = Modalities.build(text=_row(text), image=_row(photo), dim=self.in_dim)
        with torch.inference_mode():
            return self.model(batch).numpy()[0]


def _row(vector: np.ndarray | None) -> torch.Tensor | None:
    return None if vector is None else torch.from_numpy(np.asarray(vector, np.float32))[None]


def default_checkpoint(kind: str) -> Path:
    return Path(__file__).parent / "checkpoints" / f"fusion_{kind}.pt"


def load_fuser(kind: str, checkpoint: Path | None = None) -> Fuser | None:
    """None for ``kind == "none"``: search then ranks text and image vectors separately."""
    if kind == "none":
        return None
    return Fuser(FusionCheckpoint.load(checkpoint or default_checkpoint(kind)))
