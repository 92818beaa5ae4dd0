"""The lock the request ledger and the detail staging take around their writes: one holder at a time across
processes, the waiter woken as soon as it is free (or giving up after a timeout), and never left held by a
process that died."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from precoro_assets.runtime.process_lock import ProcessLock

pytestmark = pytest.mark.e2e  # a simulator on a socket or child processes: in make test, not in make test-fast

HOLD = """
import sys, time
from precoro_assets.runtime.process_lock import ProcessLock

lock = ProcessLock(sys.argv[1])
with lock.held():
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def holder(path: Path, seconds: float) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_a_second_process_waits_until_the_holder_lets_go_and_no_longer(tmp_path: Path):
    path = tmp_path / "ledger.lock"
    process = holder(path, 0.5)
    began = time.monotonic()
    with ProcessLock(path).held():
        waited = time.monotonic() - began
    process.wait(timeout=10)
    assert 0.3 < waited < 2.0


def test_a_holder_killed_with_sigkill_leaves_the_lock_free(tmp_path: Path):
    path = tmp_path / "ledger.lock"
    process = holder(path, 60)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    began = time.monotonic()
    with ProcessLock(path).held():
        assert time.monotonic() - began < 1.0


def test_a_timed_wait_gives_up_while_another_process_holds_the_lock(tmp_path: Path):
    path = tmp_path / "write.lock"
    process = holder(path, 60)
    try:
        lock = ProcessLock(path)
        began = time.monotonic()
        assert lock.acquire(timeout=0.3) is False
        assert 0.3 <= time.monotonic() - began < 2.0
    finally:
        process.kill()
        process.wait(timeout=10)
    assert lock.acquire(timeout=5) is True
    lock.release()
