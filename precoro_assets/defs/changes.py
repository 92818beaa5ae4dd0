"""The change sensor: finds documents modified in Precoro and re-materializes exactly their partitions.

Each tick lists every document resource with `modifiedSince = cursor - overlap` (one request per
resource when little changed), maps each changed document to its createDate day, drops those the
warehouse already holds at that updateDate, and requests one run per (asset, day). The run gets the
changed documents' list rows in its config, so it fetches only their details and lists nothing again:
the tick's list request is the only one the change costs. The run key names the newest change it covers,
so a tick that sees the same changes again requests nothing new. The cursor is the newest updateDate
seen per resource.

What the sensor can't see is a document deleted in Precoro (it leaves no row to list): a normal
materialization of its day (a backfill, or a re-materialization from the UI) lists the day and removes it.
"""


import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import dagster as dg

from ..api.catalogue import DOCUMENTS, Entity
from ..api.errors import PrecoroError, QuotaExhausted
from ..api.resource import PrecoroResource
from ..sync import partition_day
from ..warehouse import tables
from ..warehouse.rows import parse_time, to_json
from .ingest import DocumentSyncConfig, asset_key
from .resources import WarehouseResource
from .sources import quota_observation

OVERLAP = timedelta(minutes=5)  # tolerate clock skew and records committed late within a second


# A day with more changed documents than this is listed again by its run instead of receiving the rows in its
# run config (one list page of 200 costs one request, and the config stays small enough to show in the UI).
MAX_CHANGES_IN_CONFIG = 200


@dataclass
class DayChanges:
    """Documents of one day changed in Precoro and not yet in the warehouse at that version."""

    last_change: datetime
    rows: dict[str, dict]  # key -> the list row (for documents with details, only what the run needs)


def changed_partitions(client, store, entity: Entity, since: datetime, first_day: date,
                       zone: tzinfo = UTC) -> tuple[dict[date, DayChanges], datetime | None, int]:
    """Days (in the company's time zone `zone`) with documents changed since `since` that the warehouse doesn't
    hold yet; newest updateDate seen."""
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
        if day >= first_day:
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
                        job) -> dg.SensorDefinition:
    @dg.sensor(
        name="precoro_changes",
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Lists documents changed in Precoro (modifiedSince) and re-materializes exactly the "
        "partitions (days of createDate) they belong to. Costs one request per document type per tick.",
    )
    def precoro_changes(context: dg.SensorEvaluationContext, precoro: PrecoroResource,
                        warehouse: WarehouseResource):
        cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        store = warehouse.open()
        client = precoro.get_client()
        requests, skipped = [], []
        for entity in DOCUMENTS:
            since = _since(cursor.get(entity.name), store, entity)
            try:
                days, newest, seen = changed_partitions(client, store, entity, since, first_day,
                                                        ZoneInfo(partitions.timezone))
            except QuotaExhausted as error:
                context.update_cursor(json.dumps(cursor))
                return dg.SkipReason(f"Precoro request quota spent; changes are checked again after "
                                     f"{error.resume_at:%Y-%m-%d %H:%M:%S %Z}.")
            except PrecoroError as error:
                skipped.append(f"{entity.name}: {error}")
                continue
            if newest is not None:
                cursor[entity.name] = newest.isoformat()
            context.log.info(f"{entity.name}: {seen} changed since {since:%Y-%m-%d %H:%M:%S}, "
                             f"{len(days)} partition(s) to refresh")
            for day, changes in sorted(days.items()):
                key = day.isoformat()
                if not partitions.has_partition_key(key):
                    continue
                requests.append(dg.RunRequest(
                    run_key=f"{entity.name}:{key}:{changes.last_change.isoformat()}",
                    partition_key=key,
                    asset_selection=[asset_key(entity)],
                    run_config=_run_config(entity, changes),
                    tags={"precoro/trigger": "change sensor", "precoro/changed": str(len(changes.rows))},
                ))
        context.update_cursor(json.dumps(cursor))
        observed = [quota_observation(precoro)]  # the tick's requests are spent: say what is left
        if not requests:
            return dg.SensorResult(skip_reason="No document changed in Precoro since the last tick."
                                   + (f" Errors: {'; '.join(skipped)}" if skipped else ""), asset_events=observed)
        return dg.SensorResult(run_requests=requests, asset_events=observed)

    return precoro_changes


def _run_config(entity: Entity, changes: DayChanges) -> dg.RunConfig:
    """Hand the changed rows to the run, unless there are so many that listing the day is as cheap."""
    if len(changes.rows) > MAX_CHANGES_IN_CONFIG:
        return dg.RunConfig()
    config = DocumentSyncConfig(changed_documents=to_json(changes.rows))
    return dg.RunConfig(ops={asset_key(entity).to_python_identifier(): config})


def _since(cursor_value: str | None, store, entity: Entity) -> datetime:
    """Where to look from: the cursor, else the newest change the warehouse holds, else now."""
    if cursor_value:
        return datetime.fromisoformat(cursor_value)
    try:
        stored = store.read(lambda con: tables.max_update_date(con, entity))
    except Exception:  # noqa: BLE001 - no table yet: nothing synced, nothing to compare with
        stored = None
    return stored or datetime.now(UTC)
