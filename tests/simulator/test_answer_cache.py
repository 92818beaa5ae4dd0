"""The simulator serialises a record once and serves those bytes again until the record's resource changes:
a record read before a change is served changed after it, in its detail and in its list row."""

from __future__ import annotations


def row_of(api, resource: str, key: str, per_page: int = 200) -> dict:
    return next(row for row in api.walk_every(resource, per_page) if str(row["idn" if "idn" in row else "id"]) == key)


def test_a_patched_record_is_served_changed_in_its_detail_and_its_list_row(api):
    invoice = str(api.page("invoices")["data"][0]["idn"])
    assert api.detail("invoices", invoice)["externalId"] != "QB-CACHE-1"  # served (and cached) before the change
    assert row_of(api, "invoices", invoice)["externalId"] != "QB-CACHE-1"

    api.ok("PATCH", f"/invoices/{invoice}", data={"externalId": "QB-CACHE-1"})

    assert api.detail("invoices", invoice)["externalId"] == "QB-CACHE-1"
    assert row_of(api, "invoices", invoice)["externalId"] == "QB-CACHE-1"
    assert api.exported("invoices")[invoice]["externalId"] == "QB-CACHE-1"


def test_a_replaced_supplier_is_served_changed(api):
    supplier = str(api.page("suppliers")["data"][-1]["id"])
    assert api.detail("suppliers", supplier)["name"] != "Cached Supplier Ltd"
    row_of(api, "suppliers", supplier)

    api.ok("PUT", f"/suppliers/{supplier}", data={"name": "Cached Supplier Ltd"})

    assert api.detail("suppliers", supplier)["name"] == "Cached Supplier Ltd"
    assert row_of(api, "suppliers", supplier)["name"] == "Cached Supplier Ltd"


def test_records_changed_by_ticks_are_served_changed(api):
    served = {resource: {str(row["idn"]): row["updateDate"] for row in api.walk_every(resource)}
              for resource in ("purchaserequisitions", "invoices", "payments")}
    changes = [c for c in api.tick(40) if c["resource"] in served]
    assert changes

    for change in changes:
        detail = api.detail(change["resource"], change["key"])
        row = row_of(api, change["resource"], str(change["key"]))
        truth = api.exported(change["resource"])[str(change["key"])]
        assert row["updateDate"] == detail["updateDate"] == truth["updateDate"]
        if change["action"] == "created":
            assert str(change["key"]) not in served[change["resource"]]


def test_a_content_fault_alters_one_answer_and_the_next_is_whole_again(api):
    invoice = str(api.page("invoices")["data"][0]["idn"])
    whole = api.detail("invoices", invoice)
    api.fault(kind="missing_fields", fields=["sum"], path="/invoices/{idn}", count=1)

    altered = api.detail("invoices", invoice)

    assert "sum" not in altered and {**altered, "sum": whole["sum"]} == whole
    assert api.detail("invoices", invoice) == whole



def test_warming_serialises_every_answer_ahead_and_changes_none(api):
    invoice = str(api.page("invoices")["data"][0]["idn"])
    before = (api.detail("invoices", invoice), row_of(api, "invoices", invoice))
    resources = api.ok("GET", "/_sim/info")["resources"]

    warmed = api.ok("POST", "/_sim/warm")["serialised"]

    assert warmed == sum(len(api.exported(resource)) for resource in resources if resource != "attachments")
    assert (api.detail("invoices", invoice), row_of(api, "invoices", invoice)) == before
    api.ok("PATCH", f"/invoices/{invoice}", data={"externalId": "QB-WARM-1"})
    assert api.detail("invoices", invoice)["externalId"] == "QB-WARM-1"  # a warmed answer is no staler
