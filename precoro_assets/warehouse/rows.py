"""Turns Precoro records into typed rows for the warehouse tables the catalogue describes.

Tolerant by design: a missing, renamed or mistyped field becomes NULL in its typed column and is
reported as a problem, while the record's full JSON is kept in `raw`, so nothing Precoro sent is lost.
A record without its key cannot be stored in its table; it is rejected with the reason (and kept in
`precoro.rejected_records` by the caller).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Context, Decimal, InvalidOperation
from functools import cache

import orjson
import pyarrow as pa

from ..catalogue import ChildTable, Column, Entity

# Columns every table gets besides the catalogue's.
RAW_COLUMN = Column("raw", "JSON", "", "The record exactly as Precoro sent it (JSON), so no field is ever lost.")
PARTITION_COLUMN = Column("partition_day", "DATE", "",
                          "Day of the document's createDate as Precoro writes it (in its own offset, not "
                          "converted to UTC): the Dagster partition it belongs to.")
SYNCED_COLUMN = Column("synced_at", "TIMESTAMPTZ", "", "When this row was written to the warehouse.")
LINES_COLUMN = Column("lines_synced_at", "TIMESTAMPTZ", "",
                      "When the document's detail (lines, taxes, custom fields, ...) was read; empty while only its "
                      "header (the list row) is stored and its lines are still to come (see precoro.sync_progress).")


def has_lines_column(entity: Entity) -> bool:
    """Documents whose detail is fetched apart: their header may be stored before their lines."""
    return entity.partitioned and entity.fetch_detail


class RecordRejected(ValueError):
    """A record that cannot be stored in its table (e.g. it has no key)."""


@dataclass
class Problem:
    """A field that could not be read as its column's type (the value stays in `raw`)."""

    table: str
    key: str
    column: str
    message: str

    def __str__(self) -> str:
        return f"{self.table} {self.key}: {self.column}: {self.message}"


@dataclass
class Rows:
    """Rows for one entity's tables, accumulated record by record."""

    tables: dict[str, list[dict]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def add(self, table: str, row: dict) -> None:
        self.tables.setdefault(table, []).append(row)

    def absorb(self, other: Rows) -> None:
        """Take another set's rows and problems (a day's, into its batch)."""
        for table, rows in other.tables.items():
            self.tables.setdefault(table, []).extend(rows)
        self.problems += other.problems


def list_or_empty(value: object) -> list:
    """A record's nested collection as a list: accepts `{"data": [...]}`, a bare list, or nothing; anything else
    counts as empty (a field of an odd shape must not stop a sync). Strict: api.responses.expect_list."""
    if value is None:
        return []
    if isinstance(value, dict):
        value = value.get("data", [])
    return list(value) if isinstance(value, list) else []


def value_at(record: dict, path: str) -> object:
    """The value at a dotted path (`supplier.id`); None when any step is missing."""
    node: object = record
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def parse_time(value: object) -> datetime:
    """Precoro's ISO 8601 datetimes (with or without an offset; naive = UTC) as aware UTC datetimes."""
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _whole_number(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"expected a whole number, got {value!r}") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueError(f"expected a whole number, got {value!r}")
    return int(number)


def _decimal(type_: str) -> Callable[[object], Decimal]:
    precision, scale = (int(part) for part in type_[type_.index("(") + 1:].rstrip(")").split(","))
    exponent = Decimal(1).scaleb(-scale)
    # quantize needs every digit of the result in the context's precision (28 by default: less than DECIMAL(38,..))
    context = Context(prec=precision + 2)

    def to_decimal(value: object) -> Decimal:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            number = value if isinstance(value, Decimal) else Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f"expected a number, got {value!r}") from None
        if not number.is_finite():
            raise ValueError(f"expected a finite number, got {value!r}")
        if number.adjusted() >= precision - scale:
            raise ValueError(f"{value!r} has more digits before the point than {type_} holds")
        scaled = number.quantize(exponent, context=context)
        if scaled != number:
            raise ValueError(f"{value!r} has more decimals than {type_} keeps")
        return scaled

    return to_decimal


def _timestamp(value: object) -> datetime:
    try:
        return parse_time(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected an ISO 8601 datetime, got {value!r}") from None


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true"):
        return True
    if str(value).lower() in ("0", "false"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


@cache
def _converter(type_: str) -> Callable[[object], object]:
    """The function that reads a JSON value as a column type, chosen once per type (flattening runs per field)."""
    if type_ in ("BIGINT", "INTEGER"):
        return _whole_number
    if type_.startswith("DECIMAL"):
        return _decimal(type_)
    if type_ == "TIMESTAMPTZ":
        return _timestamp
    if type_ == "BOOLEAN":
        return _boolean
    if type_ == "VARCHAR":
        return _text
    raise ValueError(f"no conversion to {type_}")


def convert(value: object, type_: str) -> object:
    """A JSON value as the Python value of a DuckDB column type; raises ValueError when it can't be."""
    if value is None or value == "" and type_ != "VARCHAR":
        return None
    return _converter(type_)(value)


def to_json(record: object) -> str:
    """JSON text of a record parsed with Decimal numbers.

    Decimals are written as JSON numbers through float: for amounts of up to 15 significant digits the
    shortest float repr is the same decimal text, so `raw` keeps the value (typed columns stay DECIMAL).
    orjson writes it (every child row's `raw` is serialized again: the json module took a fifth of flattening);
    what orjson refuses (an integer beyond 64 bits, a key that is not text) goes through the json module.
    """
    try:
        return orjson.dumps(record, default=_json_value, option=_ORJSON_AS_JSON_MODULE).decode()
    except orjson.JSONEncodeError:
        return json.dumps(record, ensure_ascii=False, default=_json_value, separators=(",", ":"))


# Dates, dataclasses and subclasses of str/int/dict/list reach _json_value as they do with the json module.
_ORJSON_AS_JSON_MODULE = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


@cache
def _reader(source: str) -> tuple[bool, tuple[str, ...]]:
    """A column's source as (read from the outer element, path steps), parsed once."""
    return source.startswith("^"), tuple(source.lstrip("^").split("."))


def _typed(columns: Iterable[Column], source: dict, table: str, key: str, problems: list[Problem],
           outer: dict | None = None) -> dict:
    row: dict = {}
    for column in columns:
        if column.derive is not None:
            try:
                node = column.derive(source)
            except ValueError as error:
                row[column.name] = None
                problems.append(Problem(table, key, column.name, str(error)))
                continue
        else:
            from_outer, steps = _reader(column.source)
            node = (outer or {}) if from_outer else source
            for step in steps:
                if isinstance(node, list):  # a reference sent as a list (`purchaseOrder`): its first element
                    node = node[0] if node else None
                node = node.get(step) if isinstance(node, dict) else None
        if node is None or node == "" and column.type != "VARCHAR":
            row[column.name] = None
            continue
        try:
            row[column.name] = _converter(column.type)(node)
        except ValueError as error:
            row[column.name] = None
            problems.append(Problem(table, key, column.name, str(error)))
    return row


def _child_sources(record: dict, child: ChildTable) -> Iterator[tuple[dict, dict | None]]:
    """(element, outer element) pairs of a collection path such as `items` or `items.*.dataItemCustomFields`,
    under the first of the collection's names (`ChildTable.collections`) that the record carries."""
    collection = child.collection if not child.also_from else next(
        (name for name in child.collections if value_at(record, name) is not None), child.collection)
    if ".*." in collection:
        outer_path, inner_path = collection.split(".*.", 1)
        for outer in list_or_empty(value_at(record, outer_path)):
            if isinstance(outer, dict):
                for inner in list_or_empty(value_at(outer, inner_path)):
                    if isinstance(inner, dict):
                        yield inner, outer
    else:
        for element in list_or_empty(value_at(record, collection)):
            if isinstance(element, dict):
                yield element, None


def record_key(entity: Entity, record: dict) -> str:
    value = record.get(entity.key) if isinstance(record, dict) else None
    if value is None or value == "":
        raise RecordRejected(f"the record has no {entity.key!r}, so it cannot be stored in {entity.name}")
    try:
        return str(convert(value, "VARCHAR" if entity.key == "idn" else "BIGINT"))
    except ValueError as error:
        raise RecordRejected(f"its {entity.key} is unusable: {error}") from None


def flatten(entity: Entity, record: dict, rows: Rows, synced_at: datetime,
            partition_day: date | None = None, raw_text: str | None = None, header_only: bool = False) -> None:
    """Add the rows one record contributes to its entity's table and child tables.

    `raw_text` is the record's JSON as Precoro sent it, when the caller has it (kept as `raw` unchanged).
    `header_only`: the record is a list row, stored until the detail comes: its own row only, lines pending."""
    key = record_key(entity, record)
    extras: dict[str, object] = {"synced_at": synced_at}
    if entity.partitioned:
        extras["partition_day"] = partition_day
    parent = _typed(entity.columns, record, entity.name, key, rows.problems)
    parent.update(raw=raw_text if raw_text is not None else to_json(record), **extras)
    if has_lines_column(entity):
        parent["lines_synced_at"] = None if header_only else synced_at
    rows.add(entity.name, parent)
    if header_only:
        return
    parent_key = {entity.parent_column: parent[entity.key]}
    for child in entity.children:
        seen: set[tuple] = set()
        for element, outer in _child_sources(record, child):
            row = {**parent_key, **_typed(child.columns, element, child.name, key, rows.problems, outer)}
            identity = tuple(row[k] for k in child.key)
            if identity in seen or any(v is None for v in identity):
                rows.problems.append(Problem(child.name, key, ",".join(child.key),
                                             f"duplicate or missing key {identity}; row kept out"))
                continue
            seen.add(identity)
            row.update(raw=to_json(element), **extras)
            rows.add(child.name, row)


# ---- table layouts ---------------------------------------------------------------------------------

def table_columns(entity: Entity, child: ChildTable | None = None) -> list[Column]:
    """Every column of a table, in order: the parent key for child tables, the catalogue's, then ours."""
    columns: list[Column] = []
    if child is not None:
        columns.append(Column(entity.parent_column, "VARCHAR" if entity.key == "idn" else "BIGINT", "",
                              f"The {entity.document_type.replace('_', ' ')} this row belongs to "
                              f"(precoro.{entity.name}.{entity.key})."))
        columns += child.columns
    else:
        columns += entity.columns
    columns.append(RAW_COLUMN)
    if entity.partitioned:
        columns.append(PARTITION_COLUMN)
    columns.append(SYNCED_COLUMN)
    if child is None and has_lines_column(entity):
        columns.append(LINES_COLUMN)
    return columns


def arrow_type(type_: str) -> pa.DataType:
    if type_ == "BIGINT":
        return pa.int64()
    if type_ == "INTEGER":
        return pa.int32()
    if type_ in ("VARCHAR", "JSON"):
        return pa.string()
    if type_ == "BOOLEAN":
        return pa.bool_()
    if type_ == "DATE":
        return pa.date32()
    if type_ == "TIMESTAMPTZ":
        return pa.timestamp("us", tz="UTC")
    if type_.startswith("DECIMAL"):
        precision, scale = type_[len("DECIMAL("):-1].split(",")
        return pa.decimal128(int(precision), int(scale))
    raise ValueError(f"no Arrow type for {type_}")


def to_arrow(columns: list[Column], rows: list[dict]) -> pa.Table:
    """Rows as an Arrow table with the exact column types (DECIMAL stays exact), built column by column (a third
    less time than from row dicts)."""
    return pa.table({c.name: pa.array([row.get(c.name) for row in rows], arrow_type(c.type)) for c in columns})
