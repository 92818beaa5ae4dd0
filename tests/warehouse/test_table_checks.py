"""The queries behind the document assets' checks find what they look for: repeated keys (in a document table
and within one parent's child rows) and child rows whose parent is gone, in every child table at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from precoro_assets.catalogue import DOCUMENTS
from precoro_assets.warehouse import tables
from precoro_assets.warehouse.store import Warehouse

INVOICES = next(entity for entity in DOCUMENTS if entity.name == "invoices")


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    warehouse = Warehouse(tmp_path / "warehouse")

    def create(con) -> None:
        tables.ensure_tables(con, INVOICES)
        con.execute("INSERT INTO precoro.invoices (idn) VALUES ('INV-1'), ('INV-2')")
        con.execute("INSERT INTO precoro.invoice_items (invoice_idn, line_id) VALUES ('INV-1', 1), ('INV-1', 2), "
                    "('INV-2', 1)")
        con.execute("INSERT INTO precoro.invoice_custom_field_values (invoice_idn, field_id) VALUES ('INV-2', 7)")

    warehouse.write(create)
    return warehouse


def test_a_clean_warehouse_has_no_duplicates_and_no_orphans(warehouse: Warehouse):
    assert warehouse.read(lambda con: tables.duplicate_keys(con, INVOICES)) == []
    orphans = warehouse.read(lambda con: tables.orphan_children(con, INVOICES))
    assert orphans == {child.name: 0 for child in INVOICES.children}


def test_repeated_keys_are_found_in_the_document_table_and_within_one_parents_child_rows(warehouse: Warehouse):
    warehouse.write(lambda con: con.execute("INSERT INTO precoro.invoices (idn) VALUES ('INV-2')"))
    warehouse.write(lambda con: con.execute(
        "INSERT INTO precoro.invoice_items (invoice_idn, line_id) VALUES ('INV-1', 2), ('INV-1', 2), ('INV-2', 2)"))

    found = warehouse.read(lambda con: tables.duplicate_keys(con, INVOICES))

    # line 2 of INV-1 three times; line 1 of INV-1 and of INV-2, and line 2 of INV-2, only once within their parent
    assert sorted(found) == [("precoro.invoice_items", "INV-1", "2", 3), ("precoro.invoices", "INV-2", 2)]


def test_child_rows_without_their_parent_are_counted_per_child_table(warehouse: Warehouse):
    warehouse.write(lambda con: con.execute("DELETE FROM precoro.invoices WHERE idn = 'INV-2'"))

    orphans = warehouse.read(lambda con: tables.orphan_children(con, INVOICES))

    assert orphans["invoice_items"] == 1 and orphans["invoice_custom_field_values"] == 1
    assert sum(orphans.values()) == 2
