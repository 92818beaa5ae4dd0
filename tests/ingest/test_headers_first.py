"""Headers first (issue #17, item 1): a backfill stores every listed document's header at once, then the lines
as the quota allows, newest day first; a quota stop leaves the whole listed history queryable."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest

from precoro_assets.api.errors import QuotaExhausted
from precoro_assets.catalogue import BY_NAME, DOCUMENTS
from precoro_assets.defs.ingest import create_analyst_views
from precoro_assets.defs.resources import PrecoroResource
from precoro_assets.ingest.sync import list_ahead, partition_day, sync_changes, sync_documents
from precoro_assets.runtime.run_launcher import limit_pool
from tests.ingest.truth import differences

INVOICES = BY_NAME["invoices"]


@pytest.mark.e2e
@pytest.mark.usefixtures("state_backend")  # the stopped run's listing kept in SQLite and in PostgreSQL
def test_a_quota_stop_leaves_every_header_and_the_retry_fetches_only_lines_newest_day_first(env):
    start, end = env.days()
    first = end - timedelta(days=9)
    truth = {str(r["idn"]): r for r in env.export("invoices") if first <= partition_day(r) <= end}
    assert len(truth) > 30, "the test needs many more invoices than the small daily quota below"
    small_day = precoro(env, "small-quota", per_day=12, time_scale=10_000, max_wait_seconds=0.5)
    warehouse = env.defs.resources["warehouse"]
    store, staging = warehouse.open(), warehouse.staging()

    with pytest.raises(QuotaExhausted):
        sync_documents(small_day.get_client(), store, staging, INVOICES, first, end)
    stored = dict(env.query("SELECT idn, lines_synced_at IS NOT NULL FROM precoro.invoices"))
    assert set(stored) == set(truth)  # every listed invoice is queryable, lines or not
    with_lines = {idn for idn, has_lines in stored.items() if has_lines}
    assert 0 < len(with_lines) < len(truth)
    # headers carry what the list row does: number, supplier, amount, dates
    for idn, number, supplier, amount in env.query(
            "SELECT idn, invoice_number, supplier_id, sum FROM precoro.invoices WHERE lines_synced_at IS NULL"):
        assert (number, supplier, str(amount)) == (truth[idn]["invoiceNumber"], truth[idn]["supplier"]["id"],
                                                   f"{truth[idn]['sum']:.2f}")
    # the lines came newest day first
    assert min(partition_day(truth[idn]) for idn in with_lines) >= max(
        partition_day(truth[idn]) for idn in set(truth) - with_lines)
    store.write(create_analyst_views)
    progress = dict((row[0], row[1:]) for row in env.query(
        "SELECT asset, documents, with_lines, awaiting_lines, quota_days_to_complete FROM precoro.sync_progress"))
    assert progress["invoices"] == (len(truth), len(with_lines), len(truth) - len(with_lines), 1)

    _, mark = env.request_log()
    sync_documents(precoro(env, "next-day").get_client(), store, staging, INVOICES, first, end)
    log, _ = env.request_log(mark)
    assert [r for r in log if r["path"] == "/invoices"] == []  # the stopped run's listing is reused
    fetched = [r["url"].rsplit("/", 1)[1] for r in log if r["path"] == "/invoices/{idn}"]
    # only what still lacked its lines, once (details fetched before the stop, of a day not finished, were
    # staged: they are not requested again)
    assert len(fetched) == len(set(fetched)) and set(fetched) <= set(truth) - with_lines
    assert len(fetched) >= len(truth) - len(with_lines) - 12
    days = [partition_day(truth[idn]) for idn in fetched]
    window = 8  # details are fetched a few at a time, so neighbours may swap
    assert all(days[i] >= days[j] for i in range(len(days)) for j in range(i + window, len(days))), days
    assert differences(env, INVOICES, in_range=lambda r: first <= partition_day(r) <= end) == []
    assert env.query("SELECT count(*) FROM precoro.invoices WHERE lines_synced_at IS NULL") == [(0,)]


def precoro(env, ledger: str, **limits) -> PrecoroResource:
    """A client of the simulator with its own request ledger (a quota of its own), on the environment's clock
    unless `limits` says otherwise (at Precoro's real pace the next day's details alone took four minutes)."""
    limits = {"time_scale": env.config.time_scale, **limits}
    return PrecoroResource(api_token=env.sim.token, email=env.sim.email, base_url=env.sim.url,
                           state_dir=str(env.config.state_dir / ledger), **limits)


@pytest.mark.e2e
def test_a_run_lists_every_document_type_before_any_detail_so_a_quota_stop_leaves_all_their_headers(env):
    start, end = env.days()
    warehouse = env.defs.resources["warehouse"]
    store, staging = warehouse.open(), warehouse.staging()
    first, *others = [entity for entity in DOCUMENTS if entity.fetch_detail]
    lists_needed = sum(1 + len(e.also_list) for e in DOCUMENTS if e.fetch_detail) * 2  # a page or two each
    small_day = precoro(env, "small-quota", per_day=lists_needed + 5, time_scale=10_000, max_wait_seconds=0.5)
    client = small_day.get_client()

    _, mark = env.request_log()
    list_ahead(client, store, staging, others, start, end)
    with pytest.raises(QuotaExhausted):
        sync_documents(client, store, staging, first, start, end)
    log, mark = env.request_log(mark)
    assert [r for r in log if r["path"].endswith("{idn}")], "the quota should have stopped the details"
    for entity in DOCUMENTS:
        if not entity.fetch_detail:
            continue
        truth = {str(r["idn"]) for r in env.export(entity.path) if start <= partition_day(r) <= end}
        stored = {idn for (idn,) in env.query(f"SELECT idn FROM precoro.{entity.name}")}
        assert stored == truth, entity.name  # every type's history is queryable, lines or not

    # each type's own sync takes its listing up: no list request again, only details
    next_day = precoro(env, "next-day").get_client()
    for entity in others:
        sync_documents(next_day, store, staging, entity, start, end)
    log, _ = env.request_log(mark)
    assert log and all(r["path"].endswith("{idn}") for r in log)
    for entity in others:
        assert differences(env, entity, in_range=lambda r: start <= partition_day(r) <= end) == [], entity.name


def test_headers_are_stored_first_only_when_the_details_take_a_while():
    from datetime import date

    from precoro_assets.ingest.sync import HEADERS_WORTH_SECONDS, _DayPlan, _details_take_a_while

    class Client:
        def __init__(self, seconds_each: float) -> None:
            self.seconds_each, self.asked = seconds_each, []

        def seconds_for(self, requests: int) -> float:
            self.asked.append(requests)
            return requests * self.seconds_each

    plans = [_DayPlan(date(2026, 1, day), {}, [f"{day}-{n}" for n in range(10)], set(), set()) for day in (1, 2, 3)]
    fast, paced = Client(0.001), Client(1.25)  # a fast server; Precoro's pace: 30 details take 37.5 s
    assert not _details_take_a_while(fast, plans) and fast.asked == [30]
    assert not _details_take_a_while(paced, plans)  # within the minute: each document is written once
    assert _details_take_a_while(Client(HEADERS_WORTH_SECONDS / 29), plans)  # a little over the minute
    assert _details_take_a_while(Client(float("inf")), plans)  # the quota would stop the run before its details
    assert _details_take_a_while(object(), plans)  # a client that cannot say: headers first, as always
    assert not _details_take_a_while(Client(float("inf")), [_DayPlan(date(2026, 1, 1), {}, [], set(), set())])


@pytest.mark.e2e
def test_a_dagster_run_of_several_document_types_lists_them_all_before_its_first_detail(env):
    """As a backfill runs: the run's first asset lists the run's other document types before its own details
    (it never did: a step's `selected_asset_keys` names its own asset only, so no other type was ever seen)."""
    start, end = env.days()
    names = ["invoices", "purchase_orders", "receipts"]
    wanted = {dg.AssetKey(["precoro", name]) for name in names}
    assets = [a for a in env.defs.assets if wanted & set(getattr(a, "keys", ()))]
    paced = precoro(env, "paced", time_scale=50)  # Precoro's pace sped up 50x: a quota day's requests take minutes
    limit_pool(env.instance, "precoro_api", 1)  # one step at a time, as `sync`, `demo` and deploy/ set it
    _, mark = env.request_log()
    result = dg.materialize(assets, instance=env.instance, resources={**env.defs.resources, "precoro": paced},
                            tags={"dagster/asset_partition_range_start": start.isoformat(),
                                  "dagster/asset_partition_range_end": end.isoformat()}, raise_on_error=False)
    assert result.success
    log, _ = env.request_log(mark)
    lists = [i for i, r in enumerate(log) if r["path"] in {f"/{BY_NAME[name].path}" for name in names}]
    details = [i for i, r in enumerate(log) if r["path"].endswith("{idn}")]
    assert lists and details and max(lists) < min(details), "every type listed before the first detail"
    assert len({log[i]["url"] for i in lists}) == len(lists), "each list page once: each step took its listing up"
    for name in names:
        assert differences(env, BY_NAME[name], in_range=lambda r: start <= partition_day(r) <= end) == [], name
    # a first sync: every document is new to the warehouse, though its header was stored ahead of its lines
    for name in names:
        days = [e.materialization.metadata for e in result.get_asset_materialization_events()
                if e.asset_key == dg.AssetKey(["precoro", name])]
        truth = [r for r in env.export(BY_NAME[name].path) if start <= partition_day(r) <= end]
        assert sum(m["new"].value for m in days) == len(truth), name
        assert sum(m["changed"].value for m in days) == 0, name


def test_a_run_lists_ahead_only_when_the_budget_paces_it():
    from precoro_assets.ingest.sync import worth_listing_ahead

    class Client:
        def __init__(self, seconds_each: float) -> None:
            self.seconds_each = seconds_each

        def seconds_for(self, requests: int) -> float:
            return requests * self.seconds_each

    assert worth_listing_ahead(Client(1.0))  # Precoro's pace: a quota day's requests take hours
    assert worth_listing_ahead(Client(0.05))  # sped up 20x: minutes
    assert not worth_listing_ahead(Client(1e-6))  # limits off: every type is listed within seconds anyway
    assert worth_listing_ahead(object())  # a client that cannot say


@pytest.mark.e2e
def test_a_saved_listing_removes_nothing_so_a_document_a_sensor_stored_since_stays(env):
    """A listing saved ahead of its step (or by a run the quota stopped) predates what a sensor's run stores
    meanwhile: a document created since is missing from it, and must not be taken for deleted."""
    start, end = env.days()
    warehouse = env.defs.resources["warehouse"]
    store, staging = warehouse.open(), warehouse.staging()
    orders = BY_NAME["purchase_orders"]
    client = precoro(env, "own").get_client()
    list_ahead(client, store, staging, [orders], start, end)  # saved now; its step comes later

    changes = env.control("POST", "tick", json={"events": 40})["changes"]
    created = [c["key"] for c in changes if c["resource"] == orders.path and c["action"] == "created"]
    assert created, "the tick should have created purchase orders"
    rows = {str(r["idn"]): r for r in env.export(orders.path)}
    today = max(partition_day(rows[key]) for key in created)
    handed = {today: {key: {"updateDate": rows[key]["updateDate"]} for key in created
                      if partition_day(rows[key]) == today}}
    sync_changes(client, store, staging, orders, handed)  # a sensor's run stores them
    assert {k for (k,) in env.query("SELECT idn FROM precoro.purchase_orders")} >= set(handed[today])

    summary = sync_documents(client, store, staging, orders, start, end)  # the step, with the saved listing

    assert summary.removed == 0
    stored = {k for (k,) in env.query("SELECT idn FROM precoro.purchase_orders")}
    assert stored >= set(handed[today])  # still there
    # the day's next listing (a fresh one) brings the table in line with Precoro
    sync_documents(client, store, staging, orders, start, end)
    assert differences(env, orders, in_range=lambda r: start <= partition_day(r) <= end) == []
