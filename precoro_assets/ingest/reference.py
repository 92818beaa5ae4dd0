"""Reference data (suppliers, items, ...): `modifiedSince` from the stored high-water mark minus an overlap,
upserted by id, with a periodic full refresh (which also removes what Precoro no longer lists)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ..api.errors import PrecoroNotFound, QuotaExhausted
from ..catalogue import Entity
from ..warehouse import tables
from ..warehouse.rows import (
    RecordRejected,
    Rows,
    flatten,
    record_key,
)
from ..warehouse.sensitive import protect
from .seams import PrecoroReads, WarehouseAccess
from .summary import SyncSummary, update_date

logger = logging.getLogger(__name__)

REFERENCE_OVERLAP = timedelta(minutes=10)
FULL_REFRESH_EVERY = timedelta(days=7)


def sync_reference(client: PrecoroReads, warehouse: WarehouseAccess, entity: Entity, full_refresh: bool = False,
                   now: datetime | None = None, progress: Callable[[str], None] = logger.info,
                   keep_bank_details: bool = False) -> SyncSummary:
    """Bring one reference entity up to date: changes since the last sync, or everything. Bank details are masked
    unless `keep_bank_details` (PRECORO_KEEP_BANK_DETAILS, see warehouse/sensitive.py).

    For an entity whose list rows are partial (suppliers: payment terms and contacts come only with the detail),
    each new or changed record's detail is fetched, a request each; a record whose updateDate has not moved keeps
    its stored row. A quota stop while fetching details keeps what was fetched (nothing is removed)."""
    now = now or datetime.now(UTC)
    high_water, last_full, stored_dates = warehouse.read(
        lambda con: (tables.max_update_date(con, entity), tables.last_full_refresh(con, entity),
                     tables.stored_update_dates(con, entity) if entity.fetch_detail else {}))
    full = full_refresh or high_water is None or last_full is None or now - last_full > FULL_REFRESH_EVERY
    summary = SyncSummary(entity.name, full_refresh=full)
    filters: dict[str, Any] = {} if full or high_water is None else {"modified_since": high_water - REFERENCE_OVERLAP}
    rows = Rows()
    listed: set[str] = set()
    written: set[str] = set()  # keys whose row is (re)written
    to_fetch: list[str] = []
    for record in client.iter_rows(f"/{entity.path}", key=entity.key, **filters):
        record = protect(entity, record, keep_bank_details)
        try:
            key = record_key(entity, record)
        except RecordRejected as error:
            summary.reject(str(error), record)
            continue
        listed.add(key)
        if not entity.fetch_detail:
            flatten(entity, record, rows, now)
            written.add(key)
        elif key not in stored_dates or stored_dates[key] is None or update_date(record) != stored_dates[key]:
            to_fetch.append(key)
    summary.listed = len(listed)
    stopped: QuotaExhausted | None = None
    for key in to_fetch:
        try:
            detail, text = client.get_detail_with_text(entity.path, key)
        except PrecoroNotFound:
            summary.vanished.append(key)  # deleted between the list and its detail
            continue
        except QuotaExhausted as error:
            stopped = error
            break
        summary.details_fetched += 1
        protected = protect(entity, detail, keep_bank_details)
        flatten(entity, protected, rows, now, raw_text=text if protected is detail else None)
        written.add(key)
    listed -= set(summary.vanished)
    removing = full and stopped is None

    def write(con) -> dict[str, int]:
        stored = tables.stored_keys(con, entity)
        removed = stored - listed if removing else set()
        summary.new = len(written - stored)
        summary.changed = len(written & stored)
        summary.unchanged = len(listed - written)
        summary.removed = len(removed)
        tables.delete_records(con, entity, written | removed)
        result = tables.insert_rows(con, entity, rows)
        tables.replace_rejected(con, entity, None, None, summary.rejected)
        if removing:
            tables.set_last_full_refresh(con, entity, now)
        return result

    summary.add_written(warehouse.write(write))
    summary.problems += rows.problems
    kind = "full refresh" if full else f"changes since {filters['modified_since']:%Y-%m-%d %H:%M:%S}"
    details = f", {summary.details_fetched} details fetched" if entity.fetch_detail else ""
    progress(f"{entity.name}: {kind}: {summary.new} new, {summary.changed} updated, {summary.removed} removed"
             f"{details}")
    if stopped is not None:
        raise stopped
    return summary
