"""The master-data sync (its Dagster assets and job keep the name "catalogue sync"): the other direction, keeping
Precoro's suppliers, items, tax rates and custom field options (the chart of accounts, tracking categories) in
step with the accounting system's catalogue (ledger/master_data_files.py).

The plan, for each ledger record:
- its twin is the Precoro record whose externalId is the ledger id. Suppliers, items and taxes are looked up with
  `external_id[]`, 200 ids per request (the most Precoro accepts: 450 vendors cost 3 requests); custom field
  options come with their field (`GET /itemcustomfields`, `GET /documentcustomfields`: one request each);
- no linked twin: the record is matched by name among Precoro's unlinked records (suppliers and items: the
  warehouse's copy, no request; taxes and options: the lists just read). One match: link it and bring the
  fields in step, in one PUT; several: a conflict, reported, nothing sent;
- no twin at all: create it (POST) with the fields the accounting side owns and its externalId. A disabled
  ledger record is not created;
- a twin that differs on those fields: PUT only the differing fields; a supplier's `currencies[]` is merged
  (the PUT replaces the list, so the currencies Precoro has besides the accounting side's are sent along);
- unchanged: nothing is sent;
- an approved, enabled Precoro supplier that is unlinked and has no vendor of its name is offered to the
  accounting side (LedgerSink.offer_vendor) and linked by the id it gets there (`offer`); what else Precoro has
  that the catalogue lacks (linked to an id it no longer lists; other kinds unlinked) is reported
  (`precoro_only`), never changed.

Who wins (suppliers are edited on both sides): for a linked record the accounting side wins on the fields it
maps (name, currency, currencies (added, never removed), tax number, legal address, enabled; items: name, sku,
price; taxes: name, rate, enabled; options: name, code). A field the ledger leaves empty (or has no column for) is
not sent, and every
field it does not map (contacts, bank details, payment terms, custom fields, ...) is never sent: what Precoro's
users edit there is kept.

Every write goes through the outbox (executor.py): a dry run by default, exactly once. Nothing here sends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ..api.responses import expect_list
from ..ledger.master_data_files import (
    LedgerAccount,
    LedgerCatalogue,
    LedgerProduct,
    LedgerTaxRate,
    LedgerTrackingOption,
    LedgerVendor,
)
from ..ledger.source import same_name
from ..writeback.proposals import CREATE_RECORD, EXPORT_SUPPLIER, UPDATE_RECORD, Proposal

# The resources the catalogue sync writes to: its batch retires pending outbox rows of these only.
CATALOGUE_RESOURCES = ("suppliers", "items", "taxes", "itemcustomfields", "documentcustomfields")
DEFAULT_ACCOUNTS_FIELD = "GL account"  # the item custom field Precoro's accounting integrations fill with accounts

# What the plan decides for a record
CREATE, UPDATE, LINK, UNCHANGED, CONFLICT, OFFER, PRECORO_ONLY, NOT_SENT = (
    "create", "update", "link", "unchanged", "conflict", "offer", "precoro_only", "not_sent")
APPROVED = 2  # a supplier's status: only approved, enabled suppliers are offered to the accounting side
ACTIONS = {
    CREATE: "Precoro lacks it: POST it with its externalId",
    UPDATE: "linked, and fields the accounting side owns differ: PUT only those",
    LINK: "an unlinked Precoro record of the same name: PUT its externalId (and any differing field)",
    UNCHANGED: "linked and equal: nothing is sent",
    CONFLICT: "more than one Precoro record could be its twin: nothing is sent until someone resolves it",
    OFFER: "an approved, enabled Precoro supplier the accounting side lacks (unlinked, no vendor of that name): "
           "offered to it as a new vendor, then linked by externalId",
    PRECORO_ONLY: "in Precoro only and not offered (linked to an id the catalogue lacks, or a supplier not approved "
                  "or disabled): reported, never changed",
    NOT_SENT: "nothing can be sent (disabled and absent from Precoro, or no custom field to hold it)",
    "rejected": "a catalogue file's row that did not load (file, line and reason): fix the export",
}


@dataclass(frozen=True)
class PlanRow:
    """One ledger record (or Precoro-only record) and what the sync does with it."""

    kind: str  # vendor, product, tax_rate, account, tracking_option
    ledger_id: str | None
    name: str
    action: str
    precoro_resource: str
    precoro_id: str | None
    fields: dict[str, Any]  # what is sent: all owned fields for a create, the differing ones otherwise
    reason: str
    source_file: str | None = None
    source_line: int | None = None


@dataclass
class CataloguePlan:
    rows: list[PlanRow] = field(default_factory=list)
    proposals: list[Proposal] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per kind, how many records per action."""
        out: dict[str, dict[str, int]] = {}
        for row in self.rows:
            per_kind = out.setdefault(row.kind, {})
            per_kind[row.action] = per_kind.get(row.action, 0) + 1
        return out


@dataclass(frozen=True)
class Twin:
    """A Precoro record as the plan compares it: where it lives, its link, its fields in Precoro's names."""

    id: str
    name: str
    external_id: str | None
    values: Mapping[str, Any]


@dataclass(frozen=True)
class Group:
    """Ledger records and the Precoro records they are compared with, and where creates and updates go."""

    kind: str
    resource: str  # the outbox resource (suppliers, items, taxes, itemcustomfields, documentcustomfields)
    records: list[Any]
    linked: list[Twin]  # Precoro records found by the ledger ids
    unlinked: list[Twin]  # Precoro records without an externalId (name-match candidates)
    create_path: str
    update_path: Callable[[str], str]  # Precoro id -> path of its PUT
    lookup: Callable[[str], dict[str, Any]]  # ledger id -> how the executor finds a created record again
    others: list[Twin] = field(default_factory=list)  # linked to ids the catalogue does not list
    missing_reason: str | None = None  # set when Precoro has nowhere to put these records


# ---- the fields each kind owns (Precoro's names; None: the ledger leaves it to Precoro) --------------------------

def vendor_fields(vendor: LedgerVendor) -> dict[str, Any]:
    return {"name": vendor.name, "currency": vendor.currencies[0] if vendor.currencies else None,
            "currencies": list(vendor.currencies) or None, "taxPayerNumber": vendor.tax_number,
            "legalAddress": vendor.address, "enable": vendor.enabled}


def product_fields(product: LedgerProduct) -> dict[str, Any]:
    return {"name": product.name, "sku": product.sku, "price": product.price}


def tax_fields(tax: LedgerTaxRate) -> dict[str, Any]:
    return {"name": tax.name, "value": tax.rate, "enable": tax.enabled}


def account_fields(account: LedgerAccount) -> dict[str, Any]:
    return {"name": account.name, "code": account.code}


def tracking_fields(option: LedgerTrackingOption) -> dict[str, Any]:
    return {"name": option.name}


def _ledger_id(record: Any) -> str:
    for name in ("vendor_id", "product_id", "tax_id", "account_id"):
        if hasattr(record, name):
            return getattr(record, name)
    return record.option_id


FIELDS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "vendor": vendor_fields, "product": product_fields, "tax_rate": tax_fields, "account": account_fields,
    "tracking_option": tracking_fields}


# ---- comparing ---------------------------------------------------------------------------------------------------

def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None


def _same(wanted: Any, have: Any) -> bool:
    if isinstance(wanted, bool):
        return have is not None and str(have).lower() in (("true", "1") if wanted else ("false", "0"))
    if isinstance(wanted, Decimal):
        return _decimal(have) == wanted
    return " ".join(str(wanted).split()) == " ".join(str(have or "").split())


def _currencies(value: Any) -> list[str]:
    if isinstance(value, str):  # the warehouse keeps the list as JSON text
        try:
            value = json.loads(value)
        except ValueError:
            value = [value]
    return [str(code) for code in (value or [])]


def differences(wanted: Mapping[str, Any], have: Mapping[str, Any]) -> dict[str, Any]:
    """The owned fields whose value differs in Precoro; `currencies` merged (Precoro's first, the new added).

    A field Precoro's answer does not carry at all is not compared (nor sent): sending it on every plan could
    never be seen to converge. Empty (null) counts as a value."""
    out: dict[str, Any] = {}
    for name, value in wanted.items():
        if value is None or name not in have:
            continue
        if name == "currencies":
            current = _currencies(have.get(name))
            missing = [code for code in value if code not in current]
            if missing:
                out[name] = current + missing
        elif not _same(value, have.get(name)):
            out[name] = value
    return out


def json_safe(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Outbox payloads are JSON: amounts and rates as exact decimal strings."""
    return {name: format(value, "f") if isinstance(value, Decimal) else value for name, value in fields.items()}


# ---- the plan ----------------------------------------------------------------------------------------------------

def plan_group(group: Group) -> tuple[list[PlanRow], list[Proposal]]:
    """Compare one group's ledger records with their Precoro twins; propose the writes."""
    rows: list[PlanRow] = []
    proposals: list[Proposal] = []
    linked: dict[str, list[Twin]] = {}
    for twin in group.linked:
        linked.setdefault(twin.external_id or "", []).append(twin)
    by_name: dict[str, list[Twin]] = {}
    for twin in group.unlinked:
        by_name.setdefault(same_name(twin.name), []).append(twin)
    claimed: dict[str, str] = {}  # unlinked Precoro id -> the ledger id that matched it by name
    linked_elsewhere: dict[str, list[Twin]] = {}
    for twin in group.others:
        linked_elsewhere.setdefault(same_name(twin.name), []).append(twin)

    def row(record: Any, action: str, twin: Twin | None, fields: dict[str, Any], reason: str) -> None:
        rows.append(PlanRow(group.kind, _ledger_id(record), record.name, action, group.resource,
                            twin.id if twin else None, json_safe(fields), reason, record.source_file,
                            record.source_line))

    def propose(kind: str, record: Any, target: str, target_id: str | None, payload: dict[str, Any],
                reason: str) -> None:
        proposals.append(Proposal(kind, group.resource, target, int(target_id) if target_id else None,
                                  payload, reason, ledger_ref=_ledger_id(record)))

    for record in group.records:
        ledger_id, wanted = _ledger_id(record), FIELDS[group.kind](record)
        what = f"{group.kind} {ledger_id} ({record.name})"
        if group.missing_reason:
            row(record, NOT_SENT, None, {}, group.missing_reason)
            continue
        twins = linked.get(ledger_id, [])
        if len(twins) > 1:
            row(record, CONFLICT, None, {}, f"{len(twins)} Precoro {group.resource} carry externalId {ledger_id!r} "
                f"(ids {', '.join(t.id for t in twins)}): merge or unlink the duplicates in Precoro")
            continue
        if twins:
            twin = twins[0]
            changed = differences(wanted, twin.values)
            if not changed:
                row(record, UNCHANGED, twin, {}, "Precoro holds the accounting side's values")
                continue
            row(record, UPDATE, twin, changed, "differs on " + ", ".join(changed))
            propose(UPDATE_RECORD, record, twin.id, twin.id, {"path": group.update_path(twin.id),
                    "fields": json_safe(changed)}, f"{what}: the accounting side's {', '.join(changed)}")
            continue
        candidates = [t for t in by_name.get(same_name(record.name), []) if t.id not in claimed]
        if len(candidates) > 1:
            row(record, CONFLICT, None, {}, f"{len(candidates)} unlinked Precoro {group.resource} are named "
                f"{record.name!r} (ids {', '.join(t.id for t in candidates)}): link one by hand (set its "
                f"externalId to {ledger_id!r}) or rename the others")
            continue
        if candidates:
            twin = candidates[0]
            claimed[twin.id] = ledger_id
            changed = {"externalId": ledger_id, **differences(wanted, twin.values)}
            row(record, LINK, twin, changed, f"same name as unlinked Precoro record {twin.id}; linked"
                + (f", and {', '.join(k for k in changed if k != 'externalId')} brought in step"
                   if len(changed) > 1 else ""))
            propose(UPDATE_RECORD, record, twin.id, twin.id, {"path": group.update_path(twin.id),
                    "fields": json_safe(changed)}, f"{what}: link by name")
            continue
        elsewhere = linked_elsewhere.get(same_name(record.name), [])
        if elsewhere:  # creating it would make a second record of that name: someone must say which is which
            row(record, CONFLICT, None, {}, f"Precoro's {group.resource} {elsewhere[0].id} of that name is linked to "
                f"{elsewhere[0].external_id!r}, not {ledger_id!r}: correct the id on one side")
            continue
        if record.enabled is False:
            row(record, NOT_SENT, None, {}, "disabled in the accounting system and absent from Precoro: not created")
            continue
        fields = {name: value for name, value in wanted.items() if value is not None} | {"externalId": ledger_id}
        row(record, CREATE, None, fields, f"no Precoro {group.resource} record with externalId {ledger_id!r} "
            "and none unlinked of that name")
        propose(CREATE_RECORD, record, getattr(record, "key", ledger_id), None,
                {"path": group.create_path, "form": json_safe(fields), "lookup": group.lookup(ledger_id),
                 "name": record.name}, f"{what}: new in the accounting system")

    listed = {_ledger_id(record) for record in group.records}
    for twin in group.others:
        if twin.external_id not in listed:
            rows.append(PlanRow(group.kind, None, twin.name, PRECORO_ONLY, group.resource, twin.id, {},
                                f"linked to {twin.external_id!r}, which the accounting catalogue does not list"))
    if group.kind == "vendor":  # suppliers are two-way: the accounting side gets the ones it lacks
        named = {same_name(record.name) for record in group.records}
        for twin in group.unlinked:
            if twin.id in claimed or same_name(twin.name) in named:  # linked now, or in conflict: not missing
                continue
            approved = str(twin.values.get("status")) == str(APPROVED) and _same(True, twin.values.get("enable"))
            if not approved:
                rows.append(PlanRow(group.kind, None, twin.name, PRECORO_ONLY, group.resource, twin.id, {},
                                    "unlinked, no vendor of that name, and not an approved, enabled supplier: "
                                    "offered to the accounting side once it is"))
                continue
            rows.append(PlanRow(group.kind, None, twin.name, OFFER, group.resource, twin.id, {},
                                "unlinked and no vendor of that name: offered to the accounting side"))
            proposals.append(Proposal(EXPORT_SUPPLIER, group.resource, twin.id, int(twin.id), {"name": twin.name},
                                      f"supplier {twin.id} ({twin.name}): missing in the accounting system"))
    return rows, proposals


def plan(groups: Iterable[Group]) -> CataloguePlan:
    result = CataloguePlan()
    for group in groups:
        rows, proposals = plan_group(group)
        result.rows += rows
        result.proposals += proposals
    return result


# ---- reading Precoro's side ----------------------------------------------------------------------------------------

def _twin(record: Mapping[str, Any], names: Iterable[str]) -> Twin:
    """A field the record does not carry at all is left out: it can't be compared (see `differences`)."""
    return Twin(str(record["id"]), str(record.get("name") or ""), record.get("externalId") or None,
                {name: record[name] for name in names if name in record})


SUPPLIER_NAMES = ("name", "currency", "currencies", "taxPayerNumber", "legalAddress", "enable")
ITEM_NAMES = ("name", "sku", "price")
TAX_NAMES = ("name", "value", "enable")
OPTION_NAMES = ("name", "code")


def look_up(client: Any, path: str, ids: list[str], names: Iterable[str]) -> list[Twin]:
    """The records carrying these externalIds: `external_id[]` batches of 200 (the client splits them)."""
    if not ids:
        return []
    return [_twin(record, names) for record in client.iter_rows(path, external_id=ids)]


def supplier_twin(client: Any, record: Mapping[str, Any], synced: Mapping[str, Any] | None,
                  mapped: set[str]) -> Twin:
    """A linked supplier as the plan compares it. Its list row may lack fields only `GET /suppliers/{id}` carries
    (a tax number, an address): compared as missing, a changed one would pass as unchanged. Where the ledger maps
    such a field, it comes from the warehouse's copy when that copy is of the row's version (the sync reads the
    detail of every new or changed supplier), else from the detail: one request, for that supplier only."""
    missing = [name for name in SUPPLIER_NAMES if name in mapped and name not in record]
    if missing:
        if synced is not None and _same_version(record.get("updateDate"), synced.get("update_date")):
            record = {**record, **{name: synced.get(SUPPLIER_COLUMNS[name]) for name in missing}}
        else:
            record = {**record, **client.get_detail("suppliers", record["id"])}
    return _twin(record, SUPPLIER_NAMES)


def _same_version(listed: Any, synced: Any) -> bool:
    """Whether the list row's updateDate is the synced copy's (both as UTC instants)."""
    if not listed or not isinstance(synced, datetime):
        return False
    try:
        when = datetime.fromisoformat(str(listed).replace("Z", "+00:00"))
    except ValueError:
        return False
    as_utc = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in (when, synced)]
    return as_utc[0] == as_utc[1]


def warehouse_twins(rows: Iterable[Mapping[str, Any]], columns: Mapping[str, str]) -> list[Twin]:
    """Twins from the warehouse's copy: `columns` maps Precoro's field names to the table's columns."""
    return [Twin(str(row["id"]), str(row.get("name") or ""), row.get("external_id") or None,
                 {name: row.get(column) for name, column in columns.items()}) for row in rows]


SUPPLIER_COLUMNS = {"name": "name", "currency": "currency", "currencies": "currencies",
                    "taxPayerNumber": "tax_number", "legalAddress": "legal_address", "enable": "enable",
                    "status": "status"}
ITEM_COLUMNS = {"name": "name", "sku": "sku", "price": "price"}


def groups_for(catalogue: LedgerCatalogue, client: Any, warehouse_suppliers: Sequence[Mapping[str, Any]],
               warehouse_items: Sequence[Mapping[str, Any]], accounts_field: str = DEFAULT_ACCOUNTS_FIELD) -> list[Group]:
    """Read what the plan compares with, at the fewest requests: lookups by externalId for suppliers, items and
    taxes; the custom field lists when accounts or tracking categories are given; unlinked suppliers and items
    from the warehouse (reference data already synced is not read again)."""
    groups: list[Group] = []
    if catalogue.vendors:
        synced = {str(row["id"]): row for row in warehouse_suppliers}
        mapped = {v.vendor_id: {k for k, value in vendor_fields(v).items() if value not in (None, "", [])}
                  for v in catalogue.vendors}
        ids = [v.vendor_id for v in catalogue.vendors]
        linked = [supplier_twin(client, record, synced.get(str(record["id"])), mapped.get(record.get("externalId"),
                                                                                          set()))
                  for record in (client.iter_rows("/suppliers", external_id=ids) if ids else [])]
        seen = {t.id for t in linked}
        known = warehouse_twins([r for r in warehouse_suppliers if str(r["id"]) not in seen], SUPPLIER_COLUMNS)
        groups.append(Group("vendor", "suppliers", catalogue.vendors, linked,
                            [t for t in known if not t.external_id], "/suppliers", lambda i: f"/suppliers/{i}",
                            lambda ledger_id: {"path": "/suppliers", "external_id": ledger_id},
                            others=[t for t in known if t.external_id]))
    if catalogue.products:
        linked = look_up(client, "/items", [p.product_id for p in catalogue.products], ITEM_NAMES)
        seen = {t.id for t in linked}
        known = warehouse_twins([r for r in warehouse_items if str(r["id"]) not in seen], ITEM_COLUMNS)
        groups.append(Group("product", "items", catalogue.products, linked, [t for t in known if not t.external_id],
                            "/items", lambda i: f"/items/{i}",
                            lambda ledger_id: {"path": "/items", "external_id": ledger_id},
                            others=[t for t in known if t.external_id]))
    if catalogue.tax_rates:  # taxes are few and carry no dates: one read of the list serves links and names
        taxes = [_twin(record, TAX_NAMES) for record in client.iter_rows("/taxes")]
        tax_ids = {t.tax_id for t in catalogue.tax_rates}
        groups.append(Group("tax_rate", "taxes", catalogue.tax_rates, [t for t in taxes if t.external_id in tax_ids],
                            [t for t in taxes if not t.external_id], "/taxes", lambda i: f"/taxes/{i}",
                            lambda ledger_id: {"path": "/taxes", "external_id": ledger_id},
                            others=[t for t in taxes if t.external_id and t.external_id not in ids]))
    if catalogue.accounts:
        fields = list(client.iter_rows("/itemcustomfields"))
        groups.append(option_group("account", "itemcustomfields", fields, accounts_field, catalogue.accounts))
    if catalogue.tracking_options:
        fields = list(client.iter_rows("/documentcustomfields"))
        categories: dict[str, list[LedgerTrackingOption]] = {}
        for option in catalogue.tracking_options:
            categories.setdefault(option.category, []).append(option)
        for category, options in categories.items():
            groups.append(option_group("tracking_option", "documentcustomfields", fields, category, options))
    return groups


def option_group(kind: str, resource: str, fields: list[Mapping[str, Any]], field_name: str,
                 records: list[Any]) -> Group:
    """Ledger records held as the options of the custom field named `field_name`."""
    matches = [f for f in fields if same_name(str(f.get("name"))) == same_name(field_name)]
    if len(matches) != 1:
        what = "no" if not matches else f"{len(matches)}"
        return Group(kind, resource, records, [], [], "", lambda i: "", lambda ledger_id: {},
                     missing_reason=f"Precoro has {what} {resource.removesuffix('customfields')} custom field named "
                                    f"{field_name!r}: create "
                                    "exactly one in Precoro's settings (the API cannot create custom fields)")
    custom_field = matches[0]
    field_id = str(custom_field["id"])
    options = [_twin(option, OPTION_NAMES) for option in expect_list(custom_field.get("options"))
               if isinstance(option, Mapping) and option.get("id") is not None]
    ids = {_ledger_id(record) for record in records}
    base = f"/{resource}/{field_id}/options"
    return Group(kind, resource, records, [o for o in options if o.external_id in ids],
                 [o for o in options if not o.external_id], base, lambda i: f"{base}/{i}",
                 lambda ledger_id: {"path": f"/{resource}", "id": field_id, "option_external_id": ledger_id},
                 others=[o for o in options if o.external_id and o.external_id not in ids])
