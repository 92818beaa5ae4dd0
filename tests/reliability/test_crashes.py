"""kill -9 in every phase of a run: while listing, while writing the warehouse, between a payment POST and
recording it. After each kill an analyst sees nothing partial, the retry loses and duplicates nothing, and it
does not pay again for the requests the killed run already spent (counted from the simulator's request log).

Killed while fetching details: tests/ingest/test_robustness.py
(test_a_run_killed_mid_partition_leaves_the_day_intact_and_its_retry_reuses_paid_details), not repeated here.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from precoro_assets.warehouse.staging import DetailStaging
from tests.ingest.test_robustness import (
    ASSET,
    INVOICES,
    RUN_PARTITION,
    RUN_TIMEOUT_S,
    busiest_days,
    dagster_home,
    day_snapshot,
    detail_gets,
    invoices_of,
    kill_run,
    metadata_of,
    on_days,
    patch_external_ids,
    process_env,
    spawn,
    start_cli,
    stop,
)
from tests.ingest.truth import differences

# Crash safety holds with the shared state in SQLite files and in PostgreSQL (tests/conftest.py).
# e2e: a simulator on a socket, a server or a child process (make test runs it, make test-fast does not)
pytestmark = [pytest.mark.usefixtures("state_backend"), pytest.mark.e2e]

LIST = "/invoices"
# a day's invoices take one list page, and its credit notes, listed apart as Precoro's own connector does, another
LIST_PAGES_OF_A_DAY = 2

# A partition run (as RUN_PARTITION) whose warehouse write, once its rows are inserted and before COMMIT, says
# so in a marker file and then hangs: it holds the write lock and an open transaction when it is killed.
RUN_WITH_SLOW_WRITE = """
import sys, time, pathlib
from precoro_assets.warehouse import tables

real_insert_rows = tables.insert_rows
def insert_then_hang(con, entity, rows):
    written = real_insert_rows(con, entity, rows)
    pathlib.Path(sys.argv[3]).write_text("inside the transaction")
    time.sleep(float(sys.argv[4]))
    return written
tables.insert_rows = insert_then_hang
""" + RUN_PARTITION


def list_gets(log: list[dict]) -> list[dict]:
    return [r for r in log if r["method"] == "GET" and r["path"] == LIST]


def lock_is_free(env) -> bool:
    return env.warehouse.write_lock_is_free()


def wait_until(condition, run, output: Path, what: str) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not condition():
        assert run.poll() is None, f"the run ended by itself before {what}:\n{output.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{output.read_text()[-4000:]}"
        time.sleep(0.05)


def prepared_day(env) -> tuple[str, dict, list[str]]:
    """A busy day synced into the warehouse, then changed in Precoro: (day, what an analyst sees, changed idns)."""
    day = busiest_days(env, 1)[0]
    assert env.materialize(ASSET, partition=day).success
    before = day_snapshot(env, day)
    changed = invoices_of(env, day)[:5]
    patch_external_ids(env, changed, "crash")
    return day, before, changed


# ---- killed while listing --------------------------------------------------------------------------------------

def test_a_run_killed_while_listing_changes_nothing_and_its_retry_spends_only_what_is_needed(env, tmp_path):
    day, before, changed = prepared_day(env)
    env.control("POST", "faults", json={"kind": "slow", "seconds": 30, "method": "GET", "path": LIST,
                                        "count": None})
    _, mark = env.request_log()
    output = tmp_path / "killed-listing.log"
    run = start_cli(dagster_home(tmp_path, "dagster-killed"), day, output)
    try:
        wait_until(lambda: list_gets(env.request_log(mark)[0]), run, output, "the list request")
        time.sleep(0.2)
        assert run.poll() is None
        kill_run(run)
    finally:
        stop(run)
    killed, mark = env.request_log(mark)
    assert [r["status"] for r in list_gets(killed)] == [None] and detail_gets(killed) == []  # killed mid-list

    assert day_snapshot(env, day) == before  # nothing of the killed run is visible
    assert DetailStaging(env.config.state_dir, env.config.database_url_value).count(INVOICES.name) == 0
    assert lock_is_free(env)

    env.control("DELETE", "faults")
    result = env.materialize(ASSET, partition=day)
    assert result.success
    retry, _ = env.request_log(mark)
    # one list walk (a page for this day, and one of its credit notes) and one detail per changed invoice: the
    # minimum, nothing twice
    assert len(list_gets(retry)) == LIST_PAGES_OF_A_DAY and len(detail_gets(retry)) == len(changed)
    assert len({r["url"] for r in detail_gets(retry)}) == len(changed)
    assert metadata_of(result)["changed"] == len(changed)
    assert differences(env, INVOICES, on_days(day)) == []


# ---- killed while writing the warehouse ---------------------------------------------------------------------------

def start_slow_writer(env, day: str, marker: Path, output: Path, hang_seconds: float = 600):
    return spawn([sys.executable, "-c", RUN_WITH_SLOW_WRITE, ASSET, day, str(marker), str(hang_seconds)],
                 process_env(), output)


def test_a_run_killed_while_it_holds_the_write_lock_leaves_the_old_day_and_its_retry_fetches_nothing_again(
        env, tmp_path):
    day, before, changed = prepared_day(env)
    _, mark = env.request_log()
    marker, output = tmp_path / "inside", tmp_path / "killed-writing.log"
    run = start_slow_writer(env, day, marker, output)
    try:
        wait_until(marker.exists, run, output, "the write transaction")
        # mid-transaction: the lock is held, and an analyst still reads the day as it was
        assert not lock_is_free(env)
        assert day_snapshot(env, day) == before
        kill_run(run)
    finally:
        stop(run)
    killed, mark = env.request_log(mark)
    assert len(detail_gets(killed)) == len(changed)  # the killed run had paid for every changed detail

    assert lock_is_free(env)  # the kernel dropped the dead writer's lock
    assert day_snapshot(env, day) == before  # its transaction never committed: not one row of it is visible
    assert DetailStaging(env.config.state_dir, env.config.database_url_value).count(INVOICES.name) == len(changed)

    result = env.materialize(ASSET, partition=day)
    assert result.success
    retry, _ = env.request_log(mark)
    assert len(list_gets(retry)) == LIST_PAGES_OF_A_DAY and detail_gets(retry) == []  # no detail paid for twice
    assert metadata_of(result)["details reused from a failed run"] == len(changed)
    assert differences(env, INVOICES, on_days(day)) == []
    assert env.query("SELECT count(*) - count(DISTINCT idn) FROM precoro.invoices") == [(0,)]


@pytest.mark.reliability
def test_kills_at_random_moments_of_repeated_writes_never_leave_a_mixed_day(env, tmp_path):
    """Long version: 12 runs killed at random moments (listing, fetching, inside or after the transaction);
    after each the day is exactly the old or exactly the new version, never a mix, and nothing is refetched."""
    rng = random.Random(7)
    day = busiest_days(env, 1)[0]
    assert env.materialize(ASSET, partition=day).success
    for round_number in range(12):
        before = day_snapshot(env, day)
        changed = rng.sample(invoices_of(env, day), 3)
        patch_external_ids(env, changed, f"round{round_number}")
        _, mark = env.request_log()
        marker, output = tmp_path / f"inside-{round_number}", tmp_path / f"run-{round_number}.log"
        # the write hangs only briefly, so the kill lands before, during or after the transaction
        run = start_slow_writer(env, day, marker, output, hang_seconds=rng.choice([0.0, 0.3, 2.0]))
        try:
            time.sleep(rng.uniform(0.5, 6.0))
            if run.poll() is None:
                kill_run(run)
        finally:
            stop(run)
        assert lock_is_free(env)
        seen = day_snapshot(env, day)
        env.control("DELETE", "faults")
        killed, mark = env.request_log(mark)
        paid = {r["url"] for r in detail_gets(killed)}
        result = env.materialize(ASSET, partition=day)
        assert result.success, round_number
        after_commit = day_snapshot(env, day)
        assert seen in (before, after_commit) or _same_documents(seen, after_commit), round_number
        retry, _ = env.request_log(mark)
        assert not paid & {r["url"] for r in detail_gets(retry)}, round_number  # nothing bought twice
        assert differences(env, INVOICES, on_days(day)) == [], round_number


def _same_documents(seen: dict, complete: dict) -> bool:
    """A killed run that did commit holds the new version (only synced_at differs from the retry's rewrite)."""
    def strip(snapshot):
        return {table: sorted(repr(row[:-1]) for row in rows) for table, rows in snapshot.items()}
    return strip(seen) == strip(complete)


# ---- killed between a payment POST and recording it ---------------------------------------------------------------

# The write-back job with sending on, in its own process; right after Precoro answers its first POST /payments
# (before the executor records the answer) it writes a marker file and hangs, to be killed there.
RUN_WRITEBACK_THEN_HANG = """
import sys, time, pathlib
from precoro_assets.api.client import PrecoroClient
real_create_payment = PrecoroClient.create_payment
def create_then_hang(self, invoice_id, sum_paid, pay_date, logic_type=0):
    answer = real_create_payment(self, invoice_id, sum_paid, pay_date, logic_type)
    pathlib.Path(sys.argv[1]).write_text(str(invoice_id))
    time.sleep(600)
    return answer
PrecoroClient.create_payment = create_then_hang
from precoro_assets.definitions import defs

defs.resolve_job_def("precoro_writeback").execute_in_process(
    run_config={"ops": {"write_back": {"config": {"send": True}}}})
"""

SEND = {"ops": {"write_back": {"config": {"send": True}}}}
SYNCED = ["precoro/invoices", "precoro/payments", "precoro/purchase_orders"]
RECONCILIATION = ["precoro/ledger_payments", "precoro/ledger_bills", "precoro/reconciliation_invoices",
                  "precoro/reconciliation_ledger", "precoro/writeback_outbox"]


def test_a_write_back_killed_between_its_payment_post_and_recording_it_adopts_not_pays_twice(
        env, tmp_path, monkeypatch):
    from precoro_assets.settings import ledger_dir
    from precoro_assets.writeback import outbox as outbox_module
    from precoro_assets.writeback.proposals import CREATE_PAYMENT
    from precoro_sim.demo_ledger import company_from_simulator, demo_ledger_for, write_demo_ledger

    first, last = env.config.start_date.isoformat(), datetime.now(UTC).date().isoformat()
    assert env.materialize(SYNCED, partition_range=(first, last)).success
    write_demo_ledger(demo_ledger_for(company_from_simulator(env.sim.url)), ledger_dir())
    assert env.materialize(RECONCILIATION).success
    queue = outbox_module.Outbox(env.config.state_dir / "outbox.sqlite", env.config.database_url_value)
    creates = {r.key: r for r in queue.rows() if r.kind == CREATE_PAYMENT}
    assert creates
    payments_before = {p["id"] for p in env.export("payments")}

    _, mark = env.request_log()
    marker, output = tmp_path / "posted", tmp_path / "killed-writeback.log"
    run = spawn([sys.executable, "-c", RUN_WRITEBACK_THEN_HANG, str(marker)], process_env(), output)
    try:
        wait_until(marker.exists, run, output, "the payment POST")
        kill_run(run)
    finally:
        stop(run)
    killed, mark = env.request_log(mark)
    posts = [r for r in killed if r["method"] == "POST" and r["status"] == 200]
    assert len(posts) == 1  # the payment landed in Precoro; the killed run never recorded the answer
    [landed] = [p for p in env.export("payments") if p["id"] not in payments_before]
    [row] = [r for r in queue.rows() if r.status == "sending"]
    assert row.kind == CREATE_PAYMENT and row.in_flight is not None and row.target_key == str(landed["invoice"]["idn"])

    # once the dead run's lease has expired (15 minutes; here: now), the next run takes the row again
    monkeypatch.setattr(outbox_module, "LEASE", timedelta(0))
    result = env.defs.resolve_job_def("precoro_writeback").execute_in_process(instance=env.instance,
                                                                                run_config=SEND)
    assert result.success
    retry, _ = env.request_log(mark)
    adopted = queue.get(row.key)
    assert adopted.status == "sent" and "adopted" in adopted.outcome
    # exactly one payment for that invoice, amount and date, though the POST's answer was never recorded
    new = Counter((str(p["invoice"]["idn"]), Decimal(str(p["sumPaid"])), p["payDate"][:10])
                  for p in env.export("payments") if p["id"] not in payments_before)
    assert new[(row.target_key, Decimal(row.payload["amount"]), row.payload["pay_date"])] == 1
    sent = [r for r in queue.rows() if r.kind == CREATE_PAYMENT and r.status == "sent"]
    assert new == Counter((r.target_key, Decimal(r.payload["amount"]), r.payload["pay_date"]) for r in sent)
    # the retry re-read the invoice and did not POST that payment again
    retry_posts = [r for r in retry if r["method"] == "POST" and r["status"] == 200]
    assert len(retry_posts) == len(sent) - 1
    assert not [r for r in retry if r["method"] == "POST" and r["status"] is None]


# ---- a sync killed while it holds the precoro_api pool slot -------------------------------------------------------

def api_slot_holders(dagster_home: Path) -> list[str]:
    """The runs holding a slot of the precoro_api pool in the sync's Dagster instance (none before it exists)."""
    import dagster as dg

    if not (dagster_home / "dagster.yaml").exists():
        return []
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        return [slot.run_id for slot in instance.event_log_storage.get_concurrency_info("precoro_api").claimed_slots]
    finally:
        instance.dispose()


@pytest.mark.timeout(600)
def test_a_sync_killed_while_it_holds_the_api_slot_does_not_block_the_next_sync(env, tmp_path):
    from precoro_assets.catalogue import DOCUMENTS

    today = datetime.now(UTC).date()
    days = [(today - timedelta(days=n)).isoformat() for n in range(4)]
    sync = [sys.executable, "-m", "precoro_sim.cli", "sync", "--start", days[-1]]
    home = env.config.home / "dagster"  # where `sync` keeps its Dagster instance
    # every detail request hangs: the sync is killed inside a step, with the pool's only slot taken
    env.control("POST", "faults", json={"kind": "slow", "seconds": 60, "method": "GET", "path": "/invoices/{idn}",
                                        "count": None})
    output = tmp_path / "killed-sync.log"
    run = spawn(sync, process_env(), output)
    try:
        wait_until(lambda: api_slot_holders(home), run, output, "the precoro_api slot")
        kill_run(run)
    finally:
        stop(run)
    [dead_run] = api_slot_holders(home)  # the kernel frees a dead process's locks; Dagster's pool slot, nothing
    env.control("DELETE", "faults")

    again = subprocess.run(sync, env=process_env(), cwd=tmp_path, capture_output=True, text=True, timeout=240)

    assert again.returncode == 0, again.stderr[-3000:]
    assert dead_run[:8] in again.stderr  # it says which run it found dead, and that it freed its slot
    for entity in DOCUMENTS:
        assert differences(env, entity, on_days(*days)) == [], entity.name
    assert api_slot_holders(home) == []
