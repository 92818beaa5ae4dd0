"""What the asset checks say about a sync, against the simulator's ground truth, in every shape the contract allows:
document taxes stored whatever their shape, nested fields read under their near names, nothing left only in raw
without a failing check, totals compared like with like, and schema drift reported as a change, once."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import dagster as dg
import pytest

from precoro_assets.catalogue import BY_NAME
from tests.ingest.truth import differences, exact

DOCUMENTS = 100  # enough for taxes, attachments, receipts and approvals on most days; small enough to be quick


def checks(result, name: str) -> dict[str, dict]:
    """Per asset, one check's outcome and metadata."""
    return {e.asset_key.to_user_string(): {"passed": e.passed, **{k: v.value for k, v in e.metadata.items()}}
            for e in result.get_asset_check_evaluations() if e.check_name == name}


def sync_days(env, keys: list[str], start=None, end=None):
    first, last = env.days()
    result = env.materialize(keys, partition_range=(str(start or first), str(end or last)))
    assert result.success
    return result


def moment(value) -> datetime | None:
    if value is None or value != value or value == "":  # NULL may come back as NaN
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


# ---- item 10: document taxes -----------------------------------------------------------------------------------

@pytest.mark.e2e
@pytest.mark.parametrize("flat", [False, True], ids=["tax nested", "tax flat"])
def test_document_taxes_are_stored_whether_each_tax_is_nested_or_flat(make_sim_env, flat):
    env = make_sim_env(documents=DOCUMENTS)
    env.control("POST", "shapes", json={"flat_document_taxes": flat})

    result = sync_days(env, ["precoro/invoices", "precoro/purchase_orders"])

    for entity, table, parent in (("invoices", "invoice_taxes", "invoice_idn"),
                                  ("purchaseorders", "purchase_order_taxes", "purchase_order_idn")):
        taxes = [(str(d["idn"]), t) for d in map(exact, env.export(entity)) for t in d["taxes"]["data"]]
        assert taxes and {(idn, tax_id): Decimal(total) for idn, tax_id, total in env.query(
            f"SELECT {parent}, tax_id, CAST(sum AS VARCHAR) FROM precoro.{table}")} == {
            (idn, t["tax"]["id"]): t["sum"] for idn, t in taxes}, table
        assert {(idn, tax_id): (name, Decimal(percent)) for idn, tax_id, name, percent in env.query(
            f"SELECT {parent}, tax_id, tax_name, CAST(percent AS VARCHAR) FROM precoro.{table}")} == {
            (idn, t["tax"]["id"]): (t["tax"]["name"], t["tax"]["value"]) for idn, t in taxes}, table
    assert all(check["passed"] for check in checks(result, "nothing_only_in_raw").values())


@pytest.mark.e2e
def test_a_document_collection_that_reaches_raw_but_not_its_table_fails_a_check(make_sim_env):
    env = make_sim_env(documents=DOCUMENTS)
    # every tax of every invoice under a name nobody reads: the rows can't be stored, raw keeps them
    env.control("POST", "faults", json={"kind": "renamed_fields", "path": "/invoices/{idn}", "count": None,
                                        "rename": {"taxes.*.tax": "taxCode"}})

    result = sync_days(env, ["precoro/invoices"])

    [(carrying,)] = env.query("SELECT count(*) FROM precoro.invoices WHERE json_array_length(raw, '$.taxes.data') > 0")
    assert carrying and env.query("SELECT count(*) FROM precoro.invoice_taxes") == [(0,)]
    check = checks(result, "nothing_only_in_raw")["precoro/invoices"]
    assert not check["passed"]
    assert f"precoro.invoice_taxes has no row for {carrying} of the {carrying} records" in check["only in raw"]


# ---- item 11: near names, receipt lines' custom field values --------------------------------------------------------

@pytest.mark.e2e
@pytest.mark.parametrize("near", [False, True], ids=["contract names", "near names"])
def test_approval_steps_and_attachments_are_read_under_their_near_names(make_sim_env, near):
    env = make_sim_env(documents=DOCUMENTS)
    env.control("POST", "shapes", json={"near_field_names": near})

    result = sync_days(env, ["precoro/invoices"])

    invoices = [exact(i) for i in env.export("invoices")]
    steps = {(str(i["idn"]), s["id"]): (s["status"], moment(s["approvalDate"]))
             for i in invoices for s in i["approvalSteps"]["data"]}
    stored_steps = {(idn, step): (status, moment(when)) for idn, step, status, when in env.query(
        "SELECT invoice_idn, step_id, step_status, strftime(approval_date, '%Y-%m-%dT%H:%M:%S+00:00') "
        "FROM precoro.invoice_approval_steps")}
    assert any(when for _, when in steps.values()) and stored_steps == steps
    files = {(str(i["idn"]), a["id"]): a["fileName"] for i in invoices for a in i["attachments"]["data"]}
    assert files and dict(((idn, a), name) for idn, a, name in env.query(
        "SELECT invoice_idn, attachment_id, file_name FROM precoro.invoice_attachments")) == files
    assert all(check["passed"] for check in checks(result, "nothing_only_in_raw").values())


@pytest.mark.e2e
def test_a_column_left_empty_beside_a_near_name_in_raw_fails_a_check(make_sim_env):
    env = make_sim_env(documents=DOCUMENTS)
    env.control("POST", "faults", json={"kind": "renamed_fields", "path": "/invoices/{idn}", "count": None,
                                        "rename": {"approvalSteps.*.approvalDate": "approvalDt"}})

    result = sync_days(env, ["precoro/invoices"])

    [(rows, dated)] = env.query("SELECT count(*), count(approval_date) FROM precoro.invoice_approval_steps")
    assert rows and not dated
    check = checks(result, "nothing_only_in_raw")["precoro/invoices"]
    assert not check["passed"]
    assert (f"precoro.invoice_approval_steps.approval_date is NULL in all {rows} rows, while raw carries approvalDt"
            in check["only in raw"])


@pytest.mark.e2e
def test_receipt_lines_custom_field_values_are_stored(make_sim_env):
    env = make_sim_env(documents=DOCUMENTS)
    sync_days(env, ["precoro/receipts"])

    receipts = [exact(r) for r in env.export("receipts")]
    truth = sorted((str(r["idn"]), line["id"], v["itemCustomField"]["id"], str(v["value"]))
                   for r in receipts for line in r["items"]["data"] for v in line["dataItemCustomFields"]["data"])
    assert truth and sorted(env.query("SELECT receipt_idn, line_id, field_id, value "
                                      "FROM precoro.receipt_line_custom_field_values")) == truth
    assert differences(env, BY_NAME["receipts"]) == []


# ---- item 12: totals like with like ------------------------------------------------------------------------------

@pytest.mark.e2e
@pytest.mark.parametrize("net_lines", [False, True], ids=["line sum with tax", "line sum net of tax"])
def test_a_taxed_correct_document_passes_the_totals_check_and_a_wrong_one_fails(make_sim_env, net_lines):
    env = make_sim_env(documents=DOCUMENTS)
    env.control("POST", "shapes", json={"line_sums_net_of_tax": net_lines})
    keys = ["precoro/invoices", "precoro/purchase_orders", "precoro/purchase_requisitions", "precoro/receipts"]
    start, end = env.days()
    middle = start + (end - start) / 2

    result = sync_days(env, keys, start, middle)

    assert any(t["sum"] for i in env.export("invoices") for t in i["taxes"]["data"])  # taxed documents
    totals = checks(result, "total_equals_lines")
    assert set(totals) == set(keys) and all(check["passed"] for check in totals.values()), totals

    # one invoice detail says 1.00 for both totals: its lines disagree, before and after tax
    env.control("POST", "faults", json={"kind": "unknown_fields", "path": "/invoices/{idn}", "count": 1,
                                        "fields": {"sum": 1, "netSum": 1}})
    result = sync_days(env, ["precoro/invoices"], middle + timedelta(days=1), end)

    check = checks(result, "total_equals_lines")["precoro/invoices"]
    assert not check["passed"] and check["documents off"] == 1
    assert "'net_sum', Decimal('1.00')" in check["examples (key, which total, document, lines)"]


# ---- item 13: schema drift as a change -----------------------------------------------------------------------

@pytest.mark.e2e
def test_schema_drift_warns_on_a_change_once_and_shows_the_steady_state_otherwise(make_sim_env):
    env = make_sim_env(documents=DOCUMENTS)
    start, end = env.days()
    middle = start + (end - start) / 2
    env.control("POST", "faults", json={"kind": "renamed_fields", "path": "/invoices/{idn}", "count": None,
                                        "rename": {"creditPeriodDays": "paymentPeriodDays"}})

    first = checks(sync_days(env, ["precoro/invoices"], start, middle), "schema_drift")["precoro/invoices"]
    again = checks(sync_days(env, ["precoro/invoices"], start, middle), "schema_drift")["precoro/invoices"]

    for check in (first, again):  # nothing seen before, then nothing changed: steady state, no warning
        assert check["passed"] and check["changes"] == 0
        assert "paymentPeriodDays (number)" in check["fields seen (steady state)"]
        assert "creditPeriodDays absent" in check["absent (catalogue reads them, no record has them)"]
    assert env.query("SELECT json_types, always FROM precoro.schema_fields WHERE table_name = 'invoices' "
                     "AND field = 'paymentPeriodDays'") == [("number", True)]

    env.control("DELETE", "faults")  # Precoro renames the field back: documents of later days carry the old name
    result = sync_days(env, ["precoro/invoices"], middle + timedelta(days=1), end)
    changed = checks(result, "schema_drift")["precoro/invoices"]
    steady = checks(sync_days(env, ["precoro/invoices"], middle + timedelta(days=1), end),
                    "schema_drift")["precoro/invoices"]

    assert not changed["passed"] and changed["changes"] == 2
    assert {e.severity for e in result.get_asset_check_evaluations() if e.check_name == "schema_drift"} == {
        dg.AssetCheckSeverity.WARN}
    assert changed["changed since last seen"].splitlines() == [
        "invoices: creditPeriodDays appeared (number)",
        "invoices: paymentPeriodDays disappeared (it was in every record before, is in none now)"]
    assert steady["passed"] and steady["changes"] == 0
