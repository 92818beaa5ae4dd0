"""The webhook sensor: turns the events `precoro-assets webhooks` recorded into runs, spending no request.

Each tick reads the events after its cursor (the last event handled), keeps one per document (Precoro may
deliver an event twice; a document changed twice before its run reads it once), and asks for the same single
run the change sensor asks for, with each changed document handed over without an `updateDate`: the run
fetches its detail whatever the warehouse holds (an event is a hint, the record is re-read) and lists nothing.
A document's day is the one the warehouse files it under; a document the warehouse doesn't hold yet is placed
on today, and filed by the run under its own createDate's day. Supplier and custom field events re-sync their
reference asset (by modifiedSince: a request or two). Events lost on the way are what the change sensor, which
polls rarely once webhooks are on, is for.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg

from ..api.catalogue import BY_NAME, Entity
from ..warehouse import tables
from ..webhooks import WebhookEvent, WebhookInbox, inbox_path
from .changes import DayChanges, group_runs, run_request
from .ingest import asset_key
from .resources import WarehouseResource

# Precoro's webhook `type` -> the asset it changes (0 warehouse requests, 4 RFPs, 8 stock transfers and 9 budgets
# are not synced).
DOCUMENT_TYPES: dict[int, str] = {1: "purchase_requisitions", 2: "purchase_orders", 3: "invoices", 5: "receipts",
                                  6: "expenses"}
REFERENCE_TYPES: dict[int, str] = {7: "suppliers", 10: "document_custom_fields", 11: "item_custom_fields"}
EVENTS_PER_TICK = 20_000


def build_webhook_sensor(partitions: dg.DailyPartitionsDefinition, state_dir: str, documents_job,
                         reference_job, enabled: bool) -> dg.SensorDefinition:
    @dg.sensor(
        name="precoro_webhook_events",
        jobs=[documents_job, reference_job],
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING if enabled else dg.DefaultSensorStatus.STOPPED,
        description="Turns the webhook events `precoro-assets webhooks` recorded into one run for the changed "
        "documents (their details only, no list request) and a sync of changed reference data. Spends no "
        "request itself.",
    )
    def precoro_webhook_events(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
        inbox = WebhookInbox(inbox_path(state_dir))
        after = int(context.cursor or 0)
        events = inbox.after(after, EVENTS_PER_TICK)
        if not events:
            return dg.SkipReason("No webhook event recorded since the last tick.")
        zone = ZoneInfo(partitions.timezone)
        changes = documents_changed(events, warehouse.open(), zone, partitions)
        requests = []
        if changes:
            materialized = {name: context.instance.get_materialized_partitions(asset_key(BY_NAME[name]))
                            for name in changes}
            requests += [run_request(group, trigger="webhook events", job_name=documents_job.name)
                         for group in group_runs(changes, materialized)]
        references = sorted({REFERENCE_TYPES[e.type] for e in events if e.type in REFERENCE_TYPES})
        if references:
            requests.append(dg.RunRequest(
                run_key=f"webhook:reference:{events[0].seq}-{events[-1].seq}", job_name=reference_job.name,
                asset_selection=[asset_key(BY_NAME[name]) for name in references],
                tags={"precoro/trigger": "webhook events"}))
        context.update_cursor(str(events[-1].seq))
        documents = sum(len(c.rows) for by_day in changes.values() for c in by_day.values())
        context.log.info(f"{len(events)} webhook event(s) {events[0].seq}..{events[-1].seq}: {documents} "
                         f"document(s) changed, reference data: {', '.join(references) or 'none'}")
        if not requests:
            return dg.SkipReason(f"{len(events)} webhook event(s), none about what is synced.")
        return requests

    return precoro_webhook_events


def documents_changed(events: list[WebhookEvent], store, zone: ZoneInfo,
                      partitions: dg.DailyPartitionsDefinition) -> dict[str, dict]:
    """The events' documents by asset and day (one entry per document however many events name it)."""
    by_entity: dict[str, dict[str, datetime]] = {}
    for event in events:
        name = DOCUMENT_TYPES.get(event.type)
        if name is None or not event.idn:
            continue
        seen = by_entity.setdefault(name, {})
        seen[event.idn] = max(seen.get(event.idn, event.received_at), event.received_at)
    today = datetime.now(zone).date()
    changes: dict[str, dict] = {}
    for name, received in by_entity.items():
        entity: Entity = BY_NAME[name]
        try:
            days = store.read(lambda con, entity=entity, keys=set(received): tables.stored_days(con, entity, keys))
        except Exception:  # noqa: BLE001 - no table yet: nothing synced, every document is new
            days = {}
        for idn, when in received.items():
            day = days.get(idn, today)
            if not partitions.has_partition_key(day.isoformat()):
                continue  # before the partitions start: not synced at all
            day_changes = changes.setdefault(name, {}).setdefault(day, DayChanges(when, {}))
            day_changes.rows[idn] = {}  # no updateDate: the run re-reads it whatever the warehouse holds
            day_changes.last_change = max(day_changes.last_change, when)
    return changes
