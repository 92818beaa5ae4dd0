"""reconciliation.yaml, the alias and allocation files, and how invoice numbers are read."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from precoro_assets.reconcile.ap_matching import MatchRules, load_rules, normalise_number


@pytest.mark.parametrize("typed", ["INV-00123", "inv 123", "Invoice No. 00123", "#123", " 123 ", "inv-0123", "123"])
def test_invoice_numbers_read_as_ap_clerks_read_them(typed: str):
    assert normalise_number(typed) == "123"


def test_numbers_that_are_not_prefixed_numbers_keep_their_letters():
    assert normalise_number("NW-2024-0042") == "NW20240042" != normalise_number("NW-2024-0043")
    assert normalise_number("A-0012") == "A0012"


def test_without_files_the_documented_defaults_apply(tmp_path: Path):
    rules = load_rules(tmp_path)
    assert rules.auto_threshold == Decimal("0.90") and rules.tolerance_absolute == Decimal("0.01")
    assert [name for name, _ in rules.rules] == ["allocation", "normalised_number", "batch_subset"]
    assert rules == MatchRules()


def test_the_yaml_file_orders_switches_off_and_tunes_the_rules(tmp_path: Path):
    (tmp_path / "reconciliation.yaml").write_text(
        "auto_threshold: 0.93\ntolerance: {absolute: '0.05', percent: 1}\n"
        "rules:\n  - {name: batch_subset, confidence: 0.94}\n  - allocation\n")
    (tmp_path / "supplier_aliases.csv").write_text("alias,supplier\nACME CORP (AP),Acme Corporation\n")
    (tmp_path / "payment_allocations.csv").write_text("payment_id,invoice_number,amount\nP-1,INV-1,10.00\n"
                                                      "P-1,INV-2,5.50\n")
    rules = load_rules(tmp_path)
    assert rules.rules == (("batch_subset", Decimal("0.94")), ("allocation", Decimal("0.99")))
    assert rules.within(Decimal("100.00"), Decimal("99.01")) and not rules.within(Decimal("100"), Decimal("98.9"))
    assert rules.aliases == {"acme corp (ap)": "Acme Corporation"}
    assert [(a.invoice_number, a.amount) for a in rules.allocations["P-1"]] == [("INV-1", Decimal("10.00")),
                                                                                 ("INV-2", Decimal("5.50"))]


@pytest.mark.parametrize("text, says", [
    ("auto_treshold: 0.9\n", "unknown key(s) ['auto_treshold']"),
    ("auto_threshold: 0.99\n", "at most 0.97"),
    ("rules: [fuzzy_names]\n", "rule 'fuzzy_names' is not one of"),
    ("tolerance: {absolute: a cent}\n", "tolerance.absolute 'a cent' is not a number"),
])
def test_a_setting_that_is_not_understood_stops_with_its_name(tmp_path: Path, text: str, says: str):
    (tmp_path / "reconciliation.yaml").write_text(text)
    with pytest.raises(ValueError, match="reconciliation.yaml") as error:
        load_rules(tmp_path)
    assert says in str(error.value)
