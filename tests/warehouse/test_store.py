"""The warehouse store: atomic writes, schema evolution, types, descriptions, concurrency and crashes.

The concurrency and crash tests run real processes; this file is also their worker script
(``python test_store.py writer|reader|hang|loop ...``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from precoro_assets import settings
from precoro_assets.warehouse import store
from precoro_assets.warehouse.store import Warehouse


def open_warehouse(location: str | Path) -> Warehouse:
    """The warehouse at `location`, its catalog and files where the settings say (PRECORO_DATABASE_URL,
    PRECORO_WAREHOUSE_DATA_PATH, ...: see the warehouse_backend fixture), as the product's callers open it."""
    return Warehouse(location, **settings.load_state().warehouse_options())

PROJECT = Path(__file__).resolve().parents[2]
TABLE = "documents"
DAY = "partition_day"
TYPES = {"amount": "DECIMAL(18,2)", "raw": "JSON"}


def batch(day: str, version: int, rows: int) -> pa.Table:
    """One partition's rows; every row carries the version so a mix of two writes would show."""
    return pa.table(
        {
            DAY: pa.array([dt.date.fromisoformat(day)] * rows, pa.date32()),
            "id": pa.array(range(rows), pa.int64()),
            "version": pa.array([version] * rows, pa.int64()),
            "amount": pa.array([Decimal(f"{i}.{version % 100:02d}") for i in range(rows)], pa.decimal128(18, 2)),
            "raw": pa.array([json.dumps({"id": i, "version": version}) for i in range(rows)], pa.string()),
        }
    )


def partition_state(wh: Warehouse) -> dict[str, tuple[int, int, int]]:
    """Per partition: row count, lowest and highest version."""
    rows = wh.read(
        lambda con: con.execute(
            f"SELECT CAST({DAY} AS VARCHAR), count(*), min(version), max(version) FROM precoro.{TABLE} GROUP BY 1"
        ).fetchall()
    )
    return {day: (count, low, high) for day, count, low, high in rows}


def spawn(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.Popen([sys.executable, __file__, *args], env=env, text=True, **kwargs)


@pytest.fixture
def wh(tmp_path: Path, warehouse_backend: str) -> Warehouse:
    """A new warehouse: in a directory, then with its catalog in PostgreSQL and its files in S3 (each test runs
    on both)."""
    return open_warehouse(tmp_path / "warehouse")


# ---------------------------------------------------------------------------------------------- writes


def test_replace_partition_replaces_exactly_one_partition(wh: Warehouse) -> None:
    wh.replace_partition(TABLE, DAY, "2024-01-01", batch("2024-01-01", 1, 5), key_columns=["id"], column_types=TYPES)
    wh.replace_partition(TABLE, DAY, "2024-01-02", batch("2024-01-02", 1, 3), key_columns=["id"], column_types=TYPES)

    result = wh.replace_partition(TABLE, DAY, "2024-01-01", batch("2024-01-01", 2, 2), column_types=TYPES)

    assert result == store.WriteResult(rows_deleted=5, rows_written=2)
    assert partition_state(wh) == {"2024-01-01": (2, 2, 2), "2024-01-02": (3, 1, 1)}
    emptied = wh.replace_partition(TABLE, DAY, "2024-01-02", batch("2024-01-02", 3, 0), column_types=TYPES)
    assert emptied == store.WriteResult(rows_deleted=3, rows_written=0)
    assert partition_state(wh) == {"2024-01-01": (2, 2, 2)}


def test_a_refused_replace_leaves_the_old_partition(wh: Warehouse) -> None:
    wh.replace_partition(TABLE, DAY, "2024-01-01", batch("2024-01-01", 1, 4), column_types=TYPES)
    stray = pa.concat_tables([batch("2024-01-01", 2, 2), batch("2024-01-05", 2, 1)])
    duplicate = pa.concat_tables([batch("2024-01-01", 3, 2), batch("2024-01-01", 3, 1)])

    with pytest.raises(ValueError, match="not in partition"):
        wh.replace_partition(TABLE, DAY, "2024-01-01", stray, column_types=TYPES)
    with pytest.raises(ValueError, match="more than once"):
        wh.replace_partition(TABLE, DAY, "2024-01-01", duplicate, key_columns=["id"], column_types=TYPES)

    assert partition_state(wh) == {"2024-01-01": (4, 1, 1)}


def test_upsert_inserts_and_replaces_by_key(wh: Warehouse) -> None:
    wh.upsert("suppliers", ["id"], pd.DataFrame({"id": [1, 2], "name": ["Acme", "Globex"]}))
    result = wh.upsert("suppliers", ["id"], pd.DataFrame({"id": [2, 3], "name": ["Globex Ltd", "Initech"]}))

    assert result == store.WriteResult(rows_deleted=1, rows_written=2)
    rows = wh.read(lambda con: con.execute("SELECT id, name FROM precoro.suppliers ORDER BY id").fetchall())
    assert rows == [(1, "Acme"), (2, "Globex Ltd"), (3, "Initech")]
    with pytest.raises(ValueError, match="null key"):
        wh.upsert("suppliers", ["id"], pd.DataFrame({"id": pd.array([None], "Int64"), "name": ["?"]}))


def test_replace_all_drops_rows_that_are_gone(wh: Warehouse) -> None:
    wh.replace_all("taxes", pd.DataFrame({"id": [1, 2, 3], "rate": [0.1, 0.2, 0.3]}))
    wh.replace_all("taxes", pd.DataFrame({"id": [2], "rate": [0.25]}))

    assert wh.read(lambda con: con.execute("SELECT id, rate FROM precoro.taxes").fetchall()) == [(2, 0.25)]


def test_schema_evolution_adds_new_columns(wh: Warehouse) -> None:
    wh.replace_partition(TABLE, DAY, "2024-01-01", batch("2024-01-01", 1, 2), column_types=TYPES)
    newer = batch("2024-01-02", 1, 1).append_column("approved_by", pa.array(["Ann"])).drop_columns(["raw"])

    wh.replace_partition(TABLE, DAY, "2024-01-02", newer, column_types=TYPES)

    rows = wh.read(
        lambda con: con.execute(
            f"SELECT CAST({DAY} AS VARCHAR), id, approved_by, raw IS NULL FROM precoro.{TABLE} ORDER BY 1, 2"
        ).fetchall()
    )
    assert rows == [("2024-01-01", 0, None, False), ("2024-01-01", 1, None, False), ("2024-01-02", 0, "Ann", True)]


def test_decimal_timestamptz_and_json_round_trip(wh: Warehouse) -> None:
    moment = dt.datetime(2024, 3, 31, 23, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    raw = '{"total": "12345678901234.56", "lines": [{"price": 9.90}]}'
    frame = pd.DataFrame(
        {"id": [1, 2], "amount": [Decimal("12345678901234.56"), Decimal("-0.01")],
         "approved_at": [moment, None], "raw": [raw, "{}"]}
    )
    frame["approved_at"] = pd.to_datetime(frame["approved_at"], utc=True)

    wh.upsert("payments", ["id"], frame, column_types={"amount": "DECIMAL(18,2)", "raw": "JSON"})

    types = dict(wh.read(lambda con: con.execute("SELECT column_name, column_type FROM (DESCRIBE precoro.payments)")
                         .fetchall()))
    assert types == {"id": "BIGINT", "amount": "DECIMAL(18,2)", "approved_at": "TIMESTAMP WITH TIME ZONE",
                     "raw": "JSON"}
    rows = wh.read(lambda con: con.execute(
        "SELECT amount, approved_at, raw, raw->>'$.total' FROM precoro.payments ORDER BY id").fetchall())
    assert rows[0] == (Decimal("12345678901234.56"), moment, raw, "12345678901234.56")
    assert rows[1] == (Decimal("-0.01"), None, "{}", None)
    assert wh.query("SELECT sum(amount) AS total FROM precoro.payments")["total"][0] == Decimal("12345678901234.55")


@pytest.mark.e2e
def test_descriptions_and_views_are_visible_to_an_analyst_process(wh: Warehouse) -> None:
    wh.upsert("suppliers", ["id"], pd.DataFrame({"id": [1], "name": ["O'Brien & Co"]}))
    wh.describe("suppliers", "Suppliers, one row per supplier.", {"name": "The supplier's legal name."})
    wh.create_or_replace_view("supplier_names", "SELECT id, upper(name) AS name FROM precoro.suppliers",
                              "Supplier names in capitals.")
    analyst = (
        "import duckdb, json, sys\n"
        "con = duckdb.connect()\n"
        "con.execute(sys.argv[1])\n"
        "print(json.dumps([\n"
        "  con.execute(\"SELECT comment FROM duckdb_tables() WHERE table_name = 'suppliers'\").fetchall(),\n"
        "  con.execute(\"SELECT comment FROM duckdb_columns() WHERE table_name = 'suppliers' AND column_name = 'name'\")"
        ".fetchall(),\n"
        "  con.execute(\"SELECT comment FROM duckdb_views() WHERE view_name = 'supplier_names'\").fetchall(),\n"
        "  con.execute('SELECT name FROM precoro.supplier_names').fetchall()]))\n"
    )

    done = subprocess.run([sys.executable, "-c", analyst, wh.analyst_snippet(credentials=True)], capture_output=True, text=True,
                          check=True)

    assert json.loads(done.stdout) == [
        [["Suppliers, one row per supplier."]], [["The supplier's legal name."]], [["Supplier names in capitals."]],
        [["O'BRIEN & CO"]],
    ]


def test_location_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(settings.ENV_WAREHOUSE, str(tmp_path / "elsewhere"))
    assert settings.warehouse_dir() == (tmp_path / "elsewhere").resolve()
    monkeypatch.delenv(settings.ENV_WAREHOUSE)
    monkeypatch.setenv(settings.ENV_HOME, str(tmp_path / "home"))
    assert settings.warehouse_dir() == (tmp_path / "home" / "warehouse").resolve()
    assert Warehouse().location == store.DEFAULT_LOCATION  # the class itself reads no setting


# ---------------------------------------------------------------------------------------------- retries


def test_a_retryable_failure_is_rolled_back_and_retried(wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "FIRST_BACKOFF_S", 0.0)
    wh.replace_all("notes", pd.DataFrame({"id": [1]}))
    calls = []

    def fn(con: duckdb.DuckDBPyConnection) -> int:
        calls.append(len(calls))
        con.execute("INSERT INTO precoro.notes VALUES (?)", [10 + len(calls)])
        if len(calls) == 1:
            raise duckdb.TransactionException("simulated commit conflict")
        return len(calls)

    assert wh.write(fn) == 2
    assert wh.read(lambda con: con.execute("SELECT id FROM precoro.notes ORDER BY id").fetchall()) == [(1,), (12,)]


def test_other_errors_are_not_retried(wh: Warehouse) -> None:
    calls = []

    def fn(con: duckdb.DuckDBPyConnection) -> None:
        calls.append(1)
        con.execute("SELECT * FROM precoro.no_such_table")

    with pytest.raises(duckdb.CatalogException):
        wh.write(fn)
    assert calls == [1]


def test_a_writer_that_bypasses_the_lock_costs_one_retry_not_a_failure(wh: Warehouse, warehouse_backend: str) -> None:
    """Canary for ducklake 1.5.5 + SQLite: overlapping commits fail with "database is locked" (see docs/storage.md).

    If this starts seeing a single attempt, DuckLake resolves the race itself now. With a PostgreSQL catalog it
    does: the two inserts touch no common row, and DuckLake's own conflict check merges them.
    """
    wh.replace_all("notes", pd.DataFrame({"id": [1]}))
    calls = []

    def fn(con: duckdb.DuckDBPyConnection) -> None:
        calls.append(1)
        con.execute("INSERT INTO precoro.notes VALUES (2)")
        if len(calls) == 1:
            with wh.connect() as analyst:  # a hand-written change that does not take our lock
                analyst.execute("INSERT INTO precoro.notes VALUES (3)")

    wh.write(fn)

    assert len(calls) == (2 if warehouse_backend == "local" else 1)
    assert wh.read(lambda con: con.execute("SELECT id FROM precoro.notes ORDER BY id").fetchall()) == [(1,), (2,), (3,)]


# ---------------------------------------------------------------------------------- processes and crashes

WRITERS = 4
ROUNDS = 4
ROWS = 500


@pytest.mark.e2e
def test_parallel_partition_writers_and_an_open_analyst_session(wh: Warehouse, tmp_path: Path) -> None:
    days = [f"2024-01-0{i + 1}" for i in range(WRITERS)]
    for day in days:
        wh.replace_partition(TABLE, DAY, day, batch(day, 0, ROWS), key_columns=["id"], column_types=TYPES)
    stop = tmp_path / "stop"
    reader = spawn("reader", str(wh.location), str(stop), str(ROWS), stdout=subprocess.PIPE)
    try:
        assert reader.stdout.readline().strip() == "reading"  # the session is open before any writer starts
        writers = [spawn("writer", str(wh.location), day, str(ROUNDS), str(ROWS)) for day in days]
        writer_codes = [w.wait(timeout=120) for w in writers]
    finally:
        stop.touch()
        reader_out, _ = reader.communicate(timeout=60)

    assert writer_codes == [0] * WRITERS
    assert reader.returncode == 0, reader_out
    assert json.loads(reader_out)["inconsistent"] == 0
    assert partition_state(wh) == {day: (ROWS, ROUNDS, ROUNDS) for day in days}


@pytest.mark.e2e
def test_parallel_first_runs_create_the_warehouse_once(tmp_path: Path) -> None:
    """A backfill started on a fresh install: every run tries to create the catalog and the table."""
    location = tmp_path / "fresh"
    days = [f"2024-02-0{i + 1}" for i in range(WRITERS)]

    writers = [spawn("writer", str(location), day, "1", "3") for day in days]

    assert [w.wait(timeout=120) for w in writers] == [0] * WRITERS
    assert partition_state(open_warehouse(location)) == {day: (3, 1, 1) for day in days}


@pytest.mark.e2e
def test_a_writer_killed_mid_transaction_leaves_the_old_partition(wh: Warehouse) -> None:
    wh.replace_partition(TABLE, DAY, "2024-01-01", batch("2024-01-01", 1, ROWS), column_types=TYPES)

    victim = spawn("hang", str(wh.location), "2024-01-01", stdout=subprocess.PIPE)
    try:
        assert victim.stdout.readline().strip() == "deleted and inserted, not committed"
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)

    assert victim.returncode == -signal.SIGKILL
    assert partition_state(wh) == {"2024-01-01": (ROWS, 1, 1)}
    # The kernel released the dead writer's lock: the next write goes through.
    wh.replace_partition(TABLE, DAY, "2024-01-01", batch("2024-01-01", 2, 3), column_types=TYPES)
    assert partition_state(wh) == {"2024-01-01": (3, 2, 2)}


@pytest.mark.e2e
def test_a_writer_killed_at_any_moment_never_leaves_a_mix(wh: Warehouse) -> None:
    commits_before_kill = 2
    wh.replace_partition(TABLE, DAY, "2024-01-01", batch("2024-01-01", 0, ROWS), column_types=TYPES)

    victim = spawn("loop", str(wh.location), "2024-01-01", stdout=subprocess.PIPE)
    try:
        for _ in range(commits_before_kill):
            victim.stdout.readline()  # it is now somewhere inside its next replace
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)

    ((count, low, high),) = partition_state(wh).values()
    assert (count, low == high) == (ROWS, True)
    assert high >= commits_before_kill


# ------------------------------------------------------------------------------------- worker processes


def _writer(location: str, day: str, rounds: str, rows: str) -> None:
    wh = open_warehouse(location)
    for version in range(1, int(rounds) + 1):
        wh.replace_partition(TABLE, DAY, day, batch(day, version, int(rows)), key_columns=["id"], column_types=TYPES)


def _reader(location: str, stop: str, rows: str) -> None:
    """An analyst: plain duckdb, the copy-paste snippet, one session held open while querying in a loop."""
    con = duckdb.connect()
    con.execute(open_warehouse(location).analyst_snippet(credentials=True))
    sql = f"SELECT count(*), min(version), max(version) FROM precoro.{TABLE} GROUP BY {DAY}"
    queries = inconsistent = 0
    while True:
        finished = os.path.exists(stop)
        for count, low, high in con.execute(sql).fetchall():
            inconsistent += count != int(rows) or low != high
        queries += 1
        if queries == 1:
            print("reading", flush=True)
        if finished:
            break
    print(json.dumps({"queries": queries, "inconsistent": inconsistent}), flush=True)


def _hang(location: str, day: str) -> None:
    """Replace a partition but stop inside the transaction, after the delete and the insert, before COMMIT."""
    insert = store._insert_incoming

    def insert_then_hang(con: duckdb.DuckDBPyConnection, table: str) -> int:
        written = insert(con, table)
        print("deleted and inserted, not committed", flush=True)
        signal.pause()
        return written

    store._insert_incoming = insert_then_hang
    open_warehouse(location).replace_partition(TABLE, DAY, day, batch(day, 99, 7), column_types=TYPES)


def _loop(location: str, day: str) -> None:
    wh = open_warehouse(location)
    version = 1
    while True:
        wh.replace_partition(TABLE, DAY, day, batch(day, version, ROWS), column_types=TYPES)
        print(version, flush=True)
        version += 1


if __name__ == "__main__":
    {"writer": _writer, "reader": _reader, "hang": _hang, "loop": _loop}[sys.argv[1]](*sys.argv[2:])
