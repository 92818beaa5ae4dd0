"""What the CLI says about the warehouse, the ledger and the write-back: the cause, in words that say what to do."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from precoro_assets.settings import ledger_dir
from precoro_assets.writeback.outbox import LEASE

pytestmark = pytest.mark.e2e  # a simulator on a socket or child processes: in make test, not in make test-fast



def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "precoro_sim.cli", *args], env=os.environ,
                          capture_output=True, text=True, timeout=300)


def test_a_misspelt_name_on_a_synced_warehouse_gets_duckdbs_whole_answer_not_sync_first(env):
    done = cli("sql", "SELECT * FROM precoro.invoice")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert 'Did you mean "precoro.invoices"' in done.stderr or "Did you mean \"invoices\"" in done.stderr
    assert "sync first" not in done.stderr and "SHOW ALL TABLES" in done.stderr

    done = cli("sql", "SELECT invoice_numbr FROM precoro.invoices")
    assert done.returncode != 0
    assert "Candidate bindings" in done.stderr and "invoice_number" in done.stderr
    assert "sync first" not in done.stderr


def test_column_descriptions_name_every_column_of_every_table_and_view_once_tables_made_later_too(env):
    env.materialize(["precoro/analyst_views"])
    env.reconcile()  # the ledger's, the reconciliation's and the outbox copy's tables come after the views

    described = env.query("SELECT table_name, column_name, kind, description FROM precoro.column_descriptions")
    columns = env.query("SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'precoro' "
                        "AND database_name = current_database()")
    pairs = [(t, c) for t, c, _, _ in described]
    assert len(pairs) == len(set(pairs))  # each column once
    assert set(pairs) == set(columns)  # every column of every table and view, nothing else
    assert [(t, c) for t, c, _, text in described if not text] == []
    assert {t for t, _, kind, _ in described if kind == "table"} >= {
        "reconciliation_invoices", "reconciliation_ledger", "ledger_payments", "ledger_bills",
        "ledger_rejected_rows", "writeback_outbox"}


def test_reconcile_names_a_file_rejected_whole_apart_from_rows_and_every_fault_of_a_row(env):
    payments = ledger_dir() / "payments.csv"
    with open(payments, "a", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerow(["PAY-TWO-FAULTS", "", "Some Supplier", "INV-1", "12,50", "EUR", "2026-02-30"])

    done = cli("reconcile")

    assert done.returncode == 0, done.stderr
    rejected = env.query("SELECT file, line, reason FROM precoro.ledger_rejected_rows")
    [(_, _, both)] = [r for r in rejected if r[0] == "payments.csv" and "12,50" in r[2]]
    assert "amount '12,50' is not a plain decimal" in both and "paid_on '2026-02-30' is not a valid date" in both
    # the demo ledger's archive file has the wrong columns: reported as a file, not counted as a row
    [(file, _, reason)] = [r for r in rejected if "no row of this file was loaded" in r[2]]
    assert f"ledger file {file} rejected as a whole, none of its rows loaded: {reason}" in done.stdout
    assert f"{len(rejected) - 1} ledger row(s) rejected, not loaded" in done.stdout


def test_writeback_says_rows_wait_for_their_lease_and_until_when(env):
    env.reconcile()
    outbox = env.outbox
    taken = [outbox.claim(row.key, "a-run-that-died") for row in outbox.workable()]
    assert taken and all(taken)

    done = cli("writeback")

    assert done.returncode == 0, done.stderr
    assert "no pending row" not in done.stdout
    rows = [row for row in outbox.rows() if row.status == "sending"]
    free = sorted(datetime.fromisoformat(row.attempted_at).astimezone(UTC) + LEASE for row in rows)
    assert f"{len(rows)} row(s) wait for their 15-minute lease" in done.stdout
    assert f"From {free[0]:%Y-%m-%d %H:%M:%S} UTC" in done.stdout


def test_a_failed_reconcile_or_write_back_shows_the_cause_not_dagsters_wrapper(env):
    env.config.state_dir.mkdir(parents=True, exist_ok=True)
    (env.config.state_dir / "outbox.sqlite").write_bytes(b"this is not a SQLite database, but an export " * 200)

    for command in ("reconcile", "writeback"):
        done = cli(command)
        assert done.returncode == 1, command
        assert "DagsterExecutionStepExecutionError" not in done.stderr and "Error occurred while" not in done.stderr
        assert "file is not a database" in done.stderr, (command, done.stderr)
