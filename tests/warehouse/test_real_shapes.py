"""Fields read as Precoro's real responses carry them: exchangeRate as an object or list, money as number or
string, purchaseOrder as an object or list, idn as number or string, a due date derived from the payment term."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from precoro_assets.catalogue import BY_NAME
from precoro_assets.warehouse.rows import Rows, flatten

NOW = datetime(2026, 12, 3, tzinfo=UTC)


def invoice_row(**fields) -> tuple[dict, list[str]]:
    rows = Rows()
    flatten(BY_NAME["invoices"], {"id": 400001, "idn": 7, **fields}, rows, NOW)
    [row] = rows.tables["invoices"]
    return row, [str(p) for p in rows.problems]


@pytest.mark.parametrize("rate", [
    {"rate": 4.0123, "currency": "PLN"}, [{"rate": "4.0123"}], "4.0123", 4.0123, {"exchangeRate": 4.0123}])
def test_the_exchange_rate_is_read_out_of_an_object_a_list_or_a_number(rate):
    row, problems = invoice_row(exchangeRate=rate)
    assert row["exchange_rate"] == Decimal("4.0123") and problems == []


def test_an_exchange_rate_object_without_a_rate_is_a_problem_and_stays_in_raw():
    row, problems = invoice_row(exchangeRate={"currency": "PLN"})
    assert row["exchange_rate"] is None and problems and "exchange_rate" in problems[0]
    assert '"currency":"PLN"' in row["raw"].replace(" ", "")


def test_money_comes_as_a_number_or_a_string_and_is_exact():
    row, problems = invoice_row(sum="1234.50", sumPaid="0.10", sumPaidInCompanyCurrency=0.1, withholdingTaxSum=0)
    assert (row["sum"], row["sum_paid"], row["sum_paid_in_company_currency"]) == (
        Decimal("1234.50"), Decimal("0.10"), Decimal("0.10"))
    assert row["withholding_tax_sum"] == Decimal("0.00") and problems == []


def test_the_due_date_is_the_issue_date_plus_the_credit_period():
    row, _ = invoice_row(issueDate="2026-11-02T10:00:00+01:00", creditPeriodDays=30)
    assert row["due_date"] == datetime(2026, 12, 2, 9, tzinfo=UTC) and row["credit_period_days"] == 30
    assert invoice_row(issueDate="2026-11-02T10:00:00+00:00")[0]["due_date"] is None  # no term, no due date
    assert invoice_row(creditPeriodDays=30)[0]["due_date"] is None
    # a dueDate field, which real invoices don't have, is not what the column reads
    assert invoice_row(dueDate="2026-12-24T00:00:00+00:00")[0]["due_date"] is None


def test_purchase_order_as_an_object_or_a_list_and_the_idn_as_a_number_or_text():
    for order in ({"id": 200003, "idn": 3}, [{"id": 200003, "idn": "3"}, {"id": 200004, "idn": "4"}]):
        row, problems = invoice_row(purchaseOrder=order)
        assert (row["purchase_order_id"], row["purchase_order_idn"], row["idn"]) == (200003, "3", "7")
        assert problems == []


def test_a_split_child_names_its_base_invoice_under_the_new_or_the_old_field():
    assert invoice_row(parentData={"id": 400002, "idn": 12})[0]["parent_idn"] == "12"
    assert invoice_row(parentIdn="12")[0]["parent_idn"] == "12"
    assert invoice_row(parentData=None)[0]["parent_idn"] is None


def test_reference_data_reads_the_real_names():
    rows = Rows()
    flatten(BY_NAME["suppliers"], {"id": 1001, "taxPayerNumber": "PL123", "paymentTerms": {"data": [
        {"id": 21, "name": "Net 30", "creditPeriodDays": 30, "prepaymentPercent": "0", "postpaymentPercent": 100}]}},
        rows, NOW)
    assert rows.tables["suppliers"][0]["tax_number"] == "PL123"
    assert rows.tables["supplier_payment_terms"][0]["credit_period_days"] == 30
    flatten(BY_NAME["taxes"], {"id": 11, "name": "VAT 23%", "percent": 23, "value": 23, "isWithholdingTax": False},
            rows, NOW)
    [tax] = rows.tables["taxes"]
    assert (tax["percent"], tax["is_withholding_tax"], tax["update_date"]) == (Decimal("23"), False, None)
    assert rows.problems == []
