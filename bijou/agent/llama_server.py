"""llama.cpp's own server as a child process: one copy of the model whose parallel slots are
decoded together (continuous batching), so concurrent shoppers share the weights and each
decode step serves every slot at once, instead of queueing for whole replies.

llama-cpp-python does not ship the server binary; ``scripts/build_llama_server.sh`` builds
it from the same llama.cpp sources that package vendors. The chat itself goes through
``OpenAIChatModel``: this module only starts, watches and stops the process."""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from bijou.modelfiles import ModelFileError

PR_SET_PDEATHSIG = 1  # linux/prctl.h


class LlamaServerError(RuntimeError):
    """The server binary is missing, or it did not come up."""


@dataclass(frozen=True)
class LlamaServerOptions:
    binary: Path
    model: Path
    alias: str
    slots: int
    threads: int
    context_per_slot: int
    seed: int
    log_path: Path
    host: str = "127.0.0.1"
    start_timeout_s: float = 180.0

    def command(self, port: int) -> list[str]:
        return [
            str(self.binary),
            "--model", str(self.model),
            "--alias", self.alias,
            "--host", self.host,
            "--port", str(port),
            "--parallel", str(self.slots),
            # The context is shared by the slots: each gets context_per_slot tokens.
            "--ctx-size", str(self.context_per_slot * self.slots),
            "--cont-batching",
            "--threads", str(self.threads),
            "--threads-batch", str(self.threads),
            "--seed", str(self.seed),
            "--no-webui",
        ]  # fmt: skip


def find_binary(configured: Path | None, data_dir: Path) -> Path:
    """The configured binary, else ``llama-server`` on PATH, else ``<data_dir>/bin``."""
    candidates = [configured] if configured is not None else []
    if configured is None:
        on_path = shutil.which("llama-server")
        candidates += [Path(on_path)] if on_path else []
        candidates.append(data_dir / "bin" / "llama-server")
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in candidates) or "PATH"
    raise ModelFileError(
        f"llama-server not found (looked at {looked}): build it with "
        "scripts/build_llama_server.sh or set llm.server_binary"
    )


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: the kernel sends SIGTERM when the parent dies, even by SIGKILL (a Serve
    replica killed), so no orphaned server keeps the cores and the memory."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LlamaServer:
    """A running llama-server; ``base_url`` is its OpenAI API. Stopped by ``close()``, when
    collected, at interpreter exit, or by the kernel when this process dies."""

    def __init__(self, options: LlamaServerOptions) -> None:
        import httpx

        self.options = options
        port = _free_port(options.host)
        self.base_url = f"http://{options.host}:{port}/v1"
        options.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(options.log_path, "ab") as log:
            self.process = subprocess.Popen(
                options.command(port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # only prctl: safe in a forked child
            )
        self._finalizer = weakref.finalize(self, _stop, self.process)
        deadline = time.monotonic() + options.start_timeout_s
        health = f"http://{options.host}:{port}/health"
        while True:
            if self.process.poll() is not None:
                self.close()
                raise LlamaServerError(
                    f"llama-server exited with {self.process.returncode} while starting: "
                    f"{self._log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                # 503 while the model loads, 200 once the slots are ready.
                if httpx.get(health, timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                self.close()
                raise LlamaServerError(
                    f"llama-server was not ready within {options.start_timeout_s:.0f} s: "
                    f"{self._log_tail()}"
                )
            time.sleep(0.25)

    def _log_tail(self, lines: int = 8) -> str:
        with contextlib.suppress(OSError):
            text = self.options.log_path.read_text(errors="replace").strip().splitlines()
            return " | ".join(text[-lines:]) + f" (log: {self.options.log_path})"
        return f"see {self.options.log_path}"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        self._finalizer()
