"""Reading Precoro's answers: list envelopes (`{"data": [...]}`) and their pagination, a detail's object and
its text, JSON with exact decimals, a 429's limiter and retry time, the text of an error body."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from precoro_assets.api.encoding import as_utc
from precoro_assets.api.errors import PrecoroServerError
from precoro_assets.api.quota import QuotaLimits


def expect_list(value: Any) -> list[Any]:
    """A collection from Precoro as a list: accepts `{"data": [...]}` (nested envelopes too), a bare list, or
    None; anything else is a TypeError (a response not shaped as expected must not pass for an empty page).
    Lenient reading of a stored record's fields: warehouse.rows.list_or_empty."""
    while isinstance(value, Mapping) and "data" in value:
        value = value["data"]
    if value is None:
        return []
    if isinstance(value, list):
        return value
    raise TypeError(f"expected a list or {{'data': [...]}}, got {type(value).__name__}")


def parse_rate_limit(body: Any, now: datetime, limits: QuotaLimits | None = None,
                     retry_after_header: str | None = None) -> tuple[str, datetime]:
    """Read a 429: (RateLimit-Type, when to retry). Precoro puts both in the JSON body.

    `RateLimit-Retry-After` is "YYYY-MM-DD HH:MM:SS UTC", whole seconds: we add one second so a
    truncated time can't send us back a moment too early (a time shown to the millisecond,
    "... HH:MM:SS.mmm UTC", gets one millisecond). Without it we fall back to a
    `Retry-After` header, then to the length of the window the type names.
    """
    limits = limits or QuotaLimits()
    body = body if isinstance(body, Mapping) else {}
    limit_type = str(body.get("RateLimit-Type") or body.get("error") or "unknown limiter")
    text = body.get("RateLimit-Retry-After")
    if isinstance(text, str) and text.strip():
        cleaned = text.strip().removesuffix("UTC").strip().replace("T", " ")
        try:
            moment = datetime.fromisoformat(cleaned)
        except ValueError:
            moment = None
        if moment is not None:
            fraction = cleaned.rpartition(".")[2] if "." in cleaned else ""
            unit = timedelta(seconds=10 ** -len(fraction)) if fraction.isdigit() else timedelta(seconds=1)
            return limit_type, as_utc(moment) + unit
    if retry_after_header:
        try:
            return limit_type, now + timedelta(seconds=float(retry_after_header))
        except ValueError:
            pass
    return limit_type, now + timedelta(seconds=limits.window_after_429(limit_type))


def detail_path(resource: str, key: str | int) -> str:
    return f"/{resource.strip('/')}/{quote(str(key), safe='')}"


def parse_json(text: str) -> Any:
    """A JSON body as Precoro sent it, numbers as Decimal (money stays exact); an empty body is None."""
    return json.loads(text, parse_float=Decimal) if text.strip() else None


def detail_from_text(resource: str, key: str | int, text: str) -> tuple[dict[str, Any], str | None]:
    """A detail GET's answer from its text (fetched elsewhere, e.g. by a worker process): see `detail_from_body`."""
    try:
        body = parse_json(text)
    except json.JSONDecodeError:
        raise PrecoroServerError(f"Precoro sent unreadable JSON for GET {detail_path(resource, key)}",
                                 method="GET", path=detail_path(resource, key)) from None
    return detail_from_body(resource, key, body, text)


def detail_from_body(resource: str, key: str | int, body: Any, text: str | None) -> tuple[dict[str, Any], str | None]:
    """A detail GET's answer as (the object, its text): a wrapped `{"data": {...}}` is tolerated (its text is
    then None: it is not the object's), anything but an object is Precoro's fault."""
    if isinstance(body, Mapping) and set(body) <= {"data", "meta"} and isinstance(body.get("data"), Mapping):
        body, text = body["data"], None
    if not isinstance(body, dict):
        raise PrecoroServerError(f"Precoro sent no object for {resource}/{key}", path=f"/{resource}/{key}")
    return body, text


def pagination_of(body: Any) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        meta = body.get("meta")
        if isinstance(meta, Mapping) and isinstance(meta.get("pagination"), Mapping):
            return meta["pagination"]
    return {}


def as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def has_next_page(pagination: Mapping[str, Any], page: int, row_count: int, per_page: int) -> bool:
    """Newer answers say `has_next_page`; older ones only `current_page`/`total_pages`."""
    if "has_next_page" in pagination:
        return bool(pagination["has_next_page"])
    total_pages = as_int(pagination.get("total_pages"))
    if total_pages is not None:
        current = as_int(pagination.get("current_page")) or page
        return current < total_pages
    return row_count >= per_page  # no metadata at all: a full page may have a successor


def error_text(body: Any, text: str) -> str:
    if isinstance(body, Mapping):
        for name in ("error", "message", "detail"):
            if isinstance(body.get(name), str):
                return body[name]
    return text[:300]
