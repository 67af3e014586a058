"""Product videos: sample a few frames from untrusted MP4/WebM bytes for the image encoder, and
make short synthetic clips from still images (the catalog has no real product videos, so these
clips stand in for them in tests and benchmarks)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from fractions import Fraction

import av
import av.error
import numpy as np
from PIL import Image

from bijou.catalog.media import MediaStore
from bijou.catalog.schema import Product
from bijou.fusion.encoders import ImageEncoder

MAX_SIDE = 4096
# Containers the catalog allows; FFmpeg would also open a JPEG or GIF as a one-frame "video".
_FORMATS = ("mp4", "webm")
MOTIONS = ("zoom", "pan", "rotate")
_WEBM_CODECS = ("libvpx", "libvpx-vp9")


class VideoDecodeError(ValueError):
    """The bytes are not a video we accept."""


def sample_frames(data: bytes, num_frames: int = 8, max_seconds: float = 60.0) -> list[Image.Image]:
    """``num_frames`` RGB frames nearest to the centres of equal time segments of the clip."""
    if num_frames < 1:
        raise ValueError("num_frames must be at least 1")
    if not data:
        raise VideoDecodeError("cannot decode video: no data")
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            return _sample(container, num_frames, max_seconds)
    except VideoDecodeError:
        raise
    # FFmpegError subclasses OSError/ValueError/EOFError; PyAV raises plain ones on bad input too.
    except (av.error.FFmpegError, OSError, ValueError, EOFError, RuntimeError, IndexError) as exc:
        raise VideoDecodeError(f"cannot decode video: {exc}") from exc


def _sample(
    container: av.container.InputContainer, n: int, max_seconds: float
) -> list[Image.Image]:
    if not any(name in _FORMATS for name in container.format.name.split(",")):
        raise VideoDecodeError(f"not an MP4 or WebM file (format {container.format.name!r})")
    if not container.streams.video:
        raise VideoDecodeError("no video stream")
    stream = container.streams.video[0]
    _check_size(stream.codec_context.width, stream.codec_context.height)
    start, duration = _time_range(container, stream)
    if duration > max_seconds:
        raise VideoDecodeError(f"video too long: {duration:.1f} s > {max_seconds:g} s")
    targets = [start + (k + 0.5) * duration / n for k in range(n)]
    gaps = [math.inf] * n
    chosen: list[av.VideoFrame | None] = [None] * n  # only these frames stay alive
    last = start
    for frame in container.decode(stream):
        _check_size(frame.width, frame.height)
        last = frame.time if frame.time is not None else last
        # Headers can lie about the duration; the frames themselves cannot.
        if last - start > max_seconds:
            raise VideoDecodeError(f"video too long: over {max_seconds:g} s")
        for k, target in enumerate(targets):
            if abs(last - target) < gaps[k]:
                gaps[k], chosen[k] = abs(last - target), frame
    if chosen[0] is None:
        raise VideoDecodeError("video has no frames")
    return [frame.to_image() for frame in chosen if frame is not None]  # rgb24: RGB images


def _check_size(width: int, height: int) -> None:
    if width > MAX_SIDE or height > MAX_SIDE:
        raise VideoDecodeError(f"video frames too large: {width}x{height} > {MAX_SIDE}")


def _time_range(
    container: av.container.InputContainer, stream: av.VideoStream
) -> tuple[float, float]:
    """(start, duration) in seconds: from the stream, else the container (WebM), else packets."""
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    if stream.duration is not None and stream.time_base is not None:
        return start, float(stream.duration * stream.time_base)
    if container.duration is not None:
        return start, container.duration / av.time_base
    # No header duration: demux (cheap, no decoding) for the last timestamp, then rewind.
    end = start
    for packet in container.demux(stream):
        if packet.pts is not None and packet.time_base is not None:
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    container.seek(0)
    return start, end - start


def make_clip(
    image: Image.Image,
    motion: str = "zoom",
    seconds: float = 2.0,
    fps: int = 8,
    size: int = 128,
    codec: str = "libx264",
) -> bytes:
    """A synthetic product clip from one still: MP4 (h264) or WebM for the libvpx codecs."""
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; use one of {', '.join(MOTIONS)}")
    size += size % 2  # yuv420p needs even dimensions
    count = max(1, round(seconds * fps))
    # Catalog shots are on white: pad to a white square like the image encoder does.
    still = image.convert("RGB")
    side = max(still.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(still, ((side - still.width) // 2, (side - still.height) // 2))
    square = square.resize((size, size), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    fmt = "webm" if codec in _WEBM_CODECS else "mp4"
    # bitexact: no random track UIDs or version strings, so the same input gives the same bytes.
    with av.open(buffer, mode="w", format=fmt, options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1  # threaded encoders may differ run to run
        stream.codec_context.flags |= av.codec.context.Flags.bitexact
        if codec == "libx264":
            # mbtree on a clip shorter than x264's lookahead gave different bytes run to run.
            stream.options = {"crf": "18", "preset": "veryfast", "x264-params": "mbtree=0"}
        for i in range(count):
            t = i / max(1, count - 1)  # 0 -> 1 over the clip
            frame = av.VideoFrame.from_image(_frame(square, motion, t, size))
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def _frame(square: Image.Image, motion: str, t: float, size: int) -> Image.Image:
    if motion == "zoom":  # centre crop shrinking to 75 %: a slow zoom-in
        crop = size * (1.0 - 0.25 * t)
        box = ((size - crop) / 2, (size - crop) / 2, (size + crop) / 2, (size + crop) / 2)
        return square.resize((size, size), Image.Resampling.BICUBIC, box=box)
    if motion == "pan":  # a window sliding left to right over a white canvas 1.5x as wide
        canvas = Image.new("RGB", (size * 3 // 2, size), (255, 255, 255))
        canvas.paste(square, (size // 4, 0))
        left = round(t * (canvas.width - size))
        return canvas.crop((left, 0, left + size, size))
    angle = 12.0 * math.sin(2 * math.pi * t)  # rotate: tilt one way, then the other, then back
    return square.rotate(angle, Image.Resampling.BICUBIC, fillcolor=(255, 255, 255))


def encode_video_frames(
    images_encoder: ImageEncoder, videos: Sequence[list[Image.Image]]
) -> tuple[np.ndarray, np.ndarray]:
    """(n, T, dim) float32 frame embeddings, zero-padded, and the (n, T) mask of real frames."""
    flat = [image for frames in videos for image in frames]
    vectors = images_encoder.encode(flat) if flat else np.zeros((0, images_encoder.dim))
    longest = max((len(frames) for frames in videos), default=0)
    out = np.zeros((len(videos), longest, images_encoder.dim), dtype=np.float32)
    mask = np.zeros((len(videos), longest), dtype=bool)
    offset = 0
    for row, frames in enumerate(videos):
        out[row, : len(frames)] = vectors[offset : offset + len(frames)]
        mask[row, : len(frames)] = True
        offset += len(frames)
    return out, mask


def product_videos(
    products: Sequence[Product], store: MediaStore, images_encoder: ImageEncoder, num_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n, num_frames, dim) frame vectors and their mask for products' videos; a product
    without a video, or whose video cannot be read or decoded, gets an all-False mask."""
    clips: list[list[Image.Image]] = []
    rows: list[int] = []
    for row, product in enumerate(products):
        data = store.read_bytes(product.video) if product.video else None
        if data is None:
            continue
        try:
            clips.append(sample_frames(data, num_frames))
            rows.append(row)
        except VideoDecodeError:
            continue
    video = np.zeros((len(products), num_frames, images_encoder.dim), np.float32)
    mask = np.zeros((len(products), num_frames), dtype=bool)
    if clips:
        vectors, real = encode_video_frames(images_encoder, clips)
        video[rows, : vectors.shape[1]] = vectors
        mask[rows, : real.shape[1]] = real
    return video, mask
