"""The code location: every asset, check, job, schedule, sensor and resource of precoro-assets.

Read this file first; each piece is built from the entity catalogue (precoro_assets/catalogue.py).
"""

from __future__ import annotations

import warnings

import dagster as dg

from . import settings
from .catalogue import ENTITIES, Entity
from .catalogue import select as select_entities
from .defs.alerts import AlertResource, build_quota_watch, precoro_run_failure_alerts, quota_left
from .defs.catalogue_sync import CATALOGUE_SYNC_ASSETS, catalogue_sync_job
from .defs.changes import build_change_sensor
from .defs.ingest import DOCUMENTS_GROUP, REFERENCE_GROUP, asset_key, build_ingest_assets, build_partitions
from .defs.maintenance import document_freshness, maintenance_schedule, precoro_warehouse_maintenance
from .defs.reconcile import GROUP as RECONCILIATION_GROUP
from .defs.reconcile import RECONCILIATION_ASSETS
from .defs.resources import LedgerResource, OutboxResource, PrecoroResource, WarehouseResource
from .defs.sources import EXTERNAL_ASSETS
from .defs.sweep import build_deletion_sweep
from .defs.views import analyst_views
from .defs.webhook_events import build_webhook_sensor
from .defs.writeback import build_writeback_sensor, writeback_job

# BackfillPolicy is "beta" in Dagster 1.12/1.13 but is the documented way to backfill a range in one run.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
# Dagster 1.13 calls the partition freshness checks "superseded" by FreshnessPolicy, but a policy ignores
# partitions (a backfill of an old day makes it green): the checks are what say whether yesterday was listed
# (defs/maintenance.py).
warnings.filterwarnings("ignore", category=dg.SupersessionWarning, message=r".*freshness_checks` is superseded")


def _secret(name: str, value: object | None) -> dg.EnvVar | None:
    """A secret setting for a resource: by name (Dagster reads it in each process and shows only the name), and
    only when the settings found it set."""
    return dg.EnvVar(name) if value is not None else None


def deselected(entities: tuple[Entity, ...]) -> set[dg.AssetKey]:
    """The asset keys of the catalogue's entities left out of `entities`."""
    return {asset_key(entity) for entity in ENTITIES if entity not in entities}


def _without_deps_on(keys: set[dg.AssetKey], assets: list) -> list:
    """The assets, none depending on `keys` any more: the views, reconciliation and the catalogue sync read the
    tables of deselected entities as empty ones (they create them so)."""
    return list(dg.map_asset_specs(
        lambda spec: spec.replace_attributes(deps=[dep for dep in spec.deps if dep.asset_key not in keys]), assets))


def build_definitions(config: settings.Settings) -> dg.Definitions:
    """Every definition, configured with `config` (settings.load()): the resources receive its values."""
    database_url = _secret(settings.ENV_DATABASE_URL, config.database_url)
    partitions = build_partitions(config.start_date, config.timezone)
    entities = select_entities(config.entities)  # PRECORO_ENTITIES: the others have no asset, cost no request
    documents = tuple(entity for entity in entities if entity.partitioned)
    ingest = build_ingest_assets(partitions, entities)
    reconcile_job = dg.define_asset_job(
        "precoro_reconcile", selection=dg.AssetSelection.groups(RECONCILIATION_GROUP),
        description="Load the ledger, reconcile it with the synced Precoro data and queue write-backs.")
    jobs: list[dg.JobDefinition | dg.UnresolvedAssetJobDefinition] = [
        precoro_warehouse_maintenance, reconcile_job, writeback_job, catalogue_sync_job]
    schedules: list[dg.ScheduleDefinition] = [maintenance_schedule]
    checks = [quota_left]
    sensors = [  # both only read (the outbox, Dagster's own state): at most a minute behind the change sensor
        reconcile_automation_sensor(min(config.sensor_interval_seconds, 60)),
        build_writeback_sensor(min(config.sensor_interval_seconds, 60)),
        build_quota_watch(), precoro_run_failure_alerts]
    documents_job = reference_job = None  # a kind none of whose entities is selected has no job, schedule or sensor
    if documents:
        documents_job = dg.define_asset_job(
            "precoro_documents", selection=dg.AssetSelection.groups(DOCUMENTS_GROUP),
            description="Sync Precoro documents for one or more days of createDate.")
        freshness_checks, freshness_sensor = document_freshness(
            [asset for asset in ingest if asset.partitions_def is not None], config.timezone)
        jobs.append(documents_job)
        checks += freshness_checks
        sensors += [build_change_sensor(partitions, config.start_date, config.sensor_interval_seconds, documents_job,
                                        documents), freshness_sensor]
        if config.sweep_days:
            schedules.append(build_deletion_sweep(partitions, config.start_date, config.sweep_days, documents_job,
                                                  documents))
    if any(not entity.partitioned for entity in entities):
        reference_job = dg.define_asset_job(
            "precoro_reference", selection=dg.AssetSelection.groups(REFERENCE_GROUP),
            description="Sync Precoro reference data (suppliers, items, taxes, custom fields, ...).")
        jobs.append(reference_job)
        schedules.append(reference_schedule(reference_job))
    sensors.append(build_webhook_sensor(partitions, str(config.state_dir), documents_job, reference_job,
                                        config.webhooks, config.webhook_quota_share, entities))
    # code references: each asset's page links to the function that builds it; owners and a domain tag on each
    ours = dg.with_source_code_references(dg.map_asset_specs(
        lambda spec: spec.replace_attributes(owners=list(config.owners)).merge_attributes(
            tags={"domain": "procurement"}),
        _without_deps_on(deselected(entities), [*ingest, analyst_views, *RECONCILIATION_ASSETS,
                                                 *CATALOGUE_SYNC_ASSETS])))
    return dg.Definitions(
        assets=[*EXTERNAL_ASSETS, *ours],
        asset_checks=checks,
        # a run's steps share one process: Precoro-bound steps run one at a time anyway (the precoro_api pool), and
        # a process per step cost 3-4 s of start-up each (a 10-asset reference run: 46 s, 10 s in-process)
        executor=dg.in_process_executor,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={
            "precoro": PrecoroResource(
                api_token=dg.EnvVar("PRECORO_API_TOKEN"),
                email=dg.EnvVar("PRECORO_EMAIL"),
                base_url=config.base_url,
                region=config.region,
                time_scale=config.time_scale,
                state_dir=str(config.state_dir / "quota"),
                database_url=database_url,
            ),
            "warehouse": WarehouseResource(
                location=str(config.warehouse), state_dir=str(config.state_dir), database_url=database_url,
                data_path=config.warehouse_data_path, s3_endpoint=config.s3_endpoint, s3_region=config.s3_region,
                s3_url_style=config.s3_url_style, s3_use_ssl=config.s3_use_ssl,
                s3_access_key_id=_secret(settings.ENV_S3_KEY_ID, config.s3_access_key_id),
                s3_secret_access_key=_secret(settings.ENV_S3_SECRET, config.s3_secret_access_key),
                keep_bank_details=config.keep_bank_details),
            "ledger": LedgerResource(directory=str(config.ledger_dir), settle_seconds=config.ledger_settle_seconds),
            "alerts": AlertResource(url=_secret(settings.ENV_ALERT_URL, config.alert_url)),
            "outbox": OutboxResource(path=str(config.state_dir / "outbox.sqlite"), database_url=database_url,
                                     send=config.writeback_send),
        },
    )


def reference_schedule(reference_job) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="precoro_reference_every_6h", job=reference_job, cron_schedule="15 */6 * * *",
        # on from the start: the reference assets' freshness policy (at most 26 h old) relies on it
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Reference data changes rarely: every 6 hours costs about 40 requests a day, and keeps it "
                    "within its freshness policy (at most 26 hours old).")


def reconcile_automation_sensor(interval_seconds: int) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the reconciliation group's automation conditions (defs/reconcile.py) in the daemon."""
    return dg.AutomationConditionSensorDefinition(
        "precoro_reconcile_automation", target=dg.AssetSelection.groups(RECONCILIATION_GROUP),
        minimum_interval_seconds=interval_seconds, default_status=dg.DefaultSensorStatus.STOPPED,
        description="Loads the ledger when it is missing and hourly, and reconciles after the synced invoices, "
                    "payments, purchase orders or the ledger changed. It only queues write-backs: the sensor "
                    "precoro_writeback launches them, a dry run unless PRECORO_WRITEBACK_SEND=1.")


defs = build_definitions(settings.load())
