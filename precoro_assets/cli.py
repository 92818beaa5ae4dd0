"""The `precoro-assets` command: simulator, demo, headless sync, SQL on the warehouse."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import click

PACKAGE_ROOT = Path(__file__).resolve().parent
DAGSTER_YAML = PACKAGE_ROOT / "dagster.yaml"


@click.group()
def main() -> None:
    """Precoro procurement data in a DuckDB warehouse, driven by Dagster."""


# ---- simulator -----------------------------------------------------------------------------

@main.command()
@click.option("--port", default=8787, show_default=True, help="Port on 127.0.0.1 (0 = any free port).")
@click.option("--seed", default=7, show_default=True, help="Same seed, same company.")
@click.option("--days", default=90, show_default=True, help="Days of document history before today.")
@click.option("--documents", default=600, show_default=True, help="About how many documents to generate.")
@click.option("--limits", default="real", show_default=True, help="real | off | scaled:F (windows divided by F).")
@click.option("--tick-every", type=float, default=None, help="Let the company live: a tick every N seconds.")
def simulator(port: int, seed: int, days: int, documents: int, limits: str, tick_every: float | None) -> None:
    """Serve a simulated Precoro company on http://127.0.0.1:PORT."""
    from .simulator.limits import Limits
    from .simulator.server import serve_forever

    try:
        Limits.parse(limits)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--limits") from None
    serve_forever(seed, days, documents, limits, port, tick_every)


# ---- shared helpers ---------------------------------------------------------------------------

def _dagster_home(home: Path) -> Path:
    """DAGSTER_HOME under the project's var/ (with our dagster.yaml), unless the user set one."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        shutil.copy(DAGSTER_YAML, dagster_home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dagster_home


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.3)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def _simulator_if_needed(config):
    """With the embedded default and no simulator listening, run one in this process meanwhile."""
    from . import settings

    if not config.using_simulator or _port_open(settings.simulator_port()):
        yield None
        return
    from .simulator import start_simulator

    click.echo(f"No Precoro account configured and no simulator on port {settings.simulator_port()}: "
               f"starting the bundled simulator (seed {settings.SIMULATOR_SEED}).", err=True)
    simulator = start_simulator(seed=settings.SIMULATOR_SEED, days=settings.SIMULATOR_DAYS,
                                limits=settings.simulator_limits(), port=settings.simulator_port())
    try:
        yield simulator
    finally:
        simulator.stop()


# ---- sync ------------------------------------------------------------------------------------

@main.command()
@click.option("--start", "start", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First day (createDate).")
@click.option("--end", "end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last day (default: today).")
@click.option("--full-refresh", is_flag=True, help="Read all reference data instead of the changes.")
def sync(start: datetime, end: datetime | None, full_refresh: bool) -> None:
    """Materialize reference data and every document day from START to END through Dagster."""
    from . import settings

    config = settings.load()
    first, last = start.date(), (end.date() if end else datetime.now(UTC).date())
    if first < config.start_date:
        raise click.BadParameter(f"{first} is before PRECORO_START_DATE ({config.start_date}).", param_hint="--start")
    if last < first:
        raise click.BadParameter("--end is before --start", param_hint="--end")
    _dagster_home(config.home)
    with _simulator_if_needed(config):
        results = run_sync(first, last, full_refresh)
    _print_summary(results)
    if not all(ok for _, _, ok, _ in results):
        sys.exit(1)


def run_sync(first: date, last: date, full_refresh: bool = False) -> list[tuple[str, str, bool, dict]]:
    """Materialize reference data, documents for first..last, then the views.

    Returns (run, asset, succeeded, metadata) per asset, in order.
    """
    import dagster as dg

    from .definitions import defs
    from .defs.ingest import DOCUMENTS_GROUP, REFERENCE_GROUP

    instance = dg.DagsterInstance.get()
    graph = defs.resolve_asset_graph()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    runs = [
        ("reference", dg.AssetSelection.groups(REFERENCE_GROUP), {},
         _full_refresh_config() if full_refresh else {}),
        ("documents", dg.AssetSelection.groups(DOCUMENTS_GROUP),
         {"dagster/asset_partition_range_start": first.isoformat(),
          "dagster/asset_partition_range_end": last.isoformat()}, {}),
        ("views", dg.AssetSelection.keys(dg.AssetKey(["precoro", "analyst_views"])), {}, {}),
    ]
    results = []
    for name, selection, tags, run_config in runs:
        keys = selection.resolve(graph)
        assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and set(a.keys) & keys]
        result = dg.materialize(assets, instance=instance, resources=defs.resources, selection=selection,
                                tags={**tags, "precoro/cli": f"sync {name}"}, run_config={**quiet, **run_config},
                                raise_on_error=False)
        events = {e.asset_key.to_user_string(): e.materialization.metadata
                  for e in result.get_asset_materialization_events()}
        for key in sorted(k.to_user_string() for k in keys):
            metadata = {k: v.value for k, v in events.get(key, {}).items()}
            results.append((name, key, key in events, metadata))
        if not result.success:
            failures = [e.step_failure_data.error for e in result.all_events if e.is_step_failure]
            for error in failures:
                click.echo(f"failed: {error.message.strip().splitlines()[0]}", err=True)
            if any(error.cls_name == "PrecoroAuthError" for error in failures):
                click.echo("Stopping: Precoro rejected the credentials (nothing more was sent).", err=True)
                break
    return results


def _full_refresh_config() -> dict:
    from .api.catalogue import REFERENCE

    return {"ops": {f"precoro__{e.name}": {"config": {"full_refresh": True}} for e in REFERENCE}}


def _print_summary(results: list[tuple[str, str, bool, dict]]) -> None:
    columns = ("listed by Precoro", "new", "changed", "removed", "detail requests", "dagster/row_count")
    click.echo(f"{'asset':34} {'ok':3} {'listed':>7} {'new':>6} {'changed':>7} {'removed':>7} {'details':>7} {'rows':>7}")
    spent: dict[str, int] = {}
    left = {}
    for run, key, ok, meta in results:
        values = " ".join(f"{meta.get(c, ''):>{w}}" for c, w in zip(columns, (7, 6, 7, 7, 7, 7), strict=True))
        click.echo(f"{key:34} {'yes' if ok else 'NO':3} {values}")
        if "requests spent" in meta:  # cumulative within a run: the run's last value is its total
            spent[run] = max(spent.get(run, 0), int(meta["requests spent"]))
            left = {k[len("requests left "):]: v for k, v in meta.items() if k.startswith("requests left ")}
    click.echo(f"requests spent: {sum(spent.values())}" + (
        "; left now: " + ", ".join(f"{v} this {k}" for k, v in left.items()) if left else ""))


# ---- sql -------------------------------------------------------------------------------------

@main.command()
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def sql(query: str, fmt: str) -> None:
    """Run a read-only SQL query on the warehouse (does not block running materializations)."""
    from . import settings
    from .warehouse.store import Warehouse

    config = settings.load()
    try:
        frame = Warehouse(config.warehouse).query(query)
    except Exception as error:  # noqa: BLE001 - show DuckDB's message, not a traceback
        raise click.ClickException(str(error).splitlines()[0]) from None
    if fmt == "csv":
        click.echo(frame.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(json.dumps(json.loads(frame.to_json(orient="records", date_format="iso")), indent=2,
                              ensure_ascii=False))
    else:
        import pandas as pd

        with pd.option_context("display.max_rows", 200, "display.max_columns", 50, "display.width", 200):
            click.echo(frame.to_string(index=False) if len(frame) else "(no rows)")


# ---- demo ------------------------------------------------------------------------------------

@main.command()
@click.option("--port", default=3000, show_default=True, help="Port of the Dagster UI on 127.0.0.1.")
def demo(port: int) -> None:
    """Start the simulator and the Dagster UI, ready to launch a backfill."""
    from . import settings

    config = settings.load()
    dagster_home = _dagster_home(config.home)
    # Ctrl-C (even when started in the background) and `kill` both stop the UI and the simulator.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    processes = []
    try:
        if config.using_simulator and not _port_open(settings.simulator_port()):
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "precoro_assets.cli", "simulator", "--port", str(settings.simulator_port()),
                 "--seed", str(settings.SIMULATOR_SEED), "--limits", settings.simulator_limits(),
                 "--tick-every", "60"]))
            for _ in range(300):
                if _port_open(settings.simulator_port()):
                    break
                time.sleep(0.1)
        workspace = PACKAGE_ROOT / "workspace.yaml"
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
            env={**os.environ, "DAGSTER_HOME": str(dagster_home)}))
        click.echo(DEMO_GUIDE.format(port=port, start=config.start_date, home=config.home))
        processes[-1].wait()
    except KeyboardInterrupt:
        pass
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


DEMO_GUIDE = """
Dagster UI: http://127.0.0.1:{port}   (Ctrl-C stops the UI and the simulator)

What to click:
  1. Assets -> select group "precoro_reference" -> Materialize all       (suppliers, items, custom fields, ...)
  2. Assets -> select group "precoro_documents" -> Materialize -> pick a date range
     (e.g. the last 7 days; partitions start {start}) -> Launch backfill
  3. Overview -> Backfills: watch it; each asset page shows rows, new/changed counts and requests spent
  4. Automation -> turn on "precoro_changes": changes the simulated company makes every minute are synced
  5. Query the warehouse:  .venv/bin/precoro-assets sql "SELECT * FROM precoro.invoices_overview LIMIT 10"
Warehouse and state live in {home}
"""


if __name__ == "__main__":
    main()
