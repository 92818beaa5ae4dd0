"""PrecoroClient: the one place that sends HTTP requests to Precoro.

Every request goes through the shared `QuotaGuard` first (see quota.py), so no process can
overspend the token's budget. On top of that the client knows Precoro's conventions:
X-AUTH-TOKEN + email headers, list envelopes and pagination, typed filters, form-encoded
writes with bracket keys, and its error bodies. Money stays exact: JSON numbers with a
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
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote, urlencode

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential

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
Params = list[tuple[str, str]]

# Friendly filter names -> Precoro's query keys (other names are passed through verbatim).
FILTER_KEYS = {
    "created_from": "createDate[left_date]",
    "created_to": "createDate[right_date]",
    "approved_from": "approvalDate[left_date]",
    "approved_to": "approvalDate[right_date]",
    "modified_since": "modifiedSince",
    "external_id": "external_id",
}


# -- encoding helpers -----------------------------------------------------------------------


def _as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken to be UTC already; aware ones are converted."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_query_value(value: Any) -> str:
    """One query value as Precoro reads it: dates dd.mm.yyyy, datetimes UTC YYYY-MM-DDTHH:MM:SS."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _as_utc(value).strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, date):
        return value.strftime("%d.%m.%Y")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def format_form_value(value: Any) -> str:
    """One form value: ISO dates/datetimes, exact decimals; floats refused (money is never float)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        raise TypeError(f"refusing to send float {value!r}: pass a Decimal (or a string) for amounts")
    if isinstance(value, datetime):
        return _as_utc(value).isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _flatten(prefix: str, value: Any, fmt: Any, out: Params) -> None:
    """Nested dicts become `a[b]`; lists of scalars `a[]` repeated; lists of dicts `a[0][b]`."""
    if isinstance(value, Mapping):
        for name, item in value.items():
            _flatten(f"{prefix}[{name}]" if prefix else str(name), item, fmt, out)
    elif isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
        if any(isinstance(item, Mapping | list | tuple) for item in items):
            for index, item in enumerate(items):
                _flatten(f"{prefix}[{index}]", item, fmt, out)
        else:
            out.extend((f"{prefix}[]", fmt(item)) for item in items)
    else:
        out.append((prefix, fmt(value)))


def encode_form(data: Mapping[str, Any]) -> Params:
    """Precoro's form encoding: `{"invoice": {"id": 9}}` -> `[("invoice[id]", "9")]`."""
    out: Params = []
    _flatten("", data, format_form_value, out)
    return out


def build_query(**filters: Any) -> Params:
    """Typed filters -> query pairs; None values are skipped.

    `created_from`/`created_to`/`approved_from`/`approved_to` take dates (dd.mm.yyyy),
    `modified_since` a datetime (sent as UTC), lists repeat as `key[]`; any other name is used
    verbatim (`status=[2, 4]`, `logicType=[1, 5]`, `enable=True`, `attachedFile=1`).
    """
    out: Params = []
    for name, value in filters.items():
        if value is None:
            continue
        key = FILTER_KEYS.get(name, name)
        if key.endswith("_date]"):
            if isinstance(value, datetime):
                value = _as_utc(value).date()
            if not isinstance(value, date):
                raise TypeError(f"{name} must be a date, got {value!r}")
        elif key == "modifiedSince":
            if not isinstance(value, datetime):
                if not isinstance(value, date):
                    raise TypeError(f"{name} must be a datetime, got {value!r}")
                value = datetime(value.year, value.month, value.day, tzinfo=UTC)
        elif key == "external_id" and isinstance(value, str):
            value = [value]
        _flatten(key, value, format_query_value, out)
    return out


def normalized_url(path: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """path + sorted query: the identity of a GET for Precoro's identical-GET rule."""
    query = urlencode(sorted((str(k), str(v)) for k, v in params))
    return f"{path}?{query}" if query else path


def expect_list(value: Any) -> list[Any]:
    """A collection from Precoro as a list: accepts `{"data": [...]}` (nested envelopes too), a bare list, or
    None; anything else is a TypeError (a response not shaped as expected must not pass for an empty page).
    Lenient reading of a stored record's fields: warehouse.rows.list_or_empty."""
    while isinstance(value, Mapping) and "data" in value:
        value = value["data"]
    if value is None:
        return []
    if isinstance(value, list):
        return value
    raise TypeError(f"expected a list or {{'data': [...]}}, got {type(value).__name__}")


def parse_rate_limit(body: Any, now: datetime, limits: QuotaLimits | None = None,
                     retry_after_header: str | None = None) -> tuple[str, datetime]:
    """Read a 429: (RateLimit-Type, when to retry). Precoro puts both in the JSON body.

    `RateLimit-Retry-After` is "YYYY-MM-DD HH:MM:SS UTC", whole seconds: we add one second so a
    truncated time can't send us back a moment too early (a time shown to the millisecond,
    "... HH:MM:SS.mmm UTC", gets one millisecond). Without it we fall back to a
    `Retry-After` header, then to the length of the window the type names.
    """
    limits = limits or QuotaLimits()
    body = body if isinstance(body, Mapping) else {}
    limit_type = str(body.get("RateLimit-Type") or body.get("error") or "unknown limiter")
    text = body.get("RateLimit-Retry-After")
    if isinstance(text, str) and text.strip():
        cleaned = text.strip().removesuffix("UTC").strip().replace("T", " ")
        try:
            moment = datetime.fromisoformat(cleaned)
        except ValueError:
            moment = None
        if moment is not None:
            fraction = cleaned.rpartition(".")[2] if "." in cleaned else ""
            unit = timedelta(seconds=10 ** -len(fraction)) if fraction.isdigit() else timedelta(seconds=1)
            return limit_type, _as_utc(moment) + unit
    if retry_after_header:
        try:
            return limit_type, now + timedelta(seconds=float(retry_after_header))
        except ValueError:
            pass
    return limit_type, now + timedelta(seconds=limits.window_after_429(limit_type))


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
            quota = QuotaGuard(state_dir, token, limits, max_wait_seconds=max_wait_seconds)
        self.quota = quota
        self.max_attempts = max_attempts
        self.max_rewalks = max_rewalks
        self._concurrent_requests = max(1, concurrent_requests)
        self._send_turn = threading.Lock()
        scale = self.quota.limits.time_scale
        self._backoff = wait_exponential(multiplier=backoff_seconds / scale, max=60.0 / scale)
        self._worker_settings = None if transport is not None else {
            "token": token, "email": email, "base_url": self.base_url, "timeout_seconds": timeout_seconds,
            "state_dir": str(self.quota.path.parent), "limits": self.quota.limits,
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
        detail = _error_text(body, text)
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
            pagination = _pagination(body)
            total = _as_int(pagination.get("total"))
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
            if not rows or not _has_next_page(pagination, page, len(rows), per_page):
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


def detail_path(resource: str, key: str | int) -> str:
    return f"/{resource.strip('/')}/{quote(str(key), safe='')}"


def parse_json(text: str) -> Any:
    """A JSON body as Precoro sent it, numbers as Decimal (money stays exact); an empty body is None."""
    return json.loads(text, parse_float=Decimal) if text.strip() else None


def detail_from_text(resource: str, key: str | int, text: str) -> tuple[dict[str, Any], str | None]:
    """A detail GET's answer from its text (fetched elsewhere, e.g. by a worker process): see `detail_from_body`."""
    try:
        body = parse_json(text)
    except json.JSONDecodeError:
        raise PrecoroServerError(f"Precoro sent unreadable JSON for GET {detail_path(resource, key)}",
                                 method="GET", path=detail_path(resource, key)) from None
    return detail_from_body(resource, key, body, text)


def detail_from_body(resource: str, key: str | int, body: Any, text: str | None) -> tuple[dict[str, Any], str | None]:
    """A detail GET's answer as (the object, its text): a wrapped `{"data": {...}}` is tolerated (its text is
    then None: it is not the object's), anything but an object is Precoro's fault."""
    if isinstance(body, Mapping) and set(body) <= {"data", "meta"} and isinstance(body.get("data"), Mapping):
        body, text = body["data"], None
    if not isinstance(body, dict):
        raise PrecoroServerError(f"Precoro sent no object for {resource}/{key}", path=f"/{resource}/{key}")
    return body, text


class _SendTurn:
    """One request's hold on the client's send turn, released once (when its headers are out, or on failure)."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._held = lock.acquire()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()


def _pagination(body: Any) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        meta = body.get("meta")
        if isinstance(meta, Mapping) and isinstance(meta.get("pagination"), Mapping):
            return meta["pagination"]
    return {}


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _has_next_page(pagination: Mapping[str, Any], page: int, row_count: int, per_page: int) -> bool:
    """Newer answers say `has_next_page`; older ones only `current_page`/`total_pages`."""
    if "has_next_page" in pagination:
        return bool(pagination["has_next_page"])
    total_pages = _as_int(pagination.get("total_pages"))
    if total_pages is not None:
        current = _as_int(pagination.get("current_page")) or page
        return current < total_pages
    return row_count >= per_page  # no metadata at all: a full page may have a successor


def _error_text(body: Any, text: str) -> str:
    if isinstance(body, Mapping):
        for name in ("error", "message", "detail"):
            if isinstance(body.get(name), str):
                return body[name]
    return text[:300]
