"""The AP rules end to end: ledger files as AP exports them (a batch payment without allocation lines, a typed
invoice number, an allocation line naming an invoice nobody has), the reconciliation through Dagster, the write-back
to the simulator, and the analyst views of what is owed and what a person must place."""

from __future__ import annotations

import csv
from collections import defaultdict
from decimal import Decimal

import pytest

from precoro_assets.settings import ledger_dir
from tests.reconcile.reconcile_support import SEND

pytestmark = pytest.mark.e2e  # a simulator on a socket or child processes: in make test, not in make test-fast



def write_payments(rows: list[dict]) -> None:
    """One more payments file beside the demo's (payments*.csv are all read)."""
    with open(ledger_dir() / "payments_ap.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["payment_id", "supplier", "invoice_number", "amount", "currency",
                                                    "paid_on"])
        writer.writeheader()
        writer.writerows(rows)


def test_batch_payments_typed_numbers_and_the_review_queue_through_dagster(env):
    env.reconcile()
    untouched = env.warehouse.query("""
        SELECT r.invoice_idn, r.supplier_name, r.invoice_number, r.precoro_total, r.currency, i.issue_date
        FROM precoro.reconciliation_invoices r JOIN precoro.invoices i ON i.idn = r.invoice_idn
        WHERE r.class = 'unmatched' AND r.status = 2 AND r.precoro_paid = 0 AND NOT r.is_credit_note
          AND i.parent_idn IS NULL ORDER BY r.invoice_idn""").to_dict("records")
    by_supplier: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in untouched:
        by_supplier[(row["supplier_name"], row["currency"])].append(row)
    (supplier, currency), open_rows = next((k, v) for k, v in by_supplier.items() if len(v) >= 3)
    batch, typed = open_rows[:2], open_rows[2]
    paid_on = max(r["issue_date"] for r in open_rows[:3]).date().isoformat()
    batch_total = sum((Decimal(str(r["precoro_total"])) for r in batch), Decimal("0"))
    digits = "".join(ch for ch in typed["invoice_number"] if ch.isdigit())
    write_payments([
        {"payment_id": "AP-BATCH", "supplier": supplier.upper(), "amount": str(batch_total), "currency": currency,
         "paid_on": paid_on},  # no invoice number: one bank payment for two invoices
        {"payment_id": "AP-TYPED", "supplier": supplier, "invoice_number": f"inv #{digits} ",
         "amount": str(typed["precoro_total"]), "currency": currency, "paid_on": paid_on},
        {"payment_id": "AP-UNSURE", "supplier": supplier, "amount": "10.00", "currency": currency,
         "paid_on": paid_on},
    ])
    with open(ledger_dir() / "payment_allocations.csv", "w", newline="", encoding="utf-8") as handle:
        handle.write("payment_id,invoice_number,amount\nAP-UNSURE,NOPE-1,10.00\n")

    env.reconcile()
    ledger = {row["ledger_id"]: row for row in env.warehouse.query(
        "SELECT * FROM precoro.reconciliation_ledger WHERE ledger_id LIKE 'AP-%'").to_dict("records")}
    assert ledger["AP-BATCH"]["rule"] == "batch_subset" and ledger["AP-BATCH"]["class"] == "paid_in_ledger_not_precoro"
    assert sorted(part.split()[0] for part in ledger["AP-BATCH"]["parts"].split("; ")) == sorted(
        r["invoice_idn"] for r in batch)
    assert (ledger["AP-TYPED"]["rule"], ledger["AP-TYPED"]["invoice_idn"]) == ("normalised_number",
                                                                               typed["invoice_idn"])
    assert ledger["AP-UNSURE"]["class"] == "needs_review" and "NOPE-1" in ledger["AP-UNSURE"]["reason"]

    env.materialize(["precoro/analyst_views"])
    queue = env.warehouse.query("SELECT * FROM precoro.review_queue").to_dict("records")
    assert "AP-UNSURE" in {row["payment_id"] for row in queue}
    owed = env.warehouse.query("SELECT sum(outstanding_in_company_currency) AS total "
                               "FROM precoro.outstanding_per_supplier").iloc[0]["total"]
    expected = env.warehouse.query("SELECT sum(outstanding_in_company_currency) AS total FROM "
                                   "precoro.invoices_overview WHERE status IN (2, 4) AND NOT is_credit_note "
                                   "AND outstanding > 0").iloc[0]["total"]
    assert owed == expected and owed > 0

    mark = env.request_mark()
    env.writeback(SEND)
    posts = [r for r in env.requests_since(mark) if r["method"] == "POST" and r["url"].startswith("/payments")]
    invoices = {str(i["idn"]): i for i in env.export("invoices")}
    for row in [*batch, typed]:
        assert Decimal(str(invoices[row["invoice_idn"]]["sumPaid"])) == Decimal(str(row["precoro_total"]))
    assert all(r["status"] == 200 for r in posts)
    sent = {r.ledger_ref for r in env.outbox.rows() if r.kind == "create_payment" and r.status == "sent"}
    assert {f"AP-BATCH/{r['invoice_idn']}" for r in batch} | {"AP-TYPED"} <= sent
    assert not any(ref and ref.startswith("AP-UNSURE") for ref in sent)  # below the threshold: nothing written


def test_a_rules_file_that_is_not_understood_stops_the_reconciliation_with_its_name(env):
    (ledger_dir() / "reconciliation.yaml").write_text("auto_threshold: 1.5\n")
    result = env.materialize_keys(["precoro/reconciliation_invoices"], raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data
    assert "auto_threshold 1.5 must be above 0" in failure.user_failure_data.description
