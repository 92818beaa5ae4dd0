"""How Precoro wants a request written: typed query filters (dates dd.mm.yyyy, datetimes in UTC, lists as
`key[]`), form bodies with bracket keys (`invoice[id]`), exact decimals (never floats), and the identity of a GET
for its identical-GET rule."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

Params = list[tuple[str, str]]

# Friendly filter names -> Precoro's query keys (other names are passed through verbatim).
FILTER_KEYS = {
    "created_from": "createDate[left_date]",
    "created_to": "createDate[right_date]",
    "approved_from": "approvalDate[left_date]",
    "approved_to": "approvalDate[right_date]",
    "modified_since": "modifiedSince",
    "external_id": "external_id",
}


def as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken to be UTC already; aware ones are converted."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_query_value(value: Any) -> str:
    """One query value as Precoro reads it: dates dd.mm.yyyy, datetimes UTC YYYY-MM-DDTHH:MM:SS."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, date):
        return value.strftime("%d.%m.%Y")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def format_form_value(value: Any) -> str:
    """One form value: ISO dates/datetimes, exact decimals; floats refused (money is never float)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        raise TypeError(f"refusing to send float {value!r}: pass a Decimal (or a string) for amounts")
    if isinstance(value, datetime):
        return as_utc(value).isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _flatten(prefix: str, value: Any, fmt: Any, out: Params) -> None:
    """Nested dicts become `a[b]`; lists of scalars `a[]` repeated; lists of dicts `a[0][b]`."""
    if isinstance(value, Mapping):
        for name, item in value.items():
            _flatten(f"{prefix}[{name}]" if prefix else str(name), item, fmt, out)
    elif isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
        if any(isinstance(item, Mapping | list | tuple) for item in items):
            for index, item in enumerate(items):
                _flatten(f"{prefix}[{index}]", item, fmt, out)
        else:
            out.extend((f"{prefix}[]", fmt(item)) for item in items)
    else:
        out.append((prefix, fmt(value)))


def encode_form(data: Mapping[str, Any]) -> Params:
    """Precoro's form encoding: `{"invoice": {"id": 9}}` -> `[("invoice[id]", "9")]`."""
    out: Params = []
    _flatten("", data, format_form_value, out)
    return out


def build_query(**filters: Any) -> Params:
    """Typed filters -> query pairs; None values are skipped.

    `created_from`/`created_to`/`approved_from`/`approved_to` take dates (dd.mm.yyyy),
    `modified_since` a datetime (sent as UTC), lists repeat as `key[]`; any other name is used
    verbatim (`status=[2, 4]`, `logicType=[1, 5]`, `enable=True`, `attachedFile=1`).
    """
    out: Params = []
    for name, value in filters.items():
        if value is None:
            continue
        key = FILTER_KEYS.get(name, name)
        if key.endswith("_date]"):
            if isinstance(value, datetime):
                value = as_utc(value).date()
            if not isinstance(value, date):
                raise TypeError(f"{name} must be a date, got {value!r}")
        elif key == "modifiedSince":
            if not isinstance(value, datetime):
                if not isinstance(value, date):
                    raise TypeError(f"{name} must be a datetime, got {value!r}")
                value = datetime(value.year, value.month, value.day, tzinfo=UTC)
        elif key == "external_id" and isinstance(value, str):
            value = [value]
        _flatten(key, value, format_query_value, out)
    return out


def normalized_url(path: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """path + sorted query: the identity of a GET for Precoro's identical-GET rule."""
    query = urlencode(sorted((str(k), str(v)) for k, v in params))
    return f"{path}?{query}" if query else path
