"""The API token never leaves the environment variable: not in output, logs, Dagster storage or the warehouse."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from precoro_sim.simulator import start_simulator

pytestmark = pytest.mark.e2e  # a simulator on a socket or child processes: in make test, not in make test-fast



def files_containing(root: Path, needle: bytes) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            try:
                if needle in path.read_bytes():
                    found.append(path)
            except OSError:
                continue
    return found


def test_a_sync_leaves_the_token_nowhere(tmp_path: Path):
    with start_simulator(seed=5, days=10, documents=120, limits="off", port=0) as sim:
        home = tmp_path / "var"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PRECORO_", "DAGSTER_"))}
        env.update(PRECORO_API_TOKEN=sim.token, PRECORO_EMAIL=sim.email, PRECORO_BASE_URL=sim.url,
                   PRECORO_HOME=str(home), PRECORO_TIME_SCALE="1000",
                   PRECORO_START_DATE=(datetime.now(UTC).date() - timedelta(days=10)).isoformat())
        start = (datetime.now(UTC).date() - timedelta(days=5)).isoformat()
        done = subprocess.run([sys.executable, "-m", "precoro_sim.cli", "sync", "--start", start],
                              env=env, cwd=tmp_path, capture_output=True, timeout=600)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        assert b"precoro/invoices" in done.stdout  # it did sync

        # a failing request (wrong e-mail) must not leak the token in its error either
        env["PRECORO_EMAIL"] = "someone-else@example.com"
        failed = subprocess.run([sys.executable, "-m", "precoro_sim.cli", "sync", "--start", start],
                                env=env, cwd=tmp_path, capture_output=True, timeout=600)
        assert failed.returncode != 0
        assert b"PRECORO_API_TOKEN" in failed.stdout + failed.stderr  # the error says what to fix

        token = sim.token.encode()
        assert token not in done.stdout + done.stderr + failed.stdout + failed.stderr
        assert (home / "dagster").is_dir() and (home / "warehouse").is_dir() and (home / "state").is_dir()
        assert files_containing(home, token) == []
