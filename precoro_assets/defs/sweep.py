"""The deletion sweep: Precoro tells nobody when a document is deleted (no webhook says so, and a deleted document
is in no `modifiedSince` list), so the change sensor can't see it. Once a day the last PRECORO_SWEEP_DAYS days
(7 by default) are listed again, in one run over the range, and what Precoro no longer holds leaves the warehouse.

Its cost: one list walk per selected document type over the whole range (200 documents a page) and one more for
invoices' credit notes, plus a detail for a document changed meanwhile that no sensor had brought in yet. For a
company with fewer than 200 documents of a type a week that is 7 requests a day, 0.2 % of the day's quota.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from ..catalogue import Entity
from .naming import PrecoroTranslator


def build_deletion_sweep(partitions: dg.DailyPartitionsDefinition, first_day: date, days: int, job,
                         documents: tuple[Entity, ...], t: PrecoroTranslator) -> dg.ScheduleDefinition:
    """A daily schedule (`<prefix>_deletion_sweep`) that re-materializes the last `days` days of the document types
    synced so far."""

    @dg.schedule(
        name=t.name("deletion_sweep"), job=job, cron_schedule="45 4 * * *", execution_timezone=partitions.timezone,
        default_status=t.schedule_status(True),
        description=f"Lists the last {days} days of each document type synced so far again, in one run, and removes "
                    "what Precoro deleted (nothing else reports a deletion). About one request per document type a "
                    "day (PRECORO_SWEEP_DAYS; 0 turns it off).",
    )
    def precoro_deletion_sweep(context: dg.ScheduleEvaluationContext):
        when = context.scheduled_execution_time or datetime.now(UTC)  # None when evaluated by hand
        today = when.astimezone(ZoneInfo(partitions.timezone)).date()
        first = max(today - timedelta(days=days - 1), first_day)
        synced = [t.entity_key(entity) for entity in documents
                  if context.instance.get_materialized_partitions(t.entity_key(entity))]
        if not synced:
            return dg.SkipReason("No document type is synced yet: there is nothing to sweep.")
        tags = {"precoro/trigger": "deletion sweep"}
        if first != today:
            tags |= {"dagster/asset_partition_range_start": first.isoformat(),
                     "dagster/asset_partition_range_end": today.isoformat()}
        return dg.RunRequest(run_key=f"sweep:{today}", asset_selection=synced, tags=tags,
                             partition_key=today.isoformat() if first == today else None)

    return precoro_deletion_sweep
