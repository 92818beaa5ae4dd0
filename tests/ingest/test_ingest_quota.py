"""When the day's requests are spent, a run stops cleanly, says when it resumes, and Dagster retries it then
without paying twice for any detail."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest
from truth import differences

from precoro_assets.api.catalogue import BY_NAME
from precoro_assets.api.resource import PrecoroResource
from precoro_assets.sync import partition_day

# The quota stop holds with the shared state in SQLite files and in PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("state_backend")


def test_a_spent_quota_stops_the_run_cleanly_and_the_retry_finishes_without_paying_twice(env):
    start, end = env.days()
    first = end - timedelta(days=6)
    invoices = [r for r in env.export("invoices") if first <= partition_day(r) <= end]
    assert len(invoices) > 12, "the test needs more invoices than the small daily quota below"
    # A "day" of 8.6 s holding 12 requests, and no patience: the quota runs out halfway.
    small_day = PrecoroResource(api_token=env.sim.token, email=env.sim.email, base_url=env.sim.url,
                                per_day=12, time_scale=10_000, max_wait_seconds=0.5,
                                state_dir=str(env.config.state_dir / "small-quota"))
    assets = [a for a in env.defs.assets if dg.AssetKey(["precoro", "invoices"]) in getattr(a, "keys", ())]
    _, mark = env.request_log()
    result = dg.materialize(assets, instance=env.instance, resources={**env.defs.resources, "precoro": small_day},
                            tags={"dagster/asset_partition_range_start": first.isoformat(),
                                  "dagster/asset_partition_range_end": end.isoformat()}, raise_on_error=False)
    assert result.success

    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retries, "the run should have stopped for quota and been retried"
    error = retries[0].event_specific_data.error
    explanation = (error.cause.message if error.cause else "") + error.message  # the UI shows both
    assert "quota exhausted" in explanation.lower() and "resume at" in explanation.lower()

    log, _ = env.request_log(mark)
    details = [r["url"] for r in log if r["path"] == "/invoices/{idn}"]
    assert len(details) == len(set(details)) == len(invoices)  # every detail exactly once
    pages = [r["url"] for r in log if r["path"] == "/invoices"]
    assert pages and len(pages) == len(set(pages))  # the retry went on with the stopped run's listing
    assert differences(env, BY_NAME["invoices"], in_range=lambda r: first <= partition_day(r) <= end) == []
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["details reused from a failed run"].value > 0
