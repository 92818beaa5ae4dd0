"""Fixtures every suite may use: where the shared state and the warehouse live (this disk, or a real PostgreSQL
server and a real S3-compatible server that the tests start themselves)."""

from __future__ import annotations

import multiprocessing.process
import multiprocessing.util
import os
import socket
import subprocess
from collections.abc import Iterator

import pytest

from precoro_assets.ledger import files
from precoro_assets.settings import ENV_DATABASE_URL, ENV_SETTLE_SECONDS
from precoro_sim import embedded
from tests.support import object_storage, postgres_server

# The tests stand on the harness: with no account configured, the bundled simulator (the embedded default), as
# `precoro-assets demo` and `sync` have it. The product itself sets nothing; inherited by subprocesses.
embedded.apply()

# Tests write a ledger file and load it at once: they don't wait for the 2 s quiet period an export needs in
# production (tests/reconcile/test_ledger_files.py checks that wait with its own setting). Inherited by subprocesses.
os.environ.setdefault(ENV_SETTLE_SECONDS, "0")
# ... and the default of the ledger readers the tests call directly (FileLedgerSource(folder), load_catalogue).
files.SETTLE_SECONDS = 0.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.e2e)])
def state_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a test twice: shared state in SQLite files under PRECORO_STATE_DIR, then in a fresh PostgreSQL
    database (PRECORO_DATABASE_URL, inherited by every process the test starts). With PostgreSQL the warehouse's
    catalog moves there too; its files stay in the local warehouse directory (one host)."""
    if request.param == "postgres":
        monkeypatch.setenv(ENV_DATABASE_URL, postgres_server.fresh_database_url())
    else:
        monkeypatch.delenv(ENV_DATABASE_URL, raising=False)
    yield request.param


@pytest.fixture(params=["local", pytest.param("postgres+s3", marks=pytest.mark.e2e)])
def warehouse_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a test twice: the warehouse in a local directory, then with its catalog in a fresh PostgreSQL database
    and its Parquet files in a fresh bucket of an S3-compatible server (as on several hosts)."""
    monkeypatch.delenv(ENV_DATABASE_URL, raising=False)
    if request.param == "postgres+s3":
        monkeypatch.setenv(ENV_DATABASE_URL, postgres_server.fresh_database_url())
        for name, value in object_storage.fresh_bucket_settings().items():
            monkeypatch.setenv(name, value)
    yield request.param


def pytest_sessionfinish(session: pytest.Session) -> None:
    postgres_server.stop()
    object_storage.stop()


# ---- the fast tier (`make test-fast`) ----

def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fast", action="store_true",
                     help="the fast tier: tests not marked e2e or slow, each refused any socket and any child process")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("fast"):
        return
    slow = [item for item in items if item.get_closest_marker("e2e") or item.get_closest_marker("slow")
            or item.get_closest_marker("reliability")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item not in set(slow)]


@pytest.fixture(scope="session", autouse=True)
def _fast_tier_stays_in_process(request: pytest.FixtureRequest) -> None:
    """In the fast tier a test that opens a network socket or starts a process fails at once, naming the fix:
    so the tier stays fast by construction, not by a list someone forgets to update.

    A session-wide autouse fixture, so it is in place before every other fixture of any scope, in the process that
    runs the tests (each xdist worker, once it has started). Not covered: sockets opened in C (libpq, DuckDB's
    httpfs), and the embedded default's look for a simulator on 127.0.0.1 when this file is imported."""
    if request.config.getoption("fast"):
        _refuse_sockets_and_processes()


def _refuse_sockets_and_processes() -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the fast tier (make test-fast) opens no socket and starts no process: mark this test "
                           "(or its module: pytestmark = pytest.mark.e2e) e2e, or talk to the simulator in-process")

    def network_only(method):  # noqa: ANN001, ANN202 - wraps socket methods of several signatures
        def guarded(self: socket.socket, *args: object, **kwargs: object):  # noqa: ANN202
            if self.family != socket.AF_UNIX:
                refuse()
            return method(self, *args, **kwargs)
        return guarded

    for name in ("connect", "connect_ex", "bind", "sendto"):
        setattr(socket.socket, name, network_only(getattr(socket.socket, name)))
    subprocess.Popen._execute_child = refuse  # type: ignore[method-assign]
    multiprocessing.process.BaseProcess.start = refuse  # type: ignore[method-assign]
    multiprocessing.util.spawnv_passfds = refuse  # the forkserver's and resource tracker's own way to start
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
        if hasattr(os, name):
            setattr(os, name, refuse)
