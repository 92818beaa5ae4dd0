"""Where the real API's shape is not known the simulator serves either (POST /_sim/shapes): a sync in the other
shape equals Precoro too, and fills the very warehouse the default shape fills. Unit prices and quantities keep
every decimal Precoro sends."""

from __future__ import annotations

import shutil
from decimal import Decimal

import httpx
import pytest

from precoro_assets.catalogue import BY_NAME
from precoro_assets.defs.ingest import ANALYST_VIEWS
from precoro_assets.warehouse.rows import table_columns
from precoro_assets.warehouse.tables import ident
from tests.ingest.test_real_shapes import typed_tables
from tests.ingest.truth import differences

pytestmark = pytest.mark.e2e  # a simulator on a socket or child processes: in make test, not in make test-fast


# Each switch, and the entities whose records it changes (the ones synced to test it: a whole sync twice per switch
# would be slow for nothing; test_sync.py syncs everything in the default shapes)
SWITCHES = {
    "credit_notes_in_invoice_list": ["invoices"],
    # documents with references to other documents' idn (purchase order, base invoice, payments; paid invoice)
    "idn_as_number": ["invoices", "payments"],
    "item_category": ["items", "item_custom_fields"],
    "item_values_as_dataItemCustomFields": ["items", "item_custom_fields"],
}


def sync(env, names: list[str]) -> dict[str, list[str]]:
    """Sync these entities over the whole range; what analysts read of them (see `typed`)."""
    start, end = env.days()
    entities = [BY_NAME[name] for name in names]
    for partitioned in (False, True):
        keys = [f"precoro/{e.name}" for e in entities if e.partitioned == partitioned]
        if keys:
            assert env.materialize(keys, partition_range=(str(start), str(end)) if partitioned else None).success
    assert env.materialize("precoro/analyst_views").success
    for entity in entities:
        assert differences(env, entity) == [], entity.name  # the export serves records in the shape the API does
    return typed(env, entities)


def typed(env, entities) -> dict[str, list[str]]:
    """What analysts read (see typed_tables), but for the columns of Precoro's `category`, which only one item
    shape fills (items_overview's category is the same in both), and the items' categories."""
    tables = typed_tables(env, entities)
    if "items" in tables:
        columns = [c for c in table_columns(BY_NAME["items"], None) if c.name not in (
            "raw", "synced_at", "category_id", "category_name")]
        tables["items"] = sorted(repr(row) for row in env.query(
            f"SELECT {', '.join(ident(c.name) for c in columns)} FROM precoro.items"))
        tables["items_overview"] = sorted(repr(row) for row in env.query(
            "SELECT id, category FROM precoro.items_overview"))
        assert all(category for _, category in env.query("SELECT id, category FROM precoro.items_overview"))
    return tables


@pytest.mark.parametrize("switch", SWITCHES)
def test_a_sync_in_the_other_shape_equals_precoro_and_fills_the_same_warehouse(make_sim_env, switch):
    env = make_sim_env(documents=60, days=5)
    default = env.control("GET", "shapes")[switch]
    in_default_shape = sync(env, SWITCHES[switch])
    shutil.rmtree(env.config.warehouse)
    shutil.rmtree(env.config.state_dir)

    assert env.control("POST", "shapes", json={switch: not default})[switch] is (not default)
    in_other_shape = sync(env, SWITCHES[switch])

    assert in_other_shape.keys() == in_default_shape.keys()
    differing = [f"{table}: {a} != {b}" for table, rows in in_default_shape.items()
                 for a, b in zip(rows, in_other_shape[table], strict=True) if a != b]
    assert not differing, "\n".join(differing[:3])
    if switch == "item_category":  # Precoro's category is served, and read
        truth = {item["id"]: item["category"] for item in env.export("items")}
        read = env.query("SELECT id, category_id, category_name FROM precoro.items")
        assert read and all((truth[i]["id"], truth[i]["name"]) == (cid, name) for i, cid, name in read)
        assert sorted(env.query("SELECT id, category FROM precoro.items_overview")) == sorted(
            (i, truth[i]["name"]) for i, _, _ in read)


def test_unit_prices_and_quantities_keep_every_decimal(env):
    headers = {"X-AUTH-TOKEN": env.sim.token, "email": env.sim.email}
    item = env.export("items")[0]
    httpx.put(f"{env.sim.url}/items/{item['id']}", data={"price": "12.345"}, headers=headers,
              timeout=10).raise_for_status()
    created = httpx.post(f"{env.sim.url}/purchaserequisitions", headers=headers, timeout=10, data={
        "items[0][name]": "Brass fittings", "items[0][quantity]": "1.125", "items[0][price]": "12.345"})
    created.raise_for_status()
    today = env.days()[1].isoformat()

    results = [env.materialize("precoro/items"), env.materialize("precoro/purchase_requisitions", partition=today)]

    assert all(r.success for r in results)
    assert env.query("SELECT price FROM precoro.items WHERE id = ?", [item["id"]]) == [(Decimal("12.345"),)]
    assert env.query("SELECT quantity, price, net_sum FROM precoro.purchase_requisition_items "
                     "WHERE purchase_requisition_idn = ?", [str(created.json()["idn"])]) == [
        (Decimal("1.125"), Decimal("12.345"), Decimal("13.89"))]  # the sum: 13.888125, at Precoro's 2 decimals
    for result in results:
        [materialization] = [e for e in result.get_asset_materialization_events() if e.asset_key != ANALYST_VIEWS]
        assert materialization.materialization.metadata["field problems"].value == 0


def test_payment_term_codes_land_as_numbers_and_suppliers_terms_with_every_field(env):
    results = [env.materialize("precoro/payment_terms"), env.materialize("precoro/suppliers")]

    assert all(r.success for r in results)
    types = dict(env.query("SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'precoro' "
                           "AND table_name = 'payment_terms'"))
    assert types["payment_type"] == types["terms_due_date_after_invoicing"] == "INTEGER"
    terms = {t["id"]: t for t in env.export("paymentterms")}
    assert sorted(env.query("SELECT id, payment_type, terms_due_date_after_invoicing FROM precoro.payment_terms")) == \
        sorted((i, t["paymentType"], t["termsDueDateAfterInvoicing"]) for i, t in terms.items())
    linked = [(s["id"], t) for s in env.export("suppliers") for t in s["paymentTerms"]["data"]]
    assert linked and sorted(env.query(
        "SELECT supplier_id, payment_term_id, name, credit_period_days, prepayment_percent, postpayment_percent, "
        "terms_due_date_after_invoicing, payment_type, enable, external_id FROM precoro.supplier_payment_terms")) == \
        sorted((s, t["id"], t["name"], t["creditPeriodDays"], Decimal(str(t["prepaymentPercent"])),
                Decimal(str(t["postpaymentPercent"])), t["termsDueDateAfterInvoicing"], t["paymentType"], t["enable"],
                t["externalId"]) for s, t in linked)
