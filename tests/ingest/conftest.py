"""Fixtures for the ingest tests: a simulator on localhost, and the Dagster definitions pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest

from precoro_assets import settings
from precoro_assets.definitions import build_definitions
from precoro_assets.simulator import RunningSimulator, start_simulator
from precoro_assets.warehouse.store import Warehouse

DAYS = 20


@dataclass
class Env:
    """A simulator, a warehouse and the definitions that connect them."""

    sim: RunningSimulator
    config: settings.Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.config.warehouse)

    def control(self, method: str, path: str, **kwargs) -> dict:
        response = httpx.request(method, f"{self.sim.url}/_sim/{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def export(self, resource: str) -> list[dict]:
        return self.control("GET", f"export/{resource}")["data"]

    def request_log(self, since: int = 0) -> tuple[list[dict], int]:
        body = self.control("GET", f"requests?since={since}")
        return body["requests"], body["next"]

    def days(self) -> tuple[date, date]:
        today = datetime.now(UTC).date()
        return today - timedelta(days=DAYS), today

    def materialize(self, selection: str | list[str], partition: str | None = None,
                    partition_range: tuple[str, str] | None = None, run_config=None) -> dg.ExecuteInProcessResult:
        keys = [selection] if isinstance(selection, str) else selection
        tags = {}
        if partition_range:
            tags = {"dagster/asset_partition_range_start": partition_range[0],
                    "dagster/asset_partition_range_end": partition_range[1]}
        assets = [a for a in self.defs.assets if any(k.to_user_string() in keys for k in a.keys)]
        return dg.materialize(assets, partition_key=partition, instance=self.instance, resources=self.defs.resources,
                              tags=tags, raise_on_error=False, run_config=run_config)

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        return [tuple(row) for row in self.warehouse.query(sql, params).itertuples(index=False, name=None)]


def make_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limits: str = "off", documents: int = 300,
             time_scale: float = 1000.0) -> Env:
    sim = start_simulator(seed=11, days=DAYS, documents=documents, limits=limits, port=0)
    monkeypatch.setenv("PRECORO_API_TOKEN", sim.token)
    monkeypatch.setenv("PRECORO_EMAIL", sim.email)
    monkeypatch.setenv("PRECORO_BASE_URL", sim.url)
    monkeypatch.setenv("PRECORO_START_DATE", (datetime.now(UTC).date() - timedelta(days=DAYS)).isoformat())
    monkeypatch.setenv("PRECORO_HOME", str(tmp_path / "var"))
    monkeypatch.setenv("PRECORO_TIME_SCALE", str(time_scale))
    monkeypatch.setenv("PRECORO_SENSOR_INTERVAL_SECONDS", "30")
    config = settings.load()
    assert not config.using_simulator  # the test's own simulator, configured like a real account
    instance = dg.DagsterInstance.ephemeral()
    return Env(sim, config, build_definitions(config), instance)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    environment = make_env(tmp_path, monkeypatch)
    yield environment
    environment.sim.stop()
