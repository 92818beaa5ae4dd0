"""Matching as accounts-payable teams do it, for the ledger payments that the strong keys (externalId, supplier +
invoice number as written) leave without an invoice.

Real AP data breaks exact keys every day: invoice numbers typed `INV-00123`, `inv 123` or `123`; vendor names
that differ between the systems; a rounding cent or a bank fee; the ledger in the company currency while
Precoro keeps the document currency; one bank payment for several invoices. The rules here, tried in the order
of `reconciliation.yaml` (see DEFAULT_RULES), each give a match a confidence:

- `allocation`: the payment's allocation lines (payment_allocations.csv) name its invoices and amounts;
- `normalised_number`: the supplier (by name, alias or a link learned from earlier matches) and the invoice
  number compared without case, spaces, punctuation, leading zeros and common prefixes;
- `batch_subset`: the amount equals a subset of the supplier's open invoices within the date window, and exactly
  one subset fits (a single invoice counts as a subset of one);
Amounts compare within the tolerance (absolute and percent; default one cent); a payment in the company
currency compares with an invoice's company-currency amount (Precoro's sumInCompanyCurrency) within the FX
tolerance. Only matches at or above `auto_threshold` are acted on; the rest land in the review queue with their
candidates, and nothing is written back for them.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from itertools import combinations
from pathlib import Path
from typing import Any

import yaml

from ..ledger.files import NotRegularFile, read_regular
from ..ledger.source import LedgerPayment, same_name

RULES_FILE = "reconciliation.yaml"
ALIASES_FILE = "supplier_aliases.csv"
ALLOCATIONS_FILE = "payment_allocations.csv"

ALLOCATION, NORMALISED_NUMBER, BATCH_SUBSET = "allocation", "normalised_number", "batch_subset"
DEFAULT_RULES: dict[str, Decimal] = {  # in order; the confidence each gives a match it makes
    ALLOCATION: Decimal("0.99"),
    NORMALISED_NUMBER: Decimal("0.95"),
    BATCH_SUBSET: Decimal("0.92"),
}
# The strong keys (reconcile/classify.py) act before these rules, always: their confidence as recorded on each match.
STRONG_KEYS = {"external_id": Decimal("1.00"), "supplier_number_amount": Decimal("0.98"),
               "supplier_number": Decimal("0.97")}
STRONGEST_RULE = min(STRONG_KEYS.values())
MAX_SUBSET = 4  # invoices one payment may settle without allocation lines (subset search stays small)


@dataclass(frozen=True)
class MatchRules:
    """The settings of `reconciliation.yaml` in the ledger folder (every key optional; these are the defaults)."""

    rules: tuple[tuple[str, Decimal], ...] = tuple(DEFAULT_RULES.items())
    auto_threshold: Decimal = Decimal("0.90")
    tolerance_absolute: Decimal = Decimal("0.01")
    tolerance_percent: Decimal = Decimal("0")
    fx_tolerance_percent: Decimal = Decimal("0.5")
    date_window_days: int = 120
    prefixes: tuple[str, ...] = ("INVOICE", "INV", "BILL", "NO", "NR", "REF")
    company_currency: str | None = None  # None: the currency whose invoices carry a rate of 1
    aliases: Mapping[str, str] = field(default_factory=dict)  # same_name(ledger name) -> Precoro supplier name
    allocations: Mapping[str, tuple[Allocation, ...]] = field(default_factory=dict)  # payment id -> lines

    def within(self, a: Decimal, b: Decimal, percent: Decimal | None = None) -> bool:
        """Equal within the tolerance: the absolute one, or the percent one of the larger amount."""
        percent = self.tolerance_percent if percent is None else percent
        return abs(a - b) <= max(self.tolerance_absolute, max(abs(a), abs(b)) * percent / 100)


@dataclass(frozen=True)
class Allocation:
    """One line of a batch payment: the invoice it settles (bill id or invoice number) and how much."""

    payment_id: str
    amount: Decimal
    bill_id: str | None = None
    invoice_number: str | None = None


@dataclass(frozen=True)
class OpenInvoice:
    """What the rules need of a Precoro invoice."""

    idn: str
    supplier: str
    invoice_number: str | None
    currency: str
    open_amount: Decimal  # total - paid, in the invoice currency
    external_id: str | None = None
    issued: date | None = None
    company_open: Decimal | None = None  # the open amount in the company currency (Precoro's rate)


@dataclass(frozen=True)
class Part:
    """The share of a ledger payment that pays one invoice, in that invoice's currency."""

    idn: str
    amount: Decimal


@dataclass(frozen=True)
class Match:
    rule: str
    confidence: Decimal
    parts: tuple[Part, ...]
    reason: str
    candidates: tuple[str, ...] = ()  # for review: the invoices that could be meant


# ---- reading the settings ---------------------------------------------------------------------------------------

def _decimal(value: Any, name: str) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{RULES_FILE}: {name} {value!r} is not a number") from None


def load_rules(directory: str | Path) -> MatchRules:
    """reconciliation.yaml, supplier_aliases.csv and payment_allocations.csv of the ledger folder (all optional).

    A setting that is not understood stops the reconciliation with the file and key named: matching money on a
    misread threshold is worse than not matching."""
    folder = Path(directory)
    rules = MatchRules()
    path = folder / RULES_FILE
    if path.exists() or path.is_symlink():
        data = yaml.safe_load(_read_regular(path).decode("utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{RULES_FILE}: expected keys such as auto_threshold, tolerance, rules")
        known = {"rules", "auto_threshold", "tolerance", "fx_tolerance_percent", "date_window_days", "prefixes",
                 "company_currency"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{RULES_FILE}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
        changes: dict[str, Any] = {}
        if "rules" in data:
            ordered = []
            for entry in data["rules"] or []:
                name, confidence = (entry.get("name"), entry.get("confidence")) if isinstance(entry, dict) else (
                    entry, None)
                if name not in DEFAULT_RULES:
                    raise ValueError(f"{RULES_FILE}: rule {name!r} is not one of {list(DEFAULT_RULES)}")
                ordered.append((name, _decimal(confidence, f"{name}.confidence") if confidence is not None
                                else DEFAULT_RULES[name]))
            changes["rules"] = tuple(ordered)
        if "auto_threshold" in data:
            changes["auto_threshold"] = _decimal(data["auto_threshold"], "auto_threshold")
            if not Decimal("0") < changes["auto_threshold"] <= STRONGEST_RULE:
                raise ValueError(f"{RULES_FILE}: auto_threshold {data['auto_threshold']} must be above 0 and at most "
                                 f"{STRONGEST_RULE} (the confidence of supplier + invoice number as written, which "
                                 "always acts); raise a rule's threshold by lowering its confidence instead")
        tolerance = data.get("tolerance") or {}
        if "absolute" in tolerance:
            changes["tolerance_absolute"] = _decimal(tolerance["absolute"], "tolerance.absolute")
        if "percent" in tolerance:
            changes["tolerance_percent"] = _decimal(tolerance["percent"], "tolerance.percent")
        if "fx_tolerance_percent" in data:
            changes["fx_tolerance_percent"] = _decimal(data["fx_tolerance_percent"], "fx_tolerance_percent")
        if "date_window_days" in data:
            changes["date_window_days"] = int(data["date_window_days"])
        if "prefixes" in data:
            changes["prefixes"] = tuple(str(p).upper() for p in data["prefixes"] or [])
        if data.get("company_currency"):
            changes["company_currency"] = str(data["company_currency"]).upper()
        rules = replace(rules, **changes)
    return replace(rules, aliases=_aliases(folder / ALIASES_FILE), allocations=_allocations(folder / ALLOCATIONS_FILE))


def _read_regular(path: Path) -> bytes:
    """A file of the ledger folder, refused if it is a link (it could bring in any file of this computer)."""
    try:
        return read_regular(path)
    except NotRegularFile as refusal:
        raise ValueError(f"{path.name} {refusal}") from None


def _csv_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists() and not path.is_symlink():
        return []
    text = _read_regular(path).decode("utf-8-sig", "replace")
    return [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            for row in csv.DictReader(io.StringIO(text, newline=""))]


def _aliases(path: Path) -> dict[str, str]:
    """supplier_aliases.csv: `alias, supplier` (the name in the ledger, the supplier's name in Precoro)."""
    return {same_name(row["alias"]): row["supplier"] for row in _csv_rows(path)
            if row.get("alias") and row.get("supplier")}


def _allocations(path: Path) -> dict[str, tuple[Allocation, ...]]:
    """payment_allocations.csv: `payment_id, amount` and `bill_id` or `invoice_number`, one line per invoice."""
    lines: dict[str, list[Allocation]] = defaultdict(list)
    for number, row in enumerate(_csv_rows(path), start=2):
        if not row.get("payment_id"):
            continue
        try:
            amount = Decimal(row.get("amount") or "")
        except InvalidOperation:
            raise ValueError(f"{ALLOCATIONS_FILE}:{number}: amount {row.get('amount')!r} is not a number") from None
        lines[row["payment_id"]].append(Allocation(row["payment_id"], amount, row.get("bill_id") or None,
                                                   row.get("invoice_number") or None))
    return {payment: tuple(found) for payment, found in lines.items()}


# ---- keys --------------------------------------------------------------------------------------------------------

def normalise_number(text: str | None, prefixes: Iterable[str] = MatchRules.prefixes) -> str:
    """An invoice number as AP clerks read it: `INV-00123`, `inv 123` and `123` are all `123`."""
    compact = re.sub(r"[^0-9A-Z]", "", same_name(text).upper())
    words = "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True))
    prefixed = re.fullmatch(f"(?:{words})+(\\d+)", compact) if words else None  # "Invoice No. 00087"
    if prefixed:
        compact = prefixed.group(1)
    if compact.isdigit():
        return compact.lstrip("0") or "0"
    return compact


# ---- the matcher -------------------------------------------------------------------------------------------------

class Matcher:
    """The rules over one reconciliation's open invoices; `match` places one ledger payment."""

    def __init__(self, rules: MatchRules, invoices: list[OpenInvoice], learned: Mapping[str, str]) -> None:
        self.rules = rules
        self.invoices = {invoice.idn: invoice for invoice in invoices}
        self.by_supplier: dict[str, list[OpenInvoice]] = defaultdict(list)
        self.by_external: dict[str, OpenInvoice] = {}
        self.by_number: dict[tuple[str, str], list[OpenInvoice]] = defaultdict(list)
        for invoice in invoices:
            self.by_supplier[same_name(invoice.supplier)].append(invoice)
            if invoice.external_id:
                self.by_external[invoice.external_id] = invoice
            if invoice.invoice_number:
                key = (same_name(invoice.supplier), normalise_number(invoice.invoice_number, rules.prefixes))
                self.by_number[key].append(invoice)
        self.learned = learned
        self.taken: set[str] = set()  # invoices a confident match already settled in this run (the caller adds)

    def supplier(self, name: str | None) -> str | None:
        """The Precoro supplier a ledger name means: the same name, an alias, or a link learned earlier."""
        key = same_name(name)
        if not key:
            return None
        if key in self.by_supplier:
            return key
        for mapping in (self.rules.aliases, self.learned):
            if key in mapping:
                return same_name(mapping[key])
        return None

    def by_number_of(self, name: str | None, number: str | None) -> list[OpenInvoice]:
        """The invoices of the supplier `name` means whose number reads as `number`."""
        supplier = self.supplier(name)
        if supplier is None or not number:
            return []
        return self.by_number.get((supplier, normalise_number(number, self.rules.prefixes)), [])

    def open_amount(self, invoice: OpenInvoice, payment: LedgerPayment) -> Decimal | None:
        """What is open on the invoice in the payment's currency (None: not comparable)."""
        if payment.currency == invoice.currency:
            return invoice.open_amount
        if payment.currency == self.rules.company_currency and invoice.company_open is not None:
            return invoice.company_open
        return None

    def fits(self, invoice: OpenInvoice, payment: LedgerPayment, amount: Decimal) -> bool:
        open_amount = self.open_amount(invoice, payment)
        if open_amount is None:
            return False
        fx = payment.currency != invoice.currency
        return self.rules.within(amount, open_amount, self.rules.fx_tolerance_percent if fx else None)

    def part(self, invoice: OpenInvoice, payment: LedgerPayment, amount: Decimal) -> Part:
        """The share in the invoice's currency: converted, or snapped to what is open when within tolerance."""
        if payment.currency != invoice.currency or self.fits(invoice, payment, amount):
            return Part(invoice.idn, invoice.open_amount)
        return Part(invoice.idn, amount)

    def match(self, payment: LedgerPayment) -> Match | None:
        for rule, confidence in self.rules.rules:
            found = getattr(self, f"_{rule}")(payment, confidence)
            if found is not None:
                return found
        return None

    def _allocation(self, payment: LedgerPayment, confidence: Decimal) -> Match | None:
        lines = self.rules.allocations.get(payment.payment_id)
        if not lines:
            return None
        supplier = self.supplier(payment.supplier)
        parts, missing = [], []
        for line in lines:
            invoice = self.by_external.get(line.bill_id or "") if line.bill_id else None
            if invoice is None and line.invoice_number and supplier:
                found = self.by_number.get((supplier, normalise_number(line.invoice_number, self.rules.prefixes)), [])
                invoice = found[0] if len(found) == 1 else None
            if invoice is None:
                missing.append(line.bill_id or line.invoice_number or "?")
                continue
            parts.append(self.part(invoice, payment, line.amount))
        total = sum((line.amount for line in lines), Decimal("0"))
        if missing or not self.rules.within(total, payment.amount):
            why = (f"allocation lines name unknown invoices ({', '.join(missing)})" if missing else
                   f"allocation lines add up to {total}, the payment is {payment.amount}")
            return Match(ALLOCATION, Decimal("0"), (), why, tuple(p.idn for p in parts))
        return Match(ALLOCATION, confidence, tuple(parts),
                     f"allocation lines: {', '.join(f'{p.idn} {p.amount}' for p in parts)}")

    def _normalised_number(self, payment: LedgerPayment, confidence: Decimal) -> Match | None:
        if not payment.invoice_number:
            return None
        number = normalise_number(payment.invoice_number, self.rules.prefixes)
        supplier = self.supplier(payment.supplier)
        if supplier is None:
            return None
        found = self.by_number.get((supplier, number), [])
        if not found:
            return None
        how = "" if same_name(payment.supplier) == supplier else f" (supplier {payment.supplier!r} = {supplier!r})"
        if len(found) > 1:
            return Match(NORMALISED_NUMBER, Decimal("0"), (), f"{len(found)} invoices read as number {number}{how}",
                         tuple(i.idn for i in found))
        invoice = found[0]
        if self.open_amount(invoice, payment) is None:
            return None  # another currency, not the company's: today's rules report the mismatch
        return Match(NORMALISED_NUMBER, confidence, (self.part(invoice, payment, payment.amount),),
                     f"invoice number {payment.invoice_number!r} reads as {invoice.invoice_number!r}{how}")

    def _batch_subset(self, payment: LedgerPayment, confidence: Decimal) -> Match | None:
        supplier = self.supplier(payment.supplier)
        if supplier is None:
            return None
        window = self.rules.date_window_days
        # one payment settles invoices of its own currency: an FX tolerance over several invoices would let
        # too many sets fit (a single invoice in another currency is found by its number instead)
        pool = [i for i in self.by_supplier.get(supplier, []) if i.idn not in self.taken and i.open_amount > 0
                and i.currency == payment.currency
                and (i.issued is None or 0 <= (payment.paid_on - i.issued).days <= window)]
        pool.sort(key=lambda i: i.idn)
        fitting = []
        for size in range(1, min(MAX_SUBSET, len(pool)) + 1):
            for subset in combinations(pool, size):
                total = sum((i.open_amount for i in subset), Decimal("0"))
                if self.rules.within(total, payment.amount):
                    fitting.append(subset)
                    if len(fitting) > 1:
                        break
            if fitting:
                break  # the fewest invoices that fit: a larger subset of the same total is a coincidence
        if not fitting:
            return None
        if len(fitting) > 1:
            candidates = sorted({i.idn for subset in fitting for i in subset})
            return Match(BATCH_SUBSET, Decimal("0"), (), f"several sets of {payment.supplier!r}'s open invoices add up "
                         f"to {payment.amount} {payment.currency}", tuple(candidates))
        subset = fitting[0]
        parts = tuple(Part(i.idn, i.open_amount) for i in subset)
        what = "the one open invoice" if len(subset) == 1 else f"the one set of {len(subset)} open invoices"
        return Match(BATCH_SUBSET, confidence, parts, f"{what} of {payment.supplier!r} that adds up to "
                     f"{payment.amount} {payment.currency}: {', '.join(p.idn for p in parts)}")


def learned_links(pairs: Iterable[tuple[str | None, str]]) -> dict[str, str]:
    """Ledger supplier names -> Precoro supplier, from earlier matches by externalId (bills and payments linked to
    their invoice): a name that always meant the same supplier. A name seen with two suppliers teaches nothing."""
    seen: dict[str, set[str]] = defaultdict(set)
    for ledger_name, precoro_name in pairs:
        if ledger_name and same_name(ledger_name) != same_name(precoro_name):
            seen[same_name(ledger_name)].add(precoro_name)
    return {name: next(iter(names)) for name, names in seen.items() if len(names) == 1}
