"""A labelled accounts-payable dataset: Precoro invoices, the ledger's payments (and a few bills), the alias and
allocation files, and the truth (which invoices each payment pays). Every pattern AP data breaks keys with:
bill ids, supplier + number as written, numbers typed otherwise, vendor names that differ (an alias file, or a
link learned from a bill already linked), a rounding cent, a bank fee, the company currency, batch payments with and without
allocation lines, payments by amount only, look-alike invoices a person must choose between, and payments of
nothing in Precoro."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal

from precoro_assets.ledger.source import BILL, LedgerBill, LedgerPayment, same_name
from precoro_assets.reconcile.ap_matching import Allocation, MatchRules
from precoro_assets.reconcile.records import Invoice

COMPANY = "EUR"
RATES = {"EUR": Decimal("1"), "USD": Decimal("0.92"), "GBP": Decimal("1.17")}
CENT = Decimal("0.01")


@dataclass
class Dataset:
    invoices: list[Invoice] = field(default_factory=list)
    payments: list[LedgerPayment] = field(default_factory=list)
    bills: list[LedgerBill] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    allocations: dict[str, tuple[Allocation, ...]] = field(default_factory=dict)
    truth: dict[str, set[str]] = field(default_factory=dict)  # payment id -> the invoices it pays
    pattern: dict[str, str] = field(default_factory=dict)  # payment id -> how it was made

    def rules(self, base: MatchRules | None = None) -> MatchRules:
        """The default rules (or `base`) with this dataset's alias and allocation files."""
        return replace(base or MatchRules(), aliases={same_name(k): v for k, v in self.aliases.items()},
                       allocations=self.allocations)


def generate(seed: int = 20, invoices: int = 3200, suppliers: int = 300) -> Dataset:
    rng = random.Random(seed)
    data = Dataset()
    today = date(2026, 11, 30)
    names = [f"Supplier {n:03d} {rng.choice(['GmbH', 'Ltd', 'SARL', 'Inc', 'Sp. z o.o.', 'AB'])}"
             for n in range(suppliers)]
    counters = {"invoice": 0, "payment": 0, "bill": 0}

    def new_invoice(supplier: str, currency: str | None = None, total: Decimal | None = None) -> Invoice:
        counters["invoice"] += 1
        n = counters["invoice"]
        currency = currency or rng.choices(list(RATES), [70, 20, 10])[0]
        total = total or Decimal(rng.randint(5_000, 900_000)) / 100
        invoice = Invoice(idn=str(10_000 + n), id=n, supplier=supplier, invoice_number=f"INV-{n:05d}", total=total,
                          paid=Decimal("0.00"), currency=currency, status=2,
                          issued=today - timedelta(days=rng.randint(5, 90)),
                          total_company=(total * RATES[currency]).quantize(CENT))
        data.invoices.append(invoice)
        return invoice

    def pay(invoice_list: list[Invoice], pattern: str, amount: Decimal, currency: str, **keys) -> LedgerPayment:
        counters["payment"] += 1
        latest = max(i.issued for i in invoice_list)
        payment = LedgerPayment(payment_id=f"P-{counters['payment']:05d}", amount=amount, currency=currency,
                                paid_on=latest + timedelta(days=rng.randint(0, 25)), **keys)
        data.payments.append(payment)
        data.truth[payment.payment_id] = {i.idn for i in invoice_list}
        data.pattern[payment.payment_id] = pattern
        return payment

    def typed(number: str) -> str:
        digits = number.split("-")[1]
        return rng.choice([f"inv {int(digits)}", f"INV{digits}", f"#{int(digits)}", f"{int(digits)}",
                           f"Invoice No. {digits}", f"inv-{digits} "])

    # suppliers known in the ledger under another name: an alias file for some, a linked bill teaches others
    alias_of = {name: f"{name.split()[0].upper()} {name.split()[1]} (AP)" for name in rng.sample(names, 25)}
    data.aliases = {ledger: precoro for precoro, ledger in alias_of.items()}
    learned_of = {name: f"{name.split()[1]} {name.split()[0]} trading" for name in rng.sample(
        [n for n in names if n not in alias_of], 20)}
    for precoro, ledger in learned_of.items():
        teacher = new_invoice(precoro, "EUR")
        counters["bill"] += 1
        bill_id = f"B-{counters['bill']:05d}"
        data.invoices[-1] = Invoice(**{**vars(teacher), "external_id": bill_id})
        data.bills.append(LedgerBill(bill_id, BILL, ledger, teacher.invoice_number or "", teacher.total, "EUR"))
        data.truth[bill_id], data.pattern[bill_id] = {teacher.idn}, "bill_linked"

    patterns = ["bill_id"] * 22 + ["exact"] * 18 + ["typed"] * 15 + ["alias"] * 7 + ["learned"] * 5 + \
               ["cent"] * 5 + ["fee"] * 3 + ["company_currency"] * 7 + ["allocated"] * 7 + ["batch"] * 6 + ["amount"] * 3 + \
               ["lookalike"] * 2 + ["nothing"] * 2 + ["bill_typed"] * 4 + ["unpaid"] * 20
    while counters["invoice"] < invoices:
        pattern = rng.choice(patterns)
        supplier = rng.choice(list(learned_of) if pattern == "learned" else list(alias_of) if pattern == "alias"
                              else names)
        ledger_name = learned_of.get(supplier) if pattern == "learned" else alias_of.get(supplier) if (
            pattern == "alias") else supplier
        if pattern == "unpaid":
            new_invoice(supplier)
        elif pattern == "bill_typed":  # booked, not paid yet: the bill's number typed otherwise, maybe an alias
            invoice = new_invoice(supplier)
            counters["bill"] += 1
            bill_id = f"B-{counters['bill']:05d}"
            data.bills.append(LedgerBill(bill_id, BILL, alias_of.get(supplier, supplier),
                                         typed(invoice.invoice_number or ""), invoice.total, invoice.currency))
            data.truth[bill_id], data.pattern[bill_id] = {invoice.idn}, pattern
        elif pattern == "bill_id":
            invoice = new_invoice(supplier)
            linked = Invoice(**{**vars(invoice), "external_id": f"E-{invoice.idn}"})
            data.invoices[-1] = linked
            pay([linked], pattern, invoice.total, invoice.currency, bill_id=linked.external_id)
        elif pattern in ("exact", "typed", "alias", "learned", "cent", "fee"):
            invoice = new_invoice(supplier, "EUR" if pattern in ("alias", "learned") else None)
            number = invoice.invoice_number or ""
            amount = invoice.total - CENT if pattern == "cent" else invoice.total
            if pattern == "fee":  # the bank kept a fee: the invoice stays partly open, the payment is still its
                amount = invoice.total - (invoice.total * Decimal(rng.randint(2, 10)) / 1000).quantize(CENT)
            pay([invoice], pattern, amount, invoice.currency, supplier=ledger_name,
                invoice_number=number if pattern in ("exact", "cent", "fee") else typed(number))
        elif pattern == "company_currency":
            invoice = new_invoice(supplier, rng.choice(["USD", "GBP"]))
            drift = Decimal(rng.randint(-20, 20)) / 10_000  # the ledger's own rate, within 0.2 %
            amount = ((invoice.total_company or Decimal(0)) * (1 + drift)).quantize(CENT)
            pay([invoice], pattern, amount, COMPANY, supplier=supplier,
                invoice_number=rng.choice([invoice.invoice_number, typed(invoice.invoice_number or "")]))
        elif pattern in ("allocated", "batch"):
            group = [new_invoice(supplier, "EUR") for _ in range(rng.randint(2, 3))]
            payment = pay(group, pattern, sum((i.total for i in group), Decimal(0)), "EUR", supplier=ledger_name)
            if pattern == "allocated":
                data.allocations[payment.payment_id] = tuple(
                    Allocation(payment.payment_id, i.total, bill_id=None, invoice_number=typed(i.invoice_number or ""))
                    for i in group)
        elif pattern == "amount":
            invoice = new_invoice(supplier, "EUR")
            pay([invoice], pattern, invoice.total, "EUR", supplier=supplier)
        elif pattern == "lookalike":  # two open invoices of one supplier for the same amount: a person chooses
            first = new_invoice(supplier, "EUR")
            new_invoice(supplier, "EUR", first.total)
            pay([first], pattern, first.total, "EUR", supplier=supplier)
        else:  # "nothing": a payment for no invoice in Precoro (a supplier Precoro lacks, or an amount nobody owes)
            counters["payment"] += 1
            payment = LedgerPayment(f"P-{counters['payment']:05d}", Decimal(rng.randint(100, 99_999)) / 100 + CENT,
                                    "EUR", today, supplier=rng.choice([supplier, "Unknown Vendor Co"]))
            data.payments.append(payment)
            data.truth[payment.payment_id], data.pattern[payment.payment_id] = set(), pattern
    return data
