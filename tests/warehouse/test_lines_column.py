"""A warehouse synced before headers came first (no lines_synced_at) is upgraded in place: its rows all came
with their lines, so none is taken for a header awaiting them and re-fetched."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from precoro_assets.catalogue import BY_NAME
from precoro_assets.warehouse import tables
from precoro_assets.warehouse.store import Warehouse

INVOICES = BY_NAME["invoices"]
DAY = date(2026, 11, 2)
WRITTEN = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
UPDATED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_an_older_warehouse_gains_the_column_filled_and_its_documents_stay_current(tmp_path: Path):
    warehouse = Warehouse(tmp_path / "warehouse")

    def older_layout(con) -> None:
        tables.ensure_tables(con, INVOICES)
        con.execute("ALTER TABLE precoro.invoices DROP COLUMN lines_synced_at")
        con.execute("INSERT INTO precoro.invoices (idn, update_date, partition_day, synced_at) VALUES (?, ?, ?, ?)",
                    ["INV-1", UPDATED, DAY, WRITTEN])

    warehouse.write(older_layout)
    # before any sync adds the column, the change sensor's comparison still reads the stored versions
    assert warehouse.read(lambda con: tables.stored_versions_between(con, INVOICES, DAY, DAY)) == {
        DAY: {"INV-1": UPDATED}}
    warehouse.write(lambda con: tables.ensure_tables(con, INVOICES))
    assert warehouse.read(lambda con: con.execute("SELECT lines_synced_at FROM precoro.invoices").fetchall()) == [
        (WRITTEN,)]
    assert warehouse.read(lambda con: tables.stored_versions_between(con, INVOICES, DAY, DAY)) == {
        DAY: {"INV-1": UPDATED}}
    # a header awaiting its lines is held at no version: its detail is fetched
    warehouse.write(lambda con: con.execute(
        "INSERT INTO precoro.invoices (idn, update_date, partition_day, synced_at) VALUES (?, ?, ?, ?)",
        ["INV-2", UPDATED, DAY, WRITTEN]))
    assert warehouse.read(lambda con: tables.stored_versions_between(con, INVOICES, DAY, DAY))[DAY]["INV-2"] is None
