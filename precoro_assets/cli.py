"""The product's commands of `precoro-assets`: headless sync, reconciliation, catalogue sync, write-back, the
webhook receiver and SQL on the warehouse. The harness's entry point adds the bundled simulator, the demo and the
soak, and serves the simulator around these commands when no account is configured (see PRECORO_SERVICE)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import pandas as pd

    from .runtime.run_launcher import StopRequest
    from .settings import Settings, StateSettings

PACKAGE_ROOT = Path(__file__).resolve().parent
DAGSTER_YAML = PACKAGE_ROOT / "dagster.yaml"


@click.group()
def main() -> None:
    """Precoro procurement data in a DuckDB warehouse, driven by Dagster."""


# ---- shared helpers ---------------------------------------------------------------------------

def _settings() -> Settings:
    """The settings, or an error that names every variable to fix (never a traceback)."""
    from . import settings

    try:
        return settings.load()
    except ValueError as error:
        raise click.ClickException(str(error)) from None


def _state_settings() -> StateSettings:
    """Where the state is, for commands that need no account (`sql`); errors as in _settings."""
    from . import settings

    try:
        return settings.load_state()
    except ValueError as error:
        raise click.ClickException(str(error)) from None


def _dagster_home(config: StateSettings) -> Path:
    """DAGSTER_HOME under the project's var/ (with our dagster.yaml), unless the user set one.

    The one variable the product writes: Dagster's instance (`DagsterInstance.get()`) and the processes it starts
    (runs, the daemon) find their home only through DAGSTER_HOME."""
    if config.dagster_home is not None:
        return config.dagster_home
    dagster_home = config.home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        # Two processes starting at once on a fresh home (two commands, the UI and the daemon) would both create the
        # storage, the race `_create_storage` exists to avoid: one creates it while the others wait for the lock (an
        # OS lock, released if its holder dies), then find dagster.yaml there.
        from filelock import FileLock

        with FileLock(dagster_home / ".dagster.yaml.lock"):
            if not (dagster_home / "dagster.yaml").exists():
                _create_storage(dagster_home)
                _write_atomically(DAGSTER_YAML, dagster_home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dagster_home


def _write_atomically(source: Path, target: Path) -> None:
    """Copy `source` to `target`, whole or absent to whoever looks: through a temporary file of a name of its own
    in the same directory (a name shared with another writer could be replaced or removed under this one)."""
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".new")
    os.close(fd)
    try:
        shutil.copy(source, temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _create_storage(dagster_home: Path) -> None:
    """Create the instance's storage (its SQLite files and their schema version) before dagster.yaml appears.

    Dagster creates it on first use, and two processes that first use it at once (the UI and the daemon of
    `demo`, or anything that opens the instance when it sees dagster.yaml) can both stamp the schema version:
    every later start then fails with "Version table 'alembic_version' has more than one head present".
    Storage does not depend on our dagster.yaml's settings, so Dagster's defaults create the same files."""
    import dagster as dg

    dg.DagsterInstance.from_config(str(dagster_home)).dispose()


# Around the commands that talk to Precoro, a harness that runs these commands (the demo's entry point) may
# serve Precoro meanwhile: a factory of a context manager, in the click context's meta under this key.
PRECORO_SERVICE = "precoro_assets.precoro_service"


def _precoro_service() -> AbstractContextManager[object]:
    """What the harness put around the commands that talk to Precoro, else nothing."""
    ctx = click.get_current_context(silent=True)
    factory = ctx.meta.get(PRECORO_SERVICE) if ctx is not None else None
    return factory() if factory is not None else nullcontext()


# ---- sync ------------------------------------------------------------------------------------

@main.command()
@click.option("--start", "start", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First day (createDate).")
@click.option("--end", "end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last day (default: today).")
@click.option("--full-refresh", is_flag=True, help="Read all reference data instead of the changes.")
@click.option("--verbose", is_flag=True, help="Show Dagster's event log (errors with their stack traces).")
def sync(start: datetime, end: datetime | None, full_refresh: bool, verbose: bool) -> None:
    """Materialize reference data and every document day from START to END through Dagster."""

    config = _settings()
    first, last = start.date(), (end.date() if end else datetime.now(UTC).date())
    if first < config.start_date:
        raise click.BadParameter(f"{first} is before PRECORO_START_DATE ({config.start_date}).", param_hint="--start")
    if end is None and first > last:
        raise click.BadParameter(f"{first} is after today ({last}, UTC): no document of those days exists yet; "
                                 "give a day up to today.", param_hint="--start")
    if last < first:
        raise click.BadParameter(f"--end {last} is before --start {first}", param_hint="--end")
    from .api.quota import requests_sent_by_this_process

    _dagster_home(config)
    stop = _stop_on_sigterm()
    _quiet_logs(verbose)
    with _precoro_service():
        before = requests_sent_by_this_process()
        results = run_sync(first, last, full_refresh, verbose=verbose, stop=stop)
        spent = requests_sent_by_this_process() - before  # the runs are in-process: failed ones count too
    _print_summary(results, spent)
    if stop.is_set():
        click.echo(f"Stopped ({stop.name}): the run under way was interrupted and no later run was started.",
                   err=True)
        sys.exit(128 + signal.Signals[stop.name])
    if not all(ok for _, _, ok, _ in results):
        sys.exit(1)


def _quiet_logs(verbose: bool) -> None:
    """Our modules' own log lines (retries, waits) only with --verbose: the failures are summed up at the end."""
    logging.getLogger("precoro_assets").setLevel(logging.INFO if verbose else logging.ERROR)



def _stop_on_sigterm() -> StopRequest:
    """SIGTERM and Ctrl-C interrupt the run in progress and start no other run. While a run executes, Dagster's
    own handler takes the signal and interrupts the step (see _interrupted), and run_launcher.SlotWatch ends a
    run that waits for the API slot; between runs, this one."""
    from .runtime.run_launcher import StopRequest  # dagster loads with it: not for `--help`

    stop = StopRequest()

    def interrupt(signum: int, frame: object) -> None:
        stop.name = signal.Signals(signum).name
        stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    return stop


# Causes that every later run would meet too: the sync stops at the first.
STOPPING_CAUSES = {"PrecoroAuthError": "Precoro rejected the credentials", "PrecoroUnreachable": "Precoro is unreachable",
                   "SharedStateUnavailable": "the shared-state database is unreachable"}


def _interrupted(result) -> bool:
    """Whether Dagster interrupted a step of the run (SIGTERM or Ctrl-C while it ran)."""
    return any(event.is_step_failure and _root_cause(event.step_failure_data.error).cls_name
               == "DagsterExecutionInterruptedError" for event in result.all_events)


def _root_cause(error):
    """The exception a step failed with, inside Dagster's wrappers."""
    while error.cause is not None:
        error = error.cause
    return error


def _report_failures(result) -> bool:
    """Print each distinct cause of the run's failed steps in one line (with the assets it failed); returns
    whether the sync must stop (a cause every later run would meet too)."""
    causes: dict[tuple[str, str], tuple[str, list[str]]] = {}
    for event in result.all_events:
        if event.is_step_failure:
            root = _root_cause(event.step_failure_data.error)
            text = (root.message.strip().splitlines() or [root.cls_name])[0]
            named, _, rest = text.partition(": ")
            text = rest if rest and named.endswith(root.cls_name) else text  # without the exception's module path
            # the same stopping cause reads a little differently per request: it is one cause
            group = (root.cls_name, "" if root.cls_name in STOPPING_CAUSES else text)
            causes.setdefault(group, (text, []))[1].append(event.step_key.replace("__", "/"))
    for text, steps in causes.values():
        shown = steps[0] if len(steps) == 1 else f"{steps[0]} and {len(steps) - 1} more"
        click.echo(f"failed: {shown}: {text}", err=True)
    stopping = [STOPPING_CAUSES[name] for name, _ in causes if name in STOPPING_CAUSES]
    if stopping:
        click.echo(f"Stopping: {stopping[0]}; nothing more was sent. Fix the setting named above and run again.",
                   err=True)
    return bool(stopping)


@contextmanager
def _api_slot(instance, stop: StopRequest | None) -> Iterator[dict[str, str]]:
    """Around a run this process executes in-process: first free the precoro_api slot of a run whose process died
    (kill -9), or say which live run holds it and wait without spinning; then watch the run (SIGTERM and Ctrl-C end
    it at once). Yields the tags that name this process on the run, so that a later run can tell if it dies."""
    from .defs.ingest import API_POOL, limit_api_pool
    from .runtime.run_launcher import SlotWatch, process_tags, wait_for_slot

    limit_api_pool(instance)
    wait_for_slot(instance, API_POOL, _say)
    with SlotWatch(API_POOL, _say, stop):
        yield process_tags()


def _job_in_api_slot(job_name: str, run_config: dict, cli_tag: str):
    """A job of the code location executed in-process, in the precoro_api slot (see _api_slot); SIGTERM or Ctrl-C
    stops it with one line and exit code 128 + the signal's number."""
    import dagster as dg

    from .definitions import defs

    stop = _stop_on_sigterm()
    instance = dg.DagsterInstance.get()
    try:
        with _api_slot(instance, stop) as tags:
            return defs.resolve_job_def(job_name).execute_in_process(
                run_config=run_config, instance=instance, raise_on_error=False,
                tags={"precoro/cli": cli_tag, **tags})
    except KeyboardInterrupt:
        click.echo(f"Stopped ({stop.name}): the run was interrupted.", err=True)
        sys.exit(128 + signal.Signals[stop.name])


def run_sync(first: date, last: date, full_refresh: bool = False, verbose: bool = False,
             stop: StopRequest | None = None) -> list[tuple[str, str, bool, dict]]:
    """Materialize reference data, documents for first..last, then the views; stop early when `stop` is set or
    a failure's cause would fail every later run too.

    Returns (run, asset, succeeded, metadata) per asset, in order.
    """
    import dagster as dg

    from .definitions import defs
    from .defs.ingest import ANALYST_VIEWS, DOCUMENTS_GROUP, REFERENCE_GROUP
    instance = dg.DagsterInstance.get()
    graph = defs.resolve_asset_graph()
    # Dagster's console log repeats each failure with its stack trace; the causes are printed below instead.
    quiet = {"loggers": {"console": {"config": {"log_level": "DEBUG" if verbose else "CRITICAL"}}}}
    runs = [
        ("reference", dg.AssetSelection.groups(REFERENCE_GROUP), {},
         _full_refresh_config(graph) if full_refresh else {}),
        ("documents", dg.AssetSelection.groups(DOCUMENTS_GROUP),
         {"dagster/asset_partition_range_start": first.isoformat(),
          "dagster/asset_partition_range_end": last.isoformat()}, {}),
        ("views", dg.AssetSelection.assets(ANALYST_VIEWS), {}, {}),
    ]
    results: list[tuple[str, str, bool, dict]] = []
    for name, selection, tags, run_config in runs:
        if stop is not None and stop.is_set():
            break
        keys = selection.resolve(graph)
        if not keys:  # no entity of this kind is selected (PRECORO_ENTITIES)
            continue
        assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition) and set(a.keys) & keys]
        try:
            # a sync killed earlier (kill -9) may hold the API slot: freed here, else who holds it is said
            with _api_slot(instance, stop) as process:  # the run's process is in its tags: see run_launcher
                result = dg.materialize(assets, instance=instance, resources=defs.resources, selection=selection,
                                        tags={**tags, "precoro/cli": f"sync {name}", **process},
                                        run_config={**quiet, **run_config}, raise_on_error=False)
        except KeyboardInterrupt:
            results += [(name, key, False, {}) for key in sorted(k.to_user_string() for k in keys)]
            break
        events: dict = {}
        for event in result.get_asset_materialization_events():  # one per day of the run
            events.setdefault(event.materialization.asset_key.to_user_string(), []).append(
                {k: v.value for k, v in event.materialization.metadata.items()})
        for key in sorted(k.to_user_string() for k in keys):
            results.append((name, key, key in events, _run_metadata(events.get(key, []))))
        if not result.success and stop is not None and _interrupted(result):
            stop.set()
            break
        if not result.success and _report_failures(result):
            break
    return results


def _say(line: str) -> None:
    click.echo(line, err=True)


def _full_refresh_config(graph) -> dict:
    """Every selected reference asset reads all its records."""
    from .catalogue import REFERENCE
    from .defs.ingest import asset_key

    keys = graph.get_all_asset_keys()
    return {"ops": {asset_key(e).to_python_identifier(): {"config": {"full_refresh": True}}
                    for e in REFERENCE if asset_key(e) in keys}}


def _run_metadata(per_day: list[dict]) -> dict:
    """A run's figures from its materializations: a run over several days records one per day, each with the
    run's figures and that day's own counts over them (see defs.ingest.day_metadata): those are added up."""
    if not per_day:
        return {}
    metadata = dict(per_day[0])
    days = [m for m in per_day if str(m.get("run total", "")).startswith("no")]
    if days:
        from .defs.ingest import DAY_COUNTS

        for name in DAY_COUNTS:
            metadata[name] = sum(m.get(name, 0) for m in days)
    return metadata


def _print_summary(results: list[tuple[str, str, bool, dict]], spent: int) -> None:
    columns = ("listed by Precoro", "new", "changed", "removed", "detail requests", "rows")
    click.echo(f"{'asset':34} {'ok':3} {'listed':>7} {'new':>6} {'changed':>7} {'removed':>7} {'details':>7} {'rows':>7}")
    left = {}
    for _, key, ok, meta in results:
        meta = {**meta, "rows": meta.get("rows in the run's days", meta.get("dagster/row_count", ""))}
        values = " ".join(f"{meta.get(c, ''):>{w}}" for c, w in zip(columns, (7, 6, 7, 7, 7, 7), strict=True))
        click.echo(f"{key:34} {'yes' if ok else 'NO':3} {values}")
        if "requests spent" in meta:
            left = {k[len("requests left "):]: v for k, v in meta.items() if k.startswith("requests left ")}
    click.echo(f"requests spent: {spent}" + (
        "; left now: " + ", ".join(f"{v} this {k}" for k, v in left.items()) if left else ""))


# ---- sql -------------------------------------------------------------------------------------

@main.command()
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--company", "companies", multiple=True, metavar="NAME=HOME",
              help="Query several companies' warehouses (repeat it): each is the catalog NAME "
                   "(NAME.precoro.invoices), and companies.<table> has every company's rows with a `company` column. "
                   "HOME: the company's home (or its warehouse directory).")
def sql(query: str, fmt: str, companies: tuple[str, ...]) -> None:
    """Run a read-only SQL query on the warehouse (does not block running materializations)."""
    from .warehouse.store import Warehouse

    if companies:
        frame = _query_companies(query, companies)
    else:
        state = _state_settings()  # where the warehouse is: no account setting can stand in a query's way
        warehouse = Warehouse(state.warehouse, **state.warehouse_options())
        try:
            frame = warehouse.query(query, integer_nulls_as_none=True)
        except Exception as error:  # noqa: BLE001 - show DuckDB's message, not a traceback
            raise click.ClickException(_query_error(warehouse, error)) from None
    if fmt == "csv":
        click.echo(frame.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(json.dumps(json.loads(frame.to_json(orient="records", date_format="iso")), indent=2,
                              ensure_ascii=False))
    else:
        import pandas as pd

        with pd.option_context("display.max_rows", 200, "display.max_columns", 50, "display.width", 200):
            shown = frame.astype(object).where(frame.notna(), "")  # NULL shows as nothing, not NaN or None
            click.echo(shown.to_string(index=False) if len(frame) else "(no rows)")


def _companies(given: tuple[str, ...]) -> dict[str, str]:
    """`--company acme=var/precoro/acme --company globex=...`: each company's name and home."""
    from .settings import COMPANY_NAME

    places: dict[str, str] = {}
    for text in given:
        name, _, home = (part.strip() for part in text.partition("="))
        if not COMPANY_NAME.fullmatch(name) or not home:
            raise click.BadParameter(f"{text!r}: write NAME=HOME, NAME in lowercase letters, digits and _ (as the "
                                     "component's company), e.g. acme=var/precoro/acme", param_hint="--company")
        if name in places:
            raise click.BadParameter(f"{name} is given twice", param_hint="--company")
        places[name] = home
    return places


def _query_companies(query: str, given: tuple[str, ...]) -> pd.DataFrame:
    """`sql --company acme=var/precoro/acme --company globex=...`: the query on every company's warehouse."""
    from .warehouse import companies
    from .warehouse.store import retrying

    try:
        con = companies.connect(_companies(given))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--company") from None
    try:
        return retrying(lambda: con.execute(query).to_arrow_table().to_pandas(integer_object_nulls=True), "query")
    except Exception as error:  # noqa: BLE001 - show DuckDB's message, not a traceback
        raise click.ClickException(f"{str(error).strip()}\nWhat the companies hold: precoro-assets sql --company "
                                   f"... \"SHOW ALL TABLES\"") from None
    finally:
        con.close()


def _query_error(warehouse, error: Exception) -> str:
    """DuckDB's whole message (its "Did you mean ..." and candidate columns are the answer to a typo); "sync
    first" only where the warehouse holds no table yet, which is the one case where syncing is the fix."""
    message = str(error).strip()
    if "Catalog Error" not in message:
        return message
    try:
        tables = warehouse.query("SELECT count(*) AS n FROM duckdb_tables() WHERE schema_name = 'precoro' "
                                 "AND database_name = current_database()")["n"].iloc[0]
    except Exception:  # noqa: BLE001 - the hint is a courtesy; the query's own error is what matters
        tables = None
    if tables == 0:
        return (f"{message}\nThe warehouse is empty: sync first, e.g. precoro-assets sync --start YYYY-MM-DD (or "
                "materialize the assets in the Dagster UI); the views come with the first sync.")
    return f"{message}\nWhat the warehouse holds: precoro-assets sql \"SHOW ALL TABLES\""


# ---- reconciliation and write-back ----------------------------------------------------------

def _run_failed(result) -> click.ClickException:
    """The first failed step's message: a dg.Failure's own description (it says what to do), else the error."""
    failure = next((e for e in result.all_events if e.is_step_failure), None)
    if failure is None:
        return click.ClickException("run failed")
    data = failure.step_failure_data
    if data.user_failure_data and data.user_failure_data.description:
        return click.ClickException(data.user_failure_data.description.strip())
    cause = _root_cause(data.error)  # Dagster's "Error occurred while executing op ..." wraps the real error
    message = cause.message.strip()
    named = message if cause.cls_name in message.split("\n")[0] else f"{cause.cls_name}: {message}"
    return click.ClickException(f"{failure.step_key} failed: {named}\n(the whole event log: add --verbose)")


def _console_log(verbose: bool) -> dict:
    """Run config for Dagster's console log: the whole event log with --verbose, else nothing (the command
    prints what matters, and each failure's cause, itself)."""
    _quiet_logs(verbose)
    return {"loggers": {"console": {"config": {"log_level": "DEBUG" if verbose else "CRITICAL"}}}}


@main.command()
@click.option("--verbose", is_flag=True, help="Show Dagster's event log.")
def reconcile(verbose: bool) -> None:
    """Load the ledger, reconcile it with the synced invoices and queue write-backs (through Dagster)."""
    import dagster as dg

    config = _settings()  # first: a missing or bad setting is one line, not a traceback from the definitions
    from .definitions import defs

    _dagster_home(config)
    result = defs.resolve_job_def("precoro_reconcile").execute_in_process(
        run_config=_console_log(verbose), instance=dg.DagsterInstance.get(), raise_on_error=False,
        tags={"precoro/cli": "reconcile"})
    rejected, rejected_files = 0, {}
    for event in result.get_asset_materialization_events():
        metadata = {k: v.value for k, v in event.materialization.metadata.items()}
        counts = [f"{k.split(': ', 1)[1]}={v}" for k, v in metadata.items() if isinstance(v, int) and ": " in k]
        click.echo(f"{event.materialization.asset_key.to_user_string()}: {metadata.get('dagster/row_count')} rows"
                   + (f"; {', '.join(counts)}" if counts else ""))
        rows_rejected, files_rejected = metadata.get("rejected rows"), metadata.get("rejected files")
        if isinstance(rows_rejected, int):  # both ledger assets report the load's
            rejected = max(rejected, rows_rejected)
        if isinstance(files_rejected, dict) and files_rejected:
            rejected_files = files_rejected
    for file, reason in rejected_files.items():
        click.echo(f"ledger file {file} rejected as a whole, none of its rows loaded: {reason}")
    if rejected - len(rejected_files):
        click.echo(f"{rejected - len(rejected_files)} ledger row(s) rejected, not loaded (file, line and reason in "
                   "the table precoro.ledger_rejected_rows)")
    if not result.success:
        raise _run_failed(result)
    click.echo('Details: precoro-assets sql "SELECT class, reason FROM precoro.reconciliation_invoices"')


@main.command("catalogue-sync")
@click.option("--verbose", is_flag=True, help="Show Dagster's event log.")
def catalogue_sync(verbose: bool) -> None:
    """Compare the accounting catalogue with Precoro and queue the writes (sent by `writeback --send`)."""
    config = _settings()  # first: a missing or bad setting is one line, not a traceback from the definitions
    _dagster_home(config)
    with _precoro_service():
        result = _job_in_api_slot("precoro_catalogue_sync", _console_log(verbose), "catalogue-sync")
    if not result.success:
        raise _run_failed(result)
    for event in result.get_asset_materialization_events():
        metadata = {k: v.value for k, v in event.materialization.metadata.items()}
        click.echo(f"files: {metadata['files']}; {metadata['lookup requests']} lookup request(s)")
        click.echo(str(metadata["actions per kind"]))
        click.echo(f"{metadata['writes proposed']} write(s) proposed, {metadata['newly queued']} newly queued"
                   + (f"; {metadata['rejected rows']} catalogue row(s) rejected" if metadata["rejected rows"] else ""))
    click.echo('Details: precoro-assets sql "SELECT kind, ledger_id, action, reason FROM precoro.catalogue_sync_plan '
               "WHERE action <> 'unchanged'\"\n"
               "Send: precoro-assets writeback (a dry run), then precoro-assets writeback --send")


@main.command()
@click.option("--send", is_flag=True, help="Really write to Precoro (default: a dry run that sends nothing).")
@click.option("--limit", default=0, show_default=True, help="At most this many outbox rows (0 = all).")
@click.option("--retry-failed", is_flag=True, help="Put failed rows back in the queue first (after fixing the cause).")
@click.option("--verbose", is_flag=True, help="Show Dagster's event log.")
def writeback(send: bool, limit: int, retry_failed: bool, verbose: bool) -> None:
    """Run the write-back job headless and print what was (or would be) sent to Precoro."""
    config = _settings()  # first: a missing or bad setting is one line, not a traceback from the definitions
    _dagster_home(config)
    if retry_failed:
        from .writeback.outbox import Outbox

        outbox = Outbox(config.state_dir / "outbox.sqlite", config.database_url_value)
        click.echo(f"{outbox.requeue_failed()} failed row(s) queued again")
    run_config = {"ops": {"write_back": {"config": {"send": send, "limit": limit}}}, **_console_log(verbose)}
    from .defs.writeback import sending_enabled

    with _precoro_service() if sending_enabled(send, config.writeback_send) else nullcontext():  # a dry run: nobody
        result = _job_in_api_slot("precoro_writeback", run_config, "writeback")
    if not result.success:
        raise _run_failed(result)
    output = result.output_for_node("write_back")
    reports = output["reports"]
    if not reports:
        click.echo(_nothing_to_write_back(config))
        return
    for report in reports:
        click.echo(f"{report['status']:10} {report['kind']:22} {report['target']:22} {report['request'] or ''}")
        if output["send"]:
            click.echo(f"{'':10} {report['outcome']}" + (f" | error: {report['error']}" if report["error"] else ""))
    if not output["send"]:
        click.echo(f"Dry run: {len(reports)} write-back(s) would be sent; nothing was sent. "
                   "Send them with: precoro-assets writeback --send")
        return
    tally = {status: sum(1 for r in reports if r["status"] == status) for status in ("sent", "skipped", "failed")}
    others = len(reports) - sum(tally.values())  # e.g. a payment whose outcome the next run checks first
    click.echo(", ".join(f"{count} {status}" for status, count in tally.items())
               + (f", {others} still pending" if others else ""))


def _nothing_to_write_back(config) -> str:
    """Why a run had nothing to do: no pending row, or rows another run (or a dead one) holds under lease."""
    from .writeback.outbox import LEASE, Outbox

    leased = Outbox(config.state_dir / "outbox.sqlite", config.database_url_value).leased()
    if not leased:
        return "Nothing to write back: the outbox has no pending row."
    free = sorted(datetime.fromisoformat(row.attempted_at) + LEASE for row in leased if row.attempted_at)
    last = f" (the last at {free[-1]:%H:%M:%S})" if free[-1] - free[0] >= timedelta(seconds=1) else ""
    return (f"Nothing to write back now: {len(leased)} row(s) wait for their {int(LEASE.total_seconds() // 60)}-"
            "minute lease, taken by a run that is still sending them or stopped before it finished. From "
            f"{free[0]:%Y-%m-%d %H:%M:%S} UTC{last} a run may take them again (a payment is first looked for in "
            "Precoro, so none is sent twice): run precoro-assets writeback again then.")


@main.command()
@click.option("--port", default=8790, show_default=True, help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 behind your HTTPS proxy, so Precoro can reach it).")
@click.option("--request-timeout", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds a connection has to send a whole request; then it is closed (slow or idle clients).")
@click.option("--company", "companies", multiple=True, metavar="NAME=HOME",
              help="Receive for the companies of a project (repeat it): each company's events go to the inbox under "
                   "its HOME, its secret in NAME_PRECORO_WEBHOOK_SECRET (e.g. ACME_PRECORO_WEBHOOK_SECRET).")
def webhooks(port: int, host: str, request_timeout: float, companies: tuple[str, ...]) -> None:
    """Receive Precoro's webhooks and record them for the precoro_webhook_events sensor.

    Give Precoro (Settings > Webhooks) the URL https://<your host>/precoro/<PRECORO_WEBHOOK_SECRET>; with
    --company, each company's own URL https://<your host>/precoro/<its secret>."""
    from . import settings
    from .ingest.webhook_inbox import Mailbox, WebhookInbox, inbox_path, serve

    if companies:
        mailboxes = []
        for name, home in _companies(companies).items():
            variable = settings.webhook_secret_variable(name)
            secret = settings.secret_variable(variable)
            _check_webhook_secret(secret, variable, name)
            if not Path(home).expanduser().is_dir():
                click.echo(f"warning: {home} does not exist yet: {name}'s events are recorded there; check it is "
                           f"the home of {name}'s defs.yaml, or its webhook sensor will not see them", err=True)
            mailboxes.append(Mailbox(WebhookInbox(inbox_path(settings.company_state_dir(home))), secret, name))
    else:
        config = _settings()
        secret = config.webhook_secret.get_secret_value()
        _check_webhook_secret(secret, settings.ENV_WEBHOOK_SECRET)
        mailboxes = [Mailbox(WebhookInbox(inbox_path(config.state_dir), config.database_url_value), secret)]
    for mailbox in mailboxes:
        secret_name = (settings.webhook_secret_variable(mailbox.company) if mailbox.company
                       else settings.ENV_WEBHOOK_SECRET)
        click.echo(f"receiving Precoro's webhooks{f' for {mailbox.company}' if mailbox.company else ''} on "
                   f"http://{host}:{port}/precoro/<{secret_name}>; events recorded in {mailbox.inbox.path}")
    try:
        serve(mailboxes, host, port, request_timeout)
    except ValueError as error:  # e.g. two companies with one secret
        raise click.ClickException(str(error)) from None


def _check_webhook_secret(secret: str, variable: str, company: str = "") -> None:
    if len(secret) < 16:
        raise click.ClickException(
            f"Set {variable} to a random string of at least 16 characters (e.g. the output of "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(24))'`): Precoro signs nothing, so the secret "
            "in the URL is what keeps strangers' events out. Then give Precoro the URL "
            "https://<your host>/precoro/<that secret>, and " + (
                f"set `webhooks: true` in company {company}'s defs.yaml." if company
                else "set PRECORO_WEBHOOKS=1 for Dagster."))


if __name__ == "__main__":
    main()
