"""Reconciliation: does Precoro agree with the accounting ledger, invoice by invoice and payment by payment?

Pure functions over plain records (no SQL, no HTTP), so every rule can be read and tested on its own.

Matching, strongest key first:
1. A ledger bill is the invoice whose `externalId` equals the bill's id. Failing that, the invoice (not yet
   linked elsewhere) with the same supplier + invoice number + amount + currency (a credit note only matches a
   credit note). Same supplier + invoice number alone is kept as evidence of an amount or currency mismatch.
2. A ledger payment names its invoice by bill id (= the invoice's `externalId`, or a bill matched in step 1),
   else by supplier + invoice number. Its amount is not part of the key: partial payments are legitimate.
3. On each invoice, ledger payments are paired with Precoro's payments: first by the Precoro payment's
   `externalId` (= the ledger payment's id), then by equal amount (nearest date first).

Every invoice and every ledger record then gets exactly one class (`CLASSES`) with a reason that names the
keys that matched and the amounts on both sides (the records: records.py); what would make the two sides agree
becomes a `Proposal` for the write-back outbox (corrections.py). Money is `Decimal` throughout; names compare with `same_name`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal

from ..ledger.source import CREDIT_NOTE, LedgerBill, LedgerPayment, same_name
from .ap_matching import NORMALISED_NUMBER, STRONG_KEYS, Matcher, MatchRules, OpenInvoice, learned_links
from .corrections import corrections
from .records import (
    AMBIGUOUS,
    AMOUNT_MISMATCH,
    BY_BILL,
    BY_EXTERNAL_ID,
    BY_NUMBER,
    BY_NUMBER_AMOUNT,
    CONNECTOR_DISABLED,
    CURRENCY_MISMATCH,
    LINK_MISMATCH,
    MATCHED,
    NEEDS_REVIEW,
    PAID_IN_LEDGER_ONLY,
    PAID_IN_PRECORO_ONLY,
    UNMATCHED,
    Invoice,
    InvoiceResult,
    LedgerResult,
    LedgerResults,
    PrecoroPayment,
    PurchaseOrder,
    Reconciliation,
    describe_payment,
    money,
)

# ---- helpers -------------------------------------------------------------------------------------------------

def _describe_precoro(p: PrecoroPayment) -> str:
    return f"Precoro payment {p.idn} ({money(p.amount, p.currency)} on {p.pay_date})"


def _number_key(supplier: str | None, number: str | None) -> tuple[str, str]:
    return same_name(supplier), same_name(number)


def _days_apart(a: date | None, b: date | None) -> int:
    return abs((a - b).days) if a and b else 10**6


def pair_payments(ledger: list[LedgerPayment], precoro: tuple[PrecoroPayment, ...], tolerance: Decimal = Decimal(0)
                  ) -> tuple[list[tuple[LedgerPayment, PrecoroPayment, str]], list[LedgerPayment],
                             list[PrecoroPayment]]:
    """Pair one invoice's payments: by the Precoro payment's externalId, then by equal amount (within the
    tolerance; nearest date)."""
    open_precoro = sorted(precoro, key=lambda p: p.id)
    pairs: list[tuple[LedgerPayment, PrecoroPayment, str]] = []
    by_link = {p.external_id: p for p in open_precoro if p.external_id}
    waiting = []
    for lp in sorted(ledger, key=lambda p: (p.paid_on, p.payment_id)):
        twin = by_link.get(lp.payment_id)
        if twin is not None and twin in open_precoro:
            pairs.append((lp, twin, "payment externalId"))
            open_precoro.remove(twin)
        else:
            waiting.append(lp)
    unpaired = []
    for lp in waiting:
        candidates = [p for p in open_precoro if p.external_id is None and abs(p.amount - lp.amount) <= tolerance]
        if candidates:
            twin = min(candidates, key=lambda p: (_days_apart(p.pay_date, lp.paid_on), p.id))
            pairs.append((lp, twin, "amount"))
            open_precoro.remove(twin)
        else:
            unpaired.append(lp)
    return pairs, unpaired, open_precoro


# ---- the reconciliation --------------------------------------------------------------------------------------

def reconcile(invoices: list[Invoice], payments: Iterable[LedgerPayment], bills: list[LedgerBill],
              purchase_orders: Sequence[PurchaseOrder] = (), rules: MatchRules | None = None) -> Reconciliation:
    """Classify every invoice and ledger record; `rules` (reconciliation.yaml) adds the AP rules of
    ap_matching.py for the payments the strong keys leave unplaced, and the amount tolerance. None: strong keys
    and exact amounts only."""
    payments = payments if isinstance(payments, list | tuple) else list(payments)
    result = reconcile_stored(invoices, lambda: payments, bills, purchase_orders, rules, payments_in_order=False)
    return replace(result, ledger=list(result.ledger))


def reconcile_stored(invoices: list[Invoice], payments: Callable[[], Iterable[LedgerPayment]],
                     bills: list[LedgerBill], purchase_orders: Sequence[PurchaseOrder] = (),
                     rules: MatchRules | None = None, payments_in_order: bool = True) -> Reconciliation:
    """As `reconcile`, for a ledger too large to hold: payments() gives the payments afresh on each call, always in
    the same order (sorted by file, line and id when `payments_in_order`), and is called once for the strong keys,
    once more for the AP rules, and once per reading of the result's ledger rows (see LedgerResults)."""
    # split-cost children are allocations of their base invoice, which is the document that is paid and exported
    invoices = [invoice for invoice in invoices if not invoice.parent_idn]
    by_external: dict[str, list[Invoice]] = defaultdict(list)
    by_number: dict[tuple[str, str], list[Invoice]] = defaultdict(list)
    for invoice in invoices:
        if invoice.external_id:
            by_external[invoice.external_id].append(invoice)
        if invoice.invoice_number:
            by_number[_number_key(invoice.supplier, invoice.invoice_number)].append(invoice)
    results = {invoice.idn: InvoiceResult(invoice) for invoice in invoices}
    ambiguous_for: dict[str, list[str]] = defaultdict(list)  # invoice idn -> reasons of ambiguous ledger rows

    renamed: dict[str, tuple[LedgerBill, Decimal]] = {}
    if rules is not None:
        bills, renamed = _canonical_bills(rules, bills, invoices, by_external, by_number)
    bill_rows, bill_of_invoice = _match_bills(bills, by_external, by_number, ambiguous_for)
    for row in bill_rows:
        if row.ledger_id in renamed:  # the row shows the ledger's own name and number, and which rule read them
            original, confidence = renamed[row.ledger_id]
            row.supplier, row.invoice_number = original.supplier, original.invoice_number
            row.rule, row.confidence = NORMALISED_NUMBER, confidence
            row.matched_by = f"{NORMALISED_NUMBER} (confidence {confidence}), then {row.matched_by}"
    for idn, (bill, bill_row) in bill_of_invoice.items():
        result = results[idn]
        result.bill, result.bill_matched_by, result.bill_agrees = bill, bill_row.matched_by, bill_row.klass == MATCHED
    invoice_of_bill = {row.ledger_id: row.invoice_idn for row in bill_rows
                       if row.invoice_idn and row.klass != AMBIGUOUS}

    def unplaced(payment: LedgerPayment) -> LedgerResult:  # the row of a payment no key placed
        return _strong_match(payment, by_external, by_number, invoice_of_bill, results)[0]

    kept, payment_count = _match_payments(payments(), by_external, by_number, invoice_of_bill, results,
                                          ambiguous_for)
    if rules is not None:
        _match_by_rules(rules, payments, kept, unplaced, bill_rows, bills, results)
    payment_rows = [kept[index][1] for index in sorted(kept)]  # every payment row the steps below may change

    for result in results.values():
        _classify_invoice(result, ambiguous_for.get(result.invoice.idn, []))
    _classify_linked_payments(payment_rows, results)
    _classify_batch_payments(payment_rows, results)
    _mark_review_candidates(payment_rows, results)
    if rules is not None:
        for row in bill_rows + payment_rows:  # every match says which rule made it, and how sure it is
            strong = STRONG_BY.get(row.matched_by or "")
            if row.rule is None and strong is not None:
                row.rule, row.confidence = strong, STRONG_KEYS[strong]

    proposals = corrections(results.values(), purchase_orders)
    ledger_rows = LedgerResults(bill_rows, {index: row for index, (_, row) in kept.items()}, payments, unplaced,
                                payment_count, payments_in_order)
    return Reconciliation(sorted(results.values(), key=lambda r: _idn_order(r.invoice.idn)), ledger_rows,
                          proposals)


def _idn_order(idn: str) -> tuple[int, str]:
    return (int(idn), idn) if idn.isdigit() else (10**12, idn)


def _bill_row(bill: LedgerBill) -> LedgerResult:
    return LedgerResult("credit_note" if bill.kind == CREDIT_NOTE else "bill", bill.bill_id, bill.supplier,
                        bill.invoice_number, bill.bill_id, bill.amount, bill.currency, bill.bill_date,
                        bill.source_file, bill.source_line)


def _match_bills(bills: list[LedgerBill], by_external: dict[str, list[Invoice]],
                 by_number: dict[tuple[str, str], list[Invoice]], ambiguous_for: dict[str, list[str]]
                 ) -> tuple[list[LedgerResult], dict[str, tuple[LedgerBill, LedgerResult]]]:
    """Step 1: each bill to its invoice; returns the bill rows and, per invoice idn, its one bill and row."""
    rows: list[LedgerResult] = []
    claimed: dict[str, list[tuple[LedgerBill, LedgerResult]]] = defaultdict(list)
    for bill in bills:
        row = _bill_row(bill)
        rows.append(row)
        is_credit = bill.kind == CREDIT_NOTE
        linked = by_external.get(bill.bill_id, [])
        if len(linked) > 1:
            _ambiguous(row, linked, f"{len(linked)} Precoro invoices carry externalId {bill.bill_id}", ambiguous_for)
            continue
        if linked:
            invoice, row.matched_by = linked[0], BY_EXTERNAL_ID
        else:
            same_number = by_number.get(_number_key(bill.supplier, bill.invoice_number), [])
            free = [i for i in same_number if not i.external_id]
            exact = [i for i in free if i.currency == bill.currency and i.total == bill.amount
                     and i.is_credit_note == is_credit]
            if len(exact) > 1:
                _ambiguous(row, exact, f"{len(exact)} Precoro invoices have supplier {bill.supplier!r}, number "
                           f"{bill.invoice_number!r} and {money(bill.amount, bill.currency)}", ambiguous_for)
                continue
            if exact:
                invoice, row.matched_by = exact[0], BY_NUMBER_AMOUNT
            elif len(free) == 1:
                invoice, row.matched_by = free[0], BY_NUMBER
            elif len(free) > 1:
                _ambiguous(row, free, f"{len(free)} Precoro invoices have supplier {bill.supplier!r} and number "
                           f"{bill.invoice_number!r}, none with this amount and currency", ambiguous_for)
                continue
            else:
                row.klass = UNMATCHED
                taken = ", ".join(f"idn {i.idn} (linked to {i.external_id})" for i in same_number)
                row.reason = (f"no Precoro invoice has externalId {bill.bill_id}" + (
                    f"; supplier + number match {taken}, already linked to another bill" if taken else
                    f", nor supplier {bill.supplier!r} with number {bill.invoice_number!r}"))
                continue
        row.invoice_idn, row.invoice_amount, row.invoice_currency = invoice.idn, invoice.total, invoice.currency
        evidence = (f"bill {bill.bill_id} {money(bill.amount, bill.currency)} vs invoice idn {invoice.idn} "
                    f"{money(invoice.total, invoice.currency)} (by {row.matched_by})")
        if bill.currency != invoice.currency:
            row.klass, row.reason = CURRENCY_MISMATCH, f"currency differs: {evidence}"
        elif bill.amount != invoice.total:
            row.klass, row.reason = AMOUNT_MISMATCH, f"amount differs: {evidence}"
        elif is_credit != invoice.is_credit_note:
            row.klass = AMOUNT_MISMATCH
            row.reason = f"one side is a credit note, the other is not: {evidence}"
        else:
            row.klass, row.reason = MATCHED, f"same amount and currency: {evidence}"
        claimed[invoice.idn].append((bill, row))
    bill_of_invoice: dict[str, tuple[LedgerBill, LedgerResult]] = {}
    for idn, claims in claimed.items():
        if len(claims) == 1:
            bill_of_invoice[idn] = claims[0]
            continue
        ids = ", ".join(sorted(bill.bill_id for bill, _ in claims))
        for _, row in claims:
            row.klass = AMBIGUOUS
            row.reason = f"the ledger holds {len(claims)} bills ({ids}) for Precoro invoice idn {idn}: possible duplicate"
        ambiguous_for[idn].append(f"{len(claims)} ledger bills ({ids}) for this invoice")
    return rows, bill_of_invoice


def _ambiguous(row: LedgerResult, candidates: list[Invoice], why: str, ambiguous_for: dict[str, list[str]]) -> None:
    idns = ", ".join(sorted((i.idn for i in candidates), key=_idn_order))
    row.klass, row.reason = AMBIGUOUS, f"{why}: idn {idns}"
    row.invoice_idn = None
    for invoice in candidates:
        ambiguous_for[invoice.idn].append(f"ledger {row.kind} {row.ledger_id} fits invoices idn {idns}")


def _payment_row(payment: LedgerPayment) -> LedgerResult:
    return LedgerResult("payment", payment.payment_id, payment.supplier, payment.invoice_number, payment.bill_id,
                        payment.amount, payment.currency, payment.paid_on, payment.source_file, payment.source_line)


def _strong_match(payment: LedgerPayment, by_external: dict[str, list[Invoice]],
                  by_number: dict[tuple[str, str], list[Invoice]], invoice_of_bill: dict[str, str],
                  results: dict[str, InvoiceResult]) -> tuple[LedgerResult, list[Invoice]]:
    """A ledger payment's row and the invoices its keys find; with none, the row is complete (unmatched, and why)."""
    row = _payment_row(payment)
    candidates: list[Invoice] = []
    if payment.bill_id:
        candidates = by_external.get(payment.bill_id, [])
        row.matched_by = BY_EXTERNAL_ID
        if not candidates and payment.bill_id in invoice_of_bill:
            candidates, row.matched_by = [results[invoice_of_bill[payment.bill_id]].invoice], BY_BILL
    if not candidates and payment.supplier and payment.invoice_number:
        candidates = by_number.get(_number_key(payment.supplier, payment.invoice_number), [])
        row.matched_by = BY_NUMBER
        if len(candidates) > 1:  # the amount and currency may single one out
            fitting = [i for i in candidates if i.currency == payment.currency and payment.amount <= i.total]
            candidates = fitting or candidates
    if not candidates:
        row.matched_by = None
        keys = [f"bill {payment.bill_id}"] if payment.bill_id else []
        if payment.supplier and payment.invoice_number:
            keys.append(f"supplier {payment.supplier!r} with invoice number {payment.invoice_number!r}")
        row.reason = f"no Precoro invoice matches {' or '.join(keys)}"
    return row, candidates


def _match_payments(payments: Iterable[LedgerPayment], by_external: dict[str, list[Invoice]],
                    by_number: dict[tuple[str, str], list[Invoice]], invoice_of_bill: dict[str, str],
                    results: dict[str, InvoiceResult], ambiguous_for: dict[str, list[str]]
                    ) -> tuple[dict[int, tuple[LedgerPayment, LedgerResult]], int]:
    """Step 2: each ledger payment to the invoice it pays (not yet to a Precoro payment). Returns the payments
    a key found (placed or ambiguous) with their rows, by position, and how many payments there are: the row of a
    payment no key found is made again when needed (`_strong_match`), not kept."""
    kept: dict[int, tuple[LedgerPayment, LedgerResult]] = {}
    count = 0
    for index, payment in enumerate(payments):
        count += 1
        row, candidates = _strong_match(payment, by_external, by_number, invoice_of_bill, results)
        if not candidates:
            continue
        kept[index] = (payment, row)
        if len(candidates) > 1:
            _ambiguous(row, candidates, f"{len(candidates)} Precoro invoices fit by {row.matched_by}", ambiguous_for)
            continue
        invoice = candidates[0]
        row.invoice_idn, row.invoice_amount, row.invoice_currency = invoice.idn, invoice.total, invoice.currency
        results[invoice.idn].ledger_payments.append(payment)
        if row.matched_by:  # the key that found the candidates
            results[invoice.idn].payment_keys.add(row.matched_by)
    return kept, count


def _classify_invoice(result: InvoiceResult, ambiguities: list[str]) -> None:
    """Step 3: pair the invoice's payments and give it one class with its reason."""
    invoice = result.invoice
    same_currency = [p for p in result.ledger_payments if p.currency == invoice.currency]
    other_currency = [p for p in result.ledger_payments if p.currency != invoice.currency]
    result.pairs, result.unpaired_ledger, result.unpaired_precoro = pair_payments(same_currency,
                                                                                  invoice.live_payments,
                                                                                  result.tolerance)
    duplicates = _duplicates(result.unpaired_ledger)
    outstanding = invoice.total - invoice.paid
    bill = result.bill
    precoro_side = (f"Precoro: idn {invoice.idn}, paid {money(invoice.paid, invoice.currency)} of "
                    f"{money(invoice.total, invoice.currency)}")
    ledger_side = f"ledger: paid {money(result.ledger_paid, invoice.currency)}"
    keys = ([f"bill by {result.bill_matched_by}"] if bill is not None else []) + sorted(
        f"payments by {key}" for key in result.payment_keys)
    result.matched_by = "; ".join(keys) or None

    if ambiguities or duplicates:
        reasons = list(ambiguities)
        for group in duplicates:
            first = group[0]
            reasons.append(f"{len(group)} ledger payments ({', '.join(p.payment_id for p in group)}) of "
                           f"{money(first.amount, first.currency)} on {first.paid_on}: possible duplicate entry")
        result.klass, result.reason = AMBIGUOUS, "; ".join(reasons)
    elif other_currency or (bill is not None and bill.currency != invoice.currency):
        shown = [describe_payment(p) for p in other_currency]
        if bill is not None and bill.currency != invoice.currency:
            shown.insert(0, f"ledger bill {bill.bill_id} ({money(bill.amount, bill.currency)})")
        result.klass = CURRENCY_MISMATCH
        result.reason = f"invoice is in {invoice.currency}, but {'; '.join(shown)} is not; {precoro_side}"
    elif bill is not None and (bill.amount != invoice.total or (bill.kind == CREDIT_NOTE) != invoice.is_credit_note):
        result.klass = AMOUNT_MISMATCH
        result.reason = (f"ledger bill {bill.bill_id} is {money(bill.amount, bill.currency)}"
                         f"{' (credit note)' if bill.kind == CREDIT_NOTE else ''}, Precoro invoice idn {invoice.idn} "
                         f"is {money(invoice.total, invoice.currency)}"
                         f"{' (credit note)' if invoice.is_credit_note else ''}")
    elif (relinked := _linked_elsewhere(result)) is not None:
        result.klass = LINK_MISMATCH
        result.reason = "; ".join(
            f"{describe_payment(lp)} and {_describe_precoro(pp)} have the same amount, but the Precoro payment is "
            f"linked to ledger payment {pp.external_id} (its externalId), not to {lp.payment_id}: correct the "
            "externalId in Precoro, or the payment's id in the ledger" for lp, pp in relinked) + f"; {precoro_side}"
    elif result.unpaired_ledger and result.unpaired_precoro:
        result.klass = AMOUNT_MISMATCH
        result.reason = (f"payments differ: {'; '.join(describe_payment(p) for p in result.unpaired_ledger)} vs "
                         f"{'; '.join(_describe_precoro(p) for p in result.unpaired_precoro)}; {precoro_side}")
    elif result.unpaired_ledger:
        missing = sum((p.amount for p in result.unpaired_ledger), Decimal("0.00"))
        listed = "; ".join(describe_payment(p) for p in result.unpaired_ledger)
        if invoice.payable and missing > outstanding + result.tolerance:
            result.klass = AMOUNT_MISMATCH
            result.reason = (f"{listed} exceed what is open in Precoro ({money(outstanding, invoice.currency)}); "
                             f"{precoro_side}")
        else:
            result.klass = PAID_IN_LEDGER_ONLY
            result.reason = f"{listed} not in Precoro; {precoro_side}; {ledger_side}"
            if not invoice.payable:
                result.reason += (f"; the invoice is {invoice.status_name}"
                                  f"{' (a credit note)' if invoice.is_credit_note else ''}, so Precoro accepts no "
                                  "payment for it")
    elif result.unpaired_precoro:
        listed = "; ".join(_describe_precoro(p) for p in result.unpaired_precoro)
        link = f"linked to {invoice.external_id}" if invoice.external_id else "not linked to the ledger"
        result.klass = PAID_IN_PRECORO_ONLY
        result.reason = f"{listed} not in the ledger ({link}); {precoro_side}; {ledger_side}"
    elif bill is not None or result.pairs:
        result.klass = MATCHED
        parts = [f"bill {bill.bill_id} by {result.bill_matched_by}"] if bill is not None else []
        parts += [f"{lp.payment_id} = Precoro payment {pp.idn} ({money(pp.amount, pp.currency)}) by {how}"
                  for lp, pp, how in result.pairs]
        result.reason = f"{'; '.join(parts)}; {precoro_side}"
    else:
        result.klass = UNMATCHED
        link = f"its externalId {invoice.external_id} names no ledger bill" if invoice.external_id else "not linked"
        result.reason = f"nothing in the ledger refers to this invoice ({link}) and nothing is paid; {precoro_side}"
    if invoice.integration_status == CONNECTOR_DISABLED:
        result.reason += "; integrationStatus 8 (waiting for a disabled connector): not offered for export"


    if invoice.cancelled_payments:
        result.reason += "; cancelled in Precoro, not counted: " + ", ".join(
            _describe_precoro(p) for p in invoice.cancelled_payments)


def _linked_elsewhere(result: InvoiceResult) -> list[tuple[LedgerPayment, PrecoroPayment]] | None:
    """Unpaired payments that differ only in their link: each unpaired ledger payment has an unpaired Precoro
    payment of the same amount (within the tolerance; nearest date) whose externalId names another ledger
    payment, and nothing else is left unpaired. None when that is not the whole story."""
    left = [p for p in result.unpaired_precoro if p.external_id]
    if not result.unpaired_ledger or len(left) != len(result.unpaired_precoro):
        return None
    pairs = []
    for lp in result.unpaired_ledger:
        candidates = [p for p in left if abs(p.amount - lp.amount) <= result.tolerance]
        if not candidates:
            return None
        twin = min(candidates, key=lambda p: (_days_apart(p.pay_date, lp.paid_on), p.id))
        left.remove(twin)
        pairs.append((lp, twin))
    return pairs if not left else None


def _duplicates(payments: list[LedgerPayment]) -> list[list[LedgerPayment]]:
    """Unpaired ledger payments of one invoice with the same amount and date: possibly entered twice."""
    groups: dict[tuple[Decimal, date], list[LedgerPayment]] = defaultdict(list)
    for payment in payments:
        groups[(payment.amount, payment.paid_on)].append(payment)
    return [sorted(g, key=lambda p: p.payment_id) for g in groups.values() if len(g) > 1]


def _classify_linked_payments(rows: list[LedgerResult], results: dict[str, InvoiceResult]) -> None:
    """Ledger payments that found their invoice take their class from the pairing and the invoice."""
    for row in rows:
        if row.invoice_idn is None:
            continue
        result = results[row.invoice_idn]
        invoice = result.invoice
        if row.parts:
            continue  # a batch payment: classified over its invoices (_classify_batch_payments)
        paired = next(((pp, how) for lp, pp, how in result.pairs if lp.payment_id == row.ledger_id), None)
        found = f"invoice idn {invoice.idn} by {row.matched_by}"
        if row.currency != invoice.currency and row.rule is None:  # a rule compares in the company currency
            row.klass = CURRENCY_MISMATCH
            row.reason = f"{found}; the invoice is in {invoice.currency}, the payment in {row.currency}"
        elif paired is not None:
            precoro_payment, how = paired
            row.klass = MATCHED
            row.precoro_payment_idn, row.precoro_payment_amount = precoro_payment.idn, precoro_payment.amount
            row.reason = f"{found}; paired with Precoro payment {precoro_payment.idn} by {how}"
            if precoro_payment.pay_date and precoro_payment.pay_date != row.day:
                row.reason += f" (dates differ: ledger {row.day}, Precoro {precoro_payment.pay_date})"
        else:
            row.klass = result.klass
            row.reason = f"{found}; not paired with a Precoro payment: {result.reason}"


# ---- the AP rules (ap_matching.py) ----------------------------------------------------------------------------

STRONG_BY = {BY_EXTERNAL_ID: "external_id", BY_BILL: "external_id", BY_NUMBER_AMOUNT: "supplier_number_amount",
             BY_NUMBER: "supplier_number"}


def _canonical_bills(rules: MatchRules, bills: list[LedgerBill], invoices: list[Invoice],
                     by_external: dict[str, list[Invoice]], by_number: dict[tuple[str, str], list[Invoice]]
                     ) -> tuple[list[LedgerBill], dict[str, tuple[LedgerBill, Decimal]]]:
    """Bills that no strong key finds, whose supplier (alias, learned link) and normalised number name exactly one
    unlinked invoice: read with that invoice's supplier and number, so the strong keys then match them (and the
    amount and currency are still compared). Returns the bills and, for each one read so, the original."""
    confidence = dict(rules.rules).get(NORMALISED_NUMBER)
    if confidence is None or confidence < rules.auto_threshold:
        return bills, {}
    learned = learned_links([(bill.supplier, by_external[bill.bill_id][0].supplier) for bill in bills
                             if len(by_external.get(bill.bill_id, [])) == 1])
    matcher = Matcher(rules, [OpenInvoice(i.idn, i.supplier, i.invoice_number, i.currency, i.total)
                              for i in invoices if not i.external_id], learned)
    out, renamed = [], {}
    for bill in bills:
        if bill.bill_id in by_external or by_number.get(_number_key(bill.supplier, bill.invoice_number)):
            out.append(bill)
            continue
        found = matcher.by_number_of(bill.supplier, bill.invoice_number)
        if len(found) != 1:
            out.append(bill)
            continue
        renamed[bill.bill_id] = (bill, confidence)
        out.append(replace(bill, supplier=found[0].supplier, invoice_number=found[0].invoice_number or ""))
    return out, renamed


def company_currency(invoices: list[Invoice]) -> str | None:
    """The currency whose invoices' company-currency totals equal their totals: the company's."""
    same = Counter(i.currency for i in invoices if i.total_company is not None and i.total and i.total_company == i.total)
    return same.most_common(1)[0][0] if same else None


def _match_by_rules(rules: MatchRules, payments: Callable[[], Iterable[LedgerPayment]],
                    kept: dict[int, tuple[LedgerPayment, LedgerResult]],
                    unplaced: Callable[[LedgerPayment], LedgerResult], bill_rows: list[LedgerResult],
                    bills: list[LedgerBill], results: dict[str, InvoiceResult]) -> None:
    """The ledger payments no strong key placed: the AP rules, in order; confident matches join their invoices
    (split over several for a batch payment), the rest go to review with their candidates (and join `kept`)."""
    rules = replace(rules, company_currency=rules.company_currency or company_currency(
        [r.invoice for r in results.values()]))
    for result in results.values():
        result.tolerance = rules.tolerance_absolute
    rows = [kept[index][1] for index in sorted(kept)]  # the payments a key found, in the payments' order
    by_id = {p.payment_id: p for p, _ in (kept[index] for index in sorted(kept))}
    bill_by_id = {b.bill_id: b for b in bills}
    learned = learned_links(
        [(bill_by_id[r.ledger_id].supplier, results[r.invoice_idn].invoice.supplier) for r in bill_rows
         if r.matched_by == BY_EXTERNAL_ID and r.invoice_idn in results]
        + [(by_id[r.ledger_id].supplier, results[r.invoice_idn].invoice.supplier) for r in rows
           if r.matched_by == BY_EXTERNAL_ID and r.invoice_idn in results])
    for row in rows:  # placed by a strong key but paid in the company currency: compare there
        if row.invoice_idn is None or row.kind != "payment" or row.klass == AMBIGUOUS:
            continue
        _convert(rules, by_id[row.ledger_id], row, results[row.invoice_idn])
    open_invoices = []
    for result in results.values():
        invoice = result.invoice
        if not invoice.payable:
            continue
        left = invoice.total - max(invoice.paid, result.ledger_paid)
        open_invoices.append(OpenInvoice(invoice.idn, invoice.supplier, invoice.invoice_number, invoice.currency,
                                         left, invoice.external_id, invoice.issued, invoice.in_company_currency(left)))
    matcher = Matcher(rules, open_invoices, learned)
    for index, payment in enumerate(payments()):
        if index in kept:  # a key found it (placed, or ambiguous)
            continue
        found = matcher.match(payment)
        if found is None:
            continue
        row = unplaced(payment)
        kept[index] = (payment, row)
        row.rule, row.confidence = found.rule, found.confidence
        if found.confidence < rules.auto_threshold or not found.parts:
            row.klass = AMBIGUOUS if len(found.candidates) > 1 and not found.parts else NEEDS_REVIEW
            row.candidates = ", ".join(found.candidates) or None
            row.reason = (f"{found.reason}; rule {found.rule} (confidence {found.confidence}, auto threshold "
                          f"{rules.auto_threshold}): for review" + (f"; candidates idn {row.candidates}"
                                                                     if row.candidates else ""))
            continue
        row.matched_by = f"{found.rule} (confidence {found.confidence})"
        row.reason = found.reason
        matcher.taken.update(part.idn for part in found.parts)  # settled: no later batch may count it open
        split = len(found.parts) > 1
        for part in found.parts:
            result = results[part.idn]
            paid_id = f"{payment.payment_id}/{part.idn}" if split else payment.payment_id
            result.ledger_payments.append(replace(payment, payment_id=paid_id, amount=part.amount,
                                                  currency=result.invoice.currency))
            result.payment_keys.add(found.rule)
        if split:
            row.parts = tuple((part.idn, part.amount) for part in found.parts)
        else:
            invoice = results[found.parts[0].idn].invoice
            row.invoice_idn, row.invoice_amount, row.invoice_currency = invoice.idn, invoice.total, invoice.currency


def _convert(rules: MatchRules, payment: LedgerPayment, row: LedgerResult, result: InvoiceResult) -> None:
    """A ledger payment in the company currency of what is open on an invoice in another currency (Precoro's
    company-currency total, within the FX tolerance) pays that open amount in the invoice's currency."""
    invoice = result.invoice
    left = invoice.total - invoice.paid
    company_left = invoice.in_company_currency(left)
    if payment.currency == invoice.currency or payment.currency != rules.company_currency or company_left is None:
        return
    if not rules.within(payment.amount, company_left, rules.fx_tolerance_percent):
        return
    result.ledger_payments = [replace(lp, amount=left, currency=invoice.currency) if lp is payment else lp
                              for lp in result.ledger_payments]
    row.rule, row.confidence = "company_currency", Decimal("1")
    row.reason = (f"{money(payment.amount, payment.currency)} is what is open in the company currency "
                  f"({money(company_left, payment.currency)} at Precoro's rate): pays {money(left, invoice.currency)}")


def _mark_review_candidates(rows: list[LedgerResult], results: dict[str, InvoiceResult]) -> None:
    """An invoice nothing else refers to, that a payment in review may pay, waits for that review too (it is not
    offered for export meanwhile: the ledger may well know it)."""
    for row in rows:
        if row.klass not in (NEEDS_REVIEW, AMBIGUOUS) or not row.candidates:
            continue
        for idn in row.candidates.split(", "):
            result = results.get(idn)
            if result is not None and result.klass == UNMATCHED:
                result.klass = NEEDS_REVIEW
                result.reason = (f"ledger payment {row.ledger_id} ({money(row.amount, row.currency)}) may pay it "
                                 f"(rule {row.rule}): see review_queue; {result.reason}")


def _classify_batch_payments(rows: list[LedgerResult], results: dict[str, InvoiceResult]) -> None:
    """A payment split over several invoices is matched when each share is paired in Precoro; otherwise it takes
    the class of the first invoice whose share is not."""
    for row in rows:
        if not row.parts:
            continue
        shares = []
        row.klass = MATCHED
        for idn, amount in row.parts:
            result = results[idn]
            paired = any(lp.payment_id == f"{row.ledger_id}/{idn}" for lp, _, _ in result.pairs)
            shares.append(f"idn {idn} {money(amount, result.invoice.currency)}"
                          f"{' (paired in Precoro)' if paired else ''}")
            if not paired and row.klass == MATCHED:
                row.klass = result.klass
        row.reason = f"{row.reason}; shares: {'; '.join(shares)}"
