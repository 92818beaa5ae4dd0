"""Schema drift: which fields the catalogue reads that Precoro stopped sending, and which it sends that nothing reads.

A renamed field would otherwise just become NULL (its value safe in `raw`, but nobody told). Counted from the
`raw` JSON of the rows a materialization covers, per table (nested collections are child tables with their own
`raw`), so the numbers say how widespread a change is: "dueDate absent in 180 of 180 invoices".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from difflib import SequenceMatcher

from ..catalogue import ChildTable, Column, Entity


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


def drift(entity: Entity, counts: dict[str, tuple[int, dict[str, dict[str | None, int]]]]) -> Drift:
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
        for name in sorted(unread_fields(entity, child, present)):
            n = sum(present[name].values())
            found.unread.append(f"{name} in {n} of {total} {table} (not read into a column; kept in raw)")
    return found


def unread_fields(entity: Entity, child: ChildTable | None, present: dict) -> set[str]:
    """The fields of a table's records that no column reads (nor a child table, nor `raw_only` declares)."""
    known = {f for fields in read_fields(entity, child).values() for f in fields}
    if child is None:
        known |= {name.split(".", 1)[0] for c in entity.children for name in c.collections} | set(entity.raw_only)
    else:  # a collection inside this table's elements is another child table (`items.*.dataItemCustomFields`)
        known |= {c.collection.split(".*.", 1)[1].split(".", 1)[0] for c in entity.children
                  if c.collection.startswith(child.collection + ".*.")}
    return set(present) - known


# ---- data only in raw: a child table left empty, a column left NULL beside a near name ---------------------------

def _plain(name: str) -> str:
    return name.replace("_", "").lower()


def near(name: str, other: str) -> bool:
    """Whether two field names look like one field named two ways (`fileName`, `filename`, `approvedDate`)."""
    a, b = _plain(name), _plain(other)
    return min(len(a), len(b)) >= 4 and (a in b or b in a) or SequenceMatcher(None, a, b).ratio() >= 0.75


def only_in_raw(entity: Entity, counts: dict[str, tuple[int, dict[str, dict[str | None, int]]]],
                filled: dict[str, tuple[int, dict[str, int]]], not_stored: dict[str, tuple[int, int]]) -> list[str]:
    """What Precoro sent that the typed tables lost: each a sentence that says where it is and what to do.

    A child table with no row for a record whose raw has the collection (its elements are not read: an id under
    another name, say), and a typed column that is NULL in every row while the rows' raw carry a value in a field
    no column reads and whose name is near the column's."""
    found = []
    for table, (carrying, missing) in not_stored.items():
        if missing:
            found.append(f"precoro.{table} has no row for {missing} of the {carrying} records whose raw carries its "
                         "collection: its elements are not read (see the field problems of the materialization; "
                         "the catalogue must read their shape)")
    for child in (None, *entity.children):
        table = entity.table(child)
        rows, by_column = filled.get(table, (0, {}))
        total, present = counts.get(table, (0, {}))
        if not rows or not total:
            continue
        with_value = {name: sum(n for kind, n in kinds.items() if kind is not None)
                      for name, kinds in present.items()}
        unread = unread_fields(entity, child, present)
        for column, names in read_fields(entity, child).items():
            if by_column.get(column):
                continue
            candidates = [f for f in sorted(unread) if with_value.get(f)
                          and any(near(f, n) for n in (column, *names))]
            if candidates:
                found.append(f"precoro.{table}.{column} is NULL in all {rows} rows, while raw carries "
                             + ", ".join(f"{f} ({with_value[f]} of {total})" for f in candidates)
                             + f": a near name of {names[0]}; read it in the catalogue (read_either)")
    return found


# ---- schema memory: what changed since the fields were last seen -------------------------------------------------

@dataclass(frozen=True)
class Seen:
    """A field as the records of a table have carried it so far."""

    types: frozenset[str]  # JSON types of its values (nulls aside)
    always: bool  # in every record counted since it first came


Schema = dict[str, dict[str, Seen]]  # table -> field -> Seen


def schema_now(counts: dict[str, tuple[int, dict[str, dict[str | None, int]]]]) -> Schema:
    """The fields of the tables that have rows in this count (a table without rows says nothing)."""
    return {table: {name: Seen(frozenset(k for k in kinds if k is not None), sum(kinds.values()) == total)
                    for name, kinds in present.items()}
            for table, (total, present) in counts.items() if total}


def schema_changes(now: Schema, before: Schema) -> tuple[list[str], Schema]:
    """The changes against what was seen before (a field appearing, disappearing, taking another type), and the
    schema to remember. A table seen for the first time has no changes: its fields are the steady state. A field
    disappears when it was in every record before and is in none now (an optional field's absence is no change)."""
    changes: list[str] = []
    merged: Schema = {}
    for table, fields in now.items():
        known = before.get(table)
        if known is None:
            merged[table] = dict(fields)
            continue
        merged[table] = {}
        for name, seen in fields.items():
            old = known.get(name)
            if old is None:
                changes.append(f"{table}: {name} appeared ({', '.join(sorted(seen.types)) or 'null'})")
                merged[table][name] = seen
                continue
            added = seen.types - old.types
            if added and old.types:
                changes.append(f"{table}: {name} is now {', '.join(sorted(seen.types))} "
                               f"(was {', '.join(sorted(old.types))})")
            merged[table][name] = Seen(old.types | seen.types, old.always and seen.always)
        for name, old in known.items():
            if name not in fields:
                if old.always:
                    changes.append(f"{table}: {name} disappeared (it was in every record before, is in none now)")
                merged[table][name] = Seen(old.types, False)
    return changes, {table: fields for table, fields in merged.items() if fields != before.get(table)}


def steady_state(schema: Schema) -> str:
    """The remembered fields, one table a line: what the check compares with, shown as metadata."""
    return "\n".join(f"{table}: " + ", ".join(f"{name} ({'/'.join(sorted(seen.types)) or 'null'}"
                                               f"{'' if seen.always else ', optional'})"
                                               for name, seen in sorted(fields.items()))
                     for table, fields in sorted(schema.items()))
