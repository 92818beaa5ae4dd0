"""The warehouse holds exactly what Precoro holds, and keeping it so costs the fewest requests."""

from __future__ import annotations

import collections
import json
from datetime import date
from decimal import Decimal

import dagster as dg
import httpx
import pytest

from precoro_assets.catalogue import BY_NAME, DOCUMENTS, REFERENCE
from precoro_assets.defs.ingest import ANALYST_VIEWS
from precoro_assets.ingest.sync import partition_day
from precoro_sim.simulator.company import RESOURCES as SIMULATED_RESOURCES
from tests.ingest.environment import make_env
from tests.ingest.truth import differences

DOCUMENT_KEYS = [f"precoro/{e.name}" for e in DOCUMENTS]
REFERENCE_KEYS = [f"precoro/{e.name}" for e in REFERENCE]


def sync_everything(env) -> None:
    start, end = env.days()
    assert env.materialize(REFERENCE_KEYS).success
    assert env.materialize(DOCUMENT_KEYS, partition_range=(start.isoformat(), end.isoformat())).success
    assert env.materialize(["precoro/analyst_views"]).success


@pytest.fixture(scope="module")
def synced_env(tmp_path_factory: pytest.TempPathFactory):
    """One environment synced once, shared by the tests that only read it afterwards (the warehouse, the
    simulator's ground truth and its statistics): each sync costs a minute of CPU. A test that changes Precoro,
    the warehouse or the request log takes the function-scoped `env` and syncs its own."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        environment = make_env(tmp_path_factory.mktemp("synced"), monkeypatch)
        try:
            sync_everything(environment)
            yield environment
        finally:
            environment.sim.stop()


def detail_gets(log: list[dict]) -> list[dict]:
    return [r for r in log if r["method"] == "GET" and r["path"].endswith("{idn}")]


def list_gets(log: list[dict]) -> list[dict]:
    return [r for r in log if r["method"] == "GET" and not r["path"].endswith("}")]


def test_every_resource_precoro_serves_has_its_entity():
    # what the simulator serves is what the warehouse must hold: a resource without an entity is never synced
    assert sorted(e.path for e in DOCUMENTS + REFERENCE) == sorted(SIMULATED_RESOURCES)


@pytest.mark.e2e
def test_a_sync_of_the_whole_range_equals_precoro_ground_truth(synced_env):
    env = synced_env
    assert env.unknown_parameters() == []  # every filter sent is one the contract names
    for entity in DOCUMENTS + REFERENCE:
        assert differences(env, entity) == [], entity.name
    # units of measure (the latest entity): every one, and lines join them on their code
    units = env.export("units")
    assert units and sorted(env.query("SELECT id, code FROM precoro.units")) == sorted(
        (u["id"], u["code"]) for u in units)
    assert env.query("SELECT count(*) FROM precoro.invoice_items i LEFT JOIN precoro.units u ON u.code = i.unit "
                     "WHERE u.id IS NULL") == [(0,)]
    # typed columns carry exact values: money as DECIMAL, sumPaid read from Precoro's string
    truth = {str(r["idn"]): r for r in env.export("invoices")}
    for idn, amount, paid, created in env.query("SELECT idn, sum, sum_paid, create_date FROM precoro.invoices"):
        assert amount == Decimal(str(truth[idn]["sum"]))
        assert paid == Decimal(truth[idn]["sumPaid"])
        assert created.isoformat().replace("+00:00", "") == truth[idn]["createDate"].replace("+00:00", "")


@pytest.mark.e2e
def test_every_detail_is_fetched_once_and_list_pages_are_few(env):
    start, end = env.days()
    _, mark = env.request_log()
    assert env.materialize(DOCUMENT_KEYS, partition_range=(start.isoformat(), end.isoformat())).success
    log, _ = env.request_log(mark)
    details = detail_gets(log)
    documents = sum(len(env.export(e.path)) for e in DOCUMENTS if e.fetch_detail)
    assert len(details) == documents
    assert len({r["url"] for r in details}) == len(details)  # no detail twice
    assert all(r["status"] == 200 for r in log)
    # one walk per document type over the whole range: ceil(n / 200) pages each; for invoices, the plain list
    # (which leaves credit notes out) and the credit notes, which Precoro's own connector lists apart
    # (logicType[]=1&logicType[]=5)
    expected_pages = sum(max(1, -(-len(env.export(e.path)) // 200)) for e in DOCUMENTS if e.path != "invoices")
    credit_notes = [i for i in env.export("invoices") if i["logicType"] in (1, 5)]
    expected_pages += max(1, -(-(len(env.export("invoices")) - len(credit_notes)) // 200))
    expected_pages += max(1, -(-len(credit_notes) // 200))
    assert len(list_gets(log)) == expected_pages


@pytest.mark.e2e
def test_rematerializing_an_unchanged_partition_spends_only_its_list_requests(env):
    sync_everything(env)
    busiest = max(({partition_day(r) for r in env.export("invoices")}), key=lambda d: sum(
        1 for r in env.export("invoices") if partition_day(r) == d))
    _, mark = env.request_log()
    result = env.materialize("precoro/invoices", partition=busiest.isoformat())
    assert result.success
    log, _ = env.request_log(mark)
    assert detail_gets(log) == []
    assert len(list_gets(log)) == 2  # the day's list, and its credit notes listed apart
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["new"].value == 0 and metadata["changed"].value == 0 and metadata["unchanged"].value > 0


@pytest.mark.e2e
def test_the_change_sensor_requests_exactly_the_partitions_that_changed(env):
    sync_everything(env)
    changes = env.control("POST", "tick", json={"events": 12})["changes"]
    expected = set()
    for change in changes:
        entity = next((e for e in DOCUMENTS if e.path == change["resource"]), None)
        if entity is None:
            continue
        record = next(r for r in env.export(entity.path) if str(r["idn"]) == change["key"])
        expected.add((f"precoro/{entity.name}", partition_day(record).isoformat()))
    assert expected, "the tick changed no document"

    _, mark = env.request_log()
    result = tick_change_sensor(env)
    # one run for every changed document type and day: the days of the range, each asset told its own days
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    requested = {(key.to_user_string(), day) for key in request.asset_selection
                 for day in changed_days(request, key)}
    assert requested == expected
    assert request_days(request)[0] == min(day for _, day in expected)
    assert request_days(request)[1] == max(day for _, day in expected)
    sensor_log, mark = env.request_log(mark)
    # one list request per document type, and one for the credit notes
    assert len(sensor_log) == len(DOCUMENTS) + sum(len(e.also_list) for e in DOCUMENTS)

    assert run_requested(env, request).success
    runs_log, _ = env.request_log(mark)
    changed_documents = {(c["resource"], c["key"]) for c in changes
                         if c["resource"] in {e.path for e in DOCUMENTS if e.fetch_detail}}
    # the run gets the changed rows from the sensor: no day is listed again, one detail per changed document
    assert list_gets(runs_log) == []
    assert len(runs_log) == len(detail_gets(runs_log)) == len(changed_documents)
    for entity in DOCUMENTS:
        assert differences(env, entity) == [], entity.name

    # a second tick of the sensor with nothing new requests nothing (run keys and the cursor agree)
    again = tick_change_sensor(env, cursor=result.cursor)
    assert again.run_requests == []


def tick_change_sensor(env, cursor: str | None = None) -> dg.SensorResult:
    sensor = env.defs.resolve_sensor_def("precoro_changes")
    with dg.build_sensor_context(instance=env.instance, definitions=env.defs, resources=env.defs.resources,
                                 cursor=cursor) as context:
        return sensor.evaluate_tick(context)


def request_days(request: dg.RunRequest) -> tuple[str, str]:
    """The first and last partition day a run request covers."""
    if request.partition_key:
        return request.partition_key, request.partition_key
    return request.tags["dagster/asset_partition_range_start"], request.tags["dagster/asset_partition_range_end"]


def changed_days(request: dg.RunRequest, key: dg.AssetKey) -> list[str]:
    """The days the sensor told an asset of the run to bring in."""
    config = request.run_config["ops"][key.to_python_identifier()]["config"]["changed_documents"]
    return list(json.loads(config))


def changed_keys(request: dg.RunRequest, key: dg.AssetKey) -> set[str]:
    """The documents the sensor told an asset of the run to bring in."""
    config = request.run_config["ops"][key.to_python_identifier()]["config"]["changed_documents"]
    return {document for rows in json.loads(config).values() for document in rows}


def run_requested(env, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Run what the sensor requested, as the daemon would: its assets, days and config."""
    first, last = request_days(request)
    keys = [key.to_user_string() for key in request.asset_selection]
    if first == last:
        return env.materialize(keys, partition=first, run_config=request.run_config)
    return env.materialize(keys, partition_range=(first, last), run_config=request.run_config)


@pytest.mark.e2e
def test_documents_deleted_in_precoro_leave_the_warehouse(env):
    sync_everything(env)
    newest = env.export("invoices")[-1]
    # the shift_rows fault (delete mode) removes the newest invoice when page 2 of a list is asked for
    env.control("POST", "faults", json={"kind": "shift_rows", "mode": "delete", "path": "/invoices", "count": 1})
    headers = {"X-AUTH-TOKEN": env.sim.token, "email": env.sim.email}
    httpx.get(f"{env.sim.url}/invoices", params={"per_page": 10, "page": 2}, headers=headers).raise_for_status()
    assert str(newest["idn"]) not in {str(r["idn"]) for r in env.export("invoices")}

    result = env.materialize("precoro/invoices", partition=partition_day(newest).isoformat())
    assert result.success
    assert result.get_asset_materialization_events()[0].materialization.metadata["removed"].value == 1
    assert differences(env, BY_NAME["invoices"]) == []


@pytest.mark.e2e
def test_analyst_views_resolve_names(synced_env):
    env = synced_env
    rows = env.query("SELECT field_name, option_name, display_value FROM precoro.document_custom_fields_resolved "
                     "WHERE field_type = 'select'")
    assert rows and all(name is not None and option is not None for name, option, _ in rows)
    overview = env.query("SELECT amount, paid, outstanding, is_credit_note, supplier_name, status, "
                         "outstanding_in_company_currency, sum_in_company_currency FROM precoro.invoices_overview")
    assert overview and {8, 11} & {row[5] for row in overview}  # canceled and closed invoices are there
    for amount, paid, outstanding, credit, supplier, status, owed_in_company, total_in_company in overview:
        assert supplier
        owes = not credit and status not in (3, 8, 11)  # denied, canceled and closed invoices owe nothing
        assert outstanding == (max(amount - paid, 0) if owes else 0)
        assert owed_in_company == round(outstanding * total_in_company / amount, 2)
    lines = env.query("SELECT count(*) FROM precoro.purchase_order_lines")[0][0]
    assert lines == env.query("SELECT count(*) FROM precoro.purchase_order_items")[0][0]


@pytest.mark.e2e
def test_every_table_and_column_has_a_description(synced_env):
    env = synced_env
    undescribed_tables = env.query(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'precoro' AND (comment IS NULL OR comment = '') "
        "AND database_name = current_database()")
    undescribed_views = env.query(
        "SELECT view_name FROM duckdb_views() WHERE schema_name = 'precoro' AND (comment IS NULL OR comment = '') "
        "AND database_name = current_database()")
    table_columns = env.query(
        "SELECT c.table_name, c.column_name, c.comment FROM duckdb_columns() c JOIN duckdb_tables() t "
        "ON t.table_name = c.table_name AND t.schema_name = c.schema_name AND t.database_name = c.database_name "
        "WHERE c.schema_name = 'precoro' AND c.database_name = current_database()")
    assert undescribed_tables == [] and undescribed_views == []
    assert table_columns and [(t, c) for t, c, comment in table_columns if not comment] == []
    # view columns can't carry COMMENT ON in DuckLake: precoro.column_descriptions describes them
    view_columns = env.query(
        "SELECT c.table_name, c.column_name FROM duckdb_columns() c JOIN duckdb_views() v "
        "ON v.view_name = c.table_name AND v.schema_name = c.schema_name AND v.database_name = c.database_name "
        "WHERE c.schema_name = 'precoro' AND c.database_name = current_database()")
    described = set(env.query("SELECT table_name, column_name FROM precoro.column_descriptions "
                              "WHERE description IS NOT NULL AND description <> ''"))
    assert view_columns and set(view_columns) <= described


@pytest.mark.e2e
def test_partition_start_is_configurable(env):
    partitions = env.defs.get_assets_def(dg.AssetKey(["precoro", "invoices"])).partitions_def
    assert partitions.get_first_partition_key() == env.config.start_date.isoformat()
    assert isinstance(env.config.start_date, date)


@pytest.mark.e2e
def test_drop_down_values_resolve_to_option_names_whatever_the_server_calls_the_field_type(env):
    # another Precoro server says "dropdown" where the simulator says "select"
    for path in ("/documentcustomfields", "/itemcustomfields"):
        env.control("POST", "faults", json={"kind": "renamed_values", "path": path, "count": None,
                                            "values": {"type": {"select": "dropdown"}}})
    sync_everything(env)
    options = {(field["id"], option["id"]): option["name"] for field in env.export("documentcustomfields")
               for option in field["options"]}
    types = {field["id"]: field["type"] for field in env.export("documentcustomfields")}
    rows = env.query("SELECT field_id, field_type, value, option_name, display_value "
                     "FROM precoro.document_custom_fields_resolved")
    drop_downs = [row for row in rows if types[row[0]] == "select"]
    assert drop_downs and {field_type for _, field_type, *_ in drop_downs} == {"dropdown"}
    for field_id, _, value, option_name, display_value in drop_downs:
        assert option_name == display_value == options[(field_id, int(value))]
    others = [row for row in rows if types[row[0]] != "select"]
    assert others and all(option is None and shown == value for _, _, value, option, shown in others)
    lines = env.query("SELECT count(*), count(option_name) FROM precoro.line_custom_fields_resolved "
                      "WHERE field_type = 'dropdown'")
    assert lines[0][0] > 0 and lines[0][0] == lines[0][1]


@pytest.mark.e2e
def test_lineage_starts_at_the_precoro_api_whose_quota_each_sensor_tick_observes(env):
    graph = env.defs.resolve_asset_graph()
    api, folder = dg.AssetKey(["precoro", "api"]), dg.AssetKey(["precoro", "ledger_folder"])
    assert graph.get(api).is_external and graph.get(folder).is_external
    for entity in DOCUMENTS:
        node = graph.get(dg.AssetKey(["precoro", entity.name]))
        assert api in node.parent_keys and {"precoro", "duckdb"} <= set(node.kinds)
        assert "dagster/code_references" in node.metadata
    assert folder in graph.get(dg.AssetKey(["precoro", "ledger_payments"])).parent_keys

    sensor = env.defs.resolve_sensor_def("precoro_changes")
    with dg.build_sensor_context(instance=env.instance, definitions=env.defs, resources=env.defs.resources) as context:
        tick = sensor.evaluate_tick(context)
    [observation] = tick.asset_events
    assert observation.asset_key == api
    left = {k: v.value for k, v in observation.metadata.items() if k.startswith("requests left")}
    sent = len(env.request_log()[0])
    assert set(left) == {f"requests left {w}" for w in ("minute", "hour", "day")}
    assert left["requests left day"] == 3000 - sent  # (the tests' clock runs 1000x: a "minute" is 60 ms)


def test_the_dagster_instance_shows_no_nux_and_monitors_runs(tmp_path):
    from precoro_assets.cli import DAGSTER_YAML

    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML.read_text())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert not instance.nux_enabled and instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 60


@pytest.mark.e2e
def test_a_run_over_several_days_reports_each_day_its_own_counts(env):
    start, end = env.days()
    result = env.materialize("precoro/invoices", partition_range=(start.isoformat(), end.isoformat()))
    assert result.success
    events = [e for e in result.get_asset_materialization_events() if e.asset_key != ANALYST_VIEWS]
    latest = {}
    for event in events:  # one materialization per day: the run's figures, with the day's own counts over them
        latest[event.materialization.partition] = {k: v.value for k, v in event.materialization.metadata.items()}
    stored = dict(env.query("SELECT CAST(partition_day AS VARCHAR), count(*) FROM precoro.invoices GROUP BY 1"))
    listed = collections.Counter(partition_day(r).isoformat() for r in env.export("invoices"))
    assert len(events) == len(latest) == (end - start).days + 1
    for day, metadata in latest.items():
        assert metadata["run total"].startswith("no: this day's own")
        assert metadata["dagster/row_count"] == stored.get(day, 0) == listed.get(day, 0)
        assert metadata["listed by Precoro"] == metadata["new"] == listed.get(day, 0)
    run_rows = {m["rows in the run's days"] for m in latest.values()}  # the run's own totals, labelled so
    assert run_rows == {sum(m["dagster/row_count"] for m in latest.values())}
