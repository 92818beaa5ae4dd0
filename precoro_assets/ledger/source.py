"""The interface between precoro-assets and an accounting system.

Two directions, two small protocols:
- `LedgerSource.load()` returns what the accounting system holds (payments and bills), plus every row it could
  not read, with the reason: a row is never dropped silently.
- `LedgerSink.offer(document)` hands one Precoro document (an approved invoice or purchase order) to the
  accounting system and says whether it was accepted (with the id it got there) or refused (with the reason).

The default implementations read and write files (`files.py`); a Xero or NetSuite connector implements the same
two methods and nothing else in the project changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Protocol, runtime_checkable

BILL = "bill"
CREDIT_NOTE = "credit_note"
PURCHASE_ORDER = "purchase_order"


@dataclass(frozen=True, slots=True)  # slots: a large ledger holds a million of them
class LedgerPayment:
    """A payment the accounting system recorded against a supplier invoice (a "bill")."""

    payment_id: str  # the accounting system's own id
    amount: Decimal  # > 0, in `currency`
    currency: str
    paid_on: date
    bill_id: str | None = None  # the bill it pays = the Precoro invoice's externalId, when the ledger knows it
    supplier: str | None = None  # else: supplier name + the supplier's invoice number
    invoice_number: str | None = None
    source_file: str = ""
    source_line: int = 0


@dataclass(frozen=True, slots=True)  # slots: a large ledger holds a million of them
class LedgerBill:
    """A supplier invoice (or credit note) as the accounting system booked it."""

    bill_id: str  # the accounting system's id: what Precoro stores as the invoice's externalId
    kind: str  # BILL or CREDIT_NOTE
    supplier: str
    invoice_number: str
    amount: Decimal  # always positive; `kind` says whether it is a credit note
    currency: str
    bill_date: date | None = None
    source_file: str = ""
    source_line: int = 0


@dataclass(frozen=True)
class RejectedRow:
    """A row (or a whole file, line 0) kept out of the ledger tables, and why."""

    file: str
    line: int
    reason: str
    text: str = ""  # the row as read, for the person who fixes the export
    whole_file: bool = False  # no row of the file was loaded (a CSV's wrong header is reported at its line 1)

    @property
    def rejects_file(self) -> bool:
        return self.whole_file or self.line == 0


class LedgerNotReady(Exception):
    """The accounting side is still writing its export: nothing of this load may be used (the previous load stays;
    the next one reads the export again). The message says which file and what was seen."""


@dataclass
class LedgerSnapshot:
    """Everything one load of the accounting side produced."""

    payments: list[LedgerPayment] = field(default_factory=list)
    bills: list[LedgerBill] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


@runtime_checkable
class LedgerSource(Protocol):
    """Where the accounting side's payments and bills come from."""

    name: str

    def load(self) -> LedgerSnapshot:
        """The accounting system's current payments and bills (a full snapshot, not a delta)."""
        ...


@dataclass(frozen=True)
class ExportDocument:
    """A Precoro document offered to the accounting system."""

    resource: str  # "invoices" or "purchaseorders"
    idn: str
    id: int | None
    supplier: str
    number: str  # the supplier's invoice number, or the purchase order's idn
    amount: Decimal  # negative for a credit note, as the ledger's bill files write them
    currency: str
    kind: str = BILL  # BILL, CREDIT_NOTE or PURCHASE_ORDER


@dataclass(frozen=True)
class ExportVendor:
    """A Precoro supplier offered to the accounting system as a new vendor (suppliers are kept in step both ways)."""

    precoro_id: int
    name: str
    currency: str | None = None
    currencies: tuple[str, ...] = ()
    tax_number: str | None = None
    address: str | None = None


@dataclass(frozen=True)
class ExportResult:
    """The accounting system's answer: accepted with its id, or refused with its reason."""

    accepted: bool
    external_id: str | None = None
    error: str | None = None


@runtime_checkable
class LedgerSink(Protocol):
    """Where approved Precoro documents that the accounting system lacks are sent."""

    name: str

    def offer(self, document: ExportDocument) -> ExportResult:
        """Hand one document over. Must be idempotent: offering it again returns the same answer."""
        ...

    def offer_vendor(self, vendor: ExportVendor) -> ExportResult:
        """Hand one supplier over as a new vendor; the answer's external_id becomes its externalId. Idempotent."""
        ...


def same_name(text: str | None) -> str:
    """A name as both systems are compared on: case, accents kept, spacing and case differences ignored.

    Accounting exports often change case or spacing ("ACME  Corp" vs "Acme Corp"); accents are kept
    because "Müller" and "Muller" may well be different suppliers.
    """
    return " ".join((text or "").split()).casefold()
