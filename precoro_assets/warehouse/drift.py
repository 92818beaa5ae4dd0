"""Schema drift: which fields the catalogue reads that Precoro stopped sending, and which it sends that nothing reads.

A renamed field would otherwise just become NULL (its value safe in `raw`, but nobody told). Counted from the
`raw` JSON of the rows a materialization covers, per table (nested collections are child tables with their own
`raw`), so the numbers say how widespread a change is: "dueDate absent in 180 of 180 invoices".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..api.catalogue import ChildTable, Column, Entity


@dataclass
class Drift:
    absent: list[str] = field(default_factory=list)  # "dueDate absent in 180 of 180 invoices"
    unread: list[str] = field(default_factory=list)  # "comments in 12 of 180 invoices (kept in raw)"


def _top_field(column: Column) -> str | None:
    if not column.source or column.source.startswith("^"):
        return None  # ours (raw, synced_at...) or read from the enclosing element
    return column.source.split(".", 1)[0]


def read_fields(entity: Entity, child: ChildTable | None) -> dict[str, tuple[str, ...]]:
    """Per column, the top-level fields of the table's records it reads (any one of them being present is enough)."""
    columns = child.columns if child else entity.columns
    fields = {}
    for column in columns:
        top = _top_field(column)
        if top is not None:
            fields[column.name] = (top, *column.also_reads)
    return fields


def drift(entity: Entity, counts: dict[str, tuple[int, dict[str, int]]]) -> Drift:
    """What the rows counted by `tables.field_counts` say about the catalogue's fields."""
    found = Drift()
    for child in (None, *entity.children):
        table = entity.table(child)
        total, present = counts.get(table, (0, {}))
        if not total:
            continue
        reads = read_fields(entity, child)
        for column, fields in reads.items():
            if not any(present.get(f) for f in fields) and (child is not None or fields[0] not in entity.may_lack):
                found.absent.append(f"{fields[0]} absent in {total} of {total} {table} (column {column} is empty)")
        known = {f for fields in reads.values() for f in fields}
        if child is None:
            known |= {name.split(".", 1)[0] for c in entity.children for name in c.collections} | set(entity.raw_only)
        else:  # a collection inside this table's elements is another child table (`items.*.dataItemCustomFields`)
            known |= {c.collection.split(".*.", 1)[1].split(".", 1)[0] for c in entity.children
                      if c.collection.startswith(child.collection + ".*.")}
        for name, n in sorted(present.items()):
            if name not in known:
                found.unread.append(f"{name} in {n} of {total} {table} (not read into a column; kept in raw)")
    return found
