"""A run killed mid-partition, a write failing mid-transaction, four runs at once: the warehouse stays whole.

These run the real definitions in real processes against the simulator on localhost: Dagster's own CLI
(`dagster asset materialize`), and small `python -c` runs of `precoro_assets.definitions`. The runs share
PRECORO_HOME with the test, so they share the warehouse, the staged details and the request ledger.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest

from precoro_assets.catalogue import BY_NAME
from precoro_assets.defs.ingest import ANALYST_VIEWS
from precoro_assets.ingest import sync
from precoro_assets.ingest.sync import partition_day
from precoro_assets.warehouse import tables
from precoro_assets.warehouse.rows import list_or_empty, value_at
from precoro_assets.warehouse.staging import DetailStaging
from tests.ingest.truth import differences

pytestmark = pytest.mark.e2e  # a simulator on a socket or child processes: in make test, not in make test-fast

INVOICES = BY_NAME["invoices"]
ASSET = "precoro/invoices"
DETAIL = "/invoices/{idn}"
REPO = Path(__file__).resolve().parents[2]
DAGSTER_YAML = REPO / "precoro_assets" / "dagster.yaml"
DAGSTER_CLI = Path(sys.executable).with_name("dagster")
RUN_TIMEOUT_S = 180

# One partition run of the definitions in its own process (in-process executor, ephemeral instance).
RUN_PARTITION = """
import sys
import dagster as dg
from precoro_assets.definitions import defs

key = dg.AssetKey.from_user_string(sys.argv[1])
assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and key in a.keys]
result = dg.materialize(assets, partition_key=sys.argv[2], resources=defs.resources, raise_on_error=False)
sys.exit(0 if result.success else 1)
"""


# ---- helpers -----------------------------------------------------------------------------------

def busiest_days(env, count: int) -> list[str]:
    """The `count` partition days with the most invoices, busiest first."""
    per_day = collections.Counter(partition_day(r).isoformat() for r in env.export("invoices"))
    days = [day for day, _ in per_day.most_common(count)]
    assert len(days) == count and per_day[days[-1]] >= 3, per_day
    return days


def on_days(*days: str) -> Callable[[dict], bool]:
    return lambda record: partition_day(record).isoformat() in days


def invoices_of(env, day: str) -> list[str]:
    return sorted(str(r["idn"]) for r in env.export("invoices") if partition_day(r).isoformat() == day)


def day_snapshot(env, day: str) -> dict[str, list[tuple]]:
    """Every row of the day in precoro.invoices and its child tables, as an analyst would read them."""
    snapshot = {}
    for table in [INVOICES.name, *(child.name for child in INVOICES.children)]:
        # when each row was written comes last, as one value (a rewrite of the same version differs only there)
        written = "synced_at, lines_synced_at" if table == INVOICES.name else "synced_at"
        sql = (f"SELECT * EXCLUDE (raw, {written}), CAST(raw AS VARCHAR), list_value({written}) "
               f"FROM precoro.{table} WHERE partition_day = ?")
        snapshot[table] = sorted(env.warehouse.read(lambda con, sql=sql: con.execute(sql, [day]).fetchall()),
                                 key=repr)
    return snapshot


def patch_external_ids(env, idns: list[str], tag: str) -> None:
    """Change invoices through Precoro's API (PATCH externalId), which moves their updateDate."""
    before = {str(r["idn"]): r["updateDate"] for r in env.export("invoices")}
    headers = {"X-AUTH-TOKEN": env.sim.token, "email": env.sim.email}
    for idn in idns:
        response = httpx.patch(f"{env.sim.url}/invoices/{idn}", data={"externalId": f"{tag}-{idn}"},
                               headers=headers, timeout=30)
        response.raise_for_status()
    after = {str(r["idn"]): r for r in env.export("invoices")}
    assert all(after[idn]["updateDate"] != before[idn] and after[idn]["externalId"] == f"{tag}-{idn}"
               for idn in idns)


def detail_gets(log: list[dict]) -> list[dict]:
    """The detail GETs answered so far (the log may also list requests still waiting for their answer)."""
    return [r for r in log if r["method"] == "GET" and r["path"] == DETAIL and r["status"] is not None]


def metadata_of(result: dg.ExecuteInProcessResult) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key != ANALYST_VIEWS]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def dagster_home(tmp_path: Path, name: str) -> Path:
    """A DAGSTER_HOME with the project's dagster.yaml."""
    home = tmp_path / name
    home.mkdir()
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    return home


def process_env(home: Path | None = None) -> dict[str, str]:
    """The test's environment (PRECORO_API_TOKEN, _EMAIL, _BASE_URL, _START_DATE, _HOME, _TIME_SCALE set by
    the env fixture), with its own DAGSTER_HOME if given."""
    environment = dict(os.environ)
    environment.pop("DAGSTER_HOME", None)
    if home is not None:
        environment["DAGSTER_HOME"] = str(home)
    return environment


def start_cli(home: Path, day: str, output: Path) -> subprocess.Popen:
    """`dagster asset materialize` for one partition, in a new session so that the whole run (the CLI and
    the step process its multiprocess executor starts) can be killed as one process group."""
    assert DAGSTER_CLI.exists(), DAGSTER_CLI
    command = [str(DAGSTER_CLI), "asset", "materialize", "-m", "precoro_assets.definitions",
               "--select", ASSET, "--partition", day]
    return spawn(command, process_env(home), output)


def spawn(command: list[str], environment: dict[str, str], output: Path) -> subprocess.Popen:
    """A process in a session of its own (so its whole group can be killed), writing to `output`."""
    with output.open("w") as out:
        return subprocess.Popen(command, env=environment, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def kill_run(process: subprocess.Popen) -> None:
    """SIGKILL the run's process group and wait until no process of it is left."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes of the killed run {process.pid} are still alive")


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


# ---- 5. a killed run ---------------------------------------------------------------------------

def test_a_run_killed_mid_partition_leaves_the_day_intact_and_its_retry_reuses_paid_details(env, tmp_path):
    day = busiest_days(env, 1)[0]
    assert env.materialize(ASSET, partition=day).success
    before = day_snapshot(env, day)
    assert len(before[INVOICES.name]) == len(invoices_of(env, day)) and before["invoice_items"]

    changed = invoices_of(env, day)[:6]
    patch_external_ids(env, changed, "killed-run")
    assert differences(env, INVOICES, on_days(day))  # Precoro moved on; the warehouse has not yet
    # Two detail GETs are answered at once; the third hangs, so the run is killed while it waits for it.
    answered = 2
    env.control("POST", "faults", json={"kind": "slow", "seconds": 20, "method": "GET", "path": DETAIL,
                                        "after": answered, "count": None})
    staging = DetailStaging(env.config.state_dir, env.config.database_url_value)
    _, mark = env.request_log()
    output = tmp_path / "killed-run.log"
    run = start_cli(dagster_home(tmp_path, "dagster-killed"), day, output)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not (len(detail_gets(env.request_log(mark)[0])) >= answered
                   and staging.count(INVOICES.name) >= answered):
            assert run.poll() is None, f"the run ended by itself:\n{output.read_text()[-5000:]}"
            assert time.monotonic() < deadline, f"no detail GETs arrived:\n{output.read_text()[-5000:]}"
            time.sleep(0.05)
        time.sleep(0.2)  # let it send the third GET, into the slow answer
        assert run.poll() is None
        kill_run(run)
        killed_at = time.time()  # the simulator runs in this process: same clock as its request log
    finally:
        stop(run)
    killed_log, mark = env.request_log(mark)
    paid = detail_gets(killed_log)
    assert len(paid) == answered and all(r["status"] == 200 for r in paid)

    # an analyst sees the day exactly as it was: nothing of the killed run
    assert day_snapshot(env, day) == before
    assert staging.count(INVOICES.name) == answered  # what it paid for is kept

    # The retry runs in this process's instance: in the killed run's own Dagster instance its slot of the pool
    # "precoro_api" stays claimed (nothing marks the run failed), so a rerun there would wait for it forever.
    env.control("DELETE", "faults")
    result = env.materialize(ASSET, partition=day)
    assert result.success
    rerun_log, _ = env.request_log(mark)
    # (the killed run's hanging GET is answered, into a closed socket, when its 20 s are up: not the rerun's)
    refetched = [r for r in detail_gets(rerun_log) if r["time"] >= killed_at]
    assert len(refetched) + len(paid) == len(changed)
    assert not {r["url"] for r in refetched} & {r["url"] for r in paid}
    metadata = metadata_of(result)
    assert metadata["changed"] == len(changed) and metadata["new"] == 0
    assert metadata["details reused from a failed run"] == answered
    assert metadata["detail requests"] == len(changed) - answered
    assert differences(env, INVOICES, on_days(day)) == []
    assert staging.count(INVOICES.name) == 0  # written, so forgotten
    staging.close()


def test_a_write_failing_mid_transaction_leaves_the_day_intact(env, monkeypatch):
    day = busiest_days(env, 1)[0]
    assert env.materialize(ASSET, partition=day).success
    before = day_snapshot(env, day)
    changed = invoices_of(env, day)[-4:]
    patch_external_ids(env, changed, "failed-write")

    real_insert_rows = tables.insert_rows
    seen_inside: list[tuple] = []

    def insert_then_fail(con, entity, rows):
        real_insert_rows(con, entity, rows)
        # inside the transaction the changed invoices are already deleted and inserted again ...
        seen_inside.append(con.execute(
            "SELECT count(*), count(*) FILTER (external_id LIKE 'failed-write-%') FROM precoro.invoices "
            "WHERE partition_day = ?", [day]).fetchone())
        # ... when the disk fills up before COMMIT
        raise duckdb.IOException("simulated: no space left on device")

    monkeypatch.setattr(tables, "insert_rows", insert_then_fail)
    result = env.materialize(ASSET, partition=day)
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert "simulated: no space left on device" in str(failure.step_failure_data.error)
    assert seen_inside == [(len(before[INVOICES.name]), len(changed))]
    assert day_snapshot(env, day) == before

    monkeypatch.setattr(tables, "insert_rows", real_insert_rows)
    _, mark = env.request_log()
    result = env.materialize(ASSET, partition=day)
    assert result.success
    assert detail_gets(env.request_log(mark)[0]) == []  # the failed run's details come from staging
    assert metadata_of(result)["details reused from a failed run"] == len(changed)
    assert differences(env, INVOICES, on_days(day)) == []


def test_a_batch_failing_after_earlier_ones_were_written_keeps_them_and_nothing_is_paid_twice(env, monkeypatch):
    """Batches are written in the background while the next one is fetched: a failed write still stops the run,
    the batches before it stay committed, and the retry takes every detail already paid for from staging."""
    monkeypatch.setattr(sync, "WRITE_BATCH_DOCUMENTS", 10)  # many small batches over the range
    start, end = env.days()
    real_insert_rows = tables.insert_rows
    writes: list[int] = []

    def second_write_fails(con, entity, rows):
        writes.append(len(rows.tables.get(entity.name, [])))
        if len(writes) == 2:
            raise duckdb.IOException("simulated: no space left on device")
        return real_insert_rows(con, entity, rows)

    monkeypatch.setattr(tables, "insert_rows", second_write_fails)
    _, mark = env.request_log()
    result = env.materialize(ASSET, partition_range=(start.isoformat(), end.isoformat()))
    assert not result.success
    assert "simulated: no space left on device" in str(result.get_step_failure_events()[0].step_failure_data.error)
    assert len(writes) == 2  # the error stopped the run at the next batch: no later batch was written
    stored = env.warehouse.read(lambda con: con.execute("SELECT count(*) FROM precoro.invoices").fetchone()[0])
    assert stored == writes[0] > 0  # the first batch stands, committed before the second one failed
    log, mark = env.request_log(mark)
    paid = [r["url"] for r in detail_gets(log)]

    monkeypatch.setattr(tables, "insert_rows", real_insert_rows)
    result = env.materialize(ASSET, partition_range=(start.isoformat(), end.isoformat()))
    assert result.success
    again = [r["url"] for r in detail_gets(env.request_log(mark)[0])]
    assert set(paid).isdisjoint(again)  # every detail the failed run paid for came from the warehouse or staging
    assert len(paid) + len(again) == len(env.export("invoices"))
    assert differences(env, INVOICES, lambda record: True) == []

# ---- 6. four runs at once ----------------------------------------------------------------------

class Analyst(threading.Thread):
    """An analyst's DuckDB session (the READ_ONLY attach of `analyst_snippet()`), querying in a loop.

    Each query reads, in one statement (one snapshot), per day the invoices, the invoices with their lines and
    the invoice lines: a day's headers come all at once (or not yet), and its lines too, never half written.
    """

    QUERY = ("SELECT 'invoices', CAST(partition_day AS VARCHAR), count(*) FROM precoro.invoices GROUP BY ALL "
             "UNION ALL SELECT 'with_lines', CAST(partition_day AS VARCHAR), count(lines_synced_at) "
             "FROM precoro.invoices GROUP BY ALL "
             "UNION ALL SELECT 'invoice_items', CAST(partition_day AS VARCHAR), count(*) "
             "FROM precoro.invoice_items GROUP BY ALL")

    def __init__(self, snippet: str, complete: dict[str, tuple[int, int]]):
        super().__init__(name="analyst", daemon=True)
        self.snippet = snippet
        self.complete = complete
        self.stopping = threading.Event()
        self.errors: list[str] = []
        self.partial: list[dict] = []
        self.queries = 0
        self.last: dict[str, tuple[int, int]] = {}  # day -> (invoices with lines, lines)

    def run(self) -> None:
        con = duckdb.connect()
        try:
            con.execute(self.snippet)
            while not self.stopping.is_set():
                try:
                    rows = con.execute(self.QUERY).fetchall()
                except duckdb.Error as error:
                    self.errors.append(str(error))
                    time.sleep(0.1)
                    continue
                self.queries += 1
                seen = collections.defaultdict(dict)
                for table, day, count in rows:
                    seen[day][table] = count
                state = {day: (counts.get("with_lines", 0), counts.get("invoice_items", 0))
                         for day, counts in seen.items()}
                headers = {day: counts.get("invoices", 0) for day, counts in seen.items()}
                if any(lines not in ((0, 0), self.complete.get(day)) or headers[day] not in (
                        0, (self.complete.get(day) or (None,))[0]) for day, lines in state.items()):
                    self.partial.append({day: (headers[day], *lines) for day, lines in state.items()})
                self.last = {day: lines for day, lines in state.items() if lines != (0, 0)}
                time.sleep(0.02)
        except Exception as error:  # noqa: BLE001 - reported by the test
            self.errors.append(f"{type(error).__name__}: {error}")
        finally:
            con.close()


def busy_at_once(windows: dict[str, tuple[float, float]]) -> int:
    """The most request windows that were open at one moment."""
    edges = sorted([(start, 1) for start, _ in windows.values()] + [(end, -1) for _, end in windows.values()])
    busy = most = 0
    for _, step in edges:
        busy += step
        most = max(most, busy)
    return most


def test_four_partition_runs_at_once_next_to_an_open_analyst_session(env, tmp_path):
    days = busiest_days(env, 4)
    truth = [r for r in env.export("invoices") if partition_day(r).isoformat() in days]
    complete = {}  # day -> (invoices, invoice lines) once the day is written
    for day in days:
        of_day = [r for r in truth if partition_day(r).isoformat() == day]
        complete[day] = (len(of_day), sum(len(list_or_empty(value_at(r, "items"))) for r in of_day))
    day_of_idn = {str(r["idn"]): partition_day(r).isoformat() for r in truth}
    # the analyst opens the warehouse before any run: its tables exist, still empty
    env.warehouse.write(lambda con: tables.ensure_tables(con, INVOICES))
    analyst = Analyst(env.warehouse.analyst_snippet(credentials=True), complete)
    analyst.start()
    wait_for(lambda: analyst.queries or analyst.errors, "the analyst's first query")
    # Every detail answer takes 0.3 s, so the four runs are busy long enough to overlap.
    env.control("POST", "faults", json={"kind": "slow", "seconds": 0.3, "method": "GET", "path": DETAIL,
                                        "count": None})
    _, mark = env.request_log()
    started_at = time.time()

    runs = []
    try:
        for day in days:
            output = tmp_path / f"run-{day}.log"
            # Each run is a separate process with its own (ephemeral) Dagster instance: in one instance with
            # the precoro_api pool limited (as `sync` and `demo` limit it) they would queue one after another.
            runs.append((day, output, spawn([sys.executable, "-c", RUN_PARTITION, ASSET, day], process_env(),
                                            output)))
        queries_before = analyst.queries
        for _, _, run in runs:
            run.wait(timeout=RUN_TIMEOUT_S)
        queries_during = analyst.queries - queries_before
        settled = analyst.queries + 2  # the last state is read by a query started after the last commit
        wait_for(lambda: analyst.queries >= settled or not analyst.is_alive(), "the analyst's last query")
    finally:
        for _, _, run in runs:
            stop(run)
        analyst.stopping.set()
        analyst.join(timeout=30)

    failed = {day: output.read_text()[-5000:] for day, output, run in runs if run.returncode != 0}
    assert failed == {}
    assert analyst.errors == []
    assert queries_during > 0
    assert analyst.partial == []  # never a day half written (or a day nobody asked for), headers or lines
    assert analyst.last == complete  # and the session sees the runs' commits without reconnecting

    log, _ = env.request_log(mark)
    windows = {}
    for request in detail_gets(log):
        day = day_of_idn[request["url"].split("?")[0].rsplit("/", 1)[1]]
        start, end = windows.get(day, (request["time"], request["time"]))
        windows[day] = (min(start, request["time"]), max(end, request["time"]))
    assert set(windows) == set(days)
    assert busy_at_once(windows) >= 2, windows  # the runs did overlap (else this test proves little)
    # the four processes took their requests from one ledger (which keeps a request for a day, 86.4 s here)
    with closing(sqlite3.connect(env.config.state_dir / "quota" / "precoro-quota.sqlite3")) as ledger:
        assert ledger.execute("SELECT count(*) FROM requests WHERE started >= ?", [started_at]).fetchone() \
            == (len(log),)

    assert differences(env, INVOICES, on_days(*days)) == []


# ---- Dagster's CLI -----------------------------------------------------------------------------

def test_dagster_asset_materialize_cli_syncs_one_partition(env, tmp_path, monkeypatch):
    day = busiest_days(env, 1)[0]
    home = dagster_home(tmp_path, "dagster")
    output = tmp_path / "cli.log"
    run = start_cli(home, day, output)
    try:
        run.wait(timeout=RUN_TIMEOUT_S)
    finally:
        stop(run)
    assert run.returncode == 0, output.read_text()[-5000:]
    assert differences(env, INVOICES, on_days(day)) == []
    assert len(env.query("SELECT idn FROM precoro.invoices")) == len(invoices_of(env, day))

    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        [record] = instance.get_run_records()
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        assert record.dagster_run.tags["dagster/partition"] == day
        event = instance.get_latest_materialization_event(dg.AssetKey(["precoro", "invoices"]))
        assert event.asset_materialization.partition == day
        assert event.asset_materialization.metadata["new"].value == len(invoices_of(env, day))
        checks = [e.dagster_event.event_specific_data for e in instance.all_logs(
            record.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
        # the asset's freshness check runs too: its verdict (yesterday listed by 06:00) depends on the day picked
        verdicts = {check.check_name: check.passed for check in checks}
        assert "freshness_check" in verdicts
        del verdicts["freshness_check"]
        assert verdicts == {
            "unique_keys": True, "children_have_parents": True, "count_matches_precoro": True,
            "total_equals_lines": True, "schema_drift": True, "nothing_only_in_raw": True}
