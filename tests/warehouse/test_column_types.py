"""A warehouse whose columns an earlier catalogue typed otherwise takes the new types without losing a value:
unit prices, quantities and rates widen to every decimal Precoro sends; payment term codes, stored as text and
true/false where Precoro sends numbers, are read again from `raw` as numbers."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from precoro_assets.catalogue import BY_NAME, MONEY, UNIT_PRICE
from precoro_assets.warehouse import tables
from precoro_assets.warehouse.rows import convert, table_columns
from precoro_assets.warehouse.store import Warehouse

# how the catalogue typed these columns before (the price of 12.345 was NULL in DECIMAL(18,2))
BEFORE = {
    "items": {"price": "DECIMAL(18,2)"},
    "payment_terms": {"payment_type": "VARCHAR", "terms_due_date_after_invoicing": "BOOLEAN",
                      "prepayment_percent": "DECIMAL(18,6)"},
}
ROWS = {
    "items": {"id": 5001, "name": "Paper", "price": Decimal("12.34"),
              "raw": {"id": 5001, "name": "Paper", "price": 12.34}},
    "payment_terms": {"id": 21, "name": "Net 30", "payment_type": "2", "terms_due_date_after_invoicing": True,
                      "prepayment_percent": Decimal("12.5"),
                      "raw": {"id": 21, "name": "Net 30", "paymentType": 2, "termsDueDateAfterInvoicing": 3,
                              "prepaymentPercent": 12.5}},
}


def test_columns_typed_otherwise_before_take_the_new_types_with_every_value(tmp_path: Path):
    warehouse = Warehouse(tmp_path / "warehouse")

    def old_layout(con) -> None:
        con.execute("CREATE SCHEMA IF NOT EXISTS precoro")
        for name, changed in BEFORE.items():
            columns = table_columns(BY_NAME[name])
            con.execute(f"CREATE TABLE precoro.{name} ("
                        + ", ".join(f'"{c.name}" {changed.get(c.name, c.type)}' for c in columns) + ")")
            row = {**ROWS[name], "raw": json.dumps(ROWS[name]["raw"])}
            con.execute(f"INSERT INTO precoro.{name} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                        list(row.values()))

    warehouse.write(old_layout)
    for name in BEFORE:
        warehouse.write(lambda con, name=name: tables.ensure_tables(con, BY_NAME[name]))

    for name, changed in BEFORE.items():
        stored = dict(warehouse.query("SELECT column_name, data_type FROM duckdb_columns() "
                                      "WHERE schema_name = 'precoro' AND table_name = ?", [name]).values.tolist())
        wanted = {c.name: c.type for c in table_columns(BY_NAME[name])}
        assert {c: stored[c] for c in changed} == {c: wanted[c] for c in changed}
    assert warehouse.query("SELECT price FROM precoro.items").values.tolist() == [[Decimal("12.34")]]
    assert warehouse.query("SELECT payment_type, terms_due_date_after_invoicing, prepayment_percent "
                           "FROM precoro.payment_terms").values.tolist() == [[2, 3, Decimal("12.5")]]
    comments = dict(warehouse.query("SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = "
                                    "'precoro' AND table_name = 'payment_terms'").values.tolist())
    assert comments["payment_type"] == next(c.description for c in table_columns(BY_NAME["payment_terms"])
                                            if c.name == "payment_type")

    def price_of_three_decimals(con) -> None:
        con.execute("UPDATE precoro.items SET price = 12.345")

    warehouse.write(price_of_three_decimals)
    assert warehouse.query("SELECT price FROM precoro.items").values.tolist() == [[Decimal("12.345")]]


def test_a_number_wider_than_its_column_is_a_field_problem_and_one_that_fits_keeps_every_digit():
    # DECIMAL(38,10) holds 28 digits before the point: more than Python's default 28-digit context quantizes
    assert convert("1234567890123456789.5", UNIT_PRICE) == Decimal("1234567890123456789.5")
    assert convert("12.345", UNIT_PRICE) == Decimal("12.345")
    for wide, column_type in (("1" * 29, UNIT_PRICE), ("12345678901234567.00", MONEY)):
        with pytest.raises(ValueError, match="more digits before the point"):
            convert(wide, column_type)
