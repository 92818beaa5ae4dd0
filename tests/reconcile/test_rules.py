"""The matching and classification rules, one small case each (no simulator, no warehouse)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from precoro_assets.ledger.source import BILL, CREDIT_NOTE, LedgerBill, LedgerPayment
from precoro_assets.reconcile.classify import reconcile
from precoro_assets.reconcile.corrections import flag_text
from precoro_assets.reconcile.records import (
    AMBIGUOUS,
    AMOUNT_MISMATCH,
    BY_EXTERNAL_ID,
    BY_NUMBER_AMOUNT,
    CURRENCY_MISMATCH,
    LINK_MISMATCH,
    MATCHED,
    PAID_IN_LEDGER_ONLY,
    PAID_IN_PRECORO_ONLY,
    UNMATCHED,
    Invoice,
    PrecoroPayment,
    PurchaseOrder,
)
from precoro_assets.writeback.proposals import CLEAR_LOG, CREATE_PAYMENT, EXPORT, SET_EXTERNAL_ID, SET_LOG

D = Decimal
DAY = date(2026, 11, 2)


def invoice(idn: str, total: str = "100.00", paid: str = "0.00", status: int = 2, currency: str = "EUR",
            supplier: str = "ACME Corp", number: str | None = None, external_id: str | None = None,
            payments: tuple[PrecoroPayment, ...] = (), logic_type: int = 0, log: str | None = None) -> Invoice:
    return Invoice(idn, 400000 + int(idn), supplier, number or f"INV-{idn}", D(total), D(paid), currency, status,
                   logic_type, external_id, log, payments)


def paid_with(idn: int, amount: str, external_id: str | None = None, day: date = DAY) -> PrecoroPayment:
    return PrecoroPayment(600000 + idn, str(idn), D(amount), "EUR", day, external_id)


def ledger_payment(payment_id: str, amount: str, bill_id: str | None = None, supplier: str | None = None,
                   number: str | None = None, currency: str = "EUR", day: date = DAY) -> LedgerPayment:
    return LedgerPayment(payment_id, D(amount), currency, day, bill_id, supplier, number)


def bill(bill_id: str, number: str, amount: str = "100.00", kind: str = BILL, supplier: str = "ACME Corp",
         currency: str = "EUR") -> LedgerBill:
    return LedgerBill(bill_id, kind, supplier, number, D(amount), currency)


def classes(result) -> dict[str, str]:
    return {row.invoice.idn: row.klass for row in result.invoices}


def kinds(result) -> list[tuple[str, str, str]]:
    return sorted((p.kind, p.resource, p.target_key) for p in result.proposals)


def test_external_id_wins_over_supplier_and_number():
    invoices = [invoice("1", external_id="QB-1", number="X-1"), invoice("2", number="X-1")]
    result = reconcile(invoices, [ledger_payment("L-1", "100.00", bill_id="QB-1")], [bill("QB-1", "X-1")])
    rows = {r.invoice.idn: r for r in result.invoices}
    assert rows["1"].bill.bill_id == "QB-1" and rows["1"].bill_matched_by == BY_EXTERNAL_ID
    assert rows["1"].klass == PAID_IN_LEDGER_ONLY and rows["2"].klass == UNMATCHED
    assert kinds(result) == [(CREATE_PAYMENT, "invoices", "1"), (EXPORT, "invoices", "2")]


def test_an_unlinked_bill_matches_by_supplier_number_amount_and_currency_and_is_linked():
    # names compare without case or spacing differences
    result = reconcile([invoice("3", number="INV/3")], [], [bill("B-3", "inv/3", supplier="acme  CORP")])
    row = result.invoices[0]
    assert row.klass == MATCHED and row.bill_matched_by == BY_NUMBER_AMOUNT
    assert [(p.kind, p.payload) for p in result.proposals] == [(SET_EXTERNAL_ID, {"fields": {"externalId": "B-3"}})]
    # a different total is evidence of a mismatch, not a link
    result = reconcile([invoice("3", number="INV/3")], [], [bill("B-3", "INV/3", amount="110.00")])
    assert classes(result) == {"3": AMOUNT_MISMATCH}
    assert [p.kind for p in result.proposals] == [SET_LOG]


def test_partial_payments_pair_one_by_one_and_only_the_missing_one_is_proposed():
    precoro = invoice("4", paid="40.00", status=4, payments=(paid_with(1, "40.00"),))
    ledger = [ledger_payment("L-1", "40.00", supplier="ACME Corp", number="INV-4"),
              ledger_payment("L-2", "60.00", supplier="ACME Corp", number="INV-4", day=date(2026, 11, 9))]
    result = reconcile([precoro], ledger, [])
    assert classes(result) == {"4": PAID_IN_LEDGER_ONLY}
    create = next(p for p in result.proposals if p.kind == CREATE_PAYMENT)
    assert create.payload["amount"] == "60.00" and create.payload["pay_date"] == "2026-11-09"
    assert create.payload["known_payment_ids"] == [600001] and create.ledger_ref == "L-2"
    link = next(p for p in result.proposals if p.resource == "payments")  # the paired Precoro payment gets linked
    assert (link.target_key, link.payload) == ("1", {"fields": {"externalId": "L-1"}})
    by_id = {r.ledger_id: r for r in result.ledger}
    assert by_id["L-1"].klass == MATCHED and by_id["L-1"].precoro_payment_idn == "1"
    assert by_id["L-2"].klass == PAID_IN_LEDGER_ONLY


def test_a_precoro_payment_linked_by_external_id_pairs_before_amounts_are_compared():
    precoro = invoice("5", paid="100.00", status=5, external_id="QB-5",
                      payments=(paid_with(2, "50.00", external_id="QB-PAY-9"), paid_with(3, "50.00")))
    ledger = [ledger_payment("QB-PAY-9", "50.00", bill_id="QB-5"), ledger_payment("L-7", "50.00", bill_id="QB-5")]
    result = reconcile([precoro], ledger, [bill("QB-5", "INV-5")])
    pairs = {lp.payment_id: (pp.idn, how) for lp, pp, how in result.invoices[0].pairs}
    assert pairs == {"QB-PAY-9": ("2", "payment externalId"), "L-7": ("3", "amount")}
    assert classes(result) == {"5": MATCHED}
    assert kinds(result) == [(SET_EXTERNAL_ID, "payments", "3")]


def test_more_than_is_open_is_an_amount_mismatch_and_different_payments_too():
    result = reconcile([invoice("6")], [ledger_payment("L-1", "120.00", supplier="ACME Corp", number="INV-6")], [])
    assert classes(result) == {"6": AMOUNT_MISMATCH}
    assert [p.kind for p in result.proposals] == [SET_LOG]  # flagged, never paid
    precoro = invoice("7", paid="100.00", status=5, payments=(paid_with(4, "100.00"),))
    result = reconcile([precoro], [ledger_payment("L-2", "90.00", supplier="ACME Corp", number="INV-7")], [])
    assert classes(result) == {"7": AMOUNT_MISMATCH}
    assert "90.00 EUR" in result.invoices[0].reason and "100.00 EUR" in result.invoices[0].reason


def test_equal_payments_linked_to_another_ledger_payment_differ_in_the_link_not_the_amount():
    precoro = invoice("13", paid="100.00", status=5, payments=(paid_with(5, "100.00", external_id="QB-PAY-OLD"),))
    result = reconcile([precoro], [ledger_payment("QB-PAY-NEW", "100.00", supplier="ACME Corp", number="INV-13")], [])
    assert classes(result) == {"13": LINK_MISMATCH} and result.ledger[0].klass == LINK_MISMATCH
    reason = result.invoices[0].reason
    assert "QB-PAY-NEW" in reason and "linked to ledger payment QB-PAY-OLD" in reason
    assert "differ" not in reason.replace("same amount", "")  # nothing is said to differ but the link
    assert [p.kind for p in result.proposals] == [SET_LOG]  # flagged for a person, never paid twice
    # a different amount as well is still an amount mismatch
    result = reconcile([precoro], [ledger_payment("QB-PAY-NEW", "90.00", supplier="ACME Corp", number="INV-13")], [])
    assert classes(result) == {"13": AMOUNT_MISMATCH}


def test_a_payment_in_another_currency_is_a_currency_mismatch_and_never_paid():
    result = reconcile([invoice("8")], [ledger_payment("L-1", "100.00", currency="USD", supplier="ACME Corp",
                                                       number="INV-8")], [])
    assert classes(result) == {"8": CURRENCY_MISMATCH}
    assert result.ledger[0].klass == CURRENCY_MISMATCH
    assert [p.kind for p in result.proposals] == [SET_LOG]


def test_ambiguous_candidates_and_duplicate_entries_are_not_written_back_only_flagged():
    twins = [invoice("9", number="DUP"), invoice("10", number="DUP")]
    result = reconcile(twins, [ledger_payment("L-1", "100.00", supplier="ACME Corp", number="DUP")], [])
    assert classes(result) == {"9": AMBIGUOUS, "10": AMBIGUOUS} and result.ledger[0].klass == AMBIGUOUS
    assert sorted(p.kind for p in result.proposals) == [SET_LOG, SET_LOG]
    twice = [ledger_payment("L-2", "100.00", bill_id="QB-11"), ledger_payment("L-3", "100.00", bill_id="QB-11")]
    result = reconcile([invoice("11", external_id="QB-11")], twice, [])
    assert classes(result) == {"11": AMBIGUOUS} and {r.klass for r in result.ledger} == {AMBIGUOUS}
    assert "possible duplicate" in result.invoices[0].reason
    assert CREATE_PAYMENT not in {p.kind for p in result.proposals}


def test_credit_notes_match_credit_notes_and_are_never_paid():
    credit = invoice("12", total="50.00", logic_type=1, number="CN-12")
    result = reconcile([credit], [], [bill("B-12", "CN-12", amount="50.00", kind=CREDIT_NOTE)])
    assert classes(result) == {"12": MATCHED}
    assert kinds(result) == [(SET_EXTERNAL_ID, "invoices", "12")]
    result = reconcile([credit], [], [bill("B-12", "CN-12", amount="50.00", kind=BILL)])  # a bill is not a credit note
    assert classes(result) == {"12": AMOUNT_MISMATCH}
    result = reconcile([credit], [ledger_payment("L-1", "50.00", supplier="ACME Corp", number="CN-12")], [])
    assert classes(result) == {"12": PAID_IN_LEDGER_ONLY}
    assert [p.kind for p in result.proposals] == [SET_LOG]


def test_paid_only_in_precoro_is_flagged_when_linked_and_exported_when_not():
    linked = invoice("13", paid="100.00", status=5, external_id="QB-13", payments=(paid_with(5, "100.00"),))
    unlinked = invoice("14", paid="100.00", status=5, payments=(paid_with(6, "100.00"),))
    pending = invoice("15", status=1)  # not approved: neither exported nor flagged
    orders = [PurchaseOrder("3", 200003, "ACME Corp", D("10.00"), "EUR", 2),
              PurchaseOrder("4", 200004, "ACME Corp", D("10.00"), "EUR", 2, external_id="QB-PO-4")]
    result = reconcile([linked, unlinked, pending], [], [], orders)
    assert classes(result) == {"13": PAID_IN_PRECORO_ONLY, "14": PAID_IN_PRECORO_ONLY, "15": UNMATCHED}
    assert kinds(result) == [(EXPORT, "invoices", "14"), (EXPORT, "purchaseorders", "3"), (SET_LOG, "invoices", "13")]


def test_documents_past_approval_and_not_voided_are_offered_for_export_pending_receipt_and_closed_too():
    """Exportable: approved (2), partly paid (4), paid (5), pending receipt (9: approved, waiting for the goods)
    and closed (11: approved, then closed); never a draft, one awaiting approval or review, denied or canceled."""
    for logic_type in (0, 1):  # invoices and credit notes alike
        documents = [invoice(str(20 + status), status=status, logic_type=logic_type) for status in range(12)]
        result = reconcile(documents, [], [])
        exported = sorted(int(idn) - 20 for kind, _, idn in kinds(result) if kind == EXPORT)
        assert exported == [2, 4, 5, 9, 11], logic_type


def test_logs_are_set_once_and_cleared_when_the_invoice_reconciles():
    flagged = invoice("16", external_id="QB-16")
    mismatch = reconcile([flagged], [], [bill("QB-16", "INV-16", amount="99.00")])
    text = flag_text(mismatch.invoices[0])
    assert text.startswith("Reconciliation: amount mismatch")
    shown = invoice("16", external_id="QB-16", log=text)
    assert reconcile([shown], [], [bill("QB-16", "INV-16", amount="99.00")]).proposals == []  # already shown
    fixed = reconcile([shown], [], [bill("QB-16", "INV-16")])
    assert [(p.kind, p.payload) for p in fixed.proposals] == [(CLEAR_LOG, {"fields": {"externalIntegrationLog": ""}})]


def test_proposals_have_stable_keys_and_a_payment_key_does_not_depend_on_precoro_state():
    ledger = [ledger_payment("L-0", "10.00", bill_id="QB-17"), ledger_payment("L-1", "30.00", bill_id="QB-17")]
    first = reconcile([invoice("17", external_id="QB-17")], ledger, [])
    again = reconcile([invoice("17", external_id="QB-17")], ledger, [])
    assert [p.idempotency_key for p in first.proposals] == [p.idempotency_key for p in again.proposals]
    assert len({p.idempotency_key for p in first.proposals}) == 2
    # L-0 was recorded in Precoro meanwhile: the proposal for L-1 is still the same row
    later = reconcile([invoice("17", external_id="QB-17", paid="10.00", status=4, payments=(paid_with(8, "10.00"),))],
                      ledger, [])
    create = [p for p in later.proposals if p.kind == CREATE_PAYMENT]
    assert [p.ledger_ref for p in create] == ["L-1"] and create[0].payload["known_payment_ids"] == [600008]
    before = next(p for p in first.proposals if p.ledger_ref == "L-1")
    assert create[0].idempotency_key == before.idempotency_key and create[0].payload != before.payload


def test_two_bills_for_one_invoice_are_ambiguous_and_nothing_is_linked():
    result = reconcile([invoice("18", number="INV-18")], [], [bill("B-1", "INV-18"), bill("B-2", "inv-18")])
    assert classes(result) == {"18": AMBIGUOUS} and {r.klass for r in result.ledger} == {AMBIGUOUS}
    assert [p.kind for p in result.proposals] == [SET_LOG]
