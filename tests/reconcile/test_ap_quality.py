"""Matching quality on a labelled accounts-payable dataset (ap_dataset.py): the AP rules against today's strong
keys, on the same data. Auto matches are what the reconciliation acts on; below the threshold nothing is written."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from precoro_assets.reconcile.ap_matching import MatchRules
from precoro_assets.reconcile.classify import reconcile
from precoro_assets.reconcile.records import (
    AMBIGUOUS,
    CURRENCY_MISMATCH,
    NEEDS_REVIEW,
    UNMATCHED,
    Reconciliation,
)
from precoro_assets.writeback.proposals import CREATE_PAYMENT
from tests.reconcile.ap_dataset import generate

NOT_ACTED_ON = (AMBIGUOUS, NEEDS_REVIEW, UNMATCHED, CURRENCY_MISMATCH)


def auto_pairs(result: Reconciliation) -> set[tuple[str, str]]:
    """(ledger record, Precoro invoice) for every payment and bill the reconciliation placed and acts on."""
    pairs = set()
    for row in result.ledger:
        if row.klass in NOT_ACTED_ON:
            continue
        pairs |= {(row.ledger_id, idn) for idn, _ in row.parts} or (
            {(row.ledger_id, row.invoice_idn)} if row.invoice_idn else set())
    return pairs


def scores(result: Reconciliation, truth: dict[str, set[str]]) -> tuple[float, float, int]:
    true_pairs = {(payment, idn) for payment, idns in truth.items() for idn in idns}
    found = auto_pairs(result)
    correct = found & true_pairs
    return len(correct) / len(found), len(correct) / len(true_pairs), len(found)


def test_the_ap_rules_find_what_the_strong_keys_miss_without_false_matches():
    data = generate()
    assert len(data.invoices) >= 2000 and len(data.payments) >= 2000
    assert set(data.pattern.values()) >= {"bill_id", "exact", "typed", "alias", "learned", "cent", "fee",
                                          "company_currency", "allocated", "batch", "amount", "lookalike", "nothing",
                                          "bill_typed", "bill_linked"}
    today = reconcile(data.invoices, data.payments, data.bills)
    rules = reconcile(data.invoices, data.payments, data.bills, rules=data.rules())
    today_precision, today_recall, _ = scores(today, data.truth)
    precision, recall, found = scores(rules, data.truth)
    print(f"\ntoday's keys: precision {today_precision:.3f}, recall {today_recall:.3f}; "
          f"AP rules: precision {precision:.3f}, recall {recall:.3f} ({found} auto matches)")
    assert precision >= 0.99 and recall >= 0.95
    assert recall > today_recall + 0.2


def test_nothing_below_the_auto_threshold_is_written_back_and_the_review_queue_names_candidates():
    data = generate(seed=21, invoices=2000)
    result = reconcile(data.invoices, data.payments, data.bills, rules=data.rules())
    review = [row for row in result.ledger if row.klass in (NEEDS_REVIEW, AMBIGUOUS) and row.rule]
    assert review and all(row.confidence is not None for row in review)
    lookalikes = [row for row in review if data.pattern[row.ledger_id] == "lookalike"]
    assert lookalikes and all(row.klass == AMBIGUOUS and len(row.candidates.split(", ")) > 1 for row in lookalikes)
    assert all(row.rule and row.confidence is not None for row in result.ledger if row.klass not in NOT_ACTED_ON)
    written = {p.ledger_ref.split("/")[0] for p in result.proposals if p.kind == CREATE_PAYMENT and p.ledger_ref}
    assert not written & {row.ledger_id for row in review}
    # the same data with the highest threshold the strong keys allow: the rules below it propose, a person decides
    cautious = reconcile(data.invoices, data.payments, data.bills,
                         rules=data.rules(replace(MatchRules(), auto_threshold=Decimal("0.97"))))
    placed_by_rules = {row.ledger_id for row in cautious.ledger if row.rule in ("normalised_number", "batch_subset")
                       and row.kind == "payment"}
    assert placed_by_rules and all(row.klass in (NEEDS_REVIEW, AMBIGUOUS) for row in cautious.ledger
                                   if row.ledger_id in placed_by_rules)
    written = {p.ledger_ref.split("/")[0] for p in cautious.proposals if p.kind == CREATE_PAYMENT and p.ledger_ref}
    assert not written & placed_by_rules


def test_a_batch_payment_becomes_one_payment_per_invoice_in_precoro():
    data = generate(seed=22, invoices=2000)
    result = reconcile(data.invoices, data.payments, data.bills, rules=data.rules())
    batch = next(row for row in result.ledger if data.pattern.get(row.ledger_id) == "batch" and row.parts)
    created = [p for p in result.proposals if p.kind == CREATE_PAYMENT and p.ledger_ref
               and p.ledger_ref.startswith(batch.ledger_id + "/")]
    assert sorted(p.target_key for p in created) == sorted(idn for idn, _ in batch.parts)
    assert sum(Decimal(p.payload["amount"]) for p in created) == batch.amount
