"""Virtual try-on on real photographs: scikit-image's astronaut (Eileen Collins) and
cameraman, matplotlib's Grace Hopper, and real catalog product photos. The face models load
in a tenth of a second, so these run in the fast tier."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image, ImageOps

from bijou.catalog.loader import BUNDLED_IMAGES
from bijou.catalog.media import MediaStore
from bijou.catalog.schema import Product
from bijou.config import TryOnConfig
from bijou.serve.faces import CHIN, NOSE_TIP, FaceMesh
from bijou.serve.tryon import TryOnError, TryOnRenderer, cut_out, ear_lobes, split_pieces

skimage_data = pytest.importorskip("skimage.data")

GRACE_HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
NOSE_BRIDGE = 168  # the mesh point between the eyes: with the chin, the face's midline


@pytest.fixture(scope="module")
def renderer() -> TryOnRenderer:
    return TryOnRenderer.load(TryOnConfig())


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skimage_data.astronaut())


@pytest.fixture(scope="module")
def hopper() -> Image.Image:
    return Image.open(GRACE_HOPPER).convert("RGB")


@pytest.fixture(scope="module")
def jewellery(bundled: list[Product]) -> dict[str, Product]:
    """The first bundled product with a photo of each article."""
    first: dict[str, Product] = {}
    for product in bundled:
        if product.image:
            first.setdefault(product.article, product)
    return first


@pytest.fixture(scope="module")
def media() -> MediaStore:
    return MediaStore(BUNDLED_IMAGES)


def _render(renderer, photo, product, media):
    return renderer.render(photo, product, media.load(product))


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
def test_landmarks_fall_inside_the_detected_face(renderer, name, request) -> None:
    photo = request.getfixturevalue(name)
    face = renderer.face(photo)
    box = face.box
    assert 0 <= box.left < box.right <= photo.width and 0 <= box.top < box.bottom <= photo.height
    # The features the placement uses lie in the detector's box (its box stops at the chin:
    # a small margin for the chin itself).
    for point in (*face.eye_centres, face.point(NOSE_TIP), face.point(CHIN)):
        assert box.contains(*point, margin=0.1), (point, box)
    left, right = face.eye_centres
    assert left[0] < face.point(NOSE_TIP)[0] < right[0]
    assert max(left[1], right[1]) < face.point(NOSE_TIP)[1] < face.point(CHIN)[1]


def _midline_offsets(face: FaceMesh, points) -> list[tuple[float, float]]:
    """Each point as (signed distance from the face's midline, height along it)."""
    top, chin = face.point(NOSE_BRIDGE), face.point(CHIN)
    down = (chin - top) / np.linalg.norm(chin - top)
    across = np.array([down[1], -down[0]])
    return [(float(np.dot(p - top, across)), float(np.dot(p - top, down))) for p in points]


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
def test_earrings_sit_symmetric_at_the_ear_lobes(renderer, jewellery, media, name, request):
    photo = request.getfixturevalue(name)
    result = _render(renderer, photo, jewellery["Earrings"], media)
    assert result.image.size == photo.size
    names = [p.name for p in result.placements]
    assert names == ["earring image-left", "earring image-right"]
    face = result.face
    left, right = _midline_offsets(face, [np.array(p.anchor) for p in result.placements])
    iod = face.eye_distance
    assert left[0] < 0 < right[0]
    assert abs(abs(left[0]) - abs(right[0])) < 0.15 * iod  # mirror images across the midline
    assert abs(left[1] - right[1]) < 0.1 * iod  # at one height
    # Ear lobes are below the eyes, above the chin, and outside the cheeks.
    for side in (left, right):
        assert 0.9 * iod < abs(side[0]) < 1.6 * iod
        assert 0.5 * iod < side[1] < _midline_offsets(face, [face.point(CHIN)])[0][1]
    # The pair is one piece and its mirror image, the same size.
    a, b = result.placements
    assert (a.width, a.height) == (b.width, b.height)
    # Both are drawn: the photo changed at each lobe.
    before, after = np.asarray(photo, np.int16), np.asarray(result.image, np.int16)
    for p in result.placements:
        region = np.s_[p.top : p.top + p.height, p.left : p.left + p.width]
        assert np.abs(after[region] - before[region]).mean() > 5


def test_a_mirrored_photo_mirrors_the_earrings(renderer, astronaut) -> None:
    width = astronaut.width
    lobes = ear_lobes(renderer.face(astronaut), renderer.sizes)
    flipped = ear_lobes(renderer.face(ImageOps.mirror(astronaut)), renderer.sizes)
    iod = renderer.face(astronaut).eye_distance
    for original, mirrored in ((lobes[0], flipped[1]), (lobes[1], flipped[0])):
        assert original is not None and mirrored is not None
        assert abs(original[0] - (width - 1 - mirrored[0])) < 0.1 * iod
        assert abs(original[1] - mirrored[1]) < 0.1 * iod


@pytest.mark.parametrize("article", ["Necklace and Chains", "Pendant", "Jewellery Set"])
def test_neck_pieces_hang_below_the_chin_on_the_face_midline(
    renderer, hopper, jewellery, media, article
) -> None:
    result = _render(renderer, hopper, jewellery[article], media)
    neck = [p for p in result.placements if p.name in ("necklace", "pendant")]
    assert len(neck) == 1
    x, y = neck[0].anchor
    iod = result.face.eye_distance
    assert y > result.chin[1]
    assert abs(x - result.chin[0]) < 0.1 * iod
    if article == "Jewellery Set":  # the set's earring pair goes to the ears, at its own size
        ears = [p for p in result.placements if p.name.startswith("earring")]
        assert [p.name for p in ears] == ["earring image-left", "earring image-right"]
        earring_mm = renderer.sizes.articles[article].earring_mm
        assert max(ears[0].width, ears[0].height) == pytest.approx(iod * earring_mm / 63, abs=2)


def test_the_piece_is_scaled_by_the_face(renderer, astronaut, jewellery, media) -> None:
    earrings = jewellery["Earrings"]
    big = _render(renderer, astronaut, earrings, media).placements[0]
    small = _render(renderer, astronaut.resize((384, 384)), earrings, media).placements[0]
    assert small.height == pytest.approx(big.height * 0.75, abs=2)
    # 30 mm of earring at 63 mm between the eyes.
    iod = renderer.face(astronaut).eye_distance
    assert max(big.width, big.height) == pytest.approx(iod * 30 / 63, abs=2)


@pytest.mark.parametrize("name", ["chelsea", "coffee", "rocket"])
def test_photos_without_a_face_are_refused(renderer, jewellery, media, name) -> None:
    photo = Image.fromarray(getattr(skimage_data, name)())
    with pytest.raises(TryOnError) as caught:
        _render(renderer, photo, jewellery["Earrings"], media)
    assert caught.value.reason == "no_face"
    assert "no face" in str(caught.value)


def test_several_faces_are_refused(renderer, astronaut, hopper, jewellery, media) -> None:
    # Two real portraits side by side, their faces about the same size.
    small_hopper = hopper.resize((hopper.width // 2, hopper.height // 2))
    both = Image.new("RGB", (astronaut.width + small_hopper.width, astronaut.height))
    both.paste(astronaut, (0, 0))
    both.paste(small_hopper, (astronaut.width, 100))
    with pytest.raises(TryOnError) as caught:
        _render(renderer, both, jewellery["Earrings"], media)
    assert caught.value.reason == "several_faces"
    assert "several faces (2)" in str(caught.value)


def test_a_face_too_small_is_refused(renderer, jewellery, media) -> None:
    # The cameraman's face is real but 20 px between the eyes.
    photo = Image.fromarray(skimage_data.camera()).convert("RGB")
    with pytest.raises(TryOnError) as caught:
        _render(renderer, photo, jewellery["Earrings"], media)
    assert caught.value.reason == "face_too_small"
    assert "too small" in str(caught.value)


@pytest.mark.parametrize("article", ["Watches", "Ring", "Handbags"])
def test_pieces_not_worn_at_the_face_are_refused(renderer, astronaut, jewellery, media, article):
    with pytest.raises(TryOnError) as caught:
        _render(renderer, astronaut, jewellery[article], media)
    assert caught.value.reason == "not_wearable"
    assert article in str(caught.value)


def test_a_product_without_a_photo_is_refused(renderer, astronaut, jewellery) -> None:
    with pytest.raises(TryOnError) as caught:
        renderer.render(astronaut, jewellery["Earrings"], None)
    assert caught.value.reason == "no_image"


def test_the_cut_out_frees_the_piece_from_its_studio_background(jewellery, media) -> None:
    photo = media.load(jewellery["Earrings"])
    assert photo is not None
    colour, alpha = cut_out(photo)
    border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
    assert border.max() == 0.0
    opaque = alpha > 0.99
    assert 0.02 < opaque.mean() < 0.6
    # No white fringe: partly transparent edge pixels carry the piece's colour, not the
    # studio's white (they were un-blended from it).
    rim = (alpha > 0.05) & (alpha < 0.95)
    assert rim.any()
    assert colour[rim].mean() < np.asarray(photo, np.float32)[rim].mean()


def test_a_hoop_s_inside_is_transparent(bundled, media) -> None:
    # Product 31703's photo (looked at) is two large silver hoops, overlapping: one is split
    # off, and the studio white inside its ring is background too.
    hoops = next(p for p in bundled if p.id == "31703")
    pieces = split_pieces(media.load(hoops), "ears")
    assert pieces.earring is not None
    alpha = np.asarray(pieces.earring.image.getchannel("A"))
    h, w = alpha.shape
    centre = alpha[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3]
    assert (centre == 0).mean() > 0.5


def test_the_result_encodes_as_png_and_jpeg(renderer, astronaut, jewellery, media) -> None:
    result = _render(renderer, astronaut, jewellery["Earrings"], media)
    for fmt, magic in (("png", b"\x89PNG"), ("jpeg", b"\xff\xd8")):
        data = result.encode(fmt)
        assert data.startswith(magic)
        assert Image.open(io.BytesIO(data)).size == astronaut.size


def _multipart(photo: bytes, boundary: str) -> bytes:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="me.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    )
    tail = (
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="product_id"\r\n\r\n'
        f"31700\r\n--{boundary}--\r\n"
    )
    return head.encode() + photo + tail.encode()


@pytest.mark.parametrize("parser_kind", ["in-memory", "starlette's default"])
def test_an_uploaded_photo_never_reaches_the_disk(monkeypatch, parser_kind) -> None:
    import asyncio
    import os
    import tempfile

    from starlette.datastructures import Headers
    from starlette.formparsers import MultiPartParser

    from bijou.serve.api import InMemoryMultiPart

    def to_disk(*args, **kwargs):
        raise AssertionError("the photo was spooled to a temporary file")

    # A spooled upload rolls over to disk through tempfile.TemporaryFile.
    monkeypatch.setattr(tempfile, "TemporaryFile", to_disk)
    photo, boundary = os.urandom(3_000_000), "photo-boundary"
    body = _multipart(photo, boundary)
    headers = Headers({"content-type": f"multipart/form-data; boundary={boundary}"})
    parser_class = InMemoryMultiPart if parser_kind == "in-memory" else MultiPartParser

    async def parse() -> tuple[bytes, str]:
        async def stream():
            for start in range(0, len(body), 65_536):
                yield body[start : start + 65_536]

        form = await parser_class(headers, stream()).parse()
        data = await form["photo"].read()
        await form.close()
        return data, form["product_id"]

    if parser_kind == "in-memory":
        assert asyncio.run(parse()) == (photo, "31700")
    else:  # the default would have written it: what the in-memory parser is for
        with pytest.raises(AssertionError, match="spooled"):
            asyncio.run(parse())


def test_a_phone_photo_is_turned_upright_by_its_exif_orientation(renderer, hopper) -> None:
    from bijou.catalog.media import decode_image

    # Stored on its side with EXIF orientation 6 ("turn 90 degrees clockwise to view"), as a
    # phone held upright writes it.
    sideways = hopper.transpose(Image.Transpose.ROTATE_90)
    exif = sideways.getexif()
    exif[0x0112] = 6
    out = io.BytesIO()
    sideways.save(out, "JPEG", exif=exif, quality=92)
    photo = decode_image(out.getvalue())
    assert photo.size == hopper.size
    face = renderer.face(photo)
    assert abs(face.roll) < 0.2  # upright, as the camera saw it
