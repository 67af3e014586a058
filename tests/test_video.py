"""Video input: frame sampling from untrusted bytes, synthetic clips, frame embeddings, the
catalog's video field and the demo-video script. All clips here are synthetic (made from a
still image); the catalog has no real product videos."""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw

from bijou.catalog.loader import load_catalog
from bijou.fusion import video
from bijou.fusion.video import VideoDecodeError, encode_video_frames, make_clip, sample_frames

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def still() -> Image.Image:
    """A 60x80 product-like shot on white (the bundled images' size)."""
    image = Image.new("RGB", (60, 80), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.ellipse((10, 15, 50, 55), fill=(200, 160, 40))
    draw.rectangle((24, 50, 36, 75), fill=(60, 60, 160))
    return image


@pytest.fixture(scope="module")
def zoom_clip(still: Image.Image) -> bytes:
    return make_clip(still, "zoom")


def _padded(image: Image.Image, size: int) -> np.ndarray:
    square = Image.new("RGB", (80, 80), (255, 255, 255))
    square.paste(image, (10, 0))
    return np.asarray(square.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)


def _mad(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())


@pytest.mark.parametrize("motion", ["zoom", "pan", "rotate"])
def test_each_motion_makes_a_decodable_mp4(still: Image.Image, motion: str) -> None:
    data = make_clip(still, motion, seconds=1.0, fps=8, size=64)
    assert data[4:8] == b"ftyp"
    frames = sample_frames(data, num_frames=5)
    assert len(frames) == 5
    assert all(f.mode == "RGB" and f.size == (64, 64) for f in frames)
    assert data == make_clip(still, motion, seconds=1.0, fps=8, size=64)  # deterministic


def test_zoom_frames_move_and_start_at_the_source(still: Image.Image, zoom_clip: bytes) -> None:
    frames = sample_frames(zoom_clip, num_frames=8)
    assert len(frames) == 8
    assert all(f.mode == "RGB" and f.size == (128, 128) for f in frames)
    source = _padded(still, 128)
    assert _mad(frames[0], source) < 4.0
    assert _mad(frames[-1], source) > 3 * _mad(frames[0], source)
    for a, b in itertools.pairwise(frames):
        assert _mad(a, b) > 0.5  # every sampled frame is a different moment


def test_more_frames_asked_than_the_clip_has_repeats_frames(still: Image.Image) -> None:
    frames = sample_frames(make_clip(still, "pan", seconds=0.5, fps=4, size=32), num_frames=6)
    assert len(frames) == 6
    assert len({f.tobytes() for f in frames}) == 2


def test_webm(still: Image.Image) -> None:
    data = make_clip(still, "rotate", seconds=1.0, fps=8, size=48, codec="libvpx-vp9")
    assert data[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a Matroska/WebM file
    frames = sample_frames(data, num_frames=4)
    assert [f.size for f in frames] == [(48, 48)] * 4


@pytest.mark.parametrize("kind", ["garbage", "empty", "truncated mp4", "jpeg"])
def test_bad_bytes_raise_video_decode_error(
    still: Image.Image, zoom_clip: bytes, kind: str
) -> None:
    jpeg = io.BytesIO()
    still.save(jpeg, format="JPEG")
    data = {
        "garbage": b"not a video at all " * 50,
        "empty": b"",
        "truncated mp4": zoom_clip[: len(zoom_clip) // 2],
        "jpeg": jpeg.getvalue(),
    }[kind]
    with pytest.raises(VideoDecodeError):
        sample_frames(data)


def test_too_long_is_rejected(still: Image.Image) -> None:
    data = make_clip(still, "zoom", seconds=3.0, fps=2, size=32)
    with pytest.raises(VideoDecodeError, match="too long"):
        sample_frames(data, max_seconds=2.0)
    assert len(sample_frames(data, num_frames=2, max_seconds=4.0)) == 2


def test_webm_without_a_duration_header_is_sampled_by_timestamps() -> None:
    """Browser recordings (MediaRecorder) write WebM with no duration; frame i is red 15 * i."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm", options={"live": "1"}) as out:
        stream = out.add_stream("libvpx", rate=8)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(16):
            frame = av.VideoFrame.from_image(Image.new("RGB", (32, 32), (15 * i, 0, 0)))
            frame.pts, frame.time_base = i, Fraction(1, 8)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with av.open(io.BytesIO(buffer.getvalue())) as container:
        assert container.duration is None and container.streams.video[0].duration is None
    frames = sample_frames(buffer.getvalue(), num_frames=4)
    # Segment centres 0.25, 0.75, 1.25, 1.75 s are frames 2, 6, 10 and 14.
    reds = [frame.getpixel((16, 16))[0] for frame in frames]
    assert all(abs(r - e) <= 6 for r, e in zip(reds, [30, 90, 150, 210], strict=True)), reds


def test_huge_frames_are_rejected(still: Image.Image, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_clip(still, "pan", seconds=0.5, fps=4, size=48)
    monkeypatch.setattr(video, "MAX_SIDE", 32)
    with pytest.raises(VideoDecodeError, match="too large: 48x48"):
        sample_frames(data)


class StubEncoder:
    dim = 4

    def __init__(self) -> None:
        self.calls: list[int] = []

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.calls.append(len(images))
        means = [np.asarray(img, np.float32).mean(axis=(0, 1)) / 255 for img in images]
        return np.array([[*m, 1.0] for m in means], dtype=np.float32).reshape(-1, 4)


def test_encode_video_frames_pads_and_masks() -> None:
    short = [Image.new("RGB", (8, 8), (i * 40, 0, 0)) for i in range(3)]
    long = [Image.new("RGB", (8, 8), (0, i * 30, 0)) for i in range(8)]
    stub = StubEncoder()
    vectors, mask = encode_video_frames(stub, [short, long])
    assert stub.calls == [11]  # one batched call over every frame
    assert vectors.shape == (2, 8, 4) and vectors.dtype == np.float32
    assert mask.dtype == bool
    assert mask.tolist() == [[True] * 3 + [False] * 5, [True] * 8]
    np.testing.assert_allclose(vectors[0, :3], StubEncoder().encode(short))
    np.testing.assert_allclose(vectors[1], StubEncoder().encode(long))
    assert not vectors[0, 3:].any()
    empty, empty_mask = encode_video_frames(StubEncoder(), [])
    assert empty.shape == (0, 0, 4) and empty_mask.shape == (0, 0)


def test_loader_accepts_mp4_and_rejects_gif(tmp_path: Path) -> None:
    base = {"title": "Gold Ring", "article": "Ring", "price": 499}
    rows = [
        base | {"id": "a", "video": "videos/x.mp4"},
        base | {"id": "b", "video": "x.gif"},
        base | {"id": "c"},
    ]
    path = tmp_path / "products.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_catalog(path)
    assert [(p.id, p.video) for p in loaded.products] == [("a", "videos/x.mp4"), ("c", None)]
    assert [(e.line, e.field) for e in loaded.errors] == [(2, "video")]
    assert "x.gif" in loaded.errors[0].reason


def test_demo_script_makes_a_loadable_catalog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location(
        "make_demo_videos", ROOT / "scripts/make_demo_videos.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    catalog = ROOT / "bijou/catalog/data/products.jsonl.gz"
    out = tmp_path / "demo"
    assert (
        script.main(["--catalog", str(catalog), "--out", str(out), "--count", "3", "--seed", "0"])
        == 0
    )
    loaded = load_catalog(out / "products.jsonl")
    assert loaded.errors == []
    assert len(loaded.products) == 3
    assert len({p.article for p in loaded.products}) == 3  # round-robin over articles
    for product in loaded.products:
        assert product.video == f"videos/{product.id}.mp4"
        assert product.image
        assert len(sample_frames((out / product.video).read_bytes(), num_frames=4)) == 4
    assert sorted(p.name for p in (out / "videos").iterdir()) == sorted(
        f"{p.id}.mp4" for p in loaded.products
    )
    assert "3 synthetic clips" in capsys.readouterr().err
