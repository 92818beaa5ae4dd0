"""The warehouse: connections and atomic writes.

Storage is DuckLake (SQLite catalog + local Parquet files) so that parallel partition runs, sensors and an
analyst's open DuckDB session can all use the warehouse at once; see docs/storage.md for the evidence.

Two rules make concurrent writers safe with the SQLite catalog of ducklake 1.5.5:
- every write transaction runs under one cross-process lock file (``write.lock``), because two overlapping
  DuckLake commits on a SQLite catalog make the later one fail with "database is locked" instead of being
  resolved by DuckLake's own retry;
- a failed attempt is rolled back and retried from scratch with back-off (writers that do not use this module,
  such as an analyst writing by hand, can still collide with us).
Readers take no lock: the catalog runs in SQLite WAL mode, where readers and writers never block each other.

SQL safety: every value that comes from data is a bound parameter or a registered Arrow table. Identifiers
(tables, columns) and type names come from our own code; they are quoted or checked, never taken from the API.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

import duckdb
import pandas as pd
import pyarrow as pa

from ..runtime import shared_state
from ..runtime.process_lock import ProcessLock
from . import remote
from .tables import one_row

log = logging.getLogger(__name__)

T = TypeVar("T")
Frame: TypeAlias = "pa.Table | pd.DataFrame"  # what the write helpers take: Arrow, or pandas

CATALOG_ALIAS = "warehouse"
SCHEMA = "precoro"
DEFAULT_LOCATION = Path(__file__).resolve().parents[2] / "var" / "warehouse"

# Retries of a whole write attempt: 0.1 s doubling to 5 s, ~25 s in total before giving up.
MAX_ATTEMPTS = 10
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0
# How long a writer waits for the write lock; holders keep it only for one short transaction.
LOCK_TIMEOUT_S = 600.0
# SQLite's own wait for a locked catalog, in ms.
META_BUSY_TIMEOUT_MS = 10_000

_TYPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_ (),]*$")
_INCOMING = "_incoming"
_INCOMING_RAW = "_incoming_raw"


# One DuckDB instance per process and warehouse catalog file (see Warehouse._session).
_SHARED: dict[tuple[int, str], tuple[tuple[int, int], duckdb.DuckDBPyConnection]] = {}
_SHARED_LOCK = threading.Lock()
_READY_CATALOGS: set[str] = set()  # PostgreSQL catalogs this process has seen complete (see _ensure_created)


class WarehouseBusyError(TimeoutError):
    """The write lock could not be taken in time (another writer is stuck holding it)."""


@dataclass(frozen=True)
class WriteResult:
    """What a write changed, for materialization metadata."""

    rows_deleted: int
    rows_written: int


def _extension_file(package: str, name: str) -> Path:
    """The .duckdb_extension file shipped inside a duckdb-extension-* wheel, so nothing is downloaded."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"Python package {package} is not installed; it ships the DuckDB '{name}' extension")
    for root in spec.submodule_search_locations:
        found = sorted(Path(root).rglob(f"{name}.duckdb_extension"))
        if found:
            return found[-1]
    raise RuntimeError(f"{package} contains no {name}.duckdb_extension file")


def extension_files(catalog_on_postgres: bool = False, data_on_object_storage: bool = False) -> list[Path]:
    """The extension files to LOAD, in order: the catalog's scanner (SQLite, or PostgreSQL) and httpfs for object
    storage first, DuckLake needs them."""
    return [
        _extension_file("duckdb_extension_postgres_scanner", "postgres_scanner") if catalog_on_postgres
        else _extension_file("duckdb_extension_sqlite_scanner", "sqlite_scanner"),
        *([_extension_file("duckdb_extension_httpfs", "httpfs")] if data_on_object_storage else []),
        _extension_file("duckdb_extension_ducklake", "ducklake"),
    ]


def quote_ident(name: str) -> str:
    """Quote an identifier from our own catalogue (table or column name)."""
    if not name:
        raise ValueError("empty SQL identifier")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """Quote a string for the few statements that take no parameters (COMMENT ON, LOAD, ATTACH)."""
    return "'" + text.replace("'", "''") + "'"


def _check_type(sql_type: str) -> str:
    if not _TYPE_RE.match(sql_type):
        raise ValueError(f"not a plain SQL type name: {sql_type!r}")
    return sql_type


def is_retryable(exc: BaseException) -> bool:
    """Commit races and catalog locks are worth another attempt; anything else is a real error."""
    if not isinstance(exc, duckdb.Error):
        return False
    message = str(exc).lower()
    return (
        isinstance(exc, duckdb.TransactionException)
        or "database is locked" in message
        or "conflict" in message
    )


def retrying(attempt: Callable[[], T], what: str) -> T:
    """Run attempt() until it succeeds, retrying only on lock/conflict errors, with back-off."""
    backoff = FIRST_BACKOFF_S
    for number in range(1, MAX_ATTEMPTS + 1):
        try:
            return attempt()
        except duckdb.Error as exc:
            if not is_retryable(exc) or number == MAX_ATTEMPTS:
                raise
            log.warning("%s: attempt %d failed (%s); retrying in %.2f s", what, number, exc, backoff)
        time.sleep(backoff * (0.5 + random.random()))  # noqa: S311 - jitter, not security
        backoff = min(backoff * 2, MAX_BACKOFF_S)
    raise AssertionError("unreachable")


def new_session(extensions: Sequence[Path]) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with `extensions` loaded, in UTC. No network (no autoinstall) and no Python replacement
    scans: a typo must not read a local variable."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "python_enable_replacements": False})
    try:
        for path in extensions:
            con.execute(f"LOAD {quote_literal(str(path))}")
        con.execute("SET TimeZone = 'UTC'")
    except BaseException:
        con.close()
        raise
    return con


def _as_arrow(rows: Frame) -> pa.Table:
    if isinstance(rows, pd.DataFrame):
        return pa.Table.from_pandas(rows, preserve_index=False)
    if isinstance(rows, pa.Table):
        return rows
    raise TypeError(f"rows must be a pyarrow.Table or a pandas.DataFrame, not {type(rows).__name__}")


class Warehouse:
    """The DuckLake warehouse in one directory: ``catalog.sqlite``, ``data/`` (Parquet) and ``write.lock``; or,
    for runs on several hosts, its catalog in PostgreSQL and its files in object storage (see warehouse.remote)."""

    def __init__(self, location: str | Path | None = None, *, database_url: str | None = None,
                 object_storage: remote.ObjectStorage | None = None, lock_timeout_s: float = LOCK_TIMEOUT_S) -> None:
        """`location` is PRECORO_WAREHOUSE (the settings' `warehouse`); `database_url` (PRECORO_DATABASE_URL) puts
        the catalog in PostgreSQL and `object_storage` (PRECORO_WAREHOUSE_DATA_PATH, PRECORO_S3_*) the Parquet
        files in a bucket: the caller passes what the settings read (`Settings.warehouse_options()`)."""
        if location is None:
            location = DEFAULT_LOCATION
        self.location = Path(location).expanduser().resolve()
        self.catalog_path = self.location / "catalog.sqlite"
        self.data_path = self.location / "data"
        self.lock_path = self.location / "write.lock"
        self.lock_timeout_s = lock_timeout_s
        self.database_url = database_url  # the catalog in PostgreSQL, when set
        self.object_storage = object_storage
        self.remote_data_path = object_storage.data_path if object_storage is not None else None
        self._created = False

    def __repr__(self) -> str:
        return f"Warehouse({str(self.location)!r})"

    # ----------------------------------------------------------------------------------------------- connections

    @property
    def data_location(self) -> str:
        """Where the Parquet files are: the object-storage URL, or the local data directory."""
        return self.remote_data_path or str(self.data_path) + os.sep

    def extension_files(self) -> list[Path]:
        return extension_files(self.database_url is not None, self.remote_data_path is not None)

    def attach_sql(self, *, read_only: bool, catalog_path: Path | None = None, alias: str = CATALOG_ALIAS) -> str:
        """The ATTACH statement; the data path is always given so a moved warehouse directory still works. A
        PostgreSQL catalog is reached through the `precoro_catalog` secret (no password in this text). `alias`:
        the catalog's name in the session (a company's, when several are attached: warehouse/companies.py)."""
        options = [f"DATA_PATH {quote_literal(self.data_location)}", "OVERRIDE_DATA_PATH TRUE"]
        if self.database_url is not None:
            options.append(f"METADATA_PARAMETERS MAP {{'TYPE': 'postgres', 'SECRET': '{remote.CATALOG_SECRET}'}}")
            target = quote_literal(f"ducklake:dbname={remote.catalog_parts(self.database_url)['DATABASE']}")
        else:
            options += ["META_JOURNAL_MODE 'WAL'", f"META_BUSY_TIMEOUT {META_BUSY_TIMEOUT_MS}"]
            target = quote_literal(f"ducklake:sqlite:{catalog_path or self.catalog_path}")
        if read_only:
            options.append("READ_ONLY")
        name = alias if alias == CATALOG_ALIAS else quote_ident(alias)
        return f"ATTACH {target} AS {name} ({', '.join(options)})"

    def _create_secrets(self, con: duckdb.DuckDBPyConnection) -> None:
        """The catalog's and the bucket's credentials, as secrets of this connection only. A failure is reported
        without the statement, which holds them."""
        statements = [remote.catalog_secret_sql(self.database_url)] if self.database_url is not None else []
        storage = remote.storage_secret_sql(self.object_storage) if self.object_storage is not None else None
        statements += [storage] if storage else []
        for statement in statements:
            try:
                con.execute(statement)
            except duckdb.Error as exc:
                raise RuntimeError(f"DuckDB refused the warehouse's credentials ({type(exc).__name__}); check "
                                   "PRECORO_DATABASE_URL and the PRECORO_S3_* settings") from None

    def _open(self, *, read_only: bool, catalog_path: Path | None = None) -> duckdb.DuckDBPyConnection:
        con = new_session(self.extension_files())
        try:
            self._create_secrets(con)
            con.execute(self.attach_sql(read_only=read_only, catalog_path=catalog_path))
            con.execute(f"USE {CATALOG_ALIAS}")
        except BaseException:
            con.close()
            raise
        return con

    def _ensure_created(self) -> None:
        """Create the directory, catalog and schema on first use.

        The catalog is built under a temporary name and renamed into place, so ``catalog.sqlite`` existing
        means it is complete; the write lock makes parallel first runs build it only once.
        """
        if self._created:
            return
        if self.database_url is not None:
            # DuckLake creates its tables on the first ATTACH; hosts starting at once do it one after the other.
            # Only when it is missing: a reader must never wait for the write lock (a writer may hold it for long).
            if self._catalog_name in _READY_CATALOGS or self._postgres_catalog_ready():
                _READY_CATALOGS.add(self._catalog_name)
                self._created = True
                return
            with self._write_lock():
                con = self._open(read_only=False)
                try:
                    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
                finally:
                    con.close()
            self._created = True
            return
        if self.catalog_path.exists():
            self._created = True
            return
        if self.remote_data_path is None:
            self.data_path.mkdir(parents=True, exist_ok=True)
        self.location.mkdir(parents=True, exist_ok=True)
        with self._write_lock():
            if not self.catalog_path.exists():
                building = self.catalog_path.with_name(self.catalog_path.name + ".new")
                for leftover in self.location.glob(building.name + "*"):  # from a crash while building
                    leftover.unlink()
                con = self._open(read_only=False, catalog_path=building)
                try:
                    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
                finally:
                    con.close()
                os.replace(building, self.catalog_path)
        self._created = True

    def _postgres_catalog_ready(self) -> bool:
        """Whether the PostgreSQL catalog exists with our schema (no lock taken)."""
        con = shared_state.connect(self.catalog_path, database_url=self.database_url)
        try:
            if con.execute("SELECT to_regclass('ducklake_schema')").fetchone()[0] is None:
                return False
            return con.execute("SELECT count(*) FROM ducklake_schema WHERE schema_name = ? AND end_snapshot IS NULL",
                               [SCHEMA]).fetchone()[0] > 0
        finally:
            con.close()

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A fresh connection with the warehouse attached and USEd; write through ``write()`` to be safe."""
        self._ensure_created()
        con = self._open(read_only=read_only)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for our own reads (it never blocks writers and sees the latest committed snapshot).

        The reads run in one transaction: they see one snapshot (a check's queries agree with each other), and
        DuckLake looks a table's files up in the catalog once per transaction rather than once per query (a
        table scan costs about half as much; the checks scan each table several times).

        For SQL we did not write (an analyst's query), use ``query()``: it runs on a read-only connection.
        """
        with self._session() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            finally:
                try:
                    con.execute("ROLLBACK")  # nothing to keep: a read
                except duckdb.Error:
                    pass  # a failed statement has already ended the transaction

    @contextmanager
    def _session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on this process's shared DuckDB instance, with the warehouse USEd.

        Opening an instance (LOAD the extensions, ATTACH the catalog) costs 0.1-0.4 s and a sync reads and
        writes hundreds of times, so each process keeps one per catalog file and every use takes a cursor of it
        (a cursor is a connection of its own: its transaction, temp tables and registrations are private).
        Each transaction still reads the catalog's latest snapshot, so other processes' commits are seen.
        A forked process, or a catalog file replaced under us, gets a new instance.
        """
        self._ensure_created()
        if self.database_url is not None:
            identity: tuple = (self.database_url, self.data_location)
        else:
            state = os.stat(self.catalog_path)
            identity = (state.st_dev, state.st_ino)
        key = (os.getpid(), self._catalog_name)
        with _SHARED_LOCK:
            shared = _SHARED.get(key)
            if shared is None or shared[0] != identity:
                if shared is not None:
                    shared[1].close()
                shared = (identity, self._open(read_only=False))
                _SHARED[key] = shared
            cursor = shared[1].cursor()
        try:
            cursor.execute("SET TimeZone = 'UTC'")
            cursor.execute(f"USE {CATALOG_ALIAS}")
            yield cursor
        finally:
            cursor.close()

    def _forget_session(self) -> None:
        """Drop this process's shared instance (after a failed write, so the next attempt starts clean)."""
        with _SHARED_LOCK:
            shared = _SHARED.pop((os.getpid(), self._catalog_name), None)
        if shared is not None:
            shared[1].close()

    @property
    def _catalog_name(self) -> str:
        """Names this warehouse's catalog among the instances a process keeps (no password in it)."""
        if self.database_url is not None:
            return f"{shared_state.describe_url(self.database_url)} {self.data_location}"
        return str(self.catalog_path)

    def _write_lock(self) -> AbstractContextManager[None]:
        """The cross-process writer lock; the kernel drops it if its holder dies (even on kill -9). With a
        PostgreSQL catalog, an advisory lock there: the writers of every host take turns."""
        return self._write_lock_waiting(self.lock_timeout_s)

    @contextmanager
    def _write_lock_waiting(self, timeout_s: float) -> Iterator[None]:
        if self.database_url is not None:
            with shared_state.advisory_lock("precoro-assets:warehouse", timeout_s, self.database_url) as held:
                if not held:
                    raise WarehouseBusyError(f"no warehouse write lock after {timeout_s:.0f} s")
                yield
            return
        lock = ProcessLock(self.lock_path)
        try:
            if not lock.acquire(timeout=timeout_s):
                raise WarehouseBusyError(f"no write lock on {self.lock_path} after {timeout_s:.0f} s")
            try:
                yield
            finally:
                lock.release()
        finally:
            lock.close()

    def write_lock_is_free(self) -> bool:
        """Whether no writer holds the write lock right now (diagnostics: a dead writer's lock is always free)."""
        try:
            with self._write_lock_waiting(0.0):
                return True
        except WarehouseBusyError:
            return False

    def _retrying(self, attempt: Callable[[], T], what: str) -> T:
        return retrying(attempt, what)

    def write(self, fn: Callable[[duckdb.DuckDBPyConnection], T], *, what: str = "write") -> T:
        """Run fn(con) in one transaction under the write lock; on a conflict the whole attempt is redone.

        fn must only stage and write (it may run more than once); the transaction is all-or-nothing, so a crash
        at any point leaves the previous committed state.
        """
        self._ensure_created()

        def attempt() -> T:
            try:
                with self._session() as con, self._write_lock():
                    con.execute("BEGIN TRANSACTION")
                    try:
                        result = fn(con)
                        con.execute("COMMIT")
                    except BaseException:
                        try:
                            con.execute("ROLLBACK")
                        except duckdb.Error:
                            pass  # a failed COMMIT has already ended the transaction
                        raise
                    return result
            except duckdb.Error:
                self._forget_session()
                raise

        return self._retrying(attempt, what)

    def read(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run fn(con) with our own read queries, retrying if the catalog was momentarily locked."""

        def attempt() -> T:
            with self.reader() as con:
                return fn(con)

        return self._retrying(attempt, "read")

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None,
              integer_nulls_as_none: bool = False) -> pd.DataFrame:
        """Run a query on a read-only connection (any SQL, an analyst's too); it never blocks materializations.

        Decimals come back as exact ``decimal.Decimal`` values (via Arrow), not floats. With
        `integer_nulls_as_none`, an integer column holding NULLs keeps its integers (and None), instead of
        pandas' floats and NaN.
        """

        def attempt() -> pd.DataFrame:
            with self.connect(read_only=True) as con:
                return con.execute(sql, params).to_arrow_table().to_pandas(integer_object_nulls=integer_nulls_as_none)

        return self._retrying(attempt, "query")

    # ------------------------------------------------------------------------------------------------- writes

    def replace_partition(
        self,
        table: str,
        partition_column: str,
        partition_value: Any,
        rows: Frame,
        *,
        key_columns: Sequence[str] = (),
        column_types: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Make the partition hold exactly ``rows``: delete + insert in one transaction (old or new, never a mix).

        Every row must carry ``partition_value`` in ``partition_column``; ``key_columns``, if given, must be
        unique and not null. The table is created on first use and gains any new columns.
        """
        incoming = _as_arrow(rows)
        if incoming.num_rows and partition_column not in incoming.column_names:
            raise ValueError(f"rows for {table} have no partition column {partition_column!r}")

        def fn(con: duckdb.DuckDBPyConnection) -> WriteResult:
            # No rows without even the partition column: nothing to stage, the partition just becomes empty.
            if partition_column not in incoming.column_names or not _stage(con, table, incoming, column_types):
                return WriteResult(_delete_rows(con, table, partition_column, partition_value), 0)
            stray = one_row(con,
                f"SELECT count(*) FROM {_INCOMING} WHERE {quote_ident(partition_column)} IS DISTINCT FROM ?",  # noqa: S608
                [partition_value],
            )[0]
            if stray:
                raise ValueError(f"{stray} row(s) for {table} are not in partition {partition_value!r}")
            _check_keys(con, table, key_columns)
            deleted = _delete_rows(con, table, partition_column, partition_value)
            return WriteResult(deleted, _insert_incoming(con, table))

        return self.write(fn, what=f"replace {table} {partition_column}={partition_value}")

    def upsert(
        self,
        table: str,
        key_columns: Sequence[str],
        rows: Frame,
        *,
        column_types: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Insert or fully replace rows by key, atomically (for reference data fetched with modifiedSince)."""
        if not key_columns:
            raise ValueError("upsert needs at least one key column")
        incoming = _as_arrow(rows)
        missing = [k for k in key_columns if k not in incoming.column_names]
        if incoming.num_rows and missing:
            raise ValueError(f"rows for {table} lack key column(s) {missing}")
        target = _table_ref(table)
        match = " AND ".join(f"{target}.{quote_ident(k)} = s.{quote_ident(k)}" for k in key_columns)
        keys = ", ".join(quote_ident(k) for k in key_columns)

        def fn(con: duckdb.DuckDBPyConnection) -> WriteResult:
            if not incoming.num_rows or not _stage(con, table, incoming, column_types):
                return WriteResult(0, 0)
            _check_keys(con, table, key_columns)
            deleted = one_row(con,
                f"DELETE FROM {target} USING (SELECT {keys} FROM {_INCOMING}) AS s WHERE {match}"  # noqa: S608
            )[0]
            return WriteResult(int(deleted), _insert_incoming(con, table))

        return self.write(fn, what=f"upsert {table}")

    def replace_all(
        self,
        table: str,
        rows: Frame,
        *,
        key_columns: Sequence[str] = (),
        column_types: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Replace the whole table's rows in one transaction (full refresh; catches removals)."""
        incoming = _as_arrow(rows)

        def fn(con: duckdb.DuckDBPyConnection) -> WriteResult:
            if not _stage(con, table, incoming, column_types):
                return WriteResult(_delete_rows(con, table), 0)
            _check_keys(con, table, key_columns)
            deleted = _delete_rows(con, table)
            return WriteResult(deleted, _insert_incoming(con, table))

        return self.write(fn, what=f"replace all of {table}")

    # ---------------------------------------------------------------------------------------- descriptions, views

    def describe(
        self, table: str, table_description: str, column_descriptions: Mapping[str, str] | None = None
    ) -> None:
        """Store descriptions as DuckDB comments, which analysts read from duckdb_tables()/duckdb_columns().

        COMMENT ON takes no parameters, so the text (ours, not API data) is quoted as a literal.
        """
        target = _table_ref(table)

        def fn(con: duckdb.DuckDBPyConnection) -> None:
            con.execute(f"COMMENT ON TABLE {target} IS {quote_literal(table_description)}")
            for column, text in (column_descriptions or {}).items():
                con.execute(f"COMMENT ON COLUMN {target}.{quote_ident(column)} IS {quote_literal(text)}")

        self.write(fn, what=f"describe {table}")

    def create_or_replace_view(self, name: str, sql: str, description: str) -> None:
        """Create an analyst view in the warehouse (visible to anyone who attaches it) with its description.

        ``sql`` is our own SELECT; it should name tables as ``precoro.<table>`` (views resolve inside the
        warehouse, whatever alias the analyst attached it under).
        """
        target = _table_ref(name)

        def fn(con: duckdb.DuckDBPyConnection) -> None:
            con.execute(f"CREATE OR REPLACE VIEW {target} AS {sql}")
            con.execute(f"COMMENT ON VIEW {target} IS {quote_literal(description)}")

        self.write(fn, what=f"view {name}")

    # ------------------------------------------------------------------------------------------- maintenance

    def maintain(self, older_than_days: int = 7) -> None:
        """Merge small Parquet files and drop files only snapshots older than N days still need.

        Every commit writes at least one file per table, so run this daily. Snapshots younger than N days (and
        analysts' time travel into them) stay intact; files of a killed writer are removed after N days.
        """
        days = int(older_than_days)
        calls = [
            f"CALL ducklake_merge_adjacent_files('{CATALOG_ALIAS}')",
            f"CALL ducklake_expire_snapshots('{CATALOG_ALIAS}', older_than => now() - INTERVAL {days} DAY)",
            f"CALL ducklake_cleanup_old_files('{CATALOG_ALIAS}', older_than => now() - INTERVAL {days} DAY)",
            f"CALL ducklake_delete_orphaned_files('{CATALOG_ALIAS}', older_than => now() - INTERVAL {days} DAY)",
        ]
        self._ensure_created()

        def attempt() -> None:
            with self._write_lock(), self.connect() as con:
                for call in calls:
                    con.execute(call)

        self._retrying(attempt, "maintain")

    # ---------------------------------------------------------------------------------------------- analysts

    def analyst_snippet(self, credentials: bool = False) -> str:
        """The SQL an analyst pastes into the duckdb CLI (1.5.5) or ``duckdb.connect().execute(...)``. A catalog in
        PostgreSQL or files in object storage need secrets: the password and keys are placeholders unless
        `credentials` (for a program of ours that runs with the same settings)."""
        loads = "\n".join(f"LOAD {quote_literal(str(path))};" for path in self.extension_files())
        secrets = "".join(f"{statement};\n" for statement in remote.analyst_secrets(
            self.database_url, self.object_storage, reveal=credentials))
        extensions = ["postgres" if self.database_url is not None else "sqlite",
                      *(["httpfs"] if self.remote_data_path is not None else []), "ducklake"]
        return (
            "-- Precoro warehouse, read-only; never blocks the pipeline. DuckDB 1.5.5.\n"
            f"-- Online you may instead run once: {' '.join(f'INSTALL {e};' for e in extensions)}  then: "
            f"{' '.join(f'LOAD {e};' for e in extensions)}\n"
            f"{loads}\n{secrets}"
            f"{self.attach_sql(read_only=True)};\n"
            f"USE {CATALOG_ALIAS};\n"
            f"SELECT table_name, comment FROM duckdb_tables() WHERE database_name = '{CATALOG_ALIAS}';\n"
        )


# ------------------------------------------------------------------------------------------------- helpers


def _table_ref(table: str) -> str:
    return f"{SCHEMA}.{quote_ident(table)}"


def _table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    found = one_row(con,
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? AND table_name = ?",
        [CATALOG_ALIAS, SCHEMA, table],
    )[0]
    return bool(found)


def _delete_rows(
    con: duckdb.DuckDBPyConnection, table: str, partition_column: str | None = None, value: Any = None
) -> int:
    """Delete one partition's rows (or all rows); a table that does not exist yet has none."""
    if not _table_exists(con, table):
        return 0
    if partition_column is None:
        return int(one_row(con, f"DELETE FROM {_table_ref(table)}")[0])  # noqa: S608 - identifiers only
    sql = f"DELETE FROM {_table_ref(table)} WHERE {quote_ident(partition_column)} = ?"  # noqa: S608
    return int(one_row(con, sql, [value])[0])


def _insert_incoming(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Insert the staged rows by column name: columns the rows lack stay NULL."""
    sql = f"INSERT INTO {_table_ref(table)} BY NAME SELECT * FROM {_INCOMING}"  # noqa: S608 - identifiers only
    return int(one_row(con, sql)[0])


def _existing_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns()"
        " WHERE database_name = ? AND schema_name = ? AND table_name = ? ORDER BY column_index",
        [CATALOG_ALIAS, SCHEMA, table],
    ).fetchall()
    return dict(rows)


def _stage(
    con: duckdb.DuckDBPyConnection, table: str, incoming: pa.Table, column_types: Mapping[str, str] | None
) -> bool:
    """Load the rows into temp table _incoming (typed), then create/evolve the target table to fit them.

    Returns False when the rows have no columns at all (nothing to create or insert).
    """
    if not incoming.num_columns:
        return False
    types = dict(column_types or {})
    select = []
    for field in incoming.schema:
        column = quote_ident(field.name)
        if field.name in types:
            select.append(f"CAST({column} AS {_check_type(types[field.name])}) AS {column}")
        elif pa.types.is_null(field.type):  # an all-None column: keep it text rather than guess a type
            select.append(f"CAST({column} AS VARCHAR) AS {column}")
        else:
            select.append(column)
    con.register(_INCOMING_RAW, incoming)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_INCOMING} AS SELECT {', '.join(select)} FROM {_INCOMING_RAW}")  # noqa: S608
    con.unregister(_INCOMING_RAW)
    incoming_columns = [(row[0], row[1]) for row in con.execute(f"DESCRIBE {_INCOMING}").fetchall()]

    target = _table_ref(table)
    existing = _existing_columns(con, table)
    if not existing:
        columns = ", ".join(f"{quote_ident(name)} {sql_type}" for name, sql_type in incoming_columns)
        con.execute(f"CREATE TABLE IF NOT EXISTS {target} ({columns})")
    else:
        for name, sql_type in incoming_columns:
            if name not in existing:
                log.info("schema evolution: adding %s.%s %s", table, name, sql_type)
                con.execute(f"ALTER TABLE {target} ADD COLUMN {quote_ident(name)} {sql_type}")
    return True


def _check_keys(con: duckdb.DuckDBPyConnection, table: str, key_columns: Sequence[str]) -> None:
    """Refuse null or duplicate keys: either would make the next upsert/replace ambiguous."""
    if not key_columns:
        return
    keys = ", ".join(quote_ident(k) for k in key_columns)
    nulls = " OR ".join(f"{quote_ident(k)} IS NULL" for k in key_columns)
    null_count = one_row(con, f"SELECT count(*) FROM {_INCOMING} WHERE {nulls}")[0]  # noqa: S608
    if null_count:
        raise ValueError(f"{null_count} row(s) for {table} have a null key ({', '.join(key_columns)})")
    duplicates = one_row(con,
        f"SELECT count(*) FROM (SELECT {keys} FROM {_INCOMING} GROUP BY ALL HAVING count(*) > 1)"  # noqa: S608
    )[0]
    if duplicates:
        raise ValueError(f"{duplicates} key(s) for {table} occur more than once ({', '.join(key_columns)})")
