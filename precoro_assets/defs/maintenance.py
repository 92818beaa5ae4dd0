"""Warehouse upkeep and freshness: what keeps the warehouse small and tells when it falls behind."""

from datetime import timedelta

import dagster as dg

from .naming import PrecoroTranslator
from .resources import WarehouseResource


def build_maintenance(t: PrecoroTranslator) -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    """The daily DuckLake upkeep job (`<prefix>_warehouse_maintenance`) and its schedule."""

    @dg.op(name=t.op_name("maintain_warehouse"), required_resource_keys=t.resource_keys("warehouse"),
           description="Merge DuckLake's small files and delete files of snapshots older than 7 days.")
    def maintain_warehouse(context: dg.OpExecutionContext) -> None:
        warehouse: WarehouseResource = t.resource(context, "warehouse")
        warehouse.open().maintain(older_than_days=7)
        context.log.info("warehouse files merged; snapshots older than 7 days expired")

    @dg.job(name=t.name("warehouse_maintenance"), executor_def=dg.in_process_executor,
            description="Daily DuckLake upkeep: every commit adds files; this merges them (no Precoro requests).")
    def warehouse_maintenance():
        maintain_warehouse()

    schedule = dg.ScheduleDefinition(
        name=t.name("warehouse_maintenance_daily"), job=warehouse_maintenance, cron_schedule="30 3 * * *",
        default_status=t.schedule_status(True))
    return warehouse_maintenance, schedule


# Reference data: at most 26 hours old (precoro_reference_every_6h, on by default, keeps it so), evaluated by
# Dagster's FreshnessDaemon and shown on each asset.
REFERENCE_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26), warn_window=timedelta(hours=13))


# Documents: a freshness policy looks at an asset's latest materialization whatever its day, so a quiet day (no
# change, no run) turned it red while the warehouse was current, and a backfill of an old day turned it green.
# Instead, each morning by 06:00 (the company's time zone) yesterday's partition must have been listed against
# Precoro: by a change run, or by the deletion sweep (04:45), which lists the last days whether or not they changed.
DOCUMENTS_DEADLINE_CRON = "0 6 * * *"


def document_freshness(documents: list[dg.AssetsDefinition], timezone: str,
                       t: PrecoroTranslator) -> tuple[list[dg.AssetChecksDefinition], dg.SensorDefinition]:
    """A check per document asset (yesterday's partition listed by 06:00), and the sensor that evaluates them."""
    checks = list(dg.build_time_partition_freshness_checks(
        assets=documents, deadline_cron=DOCUMENTS_DEADLINE_CRON, timezone=timezone,
        severity=dg.AssetCheckSeverity.WARN))
    sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=checks, name=t.name("documents_freshness"), default_status=t.sensor_status(True))
    return checks, sensor
