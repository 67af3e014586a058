"""Vectors shipped with the package, so a first run indexes the bundled catalog in seconds
instead of encoding 11,627 products (minutes on a CPU).

A vector is reused only where it is exactly what the configured encoder would compute now:
the same encoder version and the same input, checked by fingerprint (a hash of the text the
text encoder reads, ``Product.document()``, and of the image bytes the image encoder reads).
A product whose text or photo changed, or an encoder with another version, is encoded as
usual; nothing else about the catalog matters. Rows are stored as int8 with one scale per
row (a quarter of float32; cosine to the float32 vector above 0.9999), compressed.

`bijou ship-vectors` writes the file from an index built by the current encoders.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bijou.catalog.media import MediaStore
from bijou.catalog.schema import Product

SHIPPED_VECTORS = Path(__file__).parent / "data" / "catalog_vectors.npz"
FORMAT = 1
KINDS = ("text", "image")


def text_fingerprint(product: Product) -> str:
    return hashlib.sha256(product.document().encode("utf-8")).hexdigest()[:16]


def image_fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def quantize(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows -> (int8 rows, float32 scale per row): row ~= q * scale."""
    vectors = np.asarray(vectors, dtype=np.float32)
    scale = np.abs(vectors).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(vectors / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def dequantize(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    rows = q.astype(np.float32) * scale[:, None]
    # Unit length again, as every encoder returns them.
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class _Table:
    version: str  # the encoder that made these rows
    index: dict[str, int]  # fingerprint of the input -> row
    q: np.ndarray
    scale: np.ndarray

    def get(self, fingerprint: str) -> np.ndarray | None:
        row = self.index.get(fingerprint)
        if row is None:
            return None
        return dequantize(self.q[row : row + 1], self.scale[row : row + 1])[0]


@dataclass(frozen=True)
class ShippedVectors:
    tables: dict[str, _Table]  # "text" / "image"

    @classmethod
    def load(cls, path: Path = SHIPPED_VECTORS) -> ShippedVectors | None:
        """The shipped file, or None when there is none (a source checkout may lack it)."""
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != FORMAT:
                return None
            tables = {}
            for kind in KINDS:
                keys = [str(k) for k in data[f"{kind}_keys"]]
                tables[kind] = _Table(
                    meta["encoders"][kind],
                    {k: i for i, k in enumerate(keys)},
                    data[f"{kind}_q"],
                    data[f"{kind}_scale"],
                )
        return cls(tables)

    def version(self, kind: str) -> str:
        return self.tables[kind].version

    def vectors_for(
        self,
        products: Sequence[Product],
        store: MediaStore,
        versions: Mapping[str, str],
    ) -> dict[str, dict[str, np.ndarray]]:
        """product id -> {"text": ..., "image": ...} for the products this file covers: its
        text vector matches, and so does its image vector or it has no image. Products
        missing from the result must be encoded."""
        text, image = self.tables["text"], self.tables["image"]
        if versions.get("text") != text.version:
            return {}
        use_images = versions.get("image") == image.version
        found: dict[str, dict[str, np.ndarray]] = {}
        for product in products:
            vector = text.get(text_fingerprint(product))
            if vector is None:
                continue
            dense = {"text": vector}
            data = store.read_bytes(product.image) if product.image else None
            if data is not None:
                picture = image.get(image_fingerprint(data)) if use_images else None
                if picture is None:
                    continue  # its photo must be encoded: encode the product whole
                dense["image"] = picture
            found[product.id] = dense
        return found


def write_shipped(
    path: Path,
    products: Iterable[Product],
    vectors: Mapping[str, Mapping[str, np.ndarray]],
    store: MediaStore,
    versions: Mapping[str, str],
) -> dict[str, int]:
    """Write the file for ``products`` from their held ``vectors`` (id -> name -> vector);
    returns the row count of each table."""
    rows: dict[str, dict[str, np.ndarray]] = {kind: {} for kind in KINDS}
    for product in products:
        held = vectors.get(product.id, {})
        if "text" in held:
            rows["text"][text_fingerprint(product)] = held["text"]
        data = store.read_bytes(product.image) if product.image else None
        if data is not None and "image" in held:
            rows["image"][image_fingerprint(data)] = held["image"]
    arrays: dict[str, np.ndarray] = {}
    for kind, table in rows.items():
        keys = sorted(table)
        q, scale = quantize(np.stack([table[k] for k in keys]))
        arrays |= {f"{kind}_keys": np.array(keys), f"{kind}_q": q, f"{kind}_scale": scale}
    meta = {"format": FORMAT, "encoders": {k: versions[k] for k in KINDS}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), **arrays)
    tmp.replace(path)
    return {kind: len(table) for kind, table in rows.items()}
