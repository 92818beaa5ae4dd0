"""A freshness policy is only honest if something keeps the asset fresh without anyone remembering to: reference
data must be at most 26 hours old, and the schedule that syncs it every 6 hours is on from the start."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest

from precoro_assets import settings
from precoro_assets.definitions import build_definitions
from precoro_assets.defs.ingest import REFERENCE_GROUP

pytestmark = pytest.mark.usefixtures("configured_account")


def test_reference_data_is_kept_fresh_by_a_schedule_that_is_on_and_runs_well_within_the_policy():
    defs = build_definitions(settings.load())
    graph = defs.resolve_asset_graph()
    reference = {key for key in graph.get_all_asset_keys() if graph.get(key).group_name == REFERENCE_GROUP}
    schedule = defs.resolve_schedule_def("precoro_reference_every_6h")

    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert reference and reference <= set(defs.resolve_job_def(schedule.job_name).asset_layer.asset_graph
                                          .executable_asset_keys)
    every = timedelta(hours=6)  # "15 */6 * * *"
    assert schedule.cron_schedule == "15 */6 * * *"
    for key in reference:
        policy = graph.get(key).freshness_policy
        assert policy is not None and policy.fail_window.to_timedelta() >= 4 * every, key
