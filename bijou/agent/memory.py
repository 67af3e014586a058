"""The agent's persistent memory: sessions with their dialog state, transcript and cart, and
returning shoppers' preferences, in one SQLite file (``BijouConfig.memory_path``).

A store is shared by the threads of a web server and may be open in two processes at once,
so it holds one connection guarded by a lock, runs SQLite in WAL mode with a busy timeout,
and does every write in a transaction.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self, TypeVar

from pydantic import BaseModel

from bijou.config import BijouConfig
from bijou.understanding.state import DialogState, Preferences

logger = logging.getLogger(__name__)

# Bump on every schema change and add its migration to _migrate.
SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 5000
MAX_QUANTITY = 99  # per cart line
MAX_SHOPPER_ID = 128

Role = Literal["user", "assistant"]
ROLES: tuple[Role, ...] = ("user", "assistant")

# What new_session_id() produces; anything else from a cookie or URL is rejected before any SQL.
_SESSION_ID = re.compile(r"[0-9a-f]{32}")

# One statement each: executescript() would commit the surrounding transaction first.
_SCHEMA_V1 = (
    """CREATE TABLE IF NOT EXISTS sessions (
        id TEXT PRIMARY KEY,
        shopper_id TEXT,
        state TEXT NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS sessions_by_shopper ON sessions (shopper_id, created)",
    """CREATE TABLE IF NOT EXISTS turns (
        seq INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        text TEXT NOT NULL,
        product_ids TEXT NOT NULL,
        at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS turns_by_session ON turns (session_id, seq)",
    """CREATE TABLE IF NOT EXISTS cart (
        seq INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        product_id TEXT NOT NULL,
        quantity INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 99),
        added_at REAL NOT NULL,
        UNIQUE (session_id, product_id)
    )""",
    """CREATE TABLE IF NOT EXISTS shoppers (
        id TEXT PRIMARY KEY,
        preferences TEXT NOT NULL,
        updated REAL NOT NULL
    )""",
)

# v2: an OpenAI-style client resends the whole conversation; a digest of it up to the
# assistant's last reply names the session that reply came from.
_SCHEMA_V2 = (
    """CREATE TABLE IF NOT EXISTS conversations (
        digest TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        at REAL NOT NULL
    )""",
)


# Each schema version's statements, in order; a store at version N runs those above N.
MIGRATIONS = ((1, _SCHEMA_V1), (2, _SCHEMA_V2))


def pending(migrations: Sequence[tuple[int, Sequence[str]]], version: int) -> list[str]:
    """The statements that bring a store at ``version`` up to date."""
    return [s for number, statements in migrations if number > version for s in statements]


class UnknownSessionError(KeyError):
    """No such session (or an id that cannot be one)."""


class NotInCartError(KeyError):
    """The product, or that many of it, is not in the session's cart."""


class SchemaVersionError(RuntimeError):
    """The memory file was written by a newer bijou."""


@dataclass(frozen=True)
class Session:
    id: str
    shopper_id: str | None
    state: DialogState
    created: float
    # Last activity: a saved state, a turn or a cart change.
    updated: float


@dataclass(frozen=True)
class Turn:
    role: Role
    text: str
    product_ids: tuple[str, ...]
    at: float


@dataclass(frozen=True)
class CartLine:
    product_id: str
    quantity: int
    added_at: float


def new_session_id() -> str:
    """128 bits from the operating system's CSPRNG: the id is the only key to a session and
    its cart, so it must not be guessable from other ids or the time."""
    return secrets.token_hex(16)


def check_session_id(session_id: object) -> str:
    if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
        raise UnknownSessionError(f"unknown session {session_id!r:.48}")
    return session_id


def check_shopper_id(shopper_id: object) -> str:
    if (
        not isinstance(shopper_id, str)
        or not 1 <= len(shopper_id) <= MAX_SHOPPER_ID
        or not shopper_id.isprintable()
    ):
        raise ValueError(
            f"a shopper id is 1 to {MAX_SHOPPER_ID} printable characters, got {shopper_id!r:.48}"
        )
    return shopper_id


def _check_quantity(quantity: object) -> int:
    # bool is an int: True would otherwise add one ring.
    if not isinstance(quantity, int) or isinstance(quantity, bool):
        raise ValueError(f"a quantity is an integer, got {quantity!r}")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise ValueError(f"a quantity is 1 to {MAX_QUANTITY}, got {quantity}")
    return quantity


def _check_product_id(product_id: object) -> str:
    if not isinstance(product_id, str) or not product_id:
        raise ValueError(f"a product id is a non-empty string, got {product_id!r:.48}")
    return product_id


M = TypeVar("M", bound=BaseModel)


def _load(model: type[M], raw: object, what: str) -> M:
    """A row that no longer validates (an older or corrupt state) starts over, not crashes."""
    try:
        if not isinstance(raw, str | bytes):
            raise TypeError(f"stored as {type(raw).__name__}")
        return model.model_validate_json(raw)
    except (ValueError, TypeError) as error:  # pydantic's ValidationError is a ValueError
        logger.warning(
            "%s: unreadable stored %s, using a fresh one (%s)", what, model.__name__, error
        )
        return model()


def _load_ids(raw: object, what: str) -> tuple[str, ...]:
    try:
        ids = json.loads(raw) if isinstance(raw, str | bytes) else None
    except ValueError:
        ids = None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        logger.warning("%s: unreadable stored product ids, dropped", what)
        return ()
    return tuple(ids)


class SessionStore:
    # Sessions created in one clock tick are listed in creation order.
    sessions_order = "created, rowid"

    def __init__(self, path: Path, max_turns: int | None = None) -> None:
        """``max_turns``: the transcript turns a session keeps (the oldest go first)."""
        self.path = path
        self.max_turns = max_turns
        self._lock = threading.Lock()
        # One connection for all threads: the lock, not sqlite3, serialises its use.
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False, isolation_level=None
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._check_version(conn)
            # WAL lets another process read while one writes; NORMAL sync is durable against
            # a crashed process (a power cut may lose the last few turns, not corrupt the file).
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn

    @classmethod
    def open(cls, config: BijouConfig) -> SessionStore:
        """The configured store: the SQLite file, or the PostgreSQL server (memory.backend)."""
        memory = config.memory
        if memory.backend == "postgres":
            from bijou.agent.postgres import PostgresSessionStore

            if not memory.url:
                raise ValueError("memory.backend is postgres: set memory.url")
            return PostgresSessionStore(memory.url, memory.max_turns)
        path = config.memory_path
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(path, memory.max_turns)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- schema ------------------------------------------------------------------------------

    def _check_version(self, conn: sqlite3.Connection) -> None:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self.path} has memory schema version {version}, newer than this bijou's "
                f"({SCHEMA_VERSION}): upgrade bijou or point memory.path elsewhere"
            )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Checked again under the write lock: another process may have upgraded meanwhile.
            self._check_version(conn)
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            for statement in pending(MIGRATIONS, version):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _transaction(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._conn
            if conn is None:
                raise RuntimeError(f"the session store at {self.path} is closed")
            # IMMEDIATE takes the write lock up front (waiting up to busy_timeout): a deferred
            # transaction that reads and then writes fails at once if another process wrote
            # in between. Reads still get one snapshot for their several SELECTs.
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @staticmethod
    def _touch(conn: sqlite3.Connection, session_id: str) -> float:
        """Marks the session active and returns the time used; raises if it does not exist."""
        now = time.time()
        cursor = conn.execute("UPDATE sessions SET updated = ? WHERE id = ?", (now, session_id))
        if cursor.rowcount == 0:
            raise UnknownSessionError(f"unknown session {session_id!r}")
        return now

    @staticmethod
    def _require(conn: sqlite3.Connection, session_id: str) -> None:
        if conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is None:
            raise UnknownSessionError(f"unknown session {session_id!r}")

    # -- sessions ----------------------------------------------------------------------------

    def create_session(self, shopper_id: str | None = None) -> Session:
        if shopper_id is not None:
            check_shopper_id(shopper_id)
        session_id = new_session_id()
        now = time.time()
        with self._transaction(write=True) as conn:
            if shopper_id is None:
                state = DialogState()
            else:
                state = DialogState.for_shopper(self._preferences(conn, shopper_id))
            conn.execute(
                "INSERT INTO sessions (id, shopper_id, state, created, updated) "
                "VALUES (?, ?, ?, ?, ?)",
                (session_id, shopper_id, state.model_dump_json(), now, now),
            )
        return Session(session_id, shopper_id, state, now, now)

    def get_session(self, session_id: str) -> Session | None:
        """None for an unknown session id, malformed ones included."""
        try:
            check_session_id(session_id)
        except UnknownSessionError:
            return None
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT shopper_id, state, created, updated FROM sessions WHERE id = ?",
                (session_id,),
            ).fetchone()
        if row is None:
            return None
        shopper_id, raw, created, updated = row
        state = _load(DialogState, raw, f"session {session_id}")
        return Session(session_id, shopper_id, state, created, updated)

    def save_state(self, session_id: str, state: DialogState) -> None:
        check_session_id(session_id)
        with self._transaction(write=True) as conn:
            cursor = conn.execute(
                "UPDATE sessions SET state = ?, updated = ? WHERE id = ?",
                (state.model_dump_json(), time.time(), session_id),
            )
            if cursor.rowcount == 0:
                raise UnknownSessionError(f"unknown session {session_id!r}")

    def delete_session(self, session_id: str) -> None:
        """Removes the session with its transcript and cart; the shopper's preferences stay."""
        check_session_id(session_id)
        with self._transaction(write=True) as conn:
            self._require(conn, session_id)
            # Explicit rather than relying on the cascade alone: a file opened without
            # foreign_keys (the sqlite3 shell) must not leave orphans behind either.
            conn.execute("DELETE FROM turns WHERE session_id = ?", (session_id,))
            conn.execute("DELETE FROM cart WHERE session_id = ?", (session_id,))
            conn.execute("DELETE FROM conversations WHERE session_id = ?", (session_id,))
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def remember_conversation(self, digest: str, session_id: str) -> None:
        """``digest`` (of a conversation up to a reply) continues in ``session_id``."""
        check_session_id(session_id)
        with self._transaction(write=True) as conn:
            now = self._touch(conn, session_id)
            conn.execute(
                "INSERT INTO conversations (digest, session_id, at) VALUES (?, ?, ?) ON CONFLICT"
                " (digest) DO UPDATE SET session_id = excluded.session_id, at = excluded.at",
                (digest, session_id, now),
            )

    def conversation(self, digest: str) -> str | None:
        """The session a conversation with this digest continues, if one does."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT session_id FROM conversations WHERE digest = ?", (digest,)
            ).fetchone()
        return row[0] if row else None

    def sessions_of(self, shopper_id: str) -> list[str]:
        """The shopper's session ids, oldest first."""
        check_shopper_id(shopper_id)
        with self._transaction() as conn:
            rows = conn.execute(
                f"SELECT id FROM sessions WHERE shopper_id = ? ORDER BY {self.sessions_order}",
                (shopper_id,),
            ).fetchall()
        return [session_id for (session_id,) in rows]

    # -- transcript --------------------------------------------------------------------------

    def append_turn(
        self, session_id: str, role: Role, text: str, product_ids: Sequence[str] = ()
    ) -> None:
        check_session_id(session_id)
        if role not in ROLES:
            raise ValueError(f"a turn's role is one of {ROLES}, got {role!r:.48}")
        if not isinstance(text, str):
            raise TypeError(f"a turn's text is a string, got {type(text).__name__}")
        # A bare string is a Sequence[str] too, and would be stored one letter per id.
        if isinstance(product_ids, str):
            raise TypeError("product_ids is a sequence of ids, not one string")
        ids = [_check_product_id(product_id) for product_id in product_ids]
        with self._transaction(write=True) as conn:
            now = self._touch(conn, session_id)
            conn.execute(
                "INSERT INTO turns (session_id, role, text, product_ids, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (session_id, role, text, json.dumps(ids), now),
            )
            if self.max_turns is not None:
                conn.execute(
                    "DELETE FROM turns WHERE session_id = ? AND seq <= (SELECT seq FROM turns "
                    "WHERE session_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                    (session_id, session_id, self.max_turns),
                )

    def history(self, session_id: str, limit: int | None = None) -> list[Turn]:
        """The transcript oldest first; only its last ``limit`` turns when given."""
        check_session_id(session_id)
        if limit is not None and limit < 0:
            raise ValueError(f"limit is at least 0, got {limit}")
        with self._transaction() as conn:
            self._require(conn, session_id)
            query = (
                "SELECT role, text, product_ids, at FROM turns WHERE session_id = ? "
                "ORDER BY seq DESC"
            )
            if limit is None:
                rows = conn.execute(query, (session_id,)).fetchall()
            else:
                rows = conn.execute(f"{query} LIMIT ?", (session_id, limit)).fetchall()
        what = f"session {session_id}"
        return [
            Turn(role, text, _load_ids(ids, what), at) for role, text, ids, at in reversed(rows)
        ]

    # -- cart --------------------------------------------------------------------------------

    def add_to_cart(self, session_id: str, product_id: str, quantity: int = 1) -> list[CartLine]:
        """Adds to the product's line (created at the end of the cart if new)."""
        check_session_id(session_id)
        _check_product_id(product_id)
        _check_quantity(quantity)
        with self._transaction(write=True) as conn:
            now = self._touch(conn, session_id)
            row = conn.execute(
                "SELECT quantity FROM cart WHERE session_id = ? AND product_id = ?",
                (session_id, product_id),
            ).fetchone()
            held = 0 if row is None else row[0]
            if held + quantity > MAX_QUANTITY:
                raise ValueError(
                    f"at most {MAX_QUANTITY} of one product per cart: {held} of {product_id!r} "
                    f"already there, {quantity} more asked"
                )
            if row is None:
                conn.execute(
                    "INSERT INTO cart (session_id, product_id, quantity, added_at) "
                    "VALUES (?, ?, ?, ?)",
                    (session_id, product_id, quantity, now),
                )
            else:
                conn.execute(
                    "UPDATE cart SET quantity = ? WHERE session_id = ? AND product_id = ?",
                    (held + quantity, session_id, product_id),
                )
            return self._cart(conn, session_id)

    def remove_from_cart(
        self, session_id: str, product_id: str, quantity: int | None = None
    ) -> list[CartLine]:
        """Removes ``quantity`` of the product, or its whole line when None.

        Removing more than the cart holds raises NotInCartError rather than emptying the line:
        the shopper (or the parser) meant something else.
        """
        check_session_id(session_id)
        _check_product_id(product_id)
        if quantity is not None:
            _check_quantity(quantity)
        with self._transaction(write=True) as conn:
            self._touch(conn, session_id)
            row = conn.execute(
                "SELECT quantity FROM cart WHERE session_id = ? AND product_id = ?",
                (session_id, product_id),
            ).fetchone()
            if row is None:
                raise NotInCartError(f"{product_id!r:.48} is not in the cart")
            held = row[0]
            if quantity is not None and quantity > held:
                raise NotInCartError(
                    f"only {held} of {product_id!r:.48} in the cart, cannot remove {quantity}"
                )
            if quantity is None or quantity == held:
                conn.execute(
                    "DELETE FROM cart WHERE session_id = ? AND product_id = ?",
                    (session_id, product_id),
                )
            else:
                conn.execute(
                    "UPDATE cart SET quantity = ? WHERE session_id = ? AND product_id = ?",
                    (held - quantity, session_id, product_id),
                )
            return self._cart(conn, session_id)

    def cart(self, session_id: str) -> list[CartLine]:
        """The cart's lines in the order they were first added."""
        check_session_id(session_id)
        with self._transaction() as conn:
            self._require(conn, session_id)
            return self._cart(conn, session_id)

    def clear_cart(self, session_id: str) -> None:
        check_session_id(session_id)
        with self._transaction(write=True) as conn:
            self._touch(conn, session_id)
            conn.execute("DELETE FROM cart WHERE session_id = ?", (session_id,))

    @staticmethod
    def _cart(conn: sqlite3.Connection, session_id: str) -> list[CartLine]:
        rows = conn.execute(
            "SELECT product_id, quantity, added_at FROM cart WHERE session_id = ? ORDER BY seq",
            (session_id,),
        ).fetchall()
        return [CartLine(*row) for row in rows]

    # -- returning shoppers ------------------------------------------------------------------

    def preferences(self, shopper_id: str) -> Preferences:
        """The shopper's saved preferences; empty ones for a shopper never seen."""
        check_shopper_id(shopper_id)
        with self._transaction() as conn:
            return self._preferences(conn, shopper_id)

    def save_preferences(self, shopper_id: str, preferences: Preferences) -> None:
        check_shopper_id(shopper_id)
        with self._transaction(write=True) as conn:
            conn.execute(
                "INSERT INTO shoppers (id, preferences, updated) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET "
                "preferences = excluded.preferences, updated = excluded.updated",
                (shopper_id, preferences.model_dump_json(), time.time()),
            )

    @staticmethod
    def _preferences(conn: sqlite3.Connection, shopper_id: str) -> Preferences:
        row = conn.execute(
            "SELECT preferences FROM shoppers WHERE id = ?", (shopper_id,)
        ).fetchone()
        if row is None:
            return Preferences()
        return _load(Preferences, row[0], f"shopper {shopper_id!r}")
