"""Precoro reports no deletion (no webhook, nothing in a modifiedSince list): the daily sweep lists the last days
again and what Precoro deleted leaves the warehouse, for a list walk per document type."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from precoro_assets.catalogue import BY_NAME, DOCUMENTS
from precoro_assets.ingest.sync import partition_day
from tests.ingest.test_sync import detail_gets, list_gets, request_days, run_requested, sync_everything
from tests.ingest.truth import differences

pytestmark = pytest.mark.e2e


def sweep(env) -> dg.RunRequest | dg.SkipReason:
    schedule = env.defs.resolve_schedule_def("precoro_deletion_sweep")
    with dg.build_schedule_context(instance=env.instance, scheduled_execution_time=datetime.now(UTC)) as context:
        result = schedule.evaluate_tick(context)
    return result.run_requests[0] if result.run_requests else dg.SkipReason(result.skip_message)


def test_the_sweep_removes_what_precoro_deleted_in_the_last_7_days_for_a_list_walk_per_type(env, tmp_path):
    (tmp_path / "dagster").mkdir()
    env.instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster"))  # a schedule reads a persistent one
    assert isinstance(sweep(env), dg.SkipReason)  # nothing synced yet: nothing to sweep
    sync_everything(env)
    today = datetime.now(UTC).date()
    invoices = sorted(env.export("invoices"), key=partition_day)
    recent = next(r for r in invoices if partition_day(r) >= today - timedelta(days=6))
    older = next(r for r in invoices if partition_day(r) < today - timedelta(days=6))
    for record in (recent, older):
        env.control("DELETE", f"records/invoices/{record['idn']}")

    request = sweep(env)
    assert isinstance(request, dg.RunRequest)
    assert request_days(request) == ((today - timedelta(days=6)).isoformat(), today.isoformat())
    assert set(request.asset_selection) == {dg.AssetKey(["precoro", e.name]) for e in DOCUMENTS}
    _, mark = env.request_log()
    assert run_requested(env, request).success
    spent, _ = env.request_log(mark)

    stored = {str(idn) for (idn,) in env.query("SELECT idn FROM precoro.invoices")}
    assert str(recent["idn"]) not in stored  # deleted within the week: gone
    assert str(older["idn"]) in stored  # older: kept until its day is listed again
    # one list walk per document type over the week (fewer than 200 of each), one for the credit notes, no detail
    assert detail_gets(spent) == []
    assert len(spent) == len(list_gets(spent)) == len(DOCUMENTS) + 1
    truth = {str(r["idn"]) for r in env.export("invoices")} | {str(older["idn"])}
    assert stored == truth
    assert differences(env, BY_NAME["payments"]) == []
