"""The change sensor asks for one run per tick, whatever changed on however many days (issue #17, item 2)."""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta

import pytest

from precoro_assets.catalogue import DOCUMENTS
from precoro_assets.defs.changes import DayChanges, group_runs
from precoro_assets.ingest.sync import partition_day
from tests.ingest.test_sync import (
    changed_days,
    changed_keys,
    list_gets,
    run_requested,
    sync_everything,
    tick_change_sensor,
)
from tests.ingest.truth import differences


@pytest.mark.e2e
def test_200_changes_across_30_days_become_one_run_that_brings_them_all_in(make_sim_env):
    env = make_sim_env(days=30, documents=600)
    sync_everything(env)
    changes = env.control("POST", "tick", json={"events": 200})["changes"]
    days = set()
    for change in changes:
        entity = next((e for e in DOCUMENTS if e.path == change["resource"]), None)
        if entity is not None:
            record = next(r for r in env.export(entity.path) if str(r["idn"]) == change["key"])
            days.add(partition_day(record))
    assert len(days) >= 20, "the changes should spread over most of the days"

    began = time.monotonic()
    result = tick_change_sensor(env)
    took = time.monotonic() - began
    assert took < 10, f"the tick took {took:.1f} s"
    assert len(result.run_requests) == 1  # every day was synced before: nothing keeps them apart
    request = result.run_requests[0]
    assert len({day for key in request.asset_selection for day in changed_days(request, key)}) == len(days)

    # the next tick, while that run still waits in the queue, sees the same changes (the cursor overlaps by
    # minutes) and asks for nothing: they were handed to a run already
    waiting = tick_change_sensor(env, cursor=result.cursor)
    assert waiting.run_requests == []

    _, mark = env.request_log()
    assert run_requested(env, request).success
    log, _ = env.request_log(mark)
    assert list_gets(log) == []  # the sensor's list rows are handed over: no day listed again
    for entity in DOCUMENTS:
        assert differences(env, entity) == [], entity.name
    assert tick_change_sensor(env, cursor=waiting.cursor).run_requests == []
    # a change made after that is asked for, alone
    later = env.control("POST", "tick", json={"events": 3})["changes"]
    if any(c["resource"] in {e.path for e in DOCUMENTS} for c in later):
        again = tick_change_sensor(env, cursor=waiting.cursor)
        assert len(again.run_requests) == 1
        handed = {key for k in again.run_requests[0].asset_selection for key in changed_keys(again.run_requests[0], k)}
        assert handed == {c["key"] for c in later if c["resource"] in {e.path for e in DOCUMENTS}}


@pytest.mark.e2e
def test_the_run_covering_the_range_lists_only_a_day_with_too_many_changes_to_hand_over(make_sim_env):
    env = make_sim_env(days=10, documents=150)
    sync_everything(env)
    env.control("POST", "tick", json={"events": 60})
    result = tick_change_sensor(env)
    request = result.run_requests[0]
    # pretend the busiest day changed too much: its rows are not handed over, so the run lists that day alone
    key = next(k for k in request.asset_selection if k.path[-1] == "invoices")
    config = request.run_config["ops"][key.to_python_identifier()]["config"]
    by_day = json.loads(config["changed_documents"])
    busiest = max(by_day, key=lambda day: len(by_day[day]))
    by_day[busiest] = None
    config["changed_documents"] = json.dumps(by_day)

    _, mark = env.request_log()
    assert run_requested(env, request).success
    log, _ = env.request_log(mark)
    listed = {r["url"] for r in list_gets(log)}
    as_precoro_writes_it = date.fromisoformat(busiest).strftime("%d.%m.%Y")  # createDate[left_date]=DD.MM.YYYY
    assert len(listed) == 2  # the day's invoices, and its credit notes
    assert all(url.startswith("/invoices?") and as_precoro_writes_it in url for url in listed), listed
    for entity in DOCUMENTS:
        assert differences(env, entity) == [], entity.name


def _changed(*days: date) -> dict[date, DayChanges]:
    return {day: DayChanges(last_change=datetime(2026, 1, 1), rows={"1": {}}) for day in days}


def test_a_day_an_asset_never_synced_is_not_covered_by_a_change_run_range():
    monday = date(2026, 3, 2)
    week = [monday + timedelta(days=n) for n in range(7)]
    held = {day.isoformat() for day in week}
    # invoices changed on Monday and Friday, orders on Wednesday: all days held, one run over the week's range
    changes = {"invoices": _changed(week[0], week[4]), "purchase_orders": _changed(week[2])}
    assert group_runs(changes, {"invoices": held, "purchase_orders": held}) == [changes]
    # orders were never synced on Tuesday: a run from Monday to Wednesday would record Tuesday for them
    runs = group_runs(changes, {"invoices": held, "purchase_orders": held - {week[1].isoformat()}})
    assert runs == [{"invoices": {week[0]: changes["invoices"][week[0]]}},
                    {"invoices": {week[4]: changes["invoices"][week[4]]},
                     "purchase_orders": {week[2]: changes["purchase_orders"][week[2]]}}]
    # a day with changes counts as held for the asset that changed there (it is brought in by the run)
    assert len(group_runs({"invoices": _changed(week[0], week[1])}, {"invoices": set()})) == 1
    assert [request_days_of(run) for run in runs] == [(week[0], week[0]), (week[2], week[4])]


def request_days_of(run: dict[str, dict[date, DayChanges]]) -> tuple[date, date]:
    days = {day for by_day in run.values() for day in by_day}
    return min(days), max(days)
