"""What every trained checkpoint shares: an atomic save, a checked load, a content version."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """Short hash of the weights: the version the index records."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode() + state[key].numpy().tobytes())
    return digest.hexdigest()[:12]


def save_payload(path: Path, payload: dict[str, Any]) -> None:
    """Written to a temporary name and renamed, so a crash never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)


def load_payload(path: Path, how_to_train: str) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (train one: {how_to_train})")
    return torch.load(path, map_location="cpu", weights_only=True)
