"""Virtual try-on: a catalog piece placed on a shopper's photo.

The piece is cut out of its studio photo (the white background to alpha, edges freed of the
white they were blended with), sized by the face's inter-ocular distance and the article's
typical real size (tryon.yaml), and drawn with a soft shadow: earrings at the ear lobes (one
piece and its mirror image), necklaces under the chin, pendants on a thin chain, sets both.

The photo lives only in memory for the one call: nothing here writes it or logs it.
"""

from __future__ import annotations

import io
import itertools
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from PIL import Image, ImageDraw, ImageFilter, ImageOps
from scipy import ndimage

from bijou.catalog.schema import Product
from bijou.config import TryOnConfig
from bijou.serve.faces import (
    CHIN,
    NOSE_BASE,
    NOSE_TIP,
    OVAL_IMAGE_LEFT,
    OVAL_IMAGE_RIGHT,
    FaceBox,
    FaceMesh,
    FaceModels,
)

SIZES_FILE = Path(__file__).with_name("tryon.yaml")

# Cut-out: a pixel this far (max over R, G, B) from the studio background is fully the piece;
# closer than BACKGROUND_NEAR it is background where it touches the background.
BACKGROUND_NEAR = 12.0
PIECE_FAR = 48.0
HOLE_FRACTION = 0.01  # an enclosed background-coloured patch larger than this is a hole
SPECK_PIXELS = 3  # JPEG noise, not part of the piece
PAIR_AREA_RATIO = 0.4  # two pieces this alike in area are a photographed pair
# A second face at least this wide (relative to the largest) means the photo is not of one
# shopper; smaller ones are people in the background.
SECOND_FACE_RATIO = 0.5
SHADOW_OPACITY = 0.35

OutputFormat = Literal["jpeg", "png"]
Reason = Literal["no_face", "several_faces", "face_too_small", "not_wearable", "no_image"]


class TryOnError(ValueError):
    """A try-on that cannot be done, with the reason a client can act on."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ArticleSize:
    place: Literal["ears", "neck", "pendant", "set"]
    measure: Literal["long", "width"]
    mm: float
    earring_mm: float | None = None  # a set's earrings (their longer side)


@dataclass(frozen=True)
class Sizes:
    """The real-size priors and body geometry of tryon.yaml."""

    inter_ocular_mm: float
    neck_width_mm: float
    neck_side_below_chin_mm: float
    necklace_top_below_chin_mm: float
    pendant_below_chin_mm: float
    lobe_outside_oval_mm: float
    hidden_ear_nose_fraction: float
    articles: dict[str, ArticleSize]

    @classmethod
    def load(cls, path: Path = SIZES_FILE) -> Sizes:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return cls(
            inter_ocular_mm=float(data["inter_ocular_mm"]),
            **{k: float(v) for k, v in data["body"].items()},
            **{k: float(v) for k, v in data["ears"].items()},
            articles={name: ArticleSize(**spec) for name, spec in data["articles"].items()},
        )


@dataclass(frozen=True)
class Placement:
    """Where one piece was drawn, in pixels of the returned image."""

    name: str  # "earring image-left", "earring image-right", "necklace", "pendant"
    left: int
    top: int
    width: int
    height: int

    @property
    def anchor(self) -> tuple[float, float]:
        """The point the piece hangs from: the middle of its top edge."""
        return self.left + self.width / 2, float(self.top)


@dataclass(frozen=True)
class TryOn:
    image: Image.Image  # RGB
    face: FaceMesh
    placements: tuple[Placement, ...]
    lobes: tuple[tuple[float, float] | None, tuple[float, float] | None]  # image-left, -right
    chin: tuple[float, float]

    def encode(self, fmt: OutputFormat, jpeg_quality: int = 90) -> bytes:
        out = io.BytesIO()
        if fmt == "png":
            self.image.save(out, "PNG", optimize=False)
        else:
            self.image.save(out, "JPEG", quality=jpeg_quality)
        return out.getvalue()


# --- the piece -------------------------------------------------------------------------
@dataclass(frozen=True)
class Cutout:
    """A piece cut out of its catalog photo: straight RGB with an alpha channel."""

    image: Image.Image  # RGBA, cropped to the piece

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def cut_out(photo: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """(RGB, alpha) float arrays of a studio product photo: its background made transparent.

    The background colour is the median of the photo's border. Background-coloured pixels
    that touch it, or that enclose a large hole (inside a hoop), become transparent; small
    enclosed ones (a pearl's highlight) stay part of the piece. Edge pixels get a partial
    alpha, and their colour is un-blended from the background so no white fringe remains.
    """
    rgb = np.asarray(photo.convert("RGB"), dtype=np.float32)
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    background = np.median(border, axis=0)
    distance = np.abs(rgb - background).max(axis=2)
    alpha = np.clip((distance - BACKGROUND_NEAR) / (PIECE_FAR - BACKGROUND_NEAR), 0.0, 1.0)
    near = distance < BACKGROUND_NEAR
    labels, count = ndimage.label(near)
    if count:
        touching = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        areas = ndimage.sum_labels(near, labels, index=np.arange(1, count + 1))
        holes = np.flatnonzero(areas > HOLE_FRACTION * near.size) + 1
        open_background = np.isin(labels, np.union1d(touching[touching > 0], holes))
        enclosed = near & ~open_background
        alpha[enclosed] = 1.0  # a white stone, not the studio
    solid = alpha > 0.5
    pieces, n = ndimage.label(solid)
    if n:
        sizes = ndimage.sum_labels(solid, pieces, index=np.arange(1, n + 1))
        kept = np.isin(pieces, np.flatnonzero(sizes >= SPECK_PIXELS) + 1)
        specks = solid & ~kept
        alpha[ndimage.binary_dilation(specks) & ~kept] = 0.0  # with their soft rims
    safe = np.maximum(alpha, 1e-3)[..., None]
    colour = np.clip(background + (rgb - background) / safe, 0, 255)
    return colour, alpha


def _cut(colour: np.ndarray, alpha: np.ndarray) -> Cutout | None:
    """The RGBA crop around what ``alpha`` keeps (None when it keeps nothing)."""
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if not rows.size:
        return None
    box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    data = np.dstack([colour[box], alpha[box] * 255.0])
    return Cutout(Image.fromarray(np.round(data).astype(np.uint8), "RGBA"))


@dataclass(frozen=True)
class Pieces:
    """What a catalog photo shows: the main piece and, for earrings and sets, one earring
    of the photographed pair."""

    main: Cutout | None
    earring: Cutout | None


def split_pieces(photo: Image.Image, place: str) -> Pieces:
    """The pieces a product photo shows, cut out, for the way the article is worn."""
    colour, alpha = cut_out(photo)
    solid = ndimage.binary_dilation(alpha > 0.3)
    labels, count = ndimage.label(solid)
    if not count:
        return Pieces(None, None)
    areas = ndimage.sum_labels(solid, labels, index=np.arange(1, count + 1))
    order = [int(k) + 1 for k in np.argsort(-areas)]  # labels, largest first
    if place == "ears":
        return Pieces(None, _one_earring(colour, alpha, labels, order, areas))
    if place == "set" and (pair := _pair(labels, order[1:], areas)):
        # A set's photo: the necklace, and its earring pair laid beside or inside it.
        in_pair = np.isin(labels, pair)
        return Pieces(
            _cut(colour, np.where(in_pair, 0.0, alpha)),
            _cut(colour, np.where(labels == pair[0], alpha, 0.0)),
        )
    return Pieces(_cut(colour, alpha), None)


def _pair(labels: np.ndarray, candidates: list[int], areas: np.ndarray) -> tuple[int, int] | None:
    """Two pieces alike in area side by side (an earring pair), the larger first."""
    for first, second in itertools.pairwise(candidates):
        a, b = areas[first - 1], areas[second - 1]
        if b < PAIR_AREA_RATIO * a or a < SPECK_PIXELS * 4:
            continue
        rows = np.flatnonzero((labels == first).any(axis=1))
        ya, yb = (ndimage.center_of_mass(labels == k)[0] for k in (first, second))
        if abs(ya - yb) <= rows[-1] - rows[0] + 1:  # side by side, not one above the other
            return first, second
    return None


def _one_earring(
    colour: np.ndarray, alpha: np.ndarray, labels: np.ndarray, order: list[int],
    areas: np.ndarray,
) -> Cutout | None:  # fmt: skip
    """One earring of the photographed pair (or the only one)."""
    if len(order) >= 2 and areas[order[1] - 1] >= PAIR_AREA_RATIO * areas[order[0] - 1]:
        mask = labels == order[0]
    else:
        mask = labels > 0
        cols = np.flatnonzero(mask.any(axis=0))
        rows = np.flatnonzero(mask.any(axis=1))
        left, right = int(cols[0]), int(cols[-1]) + 1
        # A pair photographed overlapping (two hoops) is one blob wider than tall: split it
        # at the thinnest column of its middle and keep the heavier half.
        if right - left > 1.15 * (rows[-1] - rows[0] + 1):
            profile = (alpha * mask)[:, left:right].sum(axis=0)
            lo, hi = int(0.3 * len(profile)), int(0.7 * len(profile)) + 1
            cut = left + lo + int(np.argmin(profile[lo:hi]))
            first, second = mask.copy(), mask.copy()
            first[:, cut:] = False
            second[:, :cut] = False
            mask = max((first, second), key=lambda m: float((alpha * m).sum()))
    return _cut(colour, np.where(mask, alpha, 0.0))


# --- drawing ---------------------------------------------------------------------------
def _scaled(piece: Cutout, width: float, height: float) -> Image.Image:
    # Premultiplied while resampling, so transparent pixels' colour does not bleed in.
    size = max(1, round(width)), max(1, round(height))
    return piece.image.convert("RGBa").resize(size, Image.LANCZOS).convert("RGBA")


def _with_shadow(piece: Image.Image, blur: float) -> tuple[Image.Image, int]:
    """The piece over its soft shadow (cast down and to the right), and the margin between
    the layer's top-left corner and the piece's."""
    pad = max(2, math.ceil(blur * 3))
    offset = max(1, round(blur * 0.8))
    size = (piece.width + 2 * pad + offset, piece.height + 2 * pad + 2 * offset)
    shadow_alpha = Image.new("L", size, 0)
    faded = piece.getchannel("A").point(lambda a: round(a * SHADOW_OPACITY))
    shadow_alpha.paste(faded, (pad + offset, pad + 2 * offset))
    layer = Image.new("RGBA", size, (20, 12, 8, 0))
    layer.putalpha(shadow_alpha.filter(ImageFilter.GaussianBlur(blur)))
    layer.alpha_composite(piece, (pad, pad))
    return layer, pad


def _composite(canvas: Image.Image, layer: Image.Image, left: int, top: int) -> bool:
    """Alpha-composite ``layer`` at (left, top), clipped to the canvas (only that region is
    touched); False when none of it lands on the photo."""
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + layer.width, canvas.width), min(top + layer.height, canvas.height)
    if x0 >= x1 or y0 >= y1:
        return False
    canvas.alpha_composite(layer.crop((x0 - left, y0 - top, x1 - left, y1 - top)), (x0, y0))
    return True


def _draw(canvas: Image.Image, piece: Image.Image, left: int, top: int, blur: float) -> bool:
    """The piece with its shadow, its top-left corner at (left, top); False if off the photo."""
    layer, pad = _with_shadow(piece, blur)
    return _composite(canvas, layer, left - pad, top - pad)


def _metal_colour(piece: Cutout) -> tuple[int, int, int]:
    """The colour of a pendant's bail (its top fifth): the chain drawn to it matches."""
    data = np.asarray(piece.image, dtype=np.float32)
    top = data[: max(1, data.shape[0] // 5)]
    opaque = top[top[..., 3] > 200][:, :3]
    if not opaque.size:
        opaque = data[data[..., 3] > 200][:, :3]
    if not opaque.size:
        return (200, 170, 90)
    r, g, b = np.median(opaque, axis=0)
    return round(r), round(g), round(b)


# --- geometry --------------------------------------------------------------------------
def _oval_at_height(points: np.ndarray, y: float) -> np.ndarray:
    """The point of a polyline (one side of the face oval, top to chin) at height ``y``."""
    for upper, lower in itertools.pairwise(points):
        if upper[1] <= y <= lower[1] and lower[1] > upper[1]:
            t = (y - upper[1]) / (lower[1] - upper[1])
            return upper + t * (lower - upper)
    return points[np.argmin(np.abs(points[:, 1] - y))]


def ear_lobes(face: FaceMesh, sizes: Sizes) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Image-left and image-right ear lobes (None for an ear the head's turn hides).

    Worked out in the face's own upright frame (the photo turned by the head's roll about
    the nose's base), so a tilted head's lobes tilt with it."""
    origin = face.point(NOSE_BASE)
    cos, sin = math.cos(face.roll), math.sin(face.roll)
    to_face = np.array([[cos, sin], [-sin, cos]])  # undoes the roll

    def upright(indices: tuple[int, ...]) -> np.ndarray:
        return (face.points[list(indices), :2] - origin) @ to_face.T

    left = _oval_at_height(upright(OVAL_IMAGE_LEFT), 0.0)
    right = _oval_at_height(upright(OVAL_IMAGE_RIGHT), 0.0)
    width = max(float(right[0] - left[0]), 1e-6)
    nose = float(upright((NOSE_TIP,))[0, 0] - left[0]) / width
    out = np.array([sizes.lobe_outside_oval_mm * face.eye_distance / sizes.inter_ocular_mm, 0])
    hide = sizes.hidden_ear_nose_fraction

    def photo(point: np.ndarray) -> np.ndarray:
        return point @ to_face + origin

    return (
        None if nose < hide else photo(left - out),
        None if nose > 1 - hide else photo(right + out),
    )


# --- the whole try-on ------------------------------------------------------------------
class TryOnRenderer:
    """Face models and size priors, loaded once; `render` is safe to call from threads."""

    def __init__(self, models: FaceModels, sizes: Sizes, min_eye_distance_px: float,
                 max_side: int) -> None:  # fmt: skip
        self.models = models
        self.sizes = sizes
        self.min_eye_distance_px = min_eye_distance_px
        self.max_side = max_side

    @classmethod
    def load(cls, config: TryOnConfig) -> TryOnRenderer:
        sizes = sizes_of(config)
        return cls(FaceModels.load(), sizes, config.min_eye_distance_px, config.max_side)

    def check_wearable(self, product: Product) -> ArticleSize:
        size = self.sizes.articles.get(product.article)
        if size is None:
            kinds = ", ".join(self.sizes.articles)
            raise TryOnError(
                "not_wearable",
                f"product {product.id} is {product.article!r}; try-on covers {kinds}",
            )
        return size

    def face(self, photo: Image.Image) -> FaceMesh:
        """The one face of a shopper's photo; TryOnError says why there is none."""
        faces = self.models.detect(photo)
        if not faces:
            raise TryOnError("no_face", "no face found in the photo: send a photo of a face")
        widest = max(f.width for f in faces)
        near: list[FaceBox] = [f for f in faces if f.width >= SECOND_FACE_RATIO * widest]
        if len(near) > 1:
            raise TryOnError(
                "several_faces",
                f"several faces ({len(near)}) found in the photo: send a photo of one face",
            )
        mesh = self.models.mesh(photo, near[0])
        if mesh is None:
            raise TryOnError("no_face", "no face found in the photo: send a photo of a face")
        if mesh.eye_distance < self.min_eye_distance_px:
            raise TryOnError(
                "face_too_small",
                f"the face is too small ({mesh.eye_distance:.0f} px between the eyes, at least "
                f"{self.min_eye_distance_px:.0f} needed): take the photo closer",
            )
        return mesh

    def render(
        self, photo: Image.Image, product: Product, product_photo: Image.Image | None
    ) -> TryOn:
        size = self.check_wearable(product)
        if product_photo is None:
            raise TryOnError("no_image", f"product {product.id} has no photo to try on")
        photo = photo.convert("RGB")
        if max(photo.size) > self.max_side:
            photo = ImageOps.contain(photo, (self.max_side, self.max_side), Image.LANCZOS)
        face = self.face(photo)
        pieces = split_pieces(product_photo, size.place)
        if pieces.main is None and pieces.earring is None:
            raise TryOnError("no_image", f"product {product.id}'s photo shows no piece to cut out")
        px_per_mm = face.eye_distance / self.sizes.inter_ocular_mm
        blur = max(1.0, 0.8 * px_per_mm)
        canvas = photo.convert("RGBA")
        chin = face.point(CHIN)
        placements: list[Placement] = []
        # The scale of the photographed piece: mm of the article's measured side -> pixels.
        at_neck = size.place in ("neck", "pendant", "set")
        measured = (pieces.main if at_neck else None) or pieces.earring or pieces.main
        assert measured is not None  # one of them, checked above
        scale = self._scale(measured, size, px_per_mm)
        lobes = ear_lobes(face, self.sizes)
        if pieces.main is not None and size.place in ("neck", "set"):
            placements.append(self._necklace(canvas, pieces.main, scale, chin, px_per_mm, blur))
        if pieces.main is not None and size.place == "pendant":
            placements.append(self._pendant(canvas, pieces.main, scale, chin, px_per_mm, blur))
        if pieces.earring is not None and size.place in ("ears", "set"):
            if size.place == "set" and size.earring_mm:
                scale = size.earring_mm * px_per_mm / max(pieces.earring.size)
            placements += self._earrings(canvas, pieces.earring, scale, lobes, blur)
        return TryOn(
            image=canvas.convert("RGB"),
            face=face,
            placements=tuple(placements),
            lobes=tuple(None if p is None else (float(p[0]), float(p[1])) for p in lobes),  # type: ignore[arg-type]
            chin=(float(chin[0]), float(chin[1])),
        )

    @staticmethod
    def _scale(piece: Cutout, size: ArticleSize, px_per_mm: float) -> float:
        """Output pixels per pixel of the product photo."""
        width, height = piece.size
        side = max(width, height) if size.measure == "long" else width
        return size.mm * px_per_mm / max(side, 1)

    def _necklace(self, canvas: Image.Image, piece: Cutout, scale: float, chin: np.ndarray,
                  px_per_mm: float, blur: float) -> Placement:  # fmt: skip
        image = _scaled(piece, piece.size[0] * scale, piece.size[1] * scale)
        left = round(chin[0] - image.width / 2)
        top = round(chin[1] + self.sizes.necklace_top_below_chin_mm * px_per_mm)
        _draw(canvas, image, left, top, blur)
        return Placement("necklace", left, top, image.width, image.height)

    def _pendant(self, canvas: Image.Image, piece: Cutout, scale: float, chin: np.ndarray,
                 px_per_mm: float, blur: float) -> Placement:  # fmt: skip
        image = _scaled(piece, piece.size[0] * scale, piece.size[1] * scale)
        bail = np.array([chin[0], chin[1] + self.sizes.pendant_below_chin_mm * px_per_mm])
        half_neck = self.sizes.neck_width_mm * px_per_mm / 2
        side_y = chin[1] + self.sizes.neck_side_below_chin_mm * px_per_mm
        width = max(1, round(0.7 * px_per_mm))
        colour = (*_metal_colour(piece), 255)
        curves = []
        for sign in (-1, 1):
            start = np.array([chin[0] + sign * half_neck, side_y])
            # A hanging chain sags: a quadratic curve bowed outwards, towards the collarbone.
            control = np.array([chin[0] + sign * half_neck * 0.9, bail[1]])
            t = np.linspace(0, 1, 24)[:, None]
            curves.append((1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * bail)
        # Drawn on a layer just big enough for the chain, not the whole photo.
        corner = np.floor(np.vstack(curves).min(axis=0)) - 2 * width
        extent = np.ceil(np.vstack(curves).max(axis=0)) + 2 * width - corner
        chain = Image.new("RGBA", (int(extent[0]), int(extent[1])))
        draw = ImageDraw.Draw(chain)
        for curve in curves:
            draw.line([tuple(p) for p in curve - corner], fill=colour, width=width, joint="curve")
        _composite(canvas, chain.filter(ImageFilter.GaussianBlur(0.4)), *map(int, corner))
        left, top = round(bail[0] - image.width / 2), round(bail[1])
        _draw(canvas, image, left, top, blur)
        return Placement("pendant", left, top, image.width, image.height)

    @staticmethod
    def _earrings(canvas: Image.Image, piece: Cutout, scale: float,
                  lobes: tuple[np.ndarray | None, np.ndarray | None],
                  blur: float) -> list[Placement]:  # fmt: skip
        image = _scaled(piece, piece.size[0] * scale, piece.size[1] * scale)
        placed: list[Placement] = []
        # Earrings hang by gravity: upright whatever the head's tilt; the second is the
        # first one's mirror image, as a pair is made.
        for name, lobe, drawn in (
            ("earring image-left", lobes[0], image),
            ("earring image-right", lobes[1], ImageOps.mirror(image)),
        ):
            if lobe is None:
                continue
            left, top = round(lobe[0] - drawn.width / 2), round(lobe[1])
            if _draw(canvas, drawn, left, top, blur):
                placed.append(Placement(name, left, top, drawn.width, drawn.height))
        return placed


@cache
def _bundled_sizes() -> Sizes:
    return Sizes.load()


def sizes_of(config: TryOnConfig) -> Sizes:
    """The configured real-size priors (the bundled tryon.yaml by default)."""
    return Sizes.load(config.sizes) if config.sizes else _bundled_sizes()
