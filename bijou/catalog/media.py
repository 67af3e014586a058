"""Product media (images, videos) from a folder or a zip (the bundled catalog ships its JPEGs
as one zip)."""

from __future__ import annotations

import io
import threading
import zipfile
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from bijou.catalog.schema import Product

MAX_IMAGE_PIXELS = 40_000_000


class ImageDecodeError(ValueError):
    """The bytes are not an image we can read."""


def decode_image(data: bytes) -> Image.Image:
    """RGB image from untrusted bytes; raises ImageDecodeError, never a crash."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise ImageDecodeError(f"image too large: {img.width}x{img.height}")
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"cannot decode image: {exc}") from exc


class MediaStore:
    """Reads ``product.image`` relative to ``root`` (a folder or a .zip file)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._zip: zipfile.ZipFile | None = None
        self._lock = threading.Lock()
        if root.suffix == ".zip":
            self._zip = zipfile.ZipFile(root)

    def read_bytes(self, relative: str) -> bytes | None:
        if self._zip is not None:
            with self._lock:  # ZipFile reads are not thread-safe
                try:
                    return self._zip.read(relative)
                except KeyError:
                    return None
        path = Path(relative) if Path(relative).is_absolute() else self.root / relative
        return path.read_bytes() if path.is_file() else None

    def load(self, product: Product) -> Image.Image | None:
        """The product's image, or None when it has none or it is missing or unreadable."""
        if not product.image:
            return None
        data = self.read_bytes(product.image)
        if data is None:
            return None
        try:
            return decode_image(data)
        except ImageDecodeError:
            return None
