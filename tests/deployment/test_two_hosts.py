"""Two hosts, one PostgreSQL database and one bucket: runs with no shared disk share Precoro's budget, the
write-back queue and the warehouse.

Each "host" is a process tree with a PRECORO_HOME of its own (its own state directory, file locks and Dagster
instance), as two containers of a Dagster deployment would be; what they share is PRECORO_DATABASE_URL (shared
state and the warehouse's catalog) and PRECORO_WAREHOUSE_DATA_PATH (the warehouse's Parquet files, on a real
S3-compatible server).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from precoro_assets.catalogue import BY_NAME
from precoro_assets.settings import ENV_DATABASE_URL, load_state
from precoro_assets.warehouse.store import Warehouse
from precoro_assets.writeback.outbox import Outbox
from precoro_assets.writeback.proposals import CREATE_PAYMENT
from precoro_sim.demo_ledger import company_from_simulator, demo_ledger_for, write_demo_ledger
from precoro_sim.ground_truth import differences
from precoro_sim.simulator import RunningSimulator, start_simulator
from precoro_sim.simulator.limits import SECOND_LIMITER
from tests.support import object_storage, postgres_server

# e2e: a simulator on a socket or child processes (in make test, not in make test-fast); two hosts' syncs and write-backs: minutes on a loaded 2-core machine
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


DAYS = 12
PASSWORD = "pw-7f3a9c1e-never-shown"
SYNCED = ["invoices", "purchase_orders", "payments", "suppliers"]
# Precoro's limits sped up 100x: 10 ms between requests, well above a busy machine's scheduling jitter (at
# 1000x the 1 ms spacing met a 429 once while CI shared the machine); the test still takes about a minute
SCALE = 100


class Host:
    """One host: its environment, and its warehouse seen as `verify.differences` reads it."""

    def __init__(self, sim: RunningSimulator, home: Path, shared: dict[str, str]) -> None:
        self.sim, self.home = sim, home
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("PRECORO_", "DAGSTER_HOME"))}
        self.env = {**keep, "PRECORO_API_TOKEN": sim.token, "PRECORO_EMAIL": sim.email, "PRECORO_BASE_URL": sim.url,
                    "PRECORO_START_DATE": (datetime.now(UTC).date() - timedelta(days=DAYS)).isoformat(),
                    "PRECORO_HOME": str(home), "PRECORO_TIME_SCALE": str(SCALE), **shared}

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "precoro_sim.cli", *args], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def export(self, resource: str) -> list[dict]:
        response = httpx.get(f"{self.sim.url}/_sim/export/{resource}", timeout=30)
        response.raise_for_status()
        return response.json()["data"]

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        # the shared one: this process's settings name it (see the test)
        frame = Warehouse(self.home / "warehouse", **load_state().warehouse_options()).query(sql, params)
        return [tuple(row) for row in frame.itertuples(index=False, name=None)]


def both(processes: list[subprocess.Popen]) -> list[tuple[str, str]]:
    """Wait for processes started at once; each must succeed. Their stdout and stderr."""
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, (out[-2000:], err[-3000:])
        outputs.append((out, err))
    return outputs


def requests_of(sim: RunningSimulator) -> list[dict]:
    seen: list[dict] = []
    while True:
        body = httpx.get(f"{sim.url}/_sim/requests", params={"since": len(seen)}, timeout=30).json()
        if not body["requests"]:
            return seen
        seen += body["requests"]


@pytest.fixture
def sim():
    running = start_simulator(seed=11, days=DAYS, documents=200, limits=f"scaled:{SCALE}", port=0)
    yield running
    running.stop()


def budget_held(log: list[dict]) -> bool:
    """No 429 but, at most, a few from the per-second limiter, which jitter explains and a second budget would not.

    At 100x a Precoro second lasts 10 ms and the shared budget spaces requests 20 ms apart. A machine at load 16
    (CI's two cores shared by six test workers) can hold one host's request back longer than the 10 ms margin, so
    two well-spaced requests may reach the simulator within one scaled second. Two budgets that were not shared
    would each send at full pace, twice what the second limiter allows: dozens of refusals in a sync. So up to
    three per-second refusals pass as scheduling jitter; every other limiter (minute, hour, day, identical GET)
    must refuse nothing. At Precoro's own pace the margin is 250 ms and the benchmark counts no 429 at all."""
    refused = [r for r in log if r["status"] == 429]
    by_second = [r for r in refused if r["rate_limit_type"] == SECOND_LIMITER]
    assert len(by_second) <= 3 and len(refused) == len(by_second), refused
    return True


def test_two_hosts_sync_and_write_back_at_once_within_one_budget_everything_stored_and_nothing_paid_twice(
        sim, tmp_path, monkeypatch):
    # the test server trusts its socket, so any password connects: one that must never show up anywhere
    database_url = postgres_server.fresh_database_url().replace("postgres:@", f"postgres:{PASSWORD}@")
    shared = {ENV_DATABASE_URL: database_url, **object_storage.fresh_bucket_settings()}
    for name, value in shared.items():
        monkeypatch.setenv(name, value)  # this process reads what the hosts share
    hosts = [Host(sim, tmp_path / name, shared) for name in ("host-a", "host-b")]

    outputs = both([host.start("sync", "--start", hosts[0].env["PRECORO_START_DATE"]) for host in hosts])
    log = requests_of(sim)
    assert budget_held(log)  # one budget for both: Precoro's limits held
    for name in SYNCED:
        assert differences(hosts[0], BY_NAME[name]) == [], name  # one warehouse, written by both
    assert any(key.endswith(".parquet") for key in object_storage.objects(shared["PRECORO_WAREHOUSE_DATA_PATH"]))
    for host in hosts:  # nothing shared on a host's disk: state and catalog in PostgreSQL, files in the bucket
        assert not list(host.home.rglob("*.sqlite*")) and not list(host.home.rglob("*.parquet"))

    # the same accounting data reaches both hosts (as files of their own: no shared disk)
    ledger = write_demo_ledger(demo_ledger_for(company_from_simulator(sim.url), seed=11), tmp_path / "ledger")
    for host in hosts:
        (host.home / "ledger").mkdir(parents=True, exist_ok=True)
        for path in ledger:
            shutil.copy(path, host.home / "ledger" / path.name)
    both([host.start("reconcile") for host in hosts])
    before = len(requests_of(sim))
    sent_outputs = both([host.start("writeback", "--send") for host in hosts])

    # each queued write went out once, whichever host took it: one answered POST or PATCH per row that sent one
    rows = Outbox(tmp_path / "unused.sqlite", load_state().database_url_value).rows()
    writes = Counter(r["method"] for r in requests_of(sim)[before:] if r["method"] != "GET" and r["status"] == 200)
    sent = Counter(row.kind for row in rows if row.status == "sent")
    assert sent[CREATE_PAYMENT] and writes["POST"] == sent[CREATE_PAYMENT]
    assert writes["POST"] + writes["PATCH"] == sum(1 for row in rows if row.sent_request)
    assert all(row.attempts == 1 for row in rows if row.finished_at)  # no row taken by both hosts
    tallies = [int(out.strip().splitlines()[-1].split()[0]) for out, _ in sent_outputs]  # "N sent, M skipped, F failed"
    assert sum(tallies) == sum(sent.values()), tallies
    assert budget_held(requests_of(sim))
    # the database password: in no output, no file of either host (Dagster's event logs included), no table
    assert not [text for output in outputs + sent_outputs for text in output if PASSWORD in text]
    assert not [path for path in tmp_path.rglob("*") if path.is_file() and PASSWORD.encode() in path.read_bytes()]
    assert PASSWORD not in postgres_server.dump(database_url)
