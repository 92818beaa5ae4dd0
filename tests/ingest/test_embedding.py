"""precoro-assets in someone else's Dagster project: a translator names one company's assets, groups, jobs,
sensors, pools and resource keys, so the project keeps its own `warehouse` resource and assets beside it, and a
company synced under its own names lands in its warehouse exactly as Precoro holds it."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import dagster as dg
import pytest

from precoro_assets import PrecoroTranslator, build_definitions, load_settings
from precoro_assets.catalogue import ENTITIES
from tests.ingest.environment import make_env
from tests.ingest.truth import differences

pytestmark = pytest.mark.e2e  # a simulator on a socket or a child process: in make test, not in make test-fast

ACME = PrecoroTranslator(key_prefix=("acme", "precoro"), name_prefix="acme", resource_prefix="acme_")


@dg.asset(key=["finance", "budget_sheet"])
def budget_sheet(warehouse: dg.ResourceParam[str]) -> str:
    """The project's own asset, with the project's own resource named `warehouse`."""
    return warehouse


def project(company: dg.Definitions) -> dg.Definitions:
    return dg.Definitions.merge(company, dg.Definitions(assets=[budget_sheet], resources={"warehouse": "snowflake"}))


def test_importing_the_package_loads_nothing_and_names_its_public_surface():
    script = ("import sys, time; started = time.perf_counter(); import precoro_assets; "
              "took = time.perf_counter() - started; import json; "
              "print(json.dumps({'took': took, 'dagster': 'dagster' in sys.modules, 'all': precoro_assets.__all__}))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and done.stderr == "", done.stderr
    found = json.loads(done.stdout)
    assert not found["dagster"]  # each public name is imported when first used
    assert found["took"] < 2
    assert {"build_definitions", "PrecoroTranslator", "PrecoroResource", "WarehouseResource", "LedgerResource",
            "OutboxResource", "AlertResource", "load_settings"} <= set(found["all"])


def test_two_companies_and_the_projects_own_warehouse_resource_load_side_by_side(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch, documents=40, days=5)
    try:
        globex = PrecoroTranslator(key_prefix=("globex",), name_prefix="globex", resource_prefix="globex_")
        defs = dg.Definitions.merge(build_definitions(env.config, ACME), build_definitions(env.config, globex),
                                    dg.Definitions(assets=[budget_sheet], resources={"warehouse": "snowflake"}))
        dg.Definitions.validate_loadable(defs)
        repository = defs.get_repository_def()
        keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
        assert keys == ({f"acme/precoro/{name}" for name in _ours()} | {f"globex/{name}" for name in _ours()}
                        | {"finance/budget_sheet"})
        names = [job.name for job in repository.get_all_jobs() if not job.name.startswith("__")]
        names += [sensor.name for sensor in repository.sensor_defs]
        names += [schedule.name for schedule in repository.schedule_defs]
        assert all(name.startswith(("acme_", "globex_")) for name in names), names
        assert set(defs.resources or {}) == {"warehouse"} | {f"{company}_{what}" for company in ("acme", "globex")
                                                             for what in ("precoro", "warehouse", "ledger", "outbox",
                                                                          "alerts")}
        graph = defs.resolve_asset_graph()
        acme_keys = {key for key in graph.get_all_asset_keys() if key.path[0] == "acme"}
        for key in acme_keys:  # no edge between the companies
            assert all(parent.path[0] == "acme" for parent in graph.get(key).parent_keys), key
        groups = {graph.get(key).group_name for key in acme_keys}
        assert groups == {"acme_documents", "acme_reference", "acme_reconciliation", "acme_catalogue_sync",
                          "acme_analytics", "acme_sources"}
        assert {graph.get(key).pools and next(iter(graph.get(key).pools)) for key in acme_keys
                if graph.get(key).pools} == {"acme_api"}
    finally:
        env.sim.stop()


def test_a_company_under_its_own_names_syncs_as_precoro_holds_it(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch, documents=40, days=5)
    try:
        env.defs = project(build_definitions(env.config, ACME))
        start, end = env.days()
        references = [f"acme/precoro/{entity.name}" for entity in ENTITIES if not entity.partitioned]
        documents = [f"acme/precoro/{entity.name}" for entity in ENTITIES if entity.partitioned]
        first = env.materialize(references)
        synced = env.materialize(documents, partition_range=(start.isoformat(), end.isoformat()))
        assert first.success and synced.success
        for entity in ENTITIES:
            assert differences(env, entity) == [], entity.name
        materialized = {event.asset_key.to_user_string() for run in (first, synced)
                        for event in run.get_asset_materialization_events()}
        assert materialized == {*references, *documents, "acme/precoro/analyst_views"}  # the first sync made the views
        observed = {event.asset_key for run in (first, synced) for event in run.get_asset_observation_events()}
        assert observed == {ACME.key("api")}  # the quota, on the company's own API asset

        views = env.materialize(["acme/precoro/analyst_views", "finance/budget_sheet"])
        assert views.success and views.output_for_node("finance__budget_sheet") == "snowflake"
        reconciled = env.materialize(["acme/precoro/ledger_payments", "acme/precoro/ledger_bills",
                                      "acme/precoro/reconciliation_invoices", "acme/precoro/reconciliation_ledger",
                                      "acme/precoro/writeback_outbox"])
        assert reconciled.success
        classified, synced_invoices = env.warehouse.read(lambda con: con.execute(
            "SELECT (SELECT count(*) FROM precoro.reconciliation_invoices), (SELECT count(*) FROM precoro.invoices)"
        ).fetchone())
        assert classified == synced_invoices > 0  # every invoice, which equal Precoro's (above)
    finally:
        env.sim.stop()


def _ours() -> set[str]:
    """The key names (after the prefix) of one company's assets, every entity selected."""
    return {entity.name for entity in ENTITIES} | {
        "api", "ledger_folder", "analyst_views", "ledger_payments", "ledger_bills", "reconciliation_invoices",
        "reconciliation_ledger", "writeback_outbox", "catalogue_sync_plan"}


@pytest.mark.parametrize("sensors", [None, True, False])
def test_sensors_and_schedules_start_as_the_company_says(tmp_path, monkeypatch, sensors):
    """None: each as documented (the change and write-back sensors stopped, the alerts running); True or False:
    every one of the company's sensors and schedules starts so."""
    monkeypatch.setenv("ACME_TOKEN", "acme-token")
    config = load_settings("ACME_TOKEN", PRECORO_HOME=str(tmp_path / "acme"), PRECORO_BASE_URL="http://127.0.0.1:9")
    defs = build_definitions(config, dataclasses.replace(ACME, sensors=sensors))
    repository = defs.get_repository_def()
    running = {definition.name: definition.default_status == dg.DefaultSensorStatus.RUNNING
               for definition in repository.sensor_defs}
    running |= {definition.name: definition.default_status == dg.DefaultScheduleStatus.RUNNING
                for definition in repository.schedule_defs}
    assert len(running) >= 10
    if sensors is None:
        assert not running["acme_changes"] and not running["acme_writeback"]
        assert running["acme_run_failure_alerts"] and running["acme_reference_every_6h"]
    else:
        assert set(running.values()) == {sensors}, running
