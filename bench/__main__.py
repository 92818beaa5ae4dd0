"""`python -m bench [options]`: run the benchmarks, print the tables, write bench/results/<name>.md and .json.

Examples:
    python -m bench                                   # everything (about 15 minutes on 2 cores)
    python -m bench --parts efficiency,quota          # the request figures only (about 5 minutes)
    python -m bench --parts throughput --sizes 10000  # one size
    python -m bench --quick                           # tiny sizes, a smoke test (seconds)
    python -m bench --parts throughput --sizes 10k --ab c061575   # ours now vs ours at that commit, taking turns
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from . import report, runner

RESULTS = Path(__file__).resolve().parent / "results"


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part.replace("_", "").replace("k", "000")) for part in text.split(",") if part.strip())


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="efficiency,quota,throughput,time_to_data,hosts,catalogue,companies",
                        help="comma-separated: efficiency, quota, throughput, time_to_data, hosts, catalogue, "
                             "companies (default: all)")
    parser.add_argument("--time-to-data-documents", type=int, default=100_000,
                        help="documents of the time_to_data backfill (default 100k)")
    parser.add_argument("--tools", default=None,
                        help="comma-separated: ours, dlt (default: both; with --ab: ours)")
    parser.add_argument("--ab", metavar="COMMIT", default=None,
                        help="the throughput part only: also run our sync at COMMIT (a git worktree of it, with its "
                             "own simulator), taking turns with this checkout's; results go to ab-<commit>")
    parser.add_argument("--sizes", type=_sizes, default=(10_000, 100_000),
                        help="throughput sizes in documents, e.g. 10k,100k (default)")
    parser.add_argument("--efficiency-documents", type=int, default=30)
    parser.add_argument("--efficiency-days", type=int, default=7)
    parser.add_argument("--efficiency-scale", type=float, default=1.0,
                        help="time scale F of Precoro's limits for the efficiency part (default 1: real limits)")
    parser.add_argument("--tick-events", type=int, default=10)
    parser.add_argument("--quota-documents", type=int, default=4500)
    parser.add_argument("--quota-scale", type=float, default=1000.0,
                        help="time scale F for the quota part: a quota day lasts 86400/F s (default 1000)")
    parser.add_argument("--quota-max-days", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3,
                        help="throughput runs per tool at the smallest size; the median run is reported (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes for a smoke test: results go to <name>=quick unless --name is given")
    parser.add_argument("--name", default=None, help="results file name (default: latest, or quick with --quick)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory (default: bench/results)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a temporary one)")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace, workdir: Path) -> runner.Settings:
    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    if args.ab and parts != ("throughput",):
        raise SystemExit("--ab compares the throughput part: give --parts throughput with it")
    tools = args.tools or ("ours" if args.ab else "ours,dlt")
    settings = runner.Settings(
        workdir=workdir, parts=parts, ab_commit=args.ab,
        tools=tuple(t.strip() for t in tools.split(",") if t.strip()),
        sizes=args.sizes, efficiency_documents=args.efficiency_documents, efficiency_days=args.efficiency_days,
        efficiency_scale=args.efficiency_scale, tick_events=args.tick_events, quota_documents=args.quota_documents,
        quota_scale=args.quota_scale, quota_max_days=args.quota_max_days, throughput_repeats=args.repeats,
        time_to_data_documents=args.time_to_data_documents,
        log=lambda message: print(f"{datetime.now():%H:%M:%S} {message}", file=sys.stderr, flush=True),
    )
    if args.quick:
        settings.efficiency_documents, settings.efficiency_days, settings.tick_events = 10, 2, 5
        settings.efficiency_scale, settings.incremental_modes = 4.0, 1
        settings.quota_documents, settings.quota_days, settings.quota_max_days = 0, 0, 0
        settings.parts = tuple(p for p in settings.parts if p != "quota")
        settings.sizes = (300,)
        settings.throughput_days, settings.http_floor, settings.throughput_repeats = 5, False, 1
        settings.time_to_data_documents, settings.time_to_data_days = 600, 10
        settings.hosts_documents, settings.hosts_days = 300, 8
        settings.catalogue_vendors, settings.catalogue_changes = 250, 8
        settings.companies_documents, settings.companies_days = 100, 5
    return settings


def run(args: argparse.Namespace) -> dict:
    began = time.monotonic()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="precoro-bench-") as scratch:
        settings = settings_from(args, args.workdir or Path(scratch))
        results: dict = {"settings": {k: v for k, v in settings.__dict__.items() if k not in ("log", "workdir")}}
        for part in settings.parts:
            results[part] = getattr(runner, part)(settings)
    results["environment"] = {
        "finished_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "cpus": os.cpu_count(),
        "load_before": round(load_before, 1), "load_after": round(os.getloadavg()[0], 1),
        "python": platform.python_version(), "dlt": version("dlt"), "dagster": version("dagster"),
        "minutes": (time.monotonic() - began) / 60,
        "command": "python -m bench " + " ".join(sys.argv[1:]) if sys.argv[1:] else "python -m bench",
    }
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    results = run(args)
    name = args.name or ("quick" if args.quick else f"ab-{args.ab}" if args.ab else "latest")
    md, js = report.write(results, args.out, name)
    print(report.markdown({**results}))
    print(f"\nwritten: {md} and {js}")


if __name__ == "__main__":
    main()
