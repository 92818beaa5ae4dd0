"""The writes real Precoro clients send are accepted as Precoro accepts them (the contract's "Writes real clients
send": Precoro's own connector, written with Precoro staff, and the `precoro-sdk`), query parameters the contract
doesn't name are counted, and what PATCH externalId is refused on.

Every effect is read back from the simulator's ground truth (`/_sim/export`) or through the API as a client would.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.simulator.sim_harness import amount, modified_since_text, moment, whole_second_now


def errors_of(response) -> dict:
    assert response.status_code == 400, response.text
    return response.json()["errors"]["errors"]


# ---- suppliers, items, taxes ---------------------------------------------------------------------------------


def test_a_supplier_is_created_and_replaced_with_its_address_and_legal_entities(api):
    entities = api.export("legalentities")
    assert len(entities) >= 2

    created = api.http.post("/suppliers", data={
        "name": "Hotglue vendor 3", "uniqueCode": "12346", "city": "Washington", "state": "Washington",
        "country": "USA", "supplierLegalEntityIds[]": [str(entities[0]["id"]), str(entities[1]["id"])]})

    assert created.status_code == 200, created.text
    supplier = api.exported("suppliers")[str(created.json()["id"])]
    assert (supplier["city"], supplier["state"], supplier["country"]) == ("Washington", "Washington", "USA")
    assert [e["id"] for e in supplier["supplierLegalEntities"]["data"]] == [entities[0]["id"], entities[1]["id"]]
    assert supplier["supplierLegalEntities"]["data"][0]["name"] == entities[0]["name"]

    # one id (Precoro's connector sends a single value so), and what is sent replaces the whole list
    replaced = api.http.put(f"/suppliers/{supplier['id']}", data={"supplierLegalEntityIds[]": str(entities[1]["id"]),
                                                                 "state": "Oregon"})
    assert replaced.status_code == 200, replaced.text
    after = api.detail("suppliers", supplier["id"])
    assert [e["id"] for e in after["supplierLegalEntities"]["data"]] == [entities[1]["id"]]
    assert (after["city"], after["state"]) == ("Washington", "Oregon")


def test_a_supplier_naming_an_unknown_legal_entity_is_a_400_and_changes_nothing(api):
    supplier = api.export("suppliers")[0]

    response = api.http.put(f"/suppliers/{supplier['id']}", data={"city": "Lyon", "supplierLegalEntityIds[]": "999999"})

    assert "supplierLegalEntityIds" in errors_of(response)
    assert api.detail("suppliers", supplier["id"]) == supplier


@pytest.mark.parametrize("sent, stored", [("0", False), ("1", True), ("true", True), ("false", False)])
def test_an_item_is_created_free_of_charge_or_not_as_sent(api, sent, stored):
    created = api.http.post("/items", data={"sku": "COLDGLUE124", "name": "Coldglue 2oz",
                                           "description": "This is a coldglue", "freeOfCharge": sent,
                                           "price": "12.57"})

    assert created.status_code == 200, created.text
    assert api.exported("items")[str(created.json()["id"])]["freeOfCharge"] is stored


def test_an_item_can_be_made_free_of_charge_and_a_bad_flag_is_a_400(api):
    item = api.export("items")[0]
    assert item["freeOfCharge"] is False

    assert api.http.put(f"/items/{item['id']}", data={"freeOfCharge": "1"}).status_code == 200
    assert api.detail("items", item["id"])["freeOfCharge"] is True
    assert "freeOfCharge" in errors_of(api.http.put(f"/items/{item['id']}", data={"freeOfCharge": "maybe"}))


def test_a_tax_is_created_with_value_and_percent_as_precoros_connector_sends_it(api):
    created = api.http.post("/taxes", data={"name": "TAX6", "value": "6", "percent": "6"})

    assert created.status_code == 200, created.text
    tax = next(t for t in api.walk("taxes") if t["id"] == created.json()["id"])
    assert (tax["name"], amount(tax["value"]), amount(tax["percent"])) == ("TAX6", Decimal(6), Decimal(6))

    # percent alone (the rate of a percentage tax) sets both
    assert api.http.put(f"/taxes/{tax['id']}", data={"percent": "7.7"}).status_code == 200
    tax = next(t for t in api.walk("taxes") if t["id"] == tax["id"])
    assert (amount(tax["value"]), amount(tax["percent"])) == (Decimal("7.7"), Decimal("7.7"))
    only_percent = api.http.post("/taxes", data={"name": "GST 5%", "percent": "5"})
    assert only_percent.status_code == 200, only_percent.text
    assert "percent" in errors_of(api.http.post("/taxes", data={"name": "Bad", "percent": "five"}))


# ---- custom field options ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["documentcustomfields", "itemcustomfields"])
def test_an_options_list_is_served_per_custom_field(api, resource):
    field = next(f for f in api.export(resource) if f["options"])

    body = api.ok("GET", f"/{resource}/{field['id']}/options")

    assert list(body) == ["data"]
    assert body["data"] == field["options"]
    assert all({"id", "externalId", "name"} <= set(option) for option in body["data"])
    assert api.get(f"/{resource}/999999/options").status_code == 404


def test_an_option_is_created_under_a_parent_and_can_be_disabled(api):
    field = next(f for f in api.export("itemcustomfields") if f["options"])
    parent = field["options"][0]

    created = api.http.post(f"/itemcustomfields/{field['id']}/options", data={
        "name": "6010 Office supplies", "code": "6010", "externalId": "GL-6010", "parent[id]": str(parent["id"]),
        "enable": "false"})

    assert created.status_code == 200, created.text
    options = {o["id"]: o for o in api.exported("itemcustomfields")[str(field["id"])]["options"]}
    option = options[created.json()["id"]]
    assert option["parent"]["id"] == parent["id"] and option["enable"] is False
    assert (option["name"], option["code"], option["externalId"]) == ("6010 Office supplies", "6010", "GL-6010")

    enabled = api.http.put(f"/itemcustomfields/{field['id']}/options/{option['id']}", data={"enable": "1"})
    assert enabled.status_code == 200, enabled.text
    after = {o["id"]: o for o in api.exported("itemcustomfields")[str(field["id"])]["options"]}[option["id"]]
    assert after["enable"] is True and after["parent"]["id"] == parent["id"]


def test_an_option_whose_parent_is_not_an_option_of_the_field_is_a_400(api):
    field = next(f for f in api.export("itemcustomfields") if f["options"])
    before = api.exported("itemcustomfields")[str(field["id"])]

    response = api.http.post(f"/itemcustomfields/{field['id']}/options", data={"name": "Orphan", "parent[id]": "1"})

    assert "parent" in errors_of(response)
    assert api.exported("itemcustomfields")[str(field["id"])] == before


@pytest.mark.parametrize("resource, parameter", [("itemcustomfields", "item_custom_field_option_id"),
                                                 ("documentcustomfields", "document_custom_field_option_id")])
def test_depend_add_limits_an_option_to_legal_entities_and_moves_the_fields_update_date(api, resource, parameter):
    field = next(f for f in api.export(resource) if f["options"])
    option = field["options"][-1]
    entities = [e["id"] for e in api.export("legalentities")][:2]
    since = whole_second_now()

    one = api.http.patch(f"/{resource}/options/depend_add", data={
        parameter: str(option["id"]), "depend_type": "1", "entity_ids": str(entities[0])})
    several = api.http.patch(f"/{resource}/options/depend_add", data={
        parameter: str(option["id"]), "depend_type": "1", "entity_ids": f"[{entities[0]}, {entities[1]}]"})

    assert one.status_code == 200 and several.status_code == 200, (one.text, several.text)
    stored = next(o for o in api.exported(resource)[str(field["id"])]["options"] if o["id"] == option["id"])
    assert [e["id"] for e in stored["dependLegalEntities"]] == entities
    assert api.keys(resource, [("modifiedSince", modified_since_text(since))]) == [str(field["id"])]
    unknown = api.http.patch(f"/{resource}/options/depend_add", data={
        parameter: str(option["id"]), "depend_type": "1", "entity_ids": "999999"})
    assert "entity_ids" in errors_of(unknown)
    assert api.http.patch(f"/{resource}/options/depend_add", data={
        parameter: "999999", "depend_type": "1", "entity_ids": str(entities[0])}).status_code == 404


# ---- payment terms, locations ------------------------------------------------------------------------------------


def test_a_payment_term_is_created_with_every_field_of_a_term(api):
    created = api.http.post("/paymentterms", data={
        "name": "30% upfront, rest net 45", "creditPeriodDays": "45", "prepaymentPercent": "30",
        "postpaymentPercent": "70", "termsDueDateAfterInvoicing": "1", "paymentType": "2", "enable": "true",
        "externalId": "TERM-45"})

    assert created.status_code == 200, created.text
    term = next(t for t in api.export("paymentterms") if t["id"] == created.json()["id"])
    assert {k: term[k] for k in ("name", "creditPeriodDays", "termsDueDateAfterInvoicing", "paymentType",
                                 "enable", "externalId")} == {
        "name": "30% upfront, rest net 45", "creditPeriodDays": 45, "termsDueDateAfterInvoicing": 1,
        "paymentType": 2, "enable": True, "externalId": "TERM-45"}
    assert (amount(term["prepaymentPercent"]), amount(term["postpaymentPercent"])) == (30, 70)


def test_a_payment_term_as_the_sdk_sends_it_and_bad_shares_are_a_400(api):
    # the SDK's defaults: floats for the shares, a Python bool for enable
    created = api.http.post("/paymentterms", data={
        "name": "Net 0", "paymentType": "0", "enable": "True", "postpaymentPercent": "100.0",
        "prepaymentPercent": "0.0", "creditPeriodDays": "0", "termsDueDateAfterInvoicing": "0"})
    assert created.status_code == 200, created.text
    term = next(t for t in api.export("paymentterms") if t["id"] == created.json()["id"])
    assert (term["paymentType"], term["termsDueDateAfterInvoicing"], amount(term["postpaymentPercent"])) == (0, 0, 100)

    terms = len(api.export("paymentterms"))
    assert "postpaymentPercent" in errors_of(api.http.post("/paymentterms", data={
        "name": "Too much", "prepaymentPercent": "0", "postpaymentPercent": "160"}))
    assert "paymentType" in errors_of(api.http.post("/paymentterms", data={"name": "Cheque", "paymentType": "7"}))
    assert len(api.export("paymentterms")) == terms


def test_a_location_is_created(api):
    before = set(api.exported("locations"))

    created = api.http.post("/locations", data={"name": "Warszawa – Mokotów", "address": "ul. Puławska 1",
                                                "externalId": "LOC-WAW"})

    assert created.status_code == 200, created.text
    [new] = set(api.exported("locations")) - before
    location = api.exported("locations")[new]
    assert (location["name"], location["address"], location["externalId"], location["enable"]) == (
        "Warszawa – Mokotów", "ul. Puławska 1", "LOC-WAW", True)
    assert moment(location["createDate"]) and str(created.json()["id"]) == new
    assert "name" in errors_of(api.http.post("/locations", data={"address": "nowhere"}))


# ---- payments are cancelled through the public API ---------------------------------------------------------------


def test_cancelling_a_payment_keeps_it_listed_and_takes_it_out_of_the_invoices_sum_paid(api):
    invoices = api.exported("invoices")
    payment = next(p for p in api.export("payments")
                   if p["status"] == 2 and invoices[str(p["invoice"]["idn"])]["status"] == 5)
    invoice = invoices[str(payment["invoice"]["idn"])]
    since = whole_second_now()

    response = api.http.post(f"/payments/{payment['idn']}/cancel")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == 8
    assert api.exported("payments")[str(payment["idn"])]["status"] == 8
    assert str(payment["idn"]) in api.keys("payments"), "a cancelled payment stays listed"
    after = api.detail("invoices", invoice["idn"])
    assert amount(after["sumPaid"]) == amount(invoice["sumPaid"]) - amount(payment["sumPaid"])
    assert after["status"] == (4 if amount(after["sumPaid"]) > 0 else 2)
    assert next(p for p in after["payments"]["data"] if p["id"] == payment["id"])["status"] == 8
    assert moment(after["updateDate"]) >= since
    assert str(invoice["idn"]) in api.keys("invoices", [("modifiedSince", modified_since_text(since))])

    again = api.http.post(f"/payments/{payment['idn']}/cancel")
    assert again.status_code == 400 and api.detail("invoices", invoice["idn"]) == after
    assert api.http.post("/payments/999999/cancel").status_code == 404
    assert {"POST /payments/{idn}/cancel"} <= {f"{r['method']} {r['path']}" for r in api.stats()["requests"]}


# ---- PATCH externalId only on the 11 entities the contract names -----------------------------------------------


@pytest.mark.parametrize("resource", ["expenses", "receipts", "purchaserequisitions"])
def test_patch_external_id_is_refused_on_documents_the_contract_has_none_for(api, resource):
    record = api.export(resource)[0]

    response = api.http.patch(f"/{resource}/{record['idn']}", data={"externalId": "ERP-1"})

    assert response.status_code in (404, 405), response.text
    assert api.exported(resource)[str(record["idn"])] == record


# ---- query parameters the contract does not name -----------------------------------------------------------------


def test_query_parameters_the_contract_does_not_name_are_counted_and_otherwise_ignored(api):
    named = [("page", 1), ("per_page", 20), ("status[]", 2), ("modifiedSince", "2020-01-01T00:00:00"),
             ("logicType[]", 1), ("createDate[left_date]", "01.01.2020"), ("external_id[]", "QB-1"),
             ("sent_to_external", 0), ("attachedFile", 1)]
    assert api.get("/invoices", params=named).status_code == 200
    assert api.get("/suppliers", params=[("enable", 1), ("externalIntegrated", 0), ("id", 1001)]).status_code == 200
    assert api.stats()["unknown_parameters"] == []

    everything = api.page("invoices", 1, 20)
    # a misspelt filter is ignored, as Precoro probably does: the answer is the unfiltered list ...
    assert api.page("invoices", 1, 20, [("statuss[]", 2)]) == everything
    assert api.get("/invoices", params=[("per_page", 20), ("status[0]", 2), ("status[1]", 4)]).json() == everything
    assert api.get(f"/invoices/{everything['data'][0]['idn']}", params={"expand": "items"}).status_code == 200

    # ... but counted, by method, route and name
    assert api.stats()["unknown_parameters"] == [
        {"method": "GET", "path": "/invoices", "name": "status[0]", "count": 1},
        {"method": "GET", "path": "/invoices", "name": "status[1]", "count": 1},
        {"method": "GET", "path": "/invoices", "name": "statuss[]", "count": 1},
        {"method": "GET", "path": "/invoices/{idn}", "name": "expand", "count": 1},
    ]
    api.reset()
    assert api.stats()["unknown_parameters"] == []
