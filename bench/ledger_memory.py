"""`python -m bench.ledger_memory [--rows 1000000]`: time and peak memory of loading and reconciling a large ledger.

A year of a large company's payments is about a million rows (50 MB of CSV). This writes such a payments.csv
into a fresh PRECORO_HOME (no Precoro data: every row is then unmatched, which still reads, checks, stores and
classifies each one) and runs, each in a fresh process whose peak resident memory is taken from the kernel
(os.wait4's rusage, as /usr/bin/time -v reports it):

- loader: the `ledger` asset alone (read the folder, check each row, write precoro.ledger_payments);
- reconcile: `precoro-assets reconcile` (the ledger, then the reconciliation and the outbox).

Prints one line per step and writes bench/results/ledger_memory.md. Figures are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from precoro_sim import embedded

RESULTS = Path(__file__).resolve().parent / "results"

LOADER = """
import dagster as dg
from precoro_assets.definitions import defs
from precoro_assets.catalogue import ENTITIES
from precoro_assets.defs.naming import DEFAULT
from precoro_assets.defs.reconcile import build_reconciliation
load_ledger = build_reconciliation(DEFAULT, ENTITIES)[0]
result = dg.materialize([load_ledger], resources=defs.resources, raise_on_error=True)
"""


def write_payments(path: Path, rows: int, seed: int = 7) -> int:
    """`rows` payments, half named by bill id and half by supplier + invoice number; returns the file's size."""
    rng = random.Random(seed)
    start = date(2026, 1, 1)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("payment_id,bill_id,supplier,invoice_number,amount,currency,paid_on\n")
        for n in range(1, rows + 1):
            amount = f"{rng.randint(100, 2_000_000) / 100:.2f}"
            day = (start + timedelta(days=n % 365)).isoformat()
            if n % 2:
                handle.write(f"PAY-{n:07d},BILL-{n:07d},,,{amount},EUR,{day}\n")
            else:
                handle.write(f"PAY-{n:07d},,Supplier {n % 5000},INV-{n:07d},{amount},EUR,{day}\n")
    return path.stat().st_size


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, exit code) of one process."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode and process.stderr is not None:
        sys.stderr.write(process.stderr.read().decode(errors="replace")[-3000:])
    return time.monotonic() - started, usage.ru_maxrss / 1024, process.returncode


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="payment rows (default 1,000,000)")
    parser.add_argument("--steps", default="loader,reconcile", help="comma-separated: loader, reconcile")
    args = parser.parse_args(argv)
    lines = [f"# Ledger memory ({args.rows:,} payment rows)", "", "| step | seconds | peak RSS (MB) | exit |",
             "|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="ledger-memory-") as home:
        ledger = Path(home) / "ledger"
        ledger.mkdir()
        size = write_payments(ledger / "payments.csv", args.rows)
        os.utime(ledger / "payments.csv", (time.time() - 60, time.time() - 60))  # an export finished a minute ago
        print(f"payments.csv: {args.rows:,} rows, {size / 1e6:.1f} MB")
        embedded.apply()  # no account: the bundled simulator's settings (nothing here talks to it)
        env = {**os.environ, "PRECORO_HOME": home, "PRECORO_LEDGER_DIR": str(ledger), "DAGSTER_HOME": home}
        for step in args.steps.split(","):
            command = ([sys.executable, "-c", LOADER] if step == "loader"
                       else [sys.executable, "-m", "precoro_sim.cli", "reconcile"])
            seconds, peak, code = measure(command, env)
            print(f"{step}: {seconds:.1f} s, peak RSS {peak:,.0f} MB, exit {code}")
            lines.append(f"| {step} | {seconds:.1f} | {peak:,.0f} | {code} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ledger_memory.md").write_text("\n".join([*lines, "", f"payments.csv: {size / 1e6:.1f} MB"]) + "\n")


if __name__ == "__main__":
    main()
