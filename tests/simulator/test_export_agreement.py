"""`GET /_sim/export/{resource}` is ground truth only if it agrees with what the API serves: list rows are
the export records (documents without their nested collections), details are the export records."""

from __future__ import annotations

import random

import pytest

from tests.simulator.sim_harness import (
    RESOURCES,
    WITH_DETAIL,
    is_collection,
    key_of,
    list_row,
)


@pytest.mark.parametrize("resource", RESOURCES)
def test_list_rows_equal_the_export_records_without_nested_collections(api, resource):
    exported = api.exported(resource)
    key = key_of(resource)

    rows = api.walk_every(resource)  # invoices: credit notes are listed apart

    assert sorted(str(row[key]) for row in rows) == sorted(exported)
    for row in rows:
        assert row == list_row(resource, exported[str(row[key])])


@pytest.mark.parametrize("resource", WITH_DETAIL)
def test_details_equal_the_export_records(api, resource):
    records = api.export(resource)
    sample = [records[0], records[-1], *random.Random(resource).sample(records, min(8, len(records)))]

    for record in sample:
        assert api.detail(resource, record[key_of(resource)]) == record


def test_document_exports_carry_the_nested_collections_lists_leave_out(api):
    for resource in ("purchaseorders", "invoices", "purchaserequisitions", "receipts"):
        record = api.export(resource)[0]
        assert is_collection(record["items"]), resource
        assert "items" not in api.page(resource, 1, 200)["data"][-1]


def test_the_export_follows_writes_made_through_the_api(api):
    invoice = next(i for i in api.export("invoices") if i["status"] == 2 and i["logicType"] == 0)
    api.http.patch(f"/invoices/{invoice['idn']}", data={"externalId": "QB-BILL-EXPORT"})

    after = next(i for i in api.export("invoices") if i["id"] == invoice["id"])

    assert after["externalId"] == "QB-BILL-EXPORT"
    assert after == api.detail("invoices", invoice["idn"])
