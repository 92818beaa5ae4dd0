"""The simulator environment the ingest and reconcile tests share; each conftest subclasses `SimEnv`.

Importable as `precoro_env` through pytest's `pythonpath` (pyproject.toml), so both suites use one copy.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest

from precoro_assets import settings
from precoro_assets.warehouse.store import Warehouse
from precoro_sim.simulator import RunningSimulator


def point_at(monkeypatch: pytest.MonkeyPatch, sim: RunningSimulator, home: Path, days: int,
             **overrides: str | None) -> settings.Settings:
    """Configure PRECORO_* for `sim` as for a real account, state under `home`; an override of None unsets."""
    variables = {"PRECORO_API_TOKEN": sim.token, "PRECORO_EMAIL": sim.email, "PRECORO_BASE_URL": sim.url,
                 "PRECORO_START_DATE": (datetime.now(UTC).date() - timedelta(days=days)).isoformat(),
                 "PRECORO_HOME": str(home), "PRECORO_TIME_SCALE": "1000", **overrides}
    for name, value in variables.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return settings.load()


@dataclass
class SimEnv:
    """A simulator, a warehouse and the definitions that connect them."""

    sim: RunningSimulator
    config: settings.Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance

    # ---- Dagster ----
    def materialize_keys(self, keys: list[str], partition: str | None = None,
                         partition_range: tuple[str, str] | None = None, **kwargs) -> dg.ExecuteInProcessResult:
        """Materialize the assets named `keys`; a partition range goes in as the run's range tags."""
        tags = {}
        if partition_range:
            tags = {"dagster/asset_partition_range_start": partition_range[0],
                    "dagster/asset_partition_range_end": partition_range[1]}
        assets = [a for a in self.defs.assets if isinstance(a, dg.AssetsDefinition)
                  and any(k.to_user_string() in keys for k in a.keys)]
        return dg.materialize(assets, partition_key=partition, instance=self.instance,
                              resources=self.defs.resources, tags=tags, **kwargs)

    # ---- simulator ----
    def control(self, method: str, path: str, **kwargs) -> dict:
        response = httpx.request(method, f"{self.sim.url}/_sim/{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def export(self, resource: str) -> list[dict]:
        return self.control("GET", f"export/{resource}")["data"]

    def unknown_parameters(self) -> list[dict]:
        """Query parameters the contract does not name that reached the simulator since its last reset: Precoro
        probably ignores them silently, so each would be a filter that never filtered."""
        return self.control("GET", "stats")["unknown_parameters"]

    def request_log(self, since: int = 0) -> tuple[list[dict], int]:
        body = self.control("GET", f"requests?since={since}")
        return body["requests"], body["next"]

    # ---- local state ----
    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.config.warehouse, **self.config.warehouse_options())

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        return [tuple(row) for row in self.warehouse.query(sql, params).itertuples(index=False, name=None)]


def idle_after_failures(log: list[dict]) -> tuple[list[dict], int, float]:
    """Of a request log: the failed requests (500), the longest chain of failures of one URL (a retry may fail
    again and wait its own identical-GET window once more: that chain bounds the time lost), and the idle time in
    which no request went, beyond a few spacings (the pace itself, a busy machine)."""
    failed = [r for r in log if r["status"] == 500]
    chain = max(collections.Counter(r["url"] for r in failed).values())
    times = sorted(r["time"] for r in log)
    idle = sum(max(0.0, later - earlier - 0.5) for earlier, later in zip(times, times[1:], strict=False))
    return failed, chain, idle
