"""Where the state that every process shares lives: SQLite files on one machine, or one PostgreSQL database.

The request ledger (api/quota.py), the write-back outbox (writeback/outbox.py) and detail staging
(warehouse/staging.py) must be seen by every process that talks to Precoro: that is what keeps all of them under
Precoro's limits together and what makes a payment go out once. By default each is a SQLite file in
PRECORO_STATE_DIR, which every process of one machine shares. Dagster deployments that run each run in its own
container (Kubernetes, ECS, Docker) have no shared disk: `PRECORO_DATABASE_URL=postgresql://...` moves all of
them into one PostgreSQL database instead, and every host then sees the same ledger and queue. The settings read
the variable; each store receives the URL from its caller (`connect(..., database_url=...)`).

The stores write their SQL once, in the dialect both databases speak (`?` and `:name` parameters,
`INSERT ... ON CONFLICT`, `RETURNING`); this module carries what differs:
- parameters: psycopg takes `%s` / `%(name)s`, so `?` and `:name` are rewritten outside string literals;
- one writer at a time: SQLite's `BEGIN IMMEDIATE` takes the database's write lock; on PostgreSQL a transaction
  takes a transaction-scoped advisory lock named after the store (`pg_advisory_xact_lock`), which every host
  waits for in turn and which is released by COMMIT, ROLLBACK or a dropped connection (a killed process holds
  nothing);
- types: epoch seconds are `DOUBLE PRECISION` (PostgreSQL's REAL has 24 bits: milliseconds lost), integers
  BIGINT (SQLite's are 64-bit), and a table
  that needs a row id declares `{row_id_column}` and names it `rowid` in statements (SQLite's implicit rowid; a
  BIGSERIAL column `id` on PostgreSQL); `{serial_key}` is an increasing integer key.

Why not SQLAlchemy: three small stores of a few statements each, whose value is in their transactions; a
translation of two parameter styles and one lock statement is shorter than an ORM's session rules.

The URL holds the database password: it is never logged nor put into an exception (see `describe_url`).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Text outside single-quoted literals: placeholders are rewritten only there.
_LITERAL_OR_PLACEHOLDER = re.compile(r"('(?:[^']|'')*')|(\?)|(?<![:\w]):([A-Za-z_]\w*)|\b(rowid)\b")


class SharedStateUnavailable(RuntimeError):  # noqa: N818 - a state, like QuotaExhausted
    """The PostgreSQL database of PRECORO_DATABASE_URL cannot be reached: nothing may be sent to Precoro."""


def describe_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("host", "")
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{parts.username or ''}@{host}{port}{parts.path}"


def _to_psycopg(sql: str) -> str:
    """`?` and `:name` parameters as psycopg's `%s` and `%(name)s`, and SQLite's `rowid` as the `id` column
    (outside string literals); every literal percent sign doubled, since psycopg reads placeholders anywhere."""
    def replace(match: re.Match[str]) -> str:
        literal, question, name, rowid = match.groups()
        if literal is not None:
            return literal
        if rowid:
            return "id"
        return "%s" if question else f"%({name})s"
    return _LITERAL_OR_PLACEHOLDER.sub(replace, sql.replace("%", "%%"))


def _lock_id(name: str) -> int:
    """A stable signed 64-bit advisory lock id for a store's name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class StateConnection:
    """One connection to the shared state, SQLite or PostgreSQL, with the few operations our stores use."""

    def __init__(self, raw: Any, dialect: str, lock_name: str) -> None:
        self.raw = raw
        self.dialect = dialect
        self.lock_name = lock_name

    @property
    def postgres(self) -> bool:
        return self.dialect == "postgres"

    def _sql(self, sql: str) -> str:
        return _to_psycopg(sql) if self.postgres else sql

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        """Run one statement; the cursor has fetchone/fetchall/rowcount and iterates over rows."""
        return self.raw.execute(self._sql(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.postgres:
            with self.raw.cursor() as cursor:
                cursor.executemany(self._sql(sql), rows)
        else:
            self.raw.executemany(sql, rows)

    def create(self, ddl: str) -> None:
        """Create tables and indexes (`IF NOT EXISTS`) from DDL written for SQLite; see the module docstring."""
        if self.postgres:
            ddl = re.sub(r"--[^\n]*", "", ddl)  # comments may hold a ';', which splits statements below
            ddl = re.sub(r"\bINTEGER\b", "BIGINT", re.sub(r"\bREAL\b", "DOUBLE PRECISION", ddl))
            ddl = ddl.replace("{serial_key}", "BIGSERIAL PRIMARY KEY").replace("{row_id_column}", "id BIGSERIAL PRIMARY KEY,")
            with self.write_transaction():  # two hosts creating the same table at once: one after the other
                for statement in filter(str.strip, ddl.split(";")):
                    self.raw.execute(statement)
        else:
            ddl = ddl.replace("{serial_key}", "INTEGER PRIMARY KEY AUTOINCREMENT")
            self.raw.executescript(ddl.replace("{row_id_column}", ""))

    @property
    def in_transaction(self) -> bool:
        if self.postgres:
            from psycopg.pq import TransactionStatus
            return self.raw.info.transaction_status != TransactionStatus.IDLE
        return self.raw.in_transaction

    def begin_write(self) -> None:
        """Start a transaction that no other writer of this store (any process, any host) overlaps."""
        if self.postgres:
            self.raw.execute("BEGIN")
            self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_id(self.lock_name),))
        else:
            self.raw.execute("BEGIN IMMEDIATE")

    @contextmanager
    def write_transaction(self) -> Iterator[StateConnection]:
        """`begin_write`, then COMMIT, or ROLLBACK on any exception."""
        self.begin_write()
        try:
            yield self
            self.raw.execute("COMMIT")
        except BaseException:
            if self.in_transaction:
                self.raw.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.raw.close()


def connect(sqlite_path: Path, *, database_url: str | None = None, synchronous: str = "NORMAL",
            timeout: float = 60.0, rows_as_dicts: bool = False, read_only: bool = False) -> StateConnection:
    """A connection to one store: PostgreSQL at `database_url` (PRECORO_DATABASE_URL, which the caller read from
    the settings) when given, else the SQLite file `sqlite_path` (its name, without suffix, also names the store's
    advisory lock on PostgreSQL).

    Statements run in autocommit mode; `write_transaction` groups them. `rows_as_dicts` gives rows that
    `dict(row)` and `row["column"]` read on both."""
    url = database_url
    lock_name = f"precoro-assets:{Path(sqlite_path).stem}"
    if url is not None:
        return StateConnection(_connect_postgres(url, rows_as_dicts, timeout), "postgres", lock_name)
    if read_only:
        con = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True, timeout=timeout, isolation_level=None,
                              check_same_thread=False)
    else:
        Path(sqlite_path).parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(sqlite_path, timeout=timeout, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
    if rows_as_dicts:
        con.row_factory = sqlite3.Row
    return StateConnection(con, "sqlite", lock_name)


def _connect_postgres(url: str, rows_as_dicts: bool, timeout: float) -> Any:
    try:
        import psycopg
        from psycopg.rows import dict_row, tuple_row
    except ImportError as exc:  # pragma: no cover - psycopg is a dependency
        raise RuntimeError("PRECORO_DATABASE_URL needs psycopg: pip install 'psycopg[binary]'") from exc
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(timeout)),
                               row_factory=dict_row if rows_as_dicts else tuple_row)
    except psycopg.OperationalError as exc:
        # psycopg's message may quote the connection string: say where, without the password
        raise SharedStateUnavailable(f"cannot connect to the shared-state database {describe_url(url)} "
                           f"(PRECORO_DATABASE_URL): {type(exc).__name__}; check that PostgreSQL is running there "
                           "and that the user and password are right") from None



@contextmanager
def advisory_lock(name: str, timeout_s: float, url: str) -> Iterator[bool]:
    """Hold PostgreSQL's session-level advisory lock `name` (all hosts wait for it in turn) in the database at
    `url` for the block; yields False, holding nothing, when it stayed taken for `timeout_s`. A killed holder's
    connection drops, and the server releases its lock at once."""
    con = _connect_postgres(url, rows_as_dicts=False, timeout=60.0)
    try:
        import psycopg

        if timeout_s <= 0:
            (taken,) = con.execute("SELECT pg_try_advisory_lock(%s)", (_lock_id(name),)).fetchone()
            if not taken:
                yield False
                return
        else:
            con.execute(f"SET lock_timeout = {int(max(1.0, timeout_s * 1000))}")
            try:
                con.execute("SELECT pg_advisory_lock(%s)", (_lock_id(name),))
            except psycopg.errors.LockNotAvailable:
                yield False
                return
        try:
            yield True
        finally:
            con.execute("SELECT pg_advisory_unlock(%s)", (_lock_id(name),))
    finally:
        con.close()
