"""The agent's SQLite memory: sessions, transcripts, carts and returning shoppers."""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bijou.agent.memory import (
    MAX_QUANTITY,
    SCHEMA_VERSION,
    CartLine,
    NotInCartError,
    SchemaVersionError,
    SessionStore,
    Turn,
    UnknownSessionError,
)
from bijou.config import BijouConfig, MemoryConfig
from bijou.understanding.state import DialogState, Preferences

UNKNOWN_ID = "0" * 32
MALFORMED_IDS = [
    "",
    "abc",
    "0" * 31,
    "0" * 33,
    "A" * 32,  # uuid hex is lowercase
    "g" * 32,
    "0" * 32 + "\n",
    "' OR 1=1 --",
    None,
    12345,
]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "memory.sqlite3"


@pytest.fixture
def store(path: Path) -> Iterator[SessionStore]:
    with SessionStore(path) as opened:
        yield opened


def _count(path: Path, table: str, session_id: str) -> int:
    with sqlite3.connect(path) as conn:
        column = "id" if table == "sessions" else "session_id"
        (n,) = conn.execute(
            f"SELECT COUNT(*) FROM {table} WHERE {column} = ?", (session_id,)
        ).fetchone()
    conn.close()
    return n


# -- sessions -------------------------------------------------------------------------------


def test_session_round_trip(store: SessionStore) -> None:
    session = store.create_session()
    assert len(session.id) == 32 and int(session.id, 16) >= 0
    assert session.shopper_id is None
    assert session.state == DialogState()
    assert session.updated == session.created > 0

    assert store.get_session(session.id) == session

    state = DialogState(articles=["ring"], max_price=120.0, shown=["p1", "p2"], focus="p2")
    store.save_state(session.id, state)
    loaded = store.get_session(session.id)
    assert loaded is not None
    assert loaded.state == state
    assert loaded.created == session.created and loaded.updated >= session.updated
    assert store.create_session().id != session.id


def test_state_turns_cart_and_preferences_survive_reopen(tmp_path: Path) -> None:
    config = BijouConfig(data_dir=tmp_path / "var", memory=MemoryConfig())
    with SessionStore.open(config) as store:  # creates var/
        session = store.create_session("alice")
        store.save_state(session.id, DialogState(colours=["gold"], soft="minimalist"))
        store.append_turn(session.id, "user", "a gold ring")
        store.append_turn(session.id, "assistant", "here are three", ["r1", "r2", "r3"])
        store.add_to_cart(session.id, "r2", 2)
        store.save_preferences("alice", Preferences(colours=["gold"], language="fr"))
    assert config.memory_path.is_file()

    with SessionStore.open(config) as store:
        loaded = store.get_session(session.id)
        assert loaded is not None
        assert loaded.shopper_id == "alice"
        assert loaded.state == DialogState(colours=["gold"], soft="minimalist")
        assert [(t.role, t.text, t.product_ids) for t in store.history(session.id)] == [
            ("user", "a gold ring", ()),
            ("assistant", "here are three", ("r1", "r2", "r3")),
        ]
        assert [(line.product_id, line.quantity) for line in store.cart(session.id)] == [("r2", 2)]
        assert store.preferences("alice") == Preferences(colours=["gold"], language="fr")
        assert store.sessions_of("alice") == [session.id]


def test_returning_shopper_inherits_preferences(store: SessionStore) -> None:
    prefs = Preferences(
        colours=["silver"],
        exclude_colours=["pink"],
        exclude_brands=["Acme"],
        blocked_ids=["p9", "p10"],
        language="de",
    )
    store.save_preferences("bob", prefs)

    returning = store.create_session("bob")
    assert returning.state == DialogState.for_shopper(prefs)
    assert returning.state.blocked_ids == ["p9", "p10"]
    assert returning.state.exclude_colours == ["pink"]
    assert returning.state.language == "de"
    # What is persisted is what was returned.
    stored = store.get_session(returning.id)
    assert stored is not None and stored.state == returning.state

    anonymous = store.create_session()
    assert anonymous.state == DialogState()
    assert anonymous.state.blocked_ids == [] and anonymous.state.exclude_colours == []

    newcomer = store.create_session("carol")
    assert newcomer.state == DialogState()


def test_preferences_round_trip_and_sessions_of(store: SessionStore) -> None:
    assert store.preferences("nobody") == Preferences()
    store.save_preferences("dan", Preferences(exclude_colours=["red"]))
    store.save_preferences("dan", Preferences(blocked_ids=["x"]))  # replaces, not merges
    assert store.preferences("dan") == Preferences(blocked_ids=["x"])
    assert store.preferences("nobody") == Preferences()

    first, second = store.create_session("dan"), store.create_session("dan")
    store.create_session("erin")
    store.create_session()
    assert store.sessions_of("dan") == [first.id, second.id]
    assert store.sessions_of("nobody") == []


def test_delete_session_removes_turns_and_cart(store: SessionStore, path: Path) -> None:
    session = store.create_session("fay")
    kept = store.create_session("fay")
    store.save_preferences("fay", Preferences(colours=["gold"]))
    for store_session in (session, kept):
        store.append_turn(store_session.id, "user", "hello")
        store.add_to_cart(store_session.id, "p1")
    store.delete_session(session.id)

    assert store.get_session(session.id) is None
    for table in ("sessions", "turns", "cart"):
        assert _count(path, table, session.id) == 0
        assert _count(path, table, kept.id) == 1
    assert store.sessions_of("fay") == [kept.id]
    assert store.preferences("fay") == Preferences(colours=["gold"])
    with pytest.raises(UnknownSessionError):
        store.delete_session(session.id)
    with pytest.raises(UnknownSessionError):
        store.history(session.id)


# -- transcript -----------------------------------------------------------------------------


def test_history_order_and_limit(store: SessionStore) -> None:
    session = store.create_session()
    assert store.history(session.id) == []
    for i in range(5):
        store.append_turn(session.id, "user" if i % 2 == 0 else "assistant", f"t{i}", [f"p{i}"])

    turns = store.history(session.id)
    assert all(isinstance(turn, Turn) for turn in turns)
    assert [turn.text for turn in turns] == ["t0", "t1", "t2", "t3", "t4"]
    assert [turn.role for turn in turns] == ["user", "assistant"] * 2 + ["user"]
    assert turns[3].product_ids == ("p3",)
    assert [turn.at for turn in turns] == sorted(turn.at for turn in turns)
    assert [turn.text for turn in store.history(session.id, limit=2)] == ["t3", "t4"]
    assert [turn.text for turn in store.history(session.id, limit=50)] == [t.text for t in turns]
    assert store.history(session.id, limit=0) == []
    with pytest.raises(ValueError):
        store.history(session.id, limit=-1)

    loaded = store.get_session(session.id)
    assert loaded is not None and loaded.updated >= turns[-1].at


def test_append_turn_rejects_bad_input(store: SessionStore) -> None:
    session = store.create_session()
    with pytest.raises(ValueError):
        store.append_turn(session.id, "system", "hi")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.append_turn(session.id, "user", "hi", "p1")  # one id, not a list of letters
    with pytest.raises(ValueError):
        store.append_turn(session.id, "user", "hi", [""])
    assert store.history(session.id) == []


# -- cart -----------------------------------------------------------------------------------


def _lines(lines: list[CartLine]) -> list[tuple[str, int]]:
    return [(line.product_id, line.quantity) for line in lines]


def test_cart_accumulates_in_order(store: SessionStore) -> None:
    session = store.create_session()
    assert store.cart(session.id) == []
    assert _lines(store.add_to_cart(session.id, "b")) == [("b", 1)]
    store.add_to_cart(session.id, "a", 3)
    store.add_to_cart(session.id, "c")
    # More of a product already there keeps its place in the cart.
    assert _lines(store.add_to_cart(session.id, "b", 4)) == [("b", 5), ("a", 3), ("c", 1)]
    lines = store.cart(session.id)
    assert _lines(lines) == [("b", 5), ("a", 3), ("c", 1)]
    assert lines[0].added_at <= lines[1].added_at <= lines[2].added_at

    # Removed entirely and added again: it goes to the end.
    store.remove_from_cart(session.id, "b")
    assert _lines(store.add_to_cart(session.id, "b")) == [("a", 3), ("c", 1), ("b", 1)]

    store.clear_cart(session.id)
    assert store.cart(session.id) == []


@pytest.mark.parametrize("quantity", [0, -1, MAX_QUANTITY + 1, True, 1.5])
def test_cart_quantity_bounds(store: SessionStore, quantity: Any) -> None:
    session = store.create_session()
    with pytest.raises(ValueError):
        store.add_to_cart(session.id, "p", quantity)
    assert store.cart(session.id) == []


def test_cart_line_cap_counts_what_is_there(store: SessionStore) -> None:
    session = store.create_session()
    assert _lines(store.add_to_cart(session.id, "p", MAX_QUANTITY)) == [("p", MAX_QUANTITY)]
    with pytest.raises(ValueError):
        store.add_to_cart(session.id, "p")
    assert _lines(store.cart(session.id)) == [("p", MAX_QUANTITY)]
    # The cap is per line, not per cart.
    assert _lines(store.add_to_cart(session.id, "q", 2)) == [("p", MAX_QUANTITY), ("q", 2)]
    with pytest.raises(ValueError):
        store.add_to_cart(session.id, "", 1)


def test_remove_from_cart(store: SessionStore) -> None:
    session = store.create_session()
    store.add_to_cart(session.id, "a", 5)
    store.add_to_cart(session.id, "b", 2)

    assert _lines(store.remove_from_cart(session.id, "a", 2)) == [("a", 3), ("b", 2)]
    assert _lines(store.remove_from_cart(session.id, "b", 2)) == [("a", 3)]
    with pytest.raises(NotInCartError):
        store.remove_from_cart(session.id, "b")
    with pytest.raises(NotInCartError):
        store.remove_from_cart(session.id, "a", 4)  # only 3 there
    with pytest.raises(KeyError):  # NotInCartError is a KeyError
        store.remove_from_cart(session.id, "never-added", 1)
    with pytest.raises(ValueError):
        store.remove_from_cart(session.id, "a", 0)
    assert _lines(store.cart(session.id)) == [("a", 3)]
    assert store.remove_from_cart(session.id, "a") == []


def test_carts_are_per_session(store: SessionStore) -> None:
    first, second = store.create_session(), store.create_session()
    store.add_to_cart(first.id, "p")
    assert store.cart(second.id) == []
    with pytest.raises(NotInCartError):
        store.remove_from_cart(second.id, "p")


# -- untrusted ids --------------------------------------------------------------------------

SESSION_CALLS: list[Callable[[SessionStore, Any], object]] = [
    lambda s, sid: s.save_state(sid, DialogState()),
    lambda s, sid: s.delete_session(sid),
    lambda s, sid: s.append_turn(sid, "user", "hi"),
    lambda s, sid: s.history(sid),
    lambda s, sid: s.add_to_cart(sid, "p"),
    lambda s, sid: s.remove_from_cart(sid, "p"),
    lambda s, sid: s.cart(sid),
    lambda s, sid: s.clear_cart(sid),
]
CALL_NAMES = [
    "save_state",
    "delete_session",
    "append_turn",
    "history",
    "add_to_cart",
    "remove_from_cart",
    "cart",
    "clear_cart",
]


@pytest.mark.parametrize("call", SESSION_CALLS, ids=CALL_NAMES)
def test_unknown_session_id_raises(store: SessionStore, call: Callable[..., object]) -> None:
    store.create_session()
    with pytest.raises(UnknownSessionError):
        call(store, UNKNOWN_ID)
    assert store.get_session(UNKNOWN_ID) is None


@pytest.mark.parametrize("call", SESSION_CALLS, ids=CALL_NAMES)
def test_malformed_session_id_rejected_before_sql(path: Path, call: Callable[..., object]) -> None:
    store = SessionStore(path)
    store.close()  # any SQL would now fail with "closed", not UnknownSessionError
    for bad in MALFORMED_IDS:
        with pytest.raises(UnknownSessionError):
            call(store, bad)
        assert store.get_session(bad) is None
    with pytest.raises(RuntimeError, match="closed"):
        call(store, UNKNOWN_ID)


@pytest.mark.parametrize(
    "shopper_id", ["", "x" * 129, "a\nb", "tab\there", "nul\x00", "\x1b[31m", None, 42]
)
def test_shopper_id_validation(store: SessionStore, shopper_id: Any) -> None:
    if shopper_id is not None:  # None is an anonymous session
        with pytest.raises(ValueError):
            store.create_session(shopper_id)
    with pytest.raises(ValueError):
        store.preferences(shopper_id)
    with pytest.raises(ValueError):
        store.save_preferences(shopper_id, Preferences())
    with pytest.raises(ValueError):
        store.sessions_of(shopper_id)


@pytest.mark.parametrize(
    "shopper_id", ["x" * 128, "a", "jane.doe@example.com", "Zoë 42", "'; DROP"]
)
def test_valid_shopper_ids(store: SessionStore, shopper_id: str) -> None:
    store.save_preferences(shopper_id, Preferences(colours=["gold"]))
    session = store.create_session(shopper_id)
    assert session.state.colours == ["gold"]
    assert store.sessions_of(shopper_id) == [session.id]


# -- several users of one file --------------------------------------------------------------


def test_two_stores_see_each_others_writes(path: Path) -> None:
    with SessionStore(path) as one, SessionStore(path) as two:
        session = one.create_session("gil")
        seen = two.get_session(session.id)
        assert seen is not None and seen.shopper_id == "gil"

        two.save_state(session.id, DialogState(brands=["Acme"]))
        two.append_turn(session.id, "user", "from two")
        two.add_to_cart(session.id, "p", 2)
        one.add_to_cart(session.id, "p", 3)
        one.save_preferences("gil", Preferences(exclude_brands=["Acme"]))

        loaded = one.get_session(session.id)
        assert loaded is not None and loaded.state.brands == ["Acme"]
        assert [turn.text for turn in one.history(session.id)] == ["from two"]
        assert _lines(two.cart(session.id)) == [("p", 5)]
        assert two.preferences("gil").exclude_brands == ["Acme"]
        assert two.sessions_of("gil") == [session.id]

        one.delete_session(session.id)
        assert two.get_session(session.id) is None


def test_concurrent_appends_lose_nothing(store: SessionStore) -> None:
    threads, per_thread = 8, 50
    session = store.create_session()
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                store.append_turn(session.id, "user", f"{n}:{i}", [f"p{n}"])
                if i % 10 == 0:
                    store.add_to_cart(session.id, f"p{n}")
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []

    turns = store.history(session.id)
    assert len(turns) == threads * per_thread
    assert {turn.text for turn in turns} == {f"{n}:{i}" for n in range(threads) for i in range(50)}
    for n in range(threads):  # each thread's turns in the order it appended them
        mine = [int(t.text.split(":")[1]) for t in turns if t.text.startswith(f"{n}:")]
        assert mine == list(range(per_thread))
    assert sorted(_lines(store.cart(session.id))) == [(f"p{n}", 5) for n in range(threads)]


def test_concurrent_writes_from_two_stores(path: Path) -> None:
    with SessionStore(path) as one, SessionStore(path) as two:
        session = one.create_session()
        errors: list[BaseException] = []

        def work(store: SessionStore, name: str) -> None:
            try:
                for i in range(40):
                    store.append_turn(session.id, "assistant", f"{name}{i}")
                    store.add_to_cart(session.id, "shared")
                    store.remove_from_cart(session.id, "shared", 1)
            except BaseException as error:
                errors.append(error)

        workers = [
            threading.Thread(target=work, args=(one, "a")),
            threading.Thread(target=work, args=(two, "b")),
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert errors == []
        assert len(two.history(session.id)) == 80
        assert one.cart(session.id) == []


# -- damaged and foreign files --------------------------------------------------------------


def test_corrupt_state_gives_default_and_warns(
    store: SessionStore, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    session = store.create_session()
    store.save_state(session.id, DialogState(colours=["gold"]))
    store.save_preferences("hal", Preferences(colours=["gold"]))
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE sessions SET state = ? WHERE id = ?", ("{not json", session.id))
        # Valid JSON, but from an older state model: an unknown field fails validation.
        conn.execute("UPDATE shoppers SET preferences = ? WHERE id = 'hal'", ('{"vibe": 1}',))
        conn.execute(
            "INSERT INTO turns (session_id, role, text, product_ids, at) "
            "VALUES (?, 'user', 'hi', 'oops', 0)",
            (session.id,),
        )
    conn.close()

    with caplog.at_level(logging.WARNING, logger="bijou.agent.memory"):
        loaded = store.get_session(session.id)
        assert loaded is not None and loaded.state == DialogState()
        assert store.preferences("hal") == Preferences()
        # A new session of that shopper still opens, from fresh preferences.
        assert store.create_session("hal").state == DialogState()
        assert store.history(session.id)[0].product_ids == ()
    messages = [r.getMessage() for r in caplog.records if r.name == "bijou.agent.memory"]
    assert any(session.id in m and "DialogState" in m for m in messages)
    assert any("'hal'" in m and "Preferences" in m for m in messages)
    assert all(r.levelno == logging.WARNING for r in caplog.records)

    # Saving over the corrupt row repairs it.
    store.save_state(session.id, DialogState(colours=["rose"]))
    repaired = store.get_session(session.id)
    assert repaired is not None and repaired.state.colours == ["rose"]


def test_newer_schema_version_raises(path: Path) -> None:
    SessionStore(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaVersionError, match="newer"):
        SessionStore(path)


def test_reopening_is_idempotent_and_close_is_final(path: Path) -> None:
    store = SessionStore(path)
    session = store.create_session()
    store.close()
    store.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        store.create_session()
    with SessionStore(path) as again, SessionStore(path) as third:
        assert again.get_session(session.id) is not None
        assert third.get_session(session.id) is not None
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()


def test_a_transcript_keeps_only_the_last_max_turns(tmp_path: Path) -> None:
    with SessionStore(tmp_path / "m.sqlite3", max_turns=4) as store:
        session = store.create_session()
        other = store.create_session()
        store.append_turn(other.id, "user", "kept")
        for i in range(10):
            store.append_turn(session.id, "user", f"t{i}")
        assert [turn.text for turn in store.history(session.id)] == ["t6", "t7", "t8", "t9"]
        assert [turn.text for turn in store.history(other.id)] == ["kept"]


def test_session_ids_are_random_and_unrelated(tmp_path: Path) -> None:
    with SessionStore(tmp_path / "m.sqlite3") as store:
        ids = [store.create_session().id for _ in range(200)]
    assert len(set(ids)) == len(ids)
    # No shared prefix or counter: consecutive ids agree in about 1/16 of their hex digits.
    same = sum(a == b for x, y in itertools.pairwise(ids) for a, b in zip(x, y, strict=True))
    assert same / (32 * (len(ids) - 1)) < 0.1
    assert all(int(i, 16) for i in ids)
