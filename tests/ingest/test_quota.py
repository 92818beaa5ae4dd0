"""When the day's requests are spent, a run stops cleanly, says when it resumes, and Dagster retries it then
without paying twice for any detail."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest

from precoro_assets.api.quota import QuotaLimits
from precoro_assets.catalogue import BY_NAME
from precoro_assets.defs.resources import PrecoroResource
from precoro_assets.ingest.sync import partition_day
from tests.ingest.truth import differences
from tests.support.precoro_env import idle_after_failures

# The quota stop holds with the shared state in SQLite files and in PostgreSQL (tests/conftest.py).
# e2e: a simulator on a socket, a server or a child process (make test runs it, make test-fast does not)
pytestmark = [pytest.mark.usefixtures("state_backend"), pytest.mark.e2e]


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


@pytest.mark.timing  # idle time against a 3 s window; six busy workers once reordered the retries (a chain of 3)
def test_failed_detail_requests_wait_out_their_identical_get_minutes_together_not_one_after_another(make_sim_env):
    """Precoro forbids repeating a GET within 60 s, so a failed detail GET may only be retried a minute later.
    Other requests may go meanwhile: a run with many failures loses about one identical-GET window in all, not
    one per failure (a 500 on every 7th request once made a 2-minute sync take 16 minutes)."""
    scale = 20  # Precoro's limits sped up 20x: a 3 s identical-GET window, 0.05 s between requests
    env = make_sim_env(limits=f"scaled:{scale}", time_scale=scale, documents=300)
    start, end = env.days()
    first = end - timedelta(days=9)
    env.control("POST", "faults", json={"kind": "error", "method": "GET", "path": "/invoices/{idn}", "every": 5,
                                        "count": None})
    window = QuotaLimits(time_scale=scale).identical_get_window
    _, mark = env.request_log()

    result = env.materialize("precoro/invoices", partition_range=(first.isoformat(), end.isoformat()))

    assert result.success
    log, _ = env.request_log(mark)
    failed, chain, idle = idle_after_failures(log)
    assert len(failed) >= 3 * (chain + 1), "the premise: many more failures than the longest chain"
    assert idle < (chain + 1) * window, \
        f"{len(failed)} failures (at most {chain} of one URL) left the run idle {idle:.1f} s (window {window:.2f} s)"
    assert {r["url"] for r in failed} <= {r["url"] for r in log if r["status"] == 200}, "each failure retried"
    assert differences(env, BY_NAME["invoices"], in_range=lambda r: first <= partition_day(r) <= end) == []
