"""The write-back executor: sends the outbox's rows to Precoro, each exactly once.

For every row: re-read the target in Precoro, skip what is already true, send, record Precoro's answer.

Exactly once for `POST /payments`, which Precoro can't de-duplicate for us:
- before the POST, the payments the invoice already has are written to the row (`in_flight`) and committed;
- if the answer is lost (connection dropped, timeout, 5xx: the payment may or may not exist), nothing is
  re-sent blindly: the invoice is read again, and a payment that is new since that mark, with the same amount
  and pay date, is adopted as ours; only if there is none is the POST sent again;
- the same check runs first whenever a row with an in-flight mark is taken again (after a crash, or by the
  next run), and the client never repeats a POST that may have landed (see `api.client._is_retryable`).
PATCHes are idempotent (the client retries them itself); they are still skipped when Precoro already holds
the value, so a converged outbox costs one GET per row and no writes.

The catalogue sync's rows (master_data/plan.py) follow the same rule: a POST that creates a supplier, item, tax or
custom field option marks the row in flight first; after a lost answer the record is looked up by the externalId
the POST carried, and adopted if it landed. Its PUTs carry only the fields that differed when the plan was made
(idempotent: sent as planned, no re-read; the next plan sees the result).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from ..api.client import retry_later
from ..api.errors import (
    PrecoroAuthError,
    PrecoroConnectionError,
    PrecoroError,
    PrecoroRateLimited,
    PrecoroServerError,
    PrecoroValidationError,
    QuotaExhausted,
)
from ..api.responses import detail_path, expect_list
from ..catalogue import CANCELED, CREDIT_NOTE_LOGIC_TYPES
from ..ledger.source import BILL, CREDIT_NOTE, PURCHASE_ORDER, ExportDocument, ExportVendor, LedgerSink
from .outbox import FAILED, PENDING, SENDING, SENT, SKIPPED, Outbox, OutboxRow
from .proposals import (
    CLEAR_LOG,
    CREATE_PAYMENT,
    CREATE_RECORD,
    EXPORT,
    EXPORT_SUPPLIER,
    SET_EXTERNAL_ID,
    SET_LOG,
    UPDATE_RECORD,
)

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 6  # runs that may take a row before a transient error counts as final
POST_TRIES_PER_RUN = 3  # re-read + (adopt or re-send) rounds after a lost answer, within one run
EXPORT_LOG_PREFIX = "Export to accounting failed: "
TRANSIENT = (PrecoroConnectionError, PrecoroServerError, PrecoroRateLimited)
DEFERRALS_PER_RUN = 4  # times a row is put aside for a failed re-read (see WriteBack.run) before it waits in turn


class _RetryLater(Exception):  # noqa: N818 - a state, not an error
    """The row's re-read may go again at `at` (epoch seconds): the run takes other rows first."""

    def __init__(self, at: float) -> None:
        super().__init__(f"retry at {at}")
        self.at = at


@dataclass(frozen=True)
class Done:
    """The row's final state for this run: sent, skipped or failed (or pending again: retry later)."""

    status: str
    outcome: str
    last_error: str | None = None
    keep_in_flight: bool = False


@dataclass(frozen=True)
class Report:
    """One row as this run handled it (or, in a dry run, would handle it)."""

    key: str
    kind: str
    target: str
    status: str
    outcome: str
    request: str | None = None
    error: str | None = None


# ---- what a row sends ----------------------------------------------------------------------------------------

def payment_request(row: OutboxRow) -> str:
    p = row.payload
    return (f"POST /payments invoice[id]={p['invoice_id']}&sumPaid={p['amount']}&logicType=0"
            f"&payDate={p['pay_date']}T00:00:00+00:00")


def form_text(fields: dict[str, Any]) -> str:
    return "&".join(f"{name}[]={item}" if isinstance(value, list) else f"{name}={value}"
                    for name, value in fields.items() for item in (value if isinstance(value, list) else [value]))


def patch_request(resource: str, key: str, fields: dict[str, str]) -> str:
    return f"PATCH /{resource}/{key} {form_text(fields)}"


def record_request(row: OutboxRow) -> str:
    """The catalogue sync's POST (a new record) or PUT (the differing fields)."""
    if row.kind == CREATE_RECORD:
        return f"POST {row.payload['path']} {form_text(row.payload['form'])}"
    return f"PUT {row.payload['path']} {form_text(row.payload['fields'])}"


def describe(row: OutboxRow) -> str:
    """What the row will send, for dry runs and logs (the real request may be skipped after the re-read)."""
    if row.kind == CREATE_PAYMENT:
        return payment_request(row) + f"  (invoice idn {row.target_key}, ledger payment {row.ledger_ref})"
    if row.kind == EXPORT:
        p = row.payload
        return (f"offer {row.resource} {row.target_key} ({p['supplier']}, {p['number']}, {p['amount']} "
                f"{p['currency']}) to the accounting side, then PATCH /{row.resource}/{row.target_key} externalId "
                "(accepted) or externalIntegrationLog (refused)")
    if row.kind in (CREATE_RECORD, UPDATE_RECORD):
        return record_request(row)
    if row.kind == EXPORT_SUPPLIER:
        return (f"offer supplier {row.target_key} ({row.payload['name']}) to the accounting side as a new vendor, "
                f"then PATCH /suppliers/{row.target_key} externalId")
    return patch_request(row.resource, row.target_key, row.payload["fields"])


# ---- reading Precoro's answers ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SeenPayment:
    id: int
    idn: str
    amount: Decimal
    pay_date: date | None  # the UTC date of its payDate (we send payDate at 00:00 UTC)
    cancelled: bool = False


def _pay_date(value: Any) -> date | None:
    """The UTC date of a payDate: a server may write the instant we sent (00:00 UTC) at any offset, e.g.
    2026-11-30T19:00:00-05:00 for 2026-12-01; its local date would not be recognised as ours. No offset: UTC."""
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    return moment.astimezone(UTC).date() if moment.tzinfo else moment.date()


def invoice_payments(invoice: dict[str, Any]) -> list[SeenPayment]:
    return [SeenPayment(int(p["id"]), str(p.get("idn", p["id"])), Decimal(str(p.get("sumPaid", "0"))),
                        _pay_date(p.get("payDate")), cancelled=p.get("status") == CANCELED)
            for p in expect_list(invoice.get("payments")) if isinstance(p, dict) and p.get("id") is not None]


def find_payment(payments: list[SeenPayment], amount: Decimal, pay_date: date,
                 not_in: set[int]) -> SeenPayment | None:
    """A live payment not in `not_in` with this amount and pay date: the one our POST created, if it landed (a
    cancelled one is not: adopting it would leave the invoice unpaid)."""
    return next((p for p in payments if p.id not in not_in and not p.cancelled and p.amount == amount
                 and p.pay_date == pay_date), None)


def cannot_pay(invoice: dict[str, Any], amount: Decimal) -> str | None:
    """Why Precoro would refuse this payment now (None if it would accept it); saves an erroring request."""
    total = Decimal(str(invoice.get("sum") or "0"))
    paid = Decimal(str(invoice.get("sumPaid") or "0"))
    status = invoice.get("status")
    state = f"sumPaid {paid:.2f} of {total:.2f} {invoice.get('currency', '')}".rstrip()
    if invoice.get("logicType") in CREDIT_NOTE_LOGIC_TYPES:
        return "the invoice is a credit note: Precoro records no payment for it"
    if status == 5 or paid >= total:
        return f"already fully paid in Precoro ({state})"
    if status not in (2, 4):
        return (f"the invoice is {invoice.get('statusString') or status} in Precoro; it accepts payments only when "
                "Approved or Partly paid")
    if amount > total - paid:
        return f"only {total - paid:.2f} is open in Precoro ({state}); the ledger pays {amount:.2f}: settle by hand"
    return None


def _error_text(error: BaseException) -> str:
    """Precoro's error as the client reports it (its field messages verbatim, the token redacted)."""
    return str(error)


# ---- the executor -----------------------------------------------------------------------------------------------

class WriteBack:
    """Runs the outbox against Precoro (or, with send=False, only says what it would send)."""

    def __init__(self, client: Any, outbox: Outbox, sink: LedgerSink, run_id: str, send: bool,
                 log: Callable[[str], None] = logger.info) -> None:
        self._may_defer = False
        self.client = client
        self.outbox = outbox
        self.sink = sink
        self.run_id = run_id
        self.send = send
        self.log = log

    def run(self, limit: int | None = None) -> list[Report]:
        rows = self.outbox.workable()
        rows = rows[:limit] if limit else rows
        if not self.send:
            return [Report(r.key, r.kind, f"{r.resource}/{r.target_key}", "would send", r.reason, describe(r))
                    for r in rows]
        reports: list[Report] = []
        # Rows whose re-read must wait out an identical-GET minute (it failed, or a lost answer needs the same
        # GET again) are put aside and taken again when it has passed: the other rows go meanwhile, so a run
        # loses about one minute to failures, not a minute per failure.
        later: list[tuple[float, str]] = []  # (when, row key)
        deferred: Counter[str] = Counter()
        try:
            for row in rows:
                while later and later[0][0] <= time.time():  # rows put aside whose minute has passed come first
                    self._take_again(heapq.heappop(later)[1], reports, later, deferred)
                claimed = self.outbox.claim(row.key, self.run_id)
                if claimed is None:
                    continue  # another run took it meanwhile
                self._take(claimed, reports, later, deferred)
            while later:
                at, key = heapq.heappop(later)
                time.sleep(max(0.0, at - time.time()))
                self._take_again(key, reports, later, deferred)
        except BaseException:
            for _, key in later:  # the next run takes them at once, not after their lease
                self.outbox.release(key, "put aside after a failed read when the run stopped")
            raise
        return reports

    def _take_again(self, key: str, reports: list[Report], later: list[tuple[float, str]],
                    deferred: Counter[str]) -> None:
        """A row put aside, as it is now (an in-flight mark, say), if it is still this run's: a run slower than the
        lease may have lost it to another, which then sends it; this one must not."""
        row = self.outbox.get(key)
        if row.status != SENDING or row.last_run_id != self.run_id:
            self.log(f"{key}: put aside, then taken by another run (its lease ran out); left to that run")
            return
        self._take(row, reports, later, deferred)

    def _take(self, row: OutboxRow, reports: list[Report], later: list[tuple[float, str]],
              deferred: Counter[str]) -> None:
        self._may_defer = deferred[row.key] < DEFERRALS_PER_RUN
        report = self._handle(row)
        if isinstance(report, _RetryLater):
            deferred[row.key] += 1
            heapq.heappush(later, (report.at, row.key))
        else:
            reports.append(report)

    def _read(self, resource: str, key: str) -> dict[str, Any]:
        """`GET /{resource}/{key}`, or _RetryLater when it failed (or must repeat a GET sent within the minute)
        and the row may be put aside (see `run`); a client without `retry_at` (a test's fake) just reads."""
        retry_at = getattr(self.client, "retry_at", None)
        if retry_at is None or not self._may_defer:
            return self.client.get_detail(resource, key)
        path = detail_path(resource, key)
        if retry_at(path) > time.time() + 1.0:
            raise _RetryLater(retry_at(path))
        try:
            return self.client.get_detail_with_text(resource, key, retry_failures=False)[0]
        except PrecoroError as error:
            if not retry_later("GET", error):
                raise
            self.log(f"GET {path} failed ({_error_text(error)}); taking the other rows first")
            raise _RetryLater(retry_at(path)) from None

    def _handle(self, row: OutboxRow) -> Report | _RetryLater:
        handlers = {CREATE_PAYMENT: self._create_payment, SET_EXTERNAL_ID: self._patch, SET_LOG: self._patch,
                    CLEAR_LOG: self._patch, EXPORT: self._export, CREATE_RECORD: self._create_record,
                    UPDATE_RECORD: self._update_record, EXPORT_SUPPLIER: self._export_supplier}
        target = f"{row.resource}/{row.target_key}"
        try:
            done = handlers[row.kind](row)
        except _RetryLater as wait:
            return wait
        except (QuotaExhausted, PrecoroAuthError) as error:
            # nothing more can be sent in this run: leave the row for the next one and stop
            self.outbox.release(row.key, _error_text(error))
            raise
        except TRANSIENT as error:
            done = Done(PENDING, "transient error; retried by the next run", _error_text(error))
        except PrecoroError as error:  # Precoro refused (400, 404, ...): its answer, verbatim
            done = Done(FAILED, "Precoro refused the request", _error_text(error))
        except Exception as error:  # noqa: BLE001 - one row's fault (an unreadable export file, bad data) is its own
            # failed, not left in `sending` with the rest of the run abandoned; an in-flight mark stays, so a retry
            # (--retry-failed) checks Precoro before sending anything again
            logger.warning("write-back of %s failed", target, exc_info=True)
            done = Done(FAILED, "failed on this row; the others went on", f"{type(error).__name__}: {error}",
                        keep_in_flight=True)
        if done.status == PENDING:
            if row.attempts >= MAX_ATTEMPTS:
                done = Done(FAILED, f"gave up after {row.attempts} attempts", done.last_error, keep_in_flight=True)
            else:
                self.outbox.release(row.key, done.last_error or done.outcome)
        if done.status != PENDING:
            self.outbox.finish(row.key, done.status, done.outcome, done.last_error, done.keep_in_flight)
        final = self.outbox.get(row.key)
        self.log(f"{row.kind} {target}: {done.status} - {done.outcome}"
                 + (f" ({done.last_error})" if done.last_error else ""))
        return Report(row.key, row.kind, target, done.status, done.outcome, final.sent_request, done.last_error)

    # ---- POST /payments ---------------------------------------------------------------------------------------

    def _create_payment(self, row: OutboxRow) -> Done:
        amount = Decimal(row.payload["amount"])
        pay_date = date.fromisoformat(row.payload["pay_date"])
        known_at_reconciliation = set(row.payload.get("known_payment_ids") or [])
        in_flight = row.in_flight
        last_error = None
        for _ in range(POST_TRIES_PER_RUN):
            invoice = self._read("invoices", row.target_key)
            payments = invoice_payments(invoice)
            if in_flight is not None:  # an earlier POST may have landed: adopt it rather than pay twice
                landed = find_payment(payments, amount, pay_date, set(in_flight["payment_ids_before"]))
                if landed is not None:
                    return Done(SENT, f"adopted Precoro payment {landed.idn} (id {landed.id}): the earlier POST "
                                      "landed although its answer was lost")
            elsewhere = find_payment(payments, amount, pay_date, known_at_reconciliation)
            if elsewhere is not None:
                return Done(SKIPPED, f"already recorded in Precoro as payment {elsewhere.idn} (id {elsewhere.id}), "
                                     "same amount and date, not by this outbox")
            refusal = cannot_pay(invoice, amount)
            if refusal is not None:
                return Done(SKIPPED, refusal)
            in_flight = {"payment_ids_before": sorted(p.id for p in payments),
                         "sum_paid_before": str(invoice.get("sumPaid")), "run_id": self.run_id}
            self.outbox.mark_in_flight(row.key, in_flight, payment_request(row))
            try:
                answer = self.client.create_payment(int(row.payload["invoice_id"]), amount, pay_date)
            except PrecoroValidationError as error:
                return Done(FAILED, "Precoro refused the payment", _error_text(error))
            except TRANSIENT as error:
                last_error = _error_text(error)  # the payment may exist now: re-read before anything else
                self.log(f"POST /payments for invoice idn {row.target_key}: no usable answer ({last_error}); "
                         "reading the invoice again before any retry")
                continue
            answer = answer if isinstance(answer, dict) else {}
            return Done(SENT, f"created Precoro payment {answer.get('idn')} (id {answer.get('id')})")
        return Done(PENDING, "the payment's outcome is unknown; the next run checks the invoice first", last_error)

    # ---- PATCH externalId / externalIntegrationLog -----------------------------------------------------------

    def _patch(self, row: OutboxRow) -> Done:
        record = self._read(row.resource, row.target_key)
        wanted: dict[str, str] = row.payload["fields"]
        current_link = record.get("externalId") or ""
        if "externalId" in wanted and current_link and current_link != wanted["externalId"]:
            return Done(SKIPPED, f"externalId is already {current_link!r} in Precoro; not overwriting it with "
                                 f"{wanted['externalId']!r}")
        todo = {name: value for name, value in wanted.items() if (record.get(name) or "") != value}
        if not todo:
            return Done(SKIPPED, f"already true in Precoro: {', '.join(f'{k}={v!r}' for k, v in wanted.items())}")
        return self._send_patch(row, todo)

    def _send_patch(self, row: OutboxRow, fields: dict[str, str], outcome: str | None = None,
                    status: str = SENT, error: str | None = None) -> Done:
        self.outbox.note_request(row.key, patch_request(row.resource, row.target_key, fields))
        self.client.patch_external(row.resource, row.target_key, external_id=fields.get("externalId"),
                                   external_integration_log=fields.get("externalIntegrationLog"))
        return Done(status, outcome or f"set {', '.join(f'{k}={v!r}' for k, v in fields.items())}", error)

    # ---- export to the accounting side -----------------------------------------------------------------------

    def _export(self, row: OutboxRow) -> Done:
        record = self._read(row.resource, row.target_key)
        if record.get("externalId"):
            return Done(SKIPPED, f"already linked to {record['externalId']!r} in Precoro")
        supplier = (record.get("supplier") or {}).get("name") or row.payload["supplier"]
        number = record.get("invoiceNumber") or row.payload["number"]
        amount = Decimal(str(record.get("sum", row.payload["amount"])))
        if row.resource == "purchaseorders":
            kind = PURCHASE_ORDER
        elif record.get("logicType") in CREDIT_NOTE_LOGIC_TYPES:  # said so, with the sign the ledger's bills use
            kind, amount = CREDIT_NOTE, -abs(amount)
        else:
            kind = BILL
        document = ExportDocument(row.resource, row.target_key, record.get("id"), supplier, str(number), amount,
                                  record.get("currency") or row.payload["currency"], kind)
        answer = self.sink.offer(document)
        log = record.get("externalIntegrationLog") or ""
        if answer.accepted:
            fields = {"externalId": answer.external_id or ""}
            if log:
                fields["externalIntegrationLog"] = ""  # the earlier sync error is resolved
            return self._send_patch(row, fields, f"exported to {self.sink.name} as {answer.external_id}; linked")
        text = EXPORT_LOG_PREFIX + (answer.error or "refused without a reason")
        refused = f"the accounting side refused it: {answer.error}"
        if log == text:
            return Done(FAILED, "refused again; Precoro already shows the error", refused)
        return self._send_patch(row, {"externalIntegrationLog": text}, "refused by the accounting side; "
                                "externalIntegrationLog set", status=FAILED, error=refused)

    # ---- the catalogue sync: POST a record, PUT the differing fields ------------------------------------------

    def _create_record(self, row: OutboxRow) -> Done:
        payload = row.payload
        what = f"{row.resource} {payload.get('name')!r} (externalId {payload['form'].get('externalId')!r})"
        may_exist = row.in_flight is not None
        last_error = None
        for _ in range(POST_TRIES_PER_RUN):
            if may_exist:  # an earlier POST may have landed without its answer: find it before sending again
                found = find_created(self.client, payload["lookup"])
                if found is not None:
                    return Done(SENT, f"adopted {what}, id {found.get('id')}: the earlier POST landed although its "
                                      "answer was lost")
            self.outbox.mark_in_flight(row.key, {"run_id": self.run_id}, record_request(row))
            try:
                answer = self.client.post(payload["path"], payload["form"])
            except PrecoroValidationError as error:
                return Done(FAILED, "Precoro refused the record", _error_text(error))
            except TRANSIENT as error:
                last_error, may_exist = _error_text(error), True
                self.log(f"POST {payload['path']} for {what}: no usable answer ({last_error}); looking it up by "
                         "externalId before any retry")
                continue
            answer = answer if isinstance(answer, dict) else {}
            return Done(SENT, f"created {what} as id {answer.get('id')}")
        return Done(PENDING, "whether the record was created is unknown; the next run looks it up first", last_error)

    def _update_record(self, row: OutboxRow) -> Done:
        fields = row.payload["fields"]
        self.outbox.note_request(row.key, record_request(row))
        try:
            self.client.put(row.payload["path"], fields)
        except PrecoroValidationError as error:
            return Done(FAILED, "Precoro refused the change", _error_text(error))
        return Done(SENT, f"set {', '.join(fields)} on {row.resource} {row.target_key}")

    def _export_supplier(self, row: OutboxRow) -> Done:
        record = self._read("suppliers", row.target_key)
        if record.get("externalId"):
            return Done(SKIPPED, f"already linked to {record['externalId']!r} in Precoro")
        currencies = tuple(str(c) for c in (record.get("currencies") or []))
        vendor = ExportVendor(int(record["id"]), str(record.get("name") or row.payload["name"]),
                              record.get("currency"), currencies, record.get("taxPayerNumber"),
                              record.get("legalAddress"))
        answer = self.sink.offer_vendor(vendor)
        if not answer.accepted:
            return Done(FAILED, "the accounting side refused the vendor", answer.error or "refused without a reason")
        return self._send_patch(row, {"externalId": answer.external_id or ""},
                                f"offered to {self.sink.name} as vendor {answer.external_id}; linked")


def find_created(client: Any, lookup: Mapping[str, Any]) -> dict[str, Any] | None:
    """The record a lost POST may have created: found again by its externalId (the master-data sync puts the
    lookup in the payload)."""
    if "option_external_id" in lookup:
        for custom_field in client.iter_rows(lookup["path"], params=[("id", str(lookup["id"]))]):
            if str(custom_field.get("id")) != str(lookup["id"]):
                continue
            for option in expect_list(custom_field.get("options")):
                if isinstance(option, Mapping) and option.get("externalId") == lookup["option_external_id"]:
                    return dict(option)
        return None
    found = [r for r in client.iter_rows(lookup["path"], external_id=[lookup["external_id"]])
             if r.get("externalId") == lookup["external_id"]]
    return found[0] if found else None
