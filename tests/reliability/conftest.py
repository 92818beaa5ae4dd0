"""Fixtures for the reliability suite: the ingest tests' simulator environment, reused (not copied)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ingest.environment import Env, make_env


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """A simulator (limits off, 1000x clock) with the definitions pointed at it, as in tests/ingest."""
    environment = make_env(tmp_path, monkeypatch)
    yield environment
    environment.sim.stop()
