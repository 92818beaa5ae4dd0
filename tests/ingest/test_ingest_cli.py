"""`precoro-assets sync` as a user runs it: what it costs, and failures that are fast, short and say what to do."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from precoro_assets.simulator import start_simulator


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

        done = subprocess.run([sys.executable, "-m", "precoro_assets.cli", "sync", "--start", start],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)

        assert done.returncode == 1, done.stderr[-2000:]
        assert re.search(r"precoro/invoices\s+NO", done.stdout) and re.search(r"precoro/suppliers\s+yes", done.stdout)
        sent = httpx.get(f"{sim.url}/_sim/stats").json()["total"]
        [spent] = re.findall(r"requests spent: (\d+)", done.stdout)
        assert int(spent) == sent and sent > 20


def sync_command(tmp_path: Path, **settings: str) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRECORO_", "DAGSTER_"))}
    env.update({"PRECORO_HOME": str(tmp_path / "var"), "PRECORO_EMAIL": "me@example.com",
                "PRECORO_START_DATE": (datetime.now(UTC).date() - timedelta(days=10)).isoformat(), **settings})
    start = (datetime.now(UTC).date() - timedelta(days=5)).isoformat()
    return [sys.executable, "-m", "precoro_assets.cli", "sync", "--start", start], env


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


def test_an_unreachable_base_url_stops_the_sync_within_seconds_naming_the_setting(tmp_path: Path):
    command, env = sync_command(tmp_path, PRECORO_API_TOKEN="token", PRECORO_BASE_URL="http://127.0.0.1:9")
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)

    assert time.monotonic() - started < 60  # Dagster's start included; the requests' own share is about 6 s
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and "PRECORO_BASE_URL" in lines[0] and lines[1].startswith("Stopping: ")
    assert done.stdout.strip().endswith("requests spent: 0")


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
