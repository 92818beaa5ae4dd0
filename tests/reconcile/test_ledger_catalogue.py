"""The accounting catalogue in the drop folder (vendors, products, accounts, tracking categories, tax rates):
what loads, and every row that does not, with its file, line and reason."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from precoro_assets.ledger.file_sink import FileLedgerSink
from precoro_assets.ledger.files import FileLedgerSource
from precoro_assets.ledger.master_data_files import load_catalogue


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def test_vendors_load_with_their_fields_and_bad_rows_are_reported_with_file_line_and_reason(tmp_path: Path):
    write(tmp_path / "vendors.csv",
          "vendor_id,name,currency,currencies,tax_number,address,payment_terms_days,enabled\n"
          "V-1,Acme Ltd,EUR,USD|GBP,DE123,\"1 Main St, Berlin\",30,yes\n"   # line 2
          "V-2,Globex,,EUR USD,,,,\n"                                      # 3: every optional field empty
          "V-3,Initech,EURO,,,,,\n"                                        # 4: a bad currency
          "V-4,Umbrella,EUR,,,,thirty,\n"                                  # 5: days not a number
          "V-5,Hooli,EUR,,,,,maybe\n"                                      # 6: enabled not a boolean
          ",Nameless,EUR,,,,,\n"                                           # 7: no id
          "V-1,Acme again,EUR,,,,,\n")                                     # 8: the id twice

    catalogue = load_catalogue(tmp_path)

    acme, globex = catalogue.vendors
    assert (acme.vendor_id, acme.name, acme.currencies, acme.tax_number, acme.address, acme.payment_terms_days,
            acme.enabled) == ("V-1", "Acme Ltd", ("EUR", "USD", "GBP"), "DE123", "1 Main St, Berlin", 30, True)
    assert (globex.currencies, globex.tax_number, globex.payment_terms_days, globex.enabled) == (
        ("EUR", "USD"), None, None, None)  # enabled left empty: the export does not say
    reasons = {(r.file, r.line): r.reason for r in catalogue.rejected}
    assert set(reasons) == {("vendors.csv", line) for line in (4, 5, 6, 7, 8)}
    assert "three-letter" in reasons[("vendors.csv", 4)] and "whole number of days" in reasons[("vendors.csv", 5)]
    assert "true/false" in reasons[("vendors.csv", 6)] and "vendor_id is empty" in reasons[("vendors.csv", 7)]
    assert "first at vendors.csv:2" in reasons[("vendors.csv", 8)]
    # the export sink still reads the vendors' names from the same file
    assert FileLedgerSink(tmp_path).vendors() >= {"acme ltd", "globex"}


def test_products_accounts_tracking_categories_and_tax_rates_load_exactly(tmp_path: Path):
    write(tmp_path / "products.csv", "product_id,name,sku,unit,price,currency,enabled\n"
                                     "P-1,Paper A4,PAP-A4,box,12.50,EUR,1\n"
                                     "P-2,Consulting hour,,hour,,,\n"
                                     "P-3,Toner,TON,,19.999,EUR,\n"       # 4: three decimals
                                     "P-4,Pens,PEN,,3.00,,\n")            # 5: a price without a currency
    write(tmp_path / "accounts.csv", "account_id;code;name;enabled\nA-1;6000;Office supplies;true\nA-2;;Travel;no\n")
    write(tmp_path / "tracking_categories.csv", "category,option_id,name\nDepartment,D-1,Sales\n"
                                                "Department,D-2,Finance\nRegion,D-1,North\nDepartment,D-1,Dup\n")
    pq.write_table(pa.table({"tax_id": ["T-1", "T-2", "T-3"], "name": ["VAT 20%", "Reduced", "Odd"],
                             "rate": ["20", "7.5", "120"]}), tmp_path / "tax_rates.parquet")

    catalogue = load_catalogue(tmp_path)

    assert [(p.product_id, p.price, p.currency, p.unit, p.enabled) for p in catalogue.products] == [
        ("P-1", Decimal("12.50"), "EUR", "box", True), ("P-2", None, None, "hour", None)]
    assert [(a.account_id, a.code, a.name, a.enabled) for a in catalogue.accounts] == [
        ("A-1", "6000", "Office supplies", True), ("A-2", None, "Travel", False)]
    assert [(o.category, o.option_id, o.name) for o in catalogue.tracking_options] == [
        ("Department", "D-1", "Sales"), ("Department", "D-2", "Finance"), ("Region", "D-1", "North")]
    assert [(t.tax_id, t.rate) for t in catalogue.tax_rates] == [("T-1", Decimal("20")), ("T-2", Decimal("7.5"))]
    assert sorted((r.file, r.line) for r in catalogue.rejected) == [
        ("products.csv", 4), ("products.csv", 5), ("tax_rates.parquet", 3), ("tracking_categories.csv", 5)]
    assert sorted(catalogue.files) == ["accounts.csv", "products.csv", "tax_rates.parquet", "tracking_categories.csv"]


def test_catalogue_files_are_not_unknown_files_to_the_payments_reader(tmp_path: Path):
    for name in ("vendors.csv", "products.csv", "accounts.csv", "tracking_categories.csv", "tax_rates.csv"):
        write(tmp_path / name, "x\n")
    write(tmp_path / "suppliers.csv", "x\n")

    snapshot = FileLedgerSource(tmp_path).load()

    assert [(r.file, r.line) for r in snapshot.rejected] == [("suppliers.csv", 0)]
    assert "tax_rates.csv" in snapshot.rejected[0].reason  # the message names the files it would read
