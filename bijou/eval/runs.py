"""Running scenarios and scoring them: a run's turns in order (`RunScorer`), k runs per
scenario, judging recorded runs again, the optional LLM judge, and the summary numbers
(pass^1 and pass^k as in tau-bench, rates pooled over turns)."""

from __future__ import annotations

import math
import statistics
import time
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from bijou.agent.agent import Reply
from bijou.catalog.schema import Product
from bijou.metrics import percentile

if typing.TYPE_CHECKING:
    from bijou.agent.llm import ChatModel

from bijou.eval.checks import CheckResult, FactCheck, _shown, check_turn, ground, said_numbers
from bijou.eval.clients import DialogClient, TurnResult, _error_text
from bijou.eval.scenarios import Scenario, Turn


# --- running ---------------------------------------------------------------------------------
class TurnRecord(BaseModel):
    number: int  # 1-based
    said: str
    result: TurnResult
    checks: list[CheckResult] = Field(default_factory=list)
    passed: bool = False
    constraint_satisfied: int = 0
    constraint_total: int = 0
    grounding: FactCheck = Field(default_factory=FactCheck)
    language_expected: str = "en"
    language_match: bool = False
    cross_sell_hit: bool | None = None
    judge: dict[str, int] | None = None

    @property
    def failed_checks(self) -> list[CheckResult]:
        failed = [c for c in self.checks if not c.passed]
        if self.result.error:
            failed.insert(0, CheckResult(name="request", passed=False, detail=self.result.error))
        return failed


class RunRecord(BaseModel):
    run: int  # 1-based
    session_id: str | None = None
    turns: list[TurnRecord]

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.turns)


class ScenarioRecord(BaseModel):
    id: str
    family: str
    language: str
    runs: list[RunRecord]

    @property
    def passes(self) -> int:
        return sum(r.passed for r in self.runs)


class EvalResults(BaseModel):
    target: str  # "in-process" or the shop's URL
    k: int
    started_at: float
    elapsed_s: float = 0.0
    scenarios: list[ScenarioRecord] = Field(default_factory=list)
    judge_model: str | None = None


def _score(
    scenario: Scenario,
    number: int,
    turn: Turn,
    result: TurnResult,
    client: DialogClient,
    previous: Reply | None,
    allowed: set[float],
    said: Sequence[str] = (),
    earlier: Sequence[str] = (),
) -> TurnRecord:
    expected = turn.expect.language or scenario.language
    record = TurnRecord(number=number, said=turn.said, result=result, language_expected=expected)
    if result.error or result.reply is None:
        record.result.error = result.error or "no reply"
        record.cross_sell_hit = False if turn.expect.cross_sell is not None else None
        return record
    reply = result.reply
    cache: dict[str, Product | None] = {}

    def lookup(pid: str) -> Product | None:
        if pid not in cache:
            cache[pid] = client.product(pid)
        return cache[pid]

    try:
        found = check_turn(
            turn.expect,
            reply,
            transcript=result.transcript,
            cart_before=result.cart_before,
            cart_after=result.cart_after,
            previous=previous,
            lookup=lookup,
            said=result.transcript or turn.user or "",
        )
        record.grounding = ground(reply, lookup, allowed, client.search, said, earlier)
    except Exception as exc:  # a catalog lookup that failed: the turn cannot be judged
        record.result.error = f"scoring failed: {_error_text(exc)}"
        return record
    record.checks = found.checks
    record.constraint_satisfied = found.constraint_satisfied
    record.constraint_total = found.constraint_total
    record.cross_sell_hit = found.cross_sell_hit
    record.language_match = reply.language == expected
    record.passed = all(c.passed for c in found.checks)
    return record


class RunScorer:
    """Scores one run's turns in order, carrying what later turns are judged against: the
    last list shown, the numbers the shopper said, the products shown so far."""

    def __init__(self, scenario: Scenario, client: DialogClient) -> None:
        self.scenario = scenario
        self.client = client
        self.previous: Reply | None = None
        self.allowed: set[float] = set()
        self.said: list[str] = []
        self.seen: list[str] = []  # product ids shown so far in this run

    def score(self, number: int, turn: Turn, result: TurnResult) -> TurnRecord:
        for words in (turn.user, result.transcript):
            if words:
                self.said.append(words)
                heard = said_numbers(words)
                self.allowed |= heard | {round(n * 0.8, 2) for n in heard}  # "cheaper"
        record = _score(
            self.scenario, number, turn, result, self.client, self.previous, self.allowed,
            self.said, self.seen,
        )  # fmt: skip
        if result.reply is not None:
            self.seen += [v.id for v in _shown(result.reply)]
        if result.reply is not None and result.reply.products:
            # "cheaper": one under the cheapest shown.
            self.allowed.add(round(min(p.price for p in result.reply.products) - 1, 2))
            # "The second one" points into the last list shown, which a reply without
            # products (an answer, a cart change) leaves in place.
            self.previous = result.reply
        return record


def run_scenario(scenario: Scenario, client: DialogClient, run: int) -> RunRecord:
    """One run of a scenario in a new session."""
    try:
        session: str | None = client.start()
        failure = None
    except Exception as exc:
        session, failure = None, f"could not start a session: {_error_text(exc)}"
    scorer = RunScorer(scenario, client)
    turns: list[TurnRecord] = []
    for number, turn in enumerate(scenario.turns, start=1):
        if session is None:
            result = TurnResult(error=failure)
        else:
            try:
                result = client.turn(session, turn, scenario.language)
            except Exception as exc:  # a client that raised anyway
                result = TurnResult(error=_error_text(exc))
        turns.append(scorer.score(number, turn, result))
    return RunRecord(run=run, session_id=session, turns=turns)


def rescore(results: EvalResults, scenarios: Sequence[Scenario], client: DialogClient) -> None:
    """Judges recorded replies again with today's checks, in place: a run made before a
    check changed is compared with a new one on equal terms, without replaying it."""
    by_id = {s.id: s for s in scenarios}
    for record in results.scenarios:
        scenario = by_id[record.id]
        for run in record.runs:
            scorer = RunScorer(scenario, client)
            run.turns = [
                scorer.score(t.number, scenario.turns[t.number - 1], _recorded(t.result))
                for t in run.turns
            ]


def recorded_results(summary: dict[str, Any]) -> EvalResults:
    """The runs of a written report.json, as results to judge again."""
    return EvalResults(
        target=summary["target"],
        k=summary["k"],
        started_at=summary["started_at"],
        elapsed_s=summary["elapsed_s"],
        scenarios=[
            ScenarioRecord(
                id=s["id"],
                family=s["family"],
                language=s["language"],
                runs=[
                    RunRecord(
                        run=r["run"],
                        session_id=r["session_id"],
                        turns=[TurnRecord.model_validate(t) for t in r["turns"]],
                    )
                    for r in s["runs"]
                ],
            )
            for s in summary["scenarios"]
        ],
    )


def _recorded(result: TurnResult) -> TurnResult:
    # A reply that failed scoring (not the request) is judged again from its reply.
    error = result.error if result.reply is None else None
    return result.model_copy(update={"error": error})


def run_scenarios(
    scenarios: Sequence[Scenario],
    client: DialogClient,
    k: int = 3,
    *,
    progress: Callable[[str], None] | None = None,
) -> EvalResults:
    """Every scenario ``k`` times, each run in its own session."""
    if k < 1:
        raise ValueError("k must be at least 1")
    results = EvalResults(target=client.name, k=k, started_at=time.time())
    start = time.perf_counter()
    for scenario in scenarios:
        runs = []
        for run in range(1, k + 1):
            record = run_scenario(scenario, client, run)
            runs.append(record)
            if progress is not None:
                mark = "pass" if record.passed else "FAIL"
                progress(f"{scenario.id} run {run}/{k}: {mark}")
        results.scenarios.append(
            ScenarioRecord(
                id=scenario.id, family=scenario.family, language=scenario.language, runs=runs
            )
        )
    results.elapsed_s = time.perf_counter() - start
    return results


# --- the LLM judge ---------------------------------------------------------------------------
_SCORE = {"type": "integer", "enum": [1, 2, 3, 4, 5]}
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"helpfulness": _SCORE, "clarity": _SCORE},
    "required": ["helpfulness", "clarity"],
}
JUDGE_PROMPT = (
    "You grade a jewelry shop assistant's reply to a shopper. Give two scores from 1 (poor) "
    "to 5 (excellent): helpfulness (does it answer what the shopper asked, with suitable "
    "products or a clear next step) and clarity (is it easy to read and unambiguous). "
    'Answer with JSON only, like {"helpfulness": 4, "clarity": 5}.'
)


def judge_results(
    results: EvalResults, model: ChatModel, *, timeout_s: float | None = None
) -> None:
    """Scores every answered turn with the LLM (soft scores, reported apart from the checks);
    a turn the judge fails on is left unscored."""
    from bijou.agent.llm import ChatMessage

    results.judge_model = getattr(model, "name", type(model).__name__)
    for scenario in results.scenarios:
        for run in scenario.runs:
            for turn in run.turns:
                reply = turn.result.reply
                if reply is None:
                    continue
                shopper = turn.result.transcript or turn.said
                messages = [
                    ChatMessage("system", JUDGE_PROMPT),
                    ChatMessage("user", f"Shopper: {shopper}\nAssistant: {reply.text}"),
                ]
                try:
                    score = model.complete_json(
                        messages, JUDGE_SCHEMA, max_tokens=30, timeout_s=timeout_s
                    )
                    turn.judge = {key: int(score[key]) for key in ("helpfulness", "clarity")}
                except Exception:
                    turn.judge = None


# --- metrics ---------------------------------------------------------------------------------
def pass_hat(successes: int, trials: int, k: int) -> float:
    """tau-bench's pass^k for one task: the chance that k of its trials, drawn without
    replacement, all passed."""
    if not 0 < k <= trials:
        raise ValueError(f"k={k} must be in 1..{trials}")
    return math.comb(successes, k) / math.comb(trials, k)


def pass_rates(outcomes: Sequence[Sequence[bool]]) -> tuple[float | None, float | None]:
    """(pass^1, pass^k) over scenarios, each a list of its runs' outcomes: pass^1 is the mean
    share of passed runs, pass^k the share of scenarios whose every run passed."""
    if not outcomes:
        return None, None
    ones = [pass_hat(sum(o), len(o), 1) for o in outcomes]
    alls = [pass_hat(sum(o), len(o), len(o)) for o in outcomes]
    return statistics.fmean(ones), statistics.fmean(alls)


def _rate(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def turn_metrics(turns: Sequence[TurnRecord]) -> dict[str, Any]:
    """The pooled turn-level numbers of any set of turns."""
    first = [t.result.first_token_s for t in turns if t.result.first_token_s is not None]
    total = [t.result.total_s for t in turns if t.result.reply is not None]
    facts = sum(t.grounding.facts for t in turns)
    cross = [t.cross_sell_hit for t in turns if t.cross_sell_hit is not None]
    return {
        "turns": len(turns),
        "turns_passed": sum(t.passed for t in turns),
        "errors": sum(t.result.error is not None for t in turns),
        "constraint_satisfaction": _round(
            _rate(
                sum(t.constraint_satisfied for t in turns), sum(t.constraint_total for t in turns)
            )
        ),
        "constraint_checks": sum(t.constraint_total for t in turns),
        "groundedness": _round(_rate(sum(t.grounding.matching for t in turns), facts)),
        "facts": facts,
        "invented_count": sum(t.grounding.invented for t in turns),
        "cross_sell_hit_rate": _round(_rate(sum(cross), len(cross))),
        "cross_sell_turns": len(cross),
        "language_match": _round(_rate(sum(t.language_match for t in turns), len(turns))),
        "first_token_p50_s": _round(percentile(first, 0.5)),
        "first_token_p95_s": _round(percentile(first, 0.95)),
        "turn_p50_s": _round(percentile(total, 0.5)),
        "turn_p95_s": _round(percentile(total, 0.95)),
    }


def _check_rates(turns: Iterable[TurnRecord]) -> dict[str, dict[str, Any]]:
    counts: dict[str, list[int]] = {}
    for turn in turns:
        for check in turn.checks:
            tally = counts.setdefault(check.name, [0, 0])
            tally[0] += check.passed
            tally[1] += 1
    return {
        name: {"passed": ok, "total": n, "rate": _round(ok / n)}
        for name, (ok, n) in sorted(counts.items())
    }


def _judge_summary(turns: Sequence[TurnRecord], model: str | None) -> dict[str, Any] | None:
    if model is None:
        return None
    scored = [t.judge for t in turns if t.judge]
    answered = sum(t.result.reply is not None for t in turns)
    return {
        "model": model,
        "helpfulness": _round(_rate(sum(s["helpfulness"] for s in scored), len(scored))),
        "clarity": _round(_rate(sum(s["clarity"] for s in scored), len(scored))),
        "judged": len(scored),
        "failed": answered - len(scored),
    }


def _all_turns(scenarios: Iterable[ScenarioRecord]) -> list[TurnRecord]:
    return [t for s in scenarios for r in s.runs for t in r.turns]


def summarize(results: EvalResults) -> dict[str, Any]:
    """Every number of the evaluation: the overall ones at the top level, then per family,
    per scenario, per turn (across runs) and every run's turns in full."""
    outcomes = [[r.passed for r in s.runs] for s in results.scenarios]
    pass_1, pass_k = pass_rates(outcomes)
    turns = _all_turns(results.scenarios)
    families: dict[str, list[ScenarioRecord]] = {}
    for scenario in results.scenarios:
        families.setdefault(scenario.family, []).append(scenario)
    family_rows = {}
    for family, members in sorted(families.items()):
        f1, fk = pass_rates([[r.passed for r in s.runs] for s in members])
        family_rows[family] = {
            "scenarios": len(members),
            "pass_1": _round(f1),
            "pass_k": _round(fk),
            **turn_metrics(_all_turns(members)),
        }
    return {
        "target": results.target,
        "k": results.k,
        "started_at": results.started_at,
        "elapsed_s": _round(results.elapsed_s, 2),
        "scenarios_count": len(results.scenarios),
        "pass_1": _round(pass_1),
        "pass_k": _round(pass_k),
        **turn_metrics(turns),
        "checks": _check_rates(turns),
        "judge": _judge_summary(turns, results.judge_model),
        "families": family_rows,
        "scenarios": [_scenario_summary(s, results.judge_model) for s in results.scenarios],
    }


def _scenario_summary(scenario: ScenarioRecord, judge_model: str | None) -> dict[str, Any]:
    f1, fk = pass_rates([[r.passed for r in scenario.runs]])
    turns = _all_turns([scenario])
    by_number: dict[int, list[TurnRecord]] = {}
    for turn in turns:
        by_number.setdefault(turn.number, []).append(turn)
    return {
        "id": scenario.id,
        "family": scenario.family,
        "language": scenario.language,
        "runs_passed": scenario.passes,
        "runs_count": len(scenario.runs),
        "pass_1": _round(f1),
        "pass_k": _round(fk),
        **turn_metrics(turns),
        "judge": _judge_summary(turns, judge_model),
        "turns": [
            {
                "number": number,
                "said": group[0].said,
                "pass_rate": _round(sum(t.passed for t in group) / len(group)),
                "checks": _check_rates(group),
                **turn_metrics(group),
            }
            for number, group in sorted(by_number.items())
        ],
        "runs": [
            {
                "run": run.run,
                "session_id": run.session_id,
                "passed": run.passed,
                "turns": [t.model_dump(mode="json") for t in run.turns],
            }
            for run in scenario.runs
        ],
    }
