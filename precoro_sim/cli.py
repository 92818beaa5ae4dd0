"""The `precoro-assets` command: the product's commands (precoro_assets/cli.py: sync, reconcile, catalogue-sync,
writeback, webhooks, sql) and the harness's: the bundled simulator, the demo, the demo ledger and the soak.

With no Precoro account configured (no PRECORO_API_TOKEN), the commands that need Precoro run on the embedded
default (embedded.py): the bundled simulator on 127.0.0.1, started in this process when none is listening.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from precoro_assets import cli as product

from . import embedded

if TYPE_CHECKING:
    from .soak.inprocess import SoakReport

# The commands that read the settings (and so need an account, or the embedded default); `sql` reads only the
# warehouse, `simulator` and `reliability` set up their own.
NEEDS_PRECORO = {"sync", "reconcile", "catalogue-sync", "writeback", "webhooks", "demo", "ledger-demo"}
EMBEDDED = "precoro_sim.embedded"  # in the click context's meta: the embedded default is in use


@click.group(commands=dict(product.main.commands))
@click.pass_context
def main(ctx: click.Context) -> None:
    """Precoro procurement data in a DuckDB warehouse, driven by Dagster."""
    if ctx.invoked_subcommand in NEEDS_PRECORO and embedded.apply():
        ctx.meta[EMBEDDED] = True
        ctx.meta[product.PRECORO_SERVICE] = lambda: embedded.simulator_if_needed(echo=product._say)


def _embedded_in_use() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(EMBEDDED))


# ---- simulator -----------------------------------------------------------------------------

@main.command()
@click.option("--port", default=8787, show_default=True, help="Port on 127.0.0.1 (0 = any free port).")
@click.option("--seed", default=7, show_default=True, help="Same seed, same company.")
@click.option("--days", default=90, show_default=True, help="Days of document history before today.")
@click.option("--documents", default=600, show_default=True, help="About how many documents to generate.")
@click.option("--limits", default="real", show_default=True, help="real | off | scaled:F (windows divided by F).")
@click.option("--tick-every", type=float, default=None, help="Let the company live: a tick every N seconds.")
@click.option("--companies", type=click.IntRange(min=1), default=1, show_default=True,
              help="How many companies to serve, each with its own token and data (company N from seed + N - 1; "
              "the control API's ?company=N addresses one).")
def simulator(port: int, seed: int, days: int, documents: int, limits: str, tick_every: float | None,
              companies: int) -> None:
    """Serve a simulated Precoro company (or several, one token each) on http://127.0.0.1:PORT."""
    from .simulator.limits import Limits
    from .simulator.server import serve_forever

    try:
        Limits.parse(limits)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--limits") from None
    serve_forever(seed, days, documents, limits, port, tick_every, companies)



# ---- the demo ledger ---------------------------------------------------------------------------

def demo_ledger_files(directory: Path, from_url: str | None = None) -> tuple[list[Path], str]:
    """Write the demo ledger for the simulator's company; returns the files and where the company came from."""
    from .demo_ledger import company_from_simulator, company_in_process, demo_ledger_for, write_demo_ledger

    config = product._settings()
    if from_url is None and _embedded_in_use() and embedded.port_open(embedded.simulator_port()):
        from_url = config.base_url
    if from_url:
        records, origin = company_from_simulator(from_url), f"the simulator at {from_url}"
    else:
        records = company_in_process(embedded.SIMULATOR_SEED, embedded.SIMULATOR_DAYS, embedded.SIMULATOR_DOCUMENTS)
        origin = f"the simulator's company (seed {embedded.SIMULATOR_SEED}), built in-process"
    return write_demo_ledger(demo_ledger_for(records, seed=embedded.SIMULATOR_SEED), directory), origin


def _demo_ledger_if_empty() -> None:
    """The demo needs an accounting side: write the demo ledger unless the ledger folder already has files."""
    from precoro_assets.settings import ledger_dir

    directory = ledger_dir()
    if directory.exists() and any(directory.iterdir()):
        return
    try:
        files, origin = demo_ledger_files(directory)
    except Exception as error:  # noqa: BLE001 - the demo still runs without a ledger
        click.echo(f"Could not write the demo ledger to {directory}: {error}", err=True)
        return
    click.echo(f"Demo ledger for {origin} written to {directory} ({len(files)} files).", err=True)


@main.command("ledger-demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write (default: PRECORO_LEDGER_DIR, else <PRECORO_HOME>/ledger).")
@click.option("--from-url", default=None,
              help="Read the company from this simulator's /_sim/export (default: the embedded simulator if it is "
                   "running, else the same company built in-process from seed 7).")
def ledger_demo(out: Path | None, from_url: str | None) -> None:
    """Write a demo accounting ledger (CSV) that fits the simulator's company, disagreements included."""
    from precoro_assets.settings import ledger_dir

    directory = out or ledger_dir()
    files, origin = demo_ledger_files(directory, from_url)
    click.echo(f"Demo ledger for {origin} written to {directory}: {', '.join(f.name for f in files)}")


# ---- reliability -----------------------------------------------------------------------------

@main.command("reliability")
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

    from precoro_assets.settings import ENV_DATABASE_URL

    from .soak.daemon import run_daemon_soak
    from .soak.inprocess import run_soak

    def echo(line: str) -> None:
        click.echo(line, err=True)

    if database_url:
        os.environ[ENV_DATABASE_URL] = database_url
    else:
        os.environ.pop(ENV_DATABASE_URL, None)
    with tempfile.TemporaryDirectory(prefix="precoro-soak-") as scratch:
        if daemon:
            report: SoakReport = run_daemon_soak(home or Path(scratch), minutes * 60, tick_every, seed, echo=echo,
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



# ---- demo ------------------------------------------------------------------------------------

# the names of `demo --companies N`'s companies, in the simulator's order
DEMO_COMPANY_NAMES = ("acme", "globex", "initech", "umbrella", "hooli", "soylent", "tyrell", "wonka", "stark")

def _limit_api_pool() -> None:
    """The demo's instance runs one Precoro-bound step at a time (see precoro_assets.defs.ingest.API_POOL_LIMIT)."""
    import dagster as dg

    from precoro_assets.defs.ingest import limit_api_pool

    with dg.DagsterInstance.get() as instance:
        limit_api_pool(instance)


@main.command()
@click.option("--port", default=3000, show_default=True, help="Port of the Dagster UI on 127.0.0.1.")
@click.option("--companies", type=click.IntRange(1, len(DEMO_COMPANY_NAMES)), default=1, show_default=True,
              help="Simulated companies, each declared as a project declares it (PrecoroComponent): assets under "
                   "<company>/precoro/..., state under PRECORO_HOME/companies/<company>.")
def demo(port: int, companies: int) -> None:
    """Start the simulator and the Dagster UI, ready to launch a backfill."""
    config = product._settings()
    dagster_home = product._dagster_home(config)
    using_simulator = _embedded_in_use()
    if companies > 1:
        if not using_simulator:
            raise click.UsageError("--companies shows the bundled simulator's companies: unset PRECORO_API_TOKEN "
                                   "(a project of your own companies declares them in YAML: docs/embedding.md)")
        _demo_companies(port, companies, config, dagster_home)
        return
    _limit_api_pool()
    # Ctrl-C (even when started in the background) and `kill` both stop the UI and the simulator.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    processes: list[subprocess.Popen] = []
    try:
        if using_simulator:
            _start_demo_simulator(processes)
            _demo_ledger_if_empty()
        workspace = product.PACKAGE_ROOT / "workspace.yaml"
        environment = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
        if using_simulator and _demo_webhooks(processes):
            environment["PRECORO_WEBHOOKS"] = "1"
        if using_simulator:  # the simulated company changes every minute: the sensor looks as often
            environment.setdefault("PRECORO_SENSOR_INTERVAL_SECONDS", str(DEMO_SENSOR_INTERVAL_SECONDS))
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
            env=environment))
        click.echo(DEMO_GUIDE.format(port=port, start=config.start_date, home=config.home,
                                     interval=environment.get("PRECORO_SENSOR_INTERVAL_SECONDS", "1800")))
        processes[-1].wait()
    except KeyboardInterrupt:
        pass
    finally:
        _stop(processes)


def _demo_companies(port: int, count: int, config, dagster_home: Path) -> None:
    """`demo --companies N`: the simulator serves N companies (one token each); the code location
    (precoro_sim/demo_companies.py) declares each with a PrecoroComponent, its state under its own home, and one
    webhook receiver serves them all."""
    import json

    import dagster as dg
    import httpx

    from precoro_assets.defs.ingest import API_POOL_LIMIT
    from precoro_assets.runtime.run_launcher import limit_pool

    from .demo_companies import DEMO_COMPANIES, company_yaml
    from .demo_ledger import company_from_simulator, demo_ledger_for, write_demo_ledger

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    simulator_url = f"http://127.0.0.1:{embedded.simulator_port()}"
    processes: list[subprocess.Popen] = []
    try:
        _start_demo_simulator(processes, count)
        served = httpx.get(f"{simulator_url}/_sim/info", timeout=10).json()["companies"]
        if len(served) < count:
            raise click.ClickException(f"the simulator on port {embedded.simulator_port()} serves {len(served)} "
                                       f"companies, not {count}: stop it, or set PRECORO_SIMULATOR_PORT to a free port")
        environment = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
        environment.setdefault("PRECORO_SENSOR_INTERVAL_SECONDS", str(DEMO_SENSOR_INTERVAL_SECONDS))
        companies = []
        for name, identity in zip(DEMO_COMPANY_NAMES, served[:count], strict=False):
            home = config.home / "companies" / name
            ledger = home / "ledger"
            if not (ledger.exists() and any(ledger.iterdir())):
                records = company_from_simulator(simulator_url, company=identity["number"])
                write_demo_ledger(demo_ledger_for(records, seed=identity["seed"]), ledger)
            environment[f"{name.upper()}_PRECORO_TOKEN"] = identity["token"]
            environment[f"{name.upper()}_PRECORO_EMAIL"] = identity["email"]
            companies.append({"company": name, "home": str(home), "number": identity["number"], "webhooks": False})
        receiver = _demo_webhooks(processes, companies)
        for company in companies:
            company["webhooks"] = receiver
        environment[DEMO_COMPANIES] = json.dumps(companies)
        with dg.DagsterInstance.get() as instance:
            for company in companies:
                limit_pool(instance, f"{company['company']}_api", API_POOL_LIMIT)
        workspace = dagster_home / "companies_workspace.yaml"
        workspace.write_text("load_from:\n  - python_module: precoro_sim.demo_companies\n")
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
            env=environment))
        first = companies[0]
        click.echo(DEMO_COMPANIES_GUIDE.format(
            port=port, count=count, names=", ".join(c["company"] for c in companies), first=first["company"],
            yaml=company_yaml(first["company"], first["home"], receiver).rstrip().replace("\n", "\n    "),
            query_companies=" ".join(f"--company {c['company']}={c['home']}" for c in companies),
            home=config.home, webhooks="on" if receiver else "off (the port was taken)"))
        processes[-1].wait()
    except KeyboardInterrupt:
        pass
    finally:
        _stop(processes)


def _start_demo_simulator(processes: list, companies: int = 1) -> None:
    """The simulator of the demo (its `companies`), unless one already listens on its port."""
    if embedded.port_open(embedded.simulator_port()):
        return
    processes.append(subprocess.Popen(
        [sys.executable, "-m", "precoro_sim.cli", "simulator", "--port", str(embedded.simulator_port()),
         "--seed", str(embedded.SIMULATOR_SEED), "--limits", embedded.simulator_limits(), "--tick-every", "60",
         *(["--companies", str(companies)] if companies > 1 else [])]))
    _wait_for_port(embedded.simulator_port())


def _demo_webhooks(processes: list, companies: list[dict] | None = None) -> bool:
    """Start `precoro-assets webhooks` with fresh secrets (the receiver's alone: Dagster's processes never see them),
    for the bundled location's company or for each of `companies` (`--company`), and have each simulated company
    send its webhooks to its own URL; returns whether it could (the port may be taken: the demo then polls only)."""
    import secrets

    import httpx

    from precoro_assets.settings import ENV_WEBHOOK_SECRET, webhook_secret_variable

    port = embedded.webhook_port()
    if embedded.port_open(port):
        click.echo(f"port {port} is taken: the demo runs without webhooks (set PRECORO_WEBHOOK_PORT to another)")
        return False
    # (simulator company number or None for the only one, secret variable, secret, --company option)
    receivers = [(c["number"], webhook_secret_variable(c["company"]), secrets.token_urlsafe(24),
                  ["--company", f"{c['company']}={c['home']}"]) for c in companies or []]
    receivers = receivers or [(None, ENV_WEBHOOK_SECRET, secrets.token_urlsafe(24), [])]
    processes.append(subprocess.Popen(
        [sys.executable, "-m", "precoro_sim.cli", "webhooks", "--port", str(port),
         *(option for *_, options in receivers for option in options)],
        env={**os.environ, **{variable: secret for _, variable, secret, _ in receivers}}))
    _wait_for_port(port)
    try:
        for number, _, secret, _ in receivers:
            httpx.post(f"http://127.0.0.1:{embedded.simulator_port()}/_sim/webhooks", timeout=10,
                       params={"company": number} if number is not None else None,
                       json={"urls": [f"http://127.0.0.1:{port}/precoro/{secret}"]}).raise_for_status()
    except httpx.HTTPError as error:
        click.echo(f"the simulator would not send webhooks ({error}): the demo polls only")
        return False
    return True


def _wait_for_port(port: int) -> None:
    for _ in range(300):
        if embedded.port_open(port):
            return
        time.sleep(0.1)


def _stop(processes: list) -> None:
    for process in reversed(processes):
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


DEMO_COMPANIES_GUIDE = """
Dagster UI: http://127.0.0.1:{port}   (Ctrl-C stops the UI, the simulator and the webhook receiver)

{count} companies of the simulator ({names}), each declared as a team declares it in its own Dagster project
(docs/embedding.md), e.g. {first}'s defs.yaml:

    {yaml}

What to click, for each company:
  1. Jobs -> {first}_reference -> Materialize all
  2. Jobs -> {first}_documents -> Materialize all... -> pick a date range -> Launch backfill
  3. Automation: each company's webhook sensor is {webhooks}; "{first}_changes" polls when turned on
  4. Every company in one query:
     .venv/bin/precoro-assets sql {query_companies} \\
       "SELECT company, count(*) AS invoices FROM companies.invoices GROUP BY 1"
Each company's warehouse and state live in {home}/companies/<company>
"""

DEMO_SENSOR_INTERVAL_SECONDS = 60  # 5 requests a tick: a quarter of what the 10x-scaled simulator allows an hour

DEMO_GUIDE = """
Dagster UI: http://127.0.0.1:{port}   (Ctrl-C stops the UI and the simulator)

What to click:
  1. Jobs -> precoro_reference -> Materialize all      (every reference asset: suppliers, items, taxes, ...;
     not the Catalog's group link: it selects one asset, and "Materialize selected" syncs that one alone)
  2. Jobs -> precoro_documents -> Materialize all... -> pick a date range
     (e.g. the last 7 days; partitions start {start}) -> Launch backfill
  3. Runs -> Backfills: watch it; each asset page shows rows, new/changed counts and requests spent
  4. Automation: "precoro_webhook_events" is on: the simulated company's webhooks (it changes every minute)
     reach `precoro-assets webhooks` and are synced within a minute, details only; turn on "precoro_changes"
     too, the polling safety net for lost webhooks and for payments (it looks every {interval} s);
     the schedules "precoro_reference_every_6h" (reference data kept fresh) and "precoro_deletion_sweep" (the
     last 7 days listed again each morning: Precoro reports no deletion) are on, and so is "precoro_quota_watch"
     (a check on precoro/api warns below 10 % of the day's requests)
  5. Query the warehouse:  .venv/bin/precoro-assets sql "SELECT * FROM precoro.invoices_overview LIMIT 10"
  6. Jobs -> precoro_reconcile -> Materialize all: the demo ledger (in {home}/ledger) is
     reconciled with the synced invoices; then Jobs -> precoro_writeback (a dry run unless its config says
     send: true), or turn on the "precoro_writeback" sensor
Warehouse and state live in {home}
"""


if __name__ == "__main__":
    main()
