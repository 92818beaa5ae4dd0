"""The change sensor: finds documents modified in Precoro and re-materializes exactly their partitions.

Each tick lists every document resource with `modifiedSince = cursor - overlap` (one request per
resource when little changed), maps each changed document to its createDate day, drops those the
warehouse already holds at that updateDate, and requests one run for all of them: every changed document
type over the range of changed days (see `group_runs` for the rare split). Each asset gets its changed
documents' list rows by day in its config, so the run fetches only their details and lists nothing again:
the tick's list requests are the only ones a change costs. The run key names every (type, day, newest
change) the run covers, so a tick that sees the same changes again requests nothing new. The cursor is the
newest updateDate seen per resource.

What the sensor can't see is a document deleted in Precoro (it leaves no row to list): a normal
materialization of its day (a backfill, or a re-materialization from the UI) lists the day and removes it.
"""


import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import dagster as dg

from ..api.errors import PrecoroError, QuotaExhausted
from ..catalogue import BY_NAME, DOCUMENTS, Entity
from ..ingest.sync import partition_day
from ..warehouse import tables
from ..warehouse.rows import parse_time, to_json
from .ingest import DocumentSyncConfig
from .naming import DEFAULT, PrecoroTranslator
from .resources import PrecoroResource, WarehouseResource
from .sources import quota_observation

OVERLAP = timedelta(minutes=5)
REQUESTED = "_requested"  # the cursor's entry for changes already handed to runs  # tolerate clock skew and records committed late within a second


# A day with more changed documents than this is listed again by the run instead of receiving the rows in its
# run config (one list page of 200 costs one request, and the config stays small enough to show in the UI).
MAX_CHANGES_IN_CONFIG = 200


@dataclass
class DayChanges:
    """Documents of one day changed in Precoro and not yet in the warehouse at that version."""

    last_change: datetime
    rows: dict[str, dict]  # key -> the list row (for documents with details, only what the run needs)


def changed_partitions(client, store, entity: Entity, since: datetime, first_day: date,
                       zone: tzinfo = UTC, requested: dict[str, str] | None = None
                       ) -> tuple[dict[date, DayChanges], datetime | None, int]:
    """Days (in the company's time zone `zone`) with documents changed since `since` that the warehouse doesn't
    hold yet and that no run was asked for (`requested`: key -> updateDate handed to a run); newest updateDate
    seen."""
    requested = requested or {}
    newest: datetime | None = None
    candidates: dict[date, dict[str, tuple[datetime, dict]]] = {}
    seen = 0
    for row in client.iter_rows(f"/{entity.path}", key=entity.key, also=entity.also_list,
                                modified_since=since - OVERLAP):
        seen += 1
        try:
            updated = parse_time(row["updateDate"])
            day = partition_day(row, zone)
        except (KeyError, TypeError, ValueError):
            continue  # the partition run reports unusable records; the sensor only schedules
        newest = max(newest, updated) if newest else updated
        if day >= first_day and requested.get(str(row.get(entity.key))) != updated.isoformat():
            kept = row if not entity.fetch_detail else {"updateDate": row["updateDate"]}
            candidates.setdefault(day, {})[str(row.get(entity.key))] = (updated, kept)
    if not candidates:
        return {}, newest, seen
    stored = store.read(lambda con: tables.stored_versions_between(con, entity, min(candidates), max(candidates)))
    days = {}
    for day, changes in candidates.items():
        held = stored.get(day, {})
        stale = {key: (updated, row) for key, (updated, row) in changes.items() if held.get(key) != updated}
        if stale:
            days[day] = DayChanges(max(updated for updated, _ in stale.values()),
                                   {key: row for key, (_, row) in stale.items()})
    return days, newest, seen


def build_change_sensor(partitions: dg.DailyPartitionsDefinition, first_day: date, interval_seconds: int,
                        job, documents: tuple[Entity, ...] = DOCUMENTS,
                        t: PrecoroTranslator = DEFAULT) -> dg.SensorDefinition:
    """The sensor (`<prefix>_changes`) that lists the selected document types changed since its last tick (a
    request each, and one for invoices' credit notes)."""
    @dg.sensor(
        name=t.name("changes"),
        required_resource_keys=t.resource_keys("precoro", "warehouse"),
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=t.sensor_status(False),
        description="Lists documents changed in Precoro (modifiedSince) and re-materializes exactly the "
        "partitions (days of createDate) they belong to, all in one run. Costs "
        f"{sum(1 + len(e.also_list) for e in documents)} list request(s) per tick: one per selected document type "
        f"({', '.join(e.name for e in documents)}), and one for invoices' credit notes if they are selected.",
    )
    def precoro_changes(context: dg.SensorEvaluationContext):
        precoro: PrecoroResource = t.resource(context, "precoro")
        warehouse: WarehouseResource = t.resource(context, "warehouse")
        cursor: dict = json.loads(context.cursor) if context.cursor else {}
        # what earlier ticks handed to runs, by entity: key -> updateDate. The overlap shows a change to several
        # ticks, and while its run waits in the queue the warehouse doesn't hold it yet: it is not asked again.
        requested: dict[str, dict[str, str]] = cursor.setdefault(REQUESTED, {})
        store = warehouse.open()
        client = precoro.get_client()
        changes: dict[str, dict[date, DayChanges]] = {}
        skipped = []
        for entity in documents:
            since = _since(cursor.get(entity.name), store, entity)
            try:
                days, newest, seen = changed_partitions(client, store, entity, since, first_day,
                                                        ZoneInfo(partitions.timezone), requested.get(entity.name))
            except QuotaExhausted as error:
                context.update_cursor(json.dumps(cursor))
                return dg.SkipReason(f"Precoro request quota spent; changes are checked again after "
                                     f"{error.resume_at:%Y-%m-%d %H:%M:%S %Z}.")
            except PrecoroError as error:
                skipped.append(f"{entity.name}: {error}")
                continue
            if newest is not None:
                cursor[entity.name] = newest.isoformat()
            days = {day: day_changes for day, day_changes in days.items()
                    if partitions.has_partition_key(day.isoformat())}
            context.log.info(f"{entity.name}: {seen} changed since {since:%Y-%m-%d %H:%M:%S}, "
                             f"{len(days)} partition(s) to refresh")
            if days:
                changes[entity.name] = days
            _remember(requested, entity, days, since)
        context.update_cursor(json.dumps(cursor))
        observed = [quota_observation(precoro, t.key("api"))]  # the tick's requests are spent: say what is left
        if not changes:
            return dg.SensorResult(skip_reason="No document changed in Precoro since the last tick."
                                   + (f" Errors: {'; '.join(skipped)}" if skipped else ""), asset_events=observed)
        materialized = {name: context.instance.get_materialized_partitions(t.entity_key(BY_NAME[name]))
                        for name in changes}
        requests = [run_request(group, t=t) for group in group_runs(changes, materialized)]
        return dg.SensorResult(run_requests=requests, asset_events=observed)

    return precoro_changes


def _remember(requested: dict[str, dict[str, str]], entity: Entity, days: dict[date, DayChanges],
              since: datetime) -> None:
    """Add the changes handed to this tick's run; forget those older than any later tick can see again."""
    handed = requested.setdefault(entity.name, {})
    for day_changes in days.values():
        for key, row in day_changes.rows.items():
            handed[key] = parse_time(row["updateDate"]).isoformat()
    horizon = since - OVERLAP
    for key in [key for key, updated in handed.items() if datetime.fromisoformat(updated) < horizon]:
        del handed[key]


def group_runs(changes: dict[str, dict[date, DayChanges]],
               materialized: dict[str, set[str]]) -> list[dict[str, dict[date, DayChanges]]]:
    """The changes of all document types, in as few runs as honesty allows: usually one.

    A run covers every day from its first changed day to its last, and Dagster records each day of that range
    as materialized for each asset of the run. That is true of a day the asset already holds (the sensor just
    saw that none of its documents changed) but not of a day it never synced: such a day starts a new run."""
    days = sorted({day for by_day in changes.values() for day in by_day})
    groups: list[dict[str, dict[date, DayChanges]]] = []
    group: dict[str, dict[date, DayChanges]] = {}
    group_start = days[0]
    for day in days:
        here = {name: by_day[day] for name, by_day in changes.items() if day in by_day}
        names = set(group) | set(here)
        if group and not all(_held_or_changed(name, gap, changes, materialized) for name in names
                             for gap in _days_between(group_start, day)):
            groups.append(group)
            group, group_start = {}, day
        for name, day_changes in here.items():
            group.setdefault(name, {})[day] = day_changes
    groups.append(group)
    return groups


def _days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _held_or_changed(name: str, day: date, changes: dict[str, dict[date, DayChanges]],
                     materialized: dict[str, set[str]]) -> bool:
    return day in changes[name] or day.isoformat() in materialized[name]


def run_request(group: dict[str, dict[date, DayChanges]], trigger: str = "change sensor",
                job_name: str | None = None, extra_tags: dict[str, str] | None = None,
                t: PrecoroTranslator = DEFAULT) -> dg.RunRequest:
    """One run for all the group's changes: its document types, over its days (a partition range when more
    than one), each asset told which documents changed on which day. The run key names every (type, day,
    newest change) it covers, so a tick that sees the same changes again requests nothing new."""
    days = sorted({day for by_day in group.values() for day in by_day})
    covered = sorted(f"{name}:{day}:{day_changes.last_change.isoformat()}"
                     for name, by_day in group.items() for day, day_changes in by_day.items())
    digest = hashlib.sha256("\n".join(covered).encode()).hexdigest()[:16]
    first, last = days[0].isoformat(), days[-1].isoformat()
    tags = {"precoro/trigger": trigger,
            "precoro/changed": str(sum(len(c.rows) for by_day in group.values() for c in by_day.values())),
            "precoro/changed_days": str(len(days))}
    if first != last:
        tags |= {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    tags |= extra_tags or {}
    return dg.RunRequest(
        run_key=f"{trigger.split()[0]}:{first}..{last}:{digest}",
        job_name=job_name,
        partition_key=first if first == last else None,
        asset_selection=[t.entity_key(BY_NAME[name]) for name in sorted(group)],
        run_config=dg.RunConfig(ops={t.entity_key(BY_NAME[name]).to_python_identifier(): _sync_config(by_day)
                                     for name, by_day in group.items()}),
        tags=tags,
    )


def _sync_config(by_day: dict[date, DayChanges]) -> DocumentSyncConfig:
    """Hand the changed rows to the run; a day with so many that listing it is as cheap is listed instead."""
    return DocumentSyncConfig(changed_documents=to_json({
        day.isoformat(): (changes.rows if len(changes.rows) <= MAX_CHANGES_IN_CONFIG else None)
        for day, changes in sorted(by_day.items())}))


def _since(cursor_value: str | None, store, entity: Entity) -> datetime:
    """Where to look from: the cursor, else the newest change the warehouse holds, else now."""
    if cursor_value:
        return datetime.fromisoformat(cursor_value)
    try:
        stored = store.read(lambda con: tables.max_update_date(con, entity))
    except Exception:  # noqa: BLE001 - no table yet: nothing synced, nothing to compare with
        stored = None
    return stored or datetime.now(UTC)
