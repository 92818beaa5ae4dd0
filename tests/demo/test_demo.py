"""`make demo` as a user meets it: the Dagster UI serves every asset, and a 7-day backfill launched the way
the UI launches it (its GraphQL API) completes against the simulator."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from precoro_assets.api.catalogue import DOCUMENTS, ENTITIES
from precoro_assets.warehouse.store import Warehouse

LAUNCH = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status } } }"""
ASSETS = "{ assetNodes { assetKey { path } } }"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"{url} did not answer within {seconds:.0f} s")


@pytest.fixture
def demo(tmp_path: Path):
    ui_port, simulator_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRECORO_", "DAGSTER_"))}
    env.update(PRECORO_HOME=str(tmp_path / "var"), PRECORO_SIMULATOR_PORT=str(simulator_port))
    process = subprocess.Popen([sys.executable, "-m", "precoro_assets.cli", "demo", "--port", str(ui_port)],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{ui_port}/server_info", 120)
        yield f"http://127.0.0.1:{ui_port}/graphql", f"http://127.0.0.1:{simulator_port}", tmp_path / "var"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise


def graphql(url: str, query: str, **variables) -> dict:
    response = httpx.post(url, json={"query": query, "variables": variables}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def test_the_demo_serves_every_asset_and_a_7_day_backfill_completes(demo):
    graphql_url, simulator_url, home = demo
    paths = {tuple(node["assetKey"]["path"]) for node in graphql(graphql_url, ASSETS)["assetNodes"]}
    assert {("precoro", e.name) for e in ENTITIES} | {("precoro", "analyst_views")} <= paths

    today = datetime.now(UTC).date()
    days = [(today - timedelta(days=n)).isoformat() for n in range(1, 8)]
    launched = graphql(graphql_url, LAUNCH, p={
        "partitionNames": days, "assetSelection": [{"path": ["precoro", e.name]} for e in DOCUMENTS]})
    backfill_id = launched["launchPartitionBackfill"].get("backfillId")
    assert backfill_id, launched

    deadline = time.monotonic() + 300
    status = None
    while time.monotonic() < deadline:
        status = graphql(graphql_url, STATUS, id=backfill_id)["partitionBackfillOrError"]["status"]
        if status not in ("REQUESTED", "IN_PROGRESS"):
            break
        time.sleep(3)
    assert status == "COMPLETED_SUCCESS"

    # the warehouse holds exactly the simulator's invoices of those 7 days
    truth = httpx.get(f"{simulator_url}/_sim/export/invoices", timeout=30).json()["data"]
    expected = sorted(str(r["idn"]) for r in truth if r["createDate"][:10] in days)
    stored = Warehouse(home / "warehouse").query(
        "SELECT idn FROM precoro.invoices WHERE partition_day BETWEEN ? AND ? ORDER BY idn", [days[-1], days[0]])
    assert sorted(stored["idn"]) == expected
