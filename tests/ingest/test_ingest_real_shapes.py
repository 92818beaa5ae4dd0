"""Precoro's real field names and shapes (as its own connector reads them) land in typed columns, none silently NULL."""

from __future__ import annotations

from test_ingest_sync import sync_everything

from precoro_assets.api.catalogue import ENTITIES
from precoro_assets.warehouse.rows import table_columns
from precoro_assets.warehouse.tables import ident, qualified

# Columns the simulated company leaves empty on purpose, with why (every other column must hold a value somewhere).
EMPTY_BY_DESIGN = {
    ("invoices", "custom_name"): "no simulated invoice has a custom title",
    ("taxes", "tax_amount"): "all simulated taxes are percentages",
    ("taxes", "create_date"): "Precoro may send taxes without dates",
    ("taxes", "update_date"): "Precoro may send taxes without dates",
}
# Links to the accounting system are empty until something links the record (the write-back tests fill them).
LINKS = ("external_id", "external_integration_log")


def test_every_typed_column_reads_a_field_the_records_carry(env):
    sync_everything(env)
    empty = []
    for entity in ENTITIES:
        for child in (None, *entity.children):
            table = entity.table(child)
            [(rows,)] = env.query(f"SELECT count(*) FROM {qualified(table)}")
            if not rows:  # e.g. simulated receipts carry no attachments; the equality tests cover row counts
                continue
            for column in table_columns(entity, child):
                [(filled,)] = env.query(f"SELECT count({ident(column.name)}) FROM {qualified(table)}")
                if not filled and column.name not in LINKS and (table, column.name) not in EMPTY_BY_DESIGN:
                    empty.append(f"{table}.{column.name} ({column.source})")
    assert not empty, "\n".join(empty)
