"""The ingest tests' environment: a simulator on localhost and the Dagster definitions pointed at it (the
reliability tests use it too)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest

from precoro_assets.definitions import build_definitions
from precoro_sim.simulator import start_simulator
from tests.support.precoro_env import SimEnv, point_at

DAYS = 20


class Env(SimEnv):
    """Runs don't raise: the tests inspect failures as well as successes."""

    def days(self) -> tuple[date, date]:
        """The first partition day (PRECORO_START_DATE) and today."""
        return self.config.start_date, datetime.now(UTC).date()

    def materialize(self, selection: str | list[str], partition: str | None = None,
                    partition_range: tuple[str, str] | None = None, run_config=None) -> dg.ExecuteInProcessResult:
        keys = [selection] if isinstance(selection, str) else selection
        return self.materialize_keys(keys, partition, partition_range, raise_on_error=False, run_config=run_config)


def make_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limits: str = "off", documents: int = 300,
             time_scale: float = 1000.0, days: int = DAYS, **settings: str) -> Env:
    sim = start_simulator(seed=11, days=days, documents=documents, limits=limits, port=0)
    config = point_at(monkeypatch, sim, tmp_path / "var", days, PRECORO_TIME_SCALE=str(time_scale),
                      PRECORO_SENSOR_INTERVAL_SECONDS="30", **settings)
    return Env(sim, config, build_definitions(config), dg.DagsterInstance.ephemeral())
