"""A run with many details fetches them from worker processes: same warehouse, same requests, same guarantees.

The simulator's limits are off and the client's time scale is huge, as in the throughput benchmark: that is
where a sync is CPU-bound and the workers pay off. `MIN_DETAILS` is lowered so a small company is "big".
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import subprocess
import sys
from datetime import timedelta

import dagster as dg
import httpx
import pytest

from precoro_assets.api.client import PrecoroClient
from precoro_assets.api.quota import QuotaLimits
from precoro_assets.catalogue import BY_NAME
from precoro_assets.defs.resources import PrecoroResource
from precoro_assets.ingest import detail_workers
from precoro_assets.ingest.sync import partition_day
from tests.ingest.truth import differences

INVOICES = BY_NAME["invoices"]


@pytest.fixture
def fast_env(unpaced_env, monkeypatch):
    monkeypatch.setattr(detail_workers, "MIN_DETAILS", 1)
    return unpaced_env


@pytest.fixture
def started(monkeypatch) -> list:
    """What each DetailWorkers.start returned (None: the run fell back to threads)."""
    results: list = []
    original = detail_workers.DetailWorkers.start.__func__

    def recording(cls, *args, **kwargs):
        results.append(original(cls, *args, **kwargs))
        return results[-1]

    monkeypatch.setattr(detail_workers.DetailWorkers, "start", classmethod(recording))
    return results


def invoice_details(log: list[dict]) -> list[str]:
    return [r["url"] for r in log if r["path"] == "/invoices/{idn}"]


@pytest.mark.e2e
def test_details_from_worker_processes_reach_the_warehouse_once_each(fast_env, started):
    start, end = fast_env.days()
    _, mark = fast_env.request_log()

    result = fast_env.materialize("precoro/invoices", partition_range=(start.isoformat(), end.isoformat()))

    assert result.success
    assert len(started) == 1 and started[0] is not None and started[0].processes >= 1
    log, _ = fast_env.request_log(mark)
    details = invoice_details(log)
    assert len(details) == len(set(details)) == len(fast_env.export("invoices"))
    assert differences(fast_env, INVOICES) == []
    # raw keeps Precoro's own text, and the workers' requests are counted as the run's
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["detail requests"].value == len(details)
    assert metadata["requests spent"].value == len(log)
    idn, raw = fast_env.query("SELECT idn, raw FROM precoro.invoices ORDER BY idn LIMIT 1")[0]
    answer = httpx.get(f"{fast_env.sim.url}/invoices/{idn}",
                       headers={"X-AUTH-TOKEN": fast_env.sim.token, "email": fast_env.sim.email})
    assert raw == answer.text



@pytest.mark.e2e
def test_workers_flatten_the_details_and_what_cannot_be_stored_is_kept_apart_as_in_the_run_s_process(fast_env, started):
    """The workers parse and flatten each detail for its day: a detail without its key is kept in
    precoro.rejected_records (as sent), a mistyped field becomes NULL and is counted, every other row is stored."""
    fast_env.control("POST", "faults", json={"kind": "missing_fields", "fields": ["idn"], "path": "/invoices/{idn}",
                                             "after": 4, "count": 3})
    fast_env.control("POST", "faults", json={"kind": "unknown_fields", "fields": {"sum": "12,50 EUR"},
                                             "path": "/invoices/{idn}", "after": 20, "count": 2})
    start, end = fast_env.days()

    result = fast_env.materialize("precoro/invoices", partition_range=(start.isoformat(), end.isoformat()))

    assert result.success and started[0] is not None
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["rejected records"].value == 3
    assert metadata["field problems"].value >= 2
    kept = fast_env.query("SELECT reason, raw FROM precoro.rejected_records WHERE entity = 'invoices'")
    assert len(kept) == 3 and all("idn" in reason and "idn" not in json.loads(raw) for reason, raw in kept)
    rejected = {json.loads(raw)["id"] for _, raw in kept}
    stored = {idn for (idn,) in fast_env.query("SELECT idn FROM precoro.invoices")}
    truth = {str(r["idn"]) for r in fast_env.export("invoices") if r["id"] not in rejected}
    assert stored == truth
    assert len(fast_env.query("SELECT idn FROM precoro.invoices WHERE sum IS NULL")) == 2
    # each document's rows are filed under its own day, as the run's process files them
    days = dict(fast_env.query("SELECT idn, partition_day FROM precoro.invoices"))
    assert all(days[str(r["idn"])] == partition_day(r) for r in fast_env.export("invoices") if str(r["idn"]) in days)


@pytest.mark.e2e
def test_the_assets_of_a_run_share_worker_processes_which_stop_once_idle(fast_env, started, monkeypatch):
    # longer than an asset takes between details, and than the asset checks that follow the last one (on a
    # machine at load 20, with six test workers on two cores, those took more than 30 s)
    monkeypatch.setattr(detail_workers, "IDLE_SECONDS", 60.0)
    start, end = fast_env.days()

    result = fast_env.materialize(["precoro/invoices", "precoro/purchase_orders", "precoro/receipts"],
                                  partition_range=(start.isoformat(), end.isoformat()))

    assert result.success
    assert len(started) == 1 and started[0] is not None  # started once (in the background), used three times
    workers = list(started[0]._pool._processes.values())  # before the comparisons below let them idle out
    assert workers and all(worker.is_alive() for worker in workers)
    for name in ("invoices", "purchase_orders", "receipts"):
        assert differences(fast_env, BY_NAME[name]) == []
    for worker in workers:
        worker.join(timeout=120)  # stopped once idle for IDLE_SECONDS, not left behind for the process's life
    assert not any(worker.is_alive() for worker in workers)


@pytest.mark.e2e
def test_unreadable_and_failed_answers_to_workers_are_asked_again(fast_env, started):
    fast_env.control("POST", "faults", json={"kind": "malformed_json", "path": "/invoices/{idn}", "count": 2})
    fast_env.control("POST", "faults", json={"kind": "error", "status": 503, "path": "/invoices/{idn}", "count": 2,
                                             "after": 5})
    start, end = fast_env.days()
    _, mark = fast_env.request_log()

    result = fast_env.materialize("precoro/invoices", partition_range=(start.isoformat(), end.isoformat()))

    assert result.success and started[0] is not None
    assert differences(fast_env, INVOICES) == []
    # each broken answer cost exactly one more request: 2 unreadable, 2 x 503
    assert len(invoice_details(fast_env.request_log(mark)[0])) == len(fast_env.export("invoices")) + 4
    assert fast_env.query("SELECT count(*) FROM precoro.invoices WHERE NOT json_valid(raw)") == [(0,)]


@pytest.mark.e2e
def test_a_quota_stop_inside_the_workers_is_resumed_without_paying_twice(fast_env, started):
    start, end = fast_env.days()
    first = end - timedelta(days=6)
    invoices = [r for r in fast_env.export("invoices") if first <= partition_day(r) <= end]
    assert len(invoices) > 2 * 12, "the test needs several quota days of invoices"
    # A "day" of 86 ms holding 12 requests, and no patience at all: the run stops every 12 requests and
    # Dagster retries it a second later.
    small_day = PrecoroResource(api_token=fast_env.sim.token, email=fast_env.sim.email, base_url=fast_env.sim.url,
                                per_day=12, time_scale=1e6, max_wait_seconds=0.0,
                                state_dir=str(fast_env.config.state_dir / "small-quota"))
    assets = [a for a in fast_env.defs.assets if dg.AssetKey(["precoro", "invoices"]) in getattr(a, "keys", ())]
    _, mark = fast_env.request_log()

    result = dg.materialize(assets, instance=fast_env.instance,
                            resources={**fast_env.defs.resources, "precoro": small_day},
                            tags={"dagster/asset_partition_range_start": first.isoformat(),
                                  "dagster/asset_partition_range_end": end.isoformat()}, raise_on_error=False)

    assert result.success
    assert any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
    assert started and started[0] is not None
    log, _ = fast_env.request_log(mark)
    details = invoice_details(log)
    assert len(details) == len(set(details)) == len(invoices)  # every detail exactly once, across the stops
    assert all(r["status"] == 200 for r in log)
    assert differences(fast_env, INVOICES, in_range=lambda r: first <= partition_day(r) <= end) == []


class _NoProcesses(multiprocessing.context.SpawnContext):
    """A start method that can't start anything (as under a sandbox that forbids new processes)."""

    class Process(multiprocessing.context.SpawnProcess):
        def start(self) -> None:
            raise OSError("new processes are not allowed here")


@pytest.mark.e2e
def test_when_worker_processes_cannot_start_threads_fetch_the_details(fast_env, started, monkeypatch, caplog):
    monkeypatch.setattr(detail_workers, "_context", lambda: _NoProcesses())
    start, end = fast_env.days()
    _, mark = fast_env.request_log()

    with caplog.at_level(logging.WARNING, logger="precoro_assets.ingest.detail_workers"):
        result = fast_env.materialize("precoro/invoices", partition_range=(start.isoformat(), end.isoformat()))

    assert result.success
    assert started == [None]
    assert "worker processes could not start" in caplog.text and "new processes are not allowed" in caplog.text
    details = invoice_details(fast_env.request_log(mark)[0])
    assert len(details) == len(set(details)) == len(fast_env.export("invoices"))
    assert differences(fast_env, INVOICES) == []


@pytest.mark.parametrize(("script", "guarded"), [
    ("from precoro_assets.ingest.detail_workers import main_module_is_guarded\n"
     "print(main_module_is_guarded())\n", False),
    ("from precoro_assets.ingest.detail_workers import main_module_is_guarded\n"
     "if __name__ == '__main__':\n    print(main_module_is_guarded())\n", True),
])
@pytest.mark.e2e
def test_a_script_without_a_main_guard_gets_threads_not_processes(tmp_path, script, guarded):
    # A worker process imports the main script again: unguarded top-level code would run a second sync.
    path = tmp_path / "my_sync.py"
    path.write_text(script)
    answer = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, check=True, timeout=60)
    assert answer.stdout.strip() == str(guarded)


def test_at_precoro_s_own_pace_runs_use_threads(tmp_path):
    # One request per second leaves no CPU to save; processes would only slow down stopping a run.
    real = PrecoroClient("token", "user@example.com", base_url="http://127.0.0.1:9", state_dir=tmp_path)
    fast = PrecoroClient("token", "user@example.com", base_url="http://127.0.0.1:9", state_dir=tmp_path,
                         limits=QuotaLimits(time_scale=1e6))
    assert real.concurrent_requests == fast.concurrent_requests == 4
    assert not detail_workers.wanted(real, 100_000, 4)
    assert detail_workers.wanted(fast, detail_workers.MIN_DETAILS, 4)
    assert not detail_workers.wanted(fast, detail_workers.MIN_DETAILS - 1, 4)


@pytest.mark.e2e
def test_a_document_deleted_before_a_worker_asks_for_it_is_left_out_and_the_run_goes_on(fast_env, started):
    fast_env.control("POST", "faults", json={"kind": "vanish", "path": "/invoices/{idn}", "after": 5, "count": 2})
    start, end = fast_env.days()

    result = fast_env.materialize("precoro/invoices", partition_range=(start.isoformat(), end.isoformat()))

    assert result.success and started[0] is not None
    assert differences(fast_env, INVOICES) == []  # the two deleted ones are in neither
    gone = result.get_asset_materialization_events()[0].materialization.metadata[
        "gone before their detail was read (removed)"].value
    assert gone.startswith("2: ")
