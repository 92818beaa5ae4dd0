"""What reconciliation reads and what it concludes, as plain records: Precoro's invoices, payments and purchase
orders; the class and reason of every invoice and every ledger record (`CLASSES`); the whole result. The rules
that classify are in classify.py.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from ..catalogue import CREDIT_NOTE_LOGIC_TYPES, STATUS_NAMES
from ..ledger.source import LedgerBill, LedgerPayment
from ..writeback.proposals import Proposal

MATCHED = "matched"
PAID_IN_LEDGER_ONLY = "paid_in_ledger_not_precoro"
PAID_IN_PRECORO_ONLY = "paid_in_precoro_not_ledger"
AMOUNT_MISMATCH = "amount_mismatch"
LINK_MISMATCH = "link_mismatch"
CURRENCY_MISMATCH = "currency_mismatch"
AMBIGUOUS = "ambiguous"
NEEDS_REVIEW = "needs_review"
UNMATCHED = "unmatched"

CLASSES: dict[str, str] = {
    MATCHED: "Both sides agree: linked, and every payment on one side has its twin on the other.",
    PAID_IN_LEDGER_ONLY: "Paid in the ledger, not (fully) in Precoro: a payment is missing in Precoro.",
    PAID_IN_PRECORO_ONLY: "Paid in Precoro, missing in the ledger.",
    AMOUNT_MISMATCH: "The same invoice or payment with different amounts on the two sides.",
    CURRENCY_MISMATCH: "The same invoice or payment in different currencies on the two sides.",
    LINK_MISMATCH: "A payment of the same amount on both sides, but Precoro's payment is linked (externalId) to "
                   "another ledger payment: a person corrects the link on one side.",
    AMBIGUOUS: "Several records fit equally well (or a possible duplicate): a person must decide.",
    NEEDS_REVIEW: "A matching rule found candidates below the auto threshold (reconciliation.yaml): a person "
                  "confirms one; nothing is written back until then.",
    UNMATCHED: "No counterpart on the other side, and nothing paid that would need one.",
}

# What a ledger record is matched by (the `matched_by` column).
BY_EXTERNAL_ID = "external_id"
BY_BILL = "bill (matched by supplier + invoice number)"
BY_NUMBER_AMOUNT = "supplier + invoice number + amount + currency"
BY_NUMBER = "supplier + invoice number"

PAYABLE_STATUSES = (2, 4)  # approved, partly paid: Precoro accepts POST /payments

# integrationStatus 8: the document waits for a connector that is disabled; Precoro's own connector skips it
CONNECTOR_DISABLED = 8


# ---- inputs -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PrecoroPayment:
    id: int
    idn: str
    amount: Decimal
    currency: str
    pay_date: date | None
    external_id: str | None = None
    cancelled: bool = False  # status 8: still listed on the invoice, no longer in its sumPaid


@dataclass(frozen=True)
class Invoice:
    idn: str
    id: int | None
    supplier: str
    invoice_number: str | None
    total: Decimal
    paid: Decimal
    currency: str
    status: int | None
    logic_type: int = 0
    external_id: str | None = None
    log: str | None = None
    payments: tuple[PrecoroPayment, ...] = ()
    integration_status: int | None = None
    parent_idn: str | None = None  # a split-cost child: an allocation of that base invoice, never paid on its own
    issued: date | None = None
    total_company: Decimal | None = None  # the total in the company currency (Precoro's sumInCompanyCurrency)

    @property
    def is_credit_note(self) -> bool:
        return self.logic_type in CREDIT_NOTE_LOGIC_TYPES

    def in_company_currency(self, amount: Decimal) -> Decimal | None:
        """An amount of this invoice's currency at the invoice's own rate (sumInCompanyCurrency / sum)."""
        if self.total_company is None or not self.total:
            return None
        return (self.total_company * amount / self.total).quantize(Decimal("0.01"))

    @property
    def live_payments(self) -> tuple[PrecoroPayment, ...]:
        """The payments that count (Precoro's sumPaid): cancelled ones take no part in pairing or totals."""
        return tuple(p for p in self.payments if not p.cancelled)

    @property
    def cancelled_payments(self) -> tuple[PrecoroPayment, ...]:
        return tuple(p for p in self.payments if p.cancelled)

    @property
    def payable(self) -> bool:
        return self.status in PAYABLE_STATUSES and not self.is_credit_note

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, str(self.status)) if self.status is not None else "unknown"


@dataclass(frozen=True)
class PurchaseOrder:
    idn: str
    id: int | None
    supplier: str
    total: Decimal
    currency: str
    status: int | None
    external_id: str | None = None
    integration_status: int | None = None


# ---- outputs ------------------------------------------------------------------------------------------------

# The resources reconciliation writes to: its batch retires pending rows of these only (see Outbox.propose).
RECONCILED_RESOURCES = ("invoices", "payments", "purchaseorders")


@dataclass
class InvoiceResult:
    invoice: Invoice
    klass: str = UNMATCHED
    reason: str = ""
    matched_by: str | None = None
    bill: LedgerBill | None = None
    bill_matched_by: str | None = None
    bill_agrees: bool = False  # same amount, currency and kind: safe to link
    ledger_payments: list[LedgerPayment] = field(default_factory=list)
    payment_keys: set[str] = field(default_factory=set)  # how the ledger payments found this invoice
    pairs: list[tuple[LedgerPayment, PrecoroPayment, str]] = field(default_factory=list)
    unpaired_ledger: list[LedgerPayment] = field(default_factory=list)
    unpaired_precoro: list[PrecoroPayment] = field(default_factory=list)
    tolerance: Decimal = Decimal("0")  # amounts this close are the same (reconciliation.yaml; 0 without rules)

    @property
    def ledger_paid(self) -> Decimal:
        return sum((p.amount for p in self.ledger_payments if p.currency == self.invoice.currency), Decimal("0.00"))


@dataclass(slots=True)  # one per ledger record: a large ledger has a million
class LedgerResult:
    kind: str  # "payment" | "bill" | "credit_note"
    ledger_id: str
    supplier: str | None
    invoice_number: str | None
    bill_id: str | None
    amount: Decimal
    currency: str
    day: date | None
    source_file: str
    source_line: int
    klass: str = UNMATCHED
    reason: str = ""
    matched_by: str | None = None
    invoice_idn: str | None = None
    invoice_amount: Decimal | None = None
    invoice_currency: str | None = None
    precoro_payment_idn: str | None = None
    precoro_payment_amount: Decimal | None = None
    rule: str | None = None  # the AP rule that placed it (ap_matching.py), when the strong keys did not
    confidence: Decimal | None = None
    candidates: str | None = None  # for review: the invoices it could pay
    parts: tuple[tuple[str, Decimal], ...] = ()  # a payment split over several invoices: (idn, amount) each


def _ledger_order(row: LedgerResult) -> tuple[str, int, str]:
    return row.source_file, row.source_line, row.ledger_id


class LedgerResults:
    """Every ledger record's result in (file, line, id) order, made as it is read.

    Why not a list: a year of a large company's payments is a million rows, most of which no key or rule places
    (in Precoro since before the ledger began, or never entered there). Such a payment's row follows from the
    payment alone, so only the bills and the payments that reached an invoice (or a review) are kept; the others'
    rows are made again from `payments` (a fresh pass in the same order each time) while the rows are read. A
    million result objects would be a gigabyte; the ledger's payments pass through one batch at a time.

    Reading the rows through also tallies them (`tally`), so totals need no second pass.
    """

    def __init__(self, bills: list[LedgerResult], kept: dict[int, LedgerResult],
                 payments: Callable[[], Iterable[LedgerPayment]], unplaced: Callable[[LedgerPayment], LedgerResult],
                 payment_count: int, payments_in_order: bool) -> None:
        self.bills = sorted(bills, key=_ledger_order)
        self.kept, self.payments, self.unplaced = kept, payments, unplaced
        self.payment_count, self.payments_in_order = payment_count, payments_in_order
        self.tally: dict[tuple[str, str], list] | None = None  # (class, currency) -> [count, amount]

    def __len__(self) -> int:
        return len(self.bills) + self.payment_count

    def _payment_rows(self) -> Iterator[LedgerResult]:
        """The payments' rows in the payments' order: kept, or made again."""
        for index, payment in enumerate(self.payments()):
            row = self.kept.get(index)
            yield self.unplaced(payment) if row is None else row

    def __iter__(self) -> Iterator[LedgerResult]:
        if self.payments_in_order:  # sorted as `ledger_order` sorts: merged without holding them
            rows: Iterable[LedgerResult] = heapq.merge(self.bills, self._payment_rows(), key=_ledger_order)
        else:  # a stable sort of bills then payments, as the ledger rows always were
            rows = sorted([*self.bills, *self._payment_rows()], key=_ledger_order)
        tally: dict[tuple[str, str], list] = {}
        for row in rows:
            entry = tally.setdefault((row.klass, row.currency), [0, Decimal("0.00")])
            entry[0], entry[1] = entry[0] + 1, entry[1] + row.amount
            yield row
        self.tally = tally


def ledger_tally(rows: Iterable[LedgerResult]) -> dict[tuple[str, str], list]:
    """(class, currency) -> [count, amount] over the ledger rows (from the pass that read them, where there was)."""
    tally = getattr(rows, "tally", None)
    if tally is None:
        tally = {}
        for row in rows:
            entry = tally.setdefault((row.klass, row.currency), [0, Decimal("0.00")])
            entry[0], entry[1] = entry[0] + 1, entry[1] + row.amount
    return tally


@dataclass
class Reconciliation:
    invoices: list[InvoiceResult]
    ledger: list[LedgerResult] | LedgerResults  # a list from reconcile(), made as read from reconcile_stored()
    proposals: list[Proposal]

    def totals(self) -> dict[str, dict[str, int]]:
        """Count per class, for invoices and for ledger records: every class listed, zeros included."""
        out = {"invoices": dict.fromkeys(CLASSES, 0), "ledger": dict.fromkeys(CLASSES, 0)}
        for row in self.invoices:
            out["invoices"][row.klass] += 1
        for (klass, _), (count, _) in ledger_tally(self.ledger).items():
            out["ledger"][klass] += count
        return out


def money(amount: Decimal, currency: str) -> str:
    return f"{amount:.2f} {currency}"


def describe_payment(p: LedgerPayment) -> str:
    return f"ledger payment {p.payment_id} ({money(p.amount, p.currency)} on {p.paid_on})"
