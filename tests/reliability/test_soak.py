"""The soak: the company lives under injected faults while the change sensor, reconciliation and write-back keep
up. At the end the warehouse equals Precoro (tests/ingest/truth.differences), no row is lost or duplicated, no
payment or patch was applied twice, and the API token is nowhere: not in the soak's DAGSTER_HOME (run storage,
event log), its PRECORO_HOME (warehouse, request ledger, staging, outbox, ledger exports) or anything printed.

The short version runs in `make test`; the long one (`pytest -m reliability`) lives for five minutes and also runs
the `precoro-assets reliability` command as a user would.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from reliability_support import files_containing

from precoro_assets.reliability_report import run_soak
from precoro_assets.simulator.app import token_for_seed

SEED = 7


def check(report, home, printed: str) -> None:
    lines = "\n".join(report.lines())
    assert report.ok, lines
    assert report.rows_lost == 0 and report.rows_stale == 0 and report.rows_extra == 0 and report.duplicates == 0
    assert report.duplicate_payments == 0 and report.duplicate_patches == 0
    assert report.differences == []
    assert report.documents > 50 and report.runs > 0 and report.ticks >= 2
    assert report.payments_sent > 0 and report.patches_sent > 0
    assert report.faults_injected.get("lost_response", 0) >= 2  # a POST and a PATCH answer were lost
    assert sum(report.faults_injected.values()) >= 5
    token = token_for_seed(SEED)
    assert token not in printed and token not in lines
    assert all(token not in failure for failure in report.failures)
    assert (home / "dagster" / "history").exists() and (home / "var" / "warehouse").exists()
    assert files_containing(home, token.encode()) == []


def test_a_short_soak_converges_loses_and_duplicates_nothing_and_leaks_no_token(tmp_path, capfd, caplog):
    report = run_soak(tmp_path, seconds=6, tick_every=2, seed=SEED, days=6, documents=80, min_rounds=2)
    out, err = capfd.readouterr()
    check(report, tmp_path, out + err + caplog.text)
    print("\n".join(report.lines()))


@pytest.mark.reliability
def test_the_reliability_command_soaks_for_five_minutes_and_prints_the_figures(tmp_path):
    done = subprocess.run([sys.executable, "-m", "precoro_assets.cli", "reliability", "--minutes", "5",
                           "--home", str(tmp_path), "--seed", str(SEED)],
                          capture_output=True, text=True, timeout=3600)
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed[-5000:]
    for figure in ("documents synced:", "faults injected:", "requests spent:", "429s:", "rows lost: 0",
                   "duplicates: 0 rows, 0 payments, 0 patches"):
        assert figure in done.stdout, done.stdout
    token = token_for_seed(SEED)
    assert token not in printed
    assert files_containing(tmp_path, token.encode()) == []
