"""The generated company looks like a real one: the statuses, currencies, exact amounts, line items with
custom field values, credit notes, split-cost children, attachments and awkward names that the warehouse
and every layer in between must cope with. Read through the API, checked against the contract."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from tests.simulator.sim_harness import Api, amount, moment, new_simulator_app

CENT = Decimal("0.01")


@pytest.fixture(scope="module")
def company() -> dict:
    """Everything a default-sized demo company serves (its list rows and the details of its documents)."""
    api = Api.in_process(new_simulator_app(seed=7, days=90, documents=600, limits="off"))
    try:
        return {resource: api.export(resource) for resource in
                ("invoices", "purchaseorders", "purchaserequisitions", "receipts", "payments", "suppliers",
                 "items", "documentcustomfields", "itemcustomfields", "attachments", "taxes", "units", "expenses")}
    finally:
        api.close()


def _exact_cents(value: object) -> bool:
    number = amount(value)
    return number == number.quantize(CENT)


def test_documents_spread_over_many_statuses(company):
    invoice_statuses = Counter(i["status"] for i in company["invoices"])
    order_statuses = Counter(po["status"] for po in company["purchaseorders"])

    assert {0, 1, 2, 3, 4, 5} <= set(invoice_statuses)
    assert {1, 2, 3} <= set(order_statuses)
    assert invoice_statuses.most_common(1)[0][1] < 0.8 * len(company["invoices"])
    for document in company["invoices"] + company["purchaseorders"]:
        assert isinstance(document["statusString"], str) and document["statusString"]


def test_several_currencies_with_consistent_exchange_rates(company):
    currencies = Counter(i["currency"] for i in company["invoices"])

    assert len(currencies) >= 3 and "USD" in currencies
    for invoice in company["invoices"]:
        rate = amount(invoice["exchangeRate"]["rate"])  # an object, as real invoices carry it
        assert rate > 0
        assert abs(amount(invoice["sumInCompanyCurrency"]) - amount(invoice["sum"]) * rate) <= CENT
        if invoice["currency"] == "USD":
            assert rate == 1


def test_amounts_are_exact_to_the_cent_and_lines_add_up(company):
    for document in company["invoices"] + company["purchaseorders"] + company["purchaserequisitions"]:
        for name in ("sum", "netSum"):
            assert isinstance(document[name], int | float) and _exact_cents(document[name]), (name, document[name])
        lines = document["items"]["data"]
        assert lines
        for line in lines:
            assert _exact_cents(line["price"]) and _exact_cents(line["netSum"]) and _exact_cents(line["sum"])
            assert amount(line["sum"]) == amount(line["netSum"]) + amount(line["taxSum"])
            assert abs(amount(line["netSum"]) - amount(line["quantity"]) * amount(line["price"])) <= CENT
        assert sum(amount(line["netSum"]) for line in lines) == amount(document["netSum"])
        assert sum(amount(line["sum"]) for line in lines) == amount(document["sum"])


def test_sum_paid_is_a_two_decimal_string_that_matches_the_payments(company):
    payments_by_invoice: dict[int, Decimal] = {}
    for payment in company["payments"]:
        assert _exact_cents(payment["sumPaid"]) and amount(payment["sumPaid"]) > 0
        invoice_id = payment["invoice"]["id"]
        payments_by_invoice[invoice_id] = payments_by_invoice.get(invoice_id, Decimal(0)) + amount(payment["sumPaid"])
    statuses = set()
    for invoice in company["invoices"]:
        paid = invoice["sumPaid"]
        assert isinstance(paid, str) and paid == f"{amount(paid):.2f}", paid
        assert amount(paid) == payments_by_invoice.get(invoice["id"], Decimal(0))
        assert amount(paid) == sum((amount(p["sumPaid"]) for p in invoice["payments"]["data"]), Decimal(0))
        if invoice["status"] == 5:
            assert amount(paid) == amount(invoice["sum"])
        if invoice["status"] == 4:
            assert 0 < amount(paid) < amount(invoice["sum"])
        if amount(paid):
            statuses.add(invoice["status"])
    assert statuses == {4, 5}, "only approved invoices get paid, and then are partly paid or paid"


def test_lines_and_documents_carry_custom_field_values_that_resolve(company):
    item_fields = {f["id"]: f for f in company["itemcustomfields"]}
    document_fields = {f["id"]: f for f in company["documentcustomfields"]}
    line_values = document_values = 0

    for document in company["invoices"] + company["purchaseorders"]:
        for value in document["dataDocumentCustomFields"]["data"]:
            field = document_fields[value["documentCustomField"]["id"]]
            document_values += 1
            if field["options"]:  # a drop-down: the value is an option id, as a string
                assert int(value["value"]) in {o["id"] for o in field["options"]}
        for line in document["items"]["data"]:
            for value in line["dataItemCustomFields"]["data"]:
                field = item_fields[value["itemCustomField"]["id"]]
                line_values += 1
                if field["options"]:
                    assert int(value["value"]) in {o["id"] for o in field["options"]}

    assert line_values and document_values
    assert any(f["options"] for f in item_fields.values()) and any(not f["options"] for f in item_fields.values())


def test_credit_notes_and_split_cost_children_exist(company):
    invoices = {i["idn"]: i for i in company["invoices"]}
    credit_notes = [i for i in invoices.values() if i["logicType"] in (1, 5)]
    children = [i for i in invoices.values() if i["parentData"]]

    assert credit_notes and {i["logicType"] for i in invoices.values()} <= {0, 1, 5}
    assert children
    for child in children:
        parent = invoices[child["parentData"]["idn"]]
        assert parent["id"] == child["parentData"]["id"] and parent["parentData"] is None
        assert child["supplier"] == parent["supplier"] and child["currency"] == parent["currency"]


def test_documents_have_real_attachments(company):
    files = {a["id"]: a for a in company["attachments"]}
    attached = [d for d in company["invoices"] + company["purchaseorders"] if d["attachments"]["data"]]

    assert 0.05 * len(company["invoices"]) < len(attached)
    kinds = set()
    for document in attached:
        for attachment in document["attachments"]["data"]:
            assert files[attachment["id"]]["size"] == attachment["size"] > 0
            kinds.add(attachment["mimeType"])
    assert kinds == {"application/pdf", "image/png"}


def test_names_contain_quotes_ampersands_and_non_ascii(company):
    names = [s["name"] for s in company["suppliers"]] + [i["name"] for i in company["items"]]

    assert any("'" in name for name in names) and any('"' in name for name in names)
    assert any("&" in name for name in names) and any(";" in name for name in names)
    assert any(not name.isascii() for name in names)
    assert any(any(ord(ch) > 0x3000 for ch in name) for name in names)  # beyond Latin and Cyrillic


def test_dates_are_consistent(company):
    for resource in ("invoices", "purchaseorders", "purchaserequisitions", "receipts", "payments", "suppliers"):
        for record in company[resource]:
            created, updated = moment(record["createDate"]), moment(record["updateDate"])
            assert created <= updated, (resource, record.get("idn", record["id"]))
            if record.get("approvalDate"):
                assert moment(record["approvalDate"]) >= created, (resource, record.get("idn", record["id"]))
                assert moment(record["approvalDate"]) <= updated, (resource, record.get("idn", record["id"]))
    for invoice in company["invoices"]:
        if invoice["status"] in (2, 4, 5, 11):
            assert invoice["approvalDate"], invoice["idn"]


def test_suppliers_and_items_look_like_a_real_vendor_list(company):
    suppliers = company["suppliers"]

    assert Counter(s["status"] for s in suppliers).keys() >= {1, 2}
    assert any(s["enable"] is False for s in suppliers) and any(s["enable"] is True for s in suppliers)
    assert any(s["externalId"] for s in suppliers) and any(not s["externalId"] for s in suppliers)
    for supplier in suppliers:
        assert supplier["currency"] in supplier["currencies"]
        assert supplier["contacts"]["data"] and all("@" in c["email"] for c in supplier["contacts"]["data"])
    for item in company["items"]:
        assert _exact_cents(item["price"]) and amount(item["price"]) > 0
        assert item["supplier"]["id"] in {s["id"] for s in suppliers}


def test_units_of_measure_name_every_unit_a_line_carries(company):
    units = company["units"]
    codes = [u["code"] for u in units]

    assert len(codes) == len(set(codes)) and {"pcs", "kg", "hour", "m", "l", "box"} <= set(codes)
    assert all(u["name"] and isinstance(u["enable"], bool) for u in units)
    assert any(u["enable"] is False for u in units) and any(u["externalId"] for u in units)
    # receipt lines name no unit: they point at the ordered line
    line_units = {line["unit"] for resource in ("invoices", "purchaseorders", "purchaserequisitions", "expenses")
                  for document in company[resource] for line in document["items"]["data"]}
    assert line_units and line_units <= set(codes), "an analyst joins lines to units on the unit's code"
