"""PRECORO_ENTITIES: a team that needs invoices and payments only has those assets and pays only for them, in the
sync, the change sensor and the webhook sensor; what reads the other tables still works."""

from __future__ import annotations

import dagster as dg
import pytest

from precoro_assets import settings
from precoro_assets.catalogue import BY_NAME, ENTITIES
from precoro_assets.defs.ingest import asset_key
from precoro_assets.ingest.webhook_inbox import WebhookInbox, inbox_path
from tests.ingest.environment import make_env
from tests.ingest.test_sync import list_gets, tick_change_sensor
from tests.ingest.truth import differences

SELECTED = ("invoices", "payments")
INVOICES, PAYMENTS = (asset_key(BY_NAME[name]) for name in SELECTED)


@pytest.fixture
def selective(tmp_path, monkeypatch):
    environment = make_env(tmp_path, monkeypatch, PRECORO_ENTITIES=" payments, invoices ")
    try:
        yield environment
    finally:
        environment.sim.stop()


def test_an_unknown_entity_is_named_with_the_names_there_are(tmp_path, monkeypatch):
    for name, value in {"PRECORO_API_TOKEN": "token", "PRECORO_EMAIL": "api@example.com",
                        "PRECORO_BASE_URL": "http://127.0.0.1:9", "PRECORO_HOME": str(tmp_path),
                        "PRECORO_ENTITIES": "invoices,invoice,supplier"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as error:
        settings.load()
    assert str(error.value).startswith("PRECORO_ENTITIES must name entities among purchase_requisitions, ")
    assert str(error.value).endswith("(comma-separated), not 'invoice', 'supplier'")
    monkeypatch.setenv("PRECORO_ENTITIES", "")
    assert settings.load().entities is None  # empty: every entity


@pytest.mark.e2e
def test_only_the_selected_entities_have_assets_and_cost_requests(selective):
    env = selective
    graph = env.defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    assert {asset_key(entity) for entity in ENTITIES} & keys == {INVOICES, PAYMENTS}
    for key in keys:  # nothing waits on an entity that has no asset
        assert graph.get(key).parent_keys <= keys | {dg.AssetKey(["precoro", "api"])}, key

    start, end = env.days()
    _, mark = env.request_log()
    assert env.materialize([INVOICES.to_user_string(), PAYMENTS.to_user_string()],
                           partition_range=(start.isoformat(), end.isoformat())).success
    synced, mark = env.request_log(mark)
    assert {request["path"].split("/")[1] for request in synced} == {"invoices", "payments"}
    for name in SELECTED:
        assert differences(env, BY_NAME[name]) == [], name
    # the views and reconciliation read the other tables as empty ones
    assert env.materialize(["precoro/analyst_views"]).success
    assert env.warehouse.query("SELECT COUNT(*) AS n FROM precoro.invoices_overview")["n"][0] > 0
    assert env.warehouse.query("SELECT COUNT(*) AS n FROM precoro.receipts")["n"][0] == 0

    env.control("POST", "tick", json={"events": 12})
    _, mark = env.request_log(mark)
    tick_change_sensor(env)
    ticked, _ = env.request_log(mark)
    # a list request per selected document type and one for invoices' credit notes: 3, where all six types took 7
    assert len(ticked) == len(list_gets(ticked)) == 3
    assert sorted(request["path"].split("/")[1] for request in ticked) == ["invoices", "invoices", "payments"]


@pytest.mark.e2e
def test_webhook_events_about_entities_not_selected_are_passed_over_at_no_cost(selective):
    env = selective
    inbox = WebhookInbox(inbox_path(env.config.state_dir), env.config.database_url_value)
    for kind, idn in ((2, "7"), (5, "8"), (7, None)):  # a purchase order, a receipt, a supplier
        inbox.record(kind, 1, 1000, idn)
    sensor = env.defs.resolve_sensor_def("precoro_webhook_events")

    def tick(cursor: str | None):
        with dg.build_sensor_context(instance=env.instance, definitions=env.defs, resources=env.defs.resources,
                                     cursor=cursor) as context:
            return sensor.evaluate_tick(context)

    passed_over = tick(None)
    assert passed_over.run_requests == []
    assert "3 webhook event(s), none about what is synced" in (passed_over.skip_message or "")

    last = inbox.record(3, 1, 1001, "5")  # an invoice
    result = tick(passed_over.cursor)
    [request] = result.run_requests
    assert request.asset_selection == [INVOICES]
    assert str(last) in (result.cursor or "")
