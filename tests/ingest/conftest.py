"""Fixtures for the ingest tests: a simulator on localhost, and the Dagster definitions pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ingest.environment import Env, make_env


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    environment = make_env(tmp_path, monkeypatch)
    yield environment
    environment.sim.stop()


@pytest.fixture
def unpaced_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """The client sped up a million times: a "second" lasts a microsecond, so nothing paces it (as in the
    throughput benchmark)."""
    environment = make_env(tmp_path, monkeypatch, time_scale=1e6)
    yield environment
    environment.sim.stop()


@pytest.fixture
def make_sim_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """make_sim_env(documents=..., days=..., PRECORO_X="...") -> an Env of that shape, stopped after the test."""
    made: list[Env] = []

    def make(**options) -> Env:
        made.append(make_env(tmp_path, monkeypatch, **options))
        return made[-1]

    yield make
    for environment in made:
        environment.sim.stop()
