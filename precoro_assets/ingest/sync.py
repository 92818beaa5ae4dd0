"""How the warehouse is kept equal to Precoro while spending as few requests as possible.

Documents (one or more partition days at a time):
  1. list the days' headers in one walk (`createDate[left_date]..[right_date]`, 200 per page);
  2. compare each header's `updateDate` with the stored row: only new or changed documents need a
     detail GET (one request each), and details already fetched by a failed run come from staging;
  3. documents stored for a day but no longer listed there were deleted in Precoro: they are removed;
  4. each day is written in one transaction (delete the changed/removed keys, insert the new rows),
     so a crash leaves the previous contents of the day or the new ones, never a mix.
Reference data: see reference.py; the details, fetched on threads or worker processes: details.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo

from ..api.errors import PrecoroNotFound, PrecoroPaginationError, QuotaExhausted
from ..api.quota import DAILY_QUOTA
from ..api.responses import parse_json
from ..catalogue import Entity
from ..warehouse import tables
from ..warehouse.rows import (
    RecordRejected,
    Rows,
    flatten,
    has_lines_column,
    record_key,
    to_json,
)
from ..warehouse.staging import DetailStaging
from .details import Flattened, detail_threads, details_in_order
from .seams import PrecoroReads, WarehouseAccess
from .summary import SyncSummary, update_date

logger = logging.getLogger(__name__)

def partition_day(record: dict, zone: tzinfo = UTC) -> date:
    """The day Precoro files a document under: the date of its createDate in the company's time zone.

    Precoro filters `createDate[left_date]/[right_date]` by one calendar, while the records of one answer may
    be written at different offsets: the offset a record happens to carry must not decide its day, or a record
    listed for day D could be filed under D+1. A time without an offset is taken as the company's own.
    """
    moment = datetime.fromisoformat(str(record["createDate"]).strip().replace("Z", "+00:00"))
    return (moment.astimezone(zone) if moment.tzinfo else moment).date()


def sync_documents(client: PrecoroReads, warehouse: WarehouseAccess, staging: DetailStaging, entity: Entity, start: date, end: date,
                   progress: Callable[[str], None] = logger.info, zone: tzinfo = UTC) -> SyncSummary:
    """Make the warehouse hold exactly Precoro's documents created from `start` to `end` (inclusive), days
    being those of the company's time zone `zone` (see partition_day)."""
    summary = SyncSummary(entity.name)
    # What the warehouse holds is read while the days are listed: one waits on DuckDB, the other on Precoro.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"precoro-tables-{entity.name}") as pool:
        stored_ready = pool.submit(_stored_state, warehouse, entity, start, end)
        saved = staging.take_listing(entity.name, start.isoformat(), end.isoformat(), LISTING_KEPT_SECONDS)
        if saved is None:
            listed, list_complete = _list_range(client, entity, start, end, summary, zone)
        else:
            listed, list_complete = _restore_listing(saved, summary)
            progress(f"{entity.name}: continuing with the listing saved at {saved['listed_at']} (by this run "
                     "ahead of its details, or by the run the quota stopped): no list request spent again; later "
                     "changes reach the change sensor, and nothing is removed (a document stored since, by a "
                     "sensor's run, is missing from it too): the day's next listing removes what Precoro deleted")
        stored_by_day, had_rejected, table_is_new = stored_ready.result()
    summary.listed = sum(len(rows) for rows in listed.values())
    progress(f"{entity.name}: listed {summary.listed} documents created {start}..{end}")

    if summary.unstable_days:
        progress(f"{entity.name}: Precoro's list of {', '.join(summary.unstable_days)} kept moving while it was "
                 "read: its documents are written as seen, none is removed (materialize the day again later)")
    # Only a listing made now proves a stored document was deleted: a saved one predates what was stored since.
    fresh = saved is None
    plans = [_plan_day(day, listed.get(day, {}), stored_by_day.get(day, {}), summary,
                       may_remove=fresh and list_complete and day.isoformat() not in summary.unstable_days)
             for day in _days(start, end)]
    if has_lines_column(entity):
        if _details_take_a_while(client, plans):
            _write_headers(warehouse, entity, plans, progress, table_is_new)
        else:
            _drop_headers(plans)
    try:  # a quota stop in here keeps the listing for the retry
        _keep_misfiled(client, warehouse, entity, plans, summary, zone, progress)
        # the newest day's details first: the days analysts look at most get their lines soonest
        _apply(client, warehouse, staging, entity, plans[::-1], summary, progress, table_is_new=table_is_new)
    except QuotaExhausted:
        staging.save_listing(entity.name, start.isoformat(), end.isoformat(),
                             _listing_to_save(listed, list_complete, summary))
        raise
    summary.per_day = _day_counts(plans)
    # What the count check holds each day to: the documents listed, less those deleted before their detail
    # was read; a day whose list kept moving, or listed earlier (a saved listing), has no count to hold to.
    summary.listed_per_day = {plan.day.isoformat(): len(set(plan.listed) - set(summary.vanished))
                              for plan in plans if fresh and plan.day.isoformat() not in summary.unstable_days}
    if summary.rejected or had_rejected:
        warehouse.write(lambda con: tables.replace_rejected(con, entity, start, end, summary.rejected),
                        what=f"record rejected {entity.name}")
    return summary


# Where a walked row keeps its list row as JSON (documents with a detail), until its header is written.
HEADER = "_list_row"
HEADERS_PER_WRITE = 10_000  # header rows per transaction: about 20 MB of rows in memory at a time


def _write_headers(warehouse: WarehouseAccess, entity: Entity, plans: list[_DayPlan], progress: Callable[[str], None],
                   table_is_new: bool) -> None:
    """Store every new document's header (its list row) at once, lines pending (lines_synced_at empty), so the
    whole listed history is queryable before its details, which the daily quota spreads over days, arrive. A
    header's detail then replaces it like any changed document's. Costs no request. Only when the details take
    a while (see _details_take_a_while)."""
    pending = [(plan, key) for plan in plans for key in plan.to_write
               if key not in plan.replaced and HEADER in plan.listed[key]]
    moved = set() if table_is_new or not pending else \
        warehouse.read(lambda con: tables.keys_present(con, entity, {key for _, key in pending}))
    synced_at = datetime.now(UTC)
    for start in range(0, len(pending), HEADERS_PER_WRITE):
        chunk, rows = pending[start:start + HEADERS_PER_WRITE], Rows()
        for plan, key in chunk:
            row = plan.listed[key].pop(HEADER)
            try:
                flatten(entity, parse_json(row), rows, synced_at, plan.day, raw_text=row, header_only=True)
            except RecordRejected:
                continue  # its detail decides (and reports) whether it can be stored
            plan.headers.add(key)
        keys = {key for _, key in chunk}
        def write_headers(con, keys: set[str] = keys, rows: Rows = rows) -> None:
            tables.delete_records(con, entity, keys & moved)
            tables.insert_rows(con, entity, rows)

        warehouse.write(write_headers, what=f"write headers of {entity.name}")
    _drop_headers(plans)  # a changed document's stored version (with its lines) stays until its detail comes
    if pending:
        progress(f"{entity.name}: stored the headers of {len(pending)} new document(s); their lines come with "
                 "their details, newest day first (see precoro.sync_progress)")


# Headers are stored ahead of the details only when these would take longer than this to fetch (wall-clock).
HEADERS_WORTH_SECONDS = 60.0


def _details_take_a_while(client: PrecoroReads, plans: list[_DayPlan]) -> bool:
    """Whether the run's details will take long enough, or the quota stop the run before it has them all, for
    their headers to be worth storing first. At Precoro's pace that is about 50 details or more, or more than
    a window has left; a run that fetches its details within the minute (a day's partition, a sync against a
    fast server) writes each document once, with its lines: a header costs a write, then a delete when its
    detail replaces it (a DuckLake delete reads every file of the table), for lines that came as soon.
    A client that cannot say (no `seconds_for`) stores headers."""
    details = sum(len(plan.to_write) for plan in plans)
    if not details:
        return False
    seconds_for = getattr(client, "seconds_for", None)
    return seconds_for is None or seconds_for(details) > HEADERS_WORTH_SECONDS


def _drop_headers(plans: list[_DayPlan]) -> None:
    """Forget the list rows kept for headers (see _write_headers) when none is written: their details come."""
    for plan in plans:
        for row in plan.listed.values():
            row.pop(HEADER, None)


def worth_listing_ahead(client: PrecoroReads) -> bool:
    """Whether a run should list its other document types first (list_ahead): when the budget paces it, so that
    a quota day's requests take a while and the first type's details may spend them. Against a budget that
    doesn't (the simulator sped up, or with its limits off) every type is listed within seconds anyway, and
    listing ahead would only add work: each table's state read twice, each listing kept and read back.
    A client that cannot say (no `seconds_for`) lists ahead."""
    seconds_for = getattr(client, "seconds_for", None)
    return seconds_for is None or seconds_for(DAILY_QUOTA) > HEADERS_WORTH_SECONDS


def list_ahead(client: PrecoroReads, warehouse: WarehouseAccess, staging: DetailStaging, entities: list[Entity], start: date, end: date,
               progress: Callable[[str], None] = logger.info, zone: tzinfo = UTC) -> None:
    """List the other document types of a run now and store their headers, before any detail is fetched.

    A run's assets go one after the other, and the first one's details may spend the day's quota: without this,
    the other types' history would wait a quota day or more for its list pages, which cost a request per 200
    documents. Each listing is kept in staging, where its own asset takes it up (as after a quota stop): nothing
    is listed twice."""
    for entity in entities:
        if staging.has_listing(entity.name, start.isoformat(), end.isoformat(), LISTING_KEPT_SECONDS):
            continue
        summary = SyncSummary(entity.name)
        stored_by_day, _, table_is_new = _stored_state(warehouse, entity, start, end)
        listed, list_complete = _list_range(client, entity, start, end, summary, zone)
        plans = [_plan_day(day, listed.get(day, {}), stored_by_day.get(day, {}), SyncSummary(entity.name))
                 for day in _days(start, end)]
        if has_lines_column(entity):
            _write_headers(warehouse, entity, plans, progress, table_is_new)
        staging.save_listing(entity.name, start.isoformat(), end.isoformat(),
                             _listing_to_save(listed, list_complete, summary))
        progress(f"{entity.name}: listed {sum(len(rows) for rows in listed.values())} documents created "
                 f"{start}..{end} ahead of the run's details (its step takes the listing up)")


def _stored_state(warehouse: WarehouseAccess, entity: Entity, start: date,
                  end: date) -> tuple[dict[date, dict[str, datetime | None]], bool, bool]:
    """The entity's tables made ready, then per day the stored documents' versions, whether records of the
    entity are held in precoro.rejected_records (a sync of their days replaces them), and whether the entity's
    table was created just now (a first sync: nothing to read, every DuckLake query costing ~20 ms)."""
    created = _ensure_tables(warehouse, entity)
    table_is_new = entity.name in created

    def read(con) -> tuple[dict[date, dict[str, datetime | None]], bool, bool]:
        stored = {} if table_is_new else tables.stored_versions_between(con, entity, start, end)
        return stored, tables.count_rejected(con, entity) > 0, table_is_new

    return warehouse.read(read)


def _ensure_tables(warehouse: WarehouseAccess, entity: Entity) -> set[str]:
    return warehouse.write(lambda con: tables.ensure_tables(con, entity), what=f"create tables of {entity.name}")


# A run stopped by the quota resumes within a day (Precoro's longest window); a listing older than this is not
# reused, the range is listed again.
LISTING_KEPT_SECONDS = 2 * 86400


def _list_range(client: PrecoroReads, entity: Entity, start: date, end: date, summary: SyncSummary,
                zone: tzinfo = UTC) -> tuple[dict[date, dict[str, dict]], bool]:
    """List start..end: day -> key -> what the comparison needs; and whether every row was usable.

    One walk when the list holds still. When its rows keep shifting (documents arriving on the newest day while
    we page), the range is split, the newest day apart first, then in halves, so that the days that hold still
    are listed (and written) as usual. A single day that never holds still keeps what its walks saw: its new
    and changed documents are written, but its list proves no deletion, so nothing of it is removed."""
    listed: dict[date, dict[str, dict]] = {}
    list_complete = True
    pending = [(start, end)]
    while pending:
        first, last = pending.pop()
        walked, rejected, usable, stable = _walk_days(client, entity, first, last, zone)
        if not stable and first < last:
            newest_apart = (first, last) == (start, end)
            middle = last - timedelta(days=1) if newest_apart else first + (last - first) // 2
            # the older part is walked first: the newest day, walked last, then holds what arrived meanwhile
            pending += [(middle + timedelta(days=1), last), (first, middle)]
            continue
        if not stable:
            summary.unstable_days.append(first.isoformat())
        for reason, row in rejected:
            summary.reject(reason, row)
        list_complete = list_complete and usable
        for day, rows in walked.items():
            listed.setdefault(day, {}).update(rows)
    return listed, list_complete


def _keep_misfiled(client: PrecoroReads, warehouse: WarehouseAccess, entity: Entity, plans: list[_DayPlan], summary: SyncSummary, zone: tzinfo,
                   progress: Callable[[str], None]) -> None:
    """A stored document missing from its day's list was deleted in Precoro, unless it is filed under a day other
    than that of its createDate in the zone (stored by an earlier rule, or listed by Precoro across a zone
    boundary): Precoro may list it under another day, so its detail decides (404: deleted), a request each.
    Such documents are rare; deleting one that still exists would lose it until its other day is synced."""
    removed = {key: plan for plan in plans for key in plan.removed}
    if not removed:
        return
    created = warehouse.read(lambda con: tables.create_dates(con, entity, set(removed)))
    for key, plan in removed.items():
        moment = created.get(key)
        if moment is None or moment.astimezone(zone).date() == plan.day:
            continue
        try:
            client.get_detail_with_text(entity.path, key)
        except PrecoroNotFound:
            continue
        plan.removed.discard(key)
        summary.removed -= 1
        summary.kept_elsewhere.append(key)
        progress(f"{entity.name}: {entity.key} {key} is not listed on {plan.day} but still exists in Precoro "
                 f"(created {moment.astimezone(zone):%Y-%m-%d %H:%M %Z}): kept; it moves when its day is synced")


def _walk_days(client: PrecoroReads, entity: Entity, first: date, last: date, zone: tzinfo
               ) -> tuple[dict[date, dict[str, dict]], list[tuple[str, dict]], bool, bool]:
    """One list walk over first..last: the rows by day and key, the unusable rows (with the reason), whether
    every row was usable, and whether the list held still (Precoro's rows stopped shifting between pages)."""
    walked: dict[date, dict[str, dict]] = {}
    rejected: list[tuple[str, dict]] = []
    try:
        for row in client.iter_rows(f"/{entity.path}", key=entity.key, also=entity.also_list,
                                    created_from=first, created_to=last):
            try:
                key = record_key(entity, row)
                # Precoro listed the row for first..last: it belongs there even if its createDate, read in the
                # configured zone, falls on a neighbouring day (a zone set differently from the company's).
                day = min(max(partition_day(row, zone), first), last)
            except (RecordRejected, KeyError, TypeError, ValueError) as error:
                # A row we can't place may be a stored document: the list is then no proof that anything
                # was deleted, so nothing is removed in this run.
                rejected.append((f"unusable list row: {error}", row))
                continue
            # Keep only what the comparison needs, unless the list row is all we will store; a document with a
            # detail keeps its list row as compact JSON too, for its header (see _write_headers)
            walked.setdefault(day, {})[key] = row if not entity.fetch_detail else \
                {"updateDate": row.get("updateDate"), HEADER: to_json(row)}
    except PrecoroPaginationError as error:
        logger.warning("%s: the list of %s..%s kept moving (%s)", entity.name, first, last, error)
        return walked, rejected, not rejected, False
    return walked, rejected, not rejected, True


def _listing_to_save(listed: dict[date, dict[str, dict]], list_complete: bool, summary: SyncSummary) -> dict:
    rejected = [{**r, "partition_day": r["partition_day"] and r["partition_day"].isoformat(),
                 "seen_at": r["seen_at"].isoformat()} for r in summary.rejected]
    return {"listed_at": datetime.now(UTC).isoformat(timespec="seconds"), "complete": list_complete,
            "listed": {day.isoformat(): {key: {k: v for k, v in row.items() if k != HEADER} for key, row in rows.items()}
                       for day, rows in listed.items()}, "rejected": rejected,
            "unstable_days": summary.unstable_days}


def _restore_listing(saved: dict, summary: SyncSummary) -> tuple[dict[date, dict[str, dict]], bool]:
    summary.rejected += [{**r, "partition_day": r["partition_day"] and date.fromisoformat(r["partition_day"]),
                          "seen_at": datetime.fromisoformat(r["seen_at"])} for r in saved["rejected"]]
    summary.unstable_days += saved.get("unstable_days", [])
    return {date.fromisoformat(day): rows for day, rows in saved["listed"].items()}, bool(saved["complete"])


def sync_changes(client: PrecoroReads, warehouse: WarehouseAccess, staging: DetailStaging, entity: Entity, changed: dict[date, dict[str, dict] | None],
                 progress: Callable[[str], None] = logger.info, zone: tzinfo = UTC) -> SyncSummary:
    """The change sensor's run: bring in what changed on each day of `changed`, without listing those days again.

    A day maps each changed key to its list row as the sensor read it (at least its `updateDate`; the whole row
    for entities whose list row is the record), or to None when it had too many changes to hand over: that day
    is listed and synced like any partition. Documents the warehouse already holds at that updateDate are
    skipped. Nothing is removed from the days handed over: only a listing of a day can prove a document is gone.
    """
    summary = SyncSummary(entity.name)
    given = {day: rows for day, rows in changed.items() if rows is not None}
    if given:
        _ensure_tables(warehouse, entity)
        first, last = min(given), max(given)
        stored = warehouse.read(lambda con: tables.stored_versions_between(con, entity, first, last))
        summary.handed_over = sum(len(rows) for rows in given.values())
        # listed_per_day stays empty: the days were not listed, there is no count to hold them to
        plans = [_plan_day(day, rows, stored.get(day, {}), summary, may_remove=False)
                 for day, rows in sorted(given.items(), reverse=True)]  # the newest day's changes first
        for plan in plans:
            plan.file_in = zone
        progress(f"{entity.name}: {summary.handed_over} document(s) changed in Precoro on {len(plans)} day(s), "
                 f"{sum(len(plan.to_write) for plan in plans)} not in the warehouse at that version")
        _apply(client, warehouse, staging, entity, plans, summary, progress)
        summary.per_day = _day_counts(plans, handed_over=True)
        if summary.rejected:
            warehouse.write(lambda con: tables.add_rejected(con, entity, summary.rejected),
                            what=f"record rejected {entity.name}")
    for day in sorted((day for day, rows in changed.items() if rows is None), reverse=True):
        progress(f"{entity.name}: {day} changed too much to hand over: listing it")
        summary.merge(sync_documents(client, warehouse, staging, entity, day, day, progress, zone))
    return summary


def _own_day(record: dict, fallback: date, zone: tzinfo) -> date:
    try:
        return partition_day(record, zone)
    except (KeyError, TypeError, ValueError):
        return fallback


def _day_counts(plans: list[_DayPlan], handed_over: bool = False) -> dict[str, dict[str, int]]:
    """Each day's own counts, for its materialization. `handed_over`: the plans' documents came from a sensor,
    the days were not listed (they are not called listed)."""
    return {plan.day.isoformat(): {
        "handed over by a sensor" if handed_over else "listed by Precoro": len(plan.listed),
        "new": len(plan.to_write) - len(plan.replaced) + len(plan.awaiting),
        "changed": len(plan.replaced) - len(plan.awaiting), "unchanged": len(plan.listed) - len(plan.to_write),
        "removed": len(plan.removed)} for plan in plans}


def _apply(client: PrecoroReads, warehouse: WarehouseAccess, staging: DetailStaging, entity: Entity, plans: list[_DayPlan],
           summary: SyncSummary, progress: Callable[[str], None], table_is_new: bool = False) -> None:
    """Fetch what the plans need (details in parallel, staged) and write the days in batches.
    `table_is_new`: the entity's table was created by this run, so it holds no document yet."""
    wanted = [(key, plan.listed[key]) for plan in plans for key in plan.to_write]
    # A new document of these days may still be stored under another day (its createDate moved): its old rows
    # must go. One query for the whole run, so a first sync deletes nothing (a DuckLake delete reads every
    # file of the table it deletes from, the child tables' included).
    new = {key for plan in plans for key in plan.to_write if key not in plan.replaced and key not in plan.headers}
    if new and getattr(warehouse, "database_url", None):
        # The catalog in PostgreSQL: another host may store the same new documents while this run fetches them
        # (two hosts syncing the same days). Each is deleted by key before it is written, so it is stored once,
        # whoever writes last; a warehouse of one writer saves that delete on a first sync.
        moved = set(new)
    else:
        moved = warehouse.read(lambda con: tables.keys_present(con, entity, new)) if new and not table_is_new \
            else set()
    if entity.fetch_detail:
        # worker processes (if any) flatten the details too, unless documents are filed under their own day
        days = {key: plan.day for plan in plans for key in plan.to_write} \
            if all(plan.file_in is None for plan in plans) else None
        records = details_in_order(client, staging, entity, wanted, summary, workers=detail_threads(client),
                                   days=days)
    else:
        records = ((key, row, None) for key, row in wanted)  # the list row is the whole record
    writer = _BatchWriter(warehouse, staging, entity, summary, progress)
    try:
        batch = _Batch()
        for plan in plans:
            if not plan.to_write and not plan.removed:
                continue
            synced_at, day_rows = datetime.now(UTC), Rows()  # a day joins the batch once all of it is fetched
            for key in plan.to_write:
                try:
                    fetched_key, record, text = next(records)
                except QuotaExhausted:  # the days fetched in full are written: their lines are queryable meanwhile
                    writer.write(batch)
                    writer.finish()
                    raise
                assert fetched_key == key, (fetched_key, key)  # noqa: S101 - details come in the order asked
                if record is None:  # deleted in Precoro after it was listed: not stored, removed if it was
                    summary.vanished.append(key)
                    progress(f"{entity.name}: {entity.key} {key} was listed but is gone now (404): removed")
                    continue
                if isinstance(record, Flattened):  # by a worker process, for plan.day
                    if record.rejected is not None:
                        summary.reject(f"{entity.key} {key}: {record.rejected[0]}", record.rejected[1], plan.day)
                    day_rows.absorb(record.rows)
                    continue
                try:
                    day = plan.day if plan.file_in is None else _own_day(record, plan.day, plan.file_in)
                    flatten(entity, record, day_rows, synced_at, day, raw_text=text)
                    if day != plan.day:
                        summary.filed_under[day.isoformat()] = summary.filed_under.get(day.isoformat(), 0) + 1
                except RecordRejected as error:
                    summary.reject(f"{entity.key} {key}: {error}", record, plan.day)
            batch.rows.absorb(day_rows)
            batch.add(plan, moved)
            if batch.documents >= WRITE_BATCH_DOCUMENTS:
                writer.write(batch)
                batch = _Batch()
        writer.write(batch)
        writer.finish()
    finally:
        records.close()  # stops the detail threads if anything above failed
        writer.close()  # a batch being written is committed (or fails) before this returns


# Days are written in batches of about this many documents: each batch is one transaction (a crash leaves
# every day of it as it was, or all new), and fewer, larger commits keep DuckLake's files few.
WRITE_BATCH_DOCUMENTS = 1000


def _days(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


@dataclass
class _DayPlan:
    """What one day needs: documents to (re)write and documents to remove."""

    day: date
    listed: dict[str, dict]
    to_write: list[str]
    removed: set[str]
    replaced: set[str]  # the documents of to_write whose older version (or header) is stored
    awaiting: set[str] = field(default_factory=set)  # of replaced: only a header is stored, lines to come (new)
    headers: set[str] = field(default_factory=set)  # new documents of to_write stored as headers by this run
    # set for documents handed over by a sensor: each is filed under its own createDate's day in this zone
    # (a webhook names a document, not its day), not under the plan's
    file_in: tzinfo | None = None


def _plan_day(day: date, listed: dict[str, dict], stored: dict[str, datetime | None],
              summary: SyncSummary, may_remove: bool = True) -> _DayPlan:
    """Compare one day's list with the warehouse: what is new or changed, and what was removed.

    Stored documents missing from the list are removed only when `may_remove` (every list row was usable)."""
    new = [k for k in listed if k not in stored]
    # a stored header whose lines are still to come (no version: see tables.stored_versions_between) is a new
    # document to the counts, though its header row is replaced like a changed document's
    awaiting = [k for k in listed if k in stored and stored[k] is None]
    changed = [k for k in listed if k in stored and stored[k] is not None
               and (update_date(listed[k]) is None or update_date(listed[k]) != stored[k])]
    removed = set(stored) - set(listed) if may_remove else set()
    summary.new += len(new) + len(awaiting)
    summary.changed += len(changed)
    summary.unchanged += len(listed) - len(new) - len(awaiting) - len(changed)
    summary.removed += len(removed)
    return _DayPlan(day, listed, new + awaiting + changed, removed, set(changed) | set(awaiting),
                    awaiting=set(awaiting))


@dataclass
class _Batch:
    """Documents fetched for some days, waiting to be written together."""

    rows: Rows = field(default_factory=Rows)
    delete: set[str] = field(default_factory=set)
    fetched: list[str] = field(default_factory=list)
    days: list[date] = field(default_factory=list)
    documents: int = 0

    def add(self, plan: _DayPlan, moved: set[str]) -> None:
        """Take a day's plan; `moved`: new documents of the run whose rows are stored under another day."""
        # a vanished document (404 on its detail) is among to_write: removed if it was stored, header included
        self.delete |= plan.replaced | plan.headers | plan.removed | (moved & set(plan.to_write))
        self.fetched += plan.to_write
        self.days.append(plan.day)
        self.documents += len(plan.to_write) + len(plan.removed)


class _BatchWriter:
    """Writes batches in order, each in its own transaction, one at a time in a background thread, so that the
    next batch's details are fetched, parsed and flattened while the previous one is written (DuckDB writes
    without holding the GIL). At most one batch waits while another is written: memory stays flat."""

    def __init__(self, warehouse: WarehouseAccess, staging: DetailStaging, entity: Entity, summary: SyncSummary,
                 progress: Callable[[str], None]) -> None:
        self._warehouse, self._staging, self._entity = warehouse, staging, entity
        self._summary, self._progress = summary, progress
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"precoro-write-{entity.name}")
        self._writing: tuple[Future, _Batch, str] | None = None

    def write(self, batch: _Batch) -> None:
        """Start writing `batch` once the batch before it is written (its error, if any, is raised here)."""
        self.finish()
        if not batch.documents:
            return
        message = (f"{self._entity.name}: wrote {batch.documents} documents of {len(batch.days)} day(s) "
                   f"{min(batch.days)}..{max(batch.days)} ({self._summary.details_fetched} details fetched so far)")
        self._writing = (self._pool.submit(self._commit, batch), batch, message)

    def finish(self) -> None:
        """Wait for the batch being written; count it and say so (progress goes out from the caller's thread)."""
        if self._writing is None:
            return
        future, batch, message = self._writing
        self._writing = None
        self._summary.add_written(future.result())
        self._summary.problems += batch.rows.problems
        self._progress(message)

    def close(self) -> None:
        """Let a write in flight end (committed or not) without raising: the caller is already failing."""
        if self._writing is not None:
            future = self._writing[0]
            self._writing = None
            if future.exception() is not None:
                logger.warning("%s: a batch could not be written: %s", self._entity.name, future.exception())
        self._pool.shutdown(wait=True)

    def _commit(self, batch: _Batch) -> dict[str, int]:
        entity = self._entity

        def write(con) -> dict[str, int]:
            tables.delete_records(con, entity, batch.delete)
            return tables.insert_rows(con, entity, batch.rows)

        written = self._warehouse.write(write, what=f"write {entity.name}")
        if entity.fetch_detail:
            self._staging.forget(entity.name, batch.fetched)
        return written
