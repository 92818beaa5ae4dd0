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

With --daemon the same soak runs through a real Dagster daemon instead: see daemon.py.
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from precoro_assets.cli import PACKAGE_ROOT  # the product's dagster.yaml and workspace.yaml

if TYPE_CHECKING:
    from .faults import HostileLedger, KillFigures

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
    ledger: HostileLedger | None = None
    webhooks = None  # WebhookStorm: `precoro-assets webhooks` under edge input
    kills: KillFigures | None = None

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
        resources = dict(defs.resources or {})
        precoro = resources["precoro"].model_copy(update={"timeout_seconds": 3.0})
        self.defs = dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs,
                                   schedules=defs.schedules, sensors=defs.sensors,
                                   resources={**resources, "precoro": precoro})
        self.instance = dg.DagsterInstance.from_config(str(dagster_home))
        self.warehouse = Warehouse(self.config.warehouse, **self.config.warehouse_options())
        self.report = SoakReport(state=_state_described(), hostile=hostile)
        self.home = home
        self.names: dict[str, str] = {}  # purchase orders whose supplier got a hostile name
        self.launched: set[str | None] = set()
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
        assets = [a for a in self.defs.assets or [] if isinstance(a, dg.AssetsDefinition)
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
        for request in tick.run_requests or []:
            if request.run_key in self.launched:
                continue
            self.launched.add(request.run_key)
            keys = [k.to_user_string() for k in request.asset_selection or []]
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
        assert self.ledger is not None  # set up by run() with the hostile inputs
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
        from precoro_assets.ledger.files import VENDORS_FILE
        from precoro_assets.settings import ledger_dir

        from .faults import hostile_supplier_names

        self.names = hostile_supplier_names(self.export("purchaseorders"), rng)
        for idn, name in self.names.items():
            self.control("POST", f"records/purchaseorders/{idn}", json={"supplierName": name})
        with open(ledger_dir() / VENDORS_FILE, "a", newline="", encoding="utf-8") as vendors:
            csv.writer(vendors, lineterminator="\n").writerows(
                [f"SOAK-VEN-{idn}", name] for idn, name in self.names.items() if len(name) < 1000)

    def start_webhooks(self) -> None:
        from precoro_assets.ingest.webhook_inbox import WebhookInbox, inbox_path

        from .faults import WebhookStorm

        inbox = WebhookInbox(inbox_path(self.config.state_dir), self.config.database_url_value)
        self.webhooks = WebhookStorm(self.home / "logs", inbox)

    def kill_a_sync(self) -> None:
        from .faults import kill_a_sync_in_the_api_slot

        start = (datetime.now(UTC).date() - timedelta(days=2)).isoformat()
        assert self.kills is not None  # set up by run() with the hostile inputs
        kill_a_sync_in_the_api_slot(self.instance, self.control, start, self.home / "logs", self.kills)
        self.report.syncs_killed, self.report.syncs_after_kill = self.kills.kills, self.kills.syncs_after

    def arm_faults(self, rng: random.Random) -> None:
        weights = [w for w, _ in FAULTS]
        for rule in rng.choices([r for _, r in FAULTS], weights=weights, k=2):
            self.control("POST", "faults", json=rule)

    # ---- the whole soak ----
    def run(self, seconds: float, tick_every: float, rng: random.Random, min_rounds: int = 1) -> SoakReport:
        from precoro_assets.settings import ledger_dir

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

        return Outbox(self.config.state_dir / "outbox.sqlite", self.config.database_url_value).counts().get("pending", 0)

    def measure(self) -> SoakReport:
        from precoro_assets.catalogue import DOCUMENTS
        from precoro_assets.warehouse import tables
        from precoro_assets.writeback.outbox import Outbox
        from precoro_assets.writeback.proposals import CREATE_PAYMENT

        from ..ground_truth import differences

        report = self.report
        stats = self.control("GET", "stats")
        report.faults_injected = dict(stats["faults_injected"])
        report.requests = stats["total"]
        report.rate_limited = sum(stats["rate_limited"].values())
        report.rate_limited_by = dict(stats["rate_limited"])
        for entity in DOCUMENTS:
            truth = {str(r[entity.key]) for r in self.export(entity.path)}
            def keys_of(con, entity=entity):  # the entity of this turn, bound now
                return tables.stored_keys(con, entity), tables.duplicate_keys(con, entity)

            stored, duplicated = self.warehouse.read(keys_of)
            report.documents += len(stored & truth)
            report.rows_lost += len(truth - stored)
            report.rows_extra += len(stored - truth)
            report.duplicates += sum(row[-1] - 1 for row in duplicated)  # (table, key..., count)
            found = differences(self, entity)
            report.rows_stale += sum(" fields differ" in d for d in found)
            report.differences += found
        rows = Outbox(self.config.state_dir / "outbox.sqlite", self.config.database_url_value).rows()
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
        from precoro_assets.ledger.files import EXPORT_FOLDER
        from precoro_assets.settings import ledger_dir

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
        assert self.ledger is not None and self.kills is not None  # measure_hostile runs with the hostile inputs
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
    from precoro_assets.runtime.shared_state import describe_url
    from precoro_assets.settings import load_state

    url = load_state().database_url_value
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
