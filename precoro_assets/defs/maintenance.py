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


def freshness(document_assets: list[dg.AssetsDefinition], reference_assets: list[dg.AssetsDefinition]):
    """Freshness checks: yesterday's documents synced by 06:00 UTC; reference data at most 26 hours old."""
    checks = [
        *dg.build_time_partition_freshness_checks(assets=document_assets, deadline_cron="0 6 * * *"),
        *dg.build_last_update_freshness_checks(assets=reference_assets, lower_bound_delta=timedelta(hours=26)),
    ]
    return checks, dg.build_sensor_for_freshness_checks(freshness_checks=checks, name="precoro_freshness_checks")
