"""Precoro's real field names and shapes (as its own connector reads them) land in typed columns, none silently NULL."""

from __future__ import annotations

import shutil

import httpx
import pyarrow.parquet as pq
import pytest

from precoro_assets import settings
from precoro_assets.catalogue import BY_NAME, ENTITIES
from precoro_assets.definitions import build_definitions
from precoro_assets.warehouse.rows import table_columns
from precoro_assets.warehouse.tables import ident, qualified
from tests.ingest.test_sync import DOCUMENT_KEYS, REFERENCE_KEYS, sync_everything
from tests.ingest.truth import differences

# Columns the simulated company leaves empty on purpose, with why (every other column must hold a value somewhere).
EMPTY_BY_DESIGN = {
    ("taxes", "tax_amount"): "all simulated taxes are percentages",
    ("taxes", "create_date"): "Precoro may send taxes without dates",
    ("taxes", "update_date"): "Precoro may send taxes without dates",
    ("invoices", "xero_id"): "the simulated company keeps its books in QuickBooks (qbo_id), not Xero",
    # filled in the simulator's other item shape (test_shapes.py); items_overview reads the custom field
    ("items", "category_id"): "Precoro is removing `category`: the item custom field \"Category\" holds it",
    ("items", "category_name"): "Precoro is removing `category`: the item custom field \"Category\" holds it",
}
# Links to the accounting system are empty until something links the record (the write-back tests fill them).
LINKS = ("external_id", "external_integration_log")


@pytest.mark.e2e
def test_every_typed_column_reads_a_field_the_records_carry(env):
    sync_everything(env)
    empty = []
    for entity in ENTITIES:
        for child in (None, *entity.children):
            table = entity.table(child)
            columns = table_columns(entity, child)
            # one query a table (each opens the warehouse: a query a column took minutes)
            [(rows, *filled)] = env.query(f"SELECT count(*), {', '.join(f'count({ident(c.name)})' for c in columns)} "
                                          f"FROM {qualified(table)}")
            if not rows:  # e.g. simulated receipts carry no attachments; the equality tests cover row counts
                continue
            for column, values in zip(columns, filled, strict=True):
                if not values and column.name not in LINKS and (table, column.name) not in EMPTY_BY_DESIGN:
                    empty.append(f"{table}.{column.name} ({column.source})")
    assert not empty, "\n".join(empty)


def warehouse_text(env) -> str:
    """Every file the warehouse and the local state are made of, as searchable text: Parquet files decoded
    (they are compressed, so their bytes would hide anything), the rest (catalog, staging, ledger) as bytes."""
    parts = []
    for root in (env.config.warehouse, env.config.state_dir):
        for path in (p for p in root.rglob("*") if p.is_file()):
            if path.suffix == ".parquet":
                parts.append(str(pq.read_table(path).to_pylist()))
            else:
                parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


@pytest.mark.e2e
def test_suppliers_bank_details_are_masked_in_columns_raw_and_files(env):
    supplier = env.export("suppliers")[0]
    iban = supplier["internationalBankAccountNumber"]
    assert iban and len(iban) > 8

    assert env.materialize("precoro/suppliers").success

    [(column, raw)] = env.query("SELECT iban, raw FROM precoro.suppliers WHERE id = ?", [supplier["id"]])
    assert column == "****" + iban[-4:] and iban not in raw and "****" + iban[-4:] in raw
    [(number,)] = env.query("SELECT account_number FROM precoro.suppliers WHERE id = ?", [supplier["id"]])
    assert number == "****" + supplier["accountNumber"][-4:]
    everything = warehouse_text(env)
    assert "****" + iban[-4:] in everything  # the scan reads the stored rows ...
    assert all(s["internationalBankAccountNumber"] not in everything for s in env.export("suppliers"))  # ... no IBAN
    # the holder and the bank's name are not secret: an analyst can still see who is paid where
    assert env.query("SELECT bank_name FROM precoro.suppliers WHERE id = ?", [supplier["id"]]) == [
        (supplier["bankName"],)]


@pytest.mark.e2e
def test_bank_details_are_kept_when_the_company_asks_for_it(env, monkeypatch):
    monkeypatch.setenv("PRECORO_KEEP_BANK_DETAILS", "1")
    env.config = settings.load()  # the code location reads it when it loads: load it again
    env.defs = build_definitions(env.config)
    supplier = env.export("suppliers")[0]

    assert env.materialize("precoro/suppliers").success

    assert env.query("SELECT iban FROM precoro.suppliers WHERE id = ?", [supplier["id"]]) == [
        (supplier["internationalBankAccountNumber"],)]
    assert supplier["internationalBankAccountNumber"] in warehouse_text(env)  # the file scan finds it


def drift_checks(result) -> dict[str, dict]:
    """Per asset, the schema_drift check's outcome and metadata."""
    return {e.asset_key.to_user_string(): {"passed": e.passed, **{k: v.value for k, v in e.metadata.items()}}
            for e in result.get_asset_check_evaluations() if e.check_name == "schema_drift"}


@pytest.mark.e2e
def test_the_drift_check_passes_on_every_asset_when_every_field_is_read(env):
    start, end = env.days()
    checks = drift_checks(env.materialize(REFERENCE_KEYS))
    checks.update(drift_checks(env.materialize(DOCUMENT_KEYS, partition_range=(str(start), str(end)))))
    assert set(checks) == {f"precoro/{e.name}" for e in ENTITIES}
    failing = [f"{key}: {text}" for key, check in checks.items() if not check["passed"]
               for name, text in check.items() if name.startswith(("absent", "not read")) and text != "none"]
    assert not failing, "\n".join(failing)


@pytest.mark.e2e
def test_a_field_precoro_renamed_before_the_first_sync_is_listed_with_counts_without_a_warning(env):
    start, end = env.days()
    env.control("POST", "faults", json={"kind": "renamed_fields", "path": "/invoices/{idn}", "count": None,
                                        "rename": {"creditPeriodDays": "paymentPeriodDays"}})

    result = env.materialize("precoro/invoices", partition_range=(str(start), str(end)))

    assert result.success  # the data still lands; nothing was seen before, so nothing changed: the steady state
    check = drift_checks(result)["precoro/invoices"]  # is listed (test_checks: a later change warns)
    [(stored,)] = env.query("SELECT count(*) FROM precoro.invoices")
    assert check["passed"] and check["fields absent"] == 1 and check["fields not read"] == 1
    assert check["absent (catalogue reads them, no record has them)"] == (
        f"creditPeriodDays absent in {stored} of {stored} invoices (column credit_period_days is empty)")
    assert check["not read (records have them, no column reads them)"] == (
        f"paymentPeriodDays in {stored} of {stored} invoices (not read into a column; kept in raw)")


@pytest.mark.e2e
@pytest.mark.parametrize("in_plain_list", [True, False], ids=["credit notes listed", "credit notes left out"])
def test_credit_notes_are_complete_whether_or_not_the_plain_invoice_list_includes_them(make_sim_env, in_plain_list):
    env = make_sim_env()
    env.control("POST", "shapes", json={"credit_notes_in_invoice_list": in_plain_list})
    start, end = env.days()
    _, mark = env.request_log()

    result = env.materialize("precoro/invoices", partition_range=(str(start), str(end)))

    assert result.success
    assert differences(env, BY_NAME["invoices"]) == []
    notes = {str(i["idn"]) for i in env.export("invoices") if i["logicType"] in (1, 5)}
    assert notes and {idn for (idn,) in env.query(
        "SELECT idn FROM precoro.invoices WHERE logic_type IN (1, 5)")} == notes
    [count_check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "count_matches_precoro"]
    assert count_check.passed
    log, _ = env.request_log(mark)
    lists = [r["url"] for r in log if r["method"] == "GET" and r["path"] == "/invoices"]
    assert any("logicType" in url for url in lists) and any("logicType" not in url for url in lists)
    details = [r["url"] for r in log if r["method"] == "GET" and r["path"] == "/invoices/{idn}"]
    assert len(details) == len(set(details)) == len(env.export("invoices"))  # a credit note listed twice: one GET


@pytest.mark.e2e
def test_expenses_land_with_their_payments_and_in_the_analyst_views(env):
    start, end = env.days()

    result = env.materialize("precoro/expenses", partition_range=(str(start), str(end)))

    assert result.success
    assert differences(env, BY_NAME["expenses"]) == []
    expenses = env.export("expenses")
    paid = [e for e in expenses if e["expensePayments"]["data"]]
    assert paid and env.query("SELECT count(*) FROM precoro.expense_payments") == [
        (sum(len(e["expensePayments"]["data"]) for e in expenses),)]
    assert env.materialize("precoro/analyst_views").success
    rows = dict(env.query("SELECT idn, outstanding FROM precoro.expenses_overview"))
    assert set(rows) == {str(e["idn"]) for e in expenses}
    assert all(rows[str(e["idn"])] == 0 for e in paid)  # paid in full


@pytest.mark.e2e
def test_suppliers_are_complete_from_their_details_fetched_only_when_they_changed(env):
    suppliers = env.export("suppliers")
    _, mark = env.request_log()

    assert env.materialize("precoro/suppliers").success

    assert differences(env, BY_NAME["suppliers"]) == []  # payment terms, contacts, legal entities: complete
    log, mark = env.request_log(mark)
    details = [r for r in log if r["path"] == "/suppliers/{id}"]
    assert len(details) == len({r["url"] for r in details}) == len(suppliers)  # one each, the first time
    assert env.query("SELECT count(*) FROM precoro.supplier_payment_terms") == [
        (sum(len(s["paymentTerms"]["data"]) for s in suppliers),)]

    env.control("POST", "tick", json={"events": 30})  # some suppliers change (a contact's phone)
    changed = {str(s["id"]) for s in env.export("suppliers")} - {
        str(s["id"]) for s in suppliers if s in env.export("suppliers")}
    result = env.materialize_keys(["precoro/suppliers"], run_config={"ops": {"precoro__suppliers": {
        "config": {"full_refresh": True}}}}, raise_on_error=False)

    assert result.success and differences(env, BY_NAME["suppliers"]) == []
    log, _ = env.request_log(mark)
    fetched = {r["url"].rsplit("/", 1)[-1] for r in log if r["path"] == "/suppliers/{id}"}
    assert changed and fetched == changed  # a full refresh lists them all, but fetches only the changed


def typed_tables(env, entities) -> dict[str, list[str]]:
    """Every table of these entities without raw and when rows were written, rows sorted: what analysts read."""
    tables = {}
    for entity in entities:
        for child in (None, *entity.children):
            columns = [c.name for c in table_columns(entity, child)
                       if c.name not in ("raw", "synced_at", "lines_synced_at")]
            # rows as text: a NULL the query helper reads as NaN then compares equal to itself
            tables[entity.table(child)] = sorted(repr(row) for row in env.query(
                f"SELECT {', '.join(ident(c) for c in columns)} FROM {qualified(entity.table(child))}"))
    return tables


@pytest.mark.e2e
def test_numbers_sent_as_text_land_exactly_as_numbers_do(env):
    entities = [BY_NAME[name] for name in ("invoices", "expenses", "suppliers", "items", "taxes")]
    start, end = env.days()

    def sync() -> dict[str, list[str]]:
        assert env.materialize([f"precoro/{e.name}" for e in entities if not e.partitioned]).success
        assert env.materialize([f"precoro/{e.name}" for e in entities if e.partitioned],
                               partition_range=(str(start), str(end))).success
        return typed_tables(env, entities)

    as_numbers = sync()
    shutil.rmtree(env.config.warehouse)
    shutil.rmtree(env.config.state_dir)
    env.control("POST", "shapes", json={"numbers_as_text": True})
    assert isinstance(httpx.get(f"{env.sim.url}/invoices", params={"per_page": 10}, timeout=10, headers={
        "X-AUTH-TOKEN": env.sim.token, "email": env.sim.email}).json()["data"][0]["sum"], str)

    as_text = sync()

    assert as_numbers["invoices"]
    differing = [f"{table}: {a} != {b}" for table, rows in as_numbers.items()
                 for a, b in zip(rows, as_text[table], strict=True) if a != b]
    assert not differing, "\n".join(differing[:3])
