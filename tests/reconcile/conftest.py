"""Fixtures for the reconciliation tests: a simulator, a synced warehouse, the demo ledger and the definitions.

Syncing is the slow part, so it happens once per session into a template directory; each test gets a fresh
copy of that warehouse, a fresh outbox, a fresh ledger folder and a simulator reset to the same company
(`/_sim/reset` regenerates it from the seed), so tests don't depend on each other.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import httpx
import pytest

from precoro_assets import settings
from precoro_assets.definitions import build_definitions
from precoro_assets.settings import ledger_dir
from precoro_assets.writeback.outbox import Outbox
from precoro_sim.demo_ledger import company_from_simulator, demo_ledger_for, write_demo_ledger
from precoro_sim.simulator import RunningSimulator, start_simulator
from tests.support import precoro_env

SEED, DAYS, DOCUMENTS = 7, 20, 300
SYNCED = ["precoro/invoices", "precoro/payments", "precoro/purchase_orders"]
RECONCILIATION = ["precoro/ledger_payments", "precoro/ledger_bills", "precoro/reconciliation_invoices",
                  "precoro/reconciliation_ledger", "precoro/writeback_outbox"]


def point_at(monkeypatch: pytest.MonkeyPatch, sim: RunningSimulator, home: Path) -> settings.Settings:
    """As the shared `point_at`, with any warehouse, state, ledger or send setting from the shell unset."""
    return precoro_env.point_at(monkeypatch, sim, home, DAYS, PRECORO_WAREHOUSE=None, PRECORO_STATE_DIR=None,
                                PRECORO_LEDGER_DIR=None, PRECORO_WRITEBACK_SEND=None)


def definitions(config: settings.Settings) -> dg.Definitions:
    """The project's definitions, with a short request timeout: the simulator's `reset` fault sometimes leaves a
    kept-alive connection hanging instead of resetting it, and each hang would cost the default 30 s."""
    defs = build_definitions(config)
    precoro = defs.resources["precoro"].model_copy(update={"timeout_seconds": 3.0})
    return dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs,
                          schedules=defs.schedules, sensors=defs.sensors,
                          resources={**defs.resources, "precoro": precoro})


@pytest.fixture
def suite_definitions():
    """`definitions` for a test that builds its own Env (with other settings)."""
    return definitions


class Env(precoro_env.SimEnv):
    """Runs must succeed; exports keep amounts exact; plus the reconciliation, outbox and write-back."""

    # ---- Dagster ----
    def materialize(self, keys: list[str], partition_range: tuple[str, str] | None = None
                    ) -> dg.ExecuteInProcessResult:
        result = self.materialize_keys(keys, partition_range=partition_range)
        assert result.success
        return result

    def sync(self) -> None:
        start = self.config.start_date.isoformat()
        self.materialize(SYNCED, (start, datetime.now(UTC).date().isoformat()))

    def reconcile(self) -> dict[str, dict]:
        """Materialize the ledger and the reconciliation; metadata per asset."""
        result = self.materialize(RECONCILIATION)
        return {e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
                for e in result.get_asset_materialization_events()}

    def writeback(self, run_config: dict | None = None) -> dict:
        job = self.defs.resolve_job_def("precoro_writeback")
        result = job.execute_in_process(instance=self.instance, run_config=run_config or {})
        assert result.success
        return result.output_for_node("write_back")

    # ---- simulator ----
    def export(self, resource: str) -> list[dict]:
        """Ground truth: every record of a resource, amounts as exact Decimals."""
        response = httpx.get(f"{self.sim.url}/_sim/export/{resource}", timeout=30)
        response.raise_for_status()
        return json.loads(response.content, parse_float=Decimal)["data"]

    def request_mark(self) -> int:
        return self.request_log()[1]

    def requests_since(self, mark: int) -> list[dict]:
        return self.request_log(mark)[0]

    def writes_since(self, mark: int) -> Counter:
        """Write requests Precoro answered since `mark`, as (method, path) -> count."""
        return Counter((r["method"], r["url"].split("?")[0]) for r in self.requests_since(mark)
                       if r["method"] != "GET" and r["status"] == 200)

    # ---- local state ----
    @property
    def outbox(self) -> Outbox:
        return Outbox(self.config.state_dir / "outbox.sqlite", self.config.database_url_value)


@dataclass
class Template:
    sim: RunningSimulator
    home: Path


@pytest.fixture(scope="session")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    """Invoices, payments and purchase orders of the simulator's company, synced once through Dagster."""
    sim = start_simulator(seed=SEED, days=DAYS, documents=DOCUMENTS, limits="off", port=0)
    home = tmp_path_factory.mktemp("template") / "var"
    with pytest.MonkeyPatch.context() as monkeypatch:
        config = point_at(monkeypatch, sim, home)
        env = Env(sim, config, definitions(config), dg.DagsterInstance.ephemeral())
        env.sync()
    yield Template(sim, home)
    sim.stop()


@pytest.fixture
def env(synced: Template, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    """A synced warehouse (a copy), the demo ledger for the company, an empty outbox; the simulator reset."""
    httpx.post(f"{synced.sim.url}/_sim/reset", timeout=60).raise_for_status()
    home = tmp_path / "var"
    shutil.copytree(synced.home / "warehouse", home / "warehouse")
    config = point_at(monkeypatch, synced.sim, home)
    write_demo_ledger(demo_ledger_for(company_from_simulator(synced.sim.url)), ledger_dir())
    return Env(synced.sim, config, definitions(config), dg.DagsterInstance.ephemeral())
