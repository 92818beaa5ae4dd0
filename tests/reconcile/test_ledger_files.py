"""The file-based ledger: what loads, what is rejected (with file, line and reason), and the export sink."""

from __future__ import annotations

import os
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from precoro_assets.ledger import files
from precoro_assets.ledger.file_sink import ExportFileError, FileLedgerSink
from precoro_assets.ledger.files import FileLedgerSource
from precoro_assets.ledger.master_data_files import load_catalogue
from precoro_assets.ledger.source import CREDIT_NOTE, ExportDocument, LedgerNotReady, LedgerSink, LedgerSource
from precoro_assets.reconcile.ap_matching import load_rules

HEADER = "payment_id,bill_id,supplier,invoice_number,amount,currency,paid_on\n"


def write(path: Path, text: str | bytes) -> None:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))


def test_good_rows_load_and_each_bad_row_is_reported_with_its_line(tmp_path: Path):
    write(tmp_path / "payments.csv", HEADER.encode() + "\n".join([
        "P-1,QB-BILL-1,,,100.50,eur,2026-11-02",  # by bill id; currency case is tolerated
        'P-2,,"Müller, Söhne & Co",INV/7,99,CHF,2026-11-03',  # by supplier + number; quoted comma
        "P-3,,ACME,INV-8,\"1,234.50\",EUR,2026-11-03",  # thousands separator
        "P-4,,ACME,INV-8,12.345,EUR,2026-11-03",  # three decimals
        "P-5,,ACME,INV-8,-5.00,EUR,2026-11-03",  # negative payment
        "P-6,,ACME,INV-8,10.00,EUR,2026-02-30",  # impossible date
        "P-7,,ACME,INV-8,10.00,EUR,03.11.2026",  # not ISO
        "P-8,,,,10.00,EUR,2026-11-03",  # names no invoice
        "P-9,,ACME,INV-8,10.00",  # too few fields
        "P-1,,ACME,INV-9,10.00,EUR,2026-11-04",  # duplicate id
        "",  # blank line: no row
    ]).encode() + b"\nP-10,,Caf\xe9,INV-1,10.00,EUR,2026-11-04\n")  # not UTF-8
    snapshot = FileLedgerSource(tmp_path).load()

    assert [(p.payment_id, p.amount, p.currency, p.paid_on) for p in snapshot.payments] == [
        ("P-1", Decimal("100.50"), "EUR", date(2026, 11, 2)), ("P-2", Decimal("99.00"), "CHF", date(2026, 11, 3))]
    assert snapshot.payments[1].supplier == "Müller, Söhne & Co" and snapshot.payments[0].bill_id == "QB-BILL-1"
    assert all(isinstance(p.amount, Decimal) for p in snapshot.payments)
    rejected = {r.line: r.reason for r in snapshot.rejected}
    assert sorted(rejected) == [4, 5, 6, 7, 8, 9, 10, 11, 13]
    assert "decimal" in rejected[4] and "two decimals" in rejected[5] and "greater than zero" in rejected[6]
    assert "valid date" in rejected[7] and "YYYY-MM-DD" in rejected[8] and "names no invoice" in rejected[9]
    assert "expected 7 fields" in rejected[10] and "duplicate payment_id" in rejected[11]
    assert "UTF-8" in rejected[13] and "\\xe9" in next(r.text for r in snapshot.rejected if r.line == 13)
    assert all(r.file == "payments.csv" for r in snapshot.rejected)


def test_a_file_with_wrong_columns_is_rejected_whole_and_unknown_files_are_reported(tmp_path: Path):
    write(tmp_path / "bills_old.csv", "Vendor;Ref;Total\nX;1;2\n")
    write(tmp_path / "bills.csv", "\ufeffbill_id,type,supplier,invoice_number,amount,currency,bill_date\n"
                                  "B-1,bill,ACME,INV-1,10.00,EUR,\nB-2,,ACME,CN-1,-4.00,EUR,2026-11-01\n"
                                  "B-3,bill,ACME,INV-3,-4.00,EUR,2026-11-01\n")
    write(tmp_path / "notes.csv", "a,b\n")
    write(tmp_path / "README.txt", "not data")
    snapshot = FileLedgerSource(tmp_path).load()
    assert [(b.bill_id, b.kind, b.amount) for b in snapshot.bills] == [
        ("B-1", "bill", Decimal("10.00")), ("B-2", CREDIT_NOTE, Decimal("4.00"))]
    reasons = {(r.file, r.line): r.reason for r in snapshot.rejected}
    assert "wrong columns" in reasons[("bills_old.csv", 1)]
    assert "negative on a bill" in reasons[("bills.csv", 4)]
    assert "unknown file" in reasons[("notes.csv", 0)]
    assert len(reasons) == 3


def test_parquet_exports_load_with_typed_values_and_floats_are_refused(tmp_path: Path):
    table = pa.table({
        "payment_id": ["P-1", "P-2"], "bill_id": ["QB-1", "QB-2"], "supplier": [None, None],
        "invoice_number": [None, None], "amount": pa.array([Decimal("10.10"), Decimal("5.00")], pa.decimal128(12, 2)),
        "currency": ["EUR", "EUR"], "paid_on": pa.array([date(2026, 11, 1), date(2026, 11, 2)], pa.date32())})
    pq.write_table(table, tmp_path / "payments_2026.parquet")
    floats = table.set_column(4, "amount", pa.array([10.1, 5.0], pa.float64()))
    pq.write_table(floats.set_column(0, "payment_id", pa.array(["F-1", "F-2"])), tmp_path / "payments_float.parquet")
    snapshot = FileLedgerSource(tmp_path).load()
    assert [(p.payment_id, p.amount) for p in snapshot.payments] == [("P-1", Decimal("10.10")), ("P-2", Decimal("5.00"))]
    assert [(r.file, r.line) for r in snapshot.rejected] == [("payments_float.parquet", 1), ("payments_float.parquet", 2)]
    assert all("floating-point" in r.reason for r in snapshot.rejected)


def test_the_file_sink_refuses_unknown_vendors_and_exports_each_document_once(tmp_path: Path):
    write(tmp_path / "vendors.csv", "vendor_id,name\nV-1,ACME  Corp\n")
    sink = FileLedgerSink(tmp_path)
    assert isinstance(sink, LedgerSink) and isinstance(FileLedgerSource(tmp_path), LedgerSource)
    known = ExportDocument("invoices", "12", 400012, "acme corp", "INV-12", Decimal("10.00"), "EUR")
    first = sink.offer(known)
    assert first.accepted and first.external_id == "ACC-BILL-12"
    assert sink.offer(known) == first  # idempotent: offered again, same answer, no second line
    lines = (tmp_path / "export" / "invoices.csv").read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith("ACC-BILL-12,12,400012,acme corp,INV-12,10.00,EUR,")
    refused = sink.offer(ExportDocument("purchaseorders", "3", 200003, "Nordwind", "3", Decimal("1.00"), "EUR"))
    assert not refused.accepted and "Nordwind" in refused.error
    assert not (tmp_path / "export" / "purchaseorders.csv").exists()
    # the ledger source does not read what the sink wrote
    assert FileLedgerSource(tmp_path).load().rejected == []


def test_semicolon_separated_and_utf16_exports_load_as_they_are(tmp_path: Path):
    write(tmp_path / "payments_excel.csv", "payment_id;supplier;invoice_number;amount;currency;paid_on\r\n"
                                           "P-1;ACME;INV-1;10.00;EUR;2026-11-02\r\nP-2;ACME;INV-2;1234,50;EUR;2026-11-02\r\n")
    write(tmp_path / "payments_unicode.csv", ("payment_id,supplier,invoice_number,amount,currency,paid_on\n"
                                              "P-3,Łódź Sp. z o.o.,FV/3,20.00,PLN,2026-11-03\n").encode("utf-16"))
    snapshot = FileLedgerSource(tmp_path).load()

    assert [(p.payment_id, p.supplier, p.amount) for p in snapshot.payments] == [
        ("P-1", "ACME", Decimal("10.00")), ("P-3", "Łódź Sp. z o.o.", Decimal("20.00"))]
    # a decimal comma is still refused, on its own line, with what was found
    [refused] = snapshot.rejected
    assert (refused.file, refused.line) == ("payments_excel.csv", 3) and "1234,50" in refused.reason


def test_a_quote_left_open_costs_its_own_line_only(tmp_path: Path):
    write(tmp_path / "payments.csv", HEADER + "\n".join([
        'P-1,,"ACME,INV-1,10.00,EUR,2026-11-02',  # the quote is never closed
        "P-2,,ACME,INV-2,20.00,EUR,2026-11-02",
        'P-3,,"Line one',  # a supplier name with a line break: one record over two lines
        'line two",INV-3,30.00,EUR,2026-11-02',
        "P-4,,ACME,INV-4,40.00,EUR,2026-11-02",
    ]) + "\n")
    snapshot = FileLedgerSource(tmp_path).load()

    assert [p.payment_id for p in snapshot.payments] == ["P-2", "P-3", "P-4"]
    assert snapshot.payments[1].supplier == "Line one\nline two"
    [refused] = snapshot.rejected
    assert refused.line == 2 and "quote" in refused.reason and refused.text.startswith("P-1,")


# ---- hostile and half-written files -----------------------------------------------------------------------------

def test_an_amount_the_warehouse_cannot_hold_is_rejected_alone_and_the_rest_loads(tmp_path: Path):
    write(tmp_path / "payments.csv", HEADER + "\n".join([
        "P-1,QB-1,,,100.00,EUR,2026-11-02",
        f"P-2,QB-2,,,{'9' * 30},EUR,2026-11-02",  # 30 digits: beyond Decimal's own default precision
        f"P-3,QB-3,,,{'1' * 20}.00,EUR,2026-11-02",  # 22 digits of precision; DECIMAL(18,2) holds 18
        f"P-4,QB-4,,,{'1' * 17},EUR,2026-11-02",  # one digit too many
        "P-5,QB-5,,,9999999999999999.99,EUR,2026-11-02",  # the largest DECIMAL(18,2)
    ]) + "\n")
    table = pa.table({"payment_id": ["Q-1", "Q-2"], "bill_id": ["QB-6", "QB-7"],
                      "amount": pa.array([Decimal("5.00"), Decimal("1" * 30 + ".00")], pa.decimal128(38, 2)),
                      "currency": ["EUR", "EUR"], "paid_on": pa.array([date(2026, 11, 1)] * 2, pa.date32())})
    pq.write_table(table, tmp_path / "payments_big.parquet")
    snapshot = FileLedgerSource(tmp_path).load()

    assert [(p.payment_id, p.amount) for p in snapshot.payments] == [
        ("P-1", Decimal("100.00")), ("P-5", Decimal("9999999999999999.99")), ("Q-1", Decimal("5.00"))]
    assert [(r.file, r.line) for r in snapshot.rejected] == [
        ("payments.csv", 3), ("payments.csv", 4), ("payments.csv", 5), ("payments_big.parquet", 2)]
    assert all("out of range" in r.reason and "DECIMAL(18,2)" in r.reason for r in snapshot.rejected)


SECRET = "root:x:0:0:the first line of a private file:/root:/bin/bash"


def test_links_and_other_non_regular_files_are_refused_and_nothing_of_them_is_read(tmp_path: Path):
    folder, private = tmp_path / "ledger", tmp_path / "private.txt"
    folder.mkdir()
    private.write_text(SECRET + "\nsecond line\n")
    (folder / "payments.csv").symlink_to(private)  # would be rejected for wrong columns, quoting its header
    (folder / "bills.csv").symlink_to(private)
    (folder / "vendors.csv").symlink_to(private)
    (folder / "payments_real.csv").write_text(HEADER + "P-1,QB-1,,,10.00,EUR,2026-11-02\n")
    (folder / "payments_linked.csv").symlink_to(folder / "payments_real.csv")  # a link inside the folder too
    os.mkfifo(folder / "payments_pipe.csv")  # reading it would block the load for good
    snapshot = FileLedgerSource(folder).load()
    catalogue = load_catalogue(folder)

    assert [p.payment_id for p in snapshot.payments] == ["P-1"]
    reasons = {r.file: r.reason for r in snapshot.rejected + catalogue.rejected}
    assert set(reasons) == {"payments.csv", "bills.csv", "vendors.csv", "payments_linked.csv", "payments_pipe.csv"}
    assert all("symbolic link" in reasons[name] for name in ("payments.csv", "bills.csv", "vendors.csv"))
    assert "not a regular file" in reasons["payments_pipe.csv"]
    assert all(r.line == 0 and r.text == "" for r in snapshot.rejected + catalogue.rejected)
    assert "root" not in repr(snapshot) + repr(catalogue)
    (folder / "supplier_aliases.csv").symlink_to(private)  # the matching rules' files are refused the same way
    with pytest.raises(ValueError, match="supplier_aliases.csv is a symbolic link"):
        load_rules(folder)
    with pytest.raises(ExportFileError, match="vendors.csv is a symbolic link"):  # and the export's vendor list
        FileLedgerSink(folder).offer(ExportDocument("invoices", "1", 1, "ACME", "INV-1", Decimal("1.00"), "EUR"))


def test_a_rejected_row_keeps_enough_text_to_find_it_not_the_whole_of_a_huge_line(tmp_path: Path):
    write(tmp_path / "payments.csv", HEADER + f"P-1,,{'x' * 300_000},INV-1,ten,EUR,2026-11-02\n")
    [rejected] = FileLedgerSource(tmp_path).load().rejected
    assert rejected.line == 2 and rejected.text.startswith("P-1,,xxx") and len(rejected.text) < 1100
    assert "300,0" in rejected.text  # says how long the line was


def test_a_last_line_without_its_line_break_is_rejected_not_loaded_cut_short(tmp_path: Path):
    # an export read while it was written: "1234.50" had reached the disk as far as "12"
    write(tmp_path / "payments.csv", HEADER + "P-1,QB-1,,,10.00,EUR,2026-11-02\nP-2,QB-2,,,12")
    write(tmp_path / "bills.csv", "bill_id,supplier,invoice_number,amount,currency\nB-1,ACME,INV-1,5.00,EUR")
    snapshot = FileLedgerSource(tmp_path).load()

    assert [p.payment_id for p in snapshot.payments] == ["P-1"] and snapshot.bills == []
    assert [(r.file, r.line, r.text) for r in snapshot.rejected] == [
        ("bills.csv", 2, "B-1,ACME,INV-1,5.00,EUR"), ("payments.csv", 3, "P-2,QB-2,,,12")]
    assert all("no line break" in r.reason and "cut off" in r.reason for r in snapshot.rejected)


def exporter_writes_while_the_loader_waits(monkeypatch: pytest.MonkeyPatch, path: Path, rows: int) -> None:
    """An exporter still writing `path`: each time the loader waits for the file to be left alone, one more payment
    row reaches the disk, until `rows` are there (deterministic, unlike a writer thread on a busy machine)."""
    path.write_text(HEADER + "P-1,QB-1,,,1.00,EUR,2026-11-02\n", encoding="utf-8")
    written, real_sleep = [1], time.sleep

    def sleep(seconds: float) -> None:
        real_sleep(seconds)
        if written[-1] < rows:
            written.append(written[-1] + 1)
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(f"P-{written[-1]},QB-{written[-1]},,,{written[-1]}.00,EUR,2026-11-02\n")

    monkeypatch.setattr(time, "sleep", sleep)


def test_a_file_being_written_is_read_only_once_it_has_been_left_alone(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch):
    exporter_writes_while_the_loader_waits(monkeypatch, tmp_path / "payments.csv", rows=8)
    snapshot = FileLedgerSource(tmp_path, settle_seconds=0.3).load()  # PRECORO_LEDGER_SETTLE_SECONDS=0.3

    assert [p.payment_id for p in snapshot.payments] == [f"P-{n}" for n in range(1, 9)]
    assert snapshot.rejected == []


def test_a_file_that_keeps_changing_is_not_loaded_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(files, "WAIT_SECONDS", 1.0)
    (tmp_path / "bills.csv").write_text("bill_id,supplier,invoice_number,amount,currency\nB-1,ACME,INV-1,5.00,EUR\n")
    os.utime(tmp_path / "bills.csv", (time.time() - 60, time.time() - 60))  # finished a minute ago
    exporter_writes_while_the_loader_waits(monkeypatch, tmp_path / "payments.csv", rows=10**6)

    with pytest.raises(LedgerNotReady, match="payments.csv is still being written.*previous load stays"):
        FileLedgerSource(tmp_path, settle_seconds=0.3).load()


def test_a_large_ledger_is_handed_over_in_batches_while_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # a year of a large company's payments is a million rows: they must not all be held as objects at once
    monkeypatch.setattr(files, "BATCH_ROWS", 100)
    write(tmp_path / "payments.csv", HEADER + "".join(f"P-{n},QB-{n},,,{n}.00,EUR,2026-11-02\n" for n in range(1, 351))
          + "P-BAD,QB-X,,,ten,EUR,2026-11-02\n")
    snapshot, batches, rejected_when_handed_over = files.LedgerSnapshot(), [], []

    def add(kind: str, records: list) -> None:
        batches.append((kind, len(records)))
        rejected_when_handed_over.append(len(snapshot.rejected))

    FileLedgerSource(tmp_path).load_into(add, snapshot)

    assert batches == [("payments", 100), ("payments", 100), ("payments", 100), ("payments", 50)]
    assert rejected_when_handed_over[0] == 0  # the first batch went before the bad last line was even read
    assert [r.line for r in snapshot.rejected] == [352] and snapshot.payments == []
