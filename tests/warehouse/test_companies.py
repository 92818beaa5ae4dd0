"""Several companies' warehouses in one analyst session: each company is a catalog of its own name, and
`companies.<table>` unions them with a `company` column, described like the tables it reads."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from precoro_assets.warehouse import companies
from precoro_assets.warehouse.store import Warehouse


def invoices(warehouse: Warehouse, rows: list[dict], *, with_note: bool) -> None:
    frame = pd.DataFrame(rows if with_note else [{k: v for k, v in row.items() if k != "note"} for row in rows])
    warehouse.replace_all("invoices", frame, key_columns=["idn"],
                          column_types={"idn": "VARCHAR", "sum": "DECIMAL(18,2)", "note": "VARCHAR"})
    warehouse.describe("invoices", "Invoices, one row per invoice.", {"idn": "The invoice's number.",
                                                                      "sum": "Its total."})
    warehouse.create_or_replace_view("big_invoices", "SELECT idn FROM precoro.invoices WHERE sum > 100",
                                     "Invoices over 100.")


@pytest.fixture
def homes(tmp_path):
    acme, globex = Warehouse(tmp_path / "acme" / "warehouse"), Warehouse(tmp_path / "globex" / "warehouse")
    invoices(acme, [{"idn": "A-1", "sum": Decimal("10.50"), "note": "x"},
                    {"idn": "A-2", "sum": Decimal("200.00"), "note": None}], with_note=True)
    invoices(globex, [{"idn": "G-1", "sum": Decimal("300.25")}], with_note=False)  # an older shape: no `note`
    globex.replace_all("payments", pd.DataFrame([{"idn": "P-1"}]), key_columns=["idn"])
    return {"acme": tmp_path / "acme", "globex": tmp_path / "globex" / "warehouse"}  # a home, a warehouse dir


def test_every_company_is_its_own_catalog_and_companies_views_union_them(homes):
    con = companies.connect(homes)
    try:
        rows = con.execute("SELECT company, idn, sum, note FROM companies.invoices ORDER BY idn").fetchall()
        assert rows == [("acme", "A-1", Decimal("10.50"), "x"), ("acme", "A-2", Decimal("200.00"), None),
                        ("globex", "G-1", Decimal("300.25"), None)]
        assert con.execute("SELECT count(*) FROM acme.precoro.invoices").fetchone() == (2,)
        # a company's own views read its own tables, whatever the other catalogs hold
        assert con.execute("SELECT company, idn FROM companies.big_invoices ORDER BY 2").fetchall() == [
            ("acme", "A-2"), ("globex", "G-1")]
        # a table only one company has: its rows only
        assert con.execute("SELECT company, idn FROM companies.payments").fetchall() == [("globex", "P-1")]
    finally:
        con.close()


def test_the_union_views_are_described_as_their_tables_are(homes):
    con = companies.connect(homes)
    try:
        comment = con.execute("SELECT comment FROM duckdb_views() WHERE schema_name = 'companies' "
                              "AND view_name = 'invoices'").fetchone()[0]
        assert comment.startswith("Invoices, one row per invoice.") and "(acme, globex)" in comment
        columns = dict(con.execute("SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = "
                                   "'companies' AND table_name = 'invoices'").fetchall())
        assert columns["idn"] == "The invoice's number." and columns["company"].startswith("The company")
    finally:
        con.close()


def test_a_company_name_or_home_that_cannot_work_is_refused_with_what_to_give(tmp_path, homes):
    with pytest.raises(ValueError, match="sync it first"):
        companies.connect({"acme": homes["acme"], "initech": tmp_path / "nowhere"})
    with pytest.raises(ValueError, match="can't name a company"):
        companies.connect({"Acme Corp": homes["acme"]})
    with pytest.raises(ValueError, match="can't name a company"):
        companies.connect({"memory": homes["acme"]})


def test_a_warehouse_duckdb_cannot_open_is_named_by_its_company(tmp_path, homes):
    broken = tmp_path / "initech" / "warehouse"
    broken.mkdir(parents=True)
    (broken / "catalog.sqlite").write_bytes(b"not a catalog")
    with pytest.raises(ValueError, match="company initech: DuckDB could not open the warehouse"):
        companies.connect({"acme": homes["acme"], "initech": broken})
