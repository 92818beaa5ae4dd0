"""Reconciliation and write-back, end to end: the Dagster definitions against the simulator on localhost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from decimal import Decimal

import dagster as dg
import pytest

from precoro_assets import settings
from precoro_assets.api.quota import QuotaLimits
from precoro_assets.reconcile.records import (
    AMBIGUOUS,
    AMOUNT_MISMATCH,
    CLASSES,
    CURRENCY_MISMATCH,
    LINK_MISMATCH,
    MATCHED,
    NEEDS_REVIEW,
    PAID_IN_LEDGER_ONLY,
    PAID_IN_PRECORO_ONLY,
    UNMATCHED,
)
from precoro_assets.settings import ledger_dir
from precoro_assets.writeback.outbox import DONE
from precoro_assets.writeback.proposals import CREATE_PAYMENT, EXPORT, SET_EXTERNAL_ID, SET_LOG
from tests.reconcile.reconcile_support import SEND, money
from tests.support.precoro_env import idle_after_failures

pytestmark = pytest.mark.e2e  # a simulator on a socket or child processes: in make test, not in make test-fast


# What each scenario of the demo ledger (precoro_sim/demo_ledger.py records them in scenarios.json) must come out as.
SCENARIO_CLASSES = {
    "paid_in_ledger_not_precoro": PAID_IN_LEDGER_ONLY, "partial_payment": PAID_IN_LEDGER_ONLY,
    "rest_of_partial_payment": PAID_IN_LEDGER_ONLY, "ambiguous_duplicate": AMBIGUOUS,
    "paid_in_precoro_not_ledger": PAID_IN_PRECORO_ONLY, "amount_mismatch": AMOUNT_MISMATCH,
    "currency_mismatch": CURRENCY_MISMATCH, "link_mismatch": LINK_MISMATCH, "matched": MATCHED, "booked": MATCHED,
    "booked_to_link": MATCHED,
    "fixed_sync_error": MATCHED, "credit_note": MATCHED, "to_export": UNMATCHED,
    "payment_needs_review": NEEDS_REVIEW,
}


def sent_writes(rows) -> Counter:
    """The write requests the outbox says it sent, as (method, path) -> count."""
    return Counter(tuple(row.sent_request.split(" ")[:2]) for row in rows if row.sent_request)


def test_every_invoice_and_ledger_record_is_classified_and_queryable(env):
    metadata = env.reconcile()

    # split-cost children are allocations of their base, which is reconciled in their stead
    invoices = sorted(idn for (idn,) in env.query("SELECT idn FROM precoro.invoices WHERE parent_idn IS NULL"))
    rows = env.query("SELECT invoice_idn, class, reason FROM precoro.reconciliation_invoices")
    assert sorted(idn for idn, _, _ in rows) == invoices  # every invoice, once
    assert all(klass in CLASSES and reason for _, klass, reason in rows)
    classes = {idn: klass for idn, klass, _ in rows}

    loaded = sorted([("payment", i) for (i,) in env.query("SELECT payment_id FROM precoro.ledger_payments")]
                    + env.query("SELECT kind, bill_id FROM precoro.ledger_bills"))
    ledger = env.query("SELECT ledger_kind, ledger_id, class, reason FROM precoro.reconciliation_ledger")
    assert sorted((kind, ledger_id) for kind, ledger_id, _, _ in ledger) == loaded  # every ledger record, once
    assert all(klass in CLASSES and reason for _, _, klass, reason in ledger)

    # totals per class in the materialization metadata agree with the tables, every class listed
    invoice_counts, ledger_counts = Counter(classes.values()), Counter(k for _, _, k, _ in ledger)
    for klass in CLASSES:
        assert metadata["precoro/reconciliation_invoices"][f"invoices: {klass}"] == invoice_counts[klass]
        assert metadata["precoro/reconciliation_ledger"][f"ledger: {klass}"] == ledger_counts[klass]
    assert set(invoice_counts) == set(CLASSES)  # the demo ledger shows every class

    # each disagreement the demo ledger was built with is found, on the invoice it was built on
    scenarios = json.loads((ledger_dir() / "scenarios.json").read_text())
    checked = 0
    for scenario, expected in SCENARIO_CLASSES.items():
        for idn in scenarios.get(scenario, []):
            assert classes[idn] == expected, (scenario, idn, [r for r in rows if r[0] == idn])
            checked += 1
    assert checked > 40

    # bad rows are reported with file and line, and kept out of the ledger tables
    rejected = env.query("SELECT file, line, reason FROM precoro.ledger_rejected_rows")
    raw_lines = (ledger_dir() / "payments.csv").read_bytes().split(b"\n")
    bad = {number for number, line in enumerate(raw_lines, start=1) if line.startswith((b"BAD-", b"SHORT-"))}
    assert len(bad) == 5
    assert {line for file, line, _ in rejected if file == "payments.csv"} == bad
    assert ("bills_2024_archive.csv", 1) in {(file, line) for file, line, _ in rejected}
    assert env.query("SELECT count(*) FROM precoro.ledger_payments WHERE payment_id LIKE 'BAD-%'") == [(0,)]
    assert metadata["precoro/ledger_payments"]["rejected rows"] == len(rejected)
    # every data line that was not rejected was loaded
    assert len(raw_lines) - 2 - len(bad) == env.query("SELECT count(*) FROM precoro.ledger_payments")[0][0]

    # money is DECIMAL, and every new table and column is described
    types = dict(env.query("SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'precoro' "
                           "AND table_name = 'reconciliation_invoices' AND database_name = current_database()"))
    assert types["precoro_total"] == types["ledger_paid"] == "DECIMAL(18,2)"
    undescribed = env.query(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'precoro' AND database_name = "
        "current_database() AND (table_name LIKE 'ledger%' OR table_name LIKE 'reconciliation%' OR table_name = "
        "'writeback_outbox') AND (comment IS NULL OR comment = '')")
    assert undescribed == []

    # analysts get the same answer from the CLI
    cli = subprocess.run(
        [sys.executable, "-m", "precoro_sim.cli", "sql", "--format", "json",
         "SELECT class, count(*) AS n FROM precoro.reconciliation_invoices GROUP BY class"],
        env=os.environ, capture_output=True, text=True, timeout=120, check=True)
    assert {row["class"]: row["n"] for row in json.loads(cli.stdout)} == dict(invoice_counts)

    # `precoro-assets writeback` (no --send) lists every queued write-back and sends nothing, reads nothing
    mark = env.request_mark()
    cli = subprocess.run([sys.executable, "-m", "precoro_sim.cli", "writeback"], env=os.environ,
                         capture_output=True, text=True, timeout=180, check=True)
    listed = [line for line in cli.stdout.splitlines() if line.startswith("would send")]
    assert len(listed) == len(env.outbox.rows()) and "nothing was sent" in cli.stdout
    assert sum(" POST /payments " in line for line in listed) == len(
        [r for r in env.outbox.rows() if r.kind == CREATE_PAYMENT])
    assert env.requests_since(mark) == [] and {r.status for r in env.outbox.rows()} == {"pending"}


def test_a_dry_run_sends_nothing_and_sending_writes_exactly_the_outbox_once(env):
    env.reconcile()
    proposed = env.outbox.rows()
    assert proposed and {r.status for r in proposed} == {"pending"}
    assert {r.kind for r in proposed} >= {CREATE_PAYMENT, SET_EXTERNAL_ID, EXPORT}

    # the sensor launches one write-back run for this reconciliation, and only once
    sensor = env.defs.resolve_sensor_def("precoro_writeback")
    with dg.build_sensor_context(instance=env.instance, definitions=env.defs, resources=env.defs.resources) as ctx:
        tick = sensor.evaluate_tick(ctx)
    assert len(tick.run_requests) == 1 and tick.run_requests[0].run_key.startswith("writeback:")
    with dg.build_sensor_context(instance=env.instance, definitions=env.defs, resources=env.defs.resources,
                                 cursor=tick.cursor) as ctx:
        assert sensor.evaluate_tick(ctx).run_requests == []

    # what the sensor launches is a dry run: it lists every row and sends (or even reads) nothing
    mark = env.request_mark()
    dry = env.writeback(tick.run_requests[0].run_config)
    assert not dry["send"] and len(dry["reports"]) == len(proposed)
    assert all(report["request"] for report in dry["reports"])
    assert env.requests_since(mark) == []
    assert {r.status for r in env.outbox.rows()} == {"pending"}
    assert not (ledger_dir() / "export").exists()

    # sending: Precoro receives exactly the writes the outbox records, nothing else
    payments_before = {p["id"] for p in env.export("payments")}
    mark = env.request_mark()
    sent = env.writeback(SEND)
    assert sent["send"] and len(sent["reports"]) == len(proposed)
    rows = env.outbox.rows()
    assert {r.status for r in rows} <= set(DONE)
    assert env.writes_since(mark) == sent_writes(rows)
    assert all(r.last_error for r in rows if r.status == "failed")
    assert all(r.outcome for r in rows)

    # each payment sent is in Precoro once, on its invoice, with its amount and date
    creates = [r for r in rows if r.kind == CREATE_PAYMENT and r.status == "sent"]
    assert creates
    new = [p for p in env.export("payments") if p["id"] not in payments_before]
    assert sorted((str(p["invoice"]["idn"]), money(p["sumPaid"]), p["payDate"][:10]) for p in new) == sorted(
        (r.target_key, Decimal(r.payload["amount"]), r.payload["pay_date"]) for r in creates)
    # and every PATCH left Precoro holding what the outbox asked for
    records = {(resource, str(r["idn"])): r for resource in ("invoices", "payments", "purchaseorders")
               for r in env.export(resource)}
    patched = [r for r in rows if r.status == "sent" and "fields" in r.payload]
    assert patched
    for row in patched:
        for name, value in row.payload["fields"].items():
            assert (records[(row.resource, row.target_key)].get(name) or "") == value, row

    # the analysts' copy in the warehouse follows the queue
    assert dict(env.query("SELECT status, count(*) FROM precoro.writeback_outbox GROUP BY 1")) == dict(
        Counter(r.status for r in rows))

    # a second run has nothing to send; re-running reconciliation queues nothing again, revives nothing
    mark = env.request_mark()
    assert env.writeback(SEND)["reports"] == []
    assert env.requests_since(mark) == []
    assert env.reconcile()["precoro/writeback_outbox"]["newly queued"] == 0
    assert {r.key: r.status for r in env.outbox.rows()} == {r.key: r.status for r in rows}


def test_lost_responses_5xx_and_resets_converge_without_duplicate_payments(env):
    env.reconcile()
    proposed = env.outbox.rows()
    creates = [r for r in proposed if r.kind == CREATE_PAYMENT]
    assert len(creates) >= 3
    for fault in (
        {"kind": "lost_response", "method": "POST", "path": "/payments", "count": 2},  # applied, answer dropped
        {"kind": "error", "status": 502, "method": "POST", "path": "/payments", "count": 1},
        {"kind": "reset", "method": "PATCH", "count": 2},
        {"kind": "error", "status": 500, "method": "PATCH", "after": 3, "count": 2},
        {"kind": "error", "status": 503, "method": "GET", "path": "/invoices/{idn}", "after": 2, "count": 2},
        {"kind": "reset", "method": "GET", "path": "/purchaseorders/{idn}", "count": 1},
    ):
        env.control("POST", "faults", json=fault)
    payments_before = {p["id"] for p in env.export("payments")}

    runs = 0
    while runs == 0 or env.outbox.counts()["pending"]:
        env.writeback(SEND)
        runs += 1
        assert runs <= 5, env.outbox.counts()
    injected = env.control("GET", "stats")["faults_injected"]
    assert injected.get("lost_response") == 2 and injected.get("error", 0) >= 3 and injected.get("reset", 0) >= 3

    rows = env.outbox.rows()
    assert {r.status for r in rows} <= set(DONE)
    assert all(r.outcome for r in rows if r.status == "skipped")
    assert all(r.last_error for r in rows if r.status == "failed")
    sent = [r for r in rows if r.kind == CREATE_PAYMENT and r.status == "sent"]
    assert any("adopted" in r.outcome for r in sent)  # a lost answer was detected, not paid twice
    new = Counter((str(p["invoice"]["idn"]), money(p["sumPaid"]), p["payDate"][:10])
                  for p in env.export("payments") if p["id"] not in payments_before)
    assert new == Counter((r.target_key, Decimal(r.payload["amount"]), r.payload["pay_date"]) for r in sent)
    assert all(money(i["sumPaid"]) <= money(i["sum"]) for i in env.export("invoices"))


def test_failed_reads_of_a_write_back_wait_out_their_identical_get_minutes_together(env, monkeypatch,
                                                                                     suite_definitions):
    """Each row is read again before it is written, and Precoro forbids repeating a GET within 60 s: a row whose
    read failed is put aside until its minute has passed while the other rows go, so failures cost the run about
    one minute, not one each (15 writes once took 646 s with a 500 on every 7th request)."""
    scale = 20  # Precoro's limits sped up 20x in the client: a 3 s identical-GET window
    monkeypatch.setenv("PRECORO_TIME_SCALE", str(scale))
    config = settings.load()
    slow = type(env)(env.sim, config, suite_definitions(config), env.instance)  # with the short request timeout
    slow.reconcile()
    rows = slow.outbox.rows()
    payments_before = {p["id"] for p in slow.export("payments")}
    slow.control("POST", "faults", json={"kind": "error", "method": "GET", "every": 3, "count": None})
    window = QuotaLimits(time_scale=scale).identical_get_window
    mark = slow.request_mark()

    slow.writeback(SEND)

    log = slow.requests_since(mark)
    failed, chain, idle = idle_after_failures(log)
    assert len(failed) >= 3 * (chain + 1), "the premise: many more failed reads than the longest chain"
    assert idle < (chain + 1) * window, \
        f"{len(failed)} failed reads (at most {chain} of one URL) left the run idle {idle:.1f} s (window {window:.2f} s)"
    assert slow.outbox.counts()["pending"] == 0 and len(slow.outbox.rows()) == len(rows)
    sent = [r for r in slow.outbox.rows() if r.kind == CREATE_PAYMENT and r.status == "sent"]
    new = Counter((str(p["invoice"]["idn"]), money(p["sumPaid"]), p["payDate"][:10])
                  for p in slow.export("payments") if p["id"] not in payments_before)
    assert sent and new == Counter((r.target_key, Decimal(r.payload["amount"]), r.payload["pay_date"]) for r in sent)


def test_after_write_back_and_a_fresh_sync_the_invoices_reconcile(env):
    env.reconcile()
    before = {idn: klass for idn, klass in env.query("SELECT invoice_idn, class FROM precoro.reconciliation_invoices")}
    env.writeback(SEND)
    rows = env.outbox.rows()
    paid = {r.target_key for r in rows if r.kind == CREATE_PAYMENT and r.status == "sent"}
    fields = [r for r in rows if r.resource == "invoices" and r.status == "sent" and "fields" in r.payload]
    exported = {r.target_key for r in rows if r.kind == EXPORT and r.resource == "invoices" and r.status == "sent"}
    assert paid and fields and exported

    env.sync()
    env.reconcile()
    assert env.unknown_parameters() == []  # sync, reconcile, write-back: every parameter sent is a named one
    after = {row[0]: row[1:] for row in env.query(
        "SELECT invoice_idn, class, external_id, external_integration_log FROM precoro.reconciliation_invoices")}
    assert all(after[idn][0] == MATCHED for idn in paid), {idn: after[idn] for idn in paid}
    assert all(after[idn][0] == MATCHED for idn, klass in before.items() if klass == MATCHED)
    for row in fields:  # links and "Not synced" texts are in Precoro now (and in the synced warehouse)
        values = row.payload["fields"]
        if "externalId" in values:
            assert after[row.target_key][1] == values["externalId"]
        if "externalIntegrationLog" in values:
            assert (after[row.target_key][2] or "") == values["externalIntegrationLog"]
    assert all((after[idn][1] or "").startswith("ACC-BILL-") for idn in exported)

    # what is left: linking the payments just created to their ledger payments, and flagging invoices that
    # were exported while already paid in Precoro (the accounting side has the bill now, not the payment)
    pending = [r for r in env.outbox.rows() if r.status == "pending"]
    created = {str(p["idn"]) for p in env.export("payments") if str(p["invoice"]["idn"]) in paid}
    links = [r for r in pending if r.kind == SET_EXTERNAL_ID and r.resource == "payments"]
    assert links and {r.target_key for r in links} <= created
    for row in pending:
        if row not in links:
            assert row.kind == SET_LOG and row.target_key in exported, row
            assert after[row.target_key][0] == PAID_IN_PRECORO_ONLY


def test_the_cli_reconciles_and_writes_back_quietly_and_ends_with_a_tally(env):
    def cli(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "precoro_sim.cli", *args], env=os.environ,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert " - dagster - " not in done.stdout + done.stderr  # no event log unless --verbose
        return done

    reconciled = cli("reconcile")
    rows = env.query("SELECT count(*) FROM precoro.ledger_rejected_rows WHERE line > 1")[0][0]
    assert rows and f"{rows} ledger row(s) rejected" in reconciled.stdout  # the archive file is named apart
    assert len(reconciled.stdout.splitlines()) <= 8

    rows = env.outbox.rows()
    dry = cli("writeback")
    assert len(dry.stdout.splitlines()) == len(rows) + 1  # each write once, then what to do

    sent = cli("writeback", "--send")
    statuses = Counter(r.status for r in env.outbox.rows())
    assert sent.stdout.splitlines()[-1] == (f"{statuses['sent']} sent, {statuses['skipped']} skipped, "
                                            f"{statuses['failed']} failed")


def test_checks_warn_of_rejected_ledger_rows_and_of_every_difference_by_class(env):
    from tests.reconcile.reconcile_support import checks_of

    result = env.materialize_keys(["precoro/ledger_payments", "precoro/ledger_bills",
                                   "precoro/reconciliation_invoices", "precoro/reconciliation_ledger",
                                   "precoro/writeback_outbox"])
    checks = checks_of(result)
    rejected = env.query("SELECT count(*) FROM precoro.ledger_rejected_rows")[0][0]
    assert not checks["no_rejected_rows"].passed and checks["no_rejected_rows"].severity.value == "WARN"
    assert checks["no_rejected_rows"].metadata["rejected rows"].value == rejected > 0

    invoices = checks[("all_reconciled", "precoro/reconciliation_invoices")]
    counts = dict(env.query("SELECT class, count(*) FROM precoro.reconciliation_invoices GROUP BY 1"))
    differing = {k: n for k, n in counts.items() if k not in (MATCHED, UNMATCHED)}
    assert not invoices.passed and invoices.severity.value == "WARN"
    assert {k.removeprefix("invoices: "): v.value for k, v in invoices.metadata.items()
            if k.startswith("invoices: ")} == differing


def test_an_amount_too_large_for_the_warehouse_is_one_rejected_row_and_the_rest_reconciles(env):
    env.reconcile()
    before = env.query("SELECT count(*) FROM precoro.ledger_payments")[0][0]
    path = ledger_dir() / "payments.csv"
    lines = path.read_bytes().count(b"\n")
    with open(path, "a", encoding="utf-8") as handle:  # 30 digits: Decimal's default precision is 28
        handle.write(f"HUGE-1,,Some Supplier,INV-1,{'9' * 30},EUR,2026-11-02\n")
    env.reconcile()

    assert env.query("SELECT count(*) FROM precoro.ledger_payments")[0][0] == before > 0
    assert env.query("SELECT count(*) FROM precoro.reconciliation_ledger WHERE ledger_kind = 'payment'")[0][0] == before
    [(reason,)] = env.query("SELECT reason FROM precoro.ledger_rejected_rows WHERE file = 'payments.csv' AND line = ?",
                            [lines + 1])
    assert "out of range" in reason and "DECIMAL(18,2)" in reason


def test_a_ledger_file_still_being_written_fails_the_load_and_the_previous_load_stays(env, monkeypatch,
                                                                                      suite_definitions):
    from precoro_assets.ledger import files

    env.reconcile()
    loaded = env.query("SELECT count(*), max(loaded_at) FROM precoro.ledger_payments")[0]
    monkeypatch.setenv(settings.ENV_SETTLE_SECONDS, "3600")  # as if the exporter wrote it a moment ago, again and again
    env.defs = suite_definitions(settings.load())  # the code location reads it when it loads
    monkeypatch.setattr(files, "WAIT_SECONDS", 0.3)
    result = env.materialize_keys(["precoro/ledger_payments", "precoro/ledger_bills"], raise_on_error=False)

    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "is still being written" in message and "the previous load stays" in message
    assert env.query("SELECT count(*), max(loaded_at) FROM precoro.ledger_payments")[0] == loaded
