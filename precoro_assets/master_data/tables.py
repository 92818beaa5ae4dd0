"""The master-data sync's plan in the warehouse (`precoro.catalogue_sync_plan`), and the synced reference data the
plan reuses instead of asking Precoro again (suppliers and items, for matching unlinked records by name)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import duckdb

from ..catalogue import BY_NAME, TIME
from ..warehouse import tables
from ..warehouse.tables import c
from .plan import ACTIONS, CataloguePlan

ACTION_TEXT = "What the sync does: " + "; ".join(f"{name} = {text}" for name, text in ACTIONS.items())

CATALOGUE_SYNC_PLAN = ("catalogue_sync_plan", "The accounting catalogue (vendors, products, tax rates, accounts, "
                       "tracking categories) compared with Precoro's suppliers, items, taxes and custom field "
                       "options: one row per record and what the sync sends to bring Precoro in step (through the "
                       "write-back outbox: a dry run until sending is on).", (
    c("kind", "VARCHAR", "vendor, product, tax_rate, account or tracking_option (rejected: a catalogue row that "
                         "did not load)."),
    c("ledger_id", "VARCHAR", "The accounting system's id: the externalId Precoro stores; empty for a record "
                              "Precoro only has."),
    c("name", "VARCHAR", "The record's name (the accounting side's; Precoro's for precoro_only rows)."),
    c("action", "VARCHAR", ACTION_TEXT),
    c("precoro_resource", "VARCHAR", "Where it lives in Precoro: suppliers, items, taxes, itemcustomfields or "
                                     "documentcustomfields (options of a custom field)."),
    c("precoro_id", "VARCHAR", "Precoro's id of the twin (an option's id for custom field options), if any."),
    c("fields", "JSON", "What is sent: every owned field for a create, only the differing ones otherwise "
                        "(amounts as exact decimal text)."),
    c("reason", "VARCHAR", "Why: what differs, which records conflict, or why nothing can be sent."),
    c("source_file", "VARCHAR", "The catalogue file the record was read from."),
    c("source_line", "INTEGER", "Line of the file (row number for Parquet)."),
    c("planned_at", TIME, "When the plan was made."),
    c("batch_id", "VARCHAR", "The run (Dagster run id) that made the plan."),
))


def ensure_inputs(con: duckdb.DuckDBPyConnection) -> None:
    """The synced tables the plan reads, created empty if they were never synced."""
    tables.ensure_sync_state(con)
    for name in ("suppliers", "items"):
        tables.ensure_tables(con, BY_NAME[name])


def never_synced(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Which of suppliers and items were never read in full: an empty copy would hide Precoro's unlinked records
    from the name match, and the plan would create them a second time."""
    return {name for name in ("suppliers", "items") if tables.last_full_refresh(con, BY_NAME[name]) is None}


def synced_reference(con: duckdb.DuckDBPyConnection) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Suppliers and items as last synced: what the plan matches unlinked records against."""
    suppliers = con.execute("SELECT id, name, external_id, currency, currencies, tax_number, legal_address, enable, "
                            "status, update_date FROM precoro.suppliers").to_arrow_table().to_pylist()
    items = con.execute("SELECT id, name, external_id, sku, price FROM precoro.items").to_arrow_table().to_pylist()
    return suppliers, items


def write_plan(con: duckdb.DuckDBPyConnection, plan: CataloguePlan, rejected: list[dict[str, Any]],
               planned_at: datetime, batch_id: str) -> int:
    rows = [{**vars(row), "fields": json.dumps(row.fields, sort_keys=True), "planned_at": planned_at,
             "batch_id": batch_id} for row in plan.rows]
    rows += [{"kind": "rejected", "action": "rejected", "reason": r["reason"], "source_file": r["file"],
              "source_line": r["line"], "name": r["text"][:200], "planned_at": planned_at, "batch_id": batch_id}
             for r in rejected]
    name, description, columns = CATALOGUE_SYNC_PLAN
    return tables.replace_described(con, name, description, list(columns), rows)
