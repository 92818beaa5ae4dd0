"""Precoro moves while we read it: documents deleted after they were listed, rows arriving during a list walk,
and dates written at whatever offset the server likes. None of it fails a sync or loses a document."""

from __future__ import annotations

import collections
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from precoro_assets.catalogue import BY_NAME
from precoro_assets.ingest.sync import partition_day
from tests.ingest.truth import differences

INVOICES = BY_NAME["invoices"]


def metadata(result) -> dict:
    return {k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()}


def check(result, name: str):
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


def busiest_day(env) -> str:
    per_day = collections.Counter(partition_day(r).isoformat() for r in env.export("invoices"))
    return per_day.most_common(1)[0][0]


def on_day(day: str):
    return lambda record: partition_day(record).isoformat() == day


def dotted(day: date) -> str:
    return day.strftime("%d.%m.%Y")


# ---- a document deleted between its listing and its detail request ---------------------------------------

@pytest.mark.e2e
def test_a_document_deleted_after_it_was_listed_is_not_stored_and_the_run_goes_on(env):
    day = busiest_day(env)
    env.control("POST", "faults", json={"kind": "vanish", "path": "/invoices/{idn}", "after": 1, "count": 1})
    result = env.materialize("precoro/invoices", partition=day)

    assert result.success
    listed = metadata(result)["listed by Precoro"]
    assert env.query("SELECT count(*) FROM precoro.invoices WHERE partition_day = ?", [day]) == [(listed - 1,)]
    assert metadata(result)["gone before their detail was read (removed)"].startswith("1: ")
    assert differences(env, INVOICES, on_day(day)) == []  # the deleted one is gone from the truth too
    assert check(result, "count_matches_precoro").passed


@pytest.mark.e2e
def test_a_stored_document_that_changed_and_then_vanished_is_removed(env):
    day = busiest_day(env)
    assert env.materialize("precoro/invoices", partition=day).success
    victim = str(next(r for r in env.export("invoices") if on_day(day)(r))["idn"])
    # every document of the day looks changed in the list, so the sync asks for each detail again; the victim
    # is deleted in Precoro just before its detail request arrives
    env.control("POST", "faults", json={"kind": "unknown_fields", "path": "/invoices", "method": "GET",
                                        "count": None, "fields": {"updateDate": datetime.now(UTC).isoformat()}})
    env.control("POST", "faults", json={"kind": "vanish", "path": f"/invoices/{victim}", "count": 1})
    result = env.materialize("precoro/invoices", partition=day)

    assert result.success
    assert metadata(result)["gone before their detail was read (removed)"] == f"1: {victim}"
    assert env.query("SELECT count(*) FROM precoro.invoices WHERE idn = ?", [victim]) == [(0,)]
    assert env.query("SELECT count(*) FROM precoro.invoice_items WHERE invoice_idn = ?", [victim]) == [(0,)]
    env.control("DELETE", "faults")
    assert differences(env, INVOICES, on_day(day)) == []


# ---- the partition day of a createDate written at any offset ----------------------------------------------

def test_the_partition_day_is_the_date_in_the_company_zone_whatever_offset_a_record_carries():
    assert partition_day({"createDate": "2026-11-05T00:30:00+02:00"}) == date(2026, 11, 4)  # 22:30 UTC
    assert partition_day({"createDate": "2026-11-05T23:30:00-05:00"}) == date(2026, 11, 6)  # 04:30 UTC
    assert partition_day({"createDate": "2026-11-05T10:00:00Z"}) == date(2026, 11, 5)
    warsaw = ZoneInfo("Europe/Warsaw")
    assert partition_day({"createDate": "2026-11-05T23:30:00+00:00"}, warsaw) == date(2026, 11, 6)
    assert partition_day({"createDate": "2026-11-05T23:30:00"}, warsaw) == date(2026, 11, 5)  # the company's time


@pytest.mark.e2e
def test_records_of_one_answer_at_mixed_offsets_are_filed_under_the_day_precoro_listed_them(env):
    first, last = env.days()
    # The same instants written at +02:00, -05:00 and +14:00, one offset per record: about half the records
    # of each day carry a local date other than their UTC day.
    env.control("POST", "faults", json={"kind": "date_offsets", "offsets": ["+02:00", "-05:00", "+14:00"],
                                        "count": None})
    result = env.materialize("precoro/invoices", partition_range=(first.isoformat(), last.isoformat()))
    assert result.success and metadata(result)["rejected records"] == 0
    assert check(result, "count_matches_precoro").passed

    day = busiest_day(env)  # the truth in UTC, Precoro's calendar here
    of_day = sorted(str(r["idn"]) for r in env.export("invoices") if on_day(day)(r))
    assert sorted(k for (k,) in env.query("SELECT idn FROM precoro.invoices WHERE partition_day = ?", [day])) \
        == of_day

    # Syncing that day alone keeps every one of them (none filed under a neighbouring day, none removed)
    result = env.materialize("precoro/invoices", partition=day)
    assert result.success
    assert metadata(result)["removed"] == 0 and metadata(result)["new"] == 0
    assert sorted(k for (k,) in env.query("SELECT idn FROM precoro.invoices WHERE partition_day = ?", [day])) \
        == of_day
    assert env.query("SELECT count(*) FROM precoro.rejected_records") == [(0,)]


@pytest.mark.e2e
def test_a_record_precoro_lists_for_a_day_belongs_to_that_day_even_across_a_zone_boundary(make_sim_env):
    # The configured zone (Warsaw) is not the calendar this Precoro filters by (UTC), and the list rows' createDate
    # is written late in the evening at -05:00: the next day in Warsaw. Precoro listed them for `day`: they stay.
    env = make_sim_env(PRECORO_TIMEZONE="Europe/Warsaw")
    day = busiest_day(env)
    listed = sum(1 for r in env.export("invoices") if on_day(day)(r))
    late = f"{day}T23:30:00-05:00"
    env.control("POST", "faults", json={"kind": "unknown_fields", "path": "/invoices", "method": "GET",
                                        "count": None, "fields": {"createDate": late}})
    for _ in range(2):
        result = env.materialize("precoro/invoices", partition=day)
        assert result.success and metadata(result)["rejected records"] == 0
        assert metadata(result)["removed"] == 0
        assert env.query("SELECT partition_day, count(*) FROM precoro.invoices GROUP BY 1") == [
            (date.fromisoformat(day), listed)]


# ---- rows arriving while a long range is walked ------------------------------------------------------------

@pytest.mark.e2e
def test_rows_arriving_on_the_newest_day_during_a_walk_fail_no_day(make_sim_env):
    env = make_sim_env(documents=1500, days=3)  # ~500 invoices: a walk of several pages
    first, last = env.days()
    # every page after the first brings a new invoice created today, as a busy company would
    env.control("POST", "faults", json={"kind": "shift_rows", "mode": "insert", "on": "now",
                                        "path": "/invoices", "count": None})
    result = env.materialize("precoro/invoices", partition_range=(first.isoformat(), last.isoformat()))

    assert result.success
    env.control("DELETE", "faults")
    # today was walked apart, after the others: it holds every invoice that arrived meanwhile
    assert differences(env, INVOICES) == []
    assert check(result, "count_matches_precoro").passed


@pytest.mark.e2e
def test_a_day_whose_list_never_holds_still_is_written_as_seen_and_nothing_of_it_is_removed(make_sim_env):
    env = make_sim_env(documents=2400, days=2)  # over 200 invoices a day: pages of a day
    first, last = env.days()
    per_day = collections.Counter(partition_day(r) for r in env.export("invoices"))
    busy = {day for day, count in per_day.items() if count > 200}
    assert busy, per_day
    before = {str(r["idn"]) for r in env.export("invoices") if partition_day(r) in busy}
    # every page after the first brings a new invoice on the newest day the walk asks for
    env.control("POST", "faults", json={"kind": "shift_rows", "mode": "insert", "path": "/invoices",
                                        "count": None})
    result = env.materialize("precoro/invoices", partition_range=(first.isoformat(), last.isoformat()))

    assert result.success
    moving = metadata(result)["days whose list kept moving (nothing removed)"]
    assert set(moving.split(", ")) == {day.isoformat() for day in busy}
    env.control("DELETE", "faults")
    quiet = {k for (k,) in env.query("SELECT idn FROM precoro.invoices WHERE partition_day NOT IN ("
                                      + ", ".join("?" * len(busy)) + ")", [d.isoformat() for d in busy])}
    assert quiet == {str(r["idn"]) for r in env.export("invoices") if partition_day(r) not in busy}
    stored = {k for (k,) in env.query("SELECT idn FROM precoro.invoices")}
    assert before <= stored  # every invoice present throughout is there; some that arrived may be too
    assert check(result, "count_matches_precoro").passed  # it checks the days that held still


@pytest.mark.e2e
def test_a_document_filed_under_a_neighbouring_day_by_an_earlier_rule_is_never_removed_while_it_exists(env):
    first, _ = env.days()
    per_day = collections.Counter(partition_day(r).isoformat() for r in env.export("invoices"))
    day = max((d for d in per_day if d > first.isoformat()), key=per_day.get)
    before = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    assert env.materialize("precoro/invoices", partition_range=(before, day)).success
    moved = env.query("SELECT idn FROM precoro.invoices WHERE partition_day = ? ORDER BY idn LIMIT 1", [day])[0][0]
    # as the previous rule (each record's own offset) could file it: under the day before its createDate's
    env.warehouse.write(lambda con: con.execute("UPDATE precoro.invoices SET partition_day = ? WHERE idn = ?",
                                                [before, moved]))
    _, mark = env.request_log()

    result = env.materialize("precoro/invoices", partition=before)  # Precoro does not list it on that day

    assert result.success and metadata(result)["removed"] == 0
    assert metadata(result)["not listed on their day but still in Precoro (kept)"] == moved
    assert [r["url"] for r in env.request_log(mark)[0] if r["path"] == "/invoices/{idn}"] == [f"/invoices/{moved}"]
    # its own day's sync files it where Precoro lists it
    assert env.materialize("precoro/invoices", partition=day).success
    assert env.query("SELECT partition_day FROM precoro.invoices WHERE idn = ?", [moved]) == [
        (date.fromisoformat(day),)]
    assert differences(env, INVOICES, lambda r: partition_day(r).isoformat() in (before, day)) == []
