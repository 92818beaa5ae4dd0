"""PrecoroClient: the one place that sends HTTP requests to Precoro.

Every request goes through the shared `QuotaGuard` first (see quota.py), so no process can
overspend the token's budget. On top of that the client knows Precoro's conventions:
X-AUTH-TOKEN + email headers, list envelopes and pagination, typed filters, form-encoded
writes with bracket keys (encoding.py), and its answers and error bodies (responses.py). Money stays exact: JSON numbers with a
fraction are parsed as Decimal.

The token is a secret: it is only ever put in the request header. Error messages are built
from our own text plus response bodies with the token redacted, and httpx's exceptions
(whose request objects carry the headers) are never attached to the errors we raise.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import threading
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote, urlencode

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential

from precoro_assets.api.encoding import Params, build_query, encode_form, normalized_url
from precoro_assets.api.errors import (
    PrecoroAuthError,
    PrecoroConnectionError,
    PrecoroError,
    PrecoroNotFound,
    PrecoroPaginationError,
    PrecoroRateLimited,
    PrecoroServerError,
    PrecoroUnreachable,
    PrecoroValidationError,
)
from precoro_assets.api.quota import CredentialsRejected, QuotaGuard, QuotaLimits, QuotaUsage
from precoro_assets.api.responses import (
    as_int,
    detail_from_body,
    detail_path,
    error_text,
    expect_list,
    has_next_page,
    pagination_of,
    parse_json,
    parse_rate_limit,
)

logger = logging.getLogger(__name__)


def _user_agent() -> str:
    try:
        version = importlib.metadata.version("precoro-assets")
    except importlib.metadata.PackageNotFoundError:
        version = "dev"
    return f"precoro-assets/{version} (httpx {httpx.__version__})"


USER_AGENT = _user_agent()

# What a request returns: the parsed JSON body, the body and its text as received, or the text alone.
Answer = Literal["json", "json+text", "text"]

REGIONS = {"eu": "https://api.precoro.com", "us": "https://api.precoro.us"}
PAGE_SIZES = (10, 20, 50, 100, 200)
UNREACHABLE_ATTEMPTS = 3  # tries of a request that can't connect (see PrecoroClient._stop)
# After those, the process's other requests to that base URL fail at once for this long.
UNREACHABLE_MEMORY_SECONDS = 30.0
_unreachable: dict[str, float] = {}  # base URL -> when this process last gave up connecting to it
EXTERNAL_ID_BATCH = 200  # Precoro answers 400 to more than 200 `external_id[]` values
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})



def _is_retryable(method: str, error: BaseException) -> bool:
    """429s always (nothing was done); 5xx/timeouts/resets only when repeating is harmless.

    A POST that timed out or got a 5xx may still have been applied (a payment created): it is
    not repeated blindly; the write-back job checks and adopts instead. A POST that never
    connected is safe to repeat.
    """
    if isinstance(error, PrecoroRateLimited):
        return True
    if isinstance(error, PrecoroConnectionError):
        return method in IDEMPOTENT_METHODS or error.never_sent
    if isinstance(error, PrecoroServerError):
        return method in IDEMPOTENT_METHODS
    return False


def retry_later(method: str, error: BaseException) -> bool:
    """A failure worth retrying that the caller may retry later, with other requests meanwhile (see
    `PrecoroClient.request(retry_failures=False)`): Precoro failed (5xx) or the answer was lost. Not a 429 (the
    budget waits for its block anyway) nor a Precoro we can't reach (each further request would fail too)."""
    return (_is_retryable(method, error) and not isinstance(error, PrecoroRateLimited | PrecoroUnreachable)
            and not (isinstance(error, PrecoroConnectionError) and error.never_sent))


# -- the client --------------------------------------------------------------------------------


class PrecoroClient:
    """A synchronous Precoro API client whose every request is paced by the shared quota.

    Use as a context manager (or call `close()`):

        with PrecoroClient(token, email, state_dir="var/quota") as client:
            for row in client.iter_rows("/invoices", key="idn", created_from=day, created_to=day):
                ...
    """

    def __init__(
        self,
        token: str,
        email: str,
        *,
        base_url: str | None = None,
        region: str = "eu",
        timeout_seconds: float = 30.0,
        state_dir: str | os.PathLike[str] | None = None,
        database_url: str | None = None,
        shared_budget: str | None = None,
        limits: QuotaLimits | None = None,
        max_wait_seconds: float = 600.0,
        quota: QuotaGuard | None = None,
        max_attempts: int = 5,
        backoff_seconds: float = 2.0,
        max_rewalks: int = 3,
        concurrent_requests: int = 4,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not token or not email:
            raise PrecoroError("No Precoro credentials: set PRECORO_API_TOKEN (the API token) and "
                               "PRECORO_EMAIL (the email of the token's user).")
        if base_url is None:
            if region not in REGIONS:
                raise ValueError(f"unknown Precoro region {region!r}; use one of {sorted(REGIONS)} or base_url")
            base_url = REGIONS[region]
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._email = email
        if quota is None:
            if state_dir is None:
                raise ValueError("state_dir is required (where the shared request budget is kept)")
            quota = QuotaGuard(state_dir, token, limits, max_wait_seconds=max_wait_seconds,
                               database_url=database_url, shared_budget=shared_budget)
        self.quota = quota
        self.max_attempts = max_attempts
        self.max_rewalks = max_rewalks
        self._concurrent_requests = max(1, concurrent_requests)
        self._send_turn = threading.Lock()
        scale = self.quota.limits.time_scale
        self._backoff = wait_exponential(multiplier=backoff_seconds / scale, max=60.0 / scale)
        self._worker_settings = None if transport is not None else {
            "token": token, "email": email, "base_url": self.base_url, "timeout_seconds": timeout_seconds,
            "state_dir": str(self.quota.path.parent), "database_url": self.quota.database_url,
            "limits": self.quota.limits,
            "max_wait_seconds": self.quota.max_wait_seconds, "max_attempts": max_attempts,
            "backoff_seconds": backoff_seconds, "max_rewalks": max_rewalks, "concurrent_requests": 1}
        # Requests go straight to an httpx transport (a pool of kept-alive connections), not through
        # httpx.Client: Precoro's API needs none of the client's cookies, redirects or auth flows, and skipping
        # them halves the CPU each request costs (about 0.4 instead of 0.6 ms), which bounds a sync's speed
        # whenever the rate limits don't.
        self._transport = transport or httpx.HTTPTransport()
        self._headers = httpx.Headers({"X-AUTH-TOKEN": token, "email": email, "Accept": "application/json",
                                       "Accept-Encoding": "gzip, deflate", "User-Agent": USER_AGENT})
        self._timeout = httpx.Timeout(timeout_seconds).as_dict()

    def __repr__(self) -> str:
        return f"PrecoroClient(base_url={self.base_url!r})"

    @property
    def concurrent_requests(self) -> int:
        """How many requests callers may keep in flight from threads (the client is thread-safe and the budget
        paces them together); the document sync uses it for detail GETs.

        Threads add a few milliseconds of jitter between a request's slot and its arrival (the GIL switches
        every 5 ms, on our side and the server's). At Precoro's pace the 250 ms margin absorbs that, and with
        no real limit (a sped-up simulator whose second lasts microseconds) there is nothing to break; in
        between (a simulator sped up 100-10,000x, margins of a few ms) requests go one at a time."""
        limits = self.quota.limits
        margin = limits.spacing - 1.0 / limits.per_second / limits.time_scale
        if margin >= 0.05 or limits.unpaced:
            return self._concurrent_requests
        return 1

    def reserve_gets(self, paths: Sequence[str]) -> list[str]:
        """Take the budget's slots for these GETs (no query) together where the budget allows it (see
        QuotaGuard.reserve); returns the paths reserved. Each is then sent by `request` as usual."""
        try:
            return self.quota.reserve("GET", [normalized_url(path) for path in paths], email=self._email)
        except CredentialsRejected:
            return []  # each request says so when it is sent

    def release_gets(self, paths: Sequence[str]) -> None:
        """Forget the slots `reserve_gets` took for requests that were not sent."""
        self.quota.release("GET", [normalized_url(path) for path in paths])

    def count_spent_elsewhere(self, requests: int) -> None:
        """Count requests that clients built from `worker_settings` sent on this client's behalf."""
        self.quota.spent += requests

    def worker_settings(self) -> dict[str, Any] | None:
        """Keyword arguments for an equal client in another process (same budget, same Precoro), or None when
        this one can't be rebuilt elsewhere (a custom transport). They hold the token: never log them."""
        return None if self._worker_settings is None else dict(self._worker_settings)

    def __enter__(self) -> PrecoroClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()
        self.quota.close()

    # -- accounting ----------------------------------------------------------------------

    @property
    def spent(self) -> int:
        """Requests this client sent (each retry and each 429 included)."""
        return self.quota.spent

    def usage(self) -> QuotaUsage:
        """Spent by this client, and what is left in each window for every process."""
        return self.quota.usage()

    def seconds_for(self, requests: int) -> float:
        """About how long `requests` more requests would take at the budget's limits (see QuotaGuard.seconds_for)."""
        return self.quota.seconds_for(requests)

    # -- sending -------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def request(self, method: str, path: str, *, params: Sequence[tuple[str, str]] = (),
                form: Mapping[str, Any] | None = None, with_text: bool = False, text_only: bool = False,
                retry_failures: bool = True) -> Any:
        """Send one request (with retries); return the parsed JSON body (None when empty).

        With `with_text`, return (body, the body's text exactly as received); with `text_only`, just the text
        (for a caller that parses it elsewhere). Without `retry_failures`, a failure the caller may retry (see
        `retry_later`) is raised at once instead of retried here: a GET retried must wait out its identical-GET
        minute, and a caller with other requests to send sends them meanwhile (429s are still retried here)."""
        method = method.upper()
        path = "/" + path.lstrip("/")
        body = urlencode(encode_form(form)).encode() if form is not None else None
        retrying = Retrying(
            stop=self._stop,
            retry=retry_if_exception(lambda error: _is_retryable(method, error) and (
                retry_failures or not retry_later(method, error))),
            wait=self._wait,
            before_sleep=self._log_retry,
            reraise=True,
        )
        answer: Answer = "text" if text_only else "json+text" if with_text else "json"
        failed_at = _unreachable.get(self.base_url)
        if failed_at is not None and time.monotonic() - failed_at < UNREACHABLE_MEMORY_SECONDS:
            # every asset of a run would otherwise spend its own few seconds finding out the same thing
            raise PrecoroUnreachable(self.base_url, f"no connection {time.monotonic() - failed_at:.0f} s ago; "
                                     "nothing was sent", method=method, path=path)
        attempts = 0

        def attempt() -> Any:
            nonlocal attempts
            attempts += 1
            return self._send_once(method, path, list(params), body, answer, again=attempts > 1)

        try:
            return retrying(attempt)
        except PrecoroUnreachable:
            _unreachable[self.base_url] = time.monotonic()
            raise

    def _stop(self, state: RetryCallState) -> bool:
        # A refused connection or an unknown host is most often a wrong PRECORO_BASE_URL: a few quick tries ride
        # out a blip (about 6 s at Precoro's pace); minutes of retries would only hide the cause.
        error = state.outcome.exception() if state.outcome else None
        limit = UNREACHABLE_ATTEMPTS if isinstance(error, PrecoroUnreachable) else self.max_attempts
        return state.attempt_number >= limit

    def _wait(self, state: RetryCallState) -> float:
        # After a 429 the guard itself waits for the shared block; otherwise back off.
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, PrecoroRateLimited):
            return 0.0
        return self._backoff(state)

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        logger.warning("Precoro request failed (attempt %d), retrying: %s", state.attempt_number, error)

    def retry_at(self, path: str, params: Sequence[tuple[str, str]] = ()) -> float:
        """When a GET of `path` may be sent again (epoch seconds; a moment past if it may now): Precoro forbids
        an identical GET within 60 s of the last one, failed or not."""
        return self.quota.identical_get_free_at(normalized_url("/" + path.lstrip("/"), params))

    def _send_once(self, method: str, path: str, params: Params, body: bytes | None, answer: Answer,
                   again: bool = False) -> Any:
        url_key = normalized_url(path, params)
        if again and method == "GET" and not self.quota.limits.unpaced:
            # A GET retried waits out its identical-GET minute before it takes the send turn: the process's other
            # threads send other requests meanwhile. (A first attempt finds that wait rarely: the budget holds it.)
            self.quota.wait_for_identical_get(url_key)
        # The send turn: a thread holds it from taking its slot in the budget until its request is on the wire,
        # so threads of one process leave in the order and at the spacing the budget gave them (a thread
        # waiting for the GIL between the two could otherwise be overtaken by the next one).
        turn = _SendTurn(self._send_turn)
        try:
            try:
                ticket = self.quota.acquire(method, url_key, email=self._email,
                                            will_mark_sent=not self.quota.limits.unpaced)
            except CredentialsRejected as rejected:
                raise PrecoroAuthError(method=method, path=path, detail=(
                    f"these credentials were rejected at {rejected.at:%H:%M:%S} UTC, so nothing was sent")) from None
            paced = not self.quota.limits.unpaced
            marked: list[bool] = []  # whether the ledger knows the request went out (see QuotaGuard.mark_sent)

            def trace(event: str, info: Mapping[str, Any]) -> None:
                # httpcore reports when the request's headers are written (after connect/TLS): from then on the
                # request is Precoro's, and the next one, from any process, is spaced from this moment.
                if event.endswith("send_request_headers.complete"):
                    if paced:
                        self.quota.mark_sent(ticket)
                        marked.append(True)
                    turn.release()

            headers = self._headers
            if body is not None:
                headers = headers.copy()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            request = httpx.Request(method, httpx.URL(self.base_url + path, params=params), headers=headers,
                                    content=body, extensions={"timeout": self._timeout, "trace": trace})
            failure: PrecoroConnectionError | None = None
            try:
                response = self._transport.handle_request(request)
                try:
                    response.read()
                finally:
                    response.close()
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                failure = PrecoroUnreachable(self.base_url, self._redact(f"{type(error).__name__}: {error}"),
                                             method=method, path=path)
            except httpx.TransportError as error:
                # Raised outside this block so the httpx error (its request carries the token
                # header) is not chained onto ours.
                failure = PrecoroConnectionError(
                    self._redact(f"no answer from Precoro for {method} {path}: {type(error).__name__}: {error}"),
                    method=method, path=path)
        finally:
            turn.release()
        if failure is not None:
            if failure.never_sent:
                self.quota.never_sent(ticket)
            elif paced and not marked:
                self.quota.mark_sent(ticket)  # whatever left, left by now: later requests space from here
            raise failure
        if response.status_code == 429:
            self.quota.mark_refused(ticket)
        return self._handle(method, path, response, answer)

    def _handle(self, method: str, path: str, response: httpx.Response, answer: Answer = "json") -> Any:
        status = response.status_code
        if 200 <= status < 300:
            try:
                text = response.content.decode("utf-8-sig")
                if answer == "text":
                    return text
                parsed = parse_json(text)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise PrecoroServerError(
                    f"Precoro sent unreadable JSON for {method} {path} "
                    f"(HTTP {status}, {len(response.content)} bytes)",
                    status=status, method=method, path=path,
                ) from None
            return (parsed, text) if answer == "json+text" else parsed
        text = self._redact(response.text)  # error bodies end up in messages: never with the token
        try:
            body = parse_json(text)
        except json.JSONDecodeError:
            body = None
        detail = error_text(body, text)
        if status == 401:
            self.quota.record_rejected_credentials(self._email)
            raise PrecoroAuthError(method=method, path=path, detail=detail)
        if status == 404:
            raise PrecoroNotFound(method=method, path=path)
        if status == 400:
            raise PrecoroValidationError(PrecoroValidationError.parse_fields(body), method=method,
                                         path=path, detail=detail)
        if status == 429:
            limits = self.quota.limits
            limit_type, retry_at = parse_rate_limit(body, datetime.now(UTC), limits,
                                                    response.headers.get("Retry-After"))
            self.quota.record_rate_limited(retry_at, limit_type)
            raise PrecoroRateLimited(limit_type=limit_type, retry_at=retry_at, method=method, path=path)
        if status >= 500:
            raise PrecoroServerError(f"Precoro failed on {method} {path} (HTTP {status}): {detail}",
                                     status=status, method=method, path=path)
        raise PrecoroError(f"Precoro refused {method} {path} (HTTP {status}): {detail}",
                           status=status, method=method, path=path)

    # -- reading -------------------------------------------------------------------------

    def get(self, path: str, *, params: Sequence[tuple[str, str]] = (), **filters: Any) -> Any:
        """GET with typed filters (see `build_query`); returns the parsed body."""
        return self.request("GET", path, params=list(params) + build_query(**filters))

    def get_detail(self, resource: str, key: str | int) -> dict[str, Any]:
        """`GET /{resource}/{id|idn}`: the bare object, with line items and nested collections."""
        return self.get_detail_with_text(resource, key)[0]

    def get_detail_with_text(self, resource: str, key: str | int,
                             retry_failures: bool = True) -> tuple[dict[str, Any], str | None]:
        """The detail (see `get_detail`) and its JSON text exactly as Precoro sent it, so callers can keep the
        original without serializing it again; None for the text when the object came wrapped in `data`.
        `retry_failures`: see `request`."""
        body, text = self.request("GET", detail_path(resource, key), with_text=True, retry_failures=retry_failures)
        return detail_from_body(resource, key, body, text)

    def iter_rows(self, path: str, *, key: str = "id", per_page: int = 200,
                  params: Sequence[tuple[str, str]] = (), also: Sequence[Sequence[tuple[str, str]]] = (),
                  **filters: Any) -> Iterator[dict[str, Any]]:
        """Every row of a list, each exactly once (see `iter_pages`)."""
        for rows in self.iter_pages(path, key=key, per_page=per_page, params=params, also=also, **filters):
            yield from rows

    def iter_pages(self, path: str, *, key: str = "id", per_page: int = 200,
                   params: Sequence[tuple[str, str]] = (), also: Sequence[Sequence[tuple[str, str]]] = (),
                   **filters: Any) -> Iterator[list[dict[str, Any]]]:
        """Walk a list page by page, yielding for each page the rows not yielded before.

        Rows are de-duplicated by `key` ("id" or "idn"). Rows can shift while we walk (records
        created, deleted or leaving the filter): if the reported total changed during a walk,
        or we saw fewer distinct rows than the total, we walk the list again and yield what we
        missed. Only the set of keys is kept in memory. Rows deleted during a walk may already
        have been yielded; every row present throughout is yielded exactly once.
        More than 200 `external_id` values are split into batches of 200.
        `also` lists the same list again with each of these extra parameters (e.g. credit notes, which Precoro's
        own connector lists with `logicType[]=1&logicType[]=5`), de-duplicated with the rest.
        """
        if per_page not in PAGE_SIZES:
            raise ValueError(f"per_page must be one of {PAGE_SIZES}")
        external_ids = filters.pop("external_id", None)
        if isinstance(external_ids, str):
            external_ids = [external_ids]
        base = list(params) + build_query(**filters)
        if external_ids is None:
            batches = [base]
        else:
            ids = list(external_ids)
            batches = [base + build_query(external_id=ids[i:i + EXTERNAL_ID_BATCH])
                       for i in range(0, len(ids), EXTERNAL_ID_BATCH)]
        batches += [batch + list(extra) for extra in also for batch in batches]
        seen: set[str] = set()
        moving: PrecoroPaginationError | None = None
        for batch in batches:
            try:
                yield from self._walk_until_stable(path, batch, key, per_page, seen)
            except PrecoroPaginationError as error:
                # the other lists are walked all the same (a day's credit notes are not lost because its plain
                # list kept moving); the caller still learns that a list never held still
                moving = moving or error
        if moving is not None:
            raise moving

    def _walk_until_stable(self, path: str, base: Params, key: str, per_page: int,
                           seen: set[str]) -> Iterator[list[dict[str, Any]]]:
        for walk in range(self.max_rewalks + 1):
            stable = yield from self._walk(path, base, key, per_page, seen)
            if stable:
                return
            # Re-read the whole list with the same page size: switching to a smaller size would
            # cost more requests (the scarce resource); the same URLs only cost time, since the
            # guard holds each page until its identical-GET window has passed.
            logger.warning("Rows shifted while paginating %s (walk %d); reading the list again", path, walk + 1)
        raise PrecoroPaginationError(
            f"rows of {path} kept shifting during {self.max_rewalks + 1} walks; refusing to return a "
            "list that may be incomplete", path=path,
        )

    def _walk(self, path: str, base: Params, key: str, per_page: int,
              seen: set[str]) -> Generator[list[dict[str, Any]], None, bool]:
        """One pass over all pages. Returns (via StopIteration) whether the list held still."""
        first_total: int | None = None
        last_total: int | None = None
        total_changed = False
        walk_keys: set[str] = set()
        page = 1
        while True:
            body = self.request("GET", path, params=base + [("page", str(page)), ("per_page", str(per_page))])
            rows = expect_list(body)
            pagination = pagination_of(body)
            total = as_int(pagination.get("total"))
            if total is not None:
                if first_total is None:
                    first_total = total
                elif total != first_total:
                    total_changed = True
                last_total = total
            fresh = []
            for row in rows:
                if isinstance(row, Mapping) and row.get(key) not in (None, ""):
                    row_key = str(row[key])
                else:
                    # A row without its key is still passed on (the caller keeps it as rejected, nothing is
                    # lost); it is de-duplicated by its whole content instead.
                    logger.warning("a row of %s has no %r; passing it on for the caller to reject", path, key)
                    row_key = "no-key:" + json.dumps(row, sort_keys=True, default=str)
                walk_keys.add(row_key)
                if row_key not in seen:
                    seen.add(row_key)
                    fresh.append(row)
            logger.info("GET %s page %d: %d rows (%d new), total %s", path, page, len(rows), len(fresh), total)
            if fresh:
                yield fresh
            if not rows or not has_next_page(pagination, page, len(rows), per_page):
                break
            page += 1
        if last_total is None:
            return True  # no total to check against: trust the pagination flags
        return not total_changed and len(walk_keys) >= last_total

    # -- writing -------------------------------------------------------------------------

    def post(self, path: str, data: Mapping[str, Any]) -> Any:
        return self.request("POST", path, form=data)

    def put(self, path: str, data: Mapping[str, Any]) -> Any:
        return self.request("PUT", path, form=data)

    def patch(self, path: str, data: Mapping[str, Any]) -> Any:
        return self.request("PATCH", path, form=data)

    def create_payment(self, invoice_id: int, sum_paid: Decimal, pay_date: date | datetime,
                       logic_type: int = 0) -> Any:
        """`POST /payments` for an invoice (by its numeric id). Not retried once it may have landed."""
        if not isinstance(sum_paid, Decimal):
            raise TypeError("sum_paid must be a Decimal")
        if not isinstance(pay_date, datetime):
            pay_date = datetime(pay_date.year, pay_date.month, pay_date.day, tzinfo=UTC)
        return self.post("/payments", {
            "invoice": {"id": invoice_id},
            "sumPaid": sum_paid,
            "logicType": logic_type,
            "payDate": pay_date,
        })

    def patch_external(self, resource: str, key: str | int, external_id: str | None = None,
                       external_integration_log: str | None = None) -> Any:
        """Set `externalId` and/or `externalIntegrationLog` ("" clears the "Not synced" card)."""
        data: dict[str, Any] = {}
        if external_id is not None:
            data["externalId"] = external_id
        if external_integration_log is not None:
            data["externalIntegrationLog"] = external_integration_log
        if not data:
            raise ValueError("give external_id and/or external_integration_log")
        return self.patch(f"/{resource.strip('/')}/{quote(str(key), safe='')}", data)


class _SendTurn:
    """One request's hold on the client's send turn, released once (when its headers are out, or on failure)."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._held = lock.acquire()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()
