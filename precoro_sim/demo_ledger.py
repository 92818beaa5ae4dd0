"""A demo ledger for the simulator's company: the accounting side's exports, with realistic disagreements.

Most paid invoices are in the ledger exactly as in Precoro (bills and payments, referenced by externalId where
the invoice has one, else by supplier + invoice number). On top of that, chosen deterministically from the
company, so every reconciliation class shows up:
- invoices paid in the ledger but not in Precoro (in full, and one partial payment, and the rest of a
  partly paid invoice);
- Precoro payments missing in the ledger; amounts that differ; a payment in the wrong currency; a payment the
  ledger re-keyed (Precoro's payment still linked to its old id);
- a payment entered twice (an ambiguous duplicate); a credit note; payments and bills Precoro doesn't know;
- an invoice whose old "Not synced" error is now fixed (the ledger has its bill);
- a vendor list without one supplier, so exports of that supplier's documents are refused;
- bad rows (an amount with a decimal comma, an impossible date, a line that is not UTF-8, a short line) and an
  archive file with the wrong columns: the loader must report each of them with file and line.

Input is the company as the API shows it (lists of record dicts), from `/_sim/export` of a running simulator
or built in-process from the seed; output is CSV files in the ledger folder.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from precoro_assets.catalogue import CREDIT_NOTE_LOGIC_TYPES

PAYMENT_HEADER = ("payment_id", "bill_id", "supplier", "invoice_number", "amount", "currency", "paid_on")
BILL_HEADER = ("bill_id", "type", "supplier", "invoice_number", "amount", "currency", "bill_date")
CENT = Decimal("0.01")


@dataclass
class DemoLedger:
    """The rows to write, and what each scenario picked (for the reader of the demo and for tests)."""

    payments: list[dict[str, str]] = field(default_factory=list)
    bills: list[dict[str, str]] = field(default_factory=list)
    vendors: list[dict[str, str]] = field(default_factory=list)
    bad_payment_lines: list[bytes] = field(default_factory=list)  # appended raw to payments.csv
    allocations: list[dict[str, str]] = field(default_factory=list)  # payment_allocations.csv
    scenarios: dict[str, list[str]] = field(default_factory=dict)  # scenario -> invoice idns

    def note(self, scenario: str, invoice: dict) -> None:
        self.scenarios.setdefault(scenario, []).append(str(invoice["idn"]))


def _amount(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


def _day(value: Any) -> date:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).date()


def _payments(invoice: dict) -> list[dict]:
    value = invoice.get("payments") or []
    return value.get("data", []) if isinstance(value, dict) else value


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ledger = DemoLedger()
        self.next_payment = 1
        self.next_bill = 1

    def payment_id(self) -> str:
        self.next_payment += 1
        return f"AP-PAY-{self.next_payment - 1:05d}"

    def bill_id(self) -> str:
        self.next_bill += 1
        return f"AP-BILL-{self.next_bill - 1:05d}"

    def bill(self, invoice: dict, bill_id: str | None = None, amount: Decimal | None = None,
             currency: str | None = None) -> str:
        """Book the invoice in the ledger; returns the bill id (the invoice's externalId if it has one)."""
        bill_id = bill_id or invoice.get("externalId") or self.bill_id()
        credit = invoice.get("logicType") in CREDIT_NOTE_LOGIC_TYPES
        total = amount if amount is not None else _amount(invoice["sum"])
        self.ledger.bills.append({
            "bill_id": bill_id, "type": "credit_note" if credit else "bill", "supplier": invoice["supplier"]["name"],
            "invoice_number": invoice["invoiceNumber"], "amount": format(-total if credit else total, "f"),
            "currency": currency or invoice["currency"], "bill_date": _day(invoice.get("issueDate")
                                                                            or invoice["createDate"]).isoformat()})
        return bill_id

    def pay(self, invoice: dict, amount: Decimal, paid_on: date, payment_id: str | None = None,
            currency: str | None = None, by_bill: bool | None = None) -> str:
        """A ledger payment of the invoice, referencing it by bill id (when linked) or supplier + number."""
        payment_id = payment_id or self.payment_id()
        linked = invoice.get("externalId") if by_bill is None or by_bill else None
        self.ledger.payments.append({
            "payment_id": payment_id, "bill_id": linked or "",
            "supplier": "" if linked else invoice["supplier"]["name"],
            "invoice_number": "" if linked else invoice["invoiceNumber"],
            "amount": format(amount, "f"), "currency": currency or invoice["currency"], "paid_on": paid_on.isoformat()})
        return payment_id

    def mirror(self, invoice: dict, book: bool) -> None:
        """The ledger agrees with Precoro: the bill (if `book` or linked) and every payment as Precoro has it."""
        if book or invoice.get("externalId"):
            self.bill(invoice)
        for payment in _payments(invoice):
            self.pay(invoice, _amount(payment["sumPaid"]), _day(payment["payDate"]),
                     payment_id=payment.get("externalId") or None)


def build_demo_ledger(invoices: Iterable[dict], suppliers: Iterable[dict], purchase_orders: Iterable[dict] = (),
                      payments: Iterable[dict] = (), seed: int = 7, today: date | None = None) -> DemoLedger:
    """The demo ledger for a company given as API records (invoice details include their payments)."""
    today = today or date.today()
    builder = _Builder(seed)
    ledger = builder.ledger
    links = {str(p["id"]): p.get("externalId") for p in payments}  # a payment's externalId lives on the payment
    # split-cost children are allocations of their base invoice: the accounting side books the base only
    invoices = sorted((i for i in invoices if not (i.get("parentData") or {}).get("idn") and not i.get("parentIdn")),
                      key=lambda i: int(i["id"]))
    for invoice in invoices:
        for payment in _payments(invoice):
            payment.setdefault("externalId", links.get(str(payment["id"])))

    regular = [i for i in invoices if i.get("logicType", 0) == 0]
    paid = [i for i in regular if i["status"] in (4, 5) and _payments(i)]
    partly = [i for i in paid if i["status"] == 4]
    fully = [i for i in paid if i["status"] == 5]
    open_approved = [i for i in regular if i["status"] == 2 and _amount(i["sumPaid"]) == 0]
    flagged = [i for i in open_approved if i.get("externalIntegrationLog")]
    open_approved = [i for i in open_approved if not i.get("externalIntegrationLog")]
    credit_notes = [i for i in invoices if i.get("logicType") in CREDIT_NOTE_LOGIC_TYPES]

    def take(pool: list[dict], count: int) -> list[dict]:
        picked = pool[:count]
        del pool[:count]
        return picked

    def paid_on(invoice: dict) -> date:
        start = _day(invoice.get("approvalDate") or invoice["createDate"])
        return min(today, start + timedelta(days=builder.rng.randint(1, 10)))

    # paid in the ledger, not in Precoro: in full (one by bill id, one by supplier + number), and in part
    for invoice in take(open_approved, 3):
        builder.bill(invoice)
        builder.pay(invoice, _amount(invoice["sum"]), paid_on(invoice))
        ledger.note("paid_in_ledger_not_precoro", invoice)
    for invoice in take(open_approved, 1):
        builder.pay(invoice, (_amount(invoice["sum"]) * Decimal("0.4")).quantize(CENT), paid_on(invoice))
        ledger.note("partial_payment", invoice)
    for invoice in take(partly, 1):  # the ledger also has the rest of a partly paid invoice
        builder.mirror(invoice, book=True)
        rest = _amount(invoice["sum"]) - _amount(invoice["sumPaid"])
        builder.pay(invoice, rest, min(today, _day(_payments(invoice)[-1]["payDate"]) + timedelta(days=7)))
        ledger.note("rest_of_partial_payment", invoice)
    # the same payment entered twice in the ledger: which one is real?
    for invoice in take(open_approved, 1):
        day = paid_on(invoice)
        builder.pay(invoice, _amount(invoice["sum"]), day)
        builder.pay(invoice, _amount(invoice["sum"]), day)
        ledger.note("ambiguous_duplicate", invoice)
    # a batch payment whose allocation lines name an invoice Precoro lacks: a person must place it
    for invoice in take(open_approved, 1):
        payment_id, total = builder.payment_id(), _amount(invoice["sum"])
        ledger.payments.append({"payment_id": payment_id, "bill_id": "", "supplier": invoice["supplier"]["name"],
                                "invoice_number": "", "amount": format(total + Decimal("10.00"), "f"),
                                "currency": invoice["currency"], "paid_on": paid_on(invoice).isoformat()})
        ledger.allocations += [
            {"payment_id": payment_id, "invoice_number": invoice["invoiceNumber"], "amount": format(total, "f")},
            {"payment_id": payment_id, "invoice_number": "NOT-IN-PRECORO-1", "amount": "10.00"}]
        ledger.note("payment_needs_review", invoice)
    # an old "Not synced" error that the ledger has since fixed: the bill is there now
    for invoice in flagged[:1]:
        builder.bill(invoice)
        ledger.note("fixed_sync_error", invoice)
    # Precoro payments the ledger lacks (a linked and an unlinked invoice when there are both)
    missing = [i for i in fully if i.get("externalId")][:1] + [i for i in fully if not i.get("externalId")][:1]
    for invoice in missing:
        fully.remove(invoice)
        if invoice.get("externalId"):
            builder.bill(invoice)
        ledger.note("paid_in_precoro_not_ledger", invoice)
    # amounts that differ: a payment short by 10.00, and a bill whose total was keyed wrong
    for invoice in take(fully, 1):
        builder.bill(invoice)
        for payment in _payments(invoice):
            amount = _amount(payment["sumPaid"])
            short = amount - Decimal("10.00") if amount > Decimal("20.00") else (amount / 2).quantize(CENT)
            builder.pay(invoice, short, _day(payment["payDate"]))
        ledger.note("amount_mismatch", invoice)
    for invoice in take(fully, 1):
        builder.bill(invoice, amount=_amount(invoice["sum"]) + Decimal("100.00"))
        for payment in _payments(invoice):
            builder.pay(invoice, _amount(payment["sumPaid"]), _day(payment["payDate"]),
                        payment_id=payment.get("externalId") or None)
        ledger.note("amount_mismatch", invoice)
    # a payment booked in the wrong currency
    for invoice in take(fully, 1):
        wrong = "USD" if invoice["currency"] != "USD" else "EUR"
        builder.bill(invoice)
        for payment in _payments(invoice):
            builder.pay(invoice, _amount(payment["sumPaid"]), _day(payment["payDate"]), currency=wrong)
        ledger.note("currency_mismatch", invoice)
    # a payment the ledger re-keyed: same amount, but Precoro's payment is linked to the id it had before
    for invoice in [i for i in fully if any(p.get("externalId") for p in _payments(i))][:1]:
        fully.remove(invoice)
        builder.bill(invoice)
        rekeyed = next(p for p in _payments(invoice) if p.get("externalId"))
        for payment in _payments(invoice):
            again = payment is rekeyed
            builder.pay(invoice, _amount(payment["sumPaid"]), _day(payment["payDate"]),
                        payment_id=f"{payment['externalId']}-R" if again else payment.get("externalId") or None)
        ledger.note("link_mismatch", invoice)
    # everything else that is paid: the ledger agrees (half of the unlinked ones also have their bill)
    for index, invoice in enumerate(fully + partly):
        builder.mirror(invoice, book=index % 2 == 0)
        ledger.note("matched", invoice)
    # approved, unpaid invoices: the linked ones are booked, and two unlinked ones (to be linked); the
    # remaining unlinked ones are unknown to the ledger (to be exported)
    unlinked = [i for i in open_approved if not i.get("externalId")]
    for invoice in [i for i in open_approved if i.get("externalId")]:
        builder.bill(invoice)
        ledger.note("booked", invoice)
    for invoice in unlinked[:2]:
        builder.bill(invoice)
        ledger.note("booked_to_link", invoice)
    for invoice in unlinked[2:]:
        ledger.note("to_export", invoice)
    # a credit note the ledger has booked (negative amount)
    for invoice in credit_notes[:1]:
        builder.bill(invoice)
        ledger.note("credit_note", invoice)
    # records Precoro doesn't know
    someone = next(iter(suppliers), {"name": "Unknown supplier"})
    builder.pay({"externalId": "AP-BILL-99999", "currency": "EUR", "supplier": someone, "invoiceNumber": "?"},
                Decimal("250.00"), today)
    ledger.bills.append({"bill_id": builder.bill_id(), "type": "bill", "supplier": "Nordwind Logistik GmbH",
                         "invoice_number": "NW-2024-0042", "amount": "1180.00", "currency": "EUR",
                         "bill_date": today.isoformat()})
    # the vendor list lacks one supplier that has approved documents nobody booked: their export is refused
    refused = _supplier_to_refuse(unlinked[2:], purchase_orders)
    # a supplier Precoro already links keeps its id (its externalId): the catalogue sync then finds them in step
    ledger.vendors = [{"vendor_id": s.get("externalId") or f"V-{int(s['id']):05d}", "name": s["name"]} for s in
                      sorted(suppliers, key=lambda s: int(s["id"])) if s["name"] != refused]
    if refused:
        ledger.scenarios["vendor_unknown_to_accounting"] = [refused]
    ledger.bad_payment_lines = _bad_lines(paid[:1] or invoices[:1], today)
    return ledger


def _supplier_to_refuse(exported: list[dict], purchase_orders: Iterable[dict]) -> str | None:
    """The supplier of the first document that will be offered to the accounting side."""
    candidates = [i["supplier"]["name"] for i in exported]
    candidates += [po["supplier"]["name"] for po in sorted(purchase_orders, key=lambda p: int(p["id"]))
                   if po.get("status") == 2 and not po.get("externalId")]
    return candidates[0] if candidates else None


def _bad_lines(examples: list[dict], today: date) -> list[bytes]:
    """Rows the loader must reject, each for a different reason; written as raw bytes."""
    invoice: dict[str, Any] = examples[0] if examples else {"supplier": {"name": "Café Lumière"}, "invoiceNumber": "X"}
    supplier, number = invoice["supplier"]["name"], invoice["invoiceNumber"]

    def line(*fields: str, encoding: str = "utf-8") -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(fields)
        return buffer.getvalue().encode(encoding, "replace")

    return [
        line("BAD-AMOUNT-1", "", supplier, number, "1.234,50", "EUR", today.isoformat()),
        line("BAD-DATE-1", "", supplier, number, "120.00", "EUR", "31/02/2026"),
        line("BAD-ENCODING-1", "", "Café Lumière SARL", number, "99.90", "EUR", today.isoformat(), encoding="cp1252"),
        line("SHORT-LINE-1", supplier, "75.00"),
        line("BAD-CURRENCY-1", "", supplier, number, "75.00", "euro", today.isoformat()),
    ]


def write_demo_ledger(ledger: DemoLedger, directory: Path) -> list[Path]:
    """Write payments.csv, bills.csv, vendors.csv, payment_allocations.csv and a mis-shaped archive file; returns
    the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, header, rows in (("payments.csv", PAYMENT_HEADER, ledger.payments),
                               ("bills.csv", BILL_HEADER, ledger.bills),
                               ("vendors.csv", ("vendor_id", "name"), ledger.vendors),
                               ("payment_allocations.csv", ("payment_id", "invoice_number", "amount"),
                                ledger.allocations)):
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        data = buffer.getvalue().encode("utf-8")
        if name == "payments.csv":
            data += b"".join(ledger.bad_payment_lines)
        (directory / name).write_bytes(data)
        written.append(directory / name)
    archive = directory / "bills_2024_archive.csv"  # semicolons and other names: the loader rejects the file
    archive.write_text("Vendor;Ref;Total\nNordwind Logistik GmbH;NW-2024-0001;99,00\n", encoding="utf-8")
    written.append(archive)
    (directory / "scenarios.json").write_text(json.dumps(ledger.scenarios, indent=2), encoding="utf-8")
    return written


# ---- where the company comes from -------------------------------------------------------------------------

RESOURCES = ("invoices", "suppliers", "purchaseorders", "payments")


def company_from_simulator(base_url: str, timeout: float = 30.0, company: int | None = None) -> dict[str, list[dict]]:
    """The company a running simulator serves (its company number `company`, when it serves several), from its
    control API (ground truth, no quota spent)."""
    import httpx

    records = {}
    for resource in RESOURCES:
        response = httpx.get(f"{base_url.rstrip('/')}/_sim/export/{resource}", timeout=timeout,
                             params={"company": company} if company is not None else None)
        response.raise_for_status()
        records[resource] = json.loads(response.content, parse_float=Decimal)["data"]
    return records


def company_in_process(seed: int, days: int, documents: int) -> dict[str, list[dict]]:
    """The company the simulator builds from a seed, built here without serving it."""
    from .simulator.generator import build_company

    company, _ = build_company(seed, days, documents)
    return {resource: [company.detail(r) for r in company.all(resource)] for resource in RESOURCES}


def demo_ledger_for(records: dict[str, list[dict]], seed: int = 7) -> DemoLedger:
    return build_demo_ledger(records["invoices"], records["suppliers"], records["purchaseorders"],
                             records["payments"], seed=seed)
