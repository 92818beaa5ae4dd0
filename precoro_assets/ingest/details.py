"""The details a sync needs, one GET each: fetched a few at a time on threads (a failed one retried once its
identical-GET minute has passed while the others go on), or by worker processes when there are many
(detail_workers.py); every detail staged the moment it arrives, handed to the run in the order it asked."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date

from ..api.client import retry_later
from ..api.errors import PrecoroNotFound, PrecoroServerError
from ..api.responses import detail_from_text, detail_path
from ..catalogue import Entity
from ..warehouse.staging import DetailStaging
from . import detail_workers
from .seams import PrecoroReads
from .summary import SyncSummary, update_date

logger = logging.getLogger(__name__)

# A wanted document as the run receives it: (key, its detail, its JSON text as received); detail and text are
# None when it was deleted between the listing and its request. A worker process may have flattened the detail
# already (when the run said each document's day): then it comes as Flattened, without its text.
Flattened = detail_workers.Flattened
Detail = tuple[str, dict | Flattened | None, str | None]


def prepare_detail_workers(client: PrecoroReads, staging: DetailStaging) -> None:
    """Start the worker processes a big sync may fetch details from, in the background (see detail_workers):
    call it before the work that precedes the details, so that their start overlaps with it."""
    detail_workers.prepare(client, staging, detail_threads(client))


def detail_threads(client: PrecoroReads) -> int:
    """Detail requests a run keeps in flight: the client says how many its pacing allows (see
    PrecoroClient.concurrent_requests)."""
    return max(1, int(getattr(client, "concurrent_requests", 1)))


def details_in_order(client: PrecoroReads, staging: DetailStaging, entity: Entity, wanted: list[tuple[str, dict]],
                      summary: SyncSummary, workers: int,
                      days: dict[str, date] | None = None) -> Generator[Detail, None, None]:
    """Each wanted document's detail (with its JSON text as received), in the order asked for, fetched by up
    to `workers` threads at once, or by worker processes when there are many (see detail_workers). Given each
    document's partition day (`days`), worker processes flatten the details too, which come as Flattened.

    Only a few details are fetched ahead of the caller, so memory stays flat however many documents a run
    covers; a detail waiting to be retried (see _DetailFetches) leaves its place to the next ones. Every fetched
    detail is staged the moment it arrives (by whoever fetched it; a worker process
stages its chunk of them in one commit, before handing them over). If one fetch fails
    (quota spent, Precoro down), the error reaches the caller at that document; fetches not yet started are
    cancelled and those in flight are staged for the retry.
    """
    staged = staging.keys(entity.name)
    if detail_workers.wanted(client, len(wanted), workers):
        processes = detail_workers.get(client, staging, workers)
        if processes is not None:
            yield from _details_from_processes(processes, client, staging, entity, wanted, summary, staged,
                                               days if detail_workers.flattens(entity) else None)
            return
    fetches = _DetailFetches(client, staging, entity, staged, workers)
    ahead: deque[tuple[str, Future]] = deque()

    def take() -> tuple[str, dict, str | None]:
        key, future = ahead.popleft()
        detail, text, from_staging = future.result()
        summary.count_detail(from_staging)
        return key, detail, text

    def room() -> bool:  # for the next document: two fetches in flight per thread, and a bound on memory
        return fetches.in_flight < 2 * workers and len(ahead) < MAX_DETAILS_AHEAD

    try:
        for key, header in wanted:
            ahead.append((key, fetches.submit(key, header)))
            while ahead and (ahead[0][1].done() or not room()):
                if ahead[0][1].done():
                    yield take()
                else:
                    fetches.wait_until(lambda: ahead[0][1].done() or room())
        while ahead:
            yield take()
    finally:
        fetches.close()


# Details fetched ahead of the one the run waits for, at most: while a failed one waits out its identical-GET
# minute the others go on (about 50 in that minute at Precoro's pace), and memory stays bounded.
MAX_DETAILS_AHEAD = 500


class _DetailFetches:
    """Detail GETs on a few threads, where a failed one is not retried on its thread: it is sent again once its
    identical-GET minute has passed (Precoro forbids repeating a GET sooner, failed or not), and the threads fetch
    other documents meanwhile. A run with many failures so loses about one minute, not a minute per failure (a
    500 on every 7th request made a 2-minute sync take 16)."""

    def __init__(self, client: PrecoroReads, staging: DetailStaging, entity: Entity, staged: set[str], workers: int) -> None:
        self._client, self._staging, self._entity, self._staged = client, staging, entity, staged
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"precoro-{entity.name}")
        self._changed = threading.Condition()
        self._in_flight = 0  # fetches queued or running on the threads (not those waiting to be retried)
        self._timers: set[threading.Timer] = set()
        self._closed = False

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def submit(self, key: str, header: dict) -> Future:
        """The document's (detail, text, from staging), once fetched (retried as often as the client would)."""
        result: Future = Future()
        self._start(result, key, header, 1)
        return result

    def wait_until(self, ready: Callable[[], bool]) -> None:
        with self._changed:
            self._changed.wait_for(ready, timeout=1.0)

    def close(self) -> None:
        """Stop: retries not yet due are dropped, fetches not started are cancelled, those running finish."""
        with self._changed:
            self._closed = True
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _start(self, result: Future, key: str, header: dict, attempt: int) -> None:
        with self._changed:
            if self._closed:
                return  # nobody waits for it any more
            self._in_flight += 1
            self._pool.submit(self._fetch, result, key, header, attempt)

    def _fetch(self, result: Future, key: str, header: dict, attempt: int) -> None:
        try:
            try:
                outcome = _detail(self._client, self._staging, self._entity, key, header, self._staged,
                                  retry_failures=False)
            except BaseException as error:  # noqa: BLE001 - handed to the run through `result`
                if attempt < getattr(self._client, "max_attempts", 1) and retry_later("GET", error):
                    self._retry_later(result, key, header, attempt, error)
                else:
                    result.set_exception(error)
            else:
                result.set_result(outcome)
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    def _retry_later(self, result: Future, key: str, header: dict, attempt: int, error: BaseException) -> None:
        delay = max(0.0, self._client.retry_at(detail_path(self._entity.path, key)) - time.time())
        logger.warning("Precoro request failed (attempt %d), retrying in %.1f s while other documents go on: %s",
                       attempt, delay, error)

        def again() -> None:
            with self._changed:
                self._timers.discard(timer)
            self._start(result, key, header, attempt + 1)

        timer = threading.Timer(delay, again)
        timer.daemon = True
        with self._changed:
            if self._closed:
                return
            self._timers.add(timer)
        timer.start()


def _details_from_processes(processes: detail_workers.DetailWorkers, client: PrecoroReads, staging: DetailStaging,
                            entity: Entity, wanted: list[tuple[str, dict]], summary: SyncSummary,
                            staged: set[str], days: dict[str, date] | None) -> Generator[Detail, None, None]:
    """`details_in_order` from worker processes: chunks of documents, handed out in order, taken in order."""
    documents = [(key, detail_workers.iso(update_date(header)), key in staged) for key, header in wanted]
    size = detail_workers.CHUNK
    ahead: deque[Future] = deque()
    try:
        for first in range(0, len(documents), size):
            part = documents[first:first + size]
            ahead.append(processes.submit(detail_workers.Chunk(
                entity.path, entity.name, part, None if days is None else {key: days[key] for key, *_ in part})))
            if len(ahead) >= processes.ahead:
                yield from _fetched(client, staging, entity, summary, ahead.popleft())
        while ahead:
            yield from _fetched(client, staging, entity, summary, ahead.popleft())
    finally:
        processes.release(ahead)


def _fetched(client: PrecoroReads, staging: DetailStaging, entity: Entity, summary: SyncSummary,
             future: Future) -> Generator[Detail, None, None]:
    """A worker's chunk as (key, detail, raw text), parsed here unless the worker flattened it; the chunk's error
    (if any) after its details."""
    fetched: detail_workers.Fetched = future.result()
    client.count_spent_elsewhere(fetched.spent)  # the workers' requests are this run's too
    for key, text, from_staging in fetched.details:
        summary.count_detail(from_staging)
        if text is None or isinstance(text, Flattened):  # None: 404, deleted between the listing and the request
            yield key, text, None
            continue
        try:
            detail, raw = detail_from_text(entity.path, key, text)
        except PrecoroServerError as error:
            # A worker hands back an answer it could not parse as it came: it is asked for again here, as the
            # client retries any failed request.
            logger.warning("%s; asking again", error)
            detail, raw = client.get_detail_with_text(entity.path, key)
            staging.put(entity.name, key, detail, raw)
            summary.details_fetched += 1
        yield key, detail, raw
    if fetched.error is not None:
        raise fetched.error


def _detail(client: PrecoroReads, staging: DetailStaging, entity: Entity, key: str, header: dict,
            staged: set[str], retry_failures: bool = True) -> tuple[dict | None, str | None, bool]:
    """The document's detail (None: Precoro answers 404, the document is gone), its JSON text as received, and
    whether it came from staging (a failed run already paid for it). `staged`: the keys staging held when the
    run began; `retry_failures`: see PrecoroClient.request."""
    if key in staged:
        found = staging.get(entity.name, key, update_date(header))
        if found is not None:
            return found[0], found[1], True
    try:
        detail, text = client.get_detail_with_text(entity.path, key, retry_failures=retry_failures)
    except PrecoroNotFound:
        return None, None, False  # deleted between the listing and now
    staging.put(entity.name, key, detail, text)
    return detail, text, False
