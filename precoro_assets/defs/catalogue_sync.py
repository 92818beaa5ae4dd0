"""The catalogue sync's asset: plan how Precoro's suppliers, items, taxes and custom field options are brought in
step with the accounting catalogue, and queue the writes in the outbox (see master_data/plan.py for the rules).

Nothing is sent here: the write-back job (`precoro_writeback`, a dry run unless sending is on) sends the queued
rows, exactly once, as it sends reconciliation's.
"""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import Field

from ..catalogue import BY_NAME, Entity
from ..ledger.master_data_files import load_catalogue
from ..ledger.source import LedgerNotReady
from ..master_data import tables
from ..master_data.plan import CATALOGUE_RESOURCES, CONFLICT, DEFAULT_ACCOUNTS_FIELD, groups_for, plan
from .ingest import _quota_stop
from .naming import CATALOGUE_SYNC, PrecoroTranslator
from .reconcile import _markdown, mirror_outbox, spec
from .resources import LedgerResource, OutboxResource, PrecoroResource, WarehouseResource


class CatalogueSyncConfig(dg.Config):
    accounts_field: str = Field(default=DEFAULT_ACCOUNTS_FIELD, description=(
        "The item custom field whose options hold the chart of accounts (accounts.csv)."))


def build_catalogue_sync(t: PrecoroTranslator, entities: tuple[Entity, ...]
                         ) -> "tuple[dg.AssetsDefinition, dg.UnresolvedAssetJobDefinition]":
    """The plan's asset (`<prefix>/catalogue_sync_plan`) and its job (`<prefix>_catalogue_sync`), in a group of
    their own: reconciling never writes to Precoro's catalogue."""
    group = t.name(CATALOGUE_SYNC)
    CATALOGUE_SYNC_PLAN = t.key("catalogue_sync_plan")
    inputs = [t.entity_key(entity) for entity in entities if entity.name in ("suppliers", "items")]

    @dg.multi_asset(
        name=t.op_name("catalogue_sync"),
        specs=[spec(CATALOGUE_SYNC_PLAN, tables.CATALOGUE_SYNC_PLAN, [t.key("ledger_folder"), *inputs], group, None)],
        description="Compare the accounting catalogue with Precoro and queue the writes that bring Precoro in step.",
        pool=t.name("api"),
        required_resource_keys=t.resource_keys("precoro", "warehouse", "outbox", "ledger"),
        check_specs=[dg.AssetCheckSpec("catalogue_in_step", asset=CATALOGUE_SYNC_PLAN, description=(
            "Every catalogue row loaded and no record is in conflict (WARN: rejected rows and conflicts, with their "
            "reasons in the table)"))],
    )
    def catalogue_sync(context: dg.AssetExecutionContext, config: CatalogueSyncConfig):
        precoro: PrecoroResource = t.resource(context, "precoro")
        warehouse: WarehouseResource = t.resource(context, "warehouse")
        outbox: OutboxResource = t.resource(context, "outbox")
        ledger: LedgerResource = t.resource(context, "ledger")
        from ..api.errors import QuotaExhausted

        try:
            catalogue = load_catalogue(Path(ledger.directory), ledger.settle_seconds)
        except LedgerNotReady as busy:  # a half-written vendors.csv must not plan creates and disables
            raise dg.Failure(description=f"The accounting catalogue was not read: {busy}") from None
        store = warehouse.open()
        store.write(tables.ensure_inputs, what="make sure the synced suppliers and items tables exist")
        suppliers, items = store.read(tables.synced_reference)
        needed = {name for name, records in (("suppliers", catalogue.vendors), ("items", catalogue.products)) if records}
        missing = store.read(tables.never_synced) & needed
        if missing:
            raise dg.Failure(
                description=f"{' and '.join(sorted(missing))} never synced: the plan matches unlinked Precoro records by "
                            "name in the synced copy and would otherwise create them twice. Materialize "
                            f"{', '.join(t.entity_key(BY_NAME[name]).to_user_string() for name in sorted(missing))} first (job "
                            f"{t.name('reference')}, "
                            "or precoro-assets sync).")
        client = precoro.get_client()
        spent_before = client.spent
        try:
            result = plan(groups_for(catalogue, client, suppliers, items, config.accounts_field))
        except QuotaExhausted as error:
            raise _quota_stop(context, error) from error
        lookups = client.spent - spent_before
        now, batch = datetime.now(UTC), context.run.run_id
        rejected = [vars(r) for r in catalogue.rejected]
        store.write(lambda con: tables.write_plan(con, result, rejected, now, batch), what="write the catalogue plan")
        queue = outbox.open()
        proposed = queue.propose(result.proposals, batch, resources=CATALOGUE_RESOURCES)
        mirror_outbox(store, queue)
        counts = result.counts()
        actions = sorted({action for per_kind in counts.values() for action in per_kind})
        table = _markdown([[kind, *(per_kind.get(a, 0) for a in actions)] for kind, per_kind in sorted(counts.items())],
                          ["kind", *actions])
        context.log.info(f"catalogue plan: {len(result.rows)} records, {len(result.proposals)} writes proposed "
                         f"({proposed.new} newly queued) after {lookups} lookup request(s)")
        yield dg.MaterializeResult(asset_key=CATALOGUE_SYNC_PLAN, metadata={
            "dagster/row_count": len(result.rows) + len(rejected), "files": ", ".join(catalogue.files) or "(none)",
            "actions per kind": table, "writes proposed": len(result.proposals), "newly queued": proposed.new,
            "already queued": proposed.known, "superseded": proposed.superseded, "lookup requests": lookups,
            "rejected rows": len(rejected)})
        conflicts = [row for row in result.rows if row.action == CONFLICT]
        yield dg.AssetCheckResult(
            asset_key=CATALOGUE_SYNC_PLAN, check_name="catalogue_in_step", passed=not conflicts and not rejected,
            severity=dg.AssetCheckSeverity.WARN, metadata={
                "conflicts": len(conflicts), "rejected rows": len(rejected),
                "first conflicts": "; ".join(f"{r.kind} {r.ledger_id}: {r.reason}" for r in conflicts[:5]) or "none",
                "first rejected": "; ".join(f"{r['file']}:{r['line']}: {r['reason']}" for r in rejected[:5]) or "none"})

    job = dg.define_asset_job(
        t.name(CATALOGUE_SYNC), executor_def=dg.in_process_executor,
        selection=dg.AssetSelection.assets(CATALOGUE_SYNC_PLAN),
        description=f"Compare the accounting catalogue with Precoro's suppliers, items, taxes and custom field "
                    f"options and queue the writes; {t.name('writeback')} sends them (a dry run unless send is on).")
    return catalogue_sync, job
