"""Every sync makes its tables ready (created, evolved, described), so doing that for tables already as described
must change nothing in the warehouse: each catalog change is a DuckLake snapshot kept for good, and a catalog that
grew with every run would slow every query down. What did change (a description, a new column) is applied."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from precoro_assets.catalogue import DOCUMENTS, Column
from precoro_assets.warehouse import tables
from precoro_assets.warehouse.rows import table_columns
from precoro_assets.warehouse.store import Warehouse

INVOICES = next(entity for entity in DOCUMENTS if entity.name == "invoices")


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    warehouse = Warehouse(tmp_path / "warehouse")
    for entity in DOCUMENTS:
        warehouse.write(lambda con, entity=entity: tables.ensure_tables(con, entity))
    warehouse.write(tables.ensure_sync_state)
    return warehouse


def snapshots(warehouse: Warehouse) -> int:
    return warehouse.read(lambda con: con.execute("SELECT count(*) FROM ducklake_snapshots('warehouse')").fetchone()[0])


def comments(con, table: str) -> dict[str | None, str]:
    found = {None: con.execute("SELECT comment FROM duckdb_tables() WHERE schema_name = 'precoro' "
                               "AND table_name = ?", [table]).fetchone()[0]}
    found.update(con.execute("SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = 'precoro' "
                             "AND table_name = ?", [table]).fetchall())
    return found


def test_making_described_tables_ready_again_writes_nothing(warehouse: Warehouse):
    before = snapshots(warehouse)
    for entity in DOCUMENTS:
        warehouse.write(lambda con, entity=entity: tables.ensure_tables(con, entity))
    warehouse.write(tables.ensure_sync_state)  # every reference sync makes its bookkeeping table ready too
    assert snapshots(warehouse) == before


def test_a_changed_description_and_a_new_column_are_applied(warehouse: Warehouse):
    described = replace(INVOICES, description="Invoices, described anew.")
    warehouse.write(lambda con: tables.ensure_tables(con, described))
    extra = Column("approved_by", "VARCHAR", "", "Who approved the invoice last.")
    warehouse.write(lambda con: tables.ensure_table(con, "invoices", "Invoices, with approvers.",
                                                    [*table_columns(INVOICES, None), extra]))
    found = warehouse.read(lambda con: comments(con, "invoices"))
    assert found[None] == "Invoices, with approvers."
    assert found["approved_by"] == "Who approved the invoice last."
    assert found["idn"] == next(c.description for c in table_columns(INVOICES, None) if c.name == "idn")
    # the child tables kept their own descriptions
    assert warehouse.read(lambda con: comments(con, "invoice_items"))[None] == INVOICES.children[0].description


def test_tables_outside_ducklake_are_made_ready_the_same_way():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA precoro")
    tables.ensure_tables(con, INVOICES)
    tables.ensure_tables(con, INVOICES)  # already described: nothing to do, and no error
    assert comments(con, "invoices")[None] == INVOICES.description
    assert comments(con, "rejected_records")["reason"] == "Why it was kept out."
