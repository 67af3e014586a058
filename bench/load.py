"""Load test of a running Bijou app over HTTP (loopback): concurrent chat sessions plus
search and voice requests for a fixed time.

    python bench/load.py [--url http://127.0.0.1:8000] [--chat 20] [--search 8] [--voice 1]
                         [--seconds 60] [--levels 1 5 20 50] [--json OUT]

Each chat worker is one shopper holding a session and sending the next message of a scripted
conversation as soon as the last reply ends; each search worker posts queries back to back;
each voice worker uploads a synthesized query (espeak-ng) in a loop. Reports per kind:
requests completed, throughput, p50/p95/p99 latency and errors (any non-2xx or broken stream),
and for chat the share of turns whose LLM text fell back to a template (the reply's
``fallback``: timed out, queued past ``llm.queue_timeout_s``, or failed the checks). With
``--levels`` the run is repeated per number of concurrent shoppers and a table printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bijou.metrics import percentile, read_queries

ROOT = Path(__file__).resolve().parent
DIALOGS = ROOT / "data" / "agent_dialogs.txt"
QUERIES = ROOT.parent / "eval" / "dev" / "queries.jsonl"
VOICE_TEXT = "show me silver earrings under two thousand rupees"


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_at: list[tuple[float, str]] = field(default_factory=list)  # wall-clock time, what
    examples: list[str] = field(default_factory=list)
    fallbacks: int = 0  # chat turns whose LLM text was replaced by a template

    def error(self, what: str) -> None:
        self.errors += 1
        self.error_at.append((round(time.time(), 3), what))
        if len(self.examples) < 5:
            self.examples.append(what)

    def report(self, seconds: float) -> dict[str, float | int | list[str]]:
        ok = self.latencies
        return {
            "completed": len(ok),
            "errors": self.errors,
            "per_s": round(len(ok) / seconds, 2),
            "p50_ms": round(percentile(ok, 0.5) * 1000, 1) if ok else 0.0,
            "p95_ms": round(percentile(ok, 0.95) * 1000, 1) if ok else 0.0,
            "p99_ms": round(percentile(ok, 0.99) * 1000, 1) if ok else 0.0,
            "fallback_share": round(self.fallbacks / len(ok), 3) if ok else 0.0,
            "error_examples": self.examples,
            "error_at": self.error_at,
        }


def conversations() -> list[list[str]]:
    blocks = DIALOGS.read_text(encoding="utf-8").split("\n\n")
    return [[ln for ln in b.splitlines() if ln.strip() and not ln.startswith("#")] for b in blocks]


async def chat_worker(
    client: httpx.AsyncClient, dialog: list[str], until: float, tally: Tally
) -> None:
    session = None
    turn = 0
    while time.monotonic() < until:
        message = dialog[turn % len(dialog)]
        if turn % len(dialog) == 0:
            session = None  # a new shopper after each conversation
        start = time.monotonic()
        try:
            async with client.stream(
                "POST", "/v1/chat", json={"session_id": session, "message": message}
            ) as response:
                if response.status_code != 200:
                    tally.error(f"chat {response.status_code}")
                    continue
                event, reply = "", None
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                        if event == "error":
                            tally.error("chat stream error event")
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                        session = session or data.get("session_id")
                        if event == "reply":
                            reply = data
                if reply is not None:
                    tally.latencies.append(time.monotonic() - start)
                    tally.fallbacks += bool(reply.get("fallback"))
                else:
                    tally.error("chat stream ended without a reply")
        except httpx.HTTPError as exc:
            tally.error(f"chat {type(exc).__name__}")
        turn += 1


async def search_worker(
    client: httpx.AsyncClient, texts: Sequence[str], until: float, tally: Tally, seed: int
) -> None:
    rng = random.Random(seed)
    while time.monotonic() < until:
        start = time.monotonic()
        try:
            response = await client.post("/v1/search", data={"text": rng.choice(texts)})
            if response.status_code == 200:
                tally.latencies.append(time.monotonic() - start)
            else:
                tally.error(f"search {response.status_code}")
        except httpx.HTTPError as exc:
            tally.error(f"search {type(exc).__name__}")


async def voice_worker(client: httpx.AsyncClient, audio: bytes, until: float, tally: Tally) -> None:
    while time.monotonic() < until:
        start = time.monotonic()
        try:
            files = {"audio": ("query.wav", audio, "audio/wav")}
            response = await client.post("/v1/voice", files=files, data={"language": "en"})
            if response.status_code == 200:
                tally.latencies.append(time.monotonic() - start)
            else:
                tally.error(f"voice {response.status_code}")
        except httpx.HTTPError as exc:
            tally.error(f"voice {type(exc).__name__}")


def synthesize(text: str) -> bytes:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise SystemExit("voice load needs espeak-ng (apt install espeak-ng) or --voice 0")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "q.wav"
        subprocess.run([espeak, "-v", "en-us+f3", "-s", "140", "-w", str(path), text], check=True)
        return path.read_bytes()


async def run(url: str, chats: int, searches: int, voices: int, seconds: float) -> dict:
    texts = [q.text for q in read_queries(QUERIES) if q.text]
    dialogs = conversations()
    audio = synthesize(VOICE_TEXT) if voices else b""
    tallies = {"chat": Tally(), "search": Tally(), "voice": Tally()}
    limits = httpx.Limits(max_connections=chats + searches + voices + 4)
    timeout = httpx.Timeout(120.0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        if (await client.get("/readyz")).status_code != 200:
            raise SystemExit(f"{url} is not ready")
        until = time.monotonic() + seconds
        start = time.monotonic()
        await asyncio.gather(
            *(
                chat_worker(client, dialogs[i % len(dialogs)], until, tallies["chat"])
                for i in range(chats)
            ),
            *(search_worker(client, texts, until, tallies["search"], i) for i in range(searches)),
            *(voice_worker(client, audio, until, tallies["voice"]) for _ in range(voices)),
        )
        elapsed = time.monotonic() - start
    return {
        "url": url,
        "seconds": round(elapsed, 1),
        "workers": {"chat": chats, "search": searches, "voice": voices},
        **{kind: tally.report(elapsed) for kind, tally in tallies.items()},
    }


def chat_table(reports: Sequence[dict]) -> str:
    """Chat turn latency and template share per number of concurrent shoppers."""
    lines = [
        "| concurrent shoppers | turns | turns/s | p50 | p95 | p99 | fell back | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in reports:
        c = r["chat"]
        lines.append(
            f"| {r['workers']['chat']} | {c['completed']} | {c['per_s']} | "
            f"{c['p50_ms'] / 1000:.2f} s | {c['p95_ms'] / 1000:.2f} s | "
            f"{c['p99_ms'] / 1000:.2f} s | {c['fallback_share']:.0%} | {c['errors']} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--chat", type=int, default=20, help="concurrent chat sessions")
    parser.add_argument(
        "--levels",
        type=int,
        nargs="+",
        default=None,
        help="run once per number of concurrent chat sessions (e.g. 1 5 20 50), in order",
    )
    parser.add_argument("--search", type=int, default=8, help="concurrent search clients")
    parser.add_argument("--voice", type=int, default=1, help="concurrent voice clients")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    levels = args.levels or [args.chat]
    reports = [
        asyncio.run(run(args.url, chats, args.search, args.voice, args.seconds)) for chats in levels
    ]
    report = reports[0] if args.levels is None else {"levels": reports}
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if args.levels is not None:
        print(chat_table(reports))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
