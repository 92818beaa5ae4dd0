"""The ledger, reconciliation and outbox tables in the warehouse: their columns, their rows, and the reads
reconciliation needs. Every table and column is described (COMMENT ON) like the catalogue's tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from itertools import islice
from typing import Any

import duckdb
import pyarrow as pa

from ..catalogue import BY_NAME, CANCELED, MONEY, TIME, Column
from ..ledger.source import LedgerBill, LedgerPayment, RejectedRow
from ..warehouse import tables
from ..warehouse.rows import arrow_type, to_arrow
from ..warehouse.tables import Layout, c
from .records import CLASSES, Invoice, LedgerResult, PrecoroPayment, PurchaseOrder, Reconciliation

CLASS_TEXT = "The class: " + "; ".join(f"{name} = {text}" for name, text in CLASSES.items())
SOURCE = (c("source_file", "VARCHAR", "The ledger file the row was read from."),
          c("source_line", "INTEGER", "Line of the file (row number for Parquet)."))

LEDGER_PAYMENTS: Layout = ("ledger_payments", "Payments recorded in the accounting system (the ledger's drop folder).", (
    c("payment_id", "VARCHAR", "The accounting system's id of the payment."),
    c("bill_id", "VARCHAR", "The bill it pays (= the Precoro invoice's externalId), if the export names it."),
    c("supplier", "VARCHAR", "Supplier name, when the invoice is named by supplier + invoice number."),
    c("invoice_number", "VARCHAR", "The supplier's invoice number, with `supplier`."),
    c("amount", MONEY, "Amount paid, in `currency`."),
    c("currency", "VARCHAR", "ISO currency code of the payment."),
    c("paid_on", "DATE", "Payment date."),
) + SOURCE + (c("loaded_at", TIME, "When the ledger was loaded."),))

LEDGER_BILLS: Layout = ("ledger_bills", "Supplier invoices (bills) and credit notes booked in the accounting system.", (
    c("bill_id", "VARCHAR", "The accounting system's id: what Precoro stores as the invoice's externalId."),
    c("kind", "VARCHAR", "bill or credit_note."),
    c("supplier", "VARCHAR", "Supplier name as booked."),
    c("invoice_number", "VARCHAR", "The supplier's invoice number."),
    c("amount", MONEY, "Total, always positive (credit notes are told by `kind`)."),
    c("currency", "VARCHAR", "ISO currency code."),
    c("bill_date", "DATE", "Bill date, if exported."),
) + SOURCE + (c("loaded_at", TIME, "When the ledger was loaded."),))

LEDGER_REJECTED: Layout = ("ledger_rejected_rows", "Ledger rows (or whole files, line 0) that were not loaded, and why.", (
    c("file", "VARCHAR", "The ledger file."),
    c("line", "INTEGER", "Line of the file (row number for Parquet; 0 = the whole file)."),
    c("reason", "VARCHAR", "Why the row was kept out, written for the person who fixes the export."),
    c("row_text", "VARCHAR", "The row as read (undecodable bytes shown as \\xNN)."),
    c("loaded_at", TIME, "When the ledger was loaded."),
))

RECONCILIATION_INVOICES: Layout = ("reconciliation_invoices", "Every Precoro invoice compared with the ledger: its class, "
                           "the reason, and the evidence on both sides.", (
    c("invoice_idn", "VARCHAR", "The invoice (precoro.invoices.idn)."),
    c("invoice_id", "BIGINT", "Precoro's numeric id of the invoice."),
    c("supplier_name", "VARCHAR", "Supplier name on the invoice."),
    c("invoice_number", "VARCHAR", "The supplier's invoice number."),
    c("is_credit_note", "BOOLEAN", "True for credit notes (logicType 1 or 5)."),
    c("status", "INTEGER", "Precoro status code."),
    c("status_name", "VARCHAR", "Precoro status name."),
    c("currency", "VARCHAR", "The invoice's currency."),
    c("precoro_total", MONEY, "Invoice total in Precoro."),
    c("precoro_paid", MONEY, "Paid so far according to Precoro (sumPaid)."),
    c("ledger_paid", MONEY, "Paid according to the ledger (its payments for this invoice, in the invoice's currency)."),
    c("ledger_bill_id", "VARCHAR", "The ledger bill matched to the invoice, if any."),
    c("ledger_bill_amount", MONEY, "That bill's total."),
    c("ledger_payment_ids", "VARCHAR", "Ledger payments that name this invoice (comma-separated)."),
    c("precoro_payment_idns", "VARCHAR", "Precoro payments of the invoice (comma-separated idns)."),
    c("external_id", "VARCHAR", "The invoice's externalId in Precoro at reconciliation time."),
    c("external_integration_log", "VARCHAR", "The invoice's externalIntegrationLog at reconciliation time."),
    c("class", "VARCHAR", CLASS_TEXT),
    c("reason", "VARCHAR", "Why: the keys that matched and the amounts on both sides."),
    c("matched_by", "VARCHAR", "How the ledger found the invoice (bill and payment keys); empty if it did not."),
    c("proposed_actions", "VARCHAR", "Write-backs proposed for the invoice (see precoro.writeback_outbox)."),
    c("reconciled_at", TIME, "When the reconciliation ran."),
    c("batch_id", "VARCHAR", "The reconciliation run (Dagster run id) that produced the row."),
))

RECONCILIATION_LEDGER: Layout = ("reconciliation_ledger", "Every ledger payment, bill and credit note compared with "
                         "Precoro: its class, the reason and the evidence.", (
    c("ledger_kind", "VARCHAR", "payment, bill or credit_note."),
    c("ledger_id", "VARCHAR", "The ledger's id (payment_id or bill_id)."),
    c("supplier", "VARCHAR", "Supplier name in the ledger."),
    c("invoice_number", "VARCHAR", "Supplier invoice number in the ledger."),
    c("bill_id", "VARCHAR", "For payments: the bill named; for bills: their own id."),
    c("amount", MONEY, "Amount in the ledger."),
    c("currency", "VARCHAR", "Currency in the ledger."),
    c("ledger_date", "DATE", "Payment date or bill date."),
    c("class", "VARCHAR", CLASS_TEXT),
    c("reason", "VARCHAR", "Why: the keys that matched and the amounts on both sides."),
    c("matched_by", "VARCHAR", "The key that found the Precoro invoice; empty if none did."),
    c("invoice_idn", "VARCHAR", "The Precoro invoice it belongs to, if exactly one was found."),
    c("invoice_amount", MONEY, "That invoice's total in Precoro."),
    c("invoice_currency", "VARCHAR", "That invoice's currency in Precoro."),
    c("precoro_payment_idn", "VARCHAR", "For payments: the Precoro payment it was paired with."),
    c("precoro_payment_amount", MONEY, "That Precoro payment's amount."),
    c("rule", "VARCHAR", "For payments no strong key placed: the AP rule that matched it or proposed candidates "
                        "(allocation, normalised_number, batch_subset; see reconciliation.yaml)."),
    c("confidence", "DECIMAL(4,3)", "That rule's confidence: at or above the auto threshold the match is acted on; "
                                    "below it the row is needs_review and nothing is written back."),
    c("candidates", "VARCHAR", "For review: the Precoro invoices (idns) it could pay."),
    c("parts", "VARCHAR", "A payment split over several invoices: each idn and its share, in the invoice currency."),
) + SOURCE + (c("reconciled_at", TIME, "When the reconciliation ran."),
              c("batch_id", "VARCHAR", "The reconciliation run (Dagster run id) that produced the row.")))

WRITEBACK_OUTBOX: Layout = ("writeback_outbox", "Write-backs to Precoro proposed by reconciliation and the catalogue "
                    "sync, and what became of them: a copy of the operational queue (outbox.sqlite in "
                    "PRECORO_STATE_DIR), refreshed after every reconciliation, catalogue plan and write-back run.", (
    c("idempotency_key", "VARCHAR", "Derived from the action, its target and its reason: the same proposal "
                                    "always has the same key, so it is queued once."),
    c("kind", "VARCHAR", "create_payment, set_external_id, set_integration_log, clear_integration_log or "
                         "export_document (reconciliation's); create_record or update_record (the catalogue sync's)."),
    c("resource", "VARCHAR", "The Precoro resource written: invoices, payments or purchaseorders; suppliers, items, "
                             "taxes, itemcustomfields or documentcustomfields (custom field options)."),
    c("target_key", "VARCHAR", "The record's idn (reference data: its id; a record to create: the accounting "
                               "side's id)."),
    c("target_id", "BIGINT", "The record's numeric id."),
    c("payload", "JSON", "What is sent (amounts as exact decimal text)."),
    c("reason", "VARCHAR", "Why reconciliation proposed it."),
    c("ledger_ref", "VARCHAR", "The ledger payment or bill behind it, if any."),
    c("status", "VARCHAR", "pending, sending (a write is in flight), sent, skipped or failed."),
    c("attempts", "INTEGER", "How many times a write-back run took the row."),
    c("outcome", "VARCHAR", "What happened: what was sent or adopted, or why it was skipped."),
    c("last_error", "VARCHAR", "The last error, Precoro's (or the accounting side's) text verbatim."),
    c("sent_request", "VARCHAR", "The last write request sent for the row (method, path, form)."),
    c("in_flight", "JSON", "While a payment POST's outcome is unknown: Precoro's payments before it was sent."),
    c("proposed_by", "VARCHAR", "The reconciliation run that first proposed it."),
    c("superseded_by", "VARCHAR", "The reconciliation that no longer proposed it while it was pending (it then "
                                  "counts as skipped, and returns to pending if proposed again)."),
    c("last_run_id", "VARCHAR", "The last write-back run that took it."),
    c("created_at", TIME, "When it was proposed."),
    c("updated_at", TIME, "Last change."),
    c("attempted_at", TIME, "When a run last took it."),
    c("finished_at", TIME, "When it reached sent, skipped or failed."),
))


# ---- reads ----------------------------------------------------------------------------------------------------

def ensure_inputs(con: duckdb.DuckDBPyConnection) -> None:
    """The tables reconciliation reads, created empty if nothing was synced or loaded yet."""
    for name in ("invoices", "payments", "purchase_orders"):
        tables.ensure_tables(con, BY_NAME[name])
    for name, description, columns in (LEDGER_PAYMENTS, LEDGER_BILLS, LEDGER_REJECTED):
        tables.ensure_table(con, name, description, list(columns))


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    return con.execute(sql).to_arrow_table().to_pylist()


def _streamed(con: duckdb.DuckDBPyConnection, sql: str) -> Iterator[dict[str, Any]]:
    """Rows of a large result one Arrow batch at a time (a million ledger rows as dicts at once is gigabytes)."""
    for batch in con.execute(sql).to_arrow_reader(50_000):
        yield from batch.to_pylist()


def load_invoices(con: duckdb.DuckDBPyConnection) -> list[Invoice]:
    """The invoices as synced, each with its payments (and each payment's externalId from precoro.payments)."""
    payments: dict[str, list[PrecoroPayment]] = {}
    for row in _rows(con, """
            SELECT ip.invoice_idn, ip.payment_id, ip.payment_idn, ip.sum_paid, ip.currency, ip.pay_date,
                   p.external_id, coalesce(ip.status, p.status) AS status
            FROM precoro.invoice_payments ip
            LEFT JOIN precoro.payments p ON p.idn = ip.payment_idn"""):
        payments.setdefault(row["invoice_idn"], []).append(PrecoroPayment(
            id=row["payment_id"], idn=str(row["payment_idn"]), amount=row["sum_paid"] or Decimal("0.00"),
            currency=row["currency"], pay_date=row["pay_date"].date() if row["pay_date"] else None,
            external_id=row["external_id"] or None, cancelled=row["status"] == CANCELED))
    return [Invoice(
        idn=row["idn"], id=row["id"], supplier=row["supplier_name"] or "", invoice_number=row["invoice_number"],
        total=row["sum"] or Decimal("0.00"), paid=row["sum_paid"] or Decimal("0.00"), currency=row["currency"] or "",
        status=row["status"], logic_type=row["logic_type"] or 0, external_id=row["external_id"] or None,
        log=row["external_integration_log"] or None, payments=tuple(payments.get(row["idn"], ())),
        integration_status=row["integration_status"], parent_idn=row["parent_idn"] or None,
        issued=row["issue_date"].date() if row["issue_date"] else None, total_company=row["sum_in_company_currency"])
        for row in _rows(con, """
            SELECT idn, id, supplier_name, invoice_number, sum, sum_paid, currency, status, logic_type,
                   external_id, external_integration_log, integration_status, parent_idn, issue_date,
                   sum_in_company_currency
            FROM precoro.invoices""")]


def load_purchase_orders(con: duckdb.DuckDBPyConnection) -> list[PurchaseOrder]:
    return [PurchaseOrder(idn=row["idn"], id=row["id"], supplier=row["supplier_name"] or "",
                          total=row["sum"] or Decimal("0.00"), currency=row["currency"] or "", status=row["status"],
                          external_id=row["external_id"] or None, integration_status=row["integration_status"])
            for row in _rows(con, "SELECT idn, id, supplier_name, sum, currency, status, external_id, "
                                  "integration_status FROM precoro.purchase_orders")]


def load_ledger(con: duckdb.DuckDBPyConnection) -> tuple[list[LedgerPayment], list[LedgerBill]]:
    """Every ledger payment and bill (a large ledger's payments are better read as `ledger_payments` streams
    them)."""
    return list(ledger_payments(con)), load_ledger_bills(con)


class OutOfOrder(Exception):
    """precoro.ledger_payments, read as stored, is not sorted by file, line and id (read it with ordered=True)."""


def ledger_payments(con: duckdb.DuckDBPyConnection, ordered: bool = False) -> Iterator[LedgerPayment]:
    """The ledger's payments one Arrow batch at a time, sorted by file, line and id as reconciliation's ledger
    rows are (reconcile.records.LedgerResults merges on that order; a million payments at once is gigabytes). Values that
    repeat over many rows (currency, file, day, supplier) are shared: only the payments a key places outlive
    their batch.

    The drop folder's loader stores them in that order, and DuckDB returns a table's rows in the order they were
    inserted, so by default they are read as stored (an ORDER BY over a million rows holds them all: 170 MB) and
    OutOfOrder is raised at the first row out of order (a ledger written by another source); ordered=True sorts.
    """
    shared: dict[Any, Any] = {}
    last: tuple[str, int, str] | None = None

    def once(value: Any) -> Any:
        if len(shared) > 100_000:  # a ledger of mostly distinct suppliers: don't keep them all
            shared.clear()
        return shared.setdefault(value, value)

    sql = ("SELECT * FROM precoro.ledger_payments ORDER BY source_file, source_line, payment_id" if ordered
           else "SELECT * FROM precoro.ledger_payments")
    for r in _streamed(con, sql):
        if not ordered:
            key = (r["source_file"] or "", r["source_line"] or 0, r["payment_id"])
            if last is not None and key < last:
                raise OutOfOrder(f"ledger payment {key} is stored after {last}")
            last = key
        yield LedgerPayment(
            payment_id=r["payment_id"], amount=r["amount"], currency=once(r["currency"]), paid_on=once(r["paid_on"]),
            bill_id=r["bill_id"], supplier=once(r["supplier"]), invoice_number=r["invoice_number"],
            source_file=once(r["source_file"]), source_line=r["source_line"])


def load_ledger_bills(con: duckdb.DuckDBPyConnection) -> list[LedgerBill]:
    """Every ledger bill and credit note. Values that repeat (kind, currency, file, day) are kept once each."""
    shared: dict[Any, Any] = {}

    def once(value: Any) -> Any:
        return shared.setdefault(value, value)

    return [LedgerBill(
        bill_id=r["bill_id"], kind=once(r["kind"]), supplier=once(r["supplier"]), invoice_number=r["invoice_number"],
        amount=r["amount"], currency=once(r["currency"]), bill_date=once(r["bill_date"]),
        source_file=once(r["source_file"]), source_line=r["source_line"])
        for r in _streamed(con, "SELECT * FROM precoro.ledger_bills ORDER BY source_file, source_line")]


# ---- writes ---------------------------------------------------------------------------------------------------

class LedgerRows:
    """The ledger's payments and bills as Arrow tables, built batch by batch while the files are read.

    Why: a year of a large company's payments is a million rows; as Python objects that is gigabytes, as Arrow
    columns about 100 bytes a row. It is built before the warehouse's write lock is taken, so the lock is held
    for the inserts only, not for reading the files."""

    def __init__(self, loaded_at: datetime) -> None:
        self.loaded_at = loaded_at
        self.parts: dict[str, list[pa.Table]] = {"payments": [], "bills": []}

    def add(self, kind: str, records: list[LedgerPayment] | list[LedgerBill]) -> None:
        columns = list((LEDGER_PAYMENTS if kind == "payments" else LEDGER_BILLS)[2])
        names = [f.name for f in fields(records[0])] if records else []
        self.parts[kind].append(to_arrow(columns, [{**{n: getattr(r, n) for n in names}, "loaded_at": self.loaded_at}
                                                   for r in records]))

    def write(self, con: duckdb.DuckDBPyConnection, rejected: list[RejectedRow]) -> dict[str, int]:
        """Replace the three ledger tables (in the caller's transaction)."""
        written = {}
        for kind, (name, description, columns) in (("payments", LEDGER_PAYMENTS), ("bills", LEDGER_BILLS)):
            written[name] = tables.replace_described_arrow(con, name, description, list(columns), self.parts[kind])
        name, description, columns = LEDGER_REJECTED
        written[name] = tables.replace_described(con, name, description, list(columns), [
            {"file": r.file, "line": r.line, "reason": r.reason, "row_text": r.text, "loaded_at": self.loaded_at}
            for r in rejected])
        return written


def write_reconciliation(con: duckdb.DuckDBPyConnection, result: Reconciliation, reconciled_at: datetime,
                         batch_id: str) -> None:
    """Replace both reconciliation tables with this run's results."""
    actions: dict[str, list[str]] = {}
    for proposal in result.proposals:
        if proposal.resource == "invoices":
            actions.setdefault(proposal.target_key, []).append(proposal.kind)
    stamp = {"reconciled_at": reconciled_at, "batch_id": batch_id}
    invoices = []
    for row in result.invoices:
        invoice = row.invoice
        invoices.append({
            "invoice_idn": invoice.idn, "invoice_id": invoice.id, "supplier_name": invoice.supplier,
            "invoice_number": invoice.invoice_number, "is_credit_note": invoice.is_credit_note,
            "status": invoice.status, "status_name": invoice.status_name, "currency": invoice.currency,
            "precoro_total": invoice.total, "precoro_paid": invoice.paid, "ledger_paid": row.ledger_paid,
            "ledger_bill_id": row.bill.bill_id if row.bill else None,
            "ledger_bill_amount": row.bill.amount if row.bill else None,
            "ledger_payment_ids": ", ".join(p.payment_id for p in row.ledger_payments) or None,
            "precoro_payment_idns": ", ".join(p.idn for p in invoice.payments) or None,
            "external_id": invoice.external_id, "external_integration_log": invoice.log,
            "class": row.klass, "reason": row.reason, "matched_by": row.matched_by,
            "proposed_actions": ", ".join(actions.get(invoice.idn, [])) or None, **stamp})
    name, description, columns = RECONCILIATION_INVOICES
    tables.replace_described_arrow(con, name, description, list(columns), tables.in_arrow_chunks(list(columns),
                                                                                                 invoices))
    name, description, columns = RECONCILIATION_LEDGER
    tables.replace_described_arrow(con, name, description, list(columns),
                                   _ledger_chunks(list(columns), result.ledger, stamp))


# precoro.reconciliation_ledger's columns: the LedgerResult attribute each is read from (or a function of the row)
LEDGER_RESULT_COLUMNS: dict[str, Any] = {
    "ledger_kind": "kind", "ledger_id": "ledger_id", "supplier": "supplier", "invoice_number": "invoice_number",
    "bill_id": "bill_id", "amount": "amount", "currency": "currency", "ledger_date": "day", "class": "klass",
    "reason": "reason", "matched_by": "matched_by", "invoice_idn": "invoice_idn", "invoice_amount": "invoice_amount",
    "invoice_currency": "invoice_currency", "precoro_payment_idn": "precoro_payment_idn",
    "precoro_payment_amount": "precoro_payment_amount", "rule": "rule", "confidence": "confidence",
    "candidates": "candidates", "source_file": "source_file", "source_line": "source_line",
    "parts": lambda r: "; ".join(f"{idn} {amount}" for idn, amount in r.parts) or None}


def _ledger_chunks(columns: list[Column], rows: Iterable[LedgerResult], stamp: dict[str, Any],
                   size: int = 50_000) -> Iterator[pa.Table]:
    """The ledger rows as Arrow tables of `size` rows, column by column from the results (a million rows: never a
    dict per row, nor all rows at once)."""
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        arrays = {}
        for column in columns:
            source = LEDGER_RESULT_COLUMNS.get(column.name)
            if source is None:
                values = [stamp[column.name]] * len(chunk)
            elif callable(source):
                values = [source(row) for row in chunk]
            else:
                values = [getattr(row, source) for row in chunk]
            arrays[column.name] = pa.array(values, arrow_type(column.type))
        del chunk  # before the next chunk is read
        yield pa.table(arrays)


def write_outbox_copy(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> int:
    name, description, columns = WRITEBACK_OUTBOX
    return tables.replace_described(con, name, description, list(columns), rows)
