"""The CI regression gate: the smoke scenarios (eval/scenarios/ci) must all pass, run in
process with the real models on a slice of the bundled catalog (40 products per article,
plus the products the scenarios photograph). The full suite is a benchmark (docs)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from bijou.agent.agent import ShoppingAgent
from bijou.agent.llm import ChatModel
from bijou.agent.memory import SessionStore
from bijou.catalog.schema import Product
from bijou.config import BijouConfig
from bijou.eval.clients import InProcessClient
from bijou.eval.runs import run_scenarios
from bijou.eval.scenarios import load_scenarios
from bijou.fusion.encoders import Encoders
from bijou.retrieval.search import SearchEngine
from bijou.retrieval.shop import LocalShop

SMOKE = Path(__file__).parent.parent / "eval" / "scenarios" / "ci"
PER_ARTICLE = 40


@pytest.fixture(scope="module")
def client(
    bundled: list[Product],
    encoders: Encoders,
    chat_model: ChatModel,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[InProcessClient]:
    scenarios = load_scenarios(SMOKE)
    photographed = {t.catalog_image for s in scenarios for t in s.turns if t.catalog_image}
    taken: dict[str, int] = defaultdict(int)
    chosen = []
    for product in bundled:
        if product.id in photographed or taken[product.article] < PER_ARTICLE:
            taken[product.article] += 1
            chosen.append(product)
    folder = tmp_path_factory.mktemp("smoke")
    config = BijouConfig.model_validate({"data_dir": folder})  # the bundled catalog's images
    engine = SearchEngine.load(config, encoders)
    engine.sync(chosen)
    store = SessionStore(folder / "sessions.sqlite3")
    agent = ShoppingAgent(config, LocalShop.load(config, engine), store, chat_model)
    yield InProcessClient(agent)
    store.close()
    engine.index.close()


def test_smoke_scenarios_pass(client: InProcessClient) -> None:
    results = run_scenarios(load_scenarios(SMOKE), client, k=1)
    failures = [
        f"{scenario.id} turn {turn.number}: {[f'{c.name}: {c.detail}' for c in failed]}\n"
        f"  {turn.result.reply.text if turn.result.reply else ''}"
        for scenario in results.scenarios
        for run in scenario.runs
        for turn in run.turns
        if (failed := turn.failed_checks)
    ]
    assert not failures, "\n".join(failures)
