"""The soak: the simulated company lives while the change sensor, reconciliation and write-back keep up under
injected faults; at the end the warehouse must equal Precoro and nothing may have been sent twice.

    precoro-assets reliability --minutes 5          # or: python -m precoro_assets.reliability_report --minutes 5

Everything runs in this process against a bundled simulator on 127.0.0.1 (limits `scaled:1000`, so every
Precoro limit is enforced, a thousand times faster): each round the company changes (`POST /_sim/tick`), a
burst of faults is armed (5xx, resets, slow answers, lost POST/PATCH answers, now and then a 429), the sensor
`precoro_changes` is evaluated and its run requests are launched (a failed run is retried twice, as
dagster.yaml's run_retries does), and every few rounds the ledger is reconciled and the outbox written back
with sending on. Then the faults are cleared, the sensor runs until it asks for nothing, and the figures are
taken. The long variant through a real Dagster daemon is tests/reliability/test_soak.py (marked reliability).
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import click

PACKAGE_ROOT = Path(__file__).resolve().parent
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

    @property
    def ok(self) -> bool:
        return not (self.rows_lost or self.rows_stale or self.rows_extra or self.duplicates
                    or self.duplicate_payments or self.duplicate_patches or self.differences)

    def lines(self) -> list[str]:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults_injected.items())) or "none"
        return [
            f"soak: {self.seconds:.0f} s, {self.rounds} rounds, {self.ticks} company ticks ({self.changes} changes)",
            f"runs launched by the sensor: {self.runs} ({self.runs_failed} failed, {self.run_retries} retried); "
            f"write-back runs: {self.writeback_runs}",
            f"documents synced: {self.documents}",
            f"faults injected: {sum(self.faults_injected.values())} ({faults})",
            f"requests spent: {self.requests}",
            f"429s: {self.rate_limited}",
            f"payments sent: {self.payments_sent} ({self.payments_adopted} adopted after a lost answer); "
            f"patches sent: {self.patches_sent}",
            f"rows lost: {self.rows_lost} (must be 0); stale: {self.rows_stale}; not in Precoro: {self.rows_extra}",
            f"duplicates: {self.duplicates} rows, {self.duplicate_payments} payments, "
            f"{self.duplicate_patches} patches (must be 0)",
            "result: " + ("OK, the warehouse equals Precoro" if self.ok else
                          "FAILED: " + "; ".join(self.differences[:10])),
        ]


class _Soak:
    def __init__(self, home: Path, seed: int, days: int, documents: int, echo: Callable[[str], None]):
        import dagster as dg
        import httpx

        from . import settings
        from .definitions import build_definitions
        from .simulator import start_simulator
        from .warehouse.store import Warehouse

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
        self.report = SoakReport()
        self.launched: set[str] = set()
        self.cursor: str | None = None
        self.writeback_payments: Counter = Counter()  # payments Precoro gained while write-back ran

    # ---- the simulator ----
    def control(self, method: str, path: str, **kwargs) -> dict:
        response = self.httpx.request(method, f"{self.sim.url}/_sim/{path}", timeout=60, **kwargs)
        response.raise_for_status()
        return response.json()

    def export(self, resource: str) -> list[dict]:
        """Ground truth, as precoro_assets.verify.differences expects it (plain JSON)."""
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
                    what: str = "run") -> bool:
        dg = self.dg
        assets = [a for a in self.defs.assets if isinstance(a, dg.AssetsDefinition)
                  and any(k.to_user_string() in keys for k in a.keys)]
        for attempt in range(RUN_RETRIES + 1):
            result = dg.materialize(assets, partition_key=partition, instance=self.instance,
                                    resources=self.defs.resources, tags=tags or {}, raise_on_error=False,
                                    run_config=QUIET)
            if result.success:
                return True
            self._failure(result, what)
            self.report.runs_failed += 1
            if attempt < RUN_RETRIES:
                self.report.run_retries += 1
        return False

    def sync_all(self) -> None:
        start, end = self.config.start_date.isoformat(), datetime.now(UTC).date().isoformat()
        from .defs.ingest import DOCUMENTS_GROUP

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
            self.materialize(keys, partition=request.partition_key, tags=dict(request.tags),
                             what=f"{','.join(keys)} {request.partition_key}")
            self.report.runs += 1
            launched += 1
        return launched

    def reconcile_and_write_back(self) -> None:
        if not self.materialize(RECONCILIATION, what="reconciliation"):
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

    def arm_faults(self, rng: random.Random) -> None:
        weights = [w for w, _ in FAULTS]
        for rule in rng.choices([r for _, r in FAULTS], weights=weights, k=2):
            self.control("POST", "faults", json=rule)

    # ---- the whole soak ----
    def run(self, seconds: float, tick_every: float, rng: random.Random, min_rounds: int = 1) -> SoakReport:
        from .ledger.demo import company_from_simulator, demo_ledger_for, write_demo_ledger
        from .ledger.files import ledger_dir

        started = time.monotonic()
        self.control("POST", "faults", json={"kind": "error", "status": 503, "method": "GET", "count": 2,
                                             "after": 3})
        self.echo("initial sync of every document day ...")
        self.sync_all()
        write_demo_ledger(demo_ledger_for(company_from_simulator(self.sim.url)), ledger_dir())
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
            self.arm_faults(rng)
            launched = self.sensor_round()
            if self.report.rounds % 2 == 0:
                self.reconcile_and_write_back()
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
        from .writeback.outbox import Outbox

        return Outbox(self.config.state_dir / "outbox.sqlite").counts().get("pending", 0)

    def measure(self) -> SoakReport:
        from .api.catalogue import DOCUMENTS
        from .reconcile import CREATE_PAYMENT
        from .verify import differences
        from .warehouse import tables
        from .writeback.outbox import Outbox

        report = self.report
        stats = self.control("GET", "stats")
        report.faults_injected = dict(stats["faults_injected"])
        report.requests = stats["total"]
        report.rate_limited = sum(stats["rate_limited"].values())
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
        return report

    def stop(self) -> None:
        self.instance.dispose()
        self.sim.stop()


def _payment_identity(payment: dict) -> tuple:
    return (str(payment["invoice"]["idn"]), Decimal(str(payment["sumPaid"])), str(payment["payDate"])[:10])


def run_soak(home: Path, seconds: float, tick_every: float = 3.0, seed: int = 7, days: int = 10,
             documents: int = 150, echo: Callable[[str], None] = print, min_rounds: int = 1) -> SoakReport:
    """Run the soak with all state under `home` (PRECORO_HOME = home/var, DAGSTER_HOME = home/dagster): the
    company lives `seconds` (and at least `min_rounds` ticks) after the initial sync and write-back."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(("PRECORO_", "DAGSTER_"))}
    soak = _Soak(home, seed, days, documents, echo)
    try:
        return soak.run(seconds, tick_every, random.Random(seed), min_rounds)
    finally:
        soak.stop()
        for name in [k for k in os.environ if k.startswith(("PRECORO_", "DAGSTER_"))]:
            del os.environ[name]
        os.environ.update(saved)


@click.command("reliability")
@click.option("--minutes", type=float, default=2.0, show_default=True, help="How long the company lives.")
@click.option("--tick-every", type=float, default=3.0, show_default=True, help="Seconds between company ticks.")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the soak keeps its state (default: a new temporary folder, removed afterwards).")
@click.option("--seed", default=7, show_default=True)
def reliability(minutes: float, tick_every: float, home: Path | None, seed: int) -> None:
    """Soak: the simulated company lives under injected faults; print the figures (exit 1 if anything is off)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="precoro-soak-") as scratch:
        report = run_soak(home or Path(scratch), minutes * 60, tick_every, seed,
                          echo=lambda line: click.echo(line, err=True))
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        sys.exit(1)


if __name__ == "__main__":
    reliability()
