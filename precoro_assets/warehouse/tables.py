"""The catalogue's tables in the warehouse: create and evolve them, read what is stored, write rows.

Every function takes an open DuckDB connection whose default catalog is the warehouse; the caller
owns the transaction (see `store.Warehouse.transaction`). Identifiers come from our catalogue only and
are quoted; every value from Precoro is passed as a parameter or through Arrow, never formatted into SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime
from itertools import islice

import duckdb
import pyarrow as pa

from ..catalogue import ChildTable, Column, Entity
from .drift import Schema, Seen
from .rows import LINES_COLUMN, Rows, has_lines_column, table_columns, to_arrow

SCHEMA = "precoro"


def ident(name: str) -> str:
    """A quoted SQL identifier (names come from the catalogue, never from Precoro)."""
    return '"' + name.replace('"', '""') + '"'


def qualified(table: str) -> str:
    return f"{SCHEMA}.{ident(table)}"


def one_row(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> tuple:
    """The row of a query that always returns one (an aggregate): DuckDB types `fetchone()` as optional."""
    row = con.execute(sql, params).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {sql}")
    return row


def sql_text(text: str) -> str:
    """A SQL string literal, for COMMENT ON (which takes no parameters); our own text only."""
    return "'" + text.replace("'", "''") + "'"


SYNC_STATE = "sync_state"

# Records Precoro sent that can't be stored in their table (no key, no createDate): kept here, never dropped.
REJECTED = "rejected_records"
REJECTED_DESCRIPTION = ("Records Precoro sent that could not be stored in their table (e.g. no key), with the "
                        "reason and the record as sent. Rows of a day are replaced when the day is synced again.")
REJECTED_COLUMNS = [
    Column("entity", "VARCHAR", "", "The table the record was meant for."),
    Column("partition_day", "DATE", "", "The partition day being synced (empty for reference data)."),
    Column("reason", "VARCHAR", "", "Why it was kept out."),
    Column("raw", "JSON", "", "The record exactly as Precoro sent it."),
    Column("seen_at", "TIMESTAMPTZ", "", "When it was seen."),
]


SYNC_STATE_DESCRIPTION = "Bookkeeping of the sync: when each reference table was last fully refreshed."
SYNC_STATE_COLUMNS = [
    Column("entity", "VARCHAR", "", "The reference table."),
    Column("last_full_refresh", "TIMESTAMPTZ", "", "When every record was last read from Precoro (removals are "
           "caught then)."),
]


def ensure_sync_state(con: duckdb.DuckDBPyConnection) -> None:
    ensure_table(con, SYNC_STATE, SYNC_STATE_DESCRIPTION, SYNC_STATE_COLUMNS)


def last_full_refresh(con: duckdb.DuckDBPyConnection, entity: Entity) -> datetime | None:
    row = one_row(con, f"SELECT max(last_full_refresh) FROM {qualified(SYNC_STATE)} WHERE entity = ?",
                  [entity.name])
    return row[0] if row else None


def set_last_full_refresh(con: duckdb.DuckDBPyConnection, entity: Entity, moment: datetime) -> None:
    con.execute(f"DELETE FROM {qualified(SYNC_STATE)} WHERE entity = ?", [entity.name])
    con.execute(f"INSERT INTO {qualified(SYNC_STATE)} VALUES (?, ?)", [entity.name, moment])


def _layouts(entity: Entity) -> list[tuple[str, ChildTable | None]]:
    return [(entity.name, None)] + [(child.name, child) for child in entity.children]


def ensure_table(con: duckdb.DuckDBPyConnection, table: str, description: str, columns: list[Column]) -> None:
    """Create `precoro.<table>`, add columns it lacks, and (re)write descriptions that changed."""
    _ensure_described(con, [(table, description, columns)])


def ensure_tables(con: duckdb.DuckDBPyConnection, entity: Entity) -> set[str]:
    """The entity's table and child tables, as the catalogue describes them today; returns the tables created
    now (they hold nothing yet, which spares a first sync reading them)."""
    wanted = [(table, child.description if child else entity.description, table_columns(entity, child))
              for table, child in _layouts(entity)]
    return _ensure_described(con, [*wanted, (REJECTED, REJECTED_DESCRIPTION, REJECTED_COLUMNS)])


def _ensure_described(con: duckdb.DuckDBPyConnection, wanted: list[tuple[str, str, list[Column]]]) -> set[str]:
    """Make each (table, description, columns) exist as described, changing only what differs; returns the
    tables it created.

    Every sync calls this, so a table already as described must cost one catalog read and no write: each
    statement that changes the catalog (a COMMENT ON as much as an ALTER) adds a DuckLake snapshot and its
    rows to the catalog for good, which would grow with every run and slow every later query down."""
    stored, types = _stored_descriptions(con, [table for table, _, _ in wanted])
    created: set[str] = set()
    for table, description, columns in wanted:
        comments = stored.get(table)
        if comments is None:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            body = ", ".join(f"{ident(c.name)} {c.type}" for c in columns)
            con.execute(f"CREATE TABLE IF NOT EXISTS {qualified(table)} ({body})")
            comments = {}
            created.add(table)
        else:
            for column in columns:
                if column.name not in comments:
                    con.execute(f"ALTER TABLE {qualified(table)} ADD COLUMN {ident(column.name)} {column.type}")
                    if column is LINES_COLUMN:  # rows written before headers came first were all whole
                        con.execute(f"UPDATE {qualified(table)} SET lines_synced_at = synced_at")
                elif _retyped(types[table][column.name], column.type):
                    _retype(con, table, column, types[table][column.name])
                    comments.pop(column.name)  # a column made anew has no comment yet
        if comments.get(None) != description:
            con.execute(f"COMMENT ON TABLE {qualified(table)} IS {sql_text(description)}")
        for column in columns:
            if comments.get(column.name) != column.description:
                con.execute(f"COMMENT ON COLUMN {qualified(table)}.{ident(column.name)} IS "
                            f"{sql_text(column.description)}")
    return created


def _stored_descriptions(con: duckdb.DuckDBPyConnection, names: list[str]
                         ) -> tuple[dict[str, dict[str | None, str | None]], dict[str, dict[str, str]]]:
    """For each of these tables that exists: its comment (under None) and each column's comment (by name); and
    each column's type."""
    stored: dict[str, dict[str | None, str | None]] = {}
    types: dict[str, dict[str, str]] = {}
    for table, column, comment, type_ in con.execute(
            "SELECT table_name, column_name, comment, data_type FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = ? AND list_contains(?, table_name)",
            [SCHEMA, names]).fetchall():
        stored.setdefault(table, {})[column] = comment
        types.setdefault(table, {})[column] = type_
    for table, comment in _table_comments(con, [name for name in names if name in stored]).items():
        stored[table][None] = comment
    return stored, types


def _decimal_digits(type_: str) -> tuple[int, int] | None:
    """(digits before the point, digits after) of a DECIMAL(p,s) type; None for other types."""
    if not type_.startswith("DECIMAL("):
        return None
    precision, scale = (int(part) for part in type_[len("DECIMAL("):-1].split(","))
    return precision - scale, scale


def _retyped(stored: str, wanted: str) -> bool:
    """Whether the catalogue now types a stored column otherwise: a number column (DECIMAL, INTEGER, BIGINT) that
    was stored as another type. (Other types are not compared: DuckDB names some differently, TIMESTAMPTZ is
    "TIMESTAMP WITH TIME ZONE".)"""
    return (wanted.startswith("DECIMAL(") or wanted in ("INTEGER", "BIGINT")) and stored != wanted


def _retype(con: duckdb.DuckDBPyConnection, table: str, column: Column, stored: str) -> None:
    """Give a stored column the catalogue's new type without losing or rounding a value.

    A wider DECIMAL (unit prices: DECIMAL(18,2) -> DECIMAL(38,10)) keeps every stored value: the column is altered.
    Anything else (a payment term's paymentType was stored as text, termsDueDateAfterInvoicing as a boolean, where
    Precoro sends numbers) is read again from each row's `raw`, which holds the record as Precoro sent it."""
    old, new = _decimal_digits(stored), _decimal_digits(column.type)
    if old is not None and new is not None and new[0] >= old[0] and new[1] >= old[1]:
        con.execute(f"ALTER TABLE {qualified(table)} ALTER COLUMN {ident(column.name)} SET DATA TYPE {column.type}")
        return
    con.execute(f"ALTER TABLE {qualified(table)} DROP COLUMN {ident(column.name)}")
    con.execute(f"ALTER TABLE {qualified(table)} ADD COLUMN {ident(column.name)} {column.type}")
    if column.derive is None and column.source and not column.source.startswith("^"):
        con.execute(f"UPDATE {qualified(table)} SET {ident(column.name)} = "  # noqa: S608 - identifiers only
                    f"TRY_CAST(json_extract_string(raw, ?) AS {column.type})", ["$." + column.source])


# The tables' comments as DuckLake's catalog holds them (tables ducklake_table, ducklake_schema and ducklake_tag
# of the DuckLake specification): duckdb_tables() would give them too, but works out every table's size on the
# way (about 70 ms with the whole catalogue), and this runs at the start of every sync.
_TABLE_COMMENTS = """
SELECT t.table_name, g.value FROM {meta}.ducklake_table t
JOIN {meta}.ducklake_schema s ON s.schema_id = t.schema_id AND s.end_snapshot IS NULL AND s.schema_name = ?
LEFT JOIN {meta}.ducklake_tag g ON g.object_id = t.table_id AND g.key = 'comment' AND g.end_snapshot IS NULL
WHERE t.end_snapshot IS NULL AND list_contains(?, t.table_name)
"""


def _table_comments(con: duckdb.DuckDBPyConnection, names: list[str]) -> dict[str, str | None]:
    if not names:
        return {}
    meta = ident("__ducklake_metadata_" + one_row(con, "SELECT current_database()")[0])
    try:
        rows = con.execute(_TABLE_COMMENTS.replace("{meta}", meta), [SCHEMA, names]).fetchall()
    except duckdb.Error:  # not a DuckLake catalog, or one laid out differently: ask DuckDB, slower but general
        rows = con.execute("SELECT table_name, comment FROM duckdb_tables() WHERE database_name = current_database() "
                           "AND schema_name = ? AND list_contains(?, table_name)", [SCHEMA, names]).fetchall()
    return dict(rows)


def lines_progress(con: duckdb.DuckDBPyConnection, entity: Entity) -> tuple[int, int]:
    """Documents stored, and how many of them have their lines (their detail was read)."""
    total, with_lines = one_row(con, f"SELECT count(*), count(lines_synced_at) FROM {qualified(entity.name)}")
    return total, with_lines


# The version a stored document is held at: none for a header whose lines are still to come.
HELD_VERSION = "CASE WHEN lines_synced_at IS NOT NULL THEN update_date END"


def stored_versions_between(con: duckdb.DuckDBPyConnection, entity: Entity, start: date,
                            end: date) -> dict[date, dict[str, datetime | None]]:
    """Per partition day, key -> update_date of the stored documents (None for a header whose lines are still
    to come: it is not held at any version, so its detail is fetched)."""
    def versions(headers_apart: bool) -> list[tuple]:
        return con.execute(
            f"SELECT partition_day, CAST({ident(entity.key)} AS VARCHAR), "
            f"{HELD_VERSION if headers_apart else 'update_date'} FROM {qualified(entity.name)} "
            "WHERE partition_day BETWEEN ? AND ?", [start, end]).fetchall()

    try:
        rows = versions(has_lines_column(entity))
    except duckdb.BinderException:  # a table from before headers came first (a sync adds the column): all whole
        rows = versions(False)
    by_day: dict[date, dict[str, datetime | None]] = {}
    for day, key, updated in rows:
        by_day.setdefault(day, {})[str(key)] = updated
    return by_day


def max_update_date(con: duckdb.DuckDBPyConnection, entity: Entity) -> datetime | None:
    return one_row(con, f"SELECT max(update_date) FROM {qualified(entity.name)}")[0]


def stored_update_dates(con: duckdb.DuckDBPyConnection, entity: Entity) -> dict[str, datetime | None]:
    """Each stored record's updateDate, by key: what decides whether a listed record changed."""
    rows = con.execute(f"SELECT CAST({ident(entity.key)} AS VARCHAR), update_date FROM {qualified(entity.name)}")
    return {str(key): moment for key, moment in rows.fetchall()}


def stored_keys(con: duckdb.DuckDBPyConnection, entity: Entity) -> set[str]:
    rows = con.execute(f"SELECT CAST({ident(entity.key)} AS VARCHAR) FROM {qualified(entity.name)}").fetchall()
    return {str(r[0]) for r in rows}


def _key_list(entity: Entity, keys: set[str]) -> list:
    return sorted(keys) if entity.key == "idn" else sorted(int(k) for k in keys)


def keys_present(con: duckdb.DuckDBPyConnection, entity: Entity, keys: set[str]) -> set[str]:
    """Which of these keys the entity's table holds (on any day)."""
    if not keys:
        return set()
    key_type = "VARCHAR" if entity.key == "idn" else "BIGINT"
    rows = con.execute(f"SELECT CAST({ident(entity.key)} AS VARCHAR) FROM {qualified(entity.name)} "
                       f"WHERE {ident(entity.key)} IN (SELECT unnest(?::{key_type}[]))",
                       [_key_list(entity, keys)]).fetchall()
    return {str(r[0]) for r in rows}


def stored_days(con: duckdb.DuckDBPyConnection, entity: Entity, keys: set[str]) -> dict[str, date]:
    """key -> partition day of these stored documents."""
    return _column_by_key(con, entity, keys, "partition_day")


def create_dates(con: duckdb.DuckDBPyConnection, entity: Entity, keys: set[str]) -> dict[str, datetime | None]:
    """key -> create_date of these stored documents."""
    return _column_by_key(con, entity, keys, "create_date")


def _column_by_key(con: duckdb.DuckDBPyConnection, entity: Entity, keys: set[str], column: str) -> dict:
    if not keys:
        return {}
    key_type = "VARCHAR" if entity.key == "idn" else "BIGINT"
    rows = con.execute(f"SELECT CAST({ident(entity.key)} AS VARCHAR), {ident(column)} FROM {qualified(entity.name)} "
                       f"WHERE {ident(entity.key)} IN (SELECT unnest(?::{key_type}[]))",
                       [_key_list(entity, keys)]).fetchall()
    return {str(key): value for key, value in rows}


def delete_records(con: duckdb.DuckDBPyConnection, entity: Entity, keys: set[str]) -> None:
    """Remove records (and their child rows) by key.

    A stored header (lines still to come) has no child rows, so only its own row goes: a DuckLake delete reads
    every file of each table it deletes from, and a first sync replacing its headers with their details batch by
    batch would otherwise read again, per batch, all the child rows it had written so far."""
    if not keys:
        return
    values = _key_list(entity, keys)
    key_type = "VARCHAR" if entity.key == "idn" else "BIGINT"
    if entity.children and has_lines_column(entity):  # the sync made the lines column ready before any write
        values = [key for (key,) in con.execute(
            f"SELECT {ident(entity.key)} FROM {qualified(entity.name)} WHERE {ident(LINES_COLUMN.name)} IS NOT NULL "
            f"AND {ident(entity.key)} IN (SELECT unnest(?::{key_type}[]))", [values]).fetchall()]
    con.execute(f"DELETE FROM {qualified(entity.name)} WHERE {ident(entity.key)} IN "
                f"(SELECT unnest(?::{key_type}[]))", [_key_list(entity, keys)])
    if not values:
        return
    for child in entity.children:
        con.execute(f"DELETE FROM {qualified(child.name)} WHERE {ident(entity.parent_column)} IN "
                    f"(SELECT unnest(?::{key_type}[]))", [values])


def insert_rows(con: duckdb.DuckDBPyConnection, entity: Entity, rows: Rows) -> dict[str, int]:
    """Append the rows of every table of the entity; returns rows written per table."""
    written = {}
    for table, child in _layouts(entity):
        table_rows = rows.tables.get(table, [])
        written[table] = len(table_rows)
        if not table_rows:
            continue
        con.register("incoming_rows", to_arrow(table_columns(entity, child), table_rows))
        try:
            con.execute(f"INSERT INTO {qualified(table)} BY NAME SELECT * FROM incoming_rows")
        finally:
            con.unregister("incoming_rows")
    return written


def count_rows(con: duckdb.DuckDBPyConnection, table: str, day: date | None = None) -> int:
    if day is None:
        return one_row(con, f"SELECT count(*) FROM {qualified(table)}")[0]
    return one_row(con, f"SELECT count(*) FROM {qualified(table)} WHERE partition_day = ?", [day])[0]


def _day_filter(start: date | None, end: date | None) -> tuple[str, list]:
    if start is None or end is None:
        return "", []
    return " WHERE partition_day BETWEEN ? AND ?", [start, end]


def count_rows_between(con: duckdb.DuckDBPyConnection, table: str, start: date | None, end: date | None) -> int:
    where, params = _day_filter(start, end)
    return one_row(con, f"SELECT count(*) FROM {qualified(table)}{where}", params)[0]


def count_per_day(con: duckdb.DuckDBPyConnection, entity: Entity, start: date | None,
                  end: date | None) -> dict[str, int]:
    where, params = _day_filter(start, end)
    rows = con.execute(f"SELECT partition_day, count(*) FROM {qualified(entity.name)}{where} GROUP BY 1",
                       params).fetchall()
    return {day.isoformat(): count for day, count in rows}


def duplicate_keys(con: duckdb.DuckDBPyConnection, entity: Entity) -> list[tuple]:
    """Keys that appear more than once, in the entity's table or within a parent's child rows (up to 20 per
    table): (table, key values..., count). One query for every table of the entity: each query on the
    warehouse has a fixed cost (DuckLake reads its catalog), and these checks run after every materialization."""
    selects = [f"(SELECT 0 AS t, [CAST({ident(entity.key)} AS VARCHAR)] AS k, count(*) AS n "
               f"FROM {qualified(entity.name)} GROUP BY 1, 2 HAVING count(*) > 1 LIMIT 20)"]
    for index, child in enumerate(entity.children, start=1):
        keys = ", ".join(f"CAST({ident(k)} AS VARCHAR)" for k in (entity.parent_column, *child.key))
        selects.append(f"(SELECT {int(index)} AS t, [{keys}] AS k, count(*) AS n FROM {qualified(child.name)} "
                       "GROUP BY 1, 2 HAVING count(*) > 1 LIMIT 20)")
    names = [entity.name] + [child.name for child in entity.children]
    rows = con.execute(" UNION ALL ".join(selects) + " ORDER BY t").fetchall()
    return [("precoro." + names[table], *key, count) for table, key, count in rows]


# JSON types as the drift check names them: an integer and a decimal are both numbers (a price of 100 and one of
# 100.5 are not a change of type), a null is no type at all.
JSON_TYPES = {"UBIGINT": "number", "BIGINT": "number", "DOUBLE": "number", "HUGEINT": "number", "VARCHAR": "string",
              "BOOLEAN": "boolean", "OBJECT": "object", "ARRAY": "array"}


def field_counts(con: duckdb.DuckDBPyConnection, entity: Entity, start: date | None, end: date | None
                 ) -> dict[str, tuple[int, dict[str, dict[str | None, int]]]]:
    """Per table of the entity: (rows of the days covered, per top-level field of `raw` how many rows carry it
    with each JSON type; None = null). One query for every table (see duplicate_keys), reading each table once:
    every row contributes a NULL key (JSON objects have no such key) that counts the rows; what the schema drift
    check and the raw check read."""
    where, params = _day_filter(start if entity.partitioned else None, end)
    names = [entity.name] + [child.name for child in entity.children]
    selects = []
    for index, name in enumerate(names):
        objects = (f"SELECT CASE WHEN json_type(raw) = 'OBJECT' THEN CAST(raw AS MAP(VARCHAR, JSON)) END AS m "
                   f"FROM {qualified(name)}{where}")
        selects.append(f"(SELECT {int(index)} AS t, k, json_type(v) AS y, count(*) AS n FROM (SELECT "
                       "unnest(list_prepend(NULL, coalesce(map_keys(m), []))) AS k, "
                       f"unnest(list_prepend(NULL::JSON, coalesce(map_values(m), []))) AS v FROM ({objects})) "
                       "GROUP BY k, y)")
    counts: dict[str, tuple[int, dict[str, dict[str | None, int]]]] = {name: (0, {}) for name in names}
    for table, key, json_type, n in con.execute(" UNION ALL ".join(selects), params * len(selects)).fetchall():
        total, keys = counts[names[table]]
        if key is None:
            counts[names[table]] = (n, keys)
        else:
            kind = None if json_type in (None, "NULL") else JSON_TYPES.get(json_type, json_type.lower())
            by_type = keys.setdefault(key, {})
            by_type[kind] = by_type.get(kind, 0) + n
    return counts


def filled_counts(con: duckdb.DuckDBPyConnection, entity: Entity, start: date | None, end: date | None
                  ) -> dict[str, tuple[int, dict[str, int]]]:
    """Per table of the entity: (rows of the days covered, non-NULL values per catalogue column). One query."""
    where, params = _day_filter(start if entity.partitioned else None, end)
    layouts = _layouts(entity)
    selects = []
    for index, (table, child) in enumerate(layouts):
        columns = child.columns if child else entity.columns
        counts = ", ".join(f"count({ident(c.name)})" for c in columns)
        selects.append(f"SELECT {int(index)} AS t, count(*) AS n, [{counts}]::BIGINT[] AS filled "
                       f"FROM {qualified(table)}{where}")
    found = {}
    for index, n, filled in con.execute(" UNION ALL ".join(selects), params * len(selects)).fetchall():
        table, child = layouts[index]
        columns = child.columns if child else entity.columns
        found[table] = (n, {c.name: f for c, f in zip(columns, filled, strict=True)})
    return found


def _array_length(part: str) -> str:
    """Elements of a JSON collection already extracted from raw: a bare list, or wrapped ({"data": [...]})."""
    return f"coalesce(json_array_length({part}), 0) + coalesce(json_array_length({part}, '$.data'), 0)"


def collections_not_stored(con: duckdb.DuckDBPyConnection, entity: Entity, start: date | None, end: date | None
                           ) -> dict[str, tuple[int, int]]:
    """Per child table: (records whose raw carries its collection, how many of them have no row in it). A record
    whose lines are still to come (a header) is not counted. One query for every child table, which parses each
    record's raw once: the collections are extracted together (`json_extract` with a list of paths), where a
    `json_array_length(raw, path)` per collection parsed the whole document again for each."""
    where, params = _day_filter(start if entity.partitioned else None, end)
    pending = " AND lines_synced_at IS NOT NULL" if has_lines_column(entity) else ""
    parent = f"p.{ident(entity.parent_column)}"
    paths: list[str] = []  # the parent's collections, in the order of `parts`
    selects, names, outer_params = [], [], []
    for child in entity.children:
        outer_path, _, inner_path = child.collection.partition(".*.")
        child_link = f"c.{ident(entity.parent_column)} = p.{ident(entity.key)}"
        if not inner_path:
            source = "parents"
            # under any name Precoro sends it (items' custom field values: dataProductCustomFields or dataItemCustomFields)
            indexes = []
            for name in child.collections:
                paths.append("$." + name)
                indexes.append(len(paths))
            carrying = " + ".join(_array_length(f"p.parts[{int(index)}]") for index in indexes)
            key = f"p.{ident(entity.key)}"
        else:  # a collection in each element of another child table (each line's custom field values)
            outer = next((o for o in entity.children if o.collection == outer_path), None)
            inner_link = next((col.name for col in child.columns if col.source == "^id"), None)
            outer_link = next((col.name for col in outer.columns if col.source == "id"), None) if outer else None
            if outer is None or inner_link is None or outer_link is None:
                continue
            source = (f"(SELECT {ident(entity.parent_column)}, {ident(outer_link)}, json_extract(raw, "
                      f"{sql_text('$.' + inner_path)}) AS part FROM {qualified(outer.name)}{where})")
            outer_params += params
            carrying = _array_length("p.part")
            child_link = f"c.{ident(entity.parent_column)} = {parent} AND c.{ident(inner_link)} = p.{ident(outer_link)}"
            key = parent
        names.append(child.name)
        selects.append(
            f"SELECT {len(names) - 1} AS t, count(DISTINCT {key}) AS carrying, count(DISTINCT {key}) FILTER (WHERE "
            f"NOT EXISTS (SELECT 1 FROM {qualified(child.name)} c WHERE {child_link})) AS missing "
            f"FROM {source} p WHERE {carrying} > 0")
    if not selects:
        return {}
    extracted = ", ".join(sql_text(path) for path in paths)  # not empty: a nested collection's outer one is here
    statement = (f"WITH parents AS MATERIALIZED (SELECT {ident(entity.key)}, json_extract(raw, [{extracted}]) AS parts "
                 f"FROM {qualified(entity.name)}{where or ' WHERE true'}{pending}) " + " UNION ALL ".join(selects))
    rows = con.execute(statement, params + outer_params).fetchall()
    return {names[index]: (carrying, missing) for index, carrying, missing in rows}


SEEN_FIELDS = "schema_fields"
SEEN_FIELDS_DESCRIPTION = ("The fields Precoro's records have carried, per table: what the schema_drift check compares "
                           "each materialization with (it warns on a change, once).")
SEEN_FIELDS_COLUMNS = [
    Column("table_name", "VARCHAR", "", "The warehouse table (precoro.<table_name>) whose raw carries the field."),
    Column("field", "VARCHAR", "", "A top-level field of the records' raw JSON."),
    Column("json_types", "VARCHAR", "", "The JSON types its values came as (comma-separated; nulls aside)."),
    Column("always", "BOOLEAN", "", "Whether every record counted since it first came carried it."),
    Column("recorded_at", "TIMESTAMPTZ", "", "When this was last recorded (it changed then)."),
]


def seen_fields(con: duckdb.DuckDBPyConnection, table_names: list[str]) -> Schema:
    """What was remembered of these tables' fields. Empty before the first materialization (no table yet)."""
    try:
        rows = con.execute(f"SELECT table_name, field, json_types, always FROM {qualified(SEEN_FIELDS)} "
                           "WHERE list_contains(?, table_name)", [table_names]).fetchall()
    except duckdb.CatalogException:
        return {}
    found: Schema = {}
    for table, name, types, always in rows:
        found.setdefault(table, {})[name] = Seen(frozenset(t for t in (types or "").split(",") if t), bool(always))
    return found


def remember_fields(con: duckdb.DuckDBPyConnection, fields: Schema, moment: datetime) -> None:
    """Replace what is remembered of these tables' fields."""
    ensure_table(con, SEEN_FIELDS, SEEN_FIELDS_DESCRIPTION, SEEN_FIELDS_COLUMNS)
    con.execute(f"DELETE FROM {qualified(SEEN_FIELDS)} WHERE list_contains(?, table_name)", [list(fields)])
    rows = [{"table_name": table, "field": name, "json_types": ",".join(sorted(seen.types)), "always": seen.always,
             "recorded_at": moment} for table, by_name in fields.items() for name, seen in by_name.items()]
    if rows:
        con.register("seen_rows", to_arrow(SEEN_FIELDS_COLUMNS, rows))
        try:
            con.execute(f"INSERT INTO {qualified(SEEN_FIELDS)} BY NAME SELECT * FROM seen_rows")
        finally:
            con.unregister("seen_rows")


def orphan_children(con: duckdb.DuckDBPyConnection, entity: Entity) -> dict[str, int]:
    """Per child table, rows whose parent is not in the entity's table (one query for all of them)."""
    if not entity.children:
        return {}
    counts = ", ".join(
        f"(SELECT count(*) FROM {qualified(child.name)} c ANTI JOIN {qualified(entity.name)} p "
        f"ON c.{ident(entity.parent_column)} = p.{ident(entity.key)})" for child in entity.children)
    row = one_row(con, f"SELECT {counts}")
    return {child.name: row[index] for index, child in enumerate(entity.children)}


def totals_not_matching_lines(con: duckdb.DuckDBPyConnection, entity: Entity, start: date | None,
                              end: date | None) -> list[tuple]:
    """Documents whose totals differ from their lines' by more than a cent per line: (key, which total, the
    document's, the lines').

    Like is compared with like. Where lines carry netSum and taxSum: the total before tax (netSum) with the lines'
    netSum, and the total including tax (sum) with the lines' netSum + taxSum. A line's own `sum` is read only
    where a line lacks them: the contract does not say whether it includes tax (a server built from the contract
    sent it net, and every taxed document looked wrong). Lines with a sum only (receipts): sum with sum."""
    lines = next(child for child in entity.children if child.name == f"{entity.document_type}_items")
    where, params = _day_filter(start, end)
    where = where.replace("partition_day", "d.partition_day")
    line_columns = {column.name for column in lines.columns}
    if {"net_sum", "tax_sum"} <= line_columns and any(column.name == "net_sum" for column in entity.columns):
        totals = [("net_sum", "d.net_sum", "sum(l.net_sum)"),
                  ("sum", "d.sum", "sum(coalesce(l.net_sum + l.tax_sum, l.sum))")]
    else:
        totals = [("sum", "d.sum", "sum(l.sum)")]
    key = f"d.{ident(entity.key)}"
    selects = []
    for name, document, summed in totals:
        selects.append(f"SELECT {key} AS k, '{name}' AS total, {document} AS document, {summed} AS lines, "
                       f"count(*) AS line_count FROM {qualified(entity.name)} d JOIN {qualified(lines.name)} l "
                       f"ON l.{ident(entity.parent_column)} = {key}{where} GROUP BY {key}, {document}")
    return con.execute(
        "SELECT k, total, document, lines FROM (" + " UNION ALL ".join(selects) + ") "
        "WHERE abs(document - lines) > 0.01 * line_count ORDER BY k, total LIMIT 20", params * len(selects),
    ).fetchall()


def preview(con: duckdb.DuckDBPyConnection, table: str, start: date | None, end: date | None,
            limit: int = 5) -> list[dict]:
    """A few rows without the raw JSON, newest first, for the materialization's preview."""
    where, params = _day_filter(start, end)
    cursor = con.execute(f"SELECT * EXCLUDE (raw) FROM {qualified(table)}{where} ORDER BY synced_at DESC LIMIT {int(limit)}",
                         params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# ---- described tables outside the catalogue (ledger, reconciliation, write-back outbox) ------------------------

# A table a flow declares for analysts (reconciliation's, the master-data sync's): (name, description, columns).
Layout = tuple[str, str, tuple[Column, ...]]


def c(name: str, type_: str, description: str) -> Column:
    """A column of such a table: its name, DuckDB type and what it holds (no record path: the flow fills it)."""
    return Column(name, type_, "", description)


def replace_described(con: duckdb.DuckDBPyConnection, table: str, description: str, columns: list[Column],
                      rows: list[dict]) -> int:
    """Make `precoro.<table>` hold exactly `rows`: create or evolve it, describe it, replace its rows.

    For tables that are rebuilt whole on every run (the ledger snapshot, reconciliation results, the outbox
    mirror). The caller owns the transaction, so readers see the old rows or the new ones, never a mix.
    """
    ensure_table(con, table, description, columns)
    con.execute(f"DELETE FROM {qualified(table)}")
    if not rows:
        return 0
    con.register("described_rows", to_arrow(columns, rows))
    try:
        con.execute(f"INSERT INTO {qualified(table)} BY NAME SELECT * FROM described_rows")
    finally:
        con.unregister("described_rows")
    return len(rows)


def replace_described_arrow(con: duckdb.DuckDBPyConnection, table: str, description: str, columns: list[Column],
                            parts: Iterable[pa.Table]) -> int:
    """As replace_described, with the rows in Arrow tables inserted one at a time as `parts` yields them (a large
    table is never whole in memory: see LedgerRows and write_reconciliation)."""
    ensure_table(con, table, description, columns)
    con.execute(f"DELETE FROM {qualified(table)}")
    stored = con.table(qualified(table)).columns  # the table's order (an evolved table has added columns last)
    count = 0
    for part in parts:
        # BY NAME, as replace_described: each stored column from the part's column of that name, else NULL. Not
        # con.register(): a registered table stays referenced until the transaction ends, even once unregistered
        # (DuckDB keeps dropped catalog entries until then), so a million rows written part by part would all be
        # held; a relation is let go as soon as its insert is done.
        names = set(part.column_names)
        con.from_arrow(part).project(", ".join(ident(name) if name in names else f"NULL AS {ident(name)}"
                                               for name in stored)).insert_into(qualified(table))
        count += part.num_rows
    return count


def in_arrow_chunks(columns: list[Column], rows: Iterable[dict], size: int = 50_000) -> Iterator[pa.Table]:
    """Rows as Arrow tables of `size` rows each, built as `rows` yields them."""
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield to_arrow(columns, chunk)


def replace_rejected(con: duckdb.DuckDBPyConnection, entity: Entity, start: date | None, end: date | None,
                     rejected: list[dict]) -> None:
    """Record what a sync of `entity` (for start..end, or all of it) had to keep out, replacing the previous list."""
    if start is None or end is None:
        con.execute(f"DELETE FROM {qualified(REJECTED)} WHERE entity = ?", [entity.name])
    else:
        con.execute(f"DELETE FROM {qualified(REJECTED)} WHERE entity = ? AND (partition_day BETWEEN ? AND ? "
                    "OR partition_day IS NULL)", [entity.name, start, end])
    add_rejected(con, entity, rejected)


def add_rejected(con: duckdb.DuckDBPyConnection, entity: Entity, rejected: list[dict]) -> None:
    """Record records kept out by a sync that did not list everything (nothing earlier is known to be fixed)."""
    if rejected:
        con.register("rejected_rows", to_arrow(REJECTED_COLUMNS, [{"entity": entity.name, **r} for r in rejected]))
        try:
            con.execute(f"INSERT INTO {qualified(REJECTED)} BY NAME SELECT * FROM rejected_rows")
        finally:
            con.unregister("rejected_rows")


def count_rejected(con: duckdb.DuckDBPyConnection, entity: Entity) -> int:
    return one_row(con, f"SELECT count(*) FROM {qualified(REJECTED)} WHERE entity = ?", [entity.name])[0]
