"""The CLI's answers to a mistake are one line that says what to fix, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # a simulator on a socket or child processes: in make test, not in make test-fast



def cli(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRECORO_", "DAGSTER_"))}
    env.update(PRECORO_HOME=str(tmp_path / "var"), **settings)
    return subprocess.run([sys.executable, "-m", "precoro_sim.cli", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_bad_setting_is_one_line_naming_the_variable_and_only_commands_that_need_it_complain(tmp_path: Path):
    for command in (["sync", "--start", "2026-11-01"], ["reconcile"], ["writeback"]):
        done = cli(tmp_path, *command, PRECORO_START_DATE="01/11/2026")
        assert done.returncode != 0
        assert done.stderr.strip() == "Error: PRECORO_START_DATE must be YYYY-MM-DD, not '01/11/2026'", command
    done = cli(tmp_path, "writeback", PRECORO_TIMEZONE="Mars/Base")
    assert done.returncode != 0 and "PRECORO_TIMEZONE" in done.stderr and "Traceback" not in done.stderr
    # a query needs no start date
    done = cli(tmp_path, "sql", "SELECT 1 AS one", PRECORO_START_DATE="01/11/2026")
    assert done.returncode == 0 and done.stdout.split() == ["one", "1"]


def test_sql_shows_null_integers_as_nothing_and_says_what_to_do_about_a_missing_table(tmp_path: Path):
    done = cli(tmp_path, "sql", "SELECT 7 AS n, NULL::INTEGER AS m UNION ALL SELECT NULL, 3 ORDER BY 1")
    assert done.returncode == 0 and "NaN" not in done.stdout and "None" not in done.stdout
    assert [line.split() for line in done.stdout.splitlines()] == [["n", "m"], ["7"], ["3"]]
    done = cli(tmp_path, "sql", "SELECT 7 AS n, NULL::INTEGER AS m", "--format", "csv")
    assert done.stdout.splitlines() == ["n,m", "7,"]

    done = cli(tmp_path, "sql", "SELECT * FROM precoro.invoices_overview")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "does not exist" in done.stderr and "precoro-assets sync --start" in done.stderr


def test_a_start_day_in_the_future_is_named_as_such_not_as_an_end_before_the_start(tmp_path: Path):
    done = cli(tmp_path, "sync", "--start", "2030-01-01", PRECORO_START_DATE="2026-01-01")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "--end" not in done.stderr
    assert "--start" in done.stderr and "2030-01-01 is after today" in done.stderr

    done = cli(tmp_path, "sync", "--start", "2026-03-01", "--end", "2026-02-01", PRECORO_START_DATE="2026-01-01")
    assert done.returncode != 0 and "--end 2026-02-01 is before --start 2026-03-01" in done.stderr


def test_a_forgotten_token_for_a_named_precoro_is_reported_never_filled_in_with_the_simulators(tmp_path: Path):
    """With a region or a remote base URL set, a missing token is a mistake: the embedded default (the
    simulator's token, its time scale, a local simulator) must not be aimed at the real Precoro."""
    for named in ({"PRECORO_REGION": "eu"}, {"PRECORO_BASE_URL": "https://api.precoro.com"}):
        done = cli(tmp_path, "sync", "--start", "2026-11-01", **named)
        assert done.returncode != 0 and "Traceback" not in done.stderr, named
        assert "PRECORO_API_TOKEN is not set" in done.stderr, named
        assert not (tmp_path / "var" / "warehouse").exists(), named  # nothing synced from anywhere
