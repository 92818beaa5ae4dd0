"""The detail fields Precoro's own connector reads land in typed columns an analyst can use: money as DECIMAL,
flags as BOOLEAN, ids as text, whatever JSON type the tap allows for each (see tests/simulator/
test_detail_fields.py for the facts); the record stays whole in `raw`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from precoro_assets.catalogue import BY_NAME
from precoro_assets.warehouse.rows import Rows, flatten

NOW = datetime(2026, 12, 6, tzinfo=UTC)

# column -> (its type, the field it reads): what the warehouse promises analysts
INVOICE_COLUMNS = {
    "approving_way": ("VARCHAR", "approvingWay"),
    "used_tax_percent_in_budget": ("DECIMAL(38,10)", "usedTaxPercentInBudget"),
    "is_required_taxes_for_items": ("BOOLEAN", "isRequiredTaxesForItems"),
    "qbo_id": ("VARCHAR", "qboId"),
    "xero_id": ("VARCHAR", "xeroId"),
    "sum_paid_in_company_currency": ("DECIMAL(18,2)", "sumPaidInCompanyCurrency"),
    "withholding_tax_sum": ("DECIMAL(18,2)", "withholdingTaxSum"),
}
EXPENSE_COLUMNS = {
    "sum_paid_in_company_currency": ("DECIMAL(18,2)", "sumPaidInCompanyCurrency"),
    "withholding_tax_sum": ("DECIMAL(18,2)", "withholdingTaxSum"),
    "approving_way": ("VARCHAR", "approvingWay"),
    "last_editor_id": ("BIGINT", "lastEditor.id"),
    "used_tax_percent_in_budget": ("DECIMAL(38,10)", "usedTaxPercentInBudget"),
    "qbo_id": ("VARCHAR", "qboId"),
}
SUPPLIER_COLUMNS = {
    "creator_id": ("BIGINT", "creator.id"),
    "note": ("VARCHAR", "note"),
    "conditions": ("VARCHAR", "conditions"),
    "state": ("VARCHAR", "state"),
    "postal_code": ("VARCHAR", "postalCode"),
    "tax_payer_type": ("INTEGER", "taxPayerType"),
    "tax_payer_label": ("VARCHAR", "taxPayerLabel"),
    "delivery_period": ("INTEGER", "deliveryPeriod"),
    "minimum_sum": ("DECIMAL(18,2)", "minimumSum"),
    "enable_tolerance_rate": ("BOOLEAN", "enableToleranceRate"),
    "tolerance_rate_percent": ("DECIMAL(38,10)", "toleranceRatePercent"),
}


@pytest.mark.parametrize("entity, expected", [("invoices", INVOICE_COLUMNS), ("expenses", EXPENSE_COLUMNS),
                                              ("suppliers", SUPPLIER_COLUMNS)])
def test_the_catalogue_types_the_detail_fields_an_analyst_needs(entity, expected):
    columns = {column.name: (column.type, column.source) for column in BY_NAME[entity].columns}
    assert {name: columns.get(name) for name in expected} == expected


def flat(entity: str, record: dict) -> tuple[Rows, dict]:
    rows = Rows()
    flatten(BY_NAME[entity], record, rows, NOW)
    return rows, rows.tables[entity][0]


def test_an_invoices_detail_fields_are_read_in_every_shape_the_tap_allows():
    for approving_way, text in (("workflow", "workflow"), ({"id": 2, "name": "Manual"}, {"id": 2, "name": "Manual"}),
                                ([1, 2], [1, 2])):
        rows, row = flat("invoices", {"id": 400001, "idn": "1", "approvingWay": approving_way,
                                      "usedTaxPercentInBudget": "100", "isRequiredTaxesForItems": True,
                                      "qboId": 1234, "xeroId": "9f1c-22", "sumPaidInCompanyCurrency": "10.50",
                                      "withholdingTaxSum": 0.1})
        assert rows.problems == []
        assert (text if isinstance(text, str) else json.loads(row["approving_way"])) == text
        assert (row["used_tax_percent_in_budget"], row["is_required_taxes_for_items"]) == (Decimal(100), True)
        assert (row["qbo_id"], row["xero_id"]) == ("1234", "9f1c-22")
        assert (row["sum_paid_in_company_currency"], row["withholding_tax_sum"]) == (Decimal("10.50"), Decimal("0.10"))
        assert json.loads(row["raw"])["approvingWay"] == approving_way


def test_an_expenses_money_is_exact_and_its_last_editor_read_whatever_its_shape():
    rows, row = flat("expenses", {"id": 700001, "idn": "1", "sumPaidInCompanyCurrency": 1234.56,
                                  "withholdingTaxSum": "12.30", "lastEditor": {"id": 101, "fullName": "Ada"},
                                  "qboId": "9001", "approvingWay": "workflow", "usedTaxPercentInBudget": "50"})
    assert rows.problems == []
    assert (row["sum_paid_in_company_currency"], row["withholding_tax_sum"]) == (Decimal("1234.56"), Decimal("12.30"))
    assert (row["last_editor_id"], row["qbo_id"], row["used_tax_percent_in_budget"]) == (101, "9001", Decimal(50))
    # the tap allows a text or a list too: a list is read by its first element, a text has no id (raw keeps it)
    assert flat("expenses", {"id": 700002, "idn": "2", "lastEditor": [{"id": 102}]})[1]["last_editor_id"] == 102
    rows, row = flat("expenses", {"id": 700003, "idn": "3", "lastEditor": "Ada Lovelace"})
    assert row["last_editor_id"] is None and rows.problems == [] and "Ada Lovelace" in row["raw"]


def test_a_suppliers_detail_fields_and_custom_field_values_are_read():
    rows, row = flat("suppliers", {
        "id": 1001, "name": "Zakład Śląski", "creator": {"id": 101}, "note": "Pays late", "conditions": "EXW",
        "state": "Małopolskie", "postalCode": "30-001", "taxPayerType": 1, "taxPayerLabel": "VAT number",
        "deliveryPeriod": 5, "minimumSum": "150.00", "enableToleranceRate": True, "toleranceRatePercent": 2.5,
        "dataSupplierCustomFields": {"data": [{"supplierCustomField": {"id": 91}, "value": "Preferred"}]}})

    assert rows.problems == []
    assert {name: row[name] for name in SUPPLIER_COLUMNS} == {
        "creator_id": 101, "note": "Pays late", "conditions": "EXW", "state": "Małopolskie",
        "postal_code": "30-001", "tax_payer_type": 1, "tax_payer_label": "VAT number", "delivery_period": 5,
        "minimum_sum": Decimal("150.00"), "enable_tolerance_rate": True, "tolerance_rate_percent": Decimal("2.5")}
    [value] = rows.tables["supplier_custom_field_values"]
    assert (value["field_id"], value["value"]) == (91, "Preferred")
