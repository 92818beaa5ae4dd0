"""`precoro-assets sync` as a user runs it: what it costs, and failures that are fast, short and say what to do."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest

from precoro_assets.runtime.run_launcher import limit_pool, process_tags
from precoro_sim.simulator import start_simulator

DAGSTER_YAML = Path(__file__).resolve().parents[2] / "precoro_assets" / "dagster.yaml"


@pytest.mark.e2e
def test_the_summary_counts_the_requests_of_assets_that_failed_too(tmp_path: Path):
    with start_simulator(seed=5, days=10, documents=120, limits="off", port=0) as sim:
        # every document asset fails after its list pages and retries were spent: no document materialization
        # reports what its run sent
        for path in ("/purchaserequisitions/{idn}", "/purchaseorders/{idn}", "/receipts/{idn}", "/invoices/{idn}",
                     "/payments"):
            httpx.post(f"{sim.url}/_sim/faults", json={"kind": "error", "status": 500, "path": path,
                                                       "count": None}).raise_for_status()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PRECORO_", "DAGSTER_"))}
        env.update(PRECORO_API_TOKEN=sim.token, PRECORO_EMAIL=sim.email, PRECORO_BASE_URL=sim.url,
                   PRECORO_HOME=str(tmp_path / "var"), PRECORO_TIME_SCALE="1000",
                   PRECORO_START_DATE=(datetime.now(UTC).date() - timedelta(days=10)).isoformat())
        start = (datetime.now(UTC).date() - timedelta(days=5)).isoformat()

        done = subprocess.run([sys.executable, "-m", "precoro_sim.cli", "sync", "--start", start],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)

        assert done.returncode == 1, done.stderr[-2000:]
        assert re.search(r"precoro/invoices\s+NO", done.stdout) and re.search(r"precoro/suppliers\s+yes", done.stdout)
        sent = httpx.get(f"{sim.url}/_sim/stats").json()["total"]
        [spent] = re.findall(r"requests spent: (\d+)", done.stdout)
        assert int(spent) == sent and sent > 20
    # its Dagster instance runs one Precoro-bound step at a time, by a limit on that pool alone
    with dg.DagsterInstance.from_config(str(tmp_path / "var" / "dagster")) as instance:
        assert instance.event_log_storage.get_concurrency_info("precoro_api").slot_count == 1
        assert instance.event_log_storage.get_concurrency_info("some_pool_of_yours").slot_count == 0


def sync_command(tmp_path: Path, **settings: str) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRECORO_", "DAGSTER_"))}
    env.update({"PRECORO_HOME": str(tmp_path / "var"), "PRECORO_EMAIL": "me@example.com",
                "PRECORO_START_DATE": (datetime.now(UTC).date() - timedelta(days=10)).isoformat(), **settings})
    start = (datetime.now(UTC).date() - timedelta(days=5)).isoformat()
    return [sys.executable, "-m", "precoro_sim.cli", "sync", "--start", start], env


@pytest.mark.e2e
def test_rejected_credentials_stop_the_sync_with_one_clear_line(tmp_path: Path):
    with start_simulator(seed=5, days=10, documents=120, limits="off", port=0) as sim:
        command, env = sync_command(tmp_path, PRECORO_API_TOKEN="not-the-token", PRECORO_BASE_URL=sim.url,
                                    PRECORO_TIME_SCALE="1000")
        done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        sent = httpx.get(f"{sim.url}/_sim/stats").json()["total"]

    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "Dagster" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and "PRECORO_API_TOKEN" in lines[0] and lines[1].startswith("Stopping: ")
    assert "precoro/invoices" not in done.stdout  # the document run was not started
    assert sent == 1  # the first 401 stopped every other request, in every process
    assert done.stdout.strip().endswith("requests spent: 1")


@pytest.mark.e2e
@pytest.mark.timing  # a bound on wall-clock time: a clean-clone CI under six busy workers took 71 s, alone ~15 s
def test_an_unreachable_base_url_stops_the_sync_within_seconds_naming_the_setting(tmp_path: Path):
    command, env = sync_command(tmp_path, PRECORO_API_TOKEN="token", PRECORO_BASE_URL="http://127.0.0.1:9")
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)

    assert time.monotonic() - started < 60  # Dagster's start included; the requests' own share is about 6 s
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and "PRECORO_BASE_URL" in lines[0] and lines[1].startswith("Stopping: ")
    assert done.stdout.strip().endswith("requests spent: 0")


@pytest.mark.e2e
def test_an_unreachable_shared_state_database_stops_the_sync_naming_the_setting_and_never_the_password(
        tmp_path: Path):
    command, env = sync_command(tmp_path, PRECORO_API_TOKEN="token", PRECORO_BASE_URL="http://127.0.0.1:9",
                                PRECORO_DATABASE_URL="postgresql://precoro:Pw-never-shown@127.0.0.1:9/precoro")
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)

    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and "PRECORO_DATABASE_URL" in lines[0] and lines[1].startswith("Stopping: ")
    assert "postgresql://precoro@127.0.0.1:9/precoro" in lines[0]  # where, without the password
    assert "Pw-never-shown" not in done.stdout + done.stderr
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and b"Pw-never-shown" in p.read_bytes()]
    assert done.stdout.strip().endswith("requests spent: 0")


@pytest.mark.e2e
@pytest.mark.timing  # a wall-clock bound (stopped within 30 s): 6 busy test workers once stretched it to 31 s
def test_sigterm_stops_the_sync_and_starts_no_other_run(tmp_path: Path):
    # the simulator's limits 10x faster than Precoro's: a request every 0.1 s, so the sync takes a while
    with start_simulator(seed=5, days=10, documents=120, limits="scaled:10", port=0) as sim:
        command, env = sync_command(tmp_path, PRECORO_API_TOKEN=sim.token, PRECORO_EMAIL=sim.email,
                                    PRECORO_BASE_URL=sim.url, PRECORO_TIME_SCALE="10")
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        while httpx.get(f"{sim.url}/_sim/stats").json()["total"] < 3:  # the reference run is under way
            assert process.poll() is None, process.communicate()
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        out, err = process.communicate(timeout=120)
        assert time.monotonic() - stopped < 30
        sent = httpx.get(f"{sim.url}/_sim/stats").json()["total"]
        time.sleep(2)
        assert httpx.get(f"{sim.url}/_sim/stats").json()["total"] == sent  # nothing goes on behind our back

    assert process.returncode == 143 and "Stopped (SIGTERM)" in err
    assert "precoro/invoices" not in out and "precoro/analyst_views" not in out  # no later run was started


# ---- the precoro_api pool slot, held by another run ---------------------------------------------------------------

def test_the_api_pool_gets_a_limit_of_its_own_and_one_set_before_is_kept():
    with dg.DagsterInstance.ephemeral() as instance:
        assert limit_pool(instance, "precoro_api", 1)
        assert instance.event_log_storage.get_concurrency_info("precoro_api").slot_count == 1
        instance.event_log_storage.set_concurrency_slots("precoro_api", 3)  # its owner allows three
        assert not limit_pool(instance, "precoro_api", 1)
        assert instance.event_log_storage.get_concurrency_info("precoro_api").slot_count == 3
        assert instance.event_log_storage.get_concurrency_info("other").slot_count == 0  # no other pool capped


def api_slot_taken_by_a_live_run(tmp_path: Path, wait: bool = False) -> tuple[dg.DagsterInstance, str]:
    """A run of a live process (this test's) that holds the only precoro_api slot of the sync's Dagster instance;
    with `wait`, it queues for the slot and takes it as soon as a step of the sync gives it back."""
    home = tmp_path / "var" / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(home))
    holder = instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED,
                                            tags={"precoro/cli": "sync documents", **process_tags()}))
    limit_pool(instance, "precoro_api", 1)  # as the sync itself does (it keeps a limit already set)
    deadline = time.monotonic() + 120
    while not instance.event_log_storage.claim_concurrency_slot("precoro_api", holder.run_id,
                                                                "precoro__invoices").is_claimed:
        assert wait and time.monotonic() < deadline
        time.sleep(0.05)
    return instance, holder.run_id


def stderr_lines(process: subprocess.Popen) -> queue.Queue:
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
    return lines


def wait_for_line(lines: queue.Queue, text: str, process: subprocess.Popen, timeout: float = 120) -> list[str]:
    seen = []
    deadline = time.monotonic() + timeout
    while not any(text in line for line in seen):
        assert process.poll() is None or not lines.empty(), seen
        try:
            seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
        except queue.Empty:
            raise AssertionError(f"no line with {text!r} within {timeout} s: {seen}") from None
    return seen


@pytest.mark.e2e
@pytest.mark.timing  # a wall-clock bound (stopped within 5 s): 6 busy test workers stretched one to 7.6 s
def test_a_sync_that_finds_the_api_slot_held_says_by_which_run_and_stops_at_once_on_ctrl_c(tmp_path: Path):
    with start_simulator(seed=5, days=10, documents=120, limits="off", port=0) as sim:
        command, env = sync_command(tmp_path, PRECORO_API_TOKEN=sim.token, PRECORO_EMAIL=sim.email,
                                    PRECORO_BASE_URL=sim.url, PRECORO_TIME_SCALE="1000")
        instance, holder = api_slot_taken_by_a_live_run(tmp_path)
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        try:
            lines = stderr_lines(process)
            [said] = wait_for_line(lines, "Waiting for the precoro_api pool slot", process)
            assert holder in said and "sync documents" in said and "Terminate" in said

            process.send_signal(signal.SIGINT)
            stopped = time.monotonic()
            process.wait(timeout=30)
            assert time.monotonic() - stopped < 5
        finally:
            process.kill()
        sent = httpx.get(f"{sim.url}/_sim/stats").json()["total"]

    assert process.returncode == 130
    assert [line for line in lines.queue if "Stopped (SIGINT)" in line] and "Traceback" not in "".join(lines.queue)
    assert sent == 0  # it waited for the slot: not one request
    assert instance.event_log_storage.get_concurrency_info("precoro_api").claimed_slots[0].run_id == holder
    instance.dispose()


@pytest.mark.e2e
@pytest.mark.timing  # a wall-clock bound (stopped within 5 s): 6 busy test workers stretched one to 7.6 s
def test_a_sync_blocked_on_the_api_slot_mid_run_stops_within_seconds_on_sigterm_and_gives_back_its_claim(
        tmp_path: Path):
    # the simulator's limits 10x faster than Precoro's: a request every 0.1 s, so the reference run takes a while
    with start_simulator(seed=5, days=10, documents=120, limits="scaled:10", port=0) as sim:
        command, env = sync_command(tmp_path, PRECORO_API_TOKEN=sim.token, PRECORO_EMAIL=sim.email,
                                    PRECORO_BASE_URL=sim.url, PRECORO_TIME_SCALE="10")
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        try:
            lines = stderr_lines(process)
            while httpx.get(f"{sim.url}/_sim/stats").json()["total"] < 1:  # the reference run is under way
                assert process.poll() is None, process.communicate()
                time.sleep(0.05)
            # another run (alive: this test) takes the slot when the step under way gives it back
            instance, holder = api_slot_taken_by_a_live_run(tmp_path, wait=True)
            [said] = wait_for_line(lines, "Waiting for the precoro_api pool slot", process)
            assert holder in said

            process.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            process.wait(timeout=30)
            assert time.monotonic() - stopped < 5
        finally:
            process.kill()

    assert process.returncode == 143
    assert [line for line in lines.queue if "Stopped (SIGTERM)" in line]
    [sync_run] = [r for r in instance.get_runs() if r.tags.get("precoro/cli") == "sync reference"]
    assert sync_run.status == dg.DagsterRunStatus.CANCELED
    info = instance.event_log_storage.get_concurrency_info("precoro_api")
    assert [s.run_id for s in info.claimed_slots] == [holder]
    assert sync_run.run_id not in {s.run_id for s in info.pending_steps}  # its place in the queue given back
    instance.dispose()


@pytest.mark.e2e
def test_writeback_frees_the_api_slot_of_a_killed_run_instead_of_waiting_for_ever(tmp_path: Path):
    # a run of a process that is gone (as after kill -9 of `writeback --send`) holds the only precoro_api slot;
    # `catalogue-sync` goes through the same door (cli._job_in_api_slot)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    instance, holder = api_slot_taken_by_a_live_run(tmp_path)
    instance.add_run_tags(holder, {"precoro/pid": dead.stdout.strip()})
    with start_simulator(seed=5, days=10, documents=120, limits="off", port=0) as sim:
        command, env = sync_command(tmp_path, PRECORO_API_TOKEN=sim.token, PRECORO_EMAIL=sim.email,
                                    PRECORO_BASE_URL=sim.url, PRECORO_TIME_SCALE="1000")
        done = subprocess.run([*command[:3], "writeback", "--send"], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)

    assert done.returncode == 0, done.stderr[-2000:]
    assert "Nothing to write back" in done.stdout
    assert instance.get_run_by_id(holder).status == dg.DagsterRunStatus.FAILURE
    assert not instance.event_log_storage.get_concurrency_info("precoro_api").claimed_slots
    instance.dispose()


def test_the_summary_of_a_run_over_several_days_adds_up_each_days_counts():
    from precoro_assets.cli import _run_metadata

    run = {"run total": "no: this day's own rows and counts; the other figures are the run's (..)",
           "rows in the run's days": 7, "detail requests": 5}
    days = [{**run, "listed by Precoro": 3, "new": 2, "changed": 1, "unchanged": 0, "removed": 0},
            {**run, "listed by Precoro": 4, "new": 4, "changed": 0, "unchanged": 0, "removed": 1}]
    summary = _run_metadata(days)
    assert (summary["listed by Precoro"], summary["new"], summary["changed"], summary["removed"]) == (7, 6, 1, 1)
    assert summary["detail requests"] == 5 and summary["rows in the run's days"] == 7  # the run's own, once
    one_day = {"dagster/row_count": 3, "listed by Precoro": 3, "new": 3}
    assert _run_metadata([one_day]) == one_day and _run_metadata([]) == {}


@pytest.mark.e2e
def test_commands_started_at_once_on_a_fresh_home_create_one_dagster_instance_that_opens(tmp_path: Path):
    """Three processes open a fresh PRECORO_HOME's Dagster instance at the same moment (as two commands, or the UI
    and the daemon, do): one creates its storage and dagster.yaml while the others wait, so all succeed and the
    instance then opens, with no "more than one head" from storage stamped twice and no temporary file left."""
    opener = (
        "import sys, time, pathlib\n"
        "import dagster\n"  # imported before the start line, so that the three reach the home at once
        "from precoro_assets.cli import _dagster_home\n"
        "from precoro_assets.settings import load_state\n"
        "config = load_state()\n"
        "pathlib.Path(sys.argv[1]).touch()\n"
        "while not pathlib.Path(sys.argv[2]).exists():\n"
        "    time.sleep(0.001)\n"
        "print(_dagster_home(config))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRECORO_", "DAGSTER_"))}
    env["PRECORO_HOME"] = str(tmp_path / "var")
    go = tmp_path / "go"
    processes = [subprocess.Popen([sys.executable, "-c", opener, str(tmp_path / f"ready{n}"), str(go)], env=env,
                                  cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for n in range(3)]
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready{n}").exists() for n in range(3)):
            assert all(p.poll() is None for p in processes), [p.communicate()[1][-2000:] for p in processes]
            assert time.monotonic() < deadline, "(the premise: the three processes start)"
            time.sleep(0.01)
        go.touch()
        outcomes = [(p.wait(timeout=60), *p.communicate()) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()

    home = tmp_path / "var" / "dagster"
    assert [code for code, _, _ in outcomes] == [0, 0, 0], [err[-2000:] for _, _, err in outcomes]
    assert {out.strip() for _, out, _ in outcomes} == {str(home)}
    assert (home / "dagster.yaml").read_text() == DAGSTER_YAML.read_text()
    assert not list(home.glob("*.new")), "no temporary copy of dagster.yaml is left"
    for _ in range(2):  # a later start opens it too
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert instance.get_runs() == []
            instance.event_log_storage.get_concurrency_info("precoro_api")
