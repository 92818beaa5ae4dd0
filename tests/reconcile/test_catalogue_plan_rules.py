"""The catalogue plan's rules on their own (no Precoro): who wins, what is merged, what is never sent."""

from __future__ import annotations

from precoro_assets.ledger.master_data_files import LedgerVendor
from precoro_assets.master_data.plan import Group, Twin, differences, plan_group


def vendor_group(vendors: list[LedgerVendor], linked: list[Twin] = (), unlinked: list[Twin] = (),
                 others: list[Twin] = ()) -> Group:
    return Group("vendor", "suppliers", vendors, list(linked), list(unlinked), "/suppliers",
                 lambda i: f"/suppliers/{i}", lambda v: {"path": "/suppliers", "external_id": v},
                 others=list(others))


def test_currencies_are_merged_never_shrunk_and_unmapped_or_empty_fields_are_not_sent():
    vendor = LedgerVendor("V-1", "Acme", currencies=("EUR", "USD"))  # no tax number, no enabled column
    have = {"name": "Acme", "currency": "EUR", "currencies": ["EUR", "PLN"], "taxPayerNumber": "PL-1",
            "enable": False}
    changed = differences({"name": vendor.name, "currency": "EUR", "currencies": ["EUR", "USD"],
                           "taxPayerNumber": None, "enable": None}, have)
    assert changed == {"currencies": ["EUR", "PLN", "USD"]}  # Precoro's PLN kept; tax number and flag left alone


def test_a_field_precoro_does_not_show_is_not_compared():
    assert differences({"name": "Acme", "legalAddress": "1 Main St"}, {"name": "Acme"}) == {}
    assert differences({"name": "Acme", "legalAddress": "1 Main St"}, {"name": "Acme", "legalAddress": None}) == {
        "legalAddress": "1 Main St"}


def test_a_name_linked_to_another_id_is_a_conflict_not_a_second_supplier():
    rows, proposals = plan_group(vendor_group([LedgerVendor("V-9", "Acme Ltd")],
                                              others=[Twin("7", "ACME  ltd", "QB-7", {})]))
    assert [(r.action, r.precoro_id) for r in rows if r.ledger_id == "V-9"] == [("conflict", None)]
    assert "linked to 'QB-7', not 'V-9'" in rows[0].reason and not proposals


def test_only_approved_enabled_unlinked_suppliers_are_offered_to_the_accounting_side():
    unlinked = [Twin("1", "Approved Co", None, {"status": 2, "enable": True}),
                Twin("2", "Pending Co", None, {"status": 1, "enable": True}),
                Twin("3", "Disabled Co", None, {"status": 2, "enable": False}),
                Twin("4", "Acme", None, {"status": 2, "enable": True})]  # matched by the vendor: linked
    rows, proposals = plan_group(vendor_group([LedgerVendor("V-1", "Acme"),
                                               LedgerVendor("V-2", "Retired", enabled=False)], unlinked=unlinked))
    actions = {r.precoro_id if r.ledger_id is None else r.ledger_id: r.action for r in rows}
    assert actions == {"V-1": "link", "V-2": "not_sent", "1": "offer", "2": "precoro_only", "3": "precoro_only"}
    assert sorted(p.kind for p in proposals) == ["export_supplier", "update_record"]
