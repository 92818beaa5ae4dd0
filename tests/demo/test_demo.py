"""`make demo` as a user meets it: the Dagster UI serves every asset, and a 7-day backfill launched the way
the UI launches it (its GraphQL API) completes against the simulator."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest

from precoro_assets.catalogue import DOCUMENTS, ENTITIES
from precoro_assets.warehouse.store import Warehouse

# e2e: a simulator on a socket or child processes (in make test, not in make test-fast); a Dagster UI, daemon and simulator of its own: minutes on a loaded 2-core machine
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


LAUNCH = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status } } }"""
ASSETS = "{ assetNodes { assetKey { path } } }"
REPOSITORY = ("{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } "
              "sensors { name minIntervalSeconds } } } } }")
LAUNCH_JOB = """mutation($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
RUN_STATUS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""


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
        time.sleep(0.25)
    raise AssertionError(f"{url} did not answer within {seconds:.0f} s")


@pytest.fixture
def demo(tmp_path: Path):
    yield from running_demo(tmp_path)


def running_demo(tmp_path: Path, *options: str) -> Iterator[tuple[str, str, Path]]:
    """`precoro-assets demo [options]` on free ports with a home in `tmp_path`: its GraphQL URL, its simulator's URL
    and its home, until it is stopped as Ctrl-C would."""
    ui_port, simulator_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRECORO_", "DAGSTER_"))}
    env.update(PRECORO_HOME=str(tmp_path / "var"), PRECORO_SIMULATOR_PORT=str(simulator_port),
               PRECORO_WEBHOOK_PORT=str(free_port()))
    process = subprocess.Popen([sys.executable, "-m", "precoro_sim.cli", "demo", "--port", str(ui_port), *options],
                               cwd=tmp_path, env=env,
                               # a file, not a pipe: dagster dev logs to stdout, and a pipe nobody reads fills up
                               stdout=(tmp_path / "demo.log").open("w"), stderr=subprocess.STDOUT, text=True,
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

    # step 1: Jobs -> precoro_reference -> "Materialize all" (the UI launches the job's assets as one run)
    [repository] = graphql(graphql_url, REPOSITORY)["repositoriesOrError"]["nodes"]
    # the simulated company changes every minute: the demo's change sensor looks as often (step 4)
    intervals = {sensor["name"]: sensor["minIntervalSeconds"] for sensor in repository["sensors"]}
    assert intervals["precoro_changes"] <= 60
    launched = graphql(graphql_url, LAUNCH_JOB, p={"selector": {
        "repositoryLocationName": repository["location"]["name"], "repositoryName": repository["name"],
        "pipelineName": "precoro_reference"}, "mode": "default"})["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    reference_run = launched["run"]["runId"]
    wait_until_done(lambda: graphql(graphql_url, RUN_STATUS, id=reference_run)["runOrError"]["status"],
                    ("QUEUED", "NOT_STARTED", "STARTING", "STARTED"), "SUCCESS")
    # its steps shared the run's process: a process per step took 3-4 s to start, most of the run
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        assert instance.all_logs(reference_run, of_type=dg.DagsterEventType.STEP_SUCCESS)
        assert not instance.all_logs(reference_run, of_type=dg.DagsterEventType.STEP_WORKER_STARTED)

    # step 2: a 7-day backfill of the documents group
    today = datetime.now(UTC).date()
    days = [(today - timedelta(days=n)).isoformat() for n in range(1, 8)]
    launched = graphql(graphql_url, LAUNCH, p={
        "partitionNames": days, "assetSelection": [{"path": ["precoro", e.name]} for e in DOCUMENTS]})
    backfill_id = launched["launchPartitionBackfill"].get("backfillId")
    assert backfill_id, launched

    wait_until_done(lambda: graphql(graphql_url, STATUS, id=backfill_id)["partitionBackfillOrError"]["status"],
                    ("REQUESTED", "IN_PROGRESS"), "COMPLETED_SUCCESS")

    # the warehouse holds exactly the simulator's invoices of those 7 days
    truth = httpx.get(f"{simulator_url}/_sim/export/invoices", timeout=30).json()["data"]
    expected = sorted(str(r["idn"]) for r in truth if r["createDate"][:10] in days)
    stored = Warehouse(home / "warehouse").query(
        "SELECT idn FROM precoro.invoices WHERE partition_day BETWEEN ? AND ? ORDER BY idn", [days[-1], days[0]])
    assert sorted(stored["idn"]) == expected

    # step 5: the README's query answers (the analyst views came with the sync)
    query = subprocess.run([sys.executable, "-m", "precoro_sim.cli", "sql",
                            "SELECT * FROM precoro.invoices_overview LIMIT 10"], capture_output=True, text=True,
                           env={**{k: v for k, v in os.environ.items() if not k.startswith("PRECORO_")},
                                "PRECORO_HOME": str(home)}, timeout=120)
    assert query.returncode == 0, query.stderr
    assert "supplier_name" in query.stdout and len(query.stdout.splitlines()) == 1 + min(10, len(expected))


def wait_until_done(status_of, running: tuple[str, ...], success: str, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    status = None
    while time.monotonic() < deadline:
        status = status_of()
        if status not in running:
            break
        time.sleep(0.5)  # a status query is cheap; a 3 s poll added up to 3 s to each of the two waits
    assert status == success
