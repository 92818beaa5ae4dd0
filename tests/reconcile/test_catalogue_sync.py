"""The catalogue sync against the simulator: the accounting side's vendors, products, tax rates, accounts and
tracking categories brought into Precoro through the outbox, exactly once, at the fewest requests."""

from __future__ import annotations

import csv
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from precoro_assets.ledger.master_data_files import load_catalogue
from precoro_assets.master_data.plan import FIELDS, differences
from precoro_assets.settings import ledger_dir
from tests.reconcile.reconcile_support import SEND

pytestmark = pytest.mark.e2e  # a simulator on a socket or child processes: in make test, not in make test-fast


PLAN = ["precoro/catalogue_sync_plan"]


def write_csv(name: str, header: list[str], rows: list[list]) -> None:
    with open(ledger_dir() / name, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def clear_catalogue() -> None:
    for name in ("vendors", "products", "accounts", "tracking_categories", "tax_rates"):
        (ledger_dir() / f"{name}.csv").unlink(missing_ok=True)


def plan_rows(env: Any) -> dict[tuple[str, str | None], dict]:
    rows = env.warehouse.query("SELECT * FROM precoro.catalogue_sync_plan").to_dict("records")
    return {(row["kind"], row["ledger_id"] or f"precoro:{row['precoro_id']}"): row for row in rows}


@pytest.fixture
def catalogue_env(env: Any) -> Any:
    """The reconciliation env with suppliers and items synced too (the plan reuses them for name matching)."""
    env.materialize(["precoro/suppliers", "precoro/items"])
    clear_catalogue()
    return env


def api(env: Any, method: str, path: str, form: dict) -> None:
    """A change made in Precoro by someone else (through the API, as any user or tool may)."""
    httpx.request(method, f"{env.sim.url}{path}", data=form, timeout=30,
                  headers={"X-AUTH-TOKEN": env.sim.token, "email": env.sim.email}).raise_for_status()


def price(item: dict) -> str:
    return format(Decimal(str(item["price"])), "f")


def scenario(env: Any) -> dict[str, str]:
    """New, changed, unchanged and conflicting records of every kind, built from the simulator's company."""
    suppliers = sorted(env.export("suppliers"), key=lambda s: s["id"])
    linked = [s for s in suppliers if s.get("externalId")]
    unlinked = [s for s in suppliers if not s.get("externalId")]
    same = next(s for s in linked if s["enable"])
    changed, link = next(s for s in linked if s is not same), unlinked[0]
    twins = unlinked[1:3]  # two unlinked suppliers given one name: a vendor of that name is a conflict
    api(env, "PUT", f"/suppliers/{twins[1]['id']}", {"name": twins[0]["name"]})
    extra = next(c for c in ("CHF", "PLN", "UAH", "GBP", "EUR") if c not in changed["currencies"])
    write_csv("vendors.csv", ["vendor_id", "name", "currency", "currencies", "tax_number", "address", "enabled"], [
        [same["externalId"], same["name"], same["currency"], "", "", "", "yes"],
        [changed["externalId"], changed["name"] + " GmbH", changed["currency"], extra, "DE999", "", "yes"],
        ["V-LINK", link["name"].upper(), link["currency"], "", "TAX-42", "9 New Road", "yes"],
        ["V-NEW-1", "Brand New Supplies", "EUR", "USD|GBP", "FR111", "1 Rue Neuve", "yes"],
        ["V-NEW-2", "Second Newcomer", "USD", "", "", "", ""],
        ["V-CONFLICT", twins[0]["name"], "USD", "", "", "", "yes"],
        ["V-OFF", "Retired Vendor", "USD", "", "", "", "no"],
        ["V-YEN", "Tokyo Trading", "JPY", "", "", "", "yes"],  # a currency the company lacks: Precoro refuses it
    ])
    items = sorted(env.export("items"), key=lambda i: i["id"])
    linked_items = [i for i in items if i.get("externalId")]
    same_item, changed_item = linked_items[0], linked_items[1]
    duplicate = linked_items[2]
    api(env, "PATCH", f"/items/{linked_items[3]['id']}", {"externalId": duplicate["externalId"]})
    write_csv("products.csv", ["product_id", "name", "sku", "price", "currency"], [
        [same_item["externalId"], same_item["name"], same_item.get("sku") or "", price(same_item), "USD"],
        [changed_item["externalId"], changed_item["name"], changed_item.get("sku") or "",
         str(Decimal(price(changed_item)) + 1), "USD"],
        ["P-NEW", "Standing desk", "DESK-1", "499.90", "USD"],
        [duplicate["externalId"], duplicate["name"], "", "", ""],
    ])
    taxes = sorted(env.export("taxes"), key=lambda t: t["id"])
    api(env, "PATCH", f"/taxes/{taxes[1]['id']}", {"externalId": "T-RENAMED"})
    api(env, "PUT", f"/taxes/{taxes[3]['id']}", {"name": taxes[2]["name"]})  # two taxes of one name
    write_csv("tax_rates.csv", ["tax_id", "name", "rate"], [
        ["T-LINK", taxes[0]["name"], str(taxes[0]["value"])],
        ["T-RENAMED", "VAT standard", str(taxes[1]["value"])],
        ["T-NEW", "Reduced 5.5%", "5.5"],
        ["T-TWICE", taxes[2]["name"], str(taxes[2]["value"])],
    ])
    accounts = next(f for f in env.export("itemcustomfields") if f["name"] == "GL account")
    first, second = accounts["options"][1], accounts["options"][2]
    api(env, "PUT", f"/itemcustomfields/{accounts['id']}/options/{second['id']}", {"name": first["name"]})
    write_csv("accounts.csv", ["account_id", "name", "code"], [
        ["6000", "6000 Office supplies", "6000"], ["7000", "7000 Travel", "7000"], ["6100", first["name"], ""]])
    write_csv("tracking_categories.csv", ["category", "option_id", "name"], [
        ["Cost center", "CC-MKT", "Marketing"], ["Cost center", "CC-LEGAL", "Legal"], ["Region", "R-1", "North"]])
    offered = [s for s in unlinked[3:] if s["status"] == 2 and s["enable"]]
    assert offered, "the company has an approved supplier the accounting side lacks"
    return {"changed_supplier": str(changed["id"]), "linked_supplier": str(link["id"]),
            "offered": str(offered[0]["id"]),
            "extra_currency": extra, "twin_a": str(twins[0]["id"]), "twin_b": str(twins[1]["id"])}


def precoro_twins(env: Any) -> dict[str, list[dict]]:
    """Every record of the synced kinds in Precoro, by externalId (custom field options included)."""
    out: dict[str, list[dict]] = {}
    for resource in ("suppliers", "items", "taxes"):
        for record in env.export(resource):
            if record.get("externalId"):
                out.setdefault(record["externalId"], []).append(record)
    for resource in ("itemcustomfields", "documentcustomfields"):
        for custom_field in env.export(resource):
            for option in custom_field.get("options") or []:
                if option.get("externalId"):
                    out.setdefault(option["externalId"], []).append({**option, "field": custom_field["name"]})
    return out


def test_a_sent_plan_leaves_precoro_equal_to_the_accounting_catalogue_and_a_second_send_writes_nothing(
        catalogue_env: Any) -> None:
    env = catalogue_env
    facts = scenario(env)
    env.materialize(["precoro/suppliers", "precoro/items"])  # the plan matches names in the synced copy
    suppliers_before = len(env.export("suppliers"))
    env.materialize(PLAN)
    rows = plan_rows(env)
    actions = {key: row["action"] for key, row in rows.items()}
    assert actions[("vendor", "V-NEW-1")] == "create" and actions[("vendor", "V-NEW-2")] == "create"
    assert actions[("vendor", "V-LINK")] == "link"
    assert actions[("vendor", "V-CONFLICT")] == "conflict" and actions[("vendor", "V-OFF")] == "not_sent"
    changed = next(row for (kind, _), row in rows.items() if kind == "vendor"
                   and row["precoro_id"] == facts["changed_supplier"])
    assert changed["action"] == "update"
    sent_fields = json.loads(changed["fields"])
    assert set(sent_fields) == {"name", "currencies", "taxPayerNumber"}  # only what differs
    assert sent_fields["currencies"][-1] == facts["extra_currency"] and len(sent_fields["currencies"]) >= 2
    assert Counter(a for (kind, _), a in actions.items() if kind == "vendor")["unchanged"] == 1
    products = [actions[("product", p.product_id)] for p in load_catalogue(ledger_dir()).products]
    assert products == ["unchanged", "update", "create", "conflict"]
    assert [actions[("tax_rate", t)] for t in ("T-LINK", "T-RENAMED", "T-NEW", "T-TWICE")] == [
        "link", "update", "create", "conflict"]
    assert [actions[("account", a)] for a in ("6000", "7000", "6100")] == ["link", "create", "conflict"]
    assert actions[("tracking_option", "CC-MKT")] == "link" and actions[("tracking_option", "CC-LEGAL")] == "create"
    assert actions[("tracking_option", "R-1")] == "not_sent"  # Precoro has no "Region" field
    assert actions[("vendor", f"precoro:{facts['offered']}")] == "offer"  # suppliers are two-way
    assert ("vendor", f"precoro:{facts['twin_a']}") not in actions  # in conflict with a vendor: not missing
    assert "no document custom field named 'Region'" in rows[("tracking_option", "R-1")]["reason"]

    mark = env.request_mark()
    dry = env.writeback()
    assert not dry["send"] and not env.writes_since(mark)  # a dry run by default: nothing sent
    env.writeback(SEND)
    writes = env.writes_since(mark)
    proposals = sum(1 for row in rows.values() if row["action"] in ("create", "update", "link", "offer"))
    unsent = {r.target_key: (r.status, r.last_error) for r in env.outbox.rows() if r.status != "sent"}
    assert list(unsent) == ["V-YEN"] and unsent["V-YEN"][0] == "failed"
    assert "currency: This value is not one of the company's currencies" in unsent["V-YEN"][1]  # Precoro's words
    assert sum(writes.values()) == proposals - 1  # one write per changed record
    assert writes[("POST", "/suppliers")] == 2

    # Precoro now holds the accounting side's values for every record that was not in conflict
    catalogue, twins = load_catalogue(ledger_dir()), precoro_twins(env)
    for kind, records in (("vendor", catalogue.vendors), ("product", catalogue.products),
                          ("tax_rate", catalogue.tax_rates), ("account", catalogue.accounts),
                          ("tracking_option", catalogue.tracking_options)):
        for record in records:
            ledger_id = getattr(record, "option_id", None) or next(
                getattr(record, name) for name in ("vendor_id", "product_id", "tax_id", "account_id")
                if hasattr(record, name))
            if actions[(kind, ledger_id)] in ("conflict", "not_sent") or ledger_id in unsent:
                continue
            found = twins.get(ledger_id, [])
            assert len(found) == 1, (kind, ledger_id, found)
            assert differences(FIELDS[kind](record), found[0]) == {}, (kind, ledger_id, found[0])
    assert len(env.export("suppliers")) == suppliers_before + 2
    linked = next(s for s in env.export("suppliers") if str(s["id"]) == facts["linked_supplier"])
    assert (linked["externalId"], linked["taxPayerNumber"], linked["legalAddress"]) == ("V-LINK", "TAX-42",
                                                                                        "9 New Road")
    twin_links = {str(s["id"]): s.get("externalId") for s in env.export("suppliers")}
    assert twin_links[facts["twin_a"]] is None and twin_links[facts["twin_b"]] is None  # conflicts: untouched
    # the supplier the accounting side lacked is in its import file now, and linked by the id it got there
    offered = list(csv.DictReader(open(ledger_dir() / "export" / "suppliers.csv", encoding="utf-8")))
    assert [(row["precoro_id"], row["vendor_id"]) for row in offered] == [(facts["offered"],
                                                                           f"ACC-VEN-{facts['offered']}")]
    assert twin_links[facts["offered"]] == f"ACC-VEN-{facts['offered']}"

    # a second plan finds everything in step; a second send writes nothing
    env.materialize(["precoro/suppliers", "precoro/items"])
    env.materialize(PLAN)
    again = {key: row["action"] for key, row in plan_rows(env).items()
             if row["action"] in ("create", "update", "link", "offer")}
    assert again == {("vendor", "V-YEN"): "create"}  # still wanted, still refused: its row stays failed, not re-sent
    mark = env.request_mark()
    env.writeback(SEND)
    assert not env.writes_since(mark)
    assert env.unknown_parameters() == []  # the catalogue's lookups use only filters the contract names


def test_a_lost_post_answer_creates_no_duplicate(catalogue_env: Any) -> None:
    env = catalogue_env
    write_csv("vendors.csv", ["vendor_id", "name", "currency"], [["V-LOST", "Answer Lost Ltd", "EUR"]])
    env.materialize(PLAN)
    env.control("POST", "faults", json={"kind": "lost_response", "method": "POST", "path": "/suppliers", "count": 1})
    env.writeback(SEND)
    created = [s for s in env.export("suppliers") if s.get("externalId") == "V-LOST"]
    assert len(created) == 1
    row = next(r for r in env.outbox.rows() if r.resource == "suppliers")
    assert row.status == "sent" and "adopted" in row.outcome
    mark = env.request_mark()
    env.writeback(SEND)
    env.materialize(PLAN)
    env.writeback(SEND)
    assert not env.writes_since(mark)
    assert len([s for s in env.export("suppliers") if s.get("externalId") == "V-LOST"]) == 1


def test_450_vendors_cost_3_lookups(catalogue_env: Any) -> None:
    env = catalogue_env
    write_csv("vendors.csv", ["vendor_id", "name", "currency"],
              [[f"V-{n:04d}", f"Bulk Vendor {n}", "USD"] for n in range(450)])
    mark = env.request_mark()
    result = env.materialize(PLAN)
    reads = [r for r in env.requests_since(mark) if r["method"] == "GET"]
    assert len(reads) == 3 and all(r["url"].startswith("/suppliers?") for r in reads)
    assert max(r["url"].count("external_id") for r in reads) == 200
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    offers = sum(1 for row in plan_rows(env).values() if row["action"] == "offer")  # Precoro's unlinked suppliers
    assert metadata["lookup requests"].value == 3 and metadata["writes proposed"].value == 450 + offers


def test_rejected_catalogue_rows_are_in_the_plan_with_file_line_and_reason(catalogue_env: Any) -> None:
    env = catalogue_env
    Path(ledger_dir() / "tax_rates.csv").write_text("tax_id,name,rate\nT-1,Fine,20\nT-2,Broken,twenty\n")
    result = env.materialize(PLAN)
    rejected = [row for row in plan_rows(env).values() if row["action"] == "rejected"]
    assert [(r["source_file"], r["source_line"]) for r in rejected] == [("tax_rates.csv", 3)]
    assert "rate" in rejected[0]["reason"]
    check = result.get_asset_check_evaluations()[0]
    assert not check.passed and check.metadata["rejected rows"].value == 1


def test_a_linked_vendors_tax_number_and_address_compare_with_the_supplier_detail_at_the_fewest_requests(
        catalogue_env: Any) -> None:
    env = catalogue_env
    linked = [s for s in sorted(env.export("suppliers"), key=lambda s: s["id"]) if s.get("externalId")]
    renamed_in_ledger, edited_in_precoro, unmapped = linked[:3]
    # someone edits a supplier's address in Precoro after the sync: the warehouse's copy is behind
    api(env, "PUT", f"/suppliers/{edited_in_precoro['id']}", {"legalAddress": "1 Changed Street"})
    truth = {s["id"]: s for s in env.export("suppliers")}
    write_csv("vendors.csv", ["vendor_id", "name", "currency", "tax_number", "address"], [
        # the accounting side changed the tax number and the address
        [renamed_in_ledger["externalId"], renamed_in_ledger["name"], renamed_in_ledger["currency"], "DE-NEW-1",
         "2 Ledger Lane"],
        # the ledger still has the address Precoro had at the sync
        [edited_in_precoro["externalId"], edited_in_precoro["name"], edited_in_precoro["currency"],
         edited_in_precoro.get("taxPayerNumber") or "", edited_in_precoro.get("legalAddress") or "Old Road 1"],
        # no tax number or address in the ledger: nothing to compare them with
        [unmapped["externalId"], unmapped["name"], unmapped["currency"], "", ""],
    ])
    # list rows without the fields only a supplier's detail carries (GET /suppliers/{id})
    env.control("POST", "faults", json={"kind": "missing_fields", "method": "GET", "path": "/suppliers",
                                        "fields": ["taxPayerNumber", "legalAddress"], "count": None})

    mark = env.request_mark()
    env.materialize(PLAN)

    rows = plan_rows(env)
    first = rows[("vendor", renamed_in_ledger["externalId"])]
    assert first["action"] == "update"
    assert json.loads(first["fields"]) == {"taxPayerNumber": "DE-NEW-1", "legalAddress": "2 Ledger Lane"}
    second = rows[("vendor", edited_in_precoro["externalId"])]
    assert truth[edited_in_precoro["id"]]["legalAddress"] == "1 Changed Street"
    assert second["action"] == "update" and json.loads(second["fields"])["legalAddress"] == (
        edited_in_precoro.get("legalAddress") or "Old Road 1")
    assert rows[("vendor", unmapped["externalId"])]["action"] == "unchanged"
    # one detail, for the supplier whose synced copy is behind; the others from the warehouse or not needed
    details = [r["url"] for r in env.requests_since(mark) if r["url"].startswith("/suppliers/")]
    assert details == [f"/suppliers/{edited_in_precoro['id']}"]
