"""A year of a large company's payments reconciles in bounded memory (issue #28): what that rests on, at a small
scale. The million-row figures are bench/ledger_memory.py's (docs/performance.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from precoro_assets.ledger.source import LedgerPayment
from precoro_assets.reconcile import tables
from precoro_assets.reconcile.ap_matching import MatchRules
from precoro_assets.reconcile.classify import reconcile, reconcile_stored
from precoro_assets.reconcile.records import AMBIGUOUS, PAID_IN_LEDGER_ONLY, UNMATCHED, Invoice, LedgerResults
from precoro_assets.warehouse.tables import in_arrow_chunks, replace_described_arrow

D = Decimal
DAY = date(2026, 11, 2)


def payment(n: int, **keys) -> LedgerPayment:
    return LedgerPayment(f"PAY-{n:05d}", D("10.00"), "EUR", DAY, source_file="payments.csv", source_line=n + 1,
                         **keys)


def ledger(count: int) -> list[LedgerPayment]:
    """`count` payments no key places, one that pays invoice 1, two that fit both invoices 2 and 3."""
    payments = [payment(n, bill_id=f"UNKNOWN-{n}") for n in range(count)]
    payments[10] = payment(10, bill_id="BILL-1")
    payments[20] = payment(20, supplier="ACME Corp", invoice_number="INV-2")
    payments[30] = payment(30, supplier="ACME Corp", invoice_number="INV-2")
    return payments


INVOICES = [Invoice("1", 1, "ACME Corp", "INV-1", D("10.00"), D("0.00"), "EUR", 2, external_id="BILL-1"),
            Invoice("2", 2, "ACME Corp", "INV-2", D("10.00"), D("0.00"), "EUR", 2),
            Invoice("3", 3, "ACME Corp", "INV-2", D("10.00"), D("0.00"), "EUR", 2)]


@pytest.mark.parametrize("rules", [None, MatchRules()], ids=["strong keys", "AP rules"])
def test_only_the_payments_a_key_places_are_kept(rules):
    """The payments are read afresh on every pass and only those a key (or rule) placed are held; the rows of the
    others are made again as they are read, and are the rows reconcile() gives for the whole list."""
    payments = ledger(2000)
    passes = []

    def read():
        passes.append(1)
        yield from payments

    result = reconcile_stored(INVOICES, read, [], rules=rules)
    assert isinstance(result.ledger, LedgerResults)
    assert sorted(result.ledger.kept) == [10, 20, 30]  # of 2,000: the placed one and the two ambiguous ones
    assert len(passes) == (1 if rules is None else 2) and len(result.ledger) == 2000
    rows = list(result.ledger)
    assert len(passes) == (2 if rules is None else 3)
    assert [r.ledger_id for r in rows] == [p.payment_id for p in payments]
    assert {r.ledger_id: r.klass for r in rows if r.klass != UNMATCHED} == {
        "PAY-00010": PAID_IN_LEDGER_ONLY, "PAY-00020": AMBIGUOUS, "PAY-00030": AMBIGUOUS}
    assert rows[10].invoice_idn == "1"
    expected = reconcile(INVOICES, payments, [], rules=rules)
    assert [(r.ledger_id, r.klass, r.reason, r.matched_by, r.rule) for r in rows] == [
        (r.ledger_id, r.klass, r.reason, r.matched_by, r.rule) for r in expected.ledger]
    assert result.totals() == expected.totals()  # tallied while the rows were read: no pass of its own
    assert len(passes) == (2 if rules is None else 3)


def test_payments_are_read_as_stored_until_out_of_order():
    """The drop folder's payments are stored in file and line order and read without an ORDER BY (which holds
    every row); a ledger stored in another order is noticed, and then read sorted."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA precoro")
    name, description, columns = tables.LEDGER_PAYMENTS
    stamp = datetime(2026, 11, 2, tzinfo=UTC)
    rows = [{"payment_id": p.payment_id, "amount": p.amount, "currency": p.currency, "paid_on": p.paid_on,
             "bill_id": p.bill_id, "source_file": p.source_file, "source_line": p.source_line, "loaded_at": stamp}
            for p in ledger(50)]
    replace_described_arrow(con, name, description, list(columns), in_arrow_chunks(list(columns), rows, 20))
    assert [p.payment_id for p in tables.ledger_payments(con)] == [r["payment_id"] for r in rows]
    replace_described_arrow(con, name, description, list(columns), in_arrow_chunks(list(columns), rows[::-1], 20))
    with pytest.raises(tables.OutOfOrder):
        list(tables.ledger_payments(con))
    assert [p.payment_id for p in tables.ledger_payments(con, ordered=True)] == [r["payment_id"] for r in rows]


def test_parts_written_in_one_transaction_are_let_go():
    """Each Arrow part of a table written whole in one transaction is released once inserted: a million rows are
    never held at once (a table given to DuckDB with con.register() stays held until the transaction ends)."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA precoro")
    name, description, columns = tables.LEDGER_PAYMENTS
    stamp = datetime(2026, 11, 2, tzinfo=UTC)
    held = []

    def parts():
        for part in range(10):
            held.append(pa.total_allocated_bytes())
            yield pa.table({"payment_id": [f"PAY-{part}-{n:06d}" + "x" * 100 for n in range(20_000)],
                            "amount": pa.array([D("1.00")] * 20_000, pa.decimal128(18, 2)),
                            "currency": ["EUR"] * 20_000, "loaded_at": pa.array([stamp] * 20_000,
                                                                                pa.timestamp("us", tz="UTC"))})

    con.execute("BEGIN TRANSACTION")
    assert replace_described_arrow(con, name, description, list(columns), parts()) == 200_000
    part_size = 20_000 * 130
    assert max(held) - held[0] < 3 * part_size, [b // 1_000_000 for b in held]  # not ten parts' worth
    con.execute("COMMIT")
    assert con.execute(f"SELECT count(*), count(source_file) FROM precoro.{name}").fetchone() == (200_000, 0)


@pytest.mark.e2e
def test_a_ledger_stored_out_of_order_reconciles_the_same(env):
    """End to end: a ledger another source stored out of file and line order is read sorted (the first pass notices
    it), and every ledger row comes out as from the drop folder's, in the same order."""
    env.reconcile()
    columns = ("ledger_kind, ledger_id, supplier, invoice_number, bill_id, amount, currency, ledger_date, class, "
               "reason, matched_by, invoice_idn, precoro_payment_idn, rule, confidence, candidates, parts, "
               "source_file, source_line")
    before = env.query(f"SELECT {columns} FROM precoro.reconciliation_ledger")  # noqa: S608 - our own columns
    invoices = env.query("SELECT * EXCLUDE (reconciled_at, batch_id) FROM precoro.reconciliation_invoices")

    def reverse(con):
        con.execute("CREATE TEMP TABLE stored AS SELECT * FROM precoro.ledger_payments")
        con.execute("DELETE FROM precoro.ledger_payments")
        con.execute("INSERT INTO precoro.ledger_payments SELECT * FROM stored ORDER BY source_file DESC, "
                    "source_line DESC")

    env.warehouse.write(reverse)
    with pytest.raises(tables.OutOfOrder):
        env.warehouse.read(lambda con: list(tables.ledger_payments(con)))
    env.materialize(["precoro/reconciliation_invoices", "precoro/reconciliation_ledger", "precoro/writeback_outbox"])
    assert env.query(f"SELECT {columns} FROM precoro.reconciliation_ledger") == before  # noqa: S608
    assert env.query("SELECT * EXCLUDE (reconciled_at, batch_id) FROM precoro.reconciliation_invoices") == invoices
    assert len(before) > 20
