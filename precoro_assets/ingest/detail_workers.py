"""Detail requests of a big run, sent from worker processes.

Why processes: when the rate limits don't hold a sync back (the simulator sped up or off, where the benchmarks
run), it is CPU-bound, and a Python process does its CPU work one thread at a time. Each detail costs about as
much to request (HTTP, the shared request ledger, staging) as to parse, flatten and write, so requesting in
other processes lets the run's own process spend its time on the warehouse. At Precoro's real pace (1 request
per second) there is no CPU to save, and runs use threads (see MIN_REQUESTS_PER_SECOND).

Each worker has its own PrecoroClient over the same request ledger and its own connection to the detail
staging, so every rule of the budget holds exactly as in the run's process, and a fetched detail survives the
run's death as well: a worker stages each chunk's details together, before handing them over (see
_fetch_chunk). Where the run's process says each document's day, a worker also parses and flattens each detail into
its rows (see Flattened): parsing and flattening cost the run's process as much as the rest of its work together
(a profile of a 9k-document sync: about 2.5 s of its 14 s), while handing rows over costs a tenth of that. Where it
doesn't (a change sensor's run, whose documents are filed under their own day), a worker returns each detail's JSON
text as received, which the run's process parses.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ..api.client import PrecoroClient
from ..api.errors import PrecoroNotFound, PrecoroServerError
from ..api.responses import detail_from_text, detail_path
from ..catalogue import BY_NAME, Entity
from ..warehouse.rows import RecordRejected, Rows, flatten, parse_time
from ..warehouse.staging import DetailStaging
from .seams import PrecoroReads

logger = logging.getLogger(__name__)

# A run fetches details from processes only from this many details on: starting the workers costs a quarter of
# a second or so, which a run of fewer details (a change-sensor run, a day's partition) would not win back.
MIN_DETAILS = 500

# Worker processes, at most: with one, its own GIL bounds it (about 1,100 details/s against the simulator);
# more than two mostly contend for the request ledger and the staging database, where SQLite makes a
# process that finds them locked sleep for a millisecond or more.
MAX_PROCESSES = 2

# Details per task sent to a worker: large enough that the hand-over costs little per detail, small enough
# that the first documents reach the warehouse at once and that little is held in memory.
CHUNK = 25

# Tasks handed out ahead of the one the run waits for, per process: enough for the workers to keep going
# while the run writes a batch to the warehouse (a few hundred documents, a megabyte or so of text).
AHEAD_PER_PROCESS = 8


@dataclass
class WorkerSettings:
    """What a worker needs to build its own client and staging (the token and the database URL are never printed):
    the run's process hands over the values its settings gave it, so a worker reads no environment."""

    client: dict[str, Any] = field(repr=False)
    staging_dir: str = ""
    threads: int = 1
    database_url: str | None = field(default=None, repr=False)


@dataclass
class Chunk:
    """Some documents of one entity to fetch: (key, the list row's updateDate as ISO text or None, staged); with
    `days` (each document's partition day, by key), the worker flattens each detail for its day."""

    resource: str
    entity: str
    documents: Sequence[tuple[str, str | None, bool]]
    days: dict[str, date] | None = None


@dataclass
class Flattened:
    """A detail parsed and flattened by a worker: the rows it adds to its entity's tables for its day, or, when it
    can't be stored, why (with the record, which precoro.rejected_records keeps)."""

    rows: Rows
    rejected: tuple[str, dict] | None = None


@dataclass
class Fetched:
    """A chunk's details, in the order asked: (key, the detail flattened, or its JSON text when the chunk has no
    days or the text is unreadable, or None for a 404; came from staging), the requests spent, and the error
    that stopped the chunk early (the details before it are here, and staged)."""

    details: list[tuple[str, Flattened | str | None, bool]]
    spent: int
    error: BaseException | None = None


def flattens(entity: Entity) -> bool:
    """Whether a worker can flatten this entity's details: it finds the entity by name in its own catalogue."""
    return BY_NAME.get(entity.name) is entity


# Worker processes only where the budget allows more requests per second than one process can send and
# process (a few hundred): the simulator with its limits off or sped up, or a raised `per_second`. At Precoro's
# 1 request per second threads are plenty, and a worker busy with a chunk would hold up a terminated run.
MIN_REQUESTS_PER_SECOND = 500


def wanted(client: PrecoroReads, details: int, concurrent_requests: int) -> bool:
    """Whether a run of `details` details should fetch them from worker processes (else from threads)."""
    return details >= MIN_DETAILS and possible(client, concurrent_requests)


def possible(client: PrecoroReads, concurrent_requests: int) -> bool:
    """Whether this client may ever want worker processes: all of `wanted` but the number of details."""
    return (concurrent_requests >= 2 and 1.0 / client.quota.limits.spacing >= MIN_REQUESTS_PER_SECOND
            and client.worker_settings() is not None and main_module_is_guarded())


def main_module_is_guarded() -> bool:
    """Whether worker processes may start here without running the program's own code again.

    A new worker imports the program's main module (multiprocessing does, outside fork), so a script whose
    top-level code runs a sync, without `if __name__ == "__main__":`, would run it again in every worker.
    Such a script gets threads instead. Dagster's processes, the CLI, pytest and notebooks are all fine."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None) or ""
    if name == "__main__" or name.endswith(".__main__"):
        return True  # a package's __main__ is never imported again
    path = getattr(main, "__file__", None)
    if path is None:
        return True  # an interactive session: there is nothing to run again
    try:
        source = Path(path).read_text(errors="replace")
    except OSError:
        return False
    return re.search(r"""if\s+__name__\s*==\s*['"]__main__['"]""", source) is not None


class DetailWorkers:
    """Worker processes, each with a client like the run's, a connection to staging, and a few threads.

    A process keeps one set, started in the background when a sync begins (see `prepare`) and used by every
    asset of the run that has many details (see `get`); it stops after IDLE_SECONDS unused, or with the
    process."""

    def __init__(self, pool: ProcessPoolExecutor, processes: int) -> None:
        self._pool = pool
        self.processes = processes
        self.ahead = AHEAD_PER_PROCESS * processes

    @classmethod
    def start(cls, settings: WorkerSettings) -> DetailWorkers | None:
        """Started and answering, or None when processes can't be started here (the caller uses threads)."""
        processes = _process_count()
        pool = ProcessPoolExecutor(max_workers=processes, mp_context=_context(), initializer=_init_worker,
                                   initargs=(settings,))
        try:
            for ready in [pool.submit(_ready) for _ in range(processes)]:
                ready.result(timeout=120)
        except Exception as error:  # noqa: BLE001 - any failure to start means: use threads instead
            pool.shutdown(wait=False, cancel_futures=True)
            logger.warning("Detail requests go from threads of this process: worker processes could not start "
                           "(%s: %s). A script that runs a sync must start it under `if __name__ == '__main__':`.",
                           type(error).__name__, error)
            return None
        return cls(pool, processes)

    def submit(self, chunk: Chunk) -> Future:
        return self._pool.submit(_fetch_chunk, chunk)

    def release(self, futures: Sequence[Future]) -> None:
        """Done with these tasks: those not started are dropped, those running finish (what they fetch is
        staged). The workers stay for the run's next asset."""
        for future in futures:
            future.cancel()
        wait(futures)
        _stop_when_idle()

    def stop(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# Worker processes left unused this long are stopped (a run's assets follow each other within seconds).
IDLE_SECONDS = 30.0

_lock = threading.Lock()
_kept: tuple[WorkerSettings, Future] | None = None  # the settings and the (maybe still starting) workers
_idle_timer: threading.Timer | None = None


def prepare(client: PrecoroReads, staging: DetailStaging, concurrent_requests: int) -> None:
    """Start worker processes in the background if this client may want them, so that starting them (a few
    tenths of a second) overlaps with listing instead of delaying the details."""
    if possible(client, concurrent_requests):
        _workers_for(_settings(client, staging, concurrent_requests))


def get(client: PrecoroReads, staging: DetailStaging, concurrent_requests: int) -> DetailWorkers | None:
    """The process's workers for this client and staging (started now if `prepare` didn't), or None when
    processes can't be started here (the caller uses threads)."""
    workers = _workers_for(_settings(client, staging, concurrent_requests)).result()
    if workers is None:
        _forget()  # the next run tries again
    return workers


def _settings(client: PrecoroReads, staging: DetailStaging, concurrent_requests: int) -> WorkerSettings:
    return WorkerSettings(client.worker_settings() or {}, str(staging.directory),
                          max(1, concurrent_requests // _process_count()), staging.database_url)


def _process_count() -> int:
    return max(1, min(MAX_PROCESSES, os.cpu_count() or 1))


def _workers_for(settings: WorkerSettings) -> Future:
    global _kept
    with _lock:
        _cancel_idle_timer()
        if _kept is not None and _kept[0] == settings:
            return _kept[1]
        starting = _start_in_background(settings)
        previous, _kept = _kept, (settings, starting)
    if previous is not None:
        _stop(previous[1])
    return starting


def _start_in_background(settings: WorkerSettings) -> Future:
    starting: Future = Future()

    def start() -> None:
        try:
            starting.set_result(DetailWorkers.start(settings))
        except BaseException as error:  # noqa: BLE001 - handed to whoever waits for the workers
            starting.set_exception(error)

    threading.Thread(target=start, name="precoro-detail-workers-start", daemon=True).start()
    return starting


def _stop_when_idle() -> None:
    global _idle_timer
    with _lock:
        _cancel_idle_timer()
        _idle_timer = threading.Timer(IDLE_SECONDS, _forget)
        _idle_timer.daemon = True
        _idle_timer.start()


def _cancel_idle_timer() -> None:
    global _idle_timer
    if _idle_timer is not None:
        _idle_timer.cancel()
        _idle_timer = None


def _forget() -> None:
    """Stop the kept workers (when idle, or when they could not start)."""
    global _kept
    with _lock:
        _cancel_idle_timer()
        previous, _kept = _kept, None
    if previous is not None:
        _stop(previous[1])


def _stop(starting: Future) -> None:
    """Stop workers once they have started (a start that failed left nothing to stop)."""
    if starting.exception() is None and starting.result() is not None:
        starting.result().stop()


def _context() -> multiprocessing.context.BaseContext:
    # Not fork: the run's process has threads (Dagster's, ours), and a forked child could inherit a lock
    # held by one of them. The fork server starts once per process, with this module already imported,
    # so each later worker costs a fork instead of a fresh interpreter.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


# ---- inside a worker --------------------------------------------------------------------------------

_client: PrecoroClient | None = None
_staging: DetailStaging | None = None
_threads: ThreadPoolExecutor | None = None


def _init_worker(settings: WorkerSettings) -> None:
    global _client, _staging, _threads
    _client = PrecoroClient(**settings.client)
    _staging = DetailStaging(settings.staging_dir, settings.database_url)
    _threads = ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="precoro-details")


def _ready() -> bool:
    return _client is not None


def _fetch_one(entity: str, resource: str, key: str, at_least: str | None,
               staged: bool) -> tuple[str, str | None, bool]:
    """(key, JSON text or None when Precoro answers 404, came from staging)."""
    assert _client is not None and _staging is not None  # noqa: S101 - set by _init_worker
    if staged:
        text = _staging.get_text(entity, key, parse_time(at_least) if at_least else None)
        if text is not None:
            return key, text, True
    # The text only: the chunk parses and flattens it (see _flatten) when it has the documents' days.
    try:
        return key, _client.request("GET", detail_path(resource, key), text_only=True), False
    except PrecoroNotFound:
        return key, None, False  # deleted since it was listed: the run's process removes it


def _fetch_chunk(chunk: Chunk) -> Fetched:
    """The chunk's details in order, staged together in one transaction before they are handed back: a commit
    per detail cost as much as a tenth of a request, and a worker runs only where the budget is effectively
    unlimited (see MIN_REQUESTS_PER_SECOND), so a worker killed mid-chunk loses little: at most a chunk's
    requests, which its retry sends again. A chunk stopped by an error stages every detail that arrived."""
    assert _client is not None and _staging is not None and _threads is not None  # noqa: S101 - _init_worker
    spent_before = _client.spent
    # The chunk's slots in the request budget in one ledger transaction, where the budget allows it.
    reserved = _client.reserve_gets([detail_path(chunk.resource, key) for key, _, staged in chunk.documents
                                     if not staged])
    futures = [_threads.submit(_fetch_one, chunk.entity, chunk.resource, *document) for document in chunk.documents]
    details: list[tuple[str, str | None, bool]] = []
    error: BaseException | None = None
    for future in futures:
        error = future.exception()
        if error is not None:  # handed to the run's process, raised there at this document
            for rest in futures:
                rest.cancel()
            wait(futures)  # those already sending finish, and are staged below
            break
        details.append(future.result())
    _client.release_gets(reserved)  # the slots of requests not sent (an error stopped the chunk)
    arrived: list[tuple[str, str | None, str]] = []  # fetched now (not from staging) and found
    for (key, at_least, _), future in zip(chunk.documents, futures, strict=True):
        if not future.cancelled() and future.exception() is None:
            _, text, from_staging = future.result()
            if not from_staging and text is not None:
                arrived.append((key, at_least, text))
    _staging.put_texts(chunk.entity, arrived)
    if chunk.days is None:
        return Fetched(list(details), _client.spent - spent_before, error)
    synced_at = datetime.now(UTC)
    return Fetched([(key, _flatten(chunk, key, text, synced_at) if text is not None else None, from_staging)
                    for key, text, from_staging in details], _client.spent - spent_before, error)


def _flatten(chunk: Chunk, key: str, text: str, synced_at: datetime) -> Flattened | str:
    """The detail's rows for its day, as the run's process would flatten it (see sync._apply); its text as
    received when it is unreadable: the run's process asks for it again (see details._fetched)."""
    assert chunk.days is not None  # noqa: S101 - only called for a chunk with days
    try:
        record, raw = detail_from_text(chunk.resource, key, text)
    except PrecoroServerError:
        return text
    rows = Rows()
    try:
        flatten(BY_NAME[chunk.entity], record, rows, synced_at, chunk.days[key], raw_text=raw)
    except RecordRejected as error:
        return Flattened(Rows(), (str(error), record))
    return Flattened(rows)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


