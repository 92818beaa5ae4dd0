"""Warehouse upkeep and freshness: what keeps the warehouse small and tells when it falls behind."""

from datetime import timedelta

import dagster as dg

from .resources import WarehouseResource


@dg.op(description="Merge DuckLake's small files and delete files of snapshots older than 7 days.")
def maintain_warehouse(context: dg.OpExecutionContext, warehouse: WarehouseResource) -> None:
    warehouse.open().maintain(older_than_days=7)
    context.log.info("warehouse files merged; snapshots older than 7 days expired")


@dg.job(description="Daily DuckLake upkeep: every commit adds files; this merges them (no Precoro requests).")
def precoro_warehouse_maintenance():
    maintain_warehouse()


maintenance_schedule = dg.ScheduleDefinition(
    name="precoro_warehouse_maintenance_daily", job=precoro_warehouse_maintenance, cron_schedule="30 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


# Freshness (evaluated by Dagster's FreshnessDaemon, shown on each asset): documents of a day are expected
# by 06:00 UTC the next morning; reference data at most 26 hours old (precoro_reference_every_6h, on by default).
DOCUMENTS_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 6 * * *", lower_bound_delta=timedelta(hours=24))
REFERENCE_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26), warn_window=timedelta(hours=13))
