"""What reconciliation proposes once every invoice has its class: the writes that would make Precoro agree with
the ledger (a missing payment, a link by externalId, the "Not synced" card shown or cleared) and the approved
documents the accounting side does not know yet (offered for export). The write vocabulary: writeback/proposals.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..writeback.proposals import CLEAR_LOG, CREATE_PAYMENT, EXPORT, SET_EXTERNAL_ID, SET_LOG, Proposal
from .records import (
    AMBIGUOUS,
    AMOUNT_MISMATCH,
    CONNECTOR_DISABLED,
    CURRENCY_MISMATCH,
    LINK_MISMATCH,
    MATCHED,
    PAID_IN_LEDGER_ONLY,
    PAID_IN_PRECORO_ONLY,
    UNMATCHED,
    Invoice,
    InvoiceResult,
    PurchaseOrder,
    describe_payment,
    money,
)

# Offered to the accounting side when unknown there: every status a document reaches only through approval and
# that does not void it, as Precoro's connector exports approved documents (its tap reads status 2 by default and
# lets a company add others): approved (2), partly paid (4), paid (5), pending receipt (9: approved, the goods not
# received yet; the bill is owed all the same) and closed (11: approved, then closed). Never open (0), pending (1),
# awaiting confirmation (6), on revise (7) or approval review (10): not approved (yet); nor denied (3) or canceled
# (8). docs/reconciliation.md.
APPROVED_STATUSES = (2, 4, 5, 9, 11)
FLAG_PREFIX = "Reconciliation: "
MAX_LOG_CHARS = 500


def corrections(results: Iterable[InvoiceResult], purchase_orders: Iterable[PurchaseOrder]) -> list[Proposal]:
    """Every proposal of a reconciliation: per invoice, the payment links, then the purchase orders to export."""
    results = list(results)
    proposals = [p for result in results for p in invoice_proposals(result)]
    proposals += payment_link_proposals(results)
    proposals += [export_proposal(po) for po in purchase_orders
                  if po.status == 2 and not po.external_id and po.integration_status != CONNECTOR_DISABLED]
    return proposals


def flag_text(result: InvoiceResult) -> str | None:
    """The externalIntegrationLog this invoice should show ("Not synced" card), or None when it needs none."""
    invoice = result.invoice
    if result.klass in (AMBIGUOUS, AMOUNT_MISMATCH, CURRENCY_MISMATCH, LINK_MISMATCH):
        text = f"{result.klass.replace('_', ' ')}: {result.reason}"
    elif result.klass == PAID_IN_LEDGER_ONLY and not invoice.payable:
        text = result.reason
    elif result.klass == PAID_IN_PRECORO_ONLY and invoice.external_id:
        text = result.reason
    else:
        return None
    text = FLAG_PREFIX + text
    return text if len(text) <= MAX_LOG_CHARS else text[: MAX_LOG_CHARS - 1] + "…"


def invoice_proposals(result: InvoiceResult) -> list[Proposal]:
    invoice = result.invoice
    proposals = []
    if result.klass == PAID_IN_LEDGER_ONLY and invoice.payable:
        known = sorted(p.id for p in invoice.payments)
        left = invoice.total - invoice.paid
        for lp in result.unpaired_ledger:
            # a cent over what is open (within the tolerance) pays what is open, as Precoro's connector does
            amount = left if lp.amount > left and lp.amount - left <= result.tolerance else lp.amount
            left -= amount
            proposals.append(Proposal(
                CREATE_PAYMENT, "invoices", invoice.idn, invoice.id,
                {"invoice_id": invoice.id, "amount": format(amount, "f"), "currency": lp.currency,
                 "pay_date": lp.paid_on.isoformat(), "ledger_payment_id": lp.payment_id,
                 "known_payment_ids": known},
                f"{describe_payment(lp)} is missing in Precoro; {result.reason}", ledger_ref=lp.payment_id))
    fields: dict[str, str] = {}
    bill = result.bill
    if not invoice.external_id and bill is not None and result.bill_agrees and result.klass != AMBIGUOUS:
        fields["externalId"] = bill.bill_id
    wanted = flag_text(result)
    if wanted is not None and wanted != (invoice.log or ""):
        fields["externalIntegrationLog"] = wanted
    elif wanted is None and invoice.log and result.klass == MATCHED and (invoice.external_id or fields):
        fields["externalIntegrationLog"] = ""  # the sync error is fixed: clear the "Not synced" card
    if fields:
        if "externalId" in fields:
            kind, why = SET_EXTERNAL_ID, f"link to ledger bill {fields['externalId']} ({result.bill_matched_by})"
        elif fields["externalIntegrationLog"]:
            kind, why = SET_LOG, f"show the disagreement in Precoro ({result.klass})"
        else:
            kind, why = CLEAR_LOG, f"the invoice now reconciles ({result.reason}); clear {invoice.log!r}"
        proposals.append(Proposal(kind, "invoices", invoice.idn, invoice.id, {"fields": fields}, why,
                                  ledger_ref=bill.bill_id if bill is not None else None))
    elif (not invoice.external_id and bill is None and not result.ledger_payments
          and result.klass in (UNMATCHED, PAID_IN_PRECORO_ONLY) and invoice.status in APPROVED_STATUSES
          and invoice.integration_status != CONNECTOR_DISABLED):
        proposals.append(export_proposal(invoice))
    return proposals


def export_proposal(document: Invoice | PurchaseOrder) -> Proposal:
    if isinstance(document, Invoice):
        resource, number, what = "invoices", document.invoice_number or document.idn, "invoice"
    else:
        resource, number, what = "purchaseorders", document.idn, "purchase order"
    return Proposal(
        EXPORT, resource, document.idn, document.id,
        {"supplier": document.supplier, "number": number, "amount": format(document.total, "f"),
         "currency": document.currency},
        f"approved {what} idn {document.idn} ({money(document.total, document.currency)}, {document.supplier}) is "
        "not linked to the accounting system and the ledger does not know it: offer it")


def payment_link_proposals(results: Any) -> list[Proposal]:
    """Precoro payments paired with a ledger payment but not linked to it yet: PATCH their externalId."""
    proposals = []
    for result in results:
        for lp, pp, how in result.pairs:
            if pp.external_id is None:
                proposals.append(Proposal(
                    SET_EXTERNAL_ID, "payments", pp.idn, pp.id, {"fields": {"externalId": lp.payment_id}},
                    f"Precoro payment {pp.idn} on invoice idn {result.invoice.idn} is {describe_payment(lp)} "
                    f"(paired by {how})", ledger_ref=lp.payment_id))
    return proposals
