"""Dagster assets of the accounting side and of the reconciliation.

- `precoro/ledger_payments` + `precoro/ledger_bills`: one load of the ledger (LedgerSource) into the warehouse,
  with every unreadable row kept in `precoro.ledger_rejected_rows` and listed in the metadata.
- `precoro/reconciliation_invoices` + `precoro/reconciliation_ledger` + `precoro/writeback_outbox`: classify
  every invoice and ledger record, and queue the write-backs that would make both sides agree. Nothing is
  sent to Precoro here; the write-back job does that (see defs/writeback.py).

Both can follow the data on their own: with the sensor `precoro_reconcile_automation` running (stopped by
default; see definitions.py) the ledger is loaded when it has never been and every hour, and the reconciliation
runs after the synced invoices, payments, purchase orders or the ledger changed, once no run is still updating
them. That only queues write-backs: sending stays the write-back job's, a dry run unless sending is switched on.
"""


from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg

from ..catalogue import Column, Entity
from ..ledger.files import FileLedgerSource
from ..ledger.source import LedgerNotReady, LedgerSnapshot, LedgerSource
from ..reconcile import tables
from ..reconcile.ap_matching import load_rules
from ..reconcile.classify import reconcile_stored
from ..reconcile.records import (
    CLASSES,
    MATCHED,
    RECONCILED_RESOURCES,
    UNMATCHED,
    Reconciliation,
    ledger_tally,
)
from ..writeback.outbox import Outbox
from .naming import DEFAULT, RECONCILIATION, PrecoroTranslator
from .resources import LedgerResource, OutboxResource, WarehouseResource

GROUP = DEFAULT.name(RECONCILIATION)  # the bundled code location's
# the synced entities reconciliation reads (a deselected one's table is read as an empty one)
PRECORO_INPUTS = ("invoices", "payments", "purchase_orders")

# Declarative automation, evaluated by the automation sensor `precoro_reconcile_automation` (definitions.py).
# Unlike AutomationCondition.eager(), the first evaluation does not count as "handled": an asset that is missing
# when the sensor is switched on is materialized. A request is handled once Dagster launched it (a failed run is
# retried by dagster.yaml's run_retries, not requested again and again).
_HANDLED = dg.AutomationCondition.newly_requested() | dg.AutomationCondition.newly_updated()
# The ledger has no upstream in Dagster (its files come from the accounting side): load it when it is missing,
# then every hour.
LEDGER_AUTOMATION = (
    (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.cron_tick_passed("0 * * * *")).since(_HANDLED)
    & ~dg.AutomationCondition.in_progress()
).with_label("when missing, then hourly")
# After any input changed, once no run or backfill is still writing one of them. Unlike eager(), a document
# partition never synced holds nothing back: the change sensor syncs only the days that changed.
RECONCILIATION_AUTOMATION = (
    (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()).since(_HANDLED)
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after its inputs change")


def schema(columns: tuple[Column, ...]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(c.name, c.type, description=c.description) for c in columns])


def spec(key: dg.AssetKey, layout: tuple, deps: list[dg.AssetKey], group: str,
         automation: dg.AutomationCondition | None = RECONCILIATION_AUTOMATION) -> dg.AssetSpec:
    name, description, columns = layout
    return dg.AssetSpec(key, description=f"{description}\n\nTable `precoro.{name}`.", deps=deps, group_name=group,
                        kinds={"duckdb"}, metadata={"dagster/column_schema": schema(columns),
                                                    "dagster/table_name": f"precoro.{name}"},
                        automation_condition=automation)


def _markdown(rows: Sequence[Sequence[object]], header: list[str]) -> dg.MetadataValue:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return dg.MetadataValue.md("\n".join(lines))


# ---- the ledger -----------------------------------------------------------------------------------------------

def load_in_batches(source: LedgerSource, add: Callable[[str, list], None]) -> LedgerSnapshot:
    """The source's payments and bills handed to add(kind, records): in batches as read where the source can
    (the drop folder: FileLedgerSource.load_into), else all at once; returns the rejected rows and files."""
    if isinstance(source, FileLedgerSource):
        return source.load_into(add)
    snapshot = source.load()
    add("payments", snapshot.payments)
    add("bills", snapshot.bills)
    return LedgerSnapshot(rejected=snapshot.rejected, files=snapshot.files)


# ---- the reconciliation ---------------------------------------------------------------------------------------

def class_totals(result: Reconciliation) -> dict[str, dict]:
    """Per asset: the count of every class, and a table of counts and amounts per class and currency."""
    totals = result.totals()
    amounts: dict[tuple[str, str, str], list] = {}  # (side, class, currency) -> [count, amount, ledger paid]

    def add(side: str, klass: str, currency: str, amount: Decimal, ledger_paid: Decimal) -> None:
        entry = amounts.setdefault((side, klass, currency), [0, Decimal("0.00"), Decimal("0.00")])
        entry[0], entry[1], entry[2] = entry[0] + 1, entry[1] + amount, entry[2] + ledger_paid

    for row in result.invoices:
        add("invoices", row.klass, row.invoice.currency, row.invoice.total, row.ledger_paid)
    for (klass, currency), (count, amount) in ledger_tally(result.ledger).items():
        amounts[("ledger", klass, currency)] = [count, amount, Decimal("0.00")]
    out = {}
    for side in ("invoices", "ledger"):
        counts = {f"{side}: {klass}": totals[side][klass] for klass in CLASSES}
        if side == "invoices":
            header = ["class", "currency", "count", "Precoro total", "ledger paid"]
            rows = [[k, cur, n, f"{a:.2f}", f"{b:.2f}"] for (s, k, cur), (n, a, b) in sorted(amounts.items())
                    if s == side]
        else:
            header = ["class", "currency", "count", "ledger amount"]
            rows = [[k, cur, n, f"{a:.2f}"] for (s, k, cur), (n, a, _) in sorted(amounts.items()) if s == side]
        out[side] = {**counts, "totals per class and currency": _markdown(rows, header)}
    return out


SETTLED = (MATCHED, UNMATCHED)  # classes that show no difference between the two sides


def _differences_check(key: dg.AssetKey, side: str, counts: dict[str, int]) -> dg.AssetCheckResult:
    differences = {klass: n for klass, n in counts.items() if n and klass not in SETTLED}
    return dg.AssetCheckResult(
        asset_key=key, check_name="all_reconciled", passed=not differences, severity=dg.AssetCheckSeverity.WARN,
        metadata={"records with a difference": sum(differences.values()),
                  **{f"{side}: {klass}": n for klass, n in sorted(differences.items())}})


def mirror_outbox(store, queue: Outbox) -> int:
    """Refresh the analysts' copy of the outbox in the warehouse."""
    rows = [row.as_table_row() for row in queue.rows()]
    return store.write(lambda con: tables.write_outbox_copy(con, rows), what="copy the outbox")


# ---- the assets -----------------------------------------------------------------------------------------------

def build_reconciliation(t: PrecoroTranslator, entities: tuple[Entity, ...]) -> list[dg.AssetsDefinition]:
    """The ledger's load (`<prefix>/ledger_payments`, `<prefix>/ledger_bills`) and the reconciliation
    (`<prefix>/reconciliation_invoices`, `reconciliation_ledger`, `writeback_outbox`), after the selected
    entities among invoices, payments and purchase orders."""
    group = t.name(RECONCILIATION)
    LEDGER_PAYMENTS, LEDGER_BILLS = t.key("ledger_payments"), t.key("ledger_bills")
    RECONCILIATION_INVOICES, RECONCILIATION_LEDGER = (
        t.key("reconciliation_invoices"), t.key("reconciliation_ledger"))
    WRITEBACK_OUTBOX = t.key("writeback_outbox")
    inputs = [t.entity_key(entity) for entity in entities if entity.name in PRECORO_INPUTS]

    @dg.multi_asset(
        name=t.op_name("ledger"),
        specs=[spec(LEDGER_PAYMENTS, tables.LEDGER_PAYMENTS, [t.key("ledger_folder")], group, LEDGER_AUTOMATION),
               spec(LEDGER_BILLS, tables.LEDGER_BILLS, [t.key("ledger_folder")], group, LEDGER_AUTOMATION)],
        required_resource_keys=t.resource_keys("ledger", "warehouse"),
        description="Load the accounting system's exports (payments and bills); bad rows are reported, not loaded.",
        check_specs=[dg.AssetCheckSpec("no_rejected_rows", asset=LEDGER_PAYMENTS, description=(
            "Every row of the ledger's files loaded (WARN: rows kept out are listed in precoro.ledger_rejected_rows "
            "with file, line and reason)."))],
    )
    def load_ledger(context: dg.AssetExecutionContext):
        ledger: LedgerResource = t.resource(context, "ledger")
        warehouse: WarehouseResource = t.resource(context, "warehouse")
        source = ledger.source()
        rows = tables.LedgerRows(datetime.now(UTC))
        try:
            snapshot = load_in_batches(source, rows.add)
        except LedgerNotReady as busy:  # a half-written export must not replace the last complete load
            raise dg.Failure(description=f"The ledger was not loaded: {busy}") from None
        written = warehouse.open().write(lambda con: rows.write(con, snapshot.rejected), what="write the ledger")
        for row in snapshot.rejected:
            context.log.warning(f"ledger row kept out: {row.file}:{row.line}: {row.reason}")
        rejected = _markdown([[r.file, r.line, r.reason] for r in snapshot.rejected[:50]], ["file", "line", "reason"])
        common: dict[str, Any] = {"source": source.name, "files": ", ".join(snapshot.files) or "(none)",
                  "rejected rows": len(snapshot.rejected), "rejected (file, line, reason)": rejected,
                  "rejected files": dg.MetadataValue.json({r.file: r.reason for r in snapshot.rejected if r.rejects_file})}
        yield dg.MaterializeResult(asset_key=LEDGER_PAYMENTS, metadata={
            "dagster/row_count": written["ledger_payments"], **common})
        yield dg.AssetCheckResult(asset_key=LEDGER_PAYMENTS, check_name="no_rejected_rows",
                                  passed=not snapshot.rejected, severity=dg.AssetCheckSeverity.WARN,
                                  metadata={"rejected rows": len(snapshot.rejected), "first rejected": rejected})
        yield dg.MaterializeResult(asset_key=LEDGER_BILLS, metadata={
            "dagster/row_count": written["ledger_bills"], **common})

    @dg.multi_asset(
        name=t.op_name("reconciliation"),
        specs=[spec(RECONCILIATION_INVOICES, tables.RECONCILIATION_INVOICES, [*inputs, LEDGER_PAYMENTS, LEDGER_BILLS],
                    group),
               spec(RECONCILIATION_LEDGER, tables.RECONCILIATION_LEDGER, [LEDGER_PAYMENTS, LEDGER_BILLS], group),
               spec(WRITEBACK_OUTBOX, tables.WRITEBACK_OUTBOX, [RECONCILIATION_INVOICES, RECONCILIATION_LEDGER], group)],
        required_resource_keys=t.resource_keys("ledger", "warehouse", "outbox"),
        description="Classify every invoice and ledger record and queue the write-backs that make both sides agree.",
        check_specs=[dg.AssetCheckSpec("all_reconciled", asset=key, description=(
            "Every record is matched, or unmatched with nothing to compare (WARN: the differences, per class, with "
            "their reasons in the table)")) for key in (RECONCILIATION_INVOICES, RECONCILIATION_LEDGER)],
    )
    def reconciliation(context: dg.AssetExecutionContext):
        ledger: LedgerResource = t.resource(context, "ledger")
        warehouse: WarehouseResource = t.resource(context, "warehouse")
        outbox: OutboxResource = t.resource(context, "outbox")
        try:
            rules = load_rules(Path(ledger.directory))
        except ValueError as error:  # a misread threshold or tolerance must not decide what is paid
            raise dg.Failure(description=f"{error} (in {ledger.directory}); fix it or remove the file to use the "
                                         "defaults (docs/reconciliation.md: reconciliation.yaml)") from None
        store = warehouse.open()
        store.write(tables.ensure_inputs, what="make sure the tables reconciliation reads exist")
        now, batch = datetime.now(UTC), context.run.run_id

        def reconcile_and_write(con, ordered: bool) -> Reconciliation:
            """Read, classify and write in one read snapshot (a read is one transaction): the ledger's payments are
            read in batches, once per pass (a million of them are never in memory at once; see
            reconcile.records.LedgerResults), and every pass must see the same ledger even if it is loaded again meanwhile."""
            invoices, purchase_orders = tables.load_invoices(con), tables.load_purchase_orders(con)
            result = reconcile_stored(invoices, lambda: tables.ledger_payments(con, ordered),
                                      tables.load_ledger_bills(con), purchase_orders, rules)
            store.write(lambda out: tables.write_reconciliation(out, result, now, batch),
                        what="write the reconciliation")  # reads the payments' rows as it writes them
            return result

        try:  # the drop folder's payments are stored in order: read as stored
            result = store.read(lambda con: reconcile_and_write(con, ordered=False))
        except tables.OutOfOrder:  # another source's: sorted on every pass (nothing was written: start over)
            result = store.read(lambda con: reconcile_and_write(con, ordered=True))
        queue = outbox.open()
        proposed = queue.propose(result.proposals, batch, resources=RECONCILED_RESOURCES)
        mirror_outbox(store, queue)
        totals = class_totals(result)
        context.log.info(f"reconciled {len(result.invoices)} invoices and {len(result.ledger)} ledger records; "
                         f"{proposed.new} new write-backs queued ({proposed.known} already known)")
        yield dg.MaterializeResult(asset_key=RECONCILIATION_INVOICES, metadata={
            "dagster/row_count": len(result.invoices), **totals["invoices"]})
        yield dg.MaterializeResult(asset_key=RECONCILIATION_LEDGER, metadata={
            "dagster/row_count": len(result.ledger), **totals["ledger"]})
        for key, side in ((RECONCILIATION_INVOICES, "invoices"), (RECONCILIATION_LEDGER, "ledger")):
            yield _differences_check(key, side, result.totals()[side])
        kinds: dict[str, int] = {}
        for proposal in result.proposals:
            kinds[proposal.kind] = kinds.get(proposal.kind, 0) + 1
        counts = queue.counts()
        yield dg.MaterializeResult(asset_key=WRITEBACK_OUTBOX, metadata={
            "dagster/row_count": sum(counts.values()), "batch": batch, "proposed": proposed.proposed,
            "newly queued": proposed.new, "already queued": proposed.known, "queued again": proposed.revived,
            "superseded": proposed.superseded,
            "proposed per kind": dg.MetadataValue.json(kinds), **{f"status: {k}": v for k, v in counts.items()},
            "outbox file": outbox.path})

    return [load_ledger, reconciliation]
