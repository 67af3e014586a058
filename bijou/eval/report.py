"""The dialog evaluation's reports: ``report.json`` (every number, see
`bijou.eval.runs.summarize`), ``report.md`` (tables and failures) and ``report.html`` (the
same with plots — pass rate per scenario family, latency histograms — embedded as PNG, and each
failed run with its checks and full transcript)."""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bijou.eval.runs import EvalResults, RunRecord, ScenarioRecord, TurnRecord, summarize

HEADLINE = (
    ("pass_1", "pass^1"),
    ("pass_k", "pass^k"),
    ("constraint_satisfaction", "constraint satisfaction"),
    ("groundedness", "groundedness"),
    ("invented_count", "invented facts"),
    ("cross_sell_hit_rate", "cross-sell hit rate"),
    ("language_match", "language match"),
    ("first_token_p50_s", "first token p50 (s)"),
    ("first_token_p95_s", "first token p95 (s)"),
    ("turn_p50_s", "turn p50 (s)"),
    ("turn_p95_s", "turn p95 (s)"),
    ("errors", "failed requests"),
)
SCENARIO_COLUMNS = (
    ("runs", "runs passed"),
    ("pass_1", "pass^1"),
    ("constraint_satisfaction", "constraints"),
    ("groundedness", "grounded"),
    ("invented_count", "invented"),
    ("language_match", "language"),
    ("first_token_p50_s", "first token p50 s"),
    ("turn_p95_s", "turn p95 s"),
)


def write_reports(results: EvalResults, out_dir: Path) -> dict[str, Path]:
    """Writes report.json, report.md and report.html under ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(results)
    paths = {
        "json": out_dir / "report.json",
        "md": out_dir / "report.md",
        "html": out_dir / "report.html",
    }
    paths["json"].write_text(
        json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    failures = _failures(results)
    paths["md"].write_text(markdown(summary, failures), encoding="utf-8")
    paths["html"].write_text(html_report(summary, results, failures), encoding="utf-8")
    return paths


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _failures(results: EvalResults) -> list[tuple[ScenarioRecord, RunRecord]]:
    return [(s, r) for s in results.scenarios for r in s.runs if not r.passed]


def _scenario_cell(row: dict[str, Any], key: str) -> str:
    if key == "runs":
        return f"{row['runs_passed']}/{row['runs_count']}"
    return _fmt(row.get(key))


def _reply_lines(turn: TurnRecord) -> list[str]:
    """The shopper's turn and the reply, as transcript lines."""
    lines = [f"shopper: {turn.said}"]
    if turn.result.transcript is not None:
        lines.append(f"heard: {turn.result.transcript}")
    reply = turn.result.reply
    if reply is None:
        lines.append(f"error: {turn.result.error}")
        return lines
    lines.append("bijou: " + reply.text.replace("\n", "\n       "))
    for label, views in (("picks", reply.products), ("cross-sell", reply.cross_sell)):
        if views:
            shown = "; ".join(
                f"{p.id} {p.title} ({p.article}, {p.colour}, {p.price:g})" for p in views
            )
            lines.append(f"  {label}: {shown}")
    if reply.relaxed:
        lines.append(f"  relaxed: {', '.join(reply.relaxed)}")
    return lines


def _failed_lines(turn: TurnRecord) -> list[str]:
    return [f"{c.name}: {c.detail}" if c.detail else c.name for c in turn.failed_checks]


# --- markdown --------------------------------------------------------------------------------
def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    return [row(header), row(["---"] * len(header)), *(row(r) for r in rows)]


def markdown(summary: dict[str, Any], failures: Sequence[tuple[ScenarioRecord, RunRecord]]) -> str:
    when = datetime.datetime.fromtimestamp(summary["started_at"], datetime.UTC)
    lines = [
        "# Bijou dialog evaluation",
        "",
        f"Target: {summary['target']}; {summary['scenarios_count']} scenarios, "
        f"k = {summary['k']} runs each, {summary['turns']} turns in all; "
        f"started {when:%Y-%m-%d %H:%M} UTC, took {summary['elapsed_s']} s.",
        "",
        "## Summary",
        "",
        *_md_table(["metric", "value"], [[label, _fmt(summary[k])] for k, label in HEADLINE]),
        "",
    ]
    judge = summary.get("judge")
    if judge:
        lines += [
            f"## LLM judge ({judge['model']}; soft scores, 1-5, apart from the checks)",
            "",
            *_md_table(
                ["helpfulness", "clarity", "turns judged", "judge failed"],
                [[_fmt(judge[k]) for k in ("helpfulness", "clarity", "judged", "failed")]],
            ),
            "",
        ]
    lines += [
        "## Families",
        "",
        *_md_table(
            ["family", "scenarios", "pass^1", "pass^k", "constraints", "grounded"],
            [
                [family, str(row["scenarios"])]
                + [
                    _fmt(row[k])
                    for k in ("pass_1", "pass_k", "constraint_satisfaction", "groundedness")
                ]
                for family, row in summary["families"].items()
            ],
        ),
        "",
        "## Scenarios",
        "",
        *_md_table(
            ["scenario", *(label for _, label in SCENARIO_COLUMNS)],
            [
                [row["id"], *(_scenario_cell(row, k) for k, _ in SCENARIO_COLUMNS)]
                for row in summary["scenarios"]
            ],
        ),
        "",
        "## Checks",
        "",
        *_md_table(
            ["check", "passed", "of", "rate"],
            [
                [name, str(c["passed"]), str(c["total"]), _fmt(c["rate"])]
                for name, c in summary["checks"].items()
            ],
        ),
        "",
        f"## Failures ({len(failures)} runs)",
        "",
    ]
    if not failures:
        lines.append("None.")
    for scenario, run in failures:
        lines += [f"### {scenario.id}, run {run.run}", ""]
        for turn in run.turns:
            if not turn.passed:
                lines.append(f"- turn {turn.number}: " + "; ".join(_failed_lines(turn)))
        lines += ["", "```text"]
        for turn in run.turns:
            lines += [f"[turn {turn.number}]", *_reply_lines(turn)]
        lines += ["```", ""]
    return "\n".join(lines).rstrip() + "\n"


# --- plots -----------------------------------------------------------------------------------
def _png(fig: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def family_plot(families: dict[str, dict[str, Any]]) -> str:
    """Pass^1 and pass^k per family, as a base64 PNG."""
    from matplotlib.figure import Figure

    names = list(families)
    fig = Figure(figsize=(max(4.0, 1.2 * len(names) + 2), 3.2))
    ax = fig.add_subplot()
    xs = range(len(names))
    width = 0.38
    ones = [families[n]["pass_1"] or 0.0 for n in names]
    alls = [families[n]["pass_k"] or 0.0 for n in names]
    for shift, values, label, colour in (
        (-1, ones, "pass^1", "#4c72b0"),
        (1, alls, "pass^k", "#dd8452"),
    ):
        bars = ax.bar([x + shift * width / 2 for x in xs], values, width, label=label, color=colour)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(list(xs), names)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("pass rate")
    ax.set_title("Pass rate per scenario family")
    ax.legend(loc="lower right")
    return _png(fig)


def latency_plot(first_token: Sequence[float], total: Sequence[float]) -> str:
    """Histograms of first-token and whole-turn latency, as a base64 PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.2))
    ax = fig.add_subplot()
    values = [*first_token, *total]
    top = max(values) if values else 1.0
    bins = [top * i / 20 for i in range(21)] if top > 0 else 10
    if first_token:
        ax.hist(first_token, bins=bins, alpha=0.6, label="first token", color="#4c72b0")
    if total:
        ax.hist(total, bins=bins, alpha=0.6, label="whole turn", color="#dd8452")
    ax.set_xlabel("seconds")
    ax.set_ylabel("turns")
    ax.set_title("Latency")
    if values:
        ax.legend()
    return _png(fig)


# --- HTML ------------------------------------------------------------------------------------
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3} .fail{color:#b00020} .pass{color:#11772d}
pre{background:#f7f7f7;padding:.8em;white-space:pre-wrap;border:1px solid #e3e3e3}
img{max-width:100%} .plots{display:flex;flex-wrap:wrap;gap:1em}
"""


def _h(value: Any) -> str:
    return html.escape(_fmt(value) if not isinstance(value, str) else value)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def html_report(
    summary: dict[str, Any],
    results: EvalResults,
    failures: Sequence[tuple[ScenarioRecord, RunRecord]],
) -> str:
    turns = [t for s in results.scenarios for r in s.runs for t in r.turns]
    first = [t.result.first_token_s for t in turns if t.result.first_token_s is not None]
    total = [t.result.total_s for t in turns if t.result.reply is not None]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>Bijou dialog evaluation</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Bijou dialog evaluation</h1>",
        f"<p>Target: {_h(summary['target'])}; {_h(summary['scenarios_count'])} scenarios, "
        f"k = {_h(summary['k'])} runs each, {_h(summary['turns'])} turns in all; "
        f"took {_h(summary['elapsed_s'])} s.</p>",
        "<h2>Summary</h2>",
        _html_table(["metric", "value"], [[label, _fmt(summary[k])] for k, label in HEADLINE]),
    ]
    judge = summary.get("judge")
    if judge:
        parts += [
            f"<h2>LLM judge ({_h(judge['model'])})</h2>",
            "<p>Soft scores from 1 to 5, reported apart from the hard checks.</p>",
            _html_table(
                ["helpfulness", "clarity", "turns judged", "judge failed"],
                [[_fmt(judge[k]) for k in ("helpfulness", "clarity", "judged", "failed")]],
            ),
        ]
    parts += [
        "<h2>Plots</h2><div class='plots'>",
        f"<img alt='pass rate per family' src='data:image/png;base64,"
        f"{family_plot(summary['families'])}'>",
        f"<img alt='latency histogram' src='data:image/png;base64,{latency_plot(first, total)}'>",
        "</div>",
        "<h2>Scenarios</h2>",
        _html_table(
            ["scenario", "family", *(label for _, label in SCENARIO_COLUMNS)],
            [
                [row["id"], row["family"], *(_scenario_cell(row, k) for k, _ in SCENARIO_COLUMNS)]
                for row in summary["scenarios"]
            ],
        ),
        "<h2>Checks</h2>",
        _html_table(
            ["check", "passed", "of", "rate"],
            [
                [name, str(c["passed"]), str(c["total"]), _fmt(c["rate"])]
                for name, c in summary["checks"].items()
            ],
        ),
        f"<h2>Failures ({len(failures)} runs)</h2>",
    ]
    if not failures:
        parts.append("<p class='pass'>None.</p>")
    for scenario, run in failures:
        parts.append(f"<h3 class='fail'>{html.escape(scenario.id)}, run {run.run}</h3><ul>")
        for turn in run.turns:
            if not turn.passed:
                checks = "; ".join(_failed_lines(turn))
                parts.append(f"<li>turn {turn.number}: {html.escape(checks)}</li>")
        transcript = "\n".join(
            line for turn in run.turns for line in [f"[turn {turn.number}]", *_reply_lines(turn)]
        )
        parts.append(f"</ul><pre>{html.escape(transcript)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
