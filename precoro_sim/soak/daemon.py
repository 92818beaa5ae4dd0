"""The soak through a real Dagster daemon (`precoro-assets reliability --daemon`): nothing is launched by this
process. It starts the simulator and `dagster dev` (webserver and dagster-daemon on 127.0.0.1, DAGSTER_HOME in the
soak's folder with the project's dagster.yaml), launches the initial sync as a backfill and switches the sensors
on through Dagster's GraphQL API; then the same figures as in-process (inprocess.py), plus the runs the daemon
launched, a grep for the API token and the address of every socket it listens on (processes.py)."""


from __future__ import annotations

import ipaddress
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .inprocess import (
    PACKAGE_ROOT,
    SoakReport,
    _payment_identity,
    _Soak,
    _state_described,
)
from .processes import (
    files_containing,
    listening_sockets,
    process_name,
    processes_in_session,
    socket_inodes_of,
)

# ---- the soak through a real Dagster daemon ------------------------------------------------------------------

SENSORS = ("precoro_changes", "precoro_reconcile_automation", "precoro_writeback")
ACTIVE_RUN = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING", "MANAGED"}
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
LOOPBACK = ipaddress.ip_address("127.0.0.1")
# Faults armed once before the sensors start, so that every kind is met for sure: the first write-back meets a
# lost POST answer, a 5xx on a POST and a lost PATCH answer; the sensor and the runs meet a reset and a slow answer.
SURE_FAULTS = [
    {"kind": "lost_response", "method": "POST", "path": "/payments", "count": 1},
    {"kind": "error", "status": 502, "method": "POST", "path": "/payments", "count": 1, "after": 1},
    {"kind": "lost_response", "method": "PATCH", "count": 1, "after": 2},
    {"kind": "reset", "method": "GET", "count": 1, "after": 1},
    {"kind": "slow", "seconds": 0.4, "method": "GET", "count": 1, "after": 4},
]

WORKSPACE = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on RepositoryLocation { repositories { name } }
  ... on PythonError { message } } } } ... on PythonError { message } } }"""
LAUNCH_BACKFILL = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  ... on InvalidStepError { invalidStepKey } ... on UnauthorizedError { message } } }"""
BACKFILL_STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status } ... on PythonError { message } } }"""
START_SENSOR = """mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename
  ... on Sensor { sensorState { status } } ... on PythonError { message } ... on UnauthorizedError { message }
  ... on SensorNotFoundError { message } } }"""
SENSOR_TICKS = """query($s: SensorSelector!, $after: Float) { sensorOrError(sensorSelector: $s) { __typename
  ... on Sensor { sensorState { status ticks(limit: 100000, afterTimestamp: $after) {
    tickId status timestamp runIds skipReason error { message } } } } ... on PythonError { message } } }"""
RUNS = """query { runsOrError(limit: 100000) { __typename ... on Runs { results {
  runId status startTime endTime updateTime tags { key value } } } ... on PythonError { message } } }"""
RUN_FAILURE = """query($id: ID!) { logsForRun(runId: $id, limit: 2000) { __typename ... on EventConnection {
  events { __typename ... on ExecutionStepFailureEvent { stepKey error { message } }
  ... on RunFailureEvent { message } } } } }"""


@dataclass
class DaemonSoakReport(SoakReport):
    runs_by_origin: dict[str, int] = field(default_factory=dict)
    runs_succeeded: int = 0
    backfill: str = ""
    sensor_ticks: dict[str, int] = field(default_factory=dict)
    sensor_tick_failures: int = 0
    quiet_after: float | None = None  # seconds from the last tick until the daemon was quiet; None: never
    files_grepped: int = 0
    token_found: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)
    sockets_not_loopback: list[str] = field(default_factory=list)
    session: int = 0  # the session of dagster dev and every process it started (none must outlive the soak)
    smoke: bool = False  # stopped after the first write-back: nothing was sent twice, but no comparison

    @property
    def sent_once(self) -> bool:
        return not (self.duplicates or self.duplicate_payments or self.duplicate_patches)

    @property
    def ok(self) -> bool:
        converged = self.sent_once if self.smoke else (super().ok and self.quiet_after is not None)
        return converged and self.runs > 0 and not self.token_found and bool(self.sockets) \
            and not self.sockets_not_loopback

    def lines(self) -> list[str]:
        base = super().lines()
        origins = ", ".join(f"{k} {v}" for k, v in sorted(self.runs_by_origin.items())) or "none"
        ticks = ", ".join(f"{k} {v}" for k, v in sorted(self.sensor_ticks.items())) or "none"
        problems = []
        if not self.sent_once:
            problems.append("rows, payments or patches duplicated")
        if self.second_limiter:
            problems.append(f"{self.second_limiter} 429s from the Second limiter")
        elif not self.smoke and not super().ok:
            problems += self.differences[:10] or ["rows lost or stale"]
        if self.runs == 0:
            problems.append("the daemon launched no run")
        if not self.smoke and self.quiet_after is None:
            problems.append("the daemon never went quiet")
        if self.token_found:
            problems.append("the token was found")
        if not self.sockets or self.sockets_not_loopback:
            problems.append("a socket listens beyond 127.0.0.1" if self.sockets else "no listening socket seen")
        if self.smoke:  # Precoro has just been changed by write-back: its rows are not in the warehouse yet
            base = [line for line in base if not line.startswith("rows lost:")]
        return [
            base[0],
            f"runs launched by the daemon: {self.runs} ({origins}); {self.runs_succeeded} succeeded, "
            f"{self.runs_failed} failed, {self.run_retries} were retries; write-back runs: {self.writeback_runs}",
            f"initial sync backfill: {self.backfill or 'not launched'}; sensor ticks: {ticks} "
            f"({self.sensor_tick_failures} failed)",
            *base[2:-1],
            "smoke: stopped after the first write-back; the warehouse was not compared with Precoro (rows lost: "
            f"{self.rows_lost}, stale: {self.rows_stale}, as write-back has just changed them)"
            if self.smoke else "quiet after the last tick: " + (
                f"{self.quiet_after:.0f} s" if self.quiet_after is not None else "never"),
            f"token found in: {', '.join(self.token_found) or 'nothing'} ({self.files_grepped} files grepped, "
            "and everything printed)",
            f"listening sockets: {len(self.sockets)} ({', '.join(self.sockets) or 'none seen'})"
            + (f"; NOT on 127.0.0.1: {', '.join(self.sockets_not_loopback)}" if self.sockets_not_loopback else ""),
            "result: " + ("FAILED: " + "; ".join(problems) if not self.ok else
                          "OK (smoke): nothing was sent twice, the token is nowhere" if self.smoke else
                          "OK, the warehouse equals Precoro, nothing was sent twice, the token is nowhere"),
        ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _DaemonSoak(_Soak):
    """The soak with Dagster's daemon doing the work: this process only lets the company live, arms faults and
    watches (through the webserver's GraphQL API), then measures as the in-process soak does."""

    report: DaemonSoakReport

    def __init__(self, home: Path, seed: int, days: int, documents: int, echo: Callable[[str], None],
                 sensor_interval: int):
        import httpx

        from precoro_assets import settings
        from precoro_assets.warehouse.store import Warehouse

        from ..simulator import start_simulator
        from ..simulator.app import token_for_seed

        self.httpx, self.home = httpx, home
        self.printed: list[str] = []
        def echo_and_keep(line: str) -> None:
            self.printed.append(line)
            echo(line)

        self.echo = echo_and_keep
        self.token = token_for_seed(seed)
        self.process: subprocess.Popen | None = None
        self.graphql_url = ""
        self.location = self.repository = ""
        self.started_at = time.time()
        self.sim = start_simulator(seed=seed, days=days, documents=documents, limits="scaled:1000", port=0)
        try:
            self._prepare(home, days, sensor_interval, settings, Warehouse)
        except BaseException:
            self.sim.stop()
            raise

    def _prepare(self, home: Path, days: int, sensor_interval: int, settings, Warehouse) -> None:  # noqa: N803
        self.dagster_home = home / "dagster"
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copy(PACKAGE_ROOT / "dagster.yaml", self.dagster_home / "dagster.yaml")
        self.logs = home / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        env = dict(PRECORO_API_TOKEN=self.sim.token, PRECORO_EMAIL=self.sim.email, PRECORO_BASE_URL=self.sim.url,
                   PRECORO_HOME=str(home / "var"), PRECORO_TIME_SCALE="1000",
                   PRECORO_START_DATE=(datetime.now(UTC).date() - timedelta(days=days)).isoformat(),
                   PRECORO_SENSOR_INTERVAL_SECONDS=str(sensor_interval), DAGSTER_HOME=str(self.dagster_home))
        from precoro_assets.settings import ENV_DATABASE_URL

        if os.environ.get(ENV_DATABASE_URL):  # the shared state in PostgreSQL, for the daemon's runs too
            env[ENV_DATABASE_URL] = os.environ[ENV_DATABASE_URL]
        for name in [k for k in os.environ if k.startswith(("PRECORO_", "DAGSTER_"))]:
            del os.environ[name]
        os.environ.update(env)  # for this process: the settings, the warehouse, the ledger folder, the outbox
        self.child_env = {**os.environ, "PRECORO_WRITEBACK_SEND": "1"}  # the daemon's runs really send
        self.config = settings.load()
        self.warehouse = Warehouse(self.config.warehouse, **self.config.warehouse_options())
        _limit_api_pool(self.dagster_home)  # as `precoro-assets demo` and deploy/ limit it
        self.report = DaemonSoakReport(state=_state_described())
        self.writeback_payments: Counter = Counter()
        self.tick_payments: set[str] = set()  # payments the company's own ticks made (not write-back)
        self.initial_payments: set[str] = set()
        self.last_tick = time.monotonic()
        self.backfill = ""

    # ---- Dagster, through its GraphQL API ----
    def graphql(self, query: str, timeout: float = 60, **variables) -> dict:
        response = self.httpx.post(self.graphql_url, json={"query": query, "variables": variables},
                                   timeout=timeout)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def start_dagster(self, timeout: float) -> None:
        port = _free_port()
        self.graphql_url = f"http://127.0.0.1:{port}/graphql"
        with open(self.logs / "dagster-dev.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port),
                 "-w", str(PACKAGE_ROOT / "workspace.yaml")],
                cwd=self.home, env=self.child_env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.report.session = self.process.pid
        deadline = time.monotonic() + timeout
        problem = "the webserver did not answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {self.process.returncode}; see {self.logs}")
            try:
                entries = self.graphql(WORKSPACE, timeout=10)["workspaceOrError"].get("locationEntries") or []
            except (self.httpx.HTTPError, RuntimeError) as error:
                problem = f"the webserver did not answer: {type(error).__name__}"
                time.sleep(1)
                continue
            for entry in entries:
                location = entry.get("locationOrLoadError") or {}
                if location.get("__typename") == "PythonError":
                    raise RuntimeError(f"the code location failed to load: {location['message'][:2000]}")
                if entry["loadStatus"] == "LOADED" and location.get("repositories"):
                    self.location, self.repository = entry["name"], location["repositories"][0]["name"]
                    return
            problem = "the code location did not load"
            time.sleep(1)
        raise RuntimeError(f"{problem} within {timeout:.0f} s; see {self.logs}")

    def selector(self, sensor: str) -> dict:
        return {"repositoryLocationName": self.location, "repositoryName": self.repository, "sensorName": sensor}

    def start_sensor(self, sensor: str) -> None:
        started = self.graphql(START_SENSOR, s=self.selector(sensor))["startSensor"]
        status = (started.get("sensorState") or {}).get("status")
        if status != "RUNNING":
            raise RuntimeError(f"could not start the sensor {sensor}: {started}")

    def launch_initial_sync(self, timeout: float) -> str:
        """A backfill of every document day, as the UI launches it; returns once its run has succeeded."""
        from precoro_assets.catalogue import DOCUMENTS
        from precoro_assets.defs.ingest import asset_key

        first, today = self.config.start_date, datetime.now(UTC).date()
        days = [(first + timedelta(days=n)).isoformat() for n in range((today - first).days + 1)]
        launched = self.graphql(LAUNCH_BACKFILL, p={
            "partitionNames": days, "assetSelection": [{"path": asset_key(e).path} for e in DOCUMENTS],
            "tags": [{"key": "precoro/trigger", "value": "soak initial sync"}]})["launchPartitionBackfill"]
        backfill = launched.get("backfillId")
        if not backfill:
            raise RuntimeError(f"the initial sync backfill was not launched: {launched}")
        deadline, status = time.monotonic() + timeout, "REQUESTED"
        while time.monotonic() < deadline:
            status = self.backfill_status(backfill)
            if status in BACKFILL_DONE:
                return backfill
            # its run done is enough to go on (the backfill daemon marks the backfill complete up to 30 s later)
            runs = [r for r in self.runs() if r["tags"].get("dagster/backfill") == backfill]
            if runs and all(r["status"] == "SUCCESS" for r in runs):
                return backfill
            self.watch_sockets()
            time.sleep(2)
        raise RuntimeError(f"the initial sync backfill was not done within {timeout:.0f} s (status {status})")

    def backfill_status(self, backfill: str) -> str:
        return self.graphql(BACKFILL_STATUS, id=backfill)["partitionBackfillOrError"].get("status") or "?"

    def wait_for_write_back(self, timeout: float) -> None:
        """Until a write-back run has finished (the first reconciliation's batch, sent under the sure faults)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = [r for r in self.runs() if r["tags"].get("dagster/sensor_name") == "precoro_writeback"]
            if any(r["status"] not in ACTIVE_RUN for r in runs):
                return
            self.watch_sockets()
            time.sleep(2)
        raise RuntimeError(f"no write-back run finished within {timeout:.0f} s of the sensors starting")

    def runs(self) -> list[dict]:
        result = self.graphql(RUNS)["runsOrError"]
        if result["__typename"] != "Runs":
            raise RuntimeError(f"could not list runs: {result}")
        for run in result["results"]:
            run["tags"] = {t["key"]: t["value"] for t in run["tags"]}
        return result["results"]

    def ticks(self, sensor: str, after: float | None = None) -> list[dict]:
        found = self.graphql(SENSOR_TICKS, s=self.selector(sensor), after=after)["sensorOrError"]
        return (found.get("sensorState") or {}).get("ticks") or []

    def watch_sockets(self) -> None:
        """Note every listening socket of the simulator (this process) and of dagster dev's processes."""
        if self.process is None:
            return
        # the processes of dagster dev's session as they are now (a pid seen earlier may belong to anyone by now)
        ours = set(processes_in_session(self.process.pid)) | {os.getpid()}
        inodes = {inode: pid for pid in ours for inode in socket_inodes_of(pid)}
        for address, port, inode in listening_sockets():
            if inode not in inodes:
                continue
            pid = inodes[inode]
            name = f"{address}:{port} ({'simulator' if pid == os.getpid() else process_name(pid)})"
            if name not in self.report.sockets:
                self.report.sockets.append(name)
                if address != LOOPBACK:
                    self.report.sockets_not_loopback.append(name)

    # ---- the company ----
    def tick(self, events: int = 3) -> None:
        """What the simulator's `tick_every` does (`app.tick(3)`), keeping the changes: the payments the
        company makes itself are told apart from those write-back sent."""
        changes = self.control("POST", "tick", json={"events": events})["changes"]
        self.report.ticks += 1
        self.report.changes += len(changes)
        self.tick_payments |= {str(c["key"]) for c in changes if c["resource"] == "payments"}
        self.last_tick = time.monotonic()

    # ---- quiet ----
    def quiet(self) -> bool:
        """No run or backfill active, no write-back pending, and every sensor evaluated since the last run
        ended (so none of them has anything left to ask for)."""
        runs = self.runs()
        if any(run["status"] in ACTIVE_RUN for run in runs) or self._pending():
            return False
        if self.backfill_status(self.backfill) not in BACKFILL_DONE:
            return False
        last_end = max((run["endTime"] or run["updateTime"] or 0 for run in runs), default=0)
        if time.time() - last_end < 5:  # a failed run's retry is launched a moment after it ends
            return False
        for sensor in SENSORS:
            done = [t for t in self.ticks(sensor, after=last_end) if t["status"] not in ("STARTED",)]
            if not any(t["status"] == "SKIPPED" for t in done):
                return False
        return True

    def wait_quiet(self, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        said = time.monotonic()
        while time.monotonic() < deadline:
            self.watch_sockets()
            if self.quiet():
                return time.monotonic() - self.last_tick
            if time.monotonic() - said > 30:
                said = time.monotonic()
                statuses = Counter(run["status"] for run in self.runs())
                self.echo(f"catching up: {statuses['QUEUED']} runs queued, "
                          f"{sum(statuses[s] for s in ACTIVE_RUN) - statuses['QUEUED']} running, "
                          f"{statuses['SUCCESS']} succeeded, {statuses['FAILURE']} failed; "
                          f"{self._pending()} write-back(s) pending")
            time.sleep(2)
        return None

    # ---- figures ----
    def count_runs(self) -> None:
        report = self.report
        runs = self.runs()
        origins: Counter = Counter()
        for run in runs:
            tags = run["tags"]
            if "dagster/parent_run_id" in tags or "dagster/retry_number" in tags:
                report.run_retries += 1
            origin = tags.get("dagster/sensor_name") or ("backfill" if "dagster/backfill" in tags else "other")
            origins[origin] += 1
        report.runs = len(runs)
        report.runs_by_origin = dict(origins)
        report.runs_succeeded = sum(run["status"] == "SUCCESS" for run in runs)
        report.runs_failed = sum(run["status"] == "FAILURE" for run in runs)
        report.writeback_runs = origins.get("precoro_writeback", 0)
        for run in [r for r in runs if r["status"] == "FAILURE"][:10]:
            events = self.graphql(RUN_FAILURE, id=run["runId"])["logsForRun"].get("events") or []
            messages = [e["error"]["message"] if e.get("error") else e.get("message") or "" for e in events
                        if e["__typename"] in ("ExecutionStepFailureEvent", "RunFailureEvent")]
            report.failures.append(f"run {run['runId'][:8]} ({run['tags'].get('dagster/sensor_name', '')}): "
                                   + " | ".join(m.strip()[:300] for m in messages if m)[:900])
        for sensor in SENSORS:
            ticks = self.ticks(sensor, after=self.started_at)
            report.sensor_ticks[sensor] = len(ticks)
            failed = [t for t in ticks if t["status"] == "FAILURE"]
            report.sensor_tick_failures += len(failed)
            report.failures += [f"{sensor} tick: {(t['error'] or {}).get('message', '').strip()[:300]}"
                                for t in failed[:3]]

    def measure(self) -> DaemonSoakReport:
        # Payments Precoro holds now that neither existed before write-back started nor were made by the
        # company's ticks: every one of them was sent by write-back.
        self.writeback_payments = Counter(
            _payment_identity(p) for p in self.export("payments")
            if str(p["idn"]) not in self.initial_payments and str(p["idn"]) not in self.tick_payments)
        super().measure()  # fills in self.report, a DaemonSoakReport here
        return self.report

    def check_token(self) -> None:
        """Grep DAGSTER_HOME (run storage, event log, compute logs), PRECORO_HOME (warehouse, state, ledger), the
        logs of dagster dev and everything this soak printed for the API token."""
        needle = self.token.encode()
        self.report.files_grepped = sum(1 for path in self.home.rglob("*") if path.is_file())
        self.report.token_found = [str(p.relative_to(self.home)) for p in files_containing(self.home, needle)]
        printed = "\n".join(self.printed + self.report.failures)
        if self.token in printed:
            self.report.token_found.append("(printed output)")

    # ---- the whole soak ----
    def run(self, seconds: float, tick_every: float, rng: random.Random, min_rounds: int = 1,
            timeout: float = 900, smoke: bool = False) -> DaemonSoakReport:
        from precoro_assets.settings import ledger_dir

        from ..demo_ledger import company_from_simulator, demo_ledger_for, write_demo_ledger

        self.echo(f"starting dagster dev (webserver and daemon on 127.0.0.1, DAGSTER_HOME={self.dagster_home}) ...")
        self.start_dagster(timeout=min(timeout, 300))
        self.watch_sockets()
        self.control("POST", "faults", json={"kind": "error", "status": 503, "method": "GET", "count": 2,
                                             "after": 3})
        self.echo("initial sync of every document day: a backfill the daemon runs ...")
        self.backfill = self.launch_initial_sync(timeout)
        write_demo_ledger(demo_ledger_for(company_from_simulator(self.sim.url)), ledger_dir())
        self.initial_payments = {str(p["idn"]) for p in self.export("payments")}
        for rule in SURE_FAULTS:
            self.control("POST", "faults", json=rule)
        for sensor in SENSORS:
            self.start_sensor(sensor)
        self.echo(f"sensors running: {', '.join(SENSORS)}; waiting for the first reconciliation and write-back "
                  "(sending on) ...")
        self.wait_for_write_back(timeout)
        if smoke:
            self.report.smoke = True
            self.control("DELETE", "faults")
            self.watch_sockets()
            self.report.backfill = self.backfill_status(self.backfill)
            self.count_runs()
            return self.measure()
        self.echo("the company lives ...")
        started = time.monotonic()
        deadline = started + seconds
        while time.monotonic() < deadline or self.report.rounds < min_rounds:
            round_started = time.monotonic()
            self.report.rounds += 1
            self.tick()
            self.arm_faults(rng)
            self.watch_sockets()
            runs = self.runs()
            statuses = Counter(run["status"] for run in runs)
            self.echo(f"round {self.report.rounds}: {self.report.changes} changes so far; runs: "
                      f"{sum(statuses[s] for s in ACTIVE_RUN)} active, {statuses['SUCCESS']} succeeded, "
                      f"{statuses['FAILURE']} failed; {time.monotonic() - started:.0f} s of {seconds:.0f}")
            time.sleep(max(0.0, tick_every - (time.monotonic() - round_started)))
        self.report.seconds = time.monotonic() - started
        self.echo("the company stops; faults cleared; waiting for the daemon to catch up and go quiet ...")
        self.control("DELETE", "faults")
        self.report.quiet_after = self.wait_quiet(timeout)
        self.watch_sockets()
        self.report.backfill = self.backfill_status(self.backfill)
        self.count_runs()
        return self.measure()

    def left_behind(self) -> list[int]:
        return processes_in_session(self.process.pid) if self.process is not None else []

    def stop(self) -> None:
        """Stop dagster dev (its webserver, daemon, code server and any run), then the simulator."""
        try:
            if self.process is not None:
                if self.process.poll() is None:
                    self.process.send_signal(signal.SIGINT)  # dagster dev shuts its services down
                    try:
                        self.process.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        pass
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(timeout=30)
                # then every process of its session, even one that left the group, until none is left
                deadline = time.monotonic() + 60
                while (left := self.left_behind()) and time.monotonic() < deadline:
                    for pid in left:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    time.sleep(0.2)
        finally:
            self.sim.stop()


def run_daemon_soak(home: Path, seconds: float, tick_every: float = 3.0, seed: int = 7, days: int = 10,
                    documents: int = 150, echo: Callable[[str], None] = print, min_rounds: int = 1,
                    sensor_interval: int = 5, timeout: float | None = None,
                    smoke: bool = False) -> DaemonSoakReport:
    """The soak through `dagster dev` (a real daemon) with all state under `home` (PRECORO_HOME = home/var,
    DAGSTER_HOME = home/dagster, the logs of dagster dev in home/logs). Every process it started is stopped
    before it returns, whatever happened; the token grep runs after that, so every log is complete.

    `timeout` bounds each wait (the initial sync, the first write-back, going quiet; default 15 minutes plus
    four times `seconds`: on 2 busy cores the daemon runs about one run every 10 s and falls behind a company
    ticking every few seconds). `smoke` stops after the first write-back, without letting the company live."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(("PRECORO_", "DAGSTER_"))}
    soak = None
    try:
        soak = _DaemonSoak(home, seed, days, documents, echo, sensor_interval)
        try:
            report = soak.run(seconds, tick_every, random.Random(seed), min_rounds,
                              timeout if timeout is not None else 900 + 4 * seconds, smoke)
        finally:
            soak.stop()
        soak.check_token()
        return report
    finally:
        for name in [k for k in os.environ if k.startswith(("PRECORO_", "DAGSTER_"))]:
            del os.environ[name]
        os.environ.update(saved)


def _limit_api_pool(dagster_home: Path) -> None:
    """One Precoro-bound step at a time on the soak's instance, as on the instances users get."""
    import dagster as dg

    from precoro_assets.defs.ingest import limit_api_pool

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        limit_api_pool(instance)
