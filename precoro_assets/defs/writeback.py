"""The write-back job and its sensor.

The sensor watches `precoro/writeback_outbox`: after each reconciliation that left pending rows it requests one
run of `precoro_writeback` (run key = the reconciliation's run, so a batch is launched once). The sensor only
reads; every request to Precoro and every file written happens inside the run.

The job is a dry run unless sending is switched on explicitly, by run config
`{"ops": {"write_back": {"config": {"send": true}}}}` or by the setting PRECORO_WRITEBACK_SEND=1 (the code
location passes it to the outbox resource as `send`). A dry run reads nothing from Precoro and sends nothing: it
lists what it would send.
"""


import dagster as dg
from pydantic import Field

from ..settings import ENV_SEND
from ..writeback.executor import WriteBack
from ..writeback.outbox import PENDING
from .ingest import _quota_stop
from .naming import DEFAULT, PrecoroTranslator
from .reconcile import mirror_outbox
from .resources import LedgerResource, OutboxResource, PrecoroResource, WarehouseResource
from .sources import quota_observation

JOB_NAME = DEFAULT.name("writeback")  # the bundled code location's


def sending_enabled(config_send: bool, send_setting: bool) -> bool:
    """Run config `send: true`, or the setting PRECORO_WRITEBACK_SEND=1 (`send_setting`, as the settings read it)."""
    return config_send or send_setting


class WriteBackConfig(dg.Config):
    send: bool = Field(default=False, description="Really write to Precoro (default: dry run). "
                                                  "PRECORO_WRITEBACK_SEND=1 switches it on too.")
    limit: int = Field(default=0, description="Handle at most this many outbox rows (0 = all).")


def build_writeback(t: PrecoroTranslator, interval_seconds: int = 60
                    ) -> tuple[dg.JobDefinition, dg.SensorDefinition]:
    """The write-back job (`<prefix>_writeback`) and the sensor of the same name that launches it after a
    reconciliation left pending rows in `<prefix>/writeback_outbox`."""

    @dg.op(name=t.op_name("write_back"), pool=t.name("api"),
           required_resource_keys=t.resource_keys("precoro", "warehouse", "outbox", "ledger"),
           description="Send the outbox's pending write-backs to Precoro (dry run unless `send`).")
    def write_back(context: dg.OpExecutionContext, config: WriteBackConfig) -> dict:
        from ..api.errors import QuotaExhausted

        precoro: PrecoroResource = t.resource(context, "precoro")
        warehouse: WarehouseResource = t.resource(context, "warehouse")
        outbox: OutboxResource = t.resource(context, "outbox")
        ledger: LedgerResource = t.resource(context, "ledger")
        send = sending_enabled(config.send, outbox.send)
        queue = outbox.open()
        client = precoro.get_client() if send else None
        executor = WriteBack(client, queue, ledger.sink(), context.run_id, send, log=context.log.info)
        try:
            reports = executor.run(limit=config.limit or None)
        except QuotaExhausted as error:
            raise _quota_stop(context, error) from error
        finally:
            mirror_outbox(warehouse.open(), queue)
        if not send:
            for report in reports:
                context.log.info(f"dry run, would send: {report.request}")
            context.log.info(f"dry run: {len(reports)} write-back(s) would be sent; nothing was sent. Switch sending "
                             f"on with run config send: true or {ENV_SEND}=1.")
        by_status: dict[str, int] = {}
        for report in reports:
            by_status[report.status] = by_status.get(report.status, 0) + 1
        metadata = {"mode": "send" if send else "dry run", "rows handled": len(reports),
                    **{f"rows {status}": n for status, n in sorted(by_status.items())},
                    **{f"outbox {status}": n for status, n in queue.counts().items()}}
        if send:
            metadata.update({f"quota {k}": v for k, v in precoro.accounting_metadata().items()})
            # the write-back's effect, on the page of what it wrote to
            context.log_event(quota_observation(precoro, t.key("api"), **{
                f"written back: {status}": n for status, n in sorted(by_status.items())}))
        context.add_output_metadata(metadata)
        return {"send": send, "reports": [vars(r) for r in reports]}

    @dg.job(name=t.name("writeback"), executor_def=dg.in_process_executor, tags={"precoro/writes": "true"},
            description="Write reconciliation results back to Precoro: payments, externalId links, "
            "externalIntegrationLog errors, exports to the accounting side; and the catalogue sync's suppliers, "
            "items, taxes and custom field options. Dry run unless send is on.")
    def writeback_job():
        write_back()

    @dg.asset_sensor(
        asset_key=t.key("writeback_outbox"),
        job=writeback_job,
        name=t.name("writeback"),
        required_resource_keys=t.resource_keys("outbox"),
        minimum_interval_seconds=interval_seconds,
        default_status=t.sensor_status(False),
        description=f"After a reconciliation that left pending write-backs, launches {t.name('writeback')} once "
                    "for that batch (a dry run unless sending is on).",
    )
    def precoro_writeback(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
        outbox: OutboxResource = t.resource(context, "outbox")
        pending = outbox.open().counts()[PENDING]
        batch = asset_event.run_id
        if not pending:
            return dg.SkipReason(f"reconciliation {batch} left no pending write-back")
        return dg.RunRequest(run_key=f"writeback:{batch}", tags={"precoro/batch": batch,
                                                                  "precoro/pending": str(pending)})

    return writeback_job, precoro_writeback
