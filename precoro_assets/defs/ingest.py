"""Dagster assets over the entity catalogue: one asset per Precoro entity.

Documents are partitioned by day of createDate and synced incrementally (see `precoro_assets.ingest.sync`);
reference data is synced by modifiedSince. Each asset writes its table and child tables, reports what it
did and what it spent, and checks what it wrote (keys, counts against Precoro's list, parents, totals).
"""


import json
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
from pydantic import Field

from ..api.errors import QuotaExhausted
from ..api.quota import DAILY_QUOTA
from ..catalogue import DOCUMENTS, ENTITIES, Entity
from ..ingest.details import prepare_detail_workers
from ..ingest.reference import sync_reference
from ..ingest.summary import SyncSummary
from ..ingest.sync import list_ahead, sync_changes, sync_documents, worth_listing_ahead
from ..reconcile.tables import RECONCILIATION_LEDGER
from ..runtime.run_launcher import limit_pool, pool_limit
from ..warehouse import tables, views
from ..warehouse.drift import (
    Drift,
    Schema,
    drift,
    only_in_raw,
    schema_changes,
    schema_now,
    steady_state,
)
from ..warehouse.rows import has_lines_column, table_columns
from .maintenance import REFERENCE_FRESHNESS
from .naming import DEFAULT, PrecoroTranslator
from .naming import DOCUMENTS as DOCUMENTS_FLOW
from .naming import REFERENCE as REFERENCE_FLOW
from .resources import PrecoroResource, WarehouseResource
from .sources import quota_observation

# The bundled code location's names (naming.DEFAULT); a company of build_definitions names its own.
DOCUMENTS_GROUP = DEFAULT.name(DOCUMENTS_FLOW)
REFERENCE_GROUP = DEFAULT.name(REFERENCE_FLOW)
API_POOL = DEFAULT.name("api")
# Steps that talk to Precoro at once, on the instances our commands set up (`precoro-assets sync`, `demo`): one.
# The shared request ledger paces every step whatever the pool allows; one at a time spares database locks and
# keeps a backfill's days in order. Another deployment sets it with `dagster instance concurrency set precoro_api 1`.
API_POOL_LIMIT = 1


def limit_api_pool(instance: dg.DagsterInstance) -> None:
    """Give this instance's precoro_api pool its limit, unless its owner set one (see runtime.run_launcher.limit_pool)."""
    limit_pool(instance, API_POOL, API_POOL_LIMIT)


ANALYST_VIEWS = DEFAULT.key("analyst_views")


def create_analyst_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The analyst views, with the other flows' tables they read (the review queue: reconciliation's ledger)."""
    return views.create_views(con, [RECONCILIATION_LEDGER])


def asset_key(entity: Entity) -> dg.AssetKey:
    """The entity's asset key in the bundled code location (naming.DEFAULT)."""
    return DEFAULT.entity_key(entity)


def table_schema(entity: Entity, child=None) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(c.name, c.type, description=c.description)
                                   for c in table_columns(entity, child)])


def definition_metadata(entity: Entity) -> dict:
    """Column schemas of the entity's table and child tables, shown in the asset's page."""
    metadata: dict = {
        "dagster/column_schema": table_schema(entity),
        "dagster/table_name": f"precoro.{entity.name}",
        "precoro/resource": f"/{entity.path} (key: {entity.key})",
    }
    for child in entity.children:
        metadata[f"child table precoro.{child.name}"] = dg.MetadataValue.table_schema(table_schema(entity, child))
    return metadata


# ---- checks -----------------------------------------------------------------------------------

def check_specs(entity: Entity, key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    specs = [
        dg.AssetCheckSpec("unique_keys", asset=key, description=f"Every {entity.key} appears once in "
                          f"precoro.{entity.name}, and child rows are unique within their parent."),
        dg.AssetCheckSpec("children_have_parents", asset=key,
                          description="Every child-table row points at an existing parent row."),
    ]
    specs.append(dg.AssetCheckSpec("schema_drift", asset=key, blocking=False, description=(
        "Warns when Precoro's records changed since they were last seen (remembered in precoro.schema_fields): a "
        "field appeared, disappeared or came as another JSON type; once per change. The steady state (the fields "
        "seen, those the catalogue reads but no record carries, those kept in raw only) is in the metadata.")))
    specs.append(dg.AssetCheckSpec("nothing_only_in_raw", asset=key, blocking=False, description=(
        "Fails when data Precoro sent reached raw but not the typed tables: a child table without rows for records "
        "whose raw carries its collection, or a column NULL in every row while raw has a value under a near name.")))
    if entity.partitioned:
        specs.append(dg.AssetCheckSpec("count_matches_precoro", asset=key, description=(
            "Rows stored per partition day equal the number of documents Precoro listed for that day.")))
    if any(child.name.endswith("_items") and any(c.name == "sum" for c in child.columns) for child in entity.children) \
            and any(c.name == "sum" for c in entity.columns):
        specs.append(dg.AssetCheckSpec("total_equals_lines", asset=key, description=(
            "Each document's total equals the sum of its lines (within a cent per line)."),
            blocking=False))
    return specs


@dataclass
class CheckFindings:
    """What the checks' queries found in the warehouse (see check_results for what passes)."""

    duplicates: list[tuple]
    orphans: dict[str, int]
    stored_per_day: dict[str, int] | None  # documents: rows stored per partition day of the run
    totals_off: list[tuple] | None  # documents with lines: totals that differ from their lines
    drift: Drift  # fields read but absent, fields present but unread
    only_in_raw: list[str]  # what the typed tables lost (it is in raw)
    schema_changes: list[str]  # fields that changed since last seen
    schema_seen: Schema  # what is remembered after this materialization
    schema_to_remember: Schema  # the tables whose remembered fields change (written after the checks)


def _has_totals_check(entity: Entity) -> bool:
    return any(spec.name == "total_equals_lines" for spec in check_specs(entity, asset_key(entity)))


def check_findings(entity: Entity, store, start: date | None, end: date | None) -> CheckFindings:
    """Run the checks' queries, in one read transaction: DuckLake then looks each table's files up once, and no
    other query of this process reads the catalog meanwhile. Two threads reading the SQLite catalog at once
    could stall for a whole second: the SQLite that DuckDB's extension bundles sleeps in whole seconds when
    the catalog is busy, and a second reader made it busy one run in two (see report)."""
    def queries(con) -> tuple:
        return (tables.duplicate_keys(con, entity), tables.orphan_children(con, entity),
                tables.count_per_day(con, entity, start, end) if entity.partitioned else None,
                tables.totals_not_matching_lines(con, entity, start, end) if _has_totals_check(entity) else None,
                tables.collections_not_stored(con, entity, start, end),
                tables.field_counts(con, entity, start, end),
                tables.seen_fields(con, [entity.table(child) for child in (None, *entity.children)]),
                tables.filled_counts(con, entity, start, end))

    duplicates, orphans, stored_per_day, totals_off, collections, counts, before, filled = store.read(queries)
    changes, to_remember = schema_changes(schema_now(counts), before)
    return CheckFindings(
        duplicates=duplicates, orphans=orphans, stored_per_day=stored_per_day, totals_off=totals_off,
        drift=drift(entity, counts), only_in_raw=only_in_raw(entity, counts, filled, collections),
        schema_changes=changes, schema_seen={**before, **to_remember}, schema_to_remember=to_remember)


def check_results(key: dg.AssetKey, found: CheckFindings, summary: SyncSummary) -> Iterator[dg.AssetCheckResult]:
    yield dg.AssetCheckResult(asset_key=key, check_name="unique_keys", passed=not found.duplicates,
                              metadata={"duplicates": len(found.duplicates), "examples": str(found.duplicates[:5])})
    yield dg.AssetCheckResult(asset_key=key, check_name="children_have_parents",
                              passed=not any(found.orphans.values()),
                              metadata={f"{t} orphans": n for t, n in found.orphans.items()} or {"child tables": 0})
    yield dg.AssetCheckResult(
        asset_key=key, check_name="schema_drift", passed=not found.schema_changes,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"changes": len(found.schema_changes),
                  "changed since last seen": "\n".join(found.schema_changes) or "none",
                  "fields absent": len(found.drift.absent), "fields not read": len(found.drift.unread),
                  "absent (catalogue reads them, no record has them)": "\n".join(found.drift.absent) or "none",
                  "not read (records have them, no column reads them)": "\n".join(found.drift.unread) or "none",
                  "fields seen (steady state)": steady_state(found.schema_seen) or "none yet"})
    yield dg.AssetCheckResult(
        asset_key=key, check_name="nothing_only_in_raw", passed=not found.only_in_raw,
        metadata={"problems": len(found.only_in_raw), "only in raw": "\n".join(found.only_in_raw) or "none"})
    if found.stored_per_day is not None:
        stored = found.stored_per_day
        mismatches = {day: (listed, stored.get(day, 0)) for day, listed in summary.listed_per_day.items()
                      if stored.get(day, 0) != listed}
        yield dg.AssetCheckResult(
            asset_key=key, check_name="count_matches_precoro", passed=not mismatches,
            metadata={"days checked": len(summary.listed_per_day), "documents listed": summary.listed,
                      "mismatches (day: listed, stored)": str(dict(list(mismatches.items())[:10]))})
    if found.totals_off is not None:
        off = found.totals_off
        yield dg.AssetCheckResult(
            asset_key=key, check_name="total_equals_lines", passed=not off,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"documents off": len({row[0] for row in off}),
                      "examples (key, which total, document, lines)": str(off[:5])})


def report(entity: Entity, key: dg.AssetKey, summary: SyncSummary, precoro: PrecoroResource, store,
           start: date | None = None,
           end: date | None = None, add_day_metadata: Callable[[dict, str], None] | None = None,
           spent_before: int = 0) -> Generator[dg.MaterializeResult | dg.AssetCheckResult, None, list[str]]:
    """The materialization (for a run over several days, each day's own figures given first through
    `add_day_metadata(metadata, day)`, see day_metadata), then the checks' results.

    The checks' queries run in a thread (see check_findings) while Dagster records the materialization (an event
    per partition of the run: seconds for 90 days), which takes about as long: DuckDB works without the GIL.
    The materialization's and the days' figures are read before: no two queries of the run read the catalog
    at once (see check_findings). The analyst views are
    created here when the warehouse has none yet: whoever syncs can query them at once (precoro/analyst_views
    re-creates them all)."""
    created = store.write(create_analyst_views, what="create the analyst views") \
        if store.read(views.missing_views) else []
    if add_day_metadata is not None and start is not None and end is not None and start < end:
        for day, metadata in day_metadata(entity, summary, store, start, end).items():
            add_day_metadata(metadata, day)
    result = store.read(lambda con: materialization(entity, key, summary, precoro, con, start, end, spent_before))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"precoro-checks-{entity.name}") as pool:
        findings = pool.submit(check_findings, entity, store, start, end)
        yield result
        found = findings.result()
    if found.schema_to_remember:  # written only when something changed: a write adds a snapshot to the catalog
        store.write(lambda con: tables.remember_fields(con, found.schema_to_remember, datetime.now(UTC)),
                    what="remember the fields seen")
    yield from check_results(key, found, summary)
    return created


def after_report(context: dg.AssetExecutionContext, t: PrecoroTranslator, precoro: PrecoroResource,
                 views_created: list[str]) -> None:
    """What a sync shows beyond its own asset: the analyst views as materialized when it created them (they are
    queryable from then on), and what is left of the request quota on precoro/api."""
    if views_created:
        context.log_event(dg.AssetMaterialization(asset_key=t.key("analyst_views"), description=(
            f"Created by the sync of {context.asset_key.to_user_string()}: some or all of them were missing."),
            metadata={"views": ", ".join(f"precoro.{name}" for name in views_created)}))
    context.log_event(quota_observation(precoro, t.key("api")))


# ---- metadata ----------------------------------------------------------------------------------

def _preview(con, table: str, start: date | None, end: date | None) -> dg.MetadataValue:
    rows = tables.preview(con, table, start, end)
    if not rows:
        return dg.MetadataValue.md("_no rows_")
    columns = list(rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r[c]).replace("|", "\\|")[:40] for c in columns) + " |" for r in rows]
    return dg.MetadataValue.md("\n".join(lines))


# A day's own figures, over the run's in that day's materialization (see day_metadata)
DAY_COUNTS = ("listed by Precoro", "new", "changed", "unchanged", "removed")


def day_metadata(entity: Entity, summary: SyncSummary, store, start: date, end: date) -> dict[str, dict]:
    """A run over several days: per day, the metadata that day's materialization carries over the run's (Dagster
    records the run's materialization once per partition of a single-run backfill, so without it each day showed
    the run's totals): its own rows and counts. Given to Dagster as partition-scoped metadata, it costs no event
    of its own (one per day and asset were a tenth of a 10k backfill)."""
    stored = store.read(lambda con: tables.count_per_day(con, entity, start, end))
    return {day: {"dagster/row_count": stored.get(day, 0), **counts,
                  "run total": f"no: this day's own rows and counts; the other figures are the run's ({start}..{end})"}
            for day, counts in summary.per_day.items()}


def progress_metadata(entity: Entity, con) -> dict:
    """How far the whole table is from having every document's lines (headers are stored first)."""
    if not has_lines_column(entity):
        return {}
    total, with_lines = tables.lines_progress(con, entity)
    return {"documents with lines": f"{with_lines} / {total}",
            "documents awaiting lines": total - with_lines,
            "quota days to complete (at most)": -(-(total - with_lines) // DAILY_QUOTA)}


def materialization(entity: Entity, key: dg.AssetKey, summary: SyncSummary, precoro: PrecoroResource, con,
                    start: date | None = None, end: date | None = None, spent_before: int = 0) -> dg.MaterializeResult:
    several_days = start is not None and end is not None and start < end
    rows = tables.count_rows_between(con, entity.name, start, end)
    metadata: dict = {
        # dagster/row_count is a partition's rows: a run over several days gives each day's own figures over these
        # (see day_metadata); its own totals are labelled so
        **({"run total": f"yes: {start}..{end}", "rows in the run's days": rows} if several_days
           else {"dagster/row_count": rows}),
        # a partition's row count is its day's: the whole table's too, for the asset's page
        **({"rows in the table": tables.count_rows(con, entity.name)} if entity.partitioned else {}),
        # a change run's documents came from a sensor: their days were not listed (unless one had too many
        # changes to hand over), and it never says it listed what it did not
        **({"listed by Precoro": summary.listed} if summary.listed or not summary.handed_over else {}),
        **({"handed over by a sensor": summary.handed_over} if summary.handed_over else {}),
        "new": summary.new,
        "changed": summary.changed,
        "unchanged": summary.unchanged,
        "removed": summary.removed,
        "detail requests": summary.details_fetched,
        "details reused from a failed run": summary.details_from_staging,
        "rows written": dg.MetadataValue.json(summary.rows_written),
        "rejected records": len(summary.rejected),
        "field problems": len(summary.problems),
        "preview": _preview(con, entity.name, start, end),
        **progress_metadata(entity, con),
        **{k.replace("precoro_", "").replace("_", " "): v for k, v in precoro.accounting_metadata(spent_before).items()},
    }
    if summary.vanished:
        metadata["gone before their detail was read (removed)"] = dg.MetadataValue.md(
            f"{len(summary.vanished)}: " + ", ".join(summary.vanished[:20]))
    if summary.kept_elsewhere:
        metadata["not listed on their day but still in Precoro (kept)"] = ", ".join(summary.kept_elsewhere[:20])
    if summary.unstable_days:
        metadata["days whose list kept moving (nothing removed)"] = ", ".join(summary.unstable_days)
    if summary.filed_under:  # a change run: its partition is the sensor's day, a document's rows are its own day's
        metadata["filed under their own days (createDate)"] = ", ".join(
            f"{day}: {count}" for day, count in sorted(summary.filed_under.items()))
    if summary.full_refresh is not None:
        metadata["full refresh"] = summary.full_refresh
    if summary.rejected:
        metadata["rejected (first 10; all in precoro.rejected_records)"] = dg.MetadataValue.md(
            "\n".join(f"- {r['reason']}" for r in summary.rejected[:10]))
    if summary.problems:
        metadata["field problems (first 10)"] = dg.MetadataValue.md(
            "\n".join(f"- {p}" for p in summary.problems[:10]))
    return dg.MaterializeResult(asset_key=key, metadata=metadata)


# A run stops whenever an hour's or a day's requests are spent (about 3 times per quota day at full speed) and
# Dagster retries it when they are back: 30 stops let one backfill use about ten days of quota.
QUOTA_STOP_RETRIES = 30


def _quota_stop(context, error: QuotaExhausted) -> dg.RetryRequested:
    """The day's (or hour's) requests are spent: stop cleanly and let Dagster retry when they are back."""
    wait = max(1, int((error.resume_at - datetime.now(error.resume_at.tzinfo)).total_seconds()) + 1)
    context.log.warning(f"Precoro request quota spent ({error.window}); work resumes at "
                        f"{error.resume_at:%Y-%m-%d %H:%M:%S %Z} (in {timedelta(seconds=wait)}). "
                        "Details fetched so far are kept and will not be requested again.")
    return dg.RetryRequested(max_retries=QUOTA_STOP_RETRIES, seconds_to_wait=wait)


# ---- factories ----------------------------------------------------------------------------------

class DocumentSyncConfig(dg.Config):
    changed_documents: str = Field(default="", description=(
        "Set by the precoro_changes sensor: JSON {day: {key: list row}} of the documents it saw change on the run's "
        "days (a day may be null: it changed too much to hand over, the run lists it). The run fetches just those, "
        "lists no other day and removes nothing. Empty (the default): list the partitions' days and bring them in "
        "line with Precoro, removals included."))


def _changed_documents(config: DocumentSyncConfig, start: date, end: date) -> dict[date, dict[str, dict] | None] | None:
    """The sensor's changes by day, checked against the run's days; None for a normal (listing) run."""
    if not config.changed_documents:
        return None
    changed = json.loads(config.changed_documents, parse_float=Decimal)
    problem = "changed_documents must be a JSON object of {day (YYYY-MM-DD): {key: list row} or null}"
    if not isinstance(changed, dict):
        raise dg.Failure(problem)
    by_day: dict[date, dict[str, dict] | None] = {}
    for day, rows in changed.items():
        try:
            when = date.fromisoformat(day)
        except ValueError:
            raise dg.Failure(f"{problem}; {day!r} is not a day") from None
        if not start <= when <= end:
            raise dg.Failure(f"changed_documents names {day}, outside this run's days {start}..{end}")
        if rows is not None and not (isinstance(rows, dict) and all(isinstance(row, dict) for row in rows.values())):
            raise dg.Failure(f"{problem}; the value for {day} is not")
        by_day[when] = rows
    return by_day


def run_assets(context: dg.AssetExecutionContext) -> set[dg.AssetKey]:
    """The assets whose steps this run executes. Not `context.selected_asset_keys`: for a single asset's step that
    names the step's own asset only. The run's job is subset to what was selected (in the UI, by a sensor, a
    backfill); a retry from failure runs only some of its steps."""
    steps = context.run.step_keys_to_execute
    return {key for key in context.job_def.asset_layer.asset_graph.executable_asset_keys
            if steps is None or key.to_python_identifier() in steps}


def steps_one_at_a_time(context: dg.AssetExecutionContext, pool: str) -> bool:
    """Whether the run's Precoro-bound steps run one after the other (the precoro_api pool's limit is 1, as our
    commands and deploy/ set it): listing the other types ahead is only safe then. Side by side, a type's own
    step may already be listing and writing it."""
    return pool_limit(context.instance, pool) == 1


def _spec_arguments(spec: dg.AssetSpec) -> dict:
    """What the translator's spec decides of an entity asset (naming.PrecoroTranslator.get_asset_spec)."""
    return {"key": spec.key, "group_name": spec.group_name, "tags": spec.tags, "owners": spec.owners,
            "automation_condition": spec.automation_condition}


def document_asset(entity: Entity, partitions: dg.DailyPartitionsDefinition,
                   t: PrecoroTranslator = DEFAULT) -> dg.AssetsDefinition:
    spec = t.get_asset_spec(entity)
    pool = t.name("api")

    @dg.asset(
        **_spec_arguments(spec),
        description=entity.description + f"\n\nTable `precoro.{entity.name}`, partitioned by day of createDate; "
        "a run lists the days' documents and fetches details only for new or changed ones.",
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=pool,
        kinds={"precoro", "duckdb"},
        deps=[t.key("api")],
        metadata=definition_metadata(entity),
        check_specs=check_specs(entity, spec.key),
        required_resource_keys=t.resource_keys("precoro", "warehouse"),
    )
    def _document(context: dg.AssetExecutionContext, config: DocumentSyncConfig):
        precoro: PrecoroResource = t.resource(context, "precoro")
        warehouse: WarehouseResource = t.resource(context, "warehouse")
        window = context.partition_time_window
        start, end = window.start.date(), (window.end - timedelta(days=1)).date()
        changed = _changed_documents(config, start, end)
        client, staging, store = precoro.get_client(), warehouse.staging(), warehouse.open()
        spent_before = client.spent  # the run's steps share its client (in-process): this step's requests only
        if changed is None and entity.fetch_detail:
            prepare_detail_workers(client, staging)  # they start while the tables are made ready and days listed
        try:  # each sync makes the entity's tables ready (the catalogue's columns and descriptions) first
            if changed is None:
                # every document type of the run is listed (and its headers stored) before any detail is fetched
                in_run = run_assets(context)
                others = [other for other in DOCUMENTS if other is not entity and t.entity_key(other) in in_run]
                # Only the run's first step may, whether or not it does: a later one would list types whose steps
                # already ran (whether listing ahead pays depends on the requests left, which change meanwhile).
                first_step = bool(others) and staging.claim_list_ahead(context.run.run_id)
                if first_step and worth_listing_ahead(client) and steps_one_at_a_time(context, pool):
                    list_ahead(client, store, staging, others, start, end, progress=context.log.info,
                               zone=ZoneInfo(partitions.timezone))
                summary = sync_documents(client, store, staging, entity, start, end, progress=context.log.info,
                                         zone=ZoneInfo(partitions.timezone))
            else:
                summary = sync_changes(client, store, staging, entity, changed, progress=context.log.info,
                                       zone=ZoneInfo(partitions.timezone))
        except QuotaExhausted as error:
            if has_lines_column(entity):  # the headers of the listed documents are stored: how far are the lines
                context.log_event(dg.AssetObservation(asset_key=spec.key, metadata=store.read(
                    lambda con: progress_metadata(entity, con))))
            raise _quota_stop(context, error) from error
        for rejection in summary.rejected[:20]:
            context.log.warning(f"kept out of precoro.{entity.name} (see precoro.rejected_records): "
                                f"{rejection['reason']}")
        created = yield from report(entity, spec.key, summary, precoro, store, start, end,
                                    add_day_metadata=lambda metadata, day:
                                    context.add_asset_metadata(metadata, partition_key=day), spent_before=spent_before)
        after_report(context, t, precoro, created)

    return _document


def reference_asset(entity: Entity, t: PrecoroTranslator = DEFAULT) -> dg.AssetsDefinition:
    spec = t.get_asset_spec(entity)

    @dg.asset(
        **_spec_arguments(spec),
        description=entity.description + f"\n\nTable `precoro.{entity.name}`, synced by modifiedSince "
        "(with a full refresh every 7 days, or when `full_refresh` is set).",
        freshness_policy=REFERENCE_FRESHNESS,
        pool=t.name("api"),
        kinds={"precoro", "duckdb"},
        deps=[t.key("api")],
        metadata=definition_metadata(entity),
        check_specs=check_specs(entity, spec.key),
        required_resource_keys=t.resource_keys("precoro", "warehouse"),
    )
    def _reference(context: dg.AssetExecutionContext, config: ReferenceSyncConfig):
        precoro: PrecoroResource = t.resource(context, "precoro")
        warehouse: WarehouseResource = t.resource(context, "warehouse")
        store = warehouse.open()
        spent_before = precoro.get_client().spent  # the run's steps share its client (in-process)

        def ensure(con) -> None:
            tables.ensure_sync_state(con)
            tables.ensure_tables(con, entity)

        store.write(ensure)
        try:
            summary = sync_reference(precoro.get_client(), store, entity, full_refresh=config.full_refresh,
                                     progress=context.log.info, keep_bank_details=warehouse.keep_bank_details)
        except QuotaExhausted as error:
            raise _quota_stop(context, error) from error
        created = yield from report(entity, spec.key, summary, precoro, store, spent_before=spent_before)
        after_report(context, t, precoro, created)

    return _reference


class ReferenceSyncConfig(dg.Config):
    full_refresh: bool = False
    """Read every record instead of the changes since the last sync (also removes deleted ones)."""


def build_partitions(start_date: date, timezone: str = "UTC") -> dg.DailyPartitionsDefinition:
    """Days of createDate in the company's time zone (PRECORO_TIMEZONE), the calendar Precoro's createDate
    filter uses. end_offset=1: today's partition exists, so documents created today can be synced today."""
    return dg.DailyPartitionsDefinition(start_date=start_date.isoformat(), end_offset=1, timezone=timezone)


def build_ingest_assets(partitions: dg.DailyPartitionsDefinition, entities: tuple[Entity, ...] = ENTITIES,
                        t: PrecoroTranslator = DEFAULT) -> list[dg.AssetsDefinition]:
    """An asset per selected entity (catalogue.select): documents partitioned by day, reference data not."""
    return [document_asset(e, partitions, t) if e.partitioned else reference_asset(e, t) for e in entities]
