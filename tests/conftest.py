"""Shared fixtures: the real offline encoders (loaded once) and a small slice of the bundled
catalog, with its images, that every index and search test builds on."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import threading
import time
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bijou.agent.agent import ShoppingAgent
from bijou.agent.llm import ChatModel, load_chat_model
from bijou.agent.memory import SessionStore
from bijou.catalog.loader import BUNDLED_IMAGES, load_catalog
from bijou.catalog.schema import Product
from bijou.config import BijouConfig, RateLimitConfig
from bijou.fusion.encoders import Encoders, load_encoders
from bijou.retrieval.complements import ComplementFinder, PairingTable
from bijou.retrieval.search import SearchEngine
from bijou.retrieval.shop import LocalShop
from bijou.serve.api import create_app
from bijou.serve.local import LocalBackend
from bijou.serve.speech import SpeechToText

PER_ARTICLE = 8


@pytest.fixture(scope="session")
def needs_service() -> Callable[[bool, str], None]:
    """``needs_service(available, what)``: skips the test where a real service (Chromium,
    espeak-ng, PostgreSQL, llama-server) is missing, but fails it where the environment sets
    BIJOU_REQUIRE_SERVICES=1, as CI does: there a skip would hide a broken install."""
    required = os.environ.get("BIJOU_REQUIRE_SERVICES") == "1"

    def check(available: bool, what: str) -> None:
        if available:
            return
        if required:
            pytest.fail(f"{what} (required: BIJOU_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(what)

    return check


@pytest.fixture(scope="session")
def espeak(needs_service) -> str:
    """espeak-ng, which synthesizes the spoken queries of the voice tests."""
    path = shutil.which("espeak-ng")
    needs_service(path is not None, "espeak-ng is not installed (apt-get install espeak-ng)")
    return str(path)


@pytest.fixture(scope="session")
def encoders() -> Encoders:
    return load_encoders(BijouConfig())


@pytest.fixture(scope="session")
def bundled() -> list[Product]:
    return load_catalog().products


@pytest.fixture(scope="session")
def small_products(bundled: list[Product]) -> list[Product]:
    """Up to PER_ARTICLE products of every article, with images, in catalog order."""
    taken: dict[str, int] = defaultdict(int)
    chosen = []
    for product in bundled:
        if product.image and taken[product.article] < PER_ARTICLE:
            taken[product.article] += 1
            chosen.append(product)
    return chosen


@pytest.fixture(scope="session")
def small_catalog(tmp_path_factory: pytest.TempPathFactory, small_products: list[Product]) -> Path:
    """A shop catalog file (gzipped JSONL) with an images.zip beside it."""
    folder = tmp_path_factory.mktemp("catalog")
    with gzip.open(folder / "products.jsonl.gz", "wt", encoding="utf-8") as out:
        for product in small_products:
            out.write(json.dumps(product.model_dump()) + "\n")
    with zipfile.ZipFile(BUNDLED_IMAGES) as src, zipfile.ZipFile(folder / "images.zip", "w") as dst:
        for product in small_products:
            dst.writestr(product.image, src.read(product.image))
    return folder / "products.jsonl.gz"


@pytest.fixture
def make_config(small_catalog: Path) -> Callable[[Path, str], BijouConfig]:
    """Config for an index under ``data_dir`` on the small catalog, edge or server engine."""

    def make(data_dir: Path, mode: str = "edge") -> BijouConfig:
        index = {"mode": mode}
        if mode == "server":
            index["url"] = f"local:{data_dir / 'qdrant'}"
        raw = {"data_dir": data_dir, "catalog": {"path": small_catalog}, "index": index}
        return BijouConfig.model_validate(raw)

    return make


@pytest.fixture(scope="session")
def small_engine(
    tmp_path_factory: pytest.TempPathFactory, small_catalog: Path, encoders: Encoders
) -> SearchEngine:
    """An embedded index of the small catalog, built once for the search and CLI tests."""
    data_dir = tmp_path_factory.mktemp("data")
    # Encoded here, not from the shipped vectors: the tests compare against real encodings.
    raw = {"data_dir": data_dir, "catalog": {"path": small_catalog}}
    config = BijouConfig.model_validate({**raw, "index": {"shipped_vectors": False}})
    engine = SearchEngine.load(config, encoders)
    engine.sync(load_catalog(small_catalog).products)
    return engine


@pytest.fixture(scope="session")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> ChatModel:
    """The default LLM (Qwen 0.5B), assembled from its packages once per test run."""
    # One thread: two collapse when another process holds a core (MODELS.md).
    config = BijouConfig.model_validate(
        {"data_dir": tmp_path_factory.mktemp("llm"), "llm": {"threads": 1}}
    )
    return load_chat_model(config)


ADMIN_KEY = "test-admin-key"


@pytest.fixture(scope="session")
def admin_headers() -> dict[str, str]:
    return {"X-API-Key": ADMIN_KEY}


@pytest.fixture(scope="session")
def app_client(
    small_engine: SearchEngine,
    finder: ComplementFinder,
    chat_model: ChatModel,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TestClient]:
    """The HTTP API over the in-process backend with the real models, the admin API on and
    no rate limits (the tests are one client sending many requests; test_guard has them)."""
    folder = tmp_path_factory.mktemp("api")
    serve = small_engine.config.serve.model_copy(
        update={
            "admin_api_key": ADMIN_KEY,
            "max_upload_bytes": 200_000,
            "rate_limit": RateLimitConfig(enabled=False),
        }
    )
    config = small_engine.config.model_copy(
        update={
            "data_dir": folder,
            "serve": serve,
            "speech": small_engine.config.speech.model_copy(update={"max_seconds": 15.0}),
        }
    )
    store = SessionStore(folder / "sessions.sqlite3", config.memory.max_turns)
    agent = ShoppingAgent(config, LocalShop(small_engine, finder), store, chat_model)
    backend = LocalBackend(agent, small_engine, SpeechToText.load(config))
    with TestClient(create_app(config, lambda: backend)) as test_client:
        yield test_client
    store.close()


@pytest.fixture(scope="session")
def finder(small_engine: SearchEngine, small_products: list[Product]) -> ComplementFinder:
    return ComplementFinder(small_engine.index, PairingTable.mine(small_products))


@contextmanager
def _served(app: FastAPI) -> Iterator[str]:
    """The app under uvicorn on a free port (lifespan and all, as `bijou serve` runs it):
    its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def serve_app() -> Callable[[FastAPI], AbstractContextManager[str]]:
    return _served


# Fixtures that load a model (encoders, the LLM, Whisper) or build an index with one: a
# test that uses any of them is in the "models" tier; `pytest -m "not models"` runs the rest,
# the pure logic, in well under a minute.
MODEL_FIXTURES = frozenset(
    {"encoders", "small_engine", "chat_model", "finder", "qwen", "models_dir", "llama_server",
     "stt", "tiny_hf_model", "agent", "fused_engine", "app_client", "ray_app", "browser"}
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.models)
