"""Fixtures every suite may use: where the shared state and the warehouse live (this disk, or a real PostgreSQL
server and a real S3-compatible server that the tests start themselves)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import object_storage
import postgres_server
import pytest

from precoro_assets.ledger import files
from precoro_assets.settings import ENV_DATABASE_URL, ENV_SETTLE_SECONDS
from precoro_sim import embedded

# The tests stand on the harness: with no account configured, the bundled simulator (the embedded default), as
# `precoro-assets demo` and `sync` have it. The product itself sets nothing; inherited by subprocesses.
embedded.apply()

# Tests write a ledger file and load it at once: they don't wait for the 2 s quiet period an export needs in
# production (tests/reconcile/test_ledger_files.py checks that wait with its own setting). Inherited by subprocesses.
os.environ.setdefault(ENV_SETTLE_SECONDS, "0")
# ... and the default of the ledger readers the tests call directly (FileLedgerSource(folder), load_catalogue).
files.SETTLE_SECONDS = 0.0


@pytest.fixture(params=["sqlite", "postgres"])
def state_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a test twice: shared state in SQLite files under PRECORO_STATE_DIR, then in a fresh PostgreSQL
    database (PRECORO_DATABASE_URL, inherited by every process the test starts). With PostgreSQL the warehouse's
    catalog moves there too; its files stay in the local warehouse directory (one host)."""
    if request.param == "postgres":
        monkeypatch.setenv(ENV_DATABASE_URL, postgres_server.fresh_database_url())
    else:
        monkeypatch.delenv(ENV_DATABASE_URL, raising=False)
    yield request.param


@pytest.fixture(params=["local", "postgres+s3"])
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
