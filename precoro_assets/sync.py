"""How the warehouse is kept equal to Precoro while spending as few requests as possible.

Documents (one or more partition days at a time):
  1. list the days' headers in one walk (`createDate[left_date]..[right_date]`, 200 per page);
  2. compare each header's `updateDate` with the stored row: only new or changed documents need a
     detail GET (one request each), and details already fetched by a failed run come from staging;
  3. documents stored for a day but no longer listed there were deleted in Precoro: they are removed;
  4. each day is written in one transaction (delete the changed/removed keys, insert the new rows),
     so a crash leaves the previous contents of the day or the new ones, never a mix.
Reference data: `modifiedSince` from the stored high-water mark minus an overlap, upserted by id,
with a periodic full refresh (which also removes what Precoro no longer lists).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from .api.catalogue import Entity
from .warehouse import tables
from .warehouse.rows import Problem, RecordRejected, Rows, flatten, parse_time, record_key, to_json
from .warehouse.staging import DetailStaging

logger = logging.getLogger(__name__)

REFERENCE_OVERLAP = timedelta(minutes=10)
FULL_REFRESH_EVERY = timedelta(days=7)


@dataclass
class SyncSummary:
    """What one sync did, for logs and Dagster metadata."""

    entity: str
    listed: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    details_fetched: int = 0
    details_from_staging: int = 0
    full_refresh: bool | None = None
    listed_per_day: dict[str, int] = field(default_factory=dict)
    rows_written: dict[str, int] = field(default_factory=dict)
    rejected: list[dict] = field(default_factory=list)  # partition_day, reason, raw, seen_at
    problems: list[Problem] = field(default_factory=list)

    def reject(self, reason: str, record: object, day: date | None = None) -> None:
        """Keep a record out of its table, with the reason; it goes to precoro.rejected_records."""
        self.rejected.append({"partition_day": day, "reason": reason, "raw": to_json(record),
                              "seen_at": datetime.now(UTC)})

    def add_written(self, written: dict[str, int]) -> None:
        for table, count in written.items():
            self.rows_written[table] = self.rows_written.get(table, 0) + count


def partition_day(record: dict) -> date:
    """The day Precoro files a document under: the date of its createDate as Precoro writes it.

    The offset is kept as given (not converted to UTC) because Precoro's createDate filter works in
    the company's days, and those are the days its timestamps are written in.
    """
    text = str(record["createDate"]).strip().replace("Z", "+00:00")
    return datetime.fromisoformat(text).date()


def _update_date(row: dict) -> datetime | None:
    try:
        return parse_time(row["updateDate"]) if row.get("updateDate") else None
    except (TypeError, ValueError):
        return None


def sync_documents(client, warehouse, staging: DetailStaging, entity: Entity, start: date, end: date,
                   progress: Callable[[str], None] = logger.info) -> SyncSummary:
    """Make the warehouse hold exactly Precoro's documents created from `start` to `end` (inclusive)."""
    summary = SyncSummary(entity.name)
    listed: dict[date, dict[str, dict]] = {}
    # A list row we can't place (no key, no usable createDate) may be a stored document: the list is then not
    # proof that anything was deleted, so nothing is removed in this run.
    list_complete = True
    for row in client.iter_rows(f"/{entity.path}", key=entity.key, created_from=start, created_to=end):
        try:
            key = record_key(entity, row)
            day = partition_day(row)
        except (RecordRejected, KeyError, TypeError, ValueError) as error:
            summary.reject(f"unusable list row: {error}", row)
            list_complete = False
            continue
        if not start <= day <= end:
            summary.reject(f"{entity.key} {key}: createDate {row.get('createDate')} is outside {start}..{end} "
                           "although Precoro listed it there", row)
            list_complete = False
            continue
        # Keep only what the comparison needs, unless the list row is all we will store.
        listed.setdefault(day, {})[key] = row if not entity.fetch_detail else {"updateDate": row.get("updateDate")}
    summary.listed = sum(len(rows) for rows in listed.values())
    progress(f"{entity.name}: listed {summary.listed} documents created {start}..{end}")

    stored_by_day = warehouse.read(lambda con: tables.stored_versions_between(con, entity, start, end))
    batch = _Batch()
    day = start
    while day <= end:
        _plan_day(client, staging, entity, day, listed.get(day, {}), stored_by_day.get(day, {}), summary, batch,
                  may_remove=list_complete)
        if batch.documents >= WRITE_BATCH_DOCUMENTS:
            batch.flush(warehouse, staging, entity, summary, progress)
            batch = _Batch()
        day += timedelta(days=1)
    batch.flush(warehouse, staging, entity, summary, progress)
    if summary.rejected or warehouse.read(lambda con: tables.count_rejected(con, entity)):
        warehouse.write(lambda con: tables.replace_rejected(con, entity, start, end, summary.rejected),
                        what=f"record rejected {entity.name}")
    return summary


# Days are written in batches of about this many documents: each batch is one transaction (a crash leaves
# every day of it as it was, or all new), and fewer, larger commits keep DuckLake's files few.
WRITE_BATCH_DOCUMENTS = 1000


@dataclass
class _Batch:
    """Documents fetched for some days, waiting to be written together."""

    rows: Rows = field(default_factory=Rows)
    delete: set[str] = field(default_factory=set)
    fetched: list[str] = field(default_factory=list)
    days: list[date] = field(default_factory=list)
    documents: int = 0

    def flush(self, warehouse, staging: DetailStaging, entity: Entity, summary: SyncSummary,
              progress: Callable[[str], None]) -> None:
        if not self.delete:
            return

        def write(con) -> dict[str, int]:
            tables.delete_records(con, entity, self.delete)
            return tables.insert_rows(con, entity, self.rows)

        summary.add_written(warehouse.write(write, what=f"write {entity.name}"))
        summary.problems += self.rows.problems
        if entity.fetch_detail:
            staging.forget(entity.name, self.fetched)
        progress(f"{entity.name}: wrote {self.documents} documents of {len(self.days)} day(s) "
                 f"{min(self.days)}..{max(self.days)}")


def _plan_day(client, staging: DetailStaging, entity: Entity, day: date, listed: dict[str, dict],
              stored: dict[str, datetime | None], summary: SyncSummary, batch: _Batch,
              may_remove: bool = True) -> None:
    """Compare one day's list with the warehouse; fetch what is new or changed into the batch.

    Stored documents missing from the list are removed only when `may_remove` (every list row was usable)."""
    summary.listed_per_day[day.isoformat()] = len(listed)
    new = [k for k in listed if k not in stored]
    changed = [k for k in listed if k in stored and (_update_date(listed[k]) is None
                                                       or _update_date(listed[k]) != stored[k])]
    removed = set(stored) - set(listed) if may_remove else set()
    summary.new += len(new)
    summary.changed += len(changed)
    summary.unchanged += len(listed) - len(new) - len(changed)
    summary.removed += len(removed)
    to_write = new + changed
    if not to_write and not removed:
        return
    synced_at = datetime.now(UTC)
    for key in to_write:
        record = _detail(client, staging, entity, key, listed[key], summary) if entity.fetch_detail else listed[key]
        try:
            flatten(entity, record, batch.rows, synced_at, day)
        except RecordRejected as error:
            summary.reject(f"{entity.key} {key}: {error}", record, day)
    batch.delete |= set(to_write) | removed
    batch.fetched += to_write
    batch.days.append(day)
    batch.documents += len(to_write) + len(removed)


def _detail(client, staging: DetailStaging, entity: Entity, key: str, header: dict, summary: SyncSummary) -> dict:
    """The document's detail: from staging if a failed run already paid for it, else one GET."""
    wanted = _update_date(header)
    detail = staging.get(entity.name, key, wanted)
    if detail is not None:
        summary.details_from_staging += 1
        return detail
    detail = client.get_detail(entity.path, key)
    summary.details_fetched += 1
    staging.put(entity.name, key, detail)
    return detail


def sync_reference(client, warehouse, entity: Entity, full_refresh: bool = False,
                   now: datetime | None = None, progress: Callable[[str], None] = logger.info) -> SyncSummary:
    """Bring one reference entity up to date: changes since the last sync, or everything."""
    now = now or datetime.now(UTC)
    high_water, last_full = warehouse.read(
        lambda con: (tables.max_update_date(con, entity), tables.last_full_refresh(con, entity)))
    full = full_refresh or high_water is None or last_full is None or now - last_full > FULL_REFRESH_EVERY
    summary = SyncSummary(entity.name, full_refresh=full)
    filters = {} if full else {"modified_since": high_water - REFERENCE_OVERLAP}
    rows = Rows()
    listed: set[str] = set()
    for record in client.iter_rows(f"/{entity.path}", key=entity.key, **filters):
        try:
            key = record_key(entity, record)
            flatten(entity, record, rows, now)
            listed.add(key)
        except RecordRejected as error:
            summary.reject(str(error), record)
    summary.listed = len(listed)

    def write(con) -> dict[str, int]:
        stored = tables.stored_keys(con, entity)
        removed = stored - listed if full else set()
        summary.new = len(listed - stored)
        summary.changed = len(listed & stored)
        summary.removed = len(removed)
        tables.delete_records(con, entity, listed | removed)
        written = tables.insert_rows(con, entity, rows)
        tables.replace_rejected(con, entity, None, None, summary.rejected)
        if full:
            tables.set_last_full_refresh(con, entity, now)
        return written

    summary.add_written(warehouse.write(write))
    summary.problems += rows.problems
    kind = "full refresh" if full else f"changes since {filters['modified_since']:%Y-%m-%d %H:%M:%S}"
    progress(f"{entity.name}: {kind}: {summary.new} new, {summary.changed} updated, {summary.removed} removed")
    return summary
