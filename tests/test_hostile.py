"""The hostile corpus (tests/data/hostile) against the real in-process app: every case gets a
clean 4xx or a safe answer, never a 5xx, and the app keeps serving. bench/hostile.py
replays the same cases against a running server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bijou.eval.hostile import Case, Replayer, load_cases, summary, write_files

CORPUS = Path(__file__).parent / "data" / "hostile"
CASES = load_cases(CORPUS)


@pytest.fixture(scope="module")
def replayer(
    app_client: TestClient, admin_headers: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Replayer:
    folder = tmp_path_factory.mktemp("hostile")
    write_files(folder)
    return Replayer(app_client, folder, admin_headers["X-API-Key"])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_case(replayer: Replayer, case: Case) -> None:
    outcome = replayer.one(case)
    assert outcome.ok, outcome.problems


def test_the_corpus_covers_every_family() -> None:
    families = {case.family for case in CASES}
    assert families >= {"image", "audio", "json", "session", "upsert", "injection"}
    assert sum(case.expect == "refused" for case in CASES) >= 25


def test_summary_counts_refusals_and_server_errors(replayer: Replayer) -> None:
    chosen = [c for c in CASES if c.family in ("session", "upsert")]
    result = summary(replayer.run(chosen))
    assert result["cases"] == len(chosen)
    assert result["server_errors"] == 0 and result["clean_4xx_share"] == 1.0, result["failed"]


def test_a_10000_turn_session_still_answers_and_stays_bounded(app_client: TestClient) -> None:
    backend = app_client.app.state.backend
    store = backend.agent.store
    session = app_client.post("/v1/sessions", json={}).json()["session_id"]
    for n in range(10_000):
        store.append_turn(session, "user" if n % 2 == 0 else "assistant", f"turn {n}: rings")
    assert len(store.history(session)) == store.max_turns
    start = time.monotonic()
    answer = app_client.post("/v1/chat", json={"session_id": session, "message": "gold rings"})
    assert answer.status_code == 200
    blocks = [b for b in answer.text.split("\n\n") if b.startswith("event: reply")]
    assert json.loads(blocks[0].split("data: ", 1)[1])["session_id"] == session
    assert time.monotonic() - start < 120  # a bound, not a benchmark: no 10,000-turn replay
    assert len(store.history(session)) == store.max_turns
