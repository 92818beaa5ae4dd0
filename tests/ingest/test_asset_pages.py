"""What the UI shows about a sync (issue #30, item 8): the whole table's rows beside the day's, the analyst views
as materialized once a sync created them, and the request quota on precoro/api from the first sync."""

from __future__ import annotations

import collections
import json

import dagster as dg
import pytest

from precoro_assets.defs.ingest import ANALYST_VIEWS
from precoro_assets.ingest.sync import partition_day
from precoro_assets.warehouse.views import VIEWS

pytestmark = pytest.mark.e2e

INVOICES = dg.AssetKey(["precoro", "invoices"])
API = dg.AssetKey(["precoro", "api"])


def metadata(result) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == INVOICES]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_a_day_s_materialization_shows_its_own_rows_and_the_whole_table_s(env):
    per_day = collections.Counter(partition_day(r).isoformat() for r in env.export("invoices"))
    (first, first_count), (second, second_count) = per_day.most_common(2)

    assert env.materialize("precoro/invoices", partition=first).success
    result = env.materialize("precoro/invoices", partition=second)

    assert result.success
    shown = metadata(result)
    assert shown["dagster/row_count"] == second_count  # the partition's own rows
    assert shown["rows in the table"] == first_count + second_count  # both days synced so far


def test_the_first_sync_shows_the_analyst_views_it_created_and_the_quota_left(env):
    assert env.instance.get_latest_materialization_event(ANALYST_VIEWS) is None
    assert env.instance.fetch_observations(API, limit=1).records == []
    day = max(partition_day(r) for r in env.export("invoices")).isoformat()

    result = env.materialize("precoro/invoices", partition=day)

    assert result.success
    views = env.instance.get_latest_materialization_event(ANALYST_VIEWS)
    assert views is not None and views.run_id == result.run_id
    created = views.asset_materialization.metadata["views"].value
    queryable = {name for (name,) in env.query(
        "SELECT view_name FROM duckdb_views() WHERE schema_name = 'precoro' AND NOT internal")}
    assert set(created.split(", ")) == {f"precoro.{view.name}" for view in VIEWS}
    assert {view.name for view in VIEWS} <= queryable
    [observed] = env.instance.fetch_observations(API, limit=1).records
    quota = observed.asset_observation.metadata
    assert observed.run_id == result.run_id and quota["requests left day"].value > 0

    # a second sync finds the views there: they are not recorded again
    assert env.materialize("precoro/invoices", partition=day).success
    assert env.instance.get_latest_materialization_event(ANALYST_VIEWS).run_id == result.run_id


def test_a_change_run_says_its_documents_were_handed_over_and_under_which_days_they_are_filed(env):
    """A webhook names a document, not its day: its run materializes the sensor's day, and the document is filed
    under its own createDate's. The run says so; it never says it listed anything."""
    today = max(partition_day(r) for r in env.export("invoices"))
    older = min(partition_day(r) for r in env.export("invoices"))
    invoice = next(r for r in env.export("invoices") if partition_day(r) == older)
    changed = {today.isoformat(): {str(invoice["idn"]): {"updateDate": invoice["updateDate"]}}}
    config = {"ops": {"precoro__invoices": {"config": {"changed_documents": json.dumps(changed)}}}}

    result = env.materialize("precoro/invoices", partition=today.isoformat(), run_config=config)

    assert result.success
    shown = metadata(result)
    assert shown["handed over by a sensor"] == 1 and shown["new"] == 1 and "listed by Precoro" not in shown
    assert shown["filed under their own days (createDate)"] == f"{older.isoformat()}: 1"
    assert env.query("SELECT partition_day FROM precoro.invoices WHERE idn = ?", [str(invoice["idn"])]) == [(older,)]
