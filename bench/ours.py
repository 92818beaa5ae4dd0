"""precoro-assets as a user runs it: the Dagster document assets, materialized in-process like `run_sync`.

Only the document group is run (the six document types, credit notes included: the same data dlt is given), over the partition
range of the simulated history, in one run (the assets' BackfillPolicy.single_run). The incremental sync
is measured two ways: the change sensor plus the partition runs it requests (what runs in production),
and a re-run of the whole range (what `precoro-assets sync --start --end` does).
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any


def configure(url: str, token: str, email: str, home: Path, start: date, time_scale: float,
              shared_budget: str | None = None) -> None:
    """Point the definitions at the simulator the way tests/ingest/conftest.py does (`shared_budget`: the
    directory of a request budget shared with another company's sync)."""
    if shared_budget:
        os.environ["PRECORO_SHARED_BUDGET"] = shared_budget
    os.environ.update({
        "PRECORO_API_TOKEN": token,
        "PRECORO_EMAIL": email,
        "PRECORO_BASE_URL": url,
        "PRECORO_START_DATE": start.isoformat(),
        "PRECORO_HOME": str(home),
        "PRECORO_TIME_SCALE": f"{time_scale:g}",
        "DAGSTER_HOME": str(home / "dagster"),
    })
    (home / "dagster").mkdir(parents=True, exist_ok=True)


class Ours:
    """The definitions and a Dagster instance, built once per worker process."""

    def __init__(self, max_wait_seconds: float | None = None) -> None:
        import dagster as dg

        from precoro_assets import settings
        from precoro_assets.definitions import build_definitions
        from precoro_assets.defs.resources import PrecoroResource

        self.dg = dg
        self.config = settings.load()
        self.defs = build_definitions(self.config)
        self.resources = dict(self.defs.resources or {})
        if max_wait_seconds is not None:
            # The resource's 600 s, scaled like every other duration: how long a run may wait for quota
            # before it stops with QuotaExhausted and leaves the rest to a later run.
            self.resources["precoro"] = PrecoroResource(
                api_token=dg.EnvVar("PRECORO_API_TOKEN"), email=dg.EnvVar("PRECORO_EMAIL"),
                base_url=self.config.base_url, region=self.config.region, time_scale=self.config.time_scale,
                state_dir=str(self.config.budget_dir), max_wait_seconds=max_wait_seconds,
                shared_budget=str(self.config.budget_dir) if self.config.shared_budget else None)
        self.instance = dg.DagsterInstance.ephemeral()

    def _document_assets(self, only: list[str] | None = None) -> tuple[Any, list]:
        from precoro_assets.defs.ingest import DOCUMENTS_GROUP

        selection = (self.dg.AssetSelection.groups(DOCUMENTS_GROUP) if only is None else
                     self.dg.AssetSelection.assets(*(self.dg.AssetKey.from_user_string(k) for k in only)))
        keys = selection.resolve(self.defs.resolve_asset_graph())
        assets = [a for a in self.defs.assets or [] if isinstance(a, self.dg.AssetsDefinition) and set(a.keys) & keys]
        return selection, assets

    def _run(self, assets: list, selection: Any, tags: dict, partition_key: str | None = None,
             run_config: Any = None) -> dict:
        dg = self.dg
        # Step retries stay on, as in production: an asset stopped by QuotaExhausted asks Dagster to retry it
        # when the quota window reopens (RetryRequested).
        config = run_config.to_config_dict() if isinstance(run_config, dg.RunConfig) else dict(run_config or {})
        run_config = {**config, "loggers": {"console": {"config": {"log_level": "ERROR"}}}}
        result = dg.materialize(assets, instance=self.instance, resources=self.resources, selection=selection,
                                partition_key=partition_key, tags=tags, run_config=run_config, raise_on_error=False)
        materialized = sorted({e.asset_key.to_user_string() for e in result.get_asset_materialization_events()})
        failures = [e.step_failure_data.error.message.strip().splitlines()[0][:300]
                    for e in result.all_events if e.is_step_failure and e.step_failure_data.error]
        return {"ok": result.success, "materialized": materialized, "failures": failures}

    def sync_range(self, first: date, last: date, only: list[str] | None = None) -> dict:
        """The document assets (or `only` these, as Dagster's re-execute-from-failure does) for first..last."""
        selection, assets = self._document_assets(only)
        outcome = self._run(assets, selection, {"dagster/asset_partition_range_start": first.isoformat(),
                                                "dagster/asset_partition_range_end": last.isoformat()})
        outcome["all_assets"] = sorted(k.to_user_string() for a in assets for k in a.keys)
        return outcome

    def sensor_cycle(self) -> dict:
        """One tick of the change sensor, then every partition run it asks for."""
        dg = self.dg
        sensor = self.defs.resolve_sensor_def("precoro_changes")
        with dg.build_sensor_context(instance=self.instance, resources=self.resources, definitions=self.defs,
                                     sensor_name="precoro_changes") as context:
            evaluation = sensor.evaluate_tick(context)
        runs = evaluation.run_requests or []
        _, assets = self._document_assets()
        outcomes = []
        for request in runs:
            selection = dg.AssetSelection.assets(*(request.asset_selection or []))
            outcomes.append(self._run(assets, selection, dict(request.tags), partition_key=request.partition_key,
                                      run_config=request.run_config))
        return {"ok": all(o["ok"] for o in outcomes), "partition_runs": len(runs),
                "failures": [f for o in outcomes for f in o["failures"]],
                "skip_reason": evaluation.skip_message}

    def loaded_documents(self) -> int:
        """Documents queryable in the warehouse right now with their lines (headers awaiting lines not counted)."""
        return self._count(with_lines=True)

    def stored_documents(self) -> int:
        """Documents queryable right now, headers awaiting their lines included."""
        return self._count(with_lines=False)

    def _count(self, with_lines: bool) -> int:
        from precoro_assets.catalogue import DOCUMENTS
        from precoro_assets.warehouse.rows import has_lines_column
        from precoro_assets.warehouse.store import Warehouse

        warehouse = Warehouse(self.config.warehouse, **self.config.warehouse_options())

        def count(con: Any) -> int:
            present = {r[0] for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'precoro'").fetchall()}
            return sum(con.execute(f'SELECT count(*) FROM precoro."{e.name}"'  # noqa: S608
                                   + (" WHERE lines_synced_at IS NOT NULL" if with_lines and has_lines_column(e)
                                      else "")).fetchone()[0]
                       for e in DOCUMENTS if e.name in present)

        return warehouse.read(count)
