"""The agent's memory on a PostgreSQL server (``memory.backend: postgres``): the same store as
the SQLite file, shared by the Agent replicas of every node, so a shopper's turns may land on
any of them. Every query is SessionStore's own; only the schema, the transactions and the
placeholders differ.

A write to a session first updates its row (``_touch``/``save_state``), which locks it until
commit: two replicas writing one session's cart take turns, as SQLite's write lock makes them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from bijou.agent.memory import SCHEMA_VERSION, SchemaVersionError, SessionStore, pending

CONNECT_TIMEOUT_S = 10
# Any 64-bit number all bijou processes agree on: schema changes take this advisory lock.
_MIGRATION_LOCK = 0x62696A6F75

_SCHEMA_V1 = (
    """CREATE TABLE IF NOT EXISTS bijou_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sessions (
        id TEXT PRIMARY KEY,
        seq BIGINT GENERATED ALWAYS AS IDENTITY,
        shopper_id TEXT,
        state TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        updated DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS sessions_by_shopper ON sessions (shopper_id, created)",
    """CREATE TABLE IF NOT EXISTS turns (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        text TEXT NOT NULL,
        product_ids TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS turns_by_session ON turns (session_id, seq)",
    """CREATE TABLE IF NOT EXISTS cart (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        product_id TEXT NOT NULL,
        quantity INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 99),
        added_at DOUBLE PRECISION NOT NULL,
        UNIQUE (session_id, product_id)
    )""",
    """CREATE TABLE IF NOT EXISTS shoppers (
        id TEXT PRIMARY KEY,
        preferences TEXT NOT NULL,
        updated DOUBLE PRECISION NOT NULL
    )""",
)

# v2: the conversations a digest of an OpenAI-style request names (see memory._SCHEMA_V2).
_SCHEMA_V2 = (
    """CREATE TABLE IF NOT EXISTS conversations (
        digest TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        at DOUBLE PRECISION NOT NULL
    )""",
)


class _Connection:
    """A psycopg connection that takes SessionStore's queries (``?`` placeholders)."""

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw

    def execute(self, query: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        return self.raw.execute(query.replace("?", "%s"), tuple(params))


def _shown(url: str) -> str:
    """The server and database, without the password, for messages."""
    parts = conninfo_to_dict(url)
    return f"postgresql://{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/" + str(
        parts.get("dbname", "")
    )


class PostgresSessionStore(SessionStore):
    # Sessions created in one second are listed in creation order.
    sessions_order = "created, seq"

    def __init__(self, url: str, max_turns: int | None = None) -> None:
        self.url = url
        self.path = _shown(url)  # type: ignore[assignment] - only ever shown
        self.max_turns = max_turns
        self._lock = threading.Lock()
        self._raw: psycopg.Connection | None = self._connect()
        self._migrate_schema()

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)

    def _migrate_schema(self) -> None:
        with self._transaction(write=True) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            exists = conn.execute("SELECT to_regclass('bijou_meta')").fetchone()[0]
            version = 0
            if exists:
                row = conn.execute("SELECT value FROM bijou_meta WHERE key = 'schema'").fetchone()
                version = row[0] if row else 0
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{self.path} has memory schema version {version}, newer than this "
                    f"bijou's ({SCHEMA_VERSION}): upgrade bijou or point memory.url elsewhere"
                )
            for statement in pending(((1, _SCHEMA_V1), (2, _SCHEMA_V2)), version):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO bijou_meta (key, value) VALUES ('schema', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (SCHEMA_VERSION,),
            )

    def close(self) -> None:
        with self._lock:
            if self._raw is not None:
                self._raw.close()
                self._raw = None

    @contextmanager
    def _transaction(self, write: bool = False) -> Iterator[_Connection]:  # type: ignore[override]
        with self._lock:
            if self._raw is None:
                raise RuntimeError(f"the session store at {self.path} is closed")
            if self._raw.broken or self._raw.closed:
                # The server restarted or the network dropped: the next transaction reconnects
                # (the one that saw it failed and was not committed).
                self._raw = self._connect()
            with self._raw.transaction():
                yield _Connection(self._raw)
