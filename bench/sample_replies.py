"""Sample replies for a reader to judge the prose: scripted conversations replayed through the
agent, each in a fresh session, written as Markdown (what the shopper said, the reply's text
exactly as the chat shows it, the picks, suggestions and bundle, and whether the LLM's
sentence was kept or replaced by the template).

    python bench/sample_replies.py [--config C] [--dialogs D] [--out docs/sample-replies.md]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agent_latency import read_dialogs

from bijou.agent.agent import Reply, ShoppingAgent
from bijou.config import load_config
from bijou.retrieval.search import SearchEngine

DIALOGS = Path(__file__).resolve().parent / "data" / "sample_dialogs.txt"


def render(reply: Reply) -> list[str]:
    source = "template" if reply.fallback else "LLM"
    lines = [f"**Bijou** ({reply.move}; lead sentence by the {source}, {reply.total_s:.1f} s):", ""]
    lines += [f"> {line}" if line else ">" for line in reply.text.splitlines()]
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=None, help="default: $BIJOU_CONFIG")
    parser.add_argument("--dialogs", type=Path, default=DIALOGS)
    parser.add_argument("--out", type=Path, default=Path("docs/sample-replies.md"))
    args = parser.parse_args()
    config = load_config(args.config)
    agent = ShoppingAgent.load(config, SearchEngine.load(config))
    heading = (
        f"`python bench/sample_replies.py`: LLM `{config.llm.model}`, lead sentence deadline"
        f" {config.agent.lead_timeout_s:g} s, LLM deadline {config.llm.timeout_s:g} s."
    )
    out = ["# Sample replies", "", heading, ""]
    try:
        for number, dialog in enumerate(read_dialogs(args.dialogs), start=1):
            out += [f"## Conversation {number}", ""]
            session = agent.start_session()
            for message in dialog:
                out += [f"**Shopper:** {message}", ""]
                out += render(agent.reply(session, message, None))
    finally:
        agent.close()
    args.out.write_text("\n".join(out), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
