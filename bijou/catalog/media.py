"""Product media (images, videos) from a folder or a zip (the bundled catalog ships its JPEGs
as one zip)."""

from __future__ import annotations

import io
import threading
import zipfile
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from bijou.catalog.schema import Product

MAX_IMAGE_PIXELS = 40_000_000


class ImageDecodeError(ValueError):
    """The bytes are not an image we can read."""


def decode_image(data: bytes) -> Image.Image:
    """RGB image from untrusted bytes, upright as the camera saw it (a phone's EXIF
    orientation applied); raises ImageDecodeError, never a crash."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise ImageDecodeError(f"image too large: {img.width}x{img.height}")
            return _upright(img).convert("RGB")
    except UnidentifiedImageError as exc:  # its text names an in-memory object
        raise ImageDecodeError("cannot decode image: not a JPEG, PNG, WebP or GIF") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"cannot decode image: {exc}") from exc


def _upright(img: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says; as stored when that block is broken
    (a malformed tag must not lose the photo)."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # Pillow raises many kinds on hostile EXIF; the pixels are still good
        return img


class MediaStore:
    """Reads product media by path relative to its roots (folders or .zip files), first found
    wins: a shop can keep its catalog's images in one place and its videos in another."""

    def __init__(self, *roots: Path) -> None:
        self.roots = roots
        self._zips = {root: zipfile.ZipFile(root) for root in roots if root.suffix == ".zip"}
        self._lock = threading.Lock()

    def read_bytes(self, relative: str) -> bytes | None:
        if Path(relative).is_absolute():
            return Path(relative).read_bytes() if Path(relative).is_file() else None
        for root in self.roots:
            if archive := self._zips.get(root):
                with self._lock:  # ZipFile reads are not thread-safe
                    try:
                        return archive.read(relative)
                    except KeyError:
                        continue
            elif (root / relative).is_file():
                return (root / relative).read_bytes()
        return None

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
