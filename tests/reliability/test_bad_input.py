"""Bad input beyond tests/ingest/test_bad_input.py: every case ends in a clear message, what can be stored
is stored (exactly), what can't is in precoro.rejected_records, and nothing already in the warehouse is lost.
"""

from __future__ import annotations

import collections
import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from precoro_assets.catalogue import BY_NAME
from precoro_assets.ingest.sync import partition_day
from precoro_assets.ledger.files import FileLedgerSource
from tests.ingest.test_bad_input import metadata
from tests.ingest.test_robustness import busiest_days, day_snapshot
from tests.ingest.truth import differences
from tests.reliability.reliability_support import AWKWARD_NAME, SQL_INJECTION

INVOICES, PAYMENTS = BY_NAME["invoices"], BY_NAME["payments"]


def days_with(env, resource: str, count: int) -> list[str]:
    per_day = collections.Counter(partition_day(r).isoformat() for r in env.export(resource))
    return sorted(day for day, n in per_day.items() if n == count)


def rejected(env, entity: str) -> list[tuple[str, dict]]:
    return [(reason, json.loads(raw)) for reason, raw in
            env.query("SELECT reason, raw FROM precoro.rejected_records WHERE entity = ?", [entity])]


@pytest.mark.e2e
def test_a_list_answer_missing_required_fields_loses_nothing_already_stored(env):
    day = busiest_days(env, 1)[0]
    assert env.materialize("precoro/invoices", partition=day).success
    before = day_snapshot(env, day)
    listed = len(before["invoices"])
    # Precoro's list leaves out createDate: the rows can't be placed on a day, so they are kept out ...
    env.control("POST", "faults", json={"kind": "missing_fields", "fields": ["createDate"], "path": "/invoices",
                                        "method": "GET", "count": None})
    result = env.materialize("precoro/invoices", partition=day)
    assert result.success
    assert metadata(result)["rejected records"] == listed
    assert all("createDate" in reason for reason, _ in rejected(env, "invoices"))
    # ... and the documents the warehouse already holds for the day are not taken for deleted ones
    assert metadata(result)["removed"] == 0
    assert day_snapshot(env, day) == before

    env.control("DELETE", "faults")
    assert env.materialize("precoro/invoices", partition=day).success
    assert rejected(env, "invoices") == []
    assert day_snapshot(env, day) == before


@pytest.mark.e2e
def test_idn_as_a_number_and_sum_paid_as_a_string_are_stored_exactly(env):
    day = days_with(env, "payments", 1)[0]
    [payment] = [p for p in env.export("payments") if partition_day(p).isoformat() == day]
    env.control("POST", "faults", json={"kind": "unknown_fields", "path": "/payments", "method": "GET",
                                        "count": None, "fields": {"idn": 4711, "sumPaid": "1234.50"}})
    result = env.materialize("precoro/payments", partition=day)
    assert result.success and metadata(result)["field problems"] == 0
    [(idn, paid, raw)] = env.query("SELECT idn, sum_paid, raw FROM precoro.payments WHERE partition_day = ?", [day])
    assert idn == "4711" and paid == Decimal("1234.50")  # a number where a string is usual, a string for money
    assert json.loads(raw)["sumPaid"] == "1234.50" and json.loads(raw)["idn"] == 4711  # raw keeps what was sent

    # the same payment with its real (string) idn: the numeric one is gone (no longer listed), no duplicate
    env.control("DELETE", "faults")
    result = env.materialize("precoro/payments", partition=day)
    assert metadata(result)["removed"] == 1 and metadata(result)["new"] == 1
    assert env.query("SELECT idn FROM precoro.payments WHERE partition_day = ?", [day]) == [(str(payment["idn"]),)]
    assert differences(env, PAYMENTS, lambda r: partition_day(r).isoformat() == day) == []


@pytest.mark.e2e
def test_a_document_listed_for_a_day_is_filed_under_it_whatever_offset_its_create_date_carries(env):
    # (sync.partition_day reads a createDate in the company's zone: tests/ingest/test_precoro_moves.py)
    day = busiest_days(env, 1)[0]
    listed = sum(partition_day(r).isoformat() == day for r in env.export("invoices"))
    for offset_time in (f"{day}T00:30:00+02:00", f"{day}T23:30:00-05:00"):
        env.control("DELETE", "faults")
        env.control("POST", "faults", json={"kind": "unknown_fields", "path": "/invoices", "method": "GET",
                                            "count": None, "fields": {"createDate": offset_time}})
        result = env.materialize("precoro/invoices", partition=day)
        assert result.success and metadata(result)["rejected records"] == 0, offset_time
        assert env.query("SELECT partition_day, count(*) FROM precoro.invoices GROUP BY 1") == [
            (date.fromisoformat(day), listed)], offset_time


@pytest.mark.e2e
def test_a_one_megabyte_name_and_names_with_quotes_semicolons_and_non_ascii_are_stored_verbatim(env):
    day = days_with(env, "invoices", 2)[0] if days_with(env, "invoices", 2) else busiest_days(env, 1)[0]
    huge = "Ω" + "x" * (1_000_000 - 2) + "Ω"
    env.control("POST", "faults", json={"kind": "unknown_fields", "path": "/invoices/{idn}", "count": None,
                                        "fields": {"supplier": {"id": 1, "name": huge},
                                                   "invoiceNumber": f"{AWKWARD_NAME};{SQL_INJECTION}"}})
    result = env.materialize("precoro/invoices", partition=day)
    assert result.success
    rows = env.query("SELECT length(supplier_name), supplier_name = ?, invoice_number, raw FROM precoro.invoices "
                     "WHERE partition_day = ?", [huge, day])
    assert rows
    for length, same, number, raw in rows:
        assert length == 1_000_000 and same and number == f"{AWKWARD_NAME};{SQL_INJECTION}"
        assert json.loads(raw)["supplier"]["name"] == huge
    assert len(str(metadata(result)["preview"])) < 20_000  # the preview shows a prefix, not the megabyte


@pytest.mark.e2e
def test_a_malformed_list_answer_fails_the_run_with_a_clear_message_and_keeps_the_day(env):
    day = busiest_days(env, 1)[0]
    assert env.materialize("precoro/invoices", partition=day).success
    before = day_snapshot(env, day)
    env.control("POST", "faults", json={"kind": "malformed_json", "path": "/invoices", "method": "GET",
                                        "count": None})
    result = env.materialize("precoro/invoices", partition=day)
    assert not result.success
    [failure] = result.get_step_failure_events()
    message = str(failure.step_failure_data.error)
    assert "Precoro sent unreadable JSON for GET /invoices (HTTP 200" in message
    assert day_snapshot(env, day) == before


@pytest.mark.e2e
def test_a_word_where_a_number_belongs_is_a_field_problem_not_a_failed_run(env):
    suppliers = env.export("suppliers")
    # suppliers are stored from their details (their list rows are partial)
    env.control("POST", "faults", json={"kind": "unknown_fields", "path": "/suppliers/{id}", "method": "GET",
                                        "count": None, "fields": {"status": "active",
                                                                  "brandNewBlock": {"a": [1, {"b": None}]}}})
    result = env.materialize("precoro/suppliers")
    assert result.success
    assert metadata(result)["field problems"] >= len(suppliers)  # status "active" is not an integer: reported
    rows = env.query("SELECT status IS NULL, raw FROM precoro.suppliers")
    assert len(rows) == len(suppliers)  # every supplier stored
    for status_is_null, raw in rows:
        assert status_is_null  # the typed column can't hold it ...
        assert json.loads(raw)["status"] == "active"  # ... raw keeps it, and the new block too
        assert json.loads(raw)["brandNewBlock"] == {"a": [1, {"b": None}]}


# ---- bad ledger files -----------------------------------------------------------------------------------------------

HEADER = "payment_id,bill_id,supplier,invoice_number,amount,currency,paid_on\n"


def test_ledger_files_that_are_not_csv_text_are_rejected_whole_with_a_reason(tmp_path: Path):
    # UTF-16 and semicolon-separated exports are CSV text and load (see tests/reconcile/test_ledger_files.py);
    # a spreadsheet saved with a .csv name, or an empty file, holds no header to read
    cases = {
        "a spreadsheet": b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xff\xfe binary",
        "another report": b"date,amount\n2026-11-04,10.00\n",
        "empty": b"",
    }
    for case, content in cases.items():
        folder = tmp_path / case
        folder.mkdir()
        (folder / "payments.csv").write_bytes(content)
        snapshot = FileLedgerSource(folder).load()
        assert snapshot.payments == [], case
        if content:
            [problem] = snapshot.rejected
            assert problem.file == "payments.csv" and problem.line == 1, case
            assert "payment_id" in problem.reason and "no row of this file was loaded" in problem.reason, case


def test_ledger_text_that_looks_like_sql_or_a_formula_loads_verbatim(tmp_path: Path):
    supplier = f"{AWKWARD_NAME} {SQL_INJECTION}"
    (tmp_path / "payments.csv").write_text(
        HEADER + f'P-1,,"{supplier.replace(chr(34), chr(34) * 2)}","=HYPERLINK(""x"");1",10.00,EUR,2026-11-04\n',
        encoding="utf-8")
    snapshot = FileLedgerSource(tmp_path).load()
    assert snapshot.rejected == []
    [payment] = snapshot.payments
    assert payment.supplier == supplier and payment.invoice_number == '=HYPERLINK("x");1'
    assert payment.amount == Decimal("10.00") and payment.paid_on == date(2026, 11, 4) - timedelta(0)
