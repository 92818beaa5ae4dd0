"""Shapes real clients expect (Precoro's own connector, typed against real responses; the precoro-sdk), and the
other shape of each where the real API is not known, behind `POST /_sim/shapes`.

The connector's types are written here as facts (JSON types by field), not taken from its code.
"""

from __future__ import annotations

import threading
import time

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.simulator.sim_harness import CREDIT_NOTE_TYPES, CREDIT_NOTES, DOCUMENTS

NUMBER = (int, float)  # a JSON number (and not a boolean: checked apart)

# Precoro's connector's schema of a payment term, as a supplier's detail carries it; the payment term list's
# own rows carry the same fields (and the SDK creates one with all of them).
PAYMENT_TERM_FIELDS = {"id": NUMBER, "name": str, "prepaymentPercent": NUMBER, "postpaymentPercent": NUMBER,
                       "creditPeriodDays": NUMBER, "termsDueDateAfterInvoicing": NUMBER, "paymentType": NUMBER,
                       "enable": bool, "externalId": (str, type(None))}


def shapes(api, **switches: bool) -> dict:
    response = api.control.post("/_sim/shapes", json=switches)
    assert response.status_code == 200, response.text
    return response.json()


def typed_as(value: object, types: tuple[type, ...] | type) -> bool:
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in (
        types if isinstance(types, tuple) else (types,)))


# ---- payment terms ----------------------------------------------------------------------------------


def test_payment_terms_carry_their_codes_as_numbers(api):
    terms = api.walk("paymentterms")
    assert terms

    for term in terms:
        wrong = {name: term.get(name) for name, types in PAYMENT_TERM_FIELDS.items()
                 if not typed_as(term.get(name), types)}
        assert not wrong, f"payment term {term['id']}: {wrong}"


def test_a_suppliers_payment_terms_carry_every_field_of_the_payment_term(api):
    terms = {term["id"]: term for term in api.walk("paymentterms")}
    supplier = api.detail("suppliers", api.page("suppliers", 1, 10)["data"][0]["id"])

    linked = supplier["paymentTerms"]["data"]

    assert linked
    for term in linked:
        assert set(term) == set(PAYMENT_TERM_FIELDS)
        assert all(typed_as(term[name], types) for name, types in PAYMENT_TERM_FIELDS.items()), term
        assert term == {name: terms[term["id"]][name] for name in PAYMENT_TERM_FIELDS}


# ---- credit notes and the plain invoice list ---------------------------------------------------------


def test_the_plain_invoice_list_leaves_credit_notes_out_by_default(api):
    invoices = api.exported("invoices")
    notes = {idn for idn, invoice in invoices.items() if invoice["logicType"] in CREDIT_NOTE_TYPES}
    assert notes

    plain = set(api.keys("invoices"))
    listed_apart = set(api.keys("invoices", CREDIT_NOTES))

    assert listed_apart == notes
    assert plain == set(invoices) - notes  # together, every invoice exactly once


def test_the_other_shape_lists_credit_notes_in_the_plain_invoice_list_too(api):
    assert shapes(api, credit_notes_in_invoice_list=True)["credit_notes_in_invoice_list"] is True

    assert sorted(api.keys("invoices")) == sorted(api.exported("invoices"))
    assert {str(r["logicType"]) for r in api.walk("invoices", params=CREDIT_NOTES)} <= {"1", "5"}

    api.reset()
    assert shapes(api)["credit_notes_in_invoice_list"] is False  # a reset restores the default


# ---- idn -------------------------------------------------------------------------------------------


def idns(record: object) -> list[object]:
    """Every `idn` in a record: its own and those of the documents it refers to."""
    if isinstance(record, dict):
        return [v for k, v in record.items() if k == "idn"] + [i for v in record.values() for i in idns(v)]
    if isinstance(record, list):
        return [i for v in record for i in idns(v)]
    return []


@pytest.mark.parametrize("resource", DOCUMENTS)
def test_idn_is_a_string_in_list_rows_details_and_references(api, resource):
    rows = api.page(resource, 1, 50)["data"]
    detail = api.detail(resource, rows[0]["idn"])

    found = idns(rows) + idns(detail)

    assert len(found) > len(rows)
    assert all(isinstance(idn, str) and idn.isdigit() for idn in found), found[:5]


def test_idn_as_number_is_the_other_shape_with_the_same_documents(api):
    strings = api.exported("payments")
    before = api.page("payments", 1, 20)["data"]

    assert shapes(api, idn_as_number=True)["idn_as_number"] is True
    rows = api.page("payments", 1, 20)["data"]
    detail = api.detail("payments", rows[0]["idn"])
    invoice = api.detail("invoices", detail["invoice"]["idn"])

    assert all(type(idn) is int for idn in idns(rows) + idns(detail) + idns(invoice))
    assert [str(r["idn"]) for r in rows] == [r["idn"] for r in before]  # the same documents, only typed so
    assert {str(p["invoice"]["idn"]) for p in api.export("payments")} == {
        p["invoice"]["idn"] for p in strings.values()}  # the export serves records as the API does
    created = api.ok("POST", "/payments", data={"invoice[id]": payable(api)["id"], "sumPaid": "0.01"})
    assert type(created["idn"]) is int and type(created["invoice"]["idn"]) is int


def payable(api) -> dict:
    return next(i for i in api.export("invoices") if i["status"] in (2, 4) and i["logicType"] == 0
                and not i.get("parentData"))


def test_a_write_answers_with_idn_as_a_string_by_default(api):
    created = api.ok("POST", "/payments", data={"invoice[id]": payable(api)["id"], "sumPaid": "0.01"})

    assert isinstance(created["idn"], str) and isinstance(created["invoice"]["idn"], str)


@pytest.mark.e2e  # the simulator delivers webhooks by HTTP to a receiver on a socket
def test_a_webhook_names_the_document_by_its_idn_as_a_number(api):
    """Precoro's documented webhook body: {"id": 123456, "type": 2, "action": 0, "idn": 5}."""
    received: list[dict] = []

    @Request.application
    def receiver(request: Request) -> Response:
        received.append(request.get_json())
        return Response("ok")

    server = make_server("127.0.0.1", 0, receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api.control.post("/_sim/webhooks", json={"urls": [f"http://127.0.0.1:{server.port}/hook"]})
        api.ok("PATCH", f"/invoices/{api.page('invoices', 1, 10)['data'][0]['idn']}", data={"externalId": "QB-1"})
        deadline = time.time() + 10
        while not received and time.time() < deadline:
            time.sleep(0.05)
    finally:
        api.reset()
        server.shutdown()
    assert received and type(received[0]["idn"]) is int


# ---- items: category and the custom field values' key ------------------------------------------------------


def category_options(api) -> tuple[int, dict[str, str]]:
    """The item custom field "Category" (Precoro moved item categories there): its id and option names by id."""
    [field] = [f for f in api.walk("itemcustomfields") if f["name"] == "Category"]
    return field["id"], {str(o["id"]): o["name"] for o in field["options"]}


def category_values(item: dict, key: str, field_id: int) -> list[str]:
    return [v["value"] for v in item[key]["data"] if v["itemCustomField"]["id"] == field_id]


def test_items_come_without_category_which_the_category_custom_field_holds(api):
    field_id, options = category_options(api)
    items = api.walk("items")

    assert items and all("category" not in item for item in items)
    for item in items[:50]:
        [value] = category_values(item, "dataProductCustomFields", field_id)
        assert value in options
        assert "category" not in api.detail("items", item["id"])


def test_the_other_item_shapes_serve_category_and_the_values_as_dataItemCustomFields(api):
    field_id, options = category_options(api)
    default = {item["id"]: item for item in api.walk("items")}

    shapes(api, item_category=True, item_values_as_dataItemCustomFields=True)
    items = api.walk("items")

    assert [i["id"] for i in items] == list(default)
    for item in items:
        assert "dataProductCustomFields" not in item
        assert item["dataItemCustomFields"] == default[item["id"]]["dataProductCustomFields"]
        [value] = category_values(item, "dataItemCustomFields", field_id)
        assert set(item["category"]) == {"id", "name"} and item["category"]["name"] == options[value]
    assert api.detail("items", items[0]["id"])["category"] == items[0]["category"]
    assert api.export("items")[0].keys() == api.detail("items", api.export("items")[0]["id"]).keys()


def test_shapes_are_true_or_false_switches_among_known_names(api):
    assert set(shapes(api)) >= {"credit_notes_in_invoice_list", "numbers_as_text", "idn_as_number",
                                "item_category", "item_values_as_dataItemCustomFields"}
    with api.client(timeout=10) as control:
        for bad in ({"idn_as_numbers": True}, {"idn_as_number": "yes"}):
            assert control.post("/_sim/shapes", json=bad).status_code == 400
