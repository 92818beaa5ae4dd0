"""The detail fields Precoro's own connector reads are served, with the JSON types it declares for them.

The facts below are copied by hand from the typed schemas of the Singer tap for Precoro (hotgluexyz/tap-precoro,
commits co-authored by Precoro staff, as of its commit 05074d3, 2026): field name -> the JSON types its schema
allows. Every property there is nullable. They are listed here, not read from the tap's code, so that a change
on either side shows up as a failing test.
"""

from __future__ import annotations

import pytest

# InvoiceDetailsStream (GET /invoices/{idn})
INVOICE_DETAIL = {
    "approvingWay": ("object", "array", "string"),
    "usedTaxPercentInBudget": ("string",),
    "isRequiredTaxesForItems": ("boolean",),
    "qboId": ("number", "string"),
    "xeroId": ("number", "string"),
    "sumPaidInCompanyCurrency": ("number", "string"),
    "withholdingTaxSum": ("number", "string"),
}
# ExpensesDetailsStream (GET /expenses/{idn})
EXPENSE_DETAIL = {
    "sumPaid": ("number",),
    "sumPaidInCompanyCurrency": ("number",),
    "withholdingTaxSum": ("number",),
    "approvingWay": ("object", "array", "string"),
    "lastEditor": ("object", "string", "array"),
    "usedTaxPercentInBudget": ("string",),
    "qboId": ("string",),
}
# SuppliersStream, filled from GET /suppliers/{id} (the connector's fetch_supplier_details)
SUPPLIER_DETAIL = {
    "creator": ("object",),
    "note": ("string",),
    "conditions": ("string",),
    "city": ("string",),
    "state": ("string",),
    "country": ("string",),
    "postalCode": ("string",),
    "taxPayer": ("boolean",),
    "taxPayerType": ("number",),
    "taxPayerLabel": ("string",),
    "taxPayerNumber": ("string",),
    "deliveryPeriod": ("number",),
    "minimumSum": ("number",),
    "enableToleranceRate": ("boolean",),
    "toleranceRatePercent": ("number",),
    "dataSupplierCustomFields": ("object", "string"),
}
FACTS = {"invoices": INVOICE_DETAIL, "expenses": EXPENSE_DETAIL, "suppliers": SUPPLIER_DETAIL}


def json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", dict: "object", list: "array"}[type(value)]


def key(resource: str) -> str:
    return "id" if resource == "suppliers" else "idn"


@pytest.mark.parametrize("resource", sorted(FACTS))
def test_every_detail_carries_the_fields_precoros_connector_reads_with_the_types_it_declares(api, resource):
    records = api.export(resource)
    served = [api.detail(resource, record[key(resource)]) for record in records[:: max(1, len(records) // 25)]]
    assert served

    wrong = [f"{resource} {detail[key(resource)]}: {name} = {detail.get(name, '(absent)')!r}"
             for detail in served for name, types in FACTS[resource].items()
             if name not in detail or detail[name] is not None and json_type(detail[name]) not in types]
    assert wrong == []
    # each field holds a value somewhere (a field always null would say nothing about its type)
    never = [name for name in FACTS[resource] if all(record.get(name) in (None, "") for record in records)]
    expected_never = {"invoices": ["xeroId"]}.get(resource, [])  # the simulated company books in QuickBooks
    assert never == expected_never


def test_supplier_custom_field_values_come_with_the_detail_as_document_values_do(api):
    supplier = next(s for s in api.export("suppliers") if s["dataSupplierCustomFields"]["data"])

    detail = api.detail("suppliers", supplier["id"])
    row = next(r for r in api.walk("suppliers") if r["id"] == supplier["id"])

    [value] = detail["dataSupplierCustomFields"]["data"]
    assert isinstance(value["supplierCustomField"]["id"], int) and isinstance(value["value"], str)
    assert "dataSupplierCustomFields" not in row  # a supplier's list row lacks what only its detail carries
