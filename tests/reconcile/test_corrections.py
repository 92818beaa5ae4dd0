"""Money that must come out right against a Precoro that cancels payments, writes dates at other offsets and
holds credit notes: reconciliation and write-back end to end, against the simulator on localhost."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from precoro_assets.reconcile.records import MATCHED, PAID_IN_LEDGER_ONLY
from precoro_assets.settings import ledger_dir
from precoro_assets.writeback.proposals import CREATE_PAYMENT, EXPORT, SET_EXTERNAL_ID
from tests.reconcile.reconcile_support import SEND, money

pytestmark = pytest.mark.e2e  # a simulator on a socket or child processes: in make test, not in make test-fast


TODAY = datetime.now(UTC).date().isoformat()


def precoro(env, method: str, path: str, **form) -> dict:
    """A request to the simulator's Precoro API, as any client would send it."""
    response = httpx.request(method, f"{env.sim.url}{path}", data=form or None, timeout=30,
                             headers={"X-AUTH-TOKEN": env.sim.token, "email": env.sim.email})
    response.raise_for_status()
    return response.json()


def pay(env, invoice: dict, amount: Decimal) -> dict:
    return precoro(env, "POST", "/payments", **{"invoice[id]": str(invoice["id"]), "sumPaid": str(amount),
                                                "logicType": "0", "payDate": f"{TODAY}T00:00:00+00:00"})


def open_invoices(env, count: int) -> list[dict]:
    """Approved, unpaid invoices (not credit notes), unknown to the accounting side."""
    found = [i for i in env.export("invoices") if i["status"] == 2 and money(i["sumPaid"]) == 0
             and i["logicType"] == 0 and not i["externalId"] and not (i.get("parentData") or {}).get("idn")]
    assert len(found) >= count
    return found[:count]


def ledger_with_payments(*rows: tuple[str, dict, Decimal]) -> None:
    """The accounting side knows only these payments (by supplier and invoice number)."""
    folder = ledger_dir()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with open(folder / "payments.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["payment_id", "supplier", "invoice_number", "amount", "currency", "paid_on"])
        for payment_id, invoice, amount in rows:
            writer.writerow([payment_id, invoice["supplier"]["name"], invoice["invoiceNumber"], f"{amount:.2f}",
                             invoice["currency"], TODAY])


def reconciled(env, idn: object) -> tuple[str, str]:
    [row] = env.query("SELECT class, reason FROM precoro.reconciliation_invoices WHERE invoice_idn = ?", [str(idn)])
    return row


def test_a_cancelled_payment_takes_no_part_in_pairing_and_the_missing_payment_is_proposed(env):
    relisted, only_cancelled = open_invoices(env, 2)
    half = money(relisted["sum"]) / 2
    half = half.quantize(Decimal("0.01"))
    # relisted: paid, cancelled, paid again (the live payment); only_cancelled: paid, then cancelled
    cancelled = pay(env, relisted, half)
    env.control("POST", f"payments/{cancelled['idn']}/cancel")
    live = pay(env, relisted, half)
    gone = pay(env, only_cancelled, money(only_cancelled["sum"]))
    env.control("POST", f"payments/{gone['idn']}/cancel")
    ledger_with_payments(("L-RELISTED", relisted, half), ("L-MISSING", only_cancelled, money(only_cancelled["sum"])))
    env.sync()

    env.reconcile()

    klass, reason = reconciled(env, relisted["idn"])
    assert klass == MATCHED and f"Precoro payment {live['idn']} " in reason
    assert f"cancelled in Precoro, not counted: Precoro payment {cancelled['idn']} " in reason
    klass, reason = reconciled(env, only_cancelled["idn"])
    assert klass == PAID_IN_LEDGER_ONLY and f"Precoro payment {gone['idn']} " in reason
    rows = env.outbox.rows()
    links = {(r.resource, r.target_key) for r in rows if r.kind == SET_EXTERNAL_ID}
    assert ("payments", str(live["idn"])) in links and ("payments", str(cancelled["idn"])) not in links
    [create] = [r for r in rows if r.kind == CREATE_PAYMENT]
    assert create.target_key == str(only_cancelled["idn"]) and money(create.payload["amount"]) == money(
        only_cancelled["sum"])

    env.writeback(SEND)
    invoice = next(i for i in env.export("invoices") if i["idn"] == only_cancelled["idn"])
    assert money(invoice["sumPaid"]) == money(invoice["sum"]) and invoice["status"] == 5
    payments = {str(p["idn"]): p for p in env.export("payments")}
    assert payments[str(live["idn"])]["externalId"] == "L-RELISTED"
    assert payments[str(cancelled["idn"])]["externalId"] is None


def test_a_lost_payment_answer_is_recognised_when_precoro_writes_pay_dates_at_a_negative_offset(env):
    [invoice] = open_invoices(env, 1)
    part = (money(invoice["sum"]) / 3).quantize(Decimal("0.01"))
    ledger_with_payments(("L-PART", invoice, part))
    env.reconcile()
    [create] = [r for r in env.outbox.rows() if r.kind == CREATE_PAYMENT]
    assert create.target_key == str(invoice["idn"])
    # payDate sent as <today>T00:00:00+00:00 comes back as <yesterday>T19:00:00-05:00; the POST's answer is lost
    env.control("POST", "faults", json={"kind": "date_offsets", "offsets": ["-05:00"], "fields": ["payDate"],
                                        "path": "/invoices/{idn}", "count": None})
    env.control("POST", "faults", json={"kind": "lost_response", "method": "POST", "path": "/payments",
                                        "count": 1})
    before = {p["id"] for p in env.export("payments")}

    env.writeback(SEND)

    [row] = [r for r in env.outbox.rows() if r.kind == CREATE_PAYMENT]
    assert row.status == "sent" and "adopted" in row.outcome
    new = Counter(str(p["invoice"]["idn"]) for p in env.export("payments") if p["id"] not in before)
    assert new == Counter({str(invoice["idn"]): 1})  # paid once


def test_a_credit_note_is_exported_as_a_credit_note(env):
    notes = [i for i in env.export("invoices") if i["logicType"] in (1, 5) and not i["externalId"]]
    note = next((i for i in notes if i["status"] == 2), None)
    if note is None:  # approve one: the accounting side may have it now
        note = next(i for i in notes if i["status"] in (0, 1, 6))
        if note["status"] == 6:
            precoro(env, "POST", f"/invoices/{note['idn']}/confirm")
        else:
            if note["status"] == 0:  # a draft: sent for approval in Precoro's UI first
                httpx.post(f"{env.sim.url}/_sim/records/invoices/{note['idn']}", json={"status": 1},
                           timeout=30).raise_for_status()
            precoro(env, "POST", f"/invoices/{note['idn']}/approve")
    ledger_with_payments()
    env.sync()
    env.reconcile()

    env.writeback(SEND)

    with open(ledger_dir() / "export" / "invoices.csv", newline="", encoding="utf-8") as handle:
        exported = {row["precoro_idn"]: row for row in csv.DictReader(handle)}
    row = exported[str(note["idn"])]
    assert row["type"] == "credit_note" and money(row["amount"]) == -abs(money(note["sum"]))
    kinds = {str(i["idn"]): i["logicType"] for i in env.export("invoices")}
    for idn, exported_row in exported.items():  # every other document too: a credit note only if it is one
        assert exported_row["type"] == ("credit_note" if kinds[idn] in (1, 5) else "bill"), idn


def open_split_base(env) -> tuple[dict, list[dict]]:
    """An approved, unpaid, unlinked base invoice of split-cost children, with its children. A company whose
    bases are all paid gets one back to open: its payments are cancelled, as Precoro lets a user do."""
    invoices = env.export("invoices")
    children: dict[str, list[dict]] = {}
    for invoice in invoices:
        parent = (invoice.get("parentData") or {}).get("idn")
        if parent is not None:
            children.setdefault(str(parent), []).append(invoice)
    bases = sorted((i for i in invoices if str(i["idn"]) in children and not i["externalId"]
                    and i["logicType"] == 0), key=lambda i: (i["status"] != 2 or money(i["sumPaid"]) != 0, i["id"]))
    base = next(i for i in bases if i["status"] in (2, 4, 5))
    for payment in base["payments"]["data"]:
        if payment["status"] != 8:
            env.control("POST", f"payments/{payment['idn']}/cancel")
    base = next(i for i in env.export("invoices") if i["idn"] == base["idn"])
    assert base["status"] == 2 and money(base["sumPaid"]) == 0
    return base, children[str(base["idn"])]


def test_a_split_cost_invoice_is_paid_and_exported_as_its_base_never_its_children(env):
    base, base_children = open_split_base(env)
    base_idn = str(base["idn"])
    children = {str(i["idn"]) for i in env.export("invoices") if (i.get("parentData") or {}).get("idn")}
    assert sum(money(c["sum"]) for c in base_children) == money(base["sum"])  # allocations add up to the base
    env.sync()
    # nothing in the ledger knows it: the base is offered for export, its children are not
    ledger_with_payments()
    env.reconcile()
    assert (EXPORT, base_idn) in {(r.kind, r.target_key) for r in env.outbox.rows()}
    assert {r.target_key for r in env.outbox.rows() if r.resource == "invoices"} & children == set()

    # the ledger pays the supplier's bill once, by the number the base and its children share
    ledger_with_payments(("L-SPLIT", base, money(base["sum"])))
    env.reconcile()

    klass, reason = reconciled(env, base_idn)
    assert klass == PAID_IN_LEDGER_ONLY, reason  # found, not ambiguous between the base and its children
    assert env.query("SELECT count(*) FROM precoro.reconciliation_invoices WHERE invoice_idn IN "
                     f"({', '.join('?' * len(children))})", sorted(children)) == [(0,)]
    assert {r.target_key for r in env.outbox.rows() if r.resource == "invoices"} & children == set()
    [create] = [r for r in env.outbox.rows() if r.kind == CREATE_PAYMENT]
    assert create.target_key == base_idn and money(create.payload["amount"]) == money(base["sum"])

    env.writeback(SEND)
    after = {str(i["idn"]): i for i in env.export("invoices")}
    assert after[base_idn]["status"] == 5 and all(money(after[c]["sumPaid"]) == 0 for c in children)
    # the analyst views count the base once and list the allocations apart
    env.materialize(["precoro/analyst_views"])
    assert env.query("SELECT count(*) FROM precoro.invoices_overview WHERE idn IN "
                     f"({', '.join('?' * len(children))})", sorted(children)) == [(0,)]
    assert env.query("SELECT allocations FROM precoro.invoices_overview WHERE idn = ?", [base_idn]) == [(2,)]
    assert env.query("SELECT sum(amount) FROM precoro.invoice_allocations WHERE base_idn = ?",
                     [base_idn]) == [(money(base["sum"]),)]


def test_documents_waiting_for_a_disabled_connector_are_not_offered_for_export(env):
    ledger_with_payments()
    env.reconcile()
    offered = [r for r in env.outbox.rows() if r.kind == EXPORT]
    invoice = next(r for r in offered if r.resource == "invoices")
    order = next(r for r in offered if r.resource == "purchaseorders")
    for row in (invoice, order):
        env.control("POST", f"records/{row.resource}/{row.target_key}", json={"integrationStatus": 8})
    env.sync()

    env.reconcile()

    # what was offered before and is no longer proposed is skipped as superseded, never sent
    offered = {(r.resource, r.target_key) for r in env.outbox.rows(["pending"]) if r.kind == EXPORT}
    assert (invoice.resource, invoice.target_key) not in offered and (order.resource, order.target_key) not in offered
    assert offered  # the others still are
    _, reason = reconciled(env, invoice.target_key)
    assert "integrationStatus 8 (waiting for a disabled connector): not offered for export" in reason
