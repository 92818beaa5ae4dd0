"""The three benchmark parts. Each starts its own simulator process and runs every tool in a fresh worker.

Requests, 429s and duplicates are counted from the simulator's request log (`/_sim/requests`), never from
a tool's own report, so both tools are measured by the same ruler.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from . import sim

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("ours", "dlt")
REAL_MAX_WAIT_SECONDS = 600.0  # PrecoroResource.max_wait_seconds: beyond this wait a run stops (QuotaExhausted)
DAY_SECONDS = 86400.0


@dataclass
class Settings:
    """Sizes and scales of one benchmark run (the defaults are the full run, about 25 minutes)."""

    workdir: Path
    parts: tuple[str, ...] = ("efficiency", "quota", "throughput")
    # Request efficiency: a small company at Precoro's real limits, not sped up: scaling shrinks a client's
    # safety margins below this machine's scheduling jitter (see docs/performance.md).
    efficiency_documents: int = 30
    efficiency_days: int = 7
    efficiency_scale: float = 1.0
    tick_events: int = 10
    incremental_modes: int = 2  # ours: the change sensor, then a re-sync of the range
    # Quota: a backfill that needs about 1.4 days of quota; a quota day lasts 86400/F seconds.
    quota_documents: int = 4500
    quota_days: int = 30
    quota_scale: float = 1000.0
    quota_max_days: int = 3
    # Throughput and memory: limits off.
    sizes: tuple[int, ...] = (10_000, 100_000)
    throughput_days: int = 90
    throughput_time_scale: float = 1e6  # our client's quota guard, effectively off (see docs/performance.md)
    http_floor: bool = True  # also time bare sequential HTTP (no tool) at the smallest size
    # Runs per tool at the smallest size, the tools alternating; the median run is reported. A run of ten
    # seconds or so varies by +-15% on a shared machine; a run of minutes (the larger sizes) averages that out.
    throughput_repeats: int = 3
    # Time to data: a first backfill at Precoro's limits sped up F times, stopped by the day's quota.
    time_to_data_documents: int = 100_000
    time_to_data_days: int = 90
    # Several hosts: 4 syncs at once on 2 hosts sharing one PostgreSQL database and one bucket.
    hosts_documents: int = 2000
    hosts_days: int = 30
    hosts_scale: float = 100.0
    # The catalogue sync: an initial sync of N new vendors, then 20 changes, at Precoro's limits sped up F times.
    catalogue_vendors: int = 1000
    catalogue_changes: int = 20
    catalogue_scale: float = 100.0
    # Several companies: each its own token and budget, synced one alone, then two at once (and sharing a budget).
    companies_documents: int = 600
    companies_days: int = 30
    companies_scale: float = 10.0  # Precoro's pace matters here, not the CPU: the demo's scale
    tools: tuple[str, ...] = TOOLS
    # An A/B of the throughput part: our sync at this commit (a git worktree of it, its own simulator) taking turns
    # with the current checkout, so that a slowdown shows up the day it lands.
    ab_commit: str | None = None
    seed: int = 7
    log: Any = field(default=print)


def worker(spec: dict, timeout: float = 3600.0, root: Path = ROOT) -> dict:
    """Run one measured sync in a fresh process, with the bench and the package of the checkout `root` (another
    one: an earlier commit, see `ab`); its last stdout line is the JSON result."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "RUNTIME__DLTHUB_TELEMETRY": "false", "PYTHONPATH": str(root)}
    for name in list(env):
        if name.startswith("PRECORO_") or name == "DAGSTER_HOME":
            del env[name]  # the spec alone decides where the worker points
    completed = subprocess.run([sys.executable, "-m", "bench.worker", json.dumps(spec)], cwd=root, env=env,
                               capture_output=True, text=True, timeout=timeout, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"bench worker failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return json.loads(lines[-1])


def _spec(simulator: sim.Simulator, tool: str, action: str, home: Path, start: date, end: date,
          time_scale: float, max_wait_seconds: float | None = None, assets: list[str] | None = None) -> dict:
    return {"tool": tool, "action": action, "url": simulator.url, "token": simulator.token, "email": simulator.email,
            "home": str(home), "start": start.isoformat(), "end": end.isoformat(), "time_scale": time_scale,
            "max_wait_seconds": max_wait_seconds, "assets": assets}


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _history(days: int) -> tuple[date, date]:
    """The partition range that holds the simulated history (and today, where ticks create documents)."""
    today = datetime.now(UTC).date()
    return today - timedelta(days=days + 1), today


def _measured(simulator: sim.Simulator, spec: dict, root: Path = ROOT) -> tuple[dict, sim.Spent, list[dict]]:
    since = simulator.log_position()
    result = worker(spec, root=root)
    entries, _ = simulator.request_log(since)
    return result, sim.spent(entries), entries


def _efficiency_row(kind: str, tool: str, mode: str, result: dict, spent: sim.Spent, minimum: dict) -> dict:
    return {"sync": kind, "tool": tool, "mode": mode, "ok": result["ok"], "requests": spent.total,
            "minimum": minimum["total"], "ratio": round(spent.total / minimum["total"], 3),
            "list_pages": spent.list_pages, "details": spent.details, "min_list_pages": minimum["list_pages"],
            "min_details": minimum["details"], "rate_limited": spent.rate_limited,
            "rate_limited_by": spent.rate_limited_by, "duplicate_details": spent.duplicate_details,
            "loaded_documents": result["loaded_documents"],
            "seconds": round(result["seconds"], 2), "error": "; ".join(result.get("failures") or [])
            or result.get("error")}


# ---- part 1: request efficiency ----------------------------------------------------------------------

def efficiency(settings: Settings) -> dict:
    """Initial sync, then incremental syncs after simulated activity, per tool, at Precoro's limits.

    Ours: initial backfill; tick; the change sensor and its partition runs; tick; a re-sync of the whole
    range. dlt: initial run; tick; the same pipeline again (its modifiedSince cursor). Each tool starts
    from the same freshly generated company.
    """
    scale = settings.efficiency_scale
    rows: list[dict] = []
    first, last = _history(settings.efficiency_days)
    base = _fresh(settings.workdir / "efficiency")
    simulator = sim.start(settings.efficiency_documents, settings.efficiency_days, _limits(scale), settings.seed)
    modes = {"ours": [("sensor", "change sensor + partition runs"), ("range", "re-sync of the range")],
             "dlt": [("range", "pipeline re-run (modifiedSince)")]}
    documents = 0
    try:
        for tool in settings.tools:
            simulator.reset()
            home = _fresh(base / tool)
            before = simulator.versions()
            documents = sim.count_documents(before)
            settings.log(f"[efficiency] {tool}: initial sync of {documents} documents")
            result, spent, _ = _measured(simulator, _spec(simulator, tool, "range", home, first, last, scale))
            rows.append(_efficiency_row("initial", tool, "backfill of the range" if tool == "ours"
                                        else "pipeline run (modifiedSince)", result, spent, sim.minimum_initial(sim.counts(before))))
            for action, label in modes[tool][:settings.incremental_modes]:
                if tool == "dlt":
                    # dlt has no identical-GET rule of its own: start it a minute (scaled) after its last run,
                    # as a schedule would, so that re-reading a document it just fetched is not a 429.
                    time.sleep(61.0 / scale)
                simulator.tick(settings.tick_events)
                after = simulator.versions()
                changed = sim.changed_documents(before, after)
                before = after
                settings.log(f"[efficiency] {tool}: incremental sync ({label}) after {settings.tick_events} events")
                result, spent, _ = _measured(simulator, _spec(simulator, tool, action, home, first, last, scale))
                rows.append(_efficiency_row("incremental", tool, label, result, spent,
                                            sim.minimum_incremental(changed)))
                rows[-1]["changed_documents"] = sum(len(v) for v in changed.values())
    finally:
        simulator.stop()
    return {"documents": documents, "days": settings.efficiency_days, "scale": scale,
            "tick_events": settings.tick_events, "rows": rows}


def _limits(scale: float) -> str:
    return "real" if scale == 1 else f"scaled:{scale:g}"


# ---- part 2: a backfill larger than a day's quota -------------------------------------------------------

def quota(settings: Settings) -> dict:
    """A backfill larger than a day's quota. Each tool runs as it would in production; when a run ends
    unfinished, it is started again a simulated day after its last request (what a daily schedule or a
    Dagster run retry does), until it finishes, makes no progress, or `quota_max_days` runs were made.

    Ours: one Dagster run; an asset stopped by QuotaExhausted is retried by Dagster inside the run when
    the window reopens. A later run (if one is needed) re-executes only the assets not yet materialized,
    as Dagster's re-execute-from-failure does. dlt: `pipeline.run` again, from its saved state.
    """
    scale = settings.quota_scale
    day_seconds = DAY_SECONDS / scale
    first, last = _history(settings.quota_days)
    base = _fresh(settings.workdir / "quota")
    simulator = sim.start(settings.quota_documents, settings.quota_days, _limits(scale), settings.seed)
    out: dict[str, Any] = {"scale": scale, "day_seconds": day_seconds, "tools": []}
    try:
        for tool in settings.tools:
            simulator.reset()
            truth = simulator.versions()
            minimum = sim.minimum_initial(sim.counts(truth))
            out.update(documents=sim.count_documents(truth), minimum=minimum)
            home = _fresh(base / tool)
            since = simulator.log_position()
            runs: list[dict] = []
            done: set[str] = set()
            pending: list[str] | None = None
            for number in range(1, settings.quota_max_days + 1):
                settings.log(f"[quota] {tool}: run {number}")
                position = simulator.log_position()
                result = worker(_spec(simulator, tool, "range", home, first, last, scale,
                                      max_wait_seconds=REAL_MAX_WAIT_SECONDS / scale, assets=pending))
                if tool == "ours":
                    done |= set(result["materialized"])
                    pending = sorted(set(result["all_assets"]) - done)
                entries, _ = simulator.request_log(position)
                runs.append({"run": number, "ok": result["ok"], "requests": len(entries),
                             "rate_limited": sum(e["status"] == 429 for e in entries),
                             "loaded_documents": result["loaded_documents"], "seconds": round(result["seconds"], 1),
                             "error": "; ".join(result.get("failures") or [])[:300] or result.get("error")})
                progress = result["loaded_documents"] > (runs[-2]["loaded_documents"] if len(runs) > 1 else 0)
                if result["ok"] or (len(runs) > 1 and not progress):
                    break  # finished, or a run without progress: the next ones would repeat it
                if entries:
                    time.sleep(max(0.0, entries[-1]["time"] + day_seconds + 0.5 - time.time()))
            entries, _ = simulator.request_log(since)
            total = sim.spent(entries)
            out["tools"].append({
                "tool": tool, "finished": runs[-1]["ok"], "runs": runs, "per_day": per_day(entries, day_seconds),
                "requests": total.total, "minimum": minimum["total"], "rate_limited": total.rate_limited,
                "rate_limited_by": total.rate_limited_by, "spent_twice": total.duplicate_details + total.duplicate_lists,
                "details_twice": total.duplicate_details, "list_pages_twice": total.duplicate_lists,
                "examples_twice": total.duplicate_examples, "loaded_documents": runs[-1]["loaded_documents"]})
    finally:
        simulator.stop()
    return out


def per_day(entries: list[dict], day_seconds: float) -> list[int]:
    """Requests per simulated day, counted from the first request (days without requests included)."""
    if not entries:
        return []
    start = entries[0]["time"]
    counts: list[int] = []
    for entry in entries:
        index = int((entry["time"] - start) // day_seconds)
        counts += [0] * (index + 1 - len(counts))
        counts[index] += 1
    return counts


# ---- part 3: throughput and memory, limits off ---------------------------------------------------------

def throughput(settings: Settings) -> dict:
    """Documents per second from API to queryable warehouse, and peak RSS, per size and tool.

    With `ab_commit`, our sync at that commit ("ours@<commit>": its package and bench, its own simulator) runs too,
    taking turns with the current checkout's."""
    rows: list[dict] = []
    first, last = _history(settings.throughput_days)
    base = _fresh(settings.workdir / "throughput")
    earlier = _checkout(settings.ab_commit, settings.workdir) if settings.ab_commit else None
    try:
        for size in settings.sizes:
            settings.log(f"[throughput] generating {size} documents (not timed)")
            simulators = {ROOT: sim.start(size, settings.throughput_days, "off", settings.seed)}
            try:
                if earlier is not None:
                    simulators[earlier.root] = sim.start(size, settings.throughput_days, "off", settings.seed,
                                                         root=earlier.root)
                rows += _throughput_size(settings, size, simulators, earlier, base, first, last)
            finally:
                for simulator in simulators.values():
                    simulator.stop()
    finally:
        if earlier is not None:
            earlier.remove()
    return {"days": settings.throughput_days, "repeats": settings.throughput_repeats, "rows": rows,
            **({"ab_commit": earlier.commit, "ab_label": earlier.label} if earlier is not None else {})}


def _throughput_size(settings: Settings, size: int, simulators: dict[Path, sim.Simulator], earlier: Checkout | None,
                     base: Path, first: date, last: date) -> list[dict]:
    """Every tool's runs at one size, the tools taking turns; the median run of each."""
    # The bare-HTTP floor once, at the smallest size: its cost per request does not depend on the size.
    tools = [*settings.tools, *([earlier.label] if earlier is not None else []),
             *(["http"] if settings.http_floor and size == min(settings.sizes) else [])]
    repeats = max(1, settings.throughput_repeats) if size == min(settings.sizes) else 1
    runs: dict[str, list[dict]] = {tool: [] for tool in tools}
    counts = {root: simulator.document_counts() for root, simulator in simulators.items()}
    for number in range(repeats):
        for tool in tools:
            if tool == "http" and number:
                continue  # the floor needs no median: nothing of ours or dlt's runs in it
            root = earlier.root if earlier is not None and tool == earlier.label else ROOT
            simulator = simulators[root]
            documents, minimum = sum(counts[root].values()), sim.minimum_initial(counts[root])
            settings.log(f"[throughput] {tool}: {documents} documents"
                         + (f" (run {number + 1} of {repeats})" if repeats > 1 and tool != "http" else "")
                         + f" (load average {os.getloadavg()[0]:.1f})")
            runs[tool].append(_throughput_run(simulator, tool, size, documents, minimum, base, first, last,
                                              settings, root))
    return [_median_run(runs[tool]) for tool in tools]


def _throughput_run(simulator: sim.Simulator, tool: str, size: int, documents: int, minimum: dict, base: Path,
                    first: date, last: date, settings: Settings, root: Path = ROOT) -> dict:
    """One sync of the whole history into a fresh warehouse, timed by the worker."""
    home = _fresh(base / f"{tool.replace('@', '-')}-{size}")
    kind = "ours" if tool.startswith("ours") else tool
    load = os.getloadavg()[0]
    result, spent, _ = _measured(simulator, _spec(simulator, kind, "range", home, first, last,
                                                  settings.throughput_time_scale if kind == "ours" else 1.0), root)
    shutil.rmtree(home, ignore_errors=True)
    return {"size": size, "documents": documents, "tool": tool, "ok": result["ok"],
            "seconds": round(result["seconds"], 1), "loaded_documents": result["loaded_documents"],
            "docs_per_second": round(result["loaded_documents"] / result["seconds"], 1),
            "peak_rss_mb": round(result["peak_rss_mb"]), "baseline_rss_mb": round(result["baseline_rss_mb"]),
            "requests": spent.total, "minimum": minimum["total"],
            "spent_twice": spent.duplicate_details + spent.duplicate_lists,
            "examples_twice": spent.duplicate_examples,
            "ratio": round(spent.total / minimum["total"], 4), "rate_limited": spent.rate_limited,
            "simulator_startup_seconds": round(simulator.startup_seconds, 1), "load_average": round(load, 1),
            "error": "; ".join(result.get("failures") or []) or result.get("error")}


@dataclass
class Checkout:
    """A git worktree of an earlier commit, for an A/B comparison: removed when the part is done."""

    commit: str
    root: Path

    @property
    def label(self) -> str:
        return f"ours@{self.commit[:7]}"

    def remove(self) -> None:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(self.root)],
                       capture_output=True, check=False)


def _checkout(commit: str, workdir: Path) -> Checkout:
    """A `git worktree` of `commit` (anything git names: a hash, a tag, HEAD~3) beside the scratch files."""
    found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"],
                           capture_output=True, text=True, check=False)
    if found.returncode:
        raise SystemExit(f"--ab {commit}: git knows no such commit in {ROOT}; give a hash, tag or branch of this "
                         "repository (git log --oneline lists them)")
    full = found.stdout.strip()
    root = workdir / f"ab-{full[:7]}"
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], capture_output=True, check=False)
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(root), full], capture_output=True,
                   text=True, check=True)
    return Checkout(full, root)


def _median_run(runs: list[dict]) -> dict:
    """The run of median duration (a failed run counts as the slowest), with every run's seconds, and the highest
    peak RSS of them all (memory is a ceiling, not a typical value)."""
    ordered = sorted(runs, key=lambda r: (not r["ok"], r["seconds"]))
    return {**ordered[(len(ordered) - 1) // 2], "runs_seconds": [r["seconds"] for r in runs],
            "runs_load": [r.get("load_average") for r in runs],
            "all_ok": all(r["ok"] for r in runs), "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}


# ---- part 4: time to data ------------------------------------------------------------------------------

REAL_SPACING_SECONDS = 1.25  # our client's spacing at Precoro's 1 request/s (a quarter of margin)
TICK_REQUESTS = 7  # a change sensor tick: one list walk per document type, and the credit notes apart
WEBHOOK_SENSOR_SECONDS = 15


def time_to_data(settings: Settings) -> dict:
    """How soon a first backfill's whole history is queryable (headers first), how long its lines take, and what
    keeping it current costs by polling and with webhooks.

    Ours backfills the whole range at Precoro's limits sped up F times until the day's quota stops it; a thread
    of the worker notes when every document was first queryable. A simulated day later, one change sensor cycle
    after a tick of the company is timed: a change reaches the warehouse that long after the sensor sees it."""
    scale = settings.quota_scale
    first, last = _history(settings.time_to_data_days)
    base = _fresh(settings.workdir / "time_to_data")
    settings.log(f"[time_to_data] generating {settings.time_to_data_documents} documents (not timed)")
    simulator = sim.start(settings.time_to_data_documents, settings.time_to_data_days, _limits(scale), settings.seed)
    try:
        truth = simulator.versions()
        documents = sim.count_documents(truth)
        details_needed = documents - len(truth["payments"])  # payments need no detail
        home = _fresh(base / "ours")
        position = simulator.log_position()
        settings.log(f"[time_to_data] ours: backfill of {documents} documents until the quota stops it")
        backfill = worker({**_spec(simulator, "ours", "range", home, first, last, scale,
                                   max_wait_seconds=REAL_MAX_WAIT_SECONDS / scale), "expect_documents": documents})
        entries, _ = simulator.request_log(position)
        spent = sim.spent(entries)
        time.sleep(DAY_SECONDS / scale + 1)  # a quota day later
        simulator.control("POST", "tick", json={"events": settings.tick_events})
        settings.log("[time_to_data] ours: one change sensor cycle")
        change = worker(_spec(simulator, "ours", "sensor", home, first, last, scale,
                              max_wait_seconds=REAL_MAX_WAIT_SECONDS / scale))
    finally:
        simulator.stop()
    polling = {f"every {interval // 60} min": TICK_REQUESTS * 86400 // interval for interval in (1800, 21600)}
    run_seconds = round(change["seconds"], 1)
    return {
        "documents": documents, "scale": scale, "headers_seconds": backfill.get("headers_seconds"),
        "stored_documents": backfill.get("stored_documents"), "with_lines": backfill["loaded_documents"],
        "stopped_after_seconds": round(backfill["seconds"], 1), "stopped_by_quota": not backfill["ok"],
        "list_pages": spent.list_pages, "details_before_stop": spent.details, "rate_limited": spent.rate_limited,
        # at Precoro's real pace the list pages alone take this long; every detail waits for the quota
        "headers_real_pace_minutes": round(spent.list_pages * REAL_SPACING_SECONDS / 60, 1),
        "lines_quota_days": round(details_needed / 3000, 1),
        "lines_only_quota_days": round((details_needed + spent.list_pages) / 3000, 1),
        "change_run_seconds": run_seconds, "change_run_ok": change["ok"],
        "latency_seconds": {"polling every 30 min": 900 + run_seconds,
                            f"webhooks (sensor every {WEBHOOK_SENSOR_SECONDS} s)": WEBHOOK_SENSOR_SECONDS / 2 + run_seconds},
        "polling_requests_per_day": polling,
    }


# ---- part 5: several hosts ------------------------------------------------------------------------------

HOSTS = 2
RUNS = 4


def hosts(settings: Settings) -> dict:
    """Runs on several hosts share one budget: 4 syncs at once, 2 on each of 2 "hosts" (a PRECORO_HOME each, no
    disk in common), at Precoro's limits sped up F times; shared state and warehouse catalog in one PostgreSQL
    database (pgserver), files in one bucket (moto's S3 server). Each run syncs a quarter of the history. Counted:
    requests against the minimum, and 429s (the limits hold across hosts only if the shared ledger works)."""
    import boto3
    import pgserver
    from moto.server import ThreadedMotoServer

    scale = settings.hosts_scale
    first, last = _history(settings.hosts_days)
    base = _fresh(settings.workdir / "hosts")
    postgres = pgserver.get_server(str(_fresh(Path(f"/tmp/bench-pg-{os.getpid()}"))), cleanup_mode="stop")
    storage = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    storage.start()
    simulator = sim.start(settings.hosts_documents, settings.hosts_days, _limits(scale), settings.seed)
    try:
        host, port = storage.get_host_and_port()
        boto3.client("s3", endpoint_url=f"http://{host}:{port}", aws_access_key_id="bench", aws_secret_access_key="bench",
                     region_name="us-east-1").create_bucket(Bucket="precoro")
        postgres.psql("CREATE DATABASE precoro;")
        shared = {"PRECORO_DATABASE_URL": postgres.get_uri("precoro"),
                  "PRECORO_WAREHOUSE_DATA_PATH": "s3://precoro/warehouse/", "PRECORO_S3_ENDPOINT": f"{host}:{port}",
                  "PRECORO_S3_ACCESS_KEY_ID": "bench", "PRECORO_S3_SECRET_ACCESS_KEY": "bench",
                  "PRECORO_S3_REGION": "us-east-1", "PRECORO_S3_URL_STYLE": "path", "PRECORO_S3_USE_SSL": "0"}
        truth = simulator.versions()
        minimum, documents = sim.minimum_initial(sim.counts(truth)), sim.count_documents(truth)
        days = (last - first).days + 1
        spans = [(first + timedelta(days=days * n // RUNS), first + timedelta(days=days * (n + 1) // RUNS - 1))
                 for n in range(RUNS)]
        keep = {k: v for k, v in os.environ.items() if not k.startswith("PRECORO_") and k != "DAGSTER_HOME"}
        position = simulator.log_position()
        settings.log(f"[hosts] {RUNS} syncs at once on {HOSTS} hosts, one database and one bucket")
        started = time.monotonic()
        runs = []
        for number, (start, end) in enumerate(spans):
            home = base / f"host-{number % HOSTS}"
            env = {**keep, **shared, "PRECORO_API_TOKEN": simulator.token, "PRECORO_EMAIL": simulator.email,
                   "PRECORO_BASE_URL": simulator.url, "PRECORO_START_DATE": first.isoformat(),
                   "PRECORO_HOME": str(home), "DAGSTER_HOME": str(home / f"dagster-{number}"),
                   "PRECORO_TIME_SCALE": f"{scale:g}", "PYTHONWARNINGS": "ignore"}
            (home / f"dagster-{number}").mkdir(parents=True, exist_ok=True)
            runs.append(subprocess.Popen([sys.executable, "-m", "precoro_sim.cli", "sync", "--start",
                                          start.isoformat(), "--end", end.isoformat()], cwd=ROOT, env=env,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outcomes = [(run.wait(timeout=3600), run.stderr.read() if run.stderr else "") for run in runs]
        seconds = time.monotonic() - started
        entries, _ = simulator.request_log(position)
        spent = sim.spent(entries)
    finally:
        simulator.stop()
        storage.stop()
        postgres.cleanup()
    return {"hosts": HOSTS, "runs": RUNS, "scale": scale, "documents": documents, "seconds": round(seconds, 1), "ok": all(code == 0 for code, _ in outcomes),
            "errors": [err[-500:] for code, err in outcomes if code != 0],
            "requests": spent.total, "minimum": minimum["total"], "ratio": round(spent.total / minimum["total"], 3),
            "rate_limited": spent.rate_limited, "rate_limited_by": spent.rate_limited_by,
            "spent_twice": spent.duplicate_details + spent.duplicate_lists}


CATALOGUE_LOOKUP_BATCH = 200  # `external_id[]` values Precoro accepts per request


def _write_vendors(path: Path, vendors: list[tuple[str, str, str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["vendor_id", "name", "currency", "currencies"])
        writer.writerows(vendors)


def catalogue(settings: Settings) -> dict:
    """The catalogue sync's requests against the minimum: the company's suppliers (linked, or matched by name)
    and N vendors new to Precoro (an initial sync), then 20 changes (renamed, a currency added, new ones), then
    none; each through `precoro-assets catalogue-sync` and
    `writeback --send` at Precoro's limits sped up F times. The minimum: one `external_id[]` lookup per 200
    vendors, and one write per record that needs one."""
    scale, count, changes = settings.catalogue_scale, settings.catalogue_vendors, settings.catalogue_changes
    home = _fresh(settings.workdir / "catalogue")
    simulator = sim.start(20, 2, _limits(scale), settings.seed)
    try:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("PRECORO_") and k != "DAGSTER_HOME"},
               "PRECORO_API_TOKEN": simulator.token, "PRECORO_EMAIL": simulator.email,
               "PRECORO_BASE_URL": simulator.url, "PRECORO_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
               "PRECORO_TIME_SCALE": f"{scale:g}", "PYTHONWARNINGS": "ignore"}
        (home / "dagster").mkdir(parents=True, exist_ok=True)
        (home / "ledger").mkdir(parents=True, exist_ok=True)

        def cli(*args: str) -> None:
            done = subprocess.run([sys.executable, "-m", "precoro_sim.cli", *args], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=3600)
            if done.returncode:
                raise RuntimeError(f"precoro-assets {' '.join(args)} failed: {done.stderr[-800:]}")

        today = datetime.now(UTC).date().isoformat()
        cli("sync", "--start", today)  # reference data first: the plan matches unlinked suppliers in it
        # the accounting side knows the company's suppliers too (by their externalId, or by name: then linked)
        known = [(s.get("externalId") or f"BV-OLD-{s['id']}", str(s["name"]), "", "")
                 for s in simulator.export("suppliers")]
        unlinked = sum(1 for vendor in known if vendor[0].startswith("BV-OLD-"))
        vendors = known + [(f"BV-{n:05d}", f"Bench Vendor {n}", "USD", "") for n in range(count)]
        rounds = []
        for label, writes in (("initial", count + unlinked), ("incremental", changes), ("unchanged", 0)):
            if label == "incremental":
                step = max(changes // 4, 1)
                first = len(known)
                for n in range(first, first + step):  # renamed
                    vendors[n] = (vendors[n][0], vendors[n][1] + " Ltd", "USD", "")
                for n in range(first + step, first + 2 * step):  # a currency added
                    vendors[n] = (vendors[n][0], vendors[n][1], "USD", "EUR")
                vendors += [(f"BV-NEW-{n}", f"Bench Newcomer {n}", "EUR", "") for n in range(changes - 2 * step)]
            _write_vendors(home / "ledger" / "vendors.csv", vendors)
            position = simulator.log_position()
            started = time.monotonic()
            cli("catalogue-sync")
            cli("writeback", "--send")
            seconds = time.monotonic() - started
            entries, _ = simulator.request_log(position)
            spent = sim.spent(entries)
            lookups = sum(1 for e in entries if e["method"] == "GET")
            minimum = -(-len(vendors) // CATALOGUE_LOOKUP_BATCH) + writes
            rounds.append({"round": label, "vendors": len(vendors), "seconds": round(seconds, 1),
                           "requests": spent.total, "lookups": lookups, "writes": spent.total - lookups,
                           "minimum": minimum, "ratio": round(spent.total / minimum, 3),
                           "rate_limited": spent.rate_limited})
            settings.log(f"[catalogue] {label}: {spent.total} requests (minimum {minimum}) in {seconds:.0f} s")
    finally:
        simulator.stop()
    return {"scale": scale, "rounds": rounds}


# ---- part 7: several companies -------------------------------------------------------------------

def companies(settings: Settings) -> dict:
    """Companies each with its own token sync at once as fast as one alone: each has its own request budget (its
    home's), so neither waits for the other. Three rounds of our document sync at Precoro's limits sped up F times,
    each a first sync of every company in it (a fresh home each, its own worker process): company 1 alone; two
    companies at once; the two at once with one PRECORO_SHARED_BUDGET (companies of one Precoro user who shares its
    limits), which paces them as one. Counted per company from its own request log: requests against its minimum,
    and 429s."""
    from concurrent.futures import ThreadPoolExecutor

    scale = settings.companies_scale
    first, last = _history(settings.companies_days)
    base = _fresh(settings.workdir / "companies")
    simulator = sim.start(settings.companies_documents, settings.companies_days, _limits(scale), settings.seed,
                          companies=2)
    try:
        views = [simulator.of_company(c["number"], c["token"]) for c in simulator.control("GET", "info")["companies"]]
        minimum = {view.company: sim.minimum_initial(sim.counts(view.versions()))["total"] for view in views}
        rounds: list[dict] = []
        for label, together, shared in (("one company alone", views[:1], False),
                                        ("two companies at once, a budget each", views, False),
                                        ("two companies at once, one shared budget", views, True)):
            where = base / f"round-{len(rounds)}"
            positions = {view.company: view.log_position() for view in together}
            specs = [{**_spec(view, "ours", "range", where / f"company-{view.company}", first, last, scale),
                      "shared_budget": str(where / "shared-budget") if shared else None} for view in together]
            settings.log(f"[companies] {label}")
            with ThreadPoolExecutor(len(specs)) as pool:
                results = list(pool.map(worker, specs))
            seconds = max(result["seconds"] for result in results)  # the syncs', their processes' start apart
            spent = {view.company: sim.spent(view.request_log(positions[view.company])[0]) for view in together}
            rounds.append({
                "round": label, "companies": len(together), "shared_budget": shared, "seconds": round(seconds, 1),
                "ok": all(result["ok"] for result in results),
                "errors": ["; ".join(r.get("failures") or []) or str(r.get("error")) for r in results if not r["ok"]],
                "requests": {str(c): s.total for c, s in spent.items()},
                "minimum": {str(c): minimum[c] for c in spent},
                "rate_limited": sum(s.rate_limited for s in spent.values()),
                "rate_limited_by": {f"{c}: {kind}": n for c, s in spent.items() for kind, n in s.rate_limited_by.items()},
                "spent_twice": sum(s.duplicate_details + s.duplicate_lists for s in spent.values())})
            settings.log(f"[companies] {label}: {seconds:.0f} s, requests {rounds[-1]['requests']} (minimum "
                         f"{rounds[-1]['minimum']}), {rounds[-1]['rate_limited']} x 429")
    finally:
        simulator.stop()
    return {"scale": scale, "documents": settings.companies_documents, "days": settings.companies_days,
            "rounds": rounds}
