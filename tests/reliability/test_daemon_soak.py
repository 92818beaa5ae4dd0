"""The soak through a real Dagster daemon (issue #7): `dagster dev` (webserver and dagster-daemon on 127.0.0.1,
DAGSTER_HOME in the test's folder with the project's dagster.yaml) runs the initial sync as a backfill, and the
sensors precoro_changes, precoro_reconcile_automation and precoro_writeback (started through Dagster's GraphQL
API, write-back sending on) keep the warehouse up with a company that lives, while 5xx bursts, resets, slow
answers and lost POST/PATCH answers are injected. Nothing in this process launches a run.

The long ones run with the shared state in SQLite files and in PostgreSQL (the daemon's runs inherit
PRECORO_DATABASE_URL). At the end the warehouse equals Precoro, no payment or patch was applied twice, the token is nowhere (DAGSTER_HOME:
run storage, event log, compute logs; PRECORO_HOME; the logs of dagster dev; everything printed), every socket
the simulator, webserver, daemon and code server listened on was 127.0.0.1, and no process is left behind.

The smoke (in `make test`, about 2 minutes) stops after the first write-back; on 2 busy cores the daemon gets
through about one run every 10 s, so even a short soak that waits for the daemon to catch up takes several
minutes: it and the five-minute one run with `pytest -m reliability`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from precoro_sim.simulator.app import token_for_seed
from precoro_sim.soak.daemon import DaemonSoakReport, run_daemon_soak
from tests.reliability.reliability_support import files_containing, processes_in_session

pytestmark = pytest.mark.e2e  # a simulator on a socket or child processes: in make test, not in make test-fast


SEED = 7
FAULT_KINDS = ("error", "reset", "slow", "lost_response")  # 5xx bursts, resets, slow answers, lost answers


def check_daemon_did_the_work(report: DaemonSoakReport, home: Path, printed: str) -> None:
    lines = "\n".join(report.lines())
    assert report.ok, lines + "\n" + "\n".join(report.failures)
    # the daemon launched every run: the backfill's, the sensors', the automation sensor's
    assert report.runs > 0, lines
    for origin in ("backfill", "precoro_reconcile_automation", "precoro_writeback"):
        assert report.runs_by_origin.get(origin, 0) >= 1, lines
    # the backfill's run succeeded (the smoke may stop before the backfill daemon marks it complete)
    assert report.backfill in (("COMPLETED_SUCCESS", "REQUESTED") if report.smoke else ("COMPLETED_SUCCESS",)), lines
    # write-back sent for real and nothing was applied twice
    assert report.payments_sent > 0 and report.patches_sent > 0, lines
    assert report.duplicates == 0 and report.duplicate_payments == 0 and report.duplicate_patches == 0, lines
    for kind in FAULT_KINDS:
        assert report.faults_injected.get(kind, 0) >= 1, (kind, lines)
    assert report.faults_injected["lost_response"] >= 2, lines  # a POST /payments answer and a PATCH answer
    # the token is nowhere
    token = token_for_seed(SEED)
    assert (home / "dagster" / "history" / "runs.db").exists() and (home / "dagster" / "storage").exists()
    assert (home / "var" / "warehouse").exists() and (home / "logs" / "dagster-dev.log").exists()
    assert report.token_found == [], lines
    assert files_containing(home, token.encode()) == []
    assert token not in printed and token not in lines
    assert all(token not in failure for failure in report.failures)
    # the simulator and the webserver were seen listening, and nothing listened beyond 127.0.0.1
    assert any("(simulator)" in s for s in report.sockets) and any("(webserver" in s for s in report.sockets), lines
    assert all(s.startswith("127.0.0.1:") for s in report.sockets), lines
    owners = ("(simulator)", "(webserver ", "(daemon ", "(code server ", "(run ", "(run step ", "(dagster dev ")
    assert all(any(owner in s for owner in owners) for s in report.sockets), lines  # ours, nobody else's
    assert report.sockets_not_loopback == [], lines
    # and every process dagster dev started is gone
    assert report.session and processes_in_session(report.session) == []


@pytest.mark.timeout(900)
def test_daemon_smoke_syncs_reconciles_and_writes_back_once_under_faults(tmp_path, capfd):
    report = run_daemon_soak(tmp_path, seconds=0, tick_every=3, seed=SEED, days=2, documents=20, min_rounds=0,
                             sensor_interval=3, timeout=600, smoke=True)
    out, err = capfd.readouterr()
    check_daemon_did_the_work(report, tmp_path, out + err)
    assert report.documents > 10 and report.rows_extra == 0
    print("\n".join(report.lines()))


@pytest.mark.reliability
@pytest.mark.timeout(3600)
def test_a_short_daemon_soak_converges_loses_and_duplicates_nothing_and_leaks_no_token(tmp_path, capfd,
                                                                                      state_backend):
    report = run_daemon_soak(tmp_path, seconds=20, tick_every=3, seed=SEED, days=6, documents=80, min_rounds=3,
                             sensor_interval=5)
    out, err = capfd.readouterr()
    check_daemon_did_the_work(report, tmp_path, out + err)
    assert report.state.startswith("PostgreSQL" if state_backend == "postgres" else "SQLite")
    assert report.quiet_after is not None
    assert report.rows_lost == 0 and report.rows_stale == 0 and report.rows_extra == 0
    assert report.differences == []
    assert report.documents > 50 and report.ticks >= 3 and report.changes > 0
    assert report.runs_by_origin.get("precoro_changes", 0) >= 1
    print("\n".join(report.lines()))


@pytest.mark.reliability
@pytest.mark.timeout(7200)
def test_the_reliability_command_soaks_for_five_minutes_through_the_daemon(tmp_path, state_backend):
    # the shared state in PostgreSQL (state_backend) reaches the command, and the daemon's runs, through
    # PRECORO_DATABASE_URL
    done = subprocess.run([sys.executable, "-m", "precoro_sim.cli", "reliability", "--daemon", "--minutes", "5",
                           "--tick-every", "5", "--home", str(tmp_path), "--seed", str(SEED)],
                          capture_output=True, text=True, timeout=7000)
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed[-5000:]
    assert ("shared state: PostgreSQL" if state_backend == "postgres" else "shared state: SQLite") in done.stdout
    for figure in ("runs launched by the daemon:", "documents synced:", "faults injected:", "requests spent:",
                   "429s:", "rows lost: 0 (must be 0); stale: 0; not in Precoro: 0",
                   "duplicates: 0 rows, 0 payments, 0 patches", "token found in: nothing", "result: OK"):
        assert figure in done.stdout, done.stdout
    for kind in FAULT_KINDS:
        assert f"{kind} " in done.stdout.split("faults injected:")[1].splitlines()[0], done.stdout
    token = token_for_seed(SEED)
    assert token not in printed
    assert files_containing(tmp_path, token.encode()) == []
    print(done.stdout)
