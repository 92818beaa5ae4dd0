"""Bad input from Precoro never fails a sync silently and never loses what Precoro sent."""

from __future__ import annotations

import json

import pytest

from precoro_assets.catalogue import BY_NAME
from precoro_assets.ingest.sync import partition_day
from tests.ingest.truth import differences

pytestmark = pytest.mark.e2e  # a simulator on a socket or child processes: in make test, not in make test-fast



def busiest_day(env) -> str:
    days = [partition_day(r).isoformat() for r in env.export("invoices")]
    return max(set(days), key=days.count)


def metadata(result) -> dict:
    return {k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()}


def test_list_rows_without_a_key_are_kept_in_rejected_records_and_recovered_later(env):
    day = busiest_day(env)
    listed = [r for r in env.export("invoices") if partition_day(r).isoformat() == day]
    # both list requests of the day: the plain list and the credit notes' (logicType[]), which Precoro serves apart
    env.control("POST", "faults", json={"kind": "missing_fields", "fields": ["idn"], "path": "/invoices",
                                        "method": "GET", "count": 2})
    result = env.materialize("precoro/invoices", partition=day)
    assert result.success
    assert metadata(result)["rejected records"] == len(listed)
    kept = env.query("SELECT reason, raw FROM precoro.rejected_records WHERE entity = 'invoices'")
    assert len(kept) == len(listed)
    assert {json.loads(raw)["id"] for _, raw in kept} == {r["id"] for r in listed}  # the records as sent
    assert all("idn" in reason for reason, _ in kept)

    # Precoro answers properly again: the day is complete and the rejected list is empty again
    assert env.materialize("precoro/invoices", partition=day).success
    assert env.query("SELECT count(*) FROM precoro.rejected_records WHERE entity = 'invoices'") == [(0,)]
    assert env.query("SELECT count(*) FROM precoro.invoices WHERE partition_day = ?", [day]) == [(len(listed),)]


def test_renamed_unknown_and_mistyped_fields_become_null_but_stay_in_raw(env):
    day = busiest_day(env)
    env.control("POST", "faults", json={"kind": "renamed_fields", "rename": {"netSum": "netTotal"},
                                        "path": "/invoices/{idn}", "count": None})
    env.control("POST", "faults", json={"kind": "unknown_fields", "fields": {"sum": "12,50 EUR", "newField": [1, 2]},
                                        "path": "/invoices/{idn}", "count": None})
    result = env.materialize("precoro/invoices", partition=day)
    assert result.success
    assert metadata(result)["field problems"] > 0
    rows = env.query("SELECT sum, net_sum, raw FROM precoro.invoices WHERE partition_day = ?", [day])
    assert rows
    for amount, net, raw in rows:
        record = json.loads(raw)
        assert amount is None and net is None
        assert record["netTotal"] is not None and record["sum"] == "12,50 EUR" and record["newField"] == [1, 2]


def test_a_malformed_answer_is_retried_and_the_day_still_equals_precoro(env):
    day = busiest_day(env)
    env.control("POST", "faults", json={"kind": "malformed_json", "path": "/invoices/{idn}", "count": 1})
    env.control("POST", "faults", json={"kind": "error", "status": 503, "path": "/invoices/{idn}", "count": 2,
                                        "after": 1})
    assert env.materialize("precoro/invoices", partition=day).success
    in_day = lambda record: partition_day(record).isoformat() == day  # noqa: E731
    assert differences(env, BY_NAME["invoices"], in_range=in_day) == []
