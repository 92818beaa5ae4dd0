"""Analyst views: the warehouse's tables joined and named so that a question needs no Precoro knowledge.

Each view has a description and column descriptions (COMMENT ON), like every table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import duckdb

from ..api.quota import DAILY_QUOTA
from ..catalogue import CREDIT_NOTE_LOGIC_TYPES, DOCUMENTS, ENTITIES, STATUS_NAMES
from .rows import has_lines_column
from .tables import (
    SCHEMA,
    Layout,
    ensure_sync_state,
    ensure_table,
    ensure_tables,
    one_row,
    qualified,
    sql_text,
)


@dataclass(frozen=True)
class View:
    name: str
    description: str
    sql: str
    columns: dict[str, str]  # column -> description


def _custom_field_union(kind: str) -> str:
    """One SELECT over every document type's custom field values (document or line level)."""
    parts = []
    for entity in DOCUMENTS:
        table = f"{entity.document_type}_{kind}custom_field_values"
        if not any(child.name == table for child in entity.children):
            continue
        line = "v.line_id" if kind == "line_" else "NULL::BIGINT"
        parts.append(f"SELECT '{entity.document_type}' AS document_type, v.{entity.parent_column} AS document_idn, "
                     f"{line} AS line_id, v.field_id, v.value FROM {qualified(table)} v")
    return "\nUNION ALL\n".join(parts)


def _resolved(kind: str, fields: str, options: str) -> str:
    """Custom field values with their field's name and, where the field's definition has options (a drop-down,
    whatever word the server uses for its type: "select", "dropdown", ...), the chosen option's name."""
    return f"""
SELECT v.document_type, v.document_idn, v.line_id, v.field_id, f.name AS field_name, f.type AS field_type,
       v.value, o.name AS option_name, o.code AS option_code,
       coalesce(o.name, v.value) AS display_value
FROM ({_custom_field_union(kind)}) v
LEFT JOIN {qualified(fields)} f ON f.id = v.field_id
LEFT JOIN {qualified(options)} o ON o.{fields[:-1]}_id = v.field_id AND o.option_id = TRY_CAST(v.value AS BIGINT)
"""


def _resolved_columns(document_types: str, line: str) -> dict[str, str]:
    return {
        "document_type": document_types, "document_idn": "The document's number.", "line_id": line,
        "field_id": "The custom field's id.", "field_name": "The custom field's label.",
        "field_type": "As Precoro names it, e.g. select or dropdown (drop-downs), text, number, date.", "value": "The stored value.",
        "option_name": "For drop-downs: the chosen option's label.", "option_code": "For drop-downs: its code.",
        "display_value": "What a person sees: the option's label, or the text.",
    }


CREDIT_NOTE_SQL = "(" + ", ".join(map(str, CREDIT_NOTE_LOGIC_TYPES)) + ")"

VIEWS: tuple[View, ...] = (
    View(
        "invoices_overview",
        "Invoices with supplier name, status name, amount, paid and outstanding (credit notes flagged); each "
        "invoice once: split-cost children, which allocate a base invoice's cost, are in invoice_allocations.",
        f"""
SELECT i.idn, i.id, i.invoice_number, i.supplier_id, coalesce(s.name, i.supplier_name) AS supplier_name,
       i.status, coalesce(st.name, i.status_name) AS status_name,
       i.logic_type IN {CREDIT_NOTE_SQL} AS is_credit_note, i.currency, i.sum AS amount,
       coalesce(i.sum_paid, 0)::DECIMAL(18,2) AS paid,
       o.outstanding, i.exchange_rate, i.sum_in_company_currency,
       -- in the company currency: the invoice's own conversion (sumInCompanyCurrency / sum), so amounts of every
       -- currency add up
       CASE WHEN i.sum <> 0 THEN round(coalesce(i.sum_paid, 0) * i.sum_in_company_currency / i.sum, 2) END
           ::DECIMAL(18,2) AS paid_in_company_currency,
       CASE WHEN i.sum <> 0 THEN round(o.outstanding * i.sum_in_company_currency / i.sum, 2) END
           ::DECIMAL(18,2) AS outstanding_in_company_currency,
       i.issue_date, i.due_date,
       i.due_date < now() AND i.status IN (2, 4) AS overdue,
       i.purchase_order_idn, (SELECT count(*) FROM {qualified('invoices')} c WHERE c.parent_idn = i.idn)
           AS allocations, i.integration_status, i.external_id, i.external_integration_log, i.create_date,
       i.update_date
FROM {qualified('invoices')} i
CROSS JOIN LATERAL (SELECT CASE WHEN i.logic_type IN {CREDIT_NOTE_SQL} OR i.status IN (3, 8, 11) THEN 0::DECIMAL(18,2)
                                ELSE greatest(i.sum - coalesce(i.sum_paid, 0), 0)::DECIMAL(18,2) END
                           AS outstanding) o
LEFT JOIN {qualified('suppliers')} s ON s.id = i.supplier_id
LEFT JOIN {qualified('status_names')} st ON st.status = i.status
WHERE i.parent_idn IS NULL
""",
        {
            "idn": "Invoice number in Precoro.", "id": "Precoro's numeric id.",
            "invoice_number": "The supplier's invoice number.", "supplier_id": "The supplier's id.",
            "supplier_name": "The supplier's current name (from precoro.suppliers).",
            "status": "Status code.", "status_name": "Status name.",
            "is_credit_note": "True for credit notes (logicType 1 or 5).", "currency": "Currency of the amounts.",
            "amount": "Invoice total including taxes.", "paid": "Amount paid so far in Precoro.",
            "outstanding": "Amount still to pay, in the invoice's currency (0 for credit notes and for denied, "
                           "canceled and closed invoices).",
            "exchange_rate": "Company-currency units per unit of the invoice's currency.",
            "sum_in_company_currency": "Total in the company currency (Precoro's sumInCompanyCurrency).",
            "paid_in_company_currency": "paid in the company currency (derived: paid x sumInCompanyCurrency / sum).",
            "outstanding_in_company_currency": "outstanding in the company currency (derived, as paid's): adds up "
                                               "across currencies.", "issue_date": "Invoice date.",
            "due_date": "Due date (derived: invoice date + the payment term's credit period days).",
            "overdue": "Approved or partly paid and past its due date.",
            "purchase_order_idn": "The purchase order it bills, if any.",
            "allocations": "How many split-cost children allocate this invoice's cost (see invoice_allocations).",
            "integration_status": "Precoro's integration status (8 = waiting for a disabled connector).",
            "external_id": "Accounting system id, if linked.",
            "external_integration_log": "Last accounting sync error, if any.",
            "create_date": "Created in Precoro.", "update_date": "Last modified in Precoro.",
        },
    ),
    View(
        "expenses_overview",
        "Expenses with supplier and status names, amount, paid (from expensePayments) and outstanding.",
        f"""
SELECT e.idn, e.expense_number, e.supplier_id, coalesce(s.name, e.supplier_name) AS supplier_name, e.status,
       coalesce(st.name, e.status_name) AS status_name, e.currency, e.sum AS amount,
       coalesce(e.sum_paid, 0)::DECIMAL(18,2) AS paid,
       CASE WHEN e.status IN (3, 8, 11) THEN 0::DECIMAL(18,2)
            ELSE greatest(e.sum - coalesce(e.sum_paid, 0), 0)::DECIMAL(18,2) END AS outstanding,
       e.sum_in_company_currency, e.issue_date, e.location_id, e.external_id, e.create_date
FROM {qualified('expenses')} e
LEFT JOIN {qualified('suppliers')} s ON s.id = e.supplier_id
LEFT JOIN {qualified('status_names')} st ON st.status = e.status
""",
        {
            "idn": "Expense number in Precoro.", "expense_number": "The expense's own number.",
            "supplier_id": "The supplier's id.", "supplier_name": "The supplier's current name.",
            "status": "Status code.", "status_name": "Status name.", "currency": "Currency of the amounts.",
            "amount": "Total including taxes.", "paid": "Amount paid so far in Precoro.",
            "outstanding": "Amount still to pay (0 for denied, canceled and closed expenses).",
            "sum_in_company_currency": "Total in the company currency.", "issue_date": "Expense date.",
            "location_id": "The location.", "external_id": "Accounting system id, if linked.",
            "create_date": "Created in Precoro.",
        },
    ),
    View(
        "invoice_allocations",
        "Split-cost allocations: each child invoice with the base invoice whose cost it allocates. The children add "
        "up to their base; count either the base (invoices_overview) or the allocations, never both.",
        f"""
SELECT c.parent_idn AS base_idn, c.idn AS allocation_idn, c.supplier_id,
       coalesce(s.name, c.supplier_name) AS supplier_name, c.invoice_number, c.currency, c.sum AS amount,
       c.sum_in_company_currency, c.location_id, c.status, c.create_date
FROM {qualified('invoices')} c
LEFT JOIN {qualified('suppliers')} s ON s.id = c.supplier_id
WHERE c.parent_idn IS NOT NULL
""",
        {
            "base_idn": "The base invoice (invoices_overview.idn) that is paid and exported.",
            "allocation_idn": "The child invoice's number in Precoro.", "supplier_id": "The supplier's id.",
            "supplier_name": "The supplier's current name.", "invoice_number": "The supplier's invoice number.",
            "currency": "Currency of the amount.", "amount": "The allocated part of the base invoice's total.",
            "sum_in_company_currency": "The allocated part in the company currency.",
            "location_id": "The location the cost is allocated to.", "status": "Status code.",
            "create_date": "When the allocation was created in Precoro.",
        },
    ),
    View(
        "document_custom_fields_resolved",
        "Document custom field values of every document type, with field names and drop-down option names.",
        _resolved("", "document_custom_fields", "document_custom_field_options"),
        _resolved_columns("purchase_requisition, purchase_order, receipt, invoice or expense.",
                          "Always empty (document-level fields)."),
    ),
    View(
        "line_custom_fields_resolved",
        "Item custom field values on document lines, with field names and drop-down option names.",
        _resolved("line_", "item_custom_fields", "item_custom_field_options"),
        _resolved_columns("purchase_requisition, purchase_order, invoice or expense.",
                          "The line (the *_items table's line_id)."),
    ),
    View(
        "items_overview",
        "Catalogue items with their supplier's name and their category: Precoro's `category`, or, as Precoro moved "
        "categories there, the item custom field named \"Category\" (its option's name).",
        f"""
SELECT it.id, it.name, it.sku, it.type_name, it.price, it.supplier_id, s.name AS supplier_name,
       coalesce(it.category_name, cat.category) AS category, it.hidden_in_catalog, it.external_id, it.update_date
FROM {qualified('items')} it
LEFT JOIN {qualified('suppliers')} s ON s.id = it.supplier_id
LEFT JOIN (SELECT v.item_id, any_value(coalesce(o.name, v.value)) AS category
           FROM {qualified('item_custom_field_values')} v
           JOIN {qualified('item_custom_fields')} f ON f.id = v.field_id AND lower(trim(f.name)) = 'category'
           LEFT JOIN {qualified('item_custom_field_options')} o
                  ON o.item_custom_field_id = v.field_id AND o.option_id = TRY_CAST(v.value AS BIGINT)
           GROUP BY v.item_id) cat ON cat.item_id = it.id
""",
        {
            "id": "Precoro's id of the item.", "name": "Item name.", "sku": "SKU.",
            "type_name": "Product or service, as Precoro names it.", "price": "Catalogue price.",
            "supplier_id": "The supplier's id.", "supplier_name": "The supplier's current name.",
            "category": "The item's category: Precoro's category where it still sends one, else the item custom "
                        "field \"Category\" (the option's name, or its text).",
            "hidden_in_catalog": "Hidden in the catalogue.", "external_id": "Accounting system id, if linked.",
            "update_date": "Last modified in Precoro.",
        },
    ),
    View(
        "purchase_order_lines",
        "Purchase order lines with the order's status, supplier and the catalogue item's name.",
        f"""
SELECT po.idn AS purchase_order_idn, po.status, coalesce(st.name, po.status_name) AS status_name,
       po.supplier_id, coalesce(s.name, po.supplier_name) AS supplier_name, po.currency,
       l.line_id, l.item_id, coalesce(it.name, l.name) AS item_name, l.sku, l.unit, l.quantity, l.price,
       l.net_sum, l.tax_sum, l.sum, po.create_date, po.approval_date
FROM {qualified('purchase_order_items')} l
JOIN {qualified('purchase_orders')} po ON po.idn = l.purchase_order_idn
LEFT JOIN {qualified('suppliers')} s ON s.id = po.supplier_id
LEFT JOIN {qualified('items')} it ON it.id = l.item_id
LEFT JOIN {qualified('status_names')} st ON st.status = po.status
""",
        {
            "purchase_order_idn": "The purchase order's number.", "status": "Order status code.",
            "status_name": "Order status name.", "supplier_id": "The supplier's id.",
            "supplier_name": "The supplier's current name.", "currency": "Currency of the amounts.",
            "line_id": "The line's id.", "item_id": "The catalogue item's id (empty for free text).",
            "item_name": "The catalogue item's name, else the line's text.", "sku": "SKU.", "unit": "Unit.",
            "quantity": "Quantity ordered.", "price": "Unit price.", "net_sum": "Line total before tax.",
            "tax_sum": "Tax.", "sum": "Line total with tax.", "create_date": "Order created.",
            "approval_date": "Order approved.",
        },
    ),
)


def _sync_progress() -> str:
    """Per document type whose lines come from a detail request: how many documents have them."""
    parts = [f"""SELECT '{entity.name}' AS asset, count(*) AS documents, count(lines_synced_at) AS with_lines,
       count(*) - count(lines_synced_at) AS awaiting_lines,
       max(partition_day) FILTER (WHERE lines_synced_at IS NULL) AS newest_day_awaiting,
       min(partition_day) FILTER (WHERE lines_synced_at IS NULL) AS oldest_day_awaiting,
       ceil((count(*) - count(lines_synced_at)) / {DAILY_QUOTA})::INTEGER AS quota_days_to_complete
FROM {qualified(entity.name)}""" for entity in DOCUMENTS if has_lines_column(entity)]
    return "\nUNION ALL\n".join(parts)


SYNC_PROGRESS = View(
    "sync_progress",
    "Per document type: documents stored, how many have their lines (detail read) and how many only their header "
    "(list row) so far, and the quota days the rest needs at one detail request each.",
    _sync_progress(),
    {"asset": "The document table (precoro.<asset>).", "documents": "Documents stored (headers included).",
     "with_lines": "Documents whose detail (lines, taxes, custom fields, ...) is stored.",
     "awaiting_lines": "Documents stored from their list row only: lines still to come.",
     "newest_day_awaiting": "The newest partition day with documents awaiting lines (fetched first).",
     "oldest_day_awaiting": "The oldest such day (fetched last).",
     "quota_days_to_complete": f"Days of Precoro's request quota ({DAILY_QUOTA:,} a day) the awaiting details "
                               "need, if every request went to them."},
)
OUTSTANDING_PER_SUPPLIER = View(
    "outstanding_per_supplier",
    "What the company owes each supplier, in the company currency (each invoice converted at its own rate, so "
    "every currency adds up): approved and partly paid invoices with something left to pay.",
    f"""
SELECT supplier_id, supplier_name,
       count(*) AS open_invoices,
       sum(outstanding_in_company_currency)::DECIMAL(18,2) AS outstanding_in_company_currency,
       coalesce(sum(outstanding_in_company_currency) FILTER (WHERE overdue), 0)::DECIMAL(18,2)
           AS overdue_in_company_currency,
       string_agg(DISTINCT currency, ', ' ORDER BY currency) AS currencies,
       min(issue_date) AS oldest_open_invoice_date
FROM {qualified('invoices_overview')}
WHERE status IN (2, 4) AND NOT is_credit_note AND outstanding > 0
GROUP BY supplier_id, supplier_name
""",
    {"supplier_id": "The supplier's id.", "supplier_name": "The supplier's current name.",
     "open_invoices": "Approved or partly paid invoices with an amount left to pay.",
     "outstanding_in_company_currency": "What is left to pay on them, in the company currency (derived: each "
                                        "invoice's outstanding x its sumInCompanyCurrency / sum).",
     "overdue_in_company_currency": "The part of it past its due date.",
     "currencies": "The invoices' own currencies.", "oldest_open_invoice_date": "The oldest open invoice's date."},
)

REVIEW_QUEUE = View(
    "review_queue",
    "Ledger payments a person must place: a matching rule found candidates below the auto threshold "
    "(needs_review), or several records fit equally (ambiguous). Nothing is written back for them until the "
    "ledger or Precoro says which invoice they pay (e.g. an allocation line in payment_allocations.csv).",
    f"""
SELECT r.ledger_id AS payment_id, r.supplier, r.invoice_number, r.amount, r.currency, r.ledger_date AS paid_on,
       r.class, r.rule, r.confidence, coalesce(r.candidates, r.invoice_idn) AS candidates,
       (SELECT string_agg(c.idn || ' ' || coalesce(c.invoice_number, '?') || ' open ' || c.outstanding || ' '
                          || c.currency || ' (' || c.supplier_name || ')', '; ' ORDER BY c.idn)
        FROM {qualified('invoices_overview')} c
        WHERE list_contains(string_split(coalesce(r.candidates, r.invoice_idn), ', '), c.idn)) AS candidate_invoices,
       r.reason, r.source_file, r.source_line, r.reconciled_at
FROM {qualified('reconciliation_ledger')} r
WHERE r.ledger_kind = 'payment' AND r.class IN ('needs_review', 'ambiguous')
""",
    {"payment_id": "The ledger payment's id.", "supplier": "Supplier name in the ledger.",
     "invoice_number": "Invoice number in the ledger, if any.", "amount": "Amount paid.",
     "currency": "Its currency.", "paid_on": "Payment date.", "class": "needs_review or ambiguous.",
     "rule": "The matching rule that found the candidates (reconciliation.yaml).",
     "confidence": "That rule's confidence (below the auto threshold, or 0 when several candidates fit).",
     "candidates": "The Precoro invoices (idns) it could pay (for a possible duplicate entry: the one it names).",
     "candidate_invoices": "Each candidate: idn, number, what is open and its currency, supplier.",
     "reason": "Why it was not placed.", "source_file": "The ledger file.", "source_line": "Its line.",
     "reconciled_at": "When the reconciliation ran."},
)
VIEWS = (*VIEWS, SYNC_PROGRESS, OUTSTANDING_PER_SUPPLIER, REVIEW_QUEUE)


def create_status_names(con: duckdb.DuckDBPyConnection) -> None:
    """A small lookup of Precoro's document status codes."""
    table = qualified("status_names")
    con.execute(f"CREATE OR REPLACE TABLE {table} (status INTEGER, name VARCHAR)")
    con.executemany(f"INSERT INTO {table} VALUES (?, ?)", list(STATUS_NAMES.items()))
    con.execute(f"COMMENT ON TABLE {table} IS {sql_text('Precoro document status codes and their names.')}")
    con.execute(f"COMMENT ON COLUMN {table}.status IS {sql_text('Status code as stored in document tables.')}")
    con.execute(f"COMMENT ON COLUMN {table}.name IS {sql_text('What Precoro calls the status.')}")


def create_column_descriptions(con: duckdb.DuckDBPyConnection) -> None:
    """`precoro.column_descriptions`: every column of every table and view, described in one place.

    Table columns carry COMMENT ON; view columns can't in DuckLake, so their descriptions are written into this
    view. A view, not a table: tables made after the views (the ledger's, the reconciliation's, the outbox
    copy) are described as soon as they exist, and a view's columns are listed once, with their description.
    """
    name = qualified("column_descriptions")
    described_views = [(view.name, column, description) for view in VIEWS
                       for column, description in view.columns.items()]
    described_views += [("column_descriptions", column, description) for column, description in (
        ("table_name", "The table or view."), ("column_name", "The column."), ("kind", "table or view."),
        ("description", "What the column holds."))]
    values = ",\n".join(f"({sql_text(v)}, {sql_text(c)}, 'view', {sql_text(d)})" for v, c, d in described_views)
    if one_row(con, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = "
               "'column_descriptions' AND database_name = current_database()", [SCHEMA])[0]:
        con.execute(f"DROP TABLE {name}")  # a table until December 2026
    con.execute(f"""CREATE OR REPLACE VIEW {name} AS
SELECT c.table_name, c.column_name, 'table' AS kind, c.comment AS description
FROM duckdb_columns() c JOIN duckdb_tables() t ON t.database_name = c.database_name
     AND t.schema_name = c.schema_name AND t.table_name = c.table_name
WHERE c.schema_name = {sql_text(SCHEMA)} AND c.database_name = current_database()
UNION ALL
SELECT * FROM (VALUES {values}) AS v(table_name, column_name, kind, description)""")
    con.execute(f"COMMENT ON VIEW {name} IS "
                f"{sql_text('What every column of every precoro table and view holds (kind: table or view).')}")


def missing_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The analyst views the warehouse does not hold yet."""
    present = {name for (name,) in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE schema_name = ? AND database_name = current_database()",
        [SCHEMA]).fetchall()}
    return [view.name for view in VIEWS if view.name not in present]


def create_views(con: duckdb.DuckDBPyConnection, flow_tables: Iterable[Layout]) -> list[str]:
    """Every table the views read, the status lookup, the views, then the column descriptions. flow_tables: the
    tables of other flows the views read, made if missing (the review queue reads reconciliation's ledger: the
    wiring passes it, see defs/ingest.py create_analyst_views)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    ensure_sync_state(con)
    for entity in ENTITIES:
        ensure_tables(con, entity)
    for name, description, columns in flow_tables:
        ensure_table(con, name, description, list(columns))
    create_status_names(con)
    for view in VIEWS:
        con.execute(f"CREATE OR REPLACE VIEW {qualified(view.name)} AS {view.sql}")
        con.execute(f"COMMENT ON VIEW {qualified(view.name)} IS {sql_text(view.description)}")
    create_column_descriptions(con)
    return [view.name for view in VIEWS]
