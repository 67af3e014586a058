"""The agent's memory on PostgreSQL (memory.backend: postgres), on a throwaway server this test
starts from Debian's postgresql package (.ci/run installs it): the store's contract, and two
stores (two Agent replicas, on any nodes) sharing one shopper's session and cart."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bijou.agent.memory import (
    NotInCartError,
    SchemaVersionError,
    SessionStore,
    UnknownSessionError,
)
from bijou.config import BijouConfig
from bijou.understanding.state import DialogState, Preferences

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e .[dev])")
INITDB = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url(needs_service) -> Iterator[str]:
    initdb = INITDB[-1]
    needs_service(bool(initdb), "PostgreSQL is not installed (apt-get install postgresql)")
    bin_dir = Path(initdb).parent
    # Not under pytest's folder, which only root may enter.
    folder = Path(tempfile.mkdtemp(prefix="bijou-pg-"))
    # The server refuses to run as root: as root, it runs as the package's postgres user.
    run_as: list[str] = []
    if os.geteuid() == 0:
        needs_service(
            shutil.which("runuser") is not None,
            "running as root without runuser: cannot start PostgreSQL",
        )
        shutil.chown(folder, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    subprocess.run(
        [*run_as, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "bijou"],
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        [*run_as, str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(folder),
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"postgresql://bijou@127.0.0.1:{port}/postgres"
    try:
        for _ in range(100):
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if server.poll() is not None:
                    needs_service(False, f"PostgreSQL did not start (exit {server.returncode})")
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def store(postgres_url: str) -> Iterator[SessionStore]:
    config = BijouConfig.model_validate({"memory": {"backend": "postgres", "url": postgres_url}})
    with SessionStore.open(config) as opened:
        yield opened


def test_sessions_turns_cart_and_preferences(store: SessionStore) -> None:
    session = store.create_session("pg-shopper")
    assert store.get_session(session.id).shopper_id == "pg-shopper"
    state = DialogState(articles=["Earrings"])
    store.save_state(session.id, state)
    assert store.get_session(session.id).state == state
    store.append_turn(session.id, "user", "silver earrings", [])
    store.append_turn(session.id, "assistant", "here they are", ["p1", "p2"])
    assert [(t.role, t.product_ids) for t in store.history(session.id)] == [
        ("user", ()),
        ("assistant", ("p1", "p2")),
    ]
    assert [t.text for t in store.history(session.id, limit=1)] == ["here they are"]
    store.add_to_cart(session.id, "p1", 2)
    lines = store.add_to_cart(session.id, "p2")
    assert [(line.product_id, line.quantity) for line in lines] == [("p1", 2), ("p2", 1)]
    assert [line.quantity for line in store.remove_from_cart(session.id, "p1", 1)] == [1, 1]
    with pytest.raises(NotInCartError):
        store.remove_from_cart(session.id, "p9")
    with pytest.raises(ValueError):
        store.add_to_cart(session.id, "p1", 99)
    store.save_preferences("pg-shopper", Preferences(colours=["Silver"]))
    assert store.preferences("pg-shopper").colours == ["Silver"]
    later = store.create_session("pg-shopper")
    assert store.sessions_of("pg-shopper")[-2:] == [session.id, later.id]
    store.delete_session(session.id)
    assert store.get_session(session.id) is None
    with pytest.raises(UnknownSessionError):
        store.cart(session.id)
    with pytest.raises(UnknownSessionError):
        store.append_turn("0" * 32, "user", "hi")


def test_two_replicas_share_a_session_and_its_cart(postgres_url: str) -> None:
    """Two stores are two Agent replicas: a shopper's turns may land on either."""
    with (
        SessionStore.open(
            BijouConfig.model_validate({"memory": {"backend": "postgres", "url": postgres_url}})
        ) as one,
        SessionStore.open(
            BijouConfig.model_validate({"memory": {"backend": "postgres", "url": postgres_url}})
        ) as two,
    ):
        session = one.create_session()
        two.save_state(session.id, DialogState(articles=["Ring"]))
        assert one.get_session(session.id).state.articles == ["Ring"]

        def add(store: SessionStore, product: str) -> None:
            for _ in range(20):
                store.add_to_cart(session.id, product, 1)

        workers = [threading.Thread(target=add, args=(s, "p1")) for s in (one, two, one, two)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        # Row locks serialise the read-modify-writes: not one addition is lost.
        assert [(line.product_id, line.quantity) for line in two.cart(session.id)] == [("p1", 80)]


def test_transcripts_are_bounded(postgres_url: str) -> None:
    config = BijouConfig.model_validate(
        {"memory": {"backend": "postgres", "url": postgres_url, "max_turns": 3}}
    )
    with SessionStore.open(config) as store:
        session = store.create_session()
        for n in range(8):
            store.append_turn(session.id, "user", f"t{n}")
        assert [t.text for t in store.history(session.id)] == ["t5", "t6", "t7"]


def test_a_dropped_connection_is_reopened(store: SessionStore, postgres_url: str) -> None:
    session = store.create_session()
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND datname = 'postgres'"
        )
    with pytest.raises(psycopg.OperationalError):
        store.cart(session.id)  # the transaction that finds the connection gone fails
    assert store.cart(session.id) == []  # and the next one reconnects


def test_a_newer_schema_is_refused(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("UPDATE bijou_meta SET value = value + 1 WHERE key = 'schema'")
        try:
            config = BijouConfig.model_validate(
                {"memory": {"backend": "postgres", "url": postgres_url}}
            )
            with pytest.raises(SchemaVersionError, match="newer"):
                SessionStore.open(config)
        finally:
            admin.execute("UPDATE bijou_meta SET value = value - 1 WHERE key = 'schema'")


def test_postgres_needs_a_url() -> None:
    with pytest.raises(ValueError, match=r"memory\.url"):
        SessionStore.open(BijouConfig.model_validate({"memory": {"backend": "postgres"}}))
