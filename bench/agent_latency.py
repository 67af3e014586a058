"""Chat-turn latency, LLM speed and memory of the shopping agent on the configured index.

    python bench/agent_latency.py [--config C] [--dialogs D] [-r 3] [--json OUT]

Replays scripted conversations (bench/data/agent_dialogs.txt) through `ShoppingAgent.stream`,
each in a fresh session, `--repeats` times after one unmeasured warm-up conversation. Per turn:
the first text the shopper sees, the LLM's first token (turns where the LLM writes), and the
whole turn. Tokens per second is pieces streamed by the LLM over the time spent streaming
them, prompt reading excluded. The report is the median over runs of each run's p50 and p95.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from search_latency import rss_mb

from bijou.agent.agent import ReplyDone, ShoppingAgent, TextDelta
from bijou.agent.llm import ChatMessage, ChatModel, LLMTimeout
from bijou.config import BijouConfig, load_config
from bijou.metrics import percentile

DIALOGS = Path(__file__).resolve().parent / "data" / "agent_dialogs.txt"


@dataclass
class TimedModel:
    """Wraps the chat model to time its calls: (first piece, pieces, streaming seconds)."""

    model: ChatModel
    calls: list[tuple[float, int, float]] = field(default_factory=list)
    started: float = 0.0
    timeouts: int = 0  # calls of this turn that ran past their deadline (queue included)

    @property
    def name(self) -> str:
        return self.model.name

    def stream(self, messages: Sequence[ChatMessage], **kwargs: object) -> Iterator[str]:
        first, pieces = None, 0
        try:
            for piece in self.model.stream(messages, **kwargs):
                first = first if first is not None else time.perf_counter()
                pieces += 1
                yield piece
        except LLMTimeout:
            self.timeouts += 1
            raise
        finally:
            if first is not None:
                self.calls.append((first - self.started, pieces, time.perf_counter() - first))

    def complete_json(self, messages: Sequence[ChatMessage], schema: dict, **kwargs: object):
        return self.model.complete_json(messages, schema, **kwargs)


@dataclass(frozen=True)
class Run:
    turns: int
    first_text_p50_s: float
    first_text_p95_s: float
    llm_first_token_p50_s: float
    llm_first_token_p95_s: float
    turn_p50_s: float
    turn_p95_s: float
    tokens_per_s: float
    fallbacks: int
    # Why: the LLM ran past its deadline, or the verifier dropped every sentence it wrote.
    fallbacks_timed_out: int
    fallbacks_rejected: int


def read_dialogs(path: Path) -> list[list[str]]:
    dialogs, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        if line.strip():
            current.append(line.strip())
        elif current:
            dialogs.append(current)
            current = []
    return dialogs + ([current] if current else [])


def replay(agent: ShoppingAgent, timed: TimedModel, dialogs: list[list[str]]) -> Run:
    first_text, llm_first, turns, tokens, streaming = [], [], [], 0, 0.0
    fallbacks = timed_out = rejected = 0
    for dialog in dialogs:
        session = agent.start_session()
        for message in dialog:
            timed.calls.clear()
            timed.timeouts = 0
            timed.started = start = time.perf_counter()
            first = None
            for event in agent.stream(session, message):
                if isinstance(event, TextDelta) and first is None:
                    first = time.perf_counter() - start
                if isinstance(event, ReplyDone) and event.reply.fallback:
                    fallbacks += 1
                    timed_out += timed.timeouts > 0
                    rejected += timed.timeouts == 0 and event.reply.repaired > 0
            turns.append(time.perf_counter() - start)
            first_text.append(first if first is not None else turns[-1])
            # Routing calls (JSON) count toward tokens/s too; the first streamed call of a
            # turn that writes text is what the shopper waits for.
            if timed.calls:
                llm_first.append(timed.calls[-1][0])
            tokens += sum(n for _, n, _ in timed.calls)
            streaming += sum(s for _, _, s in timed.calls)
    return Run(
        len(turns),
        percentile(first_text, 0.5),
        percentile(first_text, 0.95),
        percentile(llm_first, 0.5) if llm_first else 0.0,
        percentile(llm_first, 0.95) if llm_first else 0.0,
        percentile(turns, 0.5),
        percentile(turns, 0.95),
        tokens / streaming if streaming else 0.0,
        fallbacks,
        timed_out,
        rejected,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=None, help="default: $BIJOU_CONFIG")
    parser.add_argument("--dialogs", type=Path, default=DIALOGS)
    parser.add_argument("-r", "--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    dialogs = read_dialogs(args.dialogs)
    with tempfile.TemporaryDirectory() as scratch:
        # Sessions go to a scratch database, not the shop's.
        config = config.model_copy(
            update={
                "memory": config.memory.model_validate({"path": Path(scratch) / "bench.sqlite3"})
            }
        )
        start = time.perf_counter()
        agent = ShoppingAgent.load(config)
        load_s = time.perf_counter() - start
        timed = TimedModel(agent.llm)
        agent.llm = timed
        replay(agent, timed, dialogs[:1])  # warm-up
        runs = [replay(agent, timed, dialogs) for _ in range(args.repeats)]
        agent.close()
    peak, current = rss_mb()
    median = {k: statistics.median(getattr(r, k) for r in runs) for k in asdict(runs[0])}
    report = {
        "load_s": load_s,
        "model": timed.name,
        "threads": _threads(config),
        **median,
        "peak_rss_mb": peak,
        "current_rss_mb": current,
    }
    for key, value in report.items():
        print(f"| {key} | {value:.3f} |" if isinstance(value, float) else f"| {key} | {value} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def _threads(config: BijouConfig) -> int:
    return config.llm.threads or config.threads


if __name__ == "__main__":
    main()
