"""One company's definitions, built from its settings and named by a translator: `build_definitions`.

The bundled code location (definitions.py) is one call of it; a Dagster project of its own calls it once per
company (docs/embedding.md). Building reads no environment: the token and the e-mail are `EnvVar`s, read by
Dagster in each process, and every other value comes from the settings passed.
"""

from __future__ import annotations

import warnings

import dagster as dg

from . import settings
from .catalogue import select as select_entities
from .defs.alerts import AlertResource, build_quota_check, build_quota_watch, build_run_failure_alerts
from .defs.catalogue_sync import build_catalogue_sync
from .defs.changes import build_change_sensor
from .defs.ingest import build_ingest_assets, build_partitions
from .defs.maintenance import build_maintenance, document_freshness
from .defs.naming import DEFAULT, DOCUMENTS, REFERENCE, PrecoroTranslator
from .defs.reconcile import build_reconciliation
from .defs.resources import LedgerResource, OutboxResource, PrecoroResource, WarehouseResource
from .defs.sources import external_assets
from .defs.sweep import build_deletion_sweep
from .defs.views import build_analyst_views
from .defs.webhook_events import build_webhook_sensor
from .defs.writeback import build_writeback


def quiet_dagster_warnings() -> None:
    """For a code location of ours: Dagster's warnings about the APIs we chose on purpose, once per load, not once
    per asset of every company (they filled `dagster dev`'s log)."""
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


def build_definitions(config: settings.Settings, translator: PrecoroTranslator = DEFAULT,
                      token_variable: str = "PRECORO_API_TOKEN", email_variable: str = "PRECORO_EMAIL"
                      ) -> dg.Definitions:
    """Every definition of one company, configured with `config` (settings.load()) and named by `translator`
    (keys, groups, jobs, sensors, resource keys: defs/naming.py). The token and e-mail are read from the
    environment variables named, in each process, and never shown."""
    t = translator
    if config.database_url is not None and not t.bundled:
        # the resources would all use it: one warehouse catalog, one outbox, one staging area for every company
        raise ValueError(f"{settings.ENV_DATABASE_URL} is set, and the companies of one project would share that "
                         f"database (warehouse, outbox, staged details): not supported yet. Unset it for a project "
                         f"of several companies; each keeps its state in files under its own home.")
    database_url = _secret(settings.ENV_DATABASE_URL, config.database_url)
    partitions = build_partitions(config.start_date, config.timezone)
    entities = select_entities(config.entities)  # PRECORO_ENTITIES: the others have no asset, cost no request
    documents = tuple(entity for entity in entities if entity.partitioned)
    ingest = build_ingest_assets(partitions, entities, t)
    reconciliation = build_reconciliation(t, entities)
    catalogue_sync, catalogue_sync_job = build_catalogue_sync(t, entities)
    # Each job's steps share one process: Precoro-bound steps run one at a time anyway (the precoro_api pool), and a
    # process per step cost 3-4 s of start-up each (a 10-asset reference run: 46 s, 10 s in-process). The code
    # location's executor stays its owner's (definitions.py sets the bundled one's).
    reconcile_job = dg.define_asset_job(
        t.name("reconcile"), executor_def=dg.in_process_executor,
        selection=dg.AssetSelection.assets(*(key for a in reconciliation for key in a.keys)),
        description="Load the ledger, reconcile it with the synced Precoro data and queue write-backs.")
    maintenance_job, maintenance_schedule = build_maintenance(t)
    writeback_job, writeback_sensor = build_writeback(t, min(config.sensor_interval_seconds, 60))
    alerts = AlertResource(url=_secret(settings.ENV_ALERT_URL, config.alert_url))
    jobs: list[dg.JobDefinition | dg.UnresolvedAssetJobDefinition] = [
        maintenance_job, reconcile_job, writeback_job, catalogue_sync_job]
    schedules: list[dg.ScheduleDefinition] = [maintenance_schedule]
    checks = [build_quota_check(t)]
    sensors = [  # both only read (the outbox, Dagster's own state): at most a minute behind the change sensor
        reconcile_automation_sensor(t, reconciliation, min(config.sensor_interval_seconds, 60)),
        writeback_sensor, build_quota_watch(t)]
    documents_job = reference_job = None  # a kind none of whose entities is selected has no job, schedule or sensor
    if documents:
        documents_job = dg.define_asset_job(
            t.name(DOCUMENTS), executor_def=dg.in_process_executor,
            selection=dg.AssetSelection.assets(*(t.entity_key(e) for e in documents)),
            description="Sync Precoro documents for one or more days of createDate.")
        freshness_checks, freshness_sensor = document_freshness(
            [asset for asset in ingest if asset.partitions_def is not None], config.timezone, t)
        jobs.append(documents_job)
        checks += freshness_checks
        sensors += [build_change_sensor(partitions, config.start_date, config.sensor_interval_seconds, documents_job,
                                        documents, t), freshness_sensor]
        if config.sweep_days:
            schedules.append(build_deletion_sweep(partitions, config.start_date, config.sweep_days, documents_job,
                                                  documents, t))
    references = [entity for entity in entities if not entity.partitioned]
    if references:
        reference_job = dg.define_asset_job(
            t.name(REFERENCE), executor_def=dg.in_process_executor,
            selection=dg.AssetSelection.assets(*(t.entity_key(e) for e in references)),
            description="Sync Precoro reference data (suppliers, items, taxes, custom fields, ...).")
        jobs.append(reference_job)
        schedules.append(reference_schedule(t, reference_job))
    sensors.append(build_run_failure_alerts(t, alerts, {job.name for job in jobs}))
    sensors.append(build_webhook_sensor(partitions, str(config.state_dir), documents_job, reference_job,
                                        config.webhooks, config.webhook_quota_share, entities, t))
    # code references: each asset's page links to the function that builds it; owners and a domain tag on each
    ours = dg.with_source_code_references(dg.map_asset_specs(
        lambda spec: spec.replace_attributes(owners=list(spec.owners) or list(config.owners)).merge_attributes(
            tags={"domain": "procurement"}),
        [*ingest, build_analyst_views(t, entities), *reconciliation, catalogue_sync]))
    return dg.Definitions(
        assets=[*external_assets(t), *ours],
        asset_checks=checks,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={
            t.resource_key("precoro"): PrecoroResource(
                api_token=dg.EnvVar(token_variable),
                email=dg.EnvVar(email_variable),
                base_url=config.base_url,
                region=config.region,
                time_scale=config.time_scale,
                state_dir=str(config.budget_dir),
                shared_budget=str(config.budget_dir) if config.shared_budget else None,
                database_url=database_url,
            ),
            t.resource_key("warehouse"): WarehouseResource(
                location=str(config.warehouse), state_dir=str(config.state_dir), database_url=database_url,
                data_path=config.warehouse_data_path, s3_endpoint=config.s3_endpoint, s3_region=config.s3_region,
                s3_url_style=config.s3_url_style, s3_use_ssl=config.s3_use_ssl,
                s3_access_key_id=_secret(settings.ENV_S3_KEY_ID, config.s3_access_key_id),
                s3_secret_access_key=_secret(settings.ENV_S3_SECRET, config.s3_secret_access_key),
                keep_bank_details=config.keep_bank_details),
            t.resource_key("ledger"): LedgerResource(directory=str(config.ledger_dir),
                                                     settle_seconds=config.ledger_settle_seconds),
            t.resource_key("alerts"): alerts,
            t.resource_key("outbox"): OutboxResource(path=str(config.state_dir / "outbox.sqlite"),
                                                     database_url=database_url, send=config.writeback_send),
        },
    )


def reference_schedule(t: PrecoroTranslator, reference_job) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=t.name("reference_every_6h"), job=reference_job, cron_schedule="15 */6 * * *",
        # on from the start: the reference assets' freshness policy (at most 26 h old) relies on it
        default_status=t.schedule_status(True),
        description="Reference data changes rarely: every 6 hours costs about 40 requests a day, and keeps it "
                    "within its freshness policy (at most 26 hours old).")


def reconcile_automation_sensor(t: PrecoroTranslator, reconciliation: list[dg.AssetsDefinition],
                                interval_seconds: int) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the reconciliation assets' automation conditions (defs/reconcile.py) in the daemon."""
    return dg.AutomationConditionSensorDefinition(
        t.name("reconcile_automation"), target=dg.AssetSelection.assets(*reconciliation),
        minimum_interval_seconds=interval_seconds, default_status=t.sensor_status(False),
        description="Loads the ledger when it is missing and hourly, and reconciles after the synced invoices, "
                    f"payments, purchase orders or the ledger changed. It only queues write-backs: the sensor "
                    f"{t.name('writeback')} launches them, a dry run unless sending is on.")
