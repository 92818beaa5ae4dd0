"""Fixtures every suite may use: where the shared state lives (SQLite files, or a real PostgreSQL server)."""

from __future__ import annotations

from collections.abc import Iterator

import postgres_server
import pytest

from precoro_assets.shared_state import ENV_DATABASE_URL


@pytest.fixture(params=["sqlite", "postgres"])
def state_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a test twice: shared state in SQLite files under PRECORO_STATE_DIR, then in a fresh PostgreSQL
    database (PRECORO_DATABASE_URL, inherited by every process the test starts)."""
    if request.param == "postgres":
        monkeypatch.setenv(ENV_DATABASE_URL, postgres_server.fresh_database_url())
    else:
        monkeypatch.delenv(ENV_DATABASE_URL, raising=False)
    yield request.param


def pytest_sessionfinish(session: pytest.Session) -> None:
    postgres_server.stop()
