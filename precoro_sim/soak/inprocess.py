"""The soak: the simulated company lives while the change sensor, reconciliation and write-back keep up under
injected faults; at the end the warehouse must equal Precoro and nothing may have been sent twice.

    precoro-assets reliability --minutes 5            # in this process
    precoro-assets reliability --daemon --minutes 5   # through a real Dagster daemon (`dagster dev`)

In-process (the default), everything runs in this process against a bundled simulator on 127.0.0.1 (limits
`scaled:1000`, so every Precoro limit is enforced, a thousand times faster): each round the company changes
(`POST /_sim/tick`), a burst of faults is armed (5xx, resets, slow answers, lost POST/PATCH answers, now and then
a 429), the sensor `precoro_changes` is evaluated and its run requests are launched (a failed run is retried
twice, as dagster.yaml's run_retries does), and every few rounds the ledger is reconciled and the outbox written
back with sending on. Then the faults are cleared, the sensor runs until it asks for nothing, and the figures are
taken.

With --daemon nothing is launched by this process: it starts the simulator and `dagster dev` (webserver and
dagster-daemon on 127.0.0.1, DAGSTER_HOME in the soak's folder with the project's dagster.yaml), launches the
initial sync as a backfill and switches on the sensors `precoro_changes`, `precoro_reconcile_automation` and
`precoro_writeback` through Dagster's GraphQL API, with PRECORO_WRITEBACK_SEND=1 in the daemon's environment.
While the company lives (a tick every few seconds) faults are armed; then ticks stop, faults are cleared, and
once the daemon has gone quiet (no run active, the outbox empty, every sensor evaluated since the last run) the
same figures are taken, plus the runs the daemon launched, a grep for the API token through DAGSTER_HOME (event
log, run storage, compute logs), PRECORO_HOME, the daemon's logs and everything printed, and the address of every
socket the simulator, webserver, daemon and code server listen on.
"""

from __future__ import annotations

import csv
import ipaddress
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import click

import precoro_assets

PACKAGE_ROOT = Path(precoro_assets.__file__).resolve().parent  # the product's dagster.yaml and workspace.yaml
RECONCILIATION = ["precoro/ledger_payments", "precoro/ledger_bills", "precoro/reconciliation_invoices",
                  "precoro/reconciliation_ledger", "precoro/writeback_outbox"]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
SEND = {"ops": {"write_back": {"config": {"send": True}}}, **QUIET}
RUN_RETRIES = 2  # dagster.yaml: run_retries.max_retries

# (weight, fault rule) armed at random each round; counts keep every burst shorter than the client's retries.
FAULTS = [
    (3, {"kind": "error", "status": 503, "method": "GET", "count": 2}),
    (2, {"kind": "error", "status": 500, "method": "GET", "path": "/invoices/{idn}", "count": 1, "after": 1}),
    (2, {"kind": "reset", "method": "GET", "count": 1, "after": 2}),
    (2, {"kind": "slow", "seconds": 0.4, "method": "GET", "count": 2}),
    (2, {"kind": "lost_response", "method": "POST", "path": "/payments", "count": 1}),
    (1, {"kind": "error", "status": 502, "method": "POST", "path": "/payments", "count": 1}),
    (2, {"kind": "lost_response", "method": "PATCH", "count": 1}),
    (1, {"kind": "reset", "method": "PATCH", "count": 1, "after": 1}),
    (1, {"kind": "rate_limit", "window": "Minute limiter", "retry_after": 1, "count": 1}),
]


@dataclass
class SoakReport:
    seconds: float = 0.0
    rounds: int = 0
    ticks: int = 0
    changes: int = 0
    runs: int = 0
    runs_failed: int = 0
    run_retries: int = 0
    writeback_runs: int = 0
    documents: int = 0
    faults_injected: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    rate_limited: int = 0
    rate_limited_by: dict[str, int] = field(default_factory=dict)  # 429s by RateLimit-Type (injected ones too)
    rows_lost: int = 0
    rows_stale: int = 0
    rows_extra: int = 0
    duplicates: int = 0
    payments_sent: int = 0
    payments_adopted: int = 0
    duplicate_payments: int = 0
    patches_sent: int = 0
    duplicate_patches: int = 0
    differences: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    state: str = "SQLite files"  # where the shared state (request ledger, staging, outbox, catalog) lives
    # the hostile inputs of issue #28 (soak/faults.py), met by the in-process soak's flow
    hostile: bool = False
    ledger_files: int = 0
    ledger_rows: int = 0
    ledger_lost: int = 0
    ledger_duplicated: int = 0
    ledger_wrong: int = 0
    ledger_deferred: int = 0
    ledger_hostile_loaded: int = 0
    exports_rows: int = 0
    export_formula_cells: int = 0
    exports_neutralised: int = 0
    export_huge_failed_alone: bool = False
    stranded_in_sending: int = 0
    syncs_killed: int = 0
    syncs_after_kill: int = 0
    webhook_edge_bodies: int = 0
    webhook_edge_refused: int = 0
    webhook_idle_sockets: int = 0
    webhook_idle_closed: int = 0
    webhook_flooded: int = 0
    webhook_accepted: int = 0
    webhook_recorded: int = 0
    hostile_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.rows_lost or self.rows_stale or self.rows_extra or self.duplicates
                    or self.duplicate_payments or self.duplicate_patches or self.differences
                    or self.hostile_problems or self.second_limiter)

    @property
    def second_limiter(self) -> int:
        """429s from Precoro's per-second limiter: the client paces itself, so none under any load (issue #28)."""
        return self.rate_limited_by.get("Second limiter", 0)

    def lines(self) -> list[str]:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults_injected.items())) or "none"
        limiters = ", ".join(f"{k} {v}" for k, v in sorted(self.rate_limited_by.items())) or "none"
        return [
            f"soak: {self.seconds:.0f} s, {self.rounds} rounds, {self.ticks} company ticks ({self.changes} changes)",
            f"runs launched by the sensor: {self.runs} ({self.runs_failed} failed, {self.run_retries} retried); "
            f"write-back runs: {self.writeback_runs}",
            f"documents synced: {self.documents}",
            f"faults injected: {sum(self.faults_injected.values())} ({faults})",
            f"requests spent: {self.requests}",
            f"429s: {self.rate_limited} ({limiters}; injected: {self.faults_injected.get('rate_limit', 0)}); "
            f"from the Second limiter: {self.second_limiter} (must be 0)",
            f"payments sent: {self.payments_sent} ({self.payments_adopted} adopted after a lost answer); "
            f"patches sent: {self.patches_sent}",
            f"rows lost: {self.rows_lost} (must be 0); stale: {self.rows_stale}; not in Precoro: {self.rows_extra}",
            f"duplicates: {self.duplicates} rows, {self.duplicate_payments} payments, "
            f"{self.duplicate_patches} patches (must be 0)",
            f"shared state: {self.state}",
            *(self.hostile_lines() if self.hostile else []),
            "result: " + ("OK, the warehouse equals Precoro" if self.ok else
                          "FAILED: " + "; ".join((self.differences + self.hostile_problems + (
                              [f"{self.second_limiter} 429s from the Second limiter"] if self.second_limiter else [])
                              )[:10])),
        ]

    def hostile_lines(self) -> list[str]:
        return [
            f"hostile ledger files: {self.ledger_files} (huge amounts, formulas, cut last lines, links, files "
            f"growing while read); their good rows: {self.ledger_rows}, lost {self.ledger_lost}, duplicated "
            f"{self.ledger_duplicated}, wrong {self.ledger_wrong}; hostile rows loaded {self.ledger_hostile_loaded} "
            f"(all must be 0); rows of a growing file left for the next load: {self.ledger_deferred}",
            f"accounting export: {self.exports_rows} rows, {self.exports_neutralised} formula-looking supplier "
            f"names quoted, {self.export_formula_cells} cells that run as formulas (must be 0); the 200 KiB name "
            f"{'failed alone' if self.export_huge_failed_alone else 'did NOT fail alone'}; "
            f"stranded in sending: {self.stranded_in_sending}",
            f"syncs killed (-9) holding the precoro_api slot: {self.syncs_killed}; syncs after them that finished: "
            f"{self.syncs_after_kill}",
            f"webhook receiver: edge bodies {self.webhook_edge_bodies} ({self.webhook_edge_refused} refused with "
            f"422); idle and half-open sockets {self.webhook_idle_sockets} ({self.webhook_idle_closed} closed by "
            f"the receiver); flood {self.webhook_flooded} events, {self.webhook_accepted} accepted, "
            f"{self.webhook_recorded} recorded",
        ]


class _Soak:
    # the hostile inputs (soak/faults.py): set up by run() when the report says so; none in the daemon soak
    ledger = None  # HostileLedger
    webhooks = None  # WebhookStorm: `precoro-assets webhooks` under edge input
    kills = None  # KillFigures

    def __init__(self, home: Path, seed: int, days: int, documents: int, echo: Callable[[str], None],
                 hostile: bool = True):
        import dagster as dg
        import httpx

        from precoro_assets import settings
        from precoro_assets.definitions import build_definitions
        from precoro_assets.warehouse.store import Warehouse

        from ..simulator import start_simulator

        self.dg, self.httpx, self.echo = dg, httpx, echo
        self.sim = start_simulator(seed=seed, days=days, documents=documents, limits="scaled:1000", port=0)
        os.environ.update(PRECORO_API_TOKEN=self.sim.token, PRECORO_EMAIL=self.sim.email,
                          PRECORO_BASE_URL=self.sim.url, PRECORO_HOME=str(home / "var"), PRECORO_TIME_SCALE="1000",
                          PRECORO_START_DATE=(datetime.now(UTC).date() - timedelta(days=days)).isoformat(),
                          PRECORO_SENSOR_INTERVAL_SECONDS="1")
        for name in ("PRECORO_WAREHOUSE", "PRECORO_STATE_DIR", "PRECORO_LEDGER_DIR", "PRECORO_WRITEBACK_SEND"):
            os.environ.pop(name, None)
        dagster_home = home / "dagster"
        dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copy(PACKAGE_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
        os.environ["DAGSTER_HOME"] = str(dagster_home)
        self.config = settings.load()
        defs = build_definitions(self.config)
        # A short request timeout: a `reset` fault can leave a kept-alive connection hanging instead of closing it.
        precoro = defs.resources["precoro"].model_copy(update={"timeout_seconds": 3.0})
        self.defs = dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs,
                                   schedules=defs.schedules, sensors=defs.sensors,
                                   resources={**defs.resources, "precoro": precoro})
        self.instance = dg.DagsterInstance.from_config(str(dagster_home))
        self.warehouse = Warehouse(self.config.warehouse)
        self.report = SoakReport(state=_state_described(), hostile=hostile)
        self.home = home
        self.names: dict[str, str] = {}  # purchase orders whose supplier got a hostile name
        self.launched: set[str] = set()
        self.cursor: str | None = None
        self.writeback_payments: Counter = Counter()  # payments Precoro gained while write-back ran

    # ---- the simulator ----
    def control(self, method: str, path: str, **kwargs) -> dict:
        response = self.httpx.request(method, f"{self.sim.url}/_sim/{path}", timeout=60, **kwargs)
        response.raise_for_status()
        return response.json()

    def export(self, resource: str) -> list[dict]:
        """Ground truth, as precoro_sim.ground_truth.differences expects it (plain JSON)."""
        response = self.httpx.get(f"{self.sim.url}/_sim/export/{resource}", timeout=60)
        response.raise_for_status()
        return response.json()["data"]

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        return [tuple(r) for r in self.warehouse.query(sql, params).itertuples(index=False, name=None)]

    # ---- Dagster ----
    def _failure(self, result, what: str) -> None:
        for event in result.all_events:
            if event.is_step_failure:
                self.report.failures.append(f"{what}: {event.step_failure_data.error.message.strip()[:300]}")

    def materialize(self, keys: list[str], partition: str | None = None, tags: dict | None = None,
                    what: str = "run", run_config: dict | None = None) -> bool:
        dg = self.dg
        assets = [a for a in self.defs.assets if isinstance(a, dg.AssetsDefinition)
                  and any(k.to_user_string() in keys for k in a.keys)]
        for attempt in range(RUN_RETRIES + 1):
            result = dg.materialize(assets, partition_key=partition, instance=self.instance,
                                    resources=self.defs.resources, tags=tags or {}, raise_on_error=False,
                                    run_config={**(run_config or {}), **QUIET})
            if result.success:
                return True
            self._failure(result, what)
            self.report.runs_failed += 1
            if attempt < RUN_RETRIES:
                self.report.run_retries += 1
        return False

    def sync_all(self) -> None:
        start, end = self.config.start_date.isoformat(), datetime.now(UTC).date().isoformat()
        from precoro_assets.defs.ingest import DOCUMENTS_GROUP

        keys = [k.to_user_string() for k in self.dg.AssetSelection.groups(DOCUMENTS_GROUP).resolve(
            self.defs.resolve_asset_graph())]
        self.materialize(keys, tags={"dagster/asset_partition_range_start": start,
                                     "dagster/asset_partition_range_end": end}, what="initial sync")

    def sensor_round(self) -> int:
        """Evaluate precoro_changes once and launch what it asks for (run keys de-duplicate, as in the daemon)."""
        dg = self.dg
        sensor = self.defs.resolve_sensor_def("precoro_changes")
        with dg.build_sensor_context(instance=self.instance, definitions=self.defs, resources=self.defs.resources,
                                     cursor=self.cursor) as context:
            tick = sensor.evaluate_tick(context)
        self.cursor = tick.cursor
        launched = 0
        for request in tick.run_requests:
            if request.run_key in self.launched:
                continue
            self.launched.add(request.run_key)
            keys = [k.to_user_string() for k in request.asset_selection]
            days = request.partition_key or "{}..{}".format(request.tags["dagster/asset_partition_range_start"],
                                                            request.tags["dagster/asset_partition_range_end"])
            self.materialize(keys, partition=request.partition_key, tags=dict(request.tags),
                             what=f"{','.join(keys)} {days}", run_config=dict(request.run_config or {}))
            self.report.runs += 1
            launched += 1
        return launched

    def reconcile_and_write_back(self, plant: bool = False) -> None:
        if self.ledger is not None and plant:
            self.ledger.plant(self.report.rounds)
        reconciled = self.materialize(RECONCILIATION, what="reconciliation")
        if self.ledger is not None:
            self.ledger.finish()
            if reconciled:
                self.check_ledger()
        if not reconciled:
            return
        before = {p["id"] for p in self.export("payments")}
        result = self.defs.resolve_job_def("precoro_writeback").execute_in_process(
            instance=self.instance, run_config=SEND, raise_on_error=False)
        self.report.writeback_runs += 1
        if not result.success:
            self._failure(result, "write-back")
        # nothing else changes the company while write-back runs: every new payment is one it sent
        self.writeback_payments += Counter(_payment_identity(p) for p in self.export("payments")
                                           if p["id"] not in before)

    # ---- the hostile inputs of issue #28 (soak/faults.py) ----
    def check_ledger(self) -> None:
        """What the warehouse loaded from the hostile ledger files against what the files hold."""
        figures = self.ledger.check(self.query(
            "SELECT payment_id, bill_id, supplier, amount, paid_on FROM precoro.ledger_payments "
            "WHERE payment_id LIKE 'SOAK-%'"))
        report = self.report
        report.ledger_files, report.ledger_rows = figures.files, figures.rows_expected
        report.ledger_lost, report.ledger_duplicated = figures.rows_lost, figures.rows_duplicated
        report.ledger_wrong, report.ledger_hostile_loaded = figures.rows_wrong, figures.hostile_loaded
        report.ledger_deferred = figures.rows_deferred

    def hostile_supplier_names(self, rng: random.Random) -> None:
        """Someone renames the supplier of a few purchase orders in Precoro: spreadsheet formulas, one of 200 KiB;
        the accounting side knows the formula-looking vendors (vendors.csv), so their exports are accepted."""
        from precoro_assets.ledger.files import VENDORS_FILE, ledger_dir

        from .faults import hostile_supplier_names

        self.names = hostile_supplier_names(self.export("purchaseorders"), rng)
        for idn, name in self.names.items():
            self.control("POST", f"records/purchaseorders/{idn}", json={"supplierName": name})
        with open(ledger_dir() / VENDORS_FILE, "a", newline="", encoding="utf-8") as vendors:
            csv.writer(vendors, lineterminator="\n").writerows(
                [f"SOAK-VEN-{idn}", name] for idn, name in self.names.items() if len(name) < 1000)

    def start_webhooks(self) -> None:
        from precoro_assets.webhooks import WebhookInbox, inbox_path

        from .faults import WebhookStorm

        self.webhooks = WebhookStorm(self.home / "logs", WebhookInbox(inbox_path(self.config.state_dir)))

    def kill_a_sync(self) -> None:
        from .faults import kill_a_sync_in_the_api_slot

        start = (datetime.now(UTC).date() - timedelta(days=2)).isoformat()
        kill_a_sync_in_the_api_slot(self.instance, self.control, start, self.home / "logs", self.kills)
        self.report.syncs_killed, self.report.syncs_after_kill = self.kills.kills, self.kills.syncs_after

    def arm_faults(self, rng: random.Random) -> None:
        weights = [w for w, _ in FAULTS]
        for rule in rng.choices([r for _, r in FAULTS], weights=weights, k=2):
            self.control("POST", "faults", json=rule)

    # ---- the whole soak ----
    def run(self, seconds: float, tick_every: float, rng: random.Random, min_rounds: int = 1) -> SoakReport:
        from precoro_assets.ledger.files import ledger_dir

        from ..demo_ledger import company_from_simulator, demo_ledger_for, write_demo_ledger

        started = time.monotonic()
        self.control("POST", "faults", json={"kind": "error", "status": 503, "method": "GET", "count": 2,
                                             "after": 3})
        self.echo("initial sync of every document day ...")
        self.sync_all()
        write_demo_ledger(demo_ledger_for(company_from_simulator(self.sim.url)), ledger_dir())
        if self.report.hostile:
            from .faults import HostileLedger, KillFigures

            self.ledger = HostileLedger(ledger_dir(), self.home / "outside-the-ledger", random.Random(rng.random()),
                                        datetime.now(UTC).date().isoformat())
            self.kills = KillFigures()
            self.start_webhooks()
            self.hostile_supplier_names(rng)
            self.sync_all()  # the first reconciliation offers them for export
        # the first write-back meets a lost POST answer, a 5xx on a POST and a lost PATCH answer for sure
        for rule in ({"kind": "lost_response", "method": "POST", "path": "/payments", "count": 1},
                     {"kind": "error", "status": 502, "method": "POST", "path": "/payments", "count": 1, "after": 1},
                     {"kind": "lost_response", "method": "PATCH", "count": 1, "after": 2}):
            self.control("POST", "faults", json=rule)
        self.reconcile_and_write_back()
        started = time.monotonic()  # the company lives for `seconds` from here
        deadline = started + seconds
        while time.monotonic() < deadline or self.report.rounds < min_rounds:
            round_started = time.monotonic()
            self.report.rounds += 1
            self.report.changes += len(self.control("POST", "tick", json={"events": 3})["changes"])
            self.report.ticks += 1
            if self.report.hostile and self.report.rounds % KILL_EVERY == 1 and self.report.rounds > 1:
                self.echo("killing (-9) a sync that holds the precoro_api slot, then a sync again ...")
                self.kill_a_sync()
            if self.webhooks is not None:
                self.webhooks.round()
            self.arm_faults(rng)
            launched = self.sensor_round()
            if self.report.rounds % 2 == 0:
                self.reconcile_and_write_back(plant=True)
            self.echo(f"round {self.report.rounds}: {launched} run(s); "
                      f"{time.monotonic() - started:.0f} s of {seconds:.0f}")
            time.sleep(max(0.0, tick_every - (time.monotonic() - round_started)))
        self.report.seconds = time.monotonic() - started
        self.echo("clearing faults and catching up ...")
        self.control("DELETE", "faults")
        self.reconcile_and_write_back()
        for _ in range(3):  # rows left pending by a fault go out now
            if not self._pending():
                break
            self.reconcile_and_write_back()
        for _ in range(10):  # then the sensor picks up what the company and the write-backs changed
            if not self.sensor_round():
                break
        return self.measure()

    def _pending(self) -> int:
        from precoro_assets.writeback.outbox import Outbox

        return Outbox(self.config.state_dir / "outbox.sqlite").counts().get("pending", 0)

    def measure(self) -> SoakReport:
        from precoro_assets.api.catalogue import DOCUMENTS
        from precoro_assets.reconcile import CREATE_PAYMENT
        from precoro_assets.warehouse import tables
        from precoro_assets.writeback.outbox import Outbox

        from ..ground_truth import differences

        report = self.report
        stats = self.control("GET", "stats")
        report.faults_injected = dict(stats["faults_injected"])
        report.requests = stats["total"]
        report.rate_limited = sum(stats["rate_limited"].values())
        report.rate_limited_by = dict(stats["rate_limited"])
        for entity in DOCUMENTS:
            truth = {str(r[entity.key]) for r in self.export(entity.path)}
            stored, duplicated = self.warehouse.read(
                lambda con, entity=entity: (tables.stored_keys(con, entity), tables.duplicate_keys(con, entity)))
            report.documents += len(stored & truth)
            report.rows_lost += len(truth - stored)
            report.rows_extra += len(stored - truth)
            report.duplicates += sum(row[-1] - 1 for row in duplicated)  # (table, key..., count)
            found = differences(self, entity)
            report.rows_stale += sum(" fields differ" in d for d in found)
            report.differences += found
        rows = Outbox(self.config.state_dir / "outbox.sqlite").rows()
        sent = [r for r in rows if r.kind == CREATE_PAYMENT and r.status == "sent"]
        report.payments_sent = len(sent)
        report.payments_adopted = sum("adopted" in (r.outcome or "") for r in sent)
        expected = Counter((r.target_key, Decimal(r.payload["amount"]), r.payload["pay_date"]) for r in sent)
        report.duplicate_payments = sum((self.writeback_payments - expected).values())
        # every PATCH Precoro applied (answered 200) must be one outbox row's request
        log = self.control("GET", "requests?since=0")["requests"]
        applied = Counter(r["url"].split("?")[0] for r in log if r["method"] == "PATCH" and r["status"] == 200)
        patched = Counter(f"/{r.resource}/{r.target_key}" for r in rows
                          if r.sent_request and r.sent_request.startswith("PATCH ") and r.status in ("sent", "failed"))
        report.patches_sent = sum(patched.values())
        report.duplicate_patches = sum((applied - patched).values())
        if self.ledger is not None:
            self.measure_hostile(rows)
        return report

    def measure_hostile(self, rows: list) -> None:
        from precoro_assets.ledger.files import EXPORT_FOLDER, ledger_dir

        from .faults import check_exports

        report = self.report
        exports = check_exports(ledger_dir() / EXPORT_FOLDER, self.names, rows)
        report.exports_rows, report.export_formula_cells = exports.rows, exports.formula_cells
        report.exports_neutralised, report.export_huge_failed_alone = exports.neutralised, exports.huge_failed_alone
        report.stranded_in_sending = exports.stranded
        problems = list(exports.problems)
        if len(self.names) < 2:
            problems.append(f"only {len(self.names)} purchase order(s) could be renamed (a company too small?)")
        elif exports.neutralised < len(self.names) - 1:
            problems.append(f"{exports.neutralised} of the {len(self.names) - 1} formula-looking supplier names "
                            "exported (quoted)")
        problems += self.ledger.figures.problems + self.kills.problems
        if self.webhooks is not None:
            self.webhooks.stop()
            hooks = self.webhooks.check()
            report.webhook_edge_bodies, report.webhook_edge_refused = hooks.edge_bodies, hooks.edge_refused
            report.webhook_idle_sockets, report.webhook_idle_closed = hooks.idle_sockets, hooks.idle_closed
            report.webhook_flooded, report.webhook_accepted = hooks.flooded, hooks.accepted
            report.webhook_recorded = hooks.recorded
            problems += hooks.problems
        if report.rounds > KILL_EVERY and not report.syncs_after_kill:
            problems.append("no sync was killed and followed by a sync")
        report.hostile_problems = problems

    def stop(self) -> None:
        if self.webhooks is not None:
            self.webhooks.stop()
        self.instance.dispose()
        self.sim.stop()


KILL_EVERY = 4  # rounds between two syncs killed in the precoro_api slot (from round 5 on)


def _state_described() -> str:
    from precoro_assets.shared_state import database_url, describe_url

    url = database_url()
    return f"PostgreSQL ({describe_url(url)})" if url else "SQLite files"


def _payment_identity(payment: dict) -> tuple:
    return (str(payment["invoice"]["idn"]), Decimal(str(payment["sumPaid"])), str(payment["payDate"])[:10])


def run_soak(home: Path, seconds: float, tick_every: float = 3.0, seed: int = 7, days: int = 10,
             documents: int = 150, echo: Callable[[str], None] = print, min_rounds: int = 1,
             hostile: bool = True) -> SoakReport:
    """Run the soak with all state under `home` (PRECORO_HOME = home/var, DAGSTER_HOME = home/dagster; the shared
    state in PostgreSQL if PRECORO_DATABASE_URL is set): the company lives `seconds` (and at least `min_rounds`
    ticks) after the initial sync and write-back; `hostile` plants issue #28's hostile inputs on the way."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(("PRECORO_", "DAGSTER_"))}
    soak = _Soak(home, seed, days, documents, echo, hostile)
    try:
        return soak.run(seconds, tick_every, random.Random(seed), min_rounds)
    finally:
        soak.stop()
        for name in [k for k in os.environ if k.startswith(("PRECORO_", "DAGSTER_"))]:
            del os.environ[name]
        os.environ.update(saved)


# ---- checks on the machine: where the token could hide, who listens where ------------------------------------

def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Every file under root whose bytes contain needle (SQLite databases and Parquet files included)."""
    found = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and needle in path.read_bytes():
                found.append(path)
        except OSError:
            continue
    return found


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp{,6} writes it: 32-bit words in host (little-endian) byte order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def listening_sockets() -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int, int]]:
    """(address, port, socket inode) of every TCP socket in LISTEN state on this machine (network namespace)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            address, port = fields[1].split(":")
            found.append((_address(address), int(port, 16), int(fields[9])))
    return found


def socket_inodes_of(pid: int) -> set[int]:
    """Inodes of the sockets a process holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:["):-1]))
    return inodes


def children_of(pid: int) -> set[int]:
    """The process and all its descendants (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(text[text.rindex(")") + 2:].split()[1])
    family, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in family} - family
        family |= more
        grew = bool(more)
    return family & (set(parents) | {pid})


def session_of(pid: int) -> int | None:
    """The session id of a process (None once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text[text.rindex(")") + 2:].split()[3])


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


# ---- the soak through a real Dagster daemon ------------------------------------------------------------------

SENSORS = ("precoro_changes", "precoro_reconcile_automation", "precoro_writeback")
ACTIVE_RUN = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING", "MANAGED"}
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
LOOPBACK = ipaddress.ip_address("127.0.0.1")
# Faults armed once before the sensors start, so that every kind is met for sure: the first write-back meets a
# lost POST answer, a 5xx on a POST and a lost PATCH answer; the sensor and the runs meet a reset and a slow answer.
SURE_FAULTS = [
    {"kind": "lost_response", "method": "POST", "path": "/payments", "count": 1},
    {"kind": "error", "status": 502, "method": "POST", "path": "/payments", "count": 1, "after": 1},
    {"kind": "lost_response", "method": "PATCH", "count": 1, "after": 2},
    {"kind": "reset", "method": "GET", "count": 1, "after": 1},
    {"kind": "slow", "seconds": 0.4, "method": "GET", "count": 1, "after": 4},
]

WORKSPACE = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on RepositoryLocation { repositories { name } }
  ... on PythonError { message } } } } ... on PythonError { message } } }"""
LAUNCH_BACKFILL = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  ... on InvalidStepError { invalidStepKey } ... on UnauthorizedError { message } } }"""
BACKFILL_STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status } ... on PythonError { message } } }"""
START_SENSOR = """mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename
  ... on Sensor { sensorState { status } } ... on PythonError { message } ... on UnauthorizedError { message }
  ... on SensorNotFoundError { message } } }"""
SENSOR_TICKS = """query($s: SensorSelector!, $after: Float) { sensorOrError(sensorSelector: $s) { __typename
  ... on Sensor { sensorState { status ticks(limit: 100000, afterTimestamp: $after) {
    tickId status timestamp runIds skipReason error { message } } } } ... on PythonError { message } } }"""
RUNS = """query { runsOrError(limit: 100000) { __typename ... on Runs { results {
  runId status startTime endTime updateTime tags { key value } } } ... on PythonError { message } } }"""
RUN_FAILURE = """query($id: ID!) { logsForRun(runId: $id, limit: 2000) { __typename ... on EventConnection {
  events { __typename ... on ExecutionStepFailureEvent { stepKey error { message } }
  ... on RunFailureEvent { message } } } } }"""


@dataclass
class DaemonSoakReport(SoakReport):
    runs_by_origin: dict[str, int] = field(default_factory=dict)
    runs_succeeded: int = 0
    backfill: str = ""
    sensor_ticks: dict[str, int] = field(default_factory=dict)
    sensor_tick_failures: int = 0
    quiet_after: float | None = None  # seconds from the last tick until the daemon was quiet; None: never
    files_grepped: int = 0
    token_found: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)
    sockets_not_loopback: list[str] = field(default_factory=list)
    session: int = 0  # the session of dagster dev and every process it started (none must outlive the soak)
    smoke: bool = False  # stopped after the first write-back: nothing was sent twice, but no comparison

    @property
    def sent_once(self) -> bool:
        return not (self.duplicates or self.duplicate_payments or self.duplicate_patches)

    @property
    def ok(self) -> bool:
        converged = self.sent_once if self.smoke else (super().ok and self.quiet_after is not None)
        return converged and self.runs > 0 and not self.token_found and bool(self.sockets) \
            and not self.sockets_not_loopback

    def lines(self) -> list[str]:
        base = super().lines()
        origins = ", ".join(f"{k} {v}" for k, v in sorted(self.runs_by_origin.items())) or "none"
        ticks = ", ".join(f"{k} {v}" for k, v in sorted(self.sensor_ticks.items())) or "none"
        problems = []
        if not self.sent_once:
            problems.append("rows, payments or patches duplicated")
        if self.second_limiter:
            problems.append(f"{self.second_limiter} 429s from the Second limiter")
        elif not self.smoke and not super().ok:
            problems += self.differences[:10] or ["rows lost or stale"]
        if self.runs == 0:
            problems.append("the daemon launched no run")
        if not self.smoke and self.quiet_after is None:
            problems.append("the daemon never went quiet")
        if self.token_found:
            problems.append("the token was found")
        if not self.sockets or self.sockets_not_loopback:
            problems.append("a socket listens beyond 127.0.0.1" if self.sockets else "no listening socket seen")
        if self.smoke:  # Precoro has just been changed by write-back: its rows are not in the warehouse yet
            base = [line for line in base if not line.startswith("rows lost:")]
        return [
            base[0],
            f"runs launched by the daemon: {self.runs} ({origins}); {self.runs_succeeded} succeeded, "
            f"{self.runs_failed} failed, {self.run_retries} were retries; write-back runs: {self.writeback_runs}",
            f"initial sync backfill: {self.backfill or 'not launched'}; sensor ticks: {ticks} "
            f"({self.sensor_tick_failures} failed)",
            *base[2:-1],
            "smoke: stopped after the first write-back; the warehouse was not compared with Precoro (rows lost: "
            f"{self.rows_lost}, stale: {self.rows_stale}, as write-back has just changed them)"
            if self.smoke else "quiet after the last tick: " + (
                f"{self.quiet_after:.0f} s" if self.quiet_after is not None else "never"),
            f"token found in: {', '.join(self.token_found) or 'nothing'} ({self.files_grepped} files grepped, "
            "and everything printed)",
            f"listening sockets: {len(self.sockets)} ({', '.join(self.sockets) or 'none seen'})"
            + (f"; NOT on 127.0.0.1: {', '.join(self.sockets_not_loopback)}" if self.sockets_not_loopback else ""),
            "result: " + ("FAILED: " + "; ".join(problems) if not self.ok else
                          "OK (smoke): nothing was sent twice, the token is nowhere" if self.smoke else
                          "OK, the warehouse equals Precoro, nothing was sent twice, the token is nowhere"),
        ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _DaemonSoak(_Soak):
    """The soak with Dagster's daemon doing the work: this process only lets the company live, arms faults and
    watches (through the webserver's GraphQL API), then measures as the in-process soak does."""

    def __init__(self, home: Path, seed: int, days: int, documents: int, echo: Callable[[str], None],
                 sensor_interval: int):
        import httpx

        from precoro_assets import settings
        from precoro_assets.warehouse.store import Warehouse

        from ..simulator import start_simulator
        from ..simulator.app import token_for_seed

        self.httpx, self.home = httpx, home
        self.printed: list[str] = []
        self.echo = lambda line: (self.printed.append(line), echo(line))
        self.token = token_for_seed(seed)
        self.process: subprocess.Popen | None = None
        self.graphql_url = ""
        self.location = self.repository = ""
        self.started_at = time.time()
        self.sim = start_simulator(seed=seed, days=days, documents=documents, limits="scaled:1000", port=0)
        try:
            self._prepare(home, days, sensor_interval, settings, Warehouse)
        except BaseException:
            self.sim.stop()
            raise

    def _prepare(self, home: Path, days: int, sensor_interval: int, settings, Warehouse) -> None:  # noqa: N803
        self.dagster_home = home / "dagster"
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copy(PACKAGE_ROOT / "dagster.yaml", self.dagster_home / "dagster.yaml")
        self.logs = home / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        env = dict(PRECORO_API_TOKEN=self.sim.token, PRECORO_EMAIL=self.sim.email, PRECORO_BASE_URL=self.sim.url,
                   PRECORO_HOME=str(home / "var"), PRECORO_TIME_SCALE="1000",
                   PRECORO_START_DATE=(datetime.now(UTC).date() - timedelta(days=days)).isoformat(),
                   PRECORO_SENSOR_INTERVAL_SECONDS=str(sensor_interval), DAGSTER_HOME=str(self.dagster_home))
        from precoro_assets.shared_state import ENV_DATABASE_URL

        if os.environ.get(ENV_DATABASE_URL):  # the shared state in PostgreSQL, for the daemon's runs too
            env[ENV_DATABASE_URL] = os.environ[ENV_DATABASE_URL]
        for name in [k for k in os.environ if k.startswith(("PRECORO_", "DAGSTER_"))]:
            del os.environ[name]
        os.environ.update(env)  # for this process: the settings, the warehouse, the ledger folder, the outbox
        self.child_env = {**os.environ, "PRECORO_WRITEBACK_SEND": "1"}  # the daemon's runs really send
        self.config = settings.load()
        self.warehouse = Warehouse(self.config.warehouse)
        self.report = DaemonSoakReport(state=_state_described())
        self.writeback_payments: Counter = Counter()
        self.tick_payments: set[str] = set()  # payments the company's own ticks made (not write-back)
        self.initial_payments: set[str] = set()
        self.last_tick = time.monotonic()
        self.backfill = ""

    # ---- Dagster, through its GraphQL API ----
    def graphql(self, query: str, timeout: float = 60, **variables) -> dict:
        response = self.httpx.post(self.graphql_url, json={"query": query, "variables": variables},
                                   timeout=timeout)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def start_dagster(self, timeout: float) -> None:
        port = _free_port()
        self.graphql_url = f"http://127.0.0.1:{port}/graphql"
        with open(self.logs / "dagster-dev.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port),
                 "-w", str(PACKAGE_ROOT / "workspace.yaml")],
                cwd=self.home, env=self.child_env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.report.session = self.process.pid
        deadline = time.monotonic() + timeout
        problem = "the webserver did not answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {self.process.returncode}; see {self.logs}")
            try:
                entries = self.graphql(WORKSPACE, timeout=10)["workspaceOrError"].get("locationEntries") or []
            except (self.httpx.HTTPError, RuntimeError) as error:
                problem = f"the webserver did not answer: {type(error).__name__}"
                time.sleep(1)
                continue
            for entry in entries:
                location = entry.get("locationOrLoadError") or {}
                if location.get("__typename") == "PythonError":
                    raise RuntimeError(f"the code location failed to load: {location['message'][:2000]}")
                if entry["loadStatus"] == "LOADED" and location.get("repositories"):
                    self.location, self.repository = entry["name"], location["repositories"][0]["name"]
                    return
            problem = "the code location did not load"
            time.sleep(1)
        raise RuntimeError(f"{problem} within {timeout:.0f} s; see {self.logs}")

    def selector(self, sensor: str) -> dict:
        return {"repositoryLocationName": self.location, "repositoryName": self.repository, "sensorName": sensor}

    def start_sensor(self, sensor: str) -> None:
        started = self.graphql(START_SENSOR, s=self.selector(sensor))["startSensor"]
        status = (started.get("sensorState") or {}).get("status")
        if status != "RUNNING":
            raise RuntimeError(f"could not start the sensor {sensor}: {started}")

    def launch_initial_sync(self, timeout: float) -> str:
        """A backfill of every document day, as the UI launches it; returns once its run has succeeded."""
        from precoro_assets.api.catalogue import DOCUMENTS
        from precoro_assets.defs.ingest import asset_key

        first, today = self.config.start_date, datetime.now(UTC).date()
        days = [(first + timedelta(days=n)).isoformat() for n in range((today - first).days + 1)]
        launched = self.graphql(LAUNCH_BACKFILL, p={
            "partitionNames": days, "assetSelection": [{"path": asset_key(e).path} for e in DOCUMENTS],
            "tags": [{"key": "precoro/trigger", "value": "soak initial sync"}]})["launchPartitionBackfill"]
        backfill = launched.get("backfillId")
        if not backfill:
            raise RuntimeError(f"the initial sync backfill was not launched: {launched}")
        deadline, status = time.monotonic() + timeout, "REQUESTED"
        while time.monotonic() < deadline:
            status = self.backfill_status(backfill)
            if status in BACKFILL_DONE:
                return backfill
            # its run done is enough to go on (the backfill daemon marks the backfill complete up to 30 s later)
            runs = [r for r in self.runs() if r["tags"].get("dagster/backfill") == backfill]
            if runs and all(r["status"] == "SUCCESS" for r in runs):
                return backfill
            self.watch_sockets()
            time.sleep(2)
        raise RuntimeError(f"the initial sync backfill was not done within {timeout:.0f} s (status {status})")

    def backfill_status(self, backfill: str) -> str:
        return self.graphql(BACKFILL_STATUS, id=backfill)["partitionBackfillOrError"].get("status") or "?"

    def wait_for_write_back(self, timeout: float) -> None:
        """Until a write-back run has finished (the first reconciliation's batch, sent under the sure faults)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = [r for r in self.runs() if r["tags"].get("dagster/sensor_name") == "precoro_writeback"]
            if any(r["status"] not in ACTIVE_RUN for r in runs):
                return
            self.watch_sockets()
            time.sleep(2)
        raise RuntimeError(f"no write-back run finished within {timeout:.0f} s of the sensors starting")

    def runs(self) -> list[dict]:
        result = self.graphql(RUNS)["runsOrError"]
        if result["__typename"] != "Runs":
            raise RuntimeError(f"could not list runs: {result}")
        for run in result["results"]:
            run["tags"] = {t["key"]: t["value"] for t in run["tags"]}
        return result["results"]

    def ticks(self, sensor: str, after: float | None = None) -> list[dict]:
        found = self.graphql(SENSOR_TICKS, s=self.selector(sensor), after=after)["sensorOrError"]
        return (found.get("sensorState") or {}).get("ticks") or []

    def watch_sockets(self) -> None:
        """Note every listening socket of the simulator (this process) and of dagster dev's processes."""
        if self.process is None:
            return
        # the processes of dagster dev's session as they are now (a pid seen earlier may belong to anyone by now)
        ours = set(processes_in_session(self.process.pid)) | {os.getpid()}
        inodes = {inode: pid for pid in ours for inode in socket_inodes_of(pid)}
        for address, port, inode in listening_sockets():
            if inode not in inodes:
                continue
            pid = inodes[inode]
            name = f"{address}:{port} ({'simulator' if pid == os.getpid() else _process_name(pid)})"
            if name not in self.report.sockets:
                self.report.sockets.append(name)
                if address != LOOPBACK:
                    self.report.sockets_not_loopback.append(name)

    # ---- the company ----
    def tick(self, events: int = 3) -> None:
        """What the simulator's `tick_every` does (`app.tick(3)`), keeping the changes: the payments the
        company makes itself are told apart from those write-back sent."""
        changes = self.control("POST", "tick", json={"events": events})["changes"]
        self.report.ticks += 1
        self.report.changes += len(changes)
        self.tick_payments |= {str(c["key"]) for c in changes if c["resource"] == "payments"}
        self.last_tick = time.monotonic()

    # ---- quiet ----
    def quiet(self) -> bool:
        """No run or backfill active, no write-back pending, and every sensor evaluated since the last run
        ended (so none of them has anything left to ask for)."""
        runs = self.runs()
        if any(run["status"] in ACTIVE_RUN for run in runs) or self._pending():
            return False
        if self.backfill_status(self.backfill) not in BACKFILL_DONE:
            return False
        last_end = max((run["endTime"] or run["updateTime"] or 0 for run in runs), default=0)
        if time.time() - last_end < 5:  # a failed run's retry is launched a moment after it ends
            return False
        for sensor in SENSORS:
            done = [t for t in self.ticks(sensor, after=last_end) if t["status"] not in ("STARTED",)]
            if not any(t["status"] == "SKIPPED" for t in done):
                return False
        return True

    def wait_quiet(self, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        said = time.monotonic()
        while time.monotonic() < deadline:
            self.watch_sockets()
            if self.quiet():
                return time.monotonic() - self.last_tick
            if time.monotonic() - said > 30:
                said = time.monotonic()
                statuses = Counter(run["status"] for run in self.runs())
                self.echo(f"catching up: {statuses['QUEUED']} runs queued, "
                          f"{sum(statuses[s] for s in ACTIVE_RUN) - statuses['QUEUED']} running, "
                          f"{statuses['SUCCESS']} succeeded, {statuses['FAILURE']} failed; "
                          f"{self._pending()} write-back(s) pending")
            time.sleep(2)
        return None

    # ---- figures ----
    def count_runs(self) -> None:
        report = self.report
        runs = self.runs()
        origins: Counter = Counter()
        for run in runs:
            tags = run["tags"]
            if "dagster/parent_run_id" in tags or "dagster/retry_number" in tags:
                report.run_retries += 1
            origin = tags.get("dagster/sensor_name") or ("backfill" if "dagster/backfill" in tags else "other")
            origins[origin] += 1
        report.runs = len(runs)
        report.runs_by_origin = dict(origins)
        report.runs_succeeded = sum(run["status"] == "SUCCESS" for run in runs)
        report.runs_failed = sum(run["status"] == "FAILURE" for run in runs)
        report.writeback_runs = origins.get("precoro_writeback", 0)
        for run in [r for r in runs if r["status"] == "FAILURE"][:10]:
            events = self.graphql(RUN_FAILURE, id=run["runId"])["logsForRun"].get("events") or []
            messages = [e["error"]["message"] if e.get("error") else e.get("message") or "" for e in events
                        if e["__typename"] in ("ExecutionStepFailureEvent", "RunFailureEvent")]
            report.failures.append(f"run {run['runId'][:8]} ({run['tags'].get('dagster/sensor_name', '')}): "
                                   + " | ".join(m.strip()[:300] for m in messages if m)[:900])
        for sensor in SENSORS:
            ticks = self.ticks(sensor, after=self.started_at)
            report.sensor_ticks[sensor] = len(ticks)
            failed = [t for t in ticks if t["status"] == "FAILURE"]
            report.sensor_tick_failures += len(failed)
            report.failures += [f"{sensor} tick: {(t['error'] or {}).get('message', '').strip()[:300]}"
                                for t in failed[:3]]

    def measure(self) -> SoakReport:
        # Payments Precoro holds now that neither existed before write-back started nor were made by the
        # company's ticks: every one of them was sent by write-back.
        self.writeback_payments = Counter(
            _payment_identity(p) for p in self.export("payments")
            if str(p["idn"]) not in self.initial_payments and str(p["idn"]) not in self.tick_payments)
        return super().measure()

    def check_token(self) -> None:
        """Grep DAGSTER_HOME (run storage, event log, compute logs), PRECORO_HOME (warehouse, state, ledger), the
        logs of dagster dev and everything this soak printed for the API token."""
        needle = self.token.encode()
        self.report.files_grepped = sum(1 for path in self.home.rglob("*") if path.is_file())
        self.report.token_found = [str(p.relative_to(self.home)) for p in files_containing(self.home, needle)]
        printed = "\n".join(self.printed + self.report.failures)
        if self.token in printed:
            self.report.token_found.append("(printed output)")

    # ---- the whole soak ----
    def run(self, seconds: float, tick_every: float, rng: random.Random, min_rounds: int = 1,
            timeout: float = 900, smoke: bool = False) -> SoakReport:
        from precoro_assets.ledger.files import ledger_dir

        from ..demo_ledger import company_from_simulator, demo_ledger_for, write_demo_ledger

        self.echo(f"starting dagster dev (webserver and daemon on 127.0.0.1, DAGSTER_HOME={self.dagster_home}) ...")
        self.start_dagster(timeout=min(timeout, 300))
        self.watch_sockets()
        self.control("POST", "faults", json={"kind": "error", "status": 503, "method": "GET", "count": 2,
                                             "after": 3})
        self.echo("initial sync of every document day: a backfill the daemon runs ...")
        self.backfill = self.launch_initial_sync(timeout)
        write_demo_ledger(demo_ledger_for(company_from_simulator(self.sim.url)), ledger_dir())
        self.initial_payments = {str(p["idn"]) for p in self.export("payments")}
        for rule in SURE_FAULTS:
            self.control("POST", "faults", json=rule)
        for sensor in SENSORS:
            self.start_sensor(sensor)
        self.echo(f"sensors running: {', '.join(SENSORS)}; waiting for the first reconciliation and write-back "
                  "(sending on) ...")
        self.wait_for_write_back(timeout)
        if smoke:
            self.report.smoke = True
            self.control("DELETE", "faults")
            self.watch_sockets()
            self.report.backfill = self.backfill_status(self.backfill)
            self.count_runs()
            return self.measure()
        self.echo("the company lives ...")
        started = time.monotonic()
        deadline = started + seconds
        while time.monotonic() < deadline or self.report.rounds < min_rounds:
            round_started = time.monotonic()
            self.report.rounds += 1
            self.tick()
            self.arm_faults(rng)
            self.watch_sockets()
            runs = self.runs()
            statuses = Counter(run["status"] for run in runs)
            self.echo(f"round {self.report.rounds}: {self.report.changes} changes so far; runs: "
                      f"{sum(statuses[s] for s in ACTIVE_RUN)} active, {statuses['SUCCESS']} succeeded, "
                      f"{statuses['FAILURE']} failed; {time.monotonic() - started:.0f} s of {seconds:.0f}")
            time.sleep(max(0.0, tick_every - (time.monotonic() - round_started)))
        self.report.seconds = time.monotonic() - started
        self.echo("the company stops; faults cleared; waiting for the daemon to catch up and go quiet ...")
        self.control("DELETE", "faults")
        self.report.quiet_after = self.wait_quiet(timeout)
        self.watch_sockets()
        self.report.backfill = self.backfill_status(self.backfill)
        self.count_runs()
        return self.measure()

    def left_behind(self) -> list[int]:
        return processes_in_session(self.process.pid) if self.process is not None else []

    def stop(self) -> None:
        """Stop dagster dev (its webserver, daemon, code server and any run), then the simulator."""
        try:
            if self.process is not None:
                if self.process.poll() is None:
                    self.process.send_signal(signal.SIGINT)  # dagster dev shuts its services down
                    try:
                        self.process.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        pass
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(timeout=30)
                # then every process of its session, even one that left the group, until none is left
                deadline = time.monotonic() + 60
                while (left := self.left_behind()) and time.monotonic() < deadline:
                    for pid in left:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    time.sleep(0.2)
        finally:
            self.sim.stop()


def processes_in_session(session: int) -> list[int]:
    """Every process (zombies aside) of a session: what is left of the processes started in it."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return sorted(found)


def _process_name(pid: int) -> str:
    line = _command_line(pid)
    for marker, name in (("dagster_webserver", "webserver"), ("dagster._daemon", "daemon"),
                         ("code-server", "code server"), ("api grpc", "code server"), ("execute_run", "run"),
                         ("execute_step", "run step"), ("dagster dev", "dagster dev")):
        if marker in line:
            return f"{name} {pid}"
    return f"{line[:60]} {pid}"


def run_daemon_soak(home: Path, seconds: float, tick_every: float = 3.0, seed: int = 7, days: int = 10,
                    documents: int = 150, echo: Callable[[str], None] = print, min_rounds: int = 1,
                    sensor_interval: int = 5, timeout: float | None = None,
                    smoke: bool = False) -> DaemonSoakReport:
    """The soak through `dagster dev` (a real daemon) with all state under `home` (PRECORO_HOME = home/var,
    DAGSTER_HOME = home/dagster, the logs of dagster dev in home/logs). Every process it started is stopped
    before it returns, whatever happened; the token grep runs after that, so every log is complete.

    `timeout` bounds each wait (the initial sync, the first write-back, going quiet; default 15 minutes plus
    four times `seconds`: on 2 busy cores the daemon runs about one run every 10 s and falls behind a company
    ticking every few seconds). `smoke` stops after the first write-back, without letting the company live."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(("PRECORO_", "DAGSTER_"))}
    soak = None
    try:
        soak = _DaemonSoak(home, seed, days, documents, echo, sensor_interval)
        try:
            report = soak.run(seconds, tick_every, random.Random(seed), min_rounds,
                              timeout if timeout is not None else 900 + 4 * seconds, smoke)
        finally:
            soak.stop()
        soak.check_token()
        return report
    finally:
        for name in [k for k in os.environ if k.startswith(("PRECORO_", "DAGSTER_"))]:
            del os.environ[name]
        os.environ.update(saved)


@click.command("reliability")
@click.option("--minutes", type=float, default=2.0, show_default=True, help="How long the company lives.")
@click.option("--tick-every", type=float, default=3.0, show_default=True, help="Seconds between company ticks.")
@click.option("--daemon", is_flag=True, help="Run the sensors, reconciliation and write-back through a real "
              "Dagster daemon (dagster dev on 127.0.0.1) instead of in this process.")
@click.option("--sensor-interval", type=int, default=5, show_default=True,
              help="With --daemon: minimum seconds between two evaluations of each sensor.")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the soak keeps its state (default: a new temporary folder, removed afterwards).")
@click.option("--seed", default=7, show_default=True)
@click.option("--database-url", envvar="PRECORO_DATABASE_URL", default=None,
              help="Keep the shared state (request ledger, staging, outbox, the warehouse's catalog) in this "
              "PostgreSQL database (postgresql://...; default: SQLite files under the soak's home).")
@click.option("--no-hostile", is_flag=True, help="In-process: without issue #28's hostile inputs (ledger files "
              "with huge amounts, links, cut or growing files; formula and 200 KiB supplier names; syncs killed "
              "in the API slot).")
def reliability(minutes: float, tick_every: float, daemon: bool, sensor_interval: int, home: Path | None,
                seed: int, database_url: str | None, no_hostile: bool) -> None:
    """Soak: the simulated company lives under injected faults; print the figures (exit 1 if anything is off)."""
    import tempfile

    from precoro_assets.shared_state import ENV_DATABASE_URL

    def echo(line: str) -> None:
        click.echo(line, err=True)

    if database_url:
        os.environ[ENV_DATABASE_URL] = database_url
    else:
        os.environ.pop(ENV_DATABASE_URL, None)
    with tempfile.TemporaryDirectory(prefix="precoro-soak-") as scratch:
        if daemon:
            report = run_daemon_soak(home or Path(scratch), minutes * 60, tick_every, seed, echo=echo,
                                     sensor_interval=sensor_interval)
        else:
            report = run_soak(home or Path(scratch), minutes * 60, tick_every, seed, echo=echo,
                              hostile=not no_hostile)
    for line in report.lines():
        click.echo(line)
    for failure in report.failures[:20]:
        click.echo(f"  {failure}", err=True)
    if not report.ok:
        sys.exit(1)


if __name__ == "__main__":
    reliability()
