"""What the definitions tests of this folder share."""

from __future__ import annotations

import pytest


@pytest.fixture
def configured_account(monkeypatch, tmp_path) -> None:
    """A configured account (so settings.load() starts no simulator and sets nothing in os.environ)."""
    for name, value in {"PRECORO_API_TOKEN": "token", "PRECORO_EMAIL": "api@example.com",
                        "PRECORO_BASE_URL": "http://127.0.0.1:9", "PRECORO_START_DATE": "2026-11-01",
                        "PRECORO_HOME": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
