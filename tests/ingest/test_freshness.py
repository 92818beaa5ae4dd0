"""A document asset is fresh when its last complete day was listed against Precoro by 06:00 (the company's time
zone): a quiet day, which no change brings in, is confirmed by the morning's deletion sweep; a backfill of an old
day makes nothing fresh."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from precoro_assets.ingest.sync import partition_day
from tests.ingest.test_deletion_sweep import sweep
from tests.ingest.test_sync import run_requested

pytestmark = pytest.mark.e2e

INVOICES = dg.AssetKey(["precoro", "invoices"])


@pytest.fixture
def persistent(env, tmp_path):
    """The environment on an instance of its own on disk (a schedule reads a persistent one)."""
    (tmp_path / "dagster").mkdir()
    env.instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster"))
    return env


def fresh(env, key: dg.AssetKey) -> bool:
    """The asset's freshness check, executed now as its sensor would have it executed."""
    check = dg.AssetCheckKey(key, "freshness_check")
    job = env.defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=set(),
                                                                      asset_check_selection={check})
    result = job.execute_in_process(instance=env.instance, raise_on_error=False)
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation.passed


def last_complete_day():
    """The day the check expects by now: yesterday from 06:00 UTC on, the day before until then."""
    now = datetime.now(UTC)
    return (now - timedelta(days=1 if now.hour >= 6 else 2)).date()


def test_a_backfill_of_an_old_day_does_not_make_the_documents_fresh(persistent):
    env = persistent
    old = (datetime.now(UTC) - timedelta(days=12)).date().isoformat()
    assert env.materialize("precoro/invoices", partition=old).success
    assert not fresh(env, INVOICES)


def test_a_quiet_day_is_fresh_once_the_morning_sweep_listed_it(persistent):
    env = persistent
    day = last_complete_day()
    # nobody created an invoice that day: no change sensor run brings it in
    for record in env.export("invoices"):
        if partition_day(record) == day:
            env.control("DELETE", f"records/invoices/{record['idn']}")
    old = (datetime.now(UTC) - timedelta(days=12)).date().isoformat()
    assert env.materialize("precoro/invoices", partition=old).success  # something synced: the sweep has work
    assert not fresh(env, INVOICES)

    request = sweep(env)
    assert isinstance(request, dg.RunRequest)
    assert run_requested(env, request).success
    assert env.query("SELECT count(*) FROM precoro.invoices WHERE partition_day = ?", [day]) == [(0,)]
    assert fresh(env, INVOICES)
