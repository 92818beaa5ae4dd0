"""The webhook sensor: turns the events `precoro-assets webhooks` recorded into runs, spending no request.

Each tick reads the events after its cursor (the last event handled), keeps one per document (Precoro may
deliver an event twice; a document changed twice before its run reads it once), and asks for the same single
run the change sensor asks for, with each changed document handed over without an `updateDate`: the run
fetches its detail whatever the warehouse holds (an event is a hint, the record is re-read) and lists nothing.
A document's day is the one the warehouse files it under; a document the warehouse doesn't hold yet is placed
on today, and filed by the run under its own createDate's day. Supplier and custom field events re-sync their
reference asset (by modifiedSince: a request or two). Events lost on the way are what the change sensor, which
polls rarely once webhooks are on, is for.

Anyone who knows the webhook secret can record events, and each names a document whose detail costs a request:
10,000 events for arbitrary numbers would have become one run of 10,000 detail requests, 3+ days of Precoro's
quota. So the events handed to runs within any (sliding) day may cost at most a share of the day's quota
(PRECORO_WEBHOOK_QUOTA_SHARE, 30 % by default); the events past it stay in the inbox, in order, and are handed
over on later days, and the sensor says how many wait (its skip message, a warning in its log, a tag on the run).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import dagster as dg

from ..catalogue import BY_NAME, ENTITIES, Entity
from ..ingest.webhook_inbox import WebhookEvent, WebhookInbox, inbox_path
from ..settings import ENV_WEBHOOK_SECRET, webhook_secret_variable
from ..warehouse import tables
from .changes import DayChanges, group_runs, run_request
from .naming import DEFAULT, PrecoroTranslator
from .resources import PrecoroResource, WarehouseResource

# Precoro's webhook `type` -> the asset it changes (0 warehouse requests, 4 RFPs, 8 stock transfers and 9 budgets
# are not synced).
DOCUMENT_TYPES: dict[int, str] = {1: "purchase_requisitions", 2: "purchase_orders", 3: "invoices", 5: "receipts",
                                  6: "expenses"}
REFERENCE_TYPES: dict[int, str] = {7: "suppliers", 10: "document_custom_fields", 11: "item_custom_fields"}
EVENTS_PER_TICK = 20_000
REFERENCE_SYNC_COST = 2  # a reference asset re-synced by modifiedSince: a list request or two
DAY_S = 86_400.0
WAITING_TAG = "precoro/webhook_events_waiting"


@dataclass
class EventsCursor:
    """The last event handed to runs, and what the events handed over cost: (epoch seconds, requests), kept for
    a day."""

    seq: int = 0
    spent: list[tuple[float, int]] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str | None) -> EventsCursor:
        if not text:
            return cls()
        if text.strip().isdigit():  # a cursor from before the cap: the last event alone
            return cls(int(text))
        data = json.loads(text)
        return cls(int(data["seq"]), [(float(at), int(cost)) for at, cost in data["spent"]])

    def dump(self) -> str:
        return json.dumps({"seq": self.seq, "spent": self.spent})


@dataclass(frozen=True)
class Synced:
    """The webhook types whose entity is synced (selected): webhook type -> entity name."""

    documents: dict[int, str]
    references: dict[int, str]

    @classmethod
    def of(cls, names: set[str]) -> Synced:
        return cls({t: n for t, n in DOCUMENT_TYPES.items() if n in names},
                   {t: n for t, n in REFERENCE_TYPES.items() if n in names})


EVERY_TYPE = Synced(DOCUMENT_TYPES, REFERENCE_TYPES)


def affordable(events: list[WebhookEvent], left: int,
               synced: Synced = EVERY_TYPE) -> tuple[list[WebhookEvent], int]:
    """The first events, in order, whose cost fits in `left` requests, and that cost: a document's detail is one
    request however many events name it, a reference asset's re-sync REFERENCE_SYNC_COST; other events (and
    those of entities not synced) nothing."""
    seen: set[tuple[str, str]] = set()
    cost = 0
    for index, event in enumerate(events):
        if event.type in synced.documents and event.idn:
            key, price = (synced.documents[event.type], event.idn), 1
        elif event.type in synced.references:
            key, price = (synced.references[event.type], ""), REFERENCE_SYNC_COST
        else:
            continue
        if key not in seen:
            if cost + price > left:
                return events[:index], cost
            seen.add(key)
            cost += price
    return events, cost


def build_webhook_sensor(partitions: dg.DailyPartitionsDefinition, state_dir: str, documents_job,
                         reference_job, enabled: bool, quota_share: float = 0.30,
                         entities: tuple[Entity, ...] = ENTITIES,
                         t: PrecoroTranslator = DEFAULT) -> dg.SensorDefinition:
    """The sensor (`<prefix>_webhook_events`) that hands webhook events to runs; events about entities not
    selected are passed over (a job is None when none of its entities is selected)."""
    synced = Synced.of({entity.name for entity in entities})
    # the variable of the secret in this company's webhook URL (`precoro-assets webhooks [--company ...]`)
    secret_name = ENV_WEBHOOK_SECRET if t.bundled else webhook_secret_variable(t.name_prefix)

    @dg.sensor(
        name=t.name("webhook_events"),
        required_resource_keys=t.resource_keys("precoro", "warehouse"),
        jobs=[job for job in (documents_job, reference_job) if job is not None],
        minimum_interval_seconds=15,
        default_status=t.sensor_status(enabled),
        description="Turns the webhook events `precoro-assets webhooks` recorded into one run for the changed "
        "documents (their details only, no list request) and a sync of changed reference data. Spends no "
        "request itself.",
    )
    def precoro_webhook_events(context: dg.SensorEvaluationContext):
        precoro: PrecoroResource = t.resource(context, "precoro")
        warehouse: WarehouseResource = t.resource(context, "warehouse")
        inbox = WebhookInbox(inbox_path(state_dir), warehouse.shared_database_url())
        cursor = EventsCursor.parse(context.cursor)
        events = inbox.after(cursor.seq, EVENTS_PER_TICK)
        if not events:
            return dg.SkipReason("No webhook event recorded since the last tick.")
        now, day = time.time(), DAY_S / precoro.time_scale  # the quota's day, as the client counts it
        cursor.spent = [(at, cost) for at, cost in cursor.spent if at > now - day]
        budget = max(REFERENCE_SYNC_COST, int(quota_share * precoro.per_day))
        events, cost = affordable(events, budget - sum(cost for _, cost in cursor.spent), synced)
        waiting = inbox.count_after(cursor.seq) - len(events)
        cap = (f"{waiting} webhook event(s) wait for a later day: the events handed to runs may spend "
               f"{quota_share * 100:g} % of the day's {precoro.per_day} requests ({budget}; "
               f"PRECORO_WEBHOOK_QUOTA_SHARE), and {sum(c for _, c in cursor.spent) + cost} were handed over in the "
               f"last day; more from {_when_spent(cursor, day, now)}. So many events at once may be a flood: check "
               f"who knows {secret_name}.")
        if not events:
            return dg.SkipReason(cap)
        zone = ZoneInfo(partitions.timezone)
        changes = documents_changed(events, warehouse.open(), zone, partitions, synced)
        flood = {WAITING_TAG: str(waiting)} if waiting else {}
        requests = []
        if changes:
            materialized = {name: context.instance.get_materialized_partitions(t.entity_key(BY_NAME[name]))
                            for name in changes}
            requests += [run_request(group, trigger="webhook events", job_name=documents_job.name, extra_tags=flood,
                                     t=t)
                         for group in group_runs(changes, materialized)]
        references = sorted({synced.references[e.type] for e in events if e.type in synced.references})
        if references:
            requests.append(dg.RunRequest(
                run_key=f"webhook:reference:{events[0].seq}-{events[-1].seq}", job_name=reference_job.name,
                asset_selection=[t.entity_key(BY_NAME[name]) for name in references],
                tags={"precoro/trigger": "webhook events", **flood}))
        cursor.seq = events[-1].seq
        if cost:  # events about nothing synced cost nothing
            cursor.spent.append((now, cost))
        context.update_cursor(cursor.dump())
        documents = sum(len(c.rows) for by_day in changes.values() for c in by_day.values())
        context.log.info(f"{len(events)} webhook event(s) {events[0].seq}..{events[-1].seq}: {documents} "
                         f"document(s) changed, reference data: {', '.join(references) or 'none'}")
        if waiting:
            context.log.warning(cap)
        if not requests:
            return dg.SkipReason(f"{len(events)} webhook event(s), none about what is synced."
                                 + (f" {cap}" if waiting else ""))
        return requests

    return precoro_webhook_events


def _when_spent(cursor: EventsCursor, day: float, now: float) -> str:
    """When the oldest spending of the last day leaves the sliding day (now, if none is recorded)."""
    moment = min((at for at, _ in cursor.spent), default=now - day) + day
    return f"{datetime.fromtimestamp(max(moment, now), UTC):%Y-%m-%d %H:%M:%S} UTC"


def documents_changed(events: list[WebhookEvent], store, zone: ZoneInfo,
                      partitions: dg.DailyPartitionsDefinition, synced: Synced = EVERY_TYPE) -> dict[str, dict]:
    """The events' documents by asset and day (one entry per document however many events name it)."""
    by_entity: dict[str, dict[str, datetime]] = {}
    for event in events:
        name = synced.documents.get(event.type)
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
