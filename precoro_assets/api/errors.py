"""Typed errors for everything that talks to Precoro.

Callers catch what they can act on: a bad token (fix the environment), a missing record,
a validation error on a write, or a spent quota (stop cleanly, resume later). No message
built here ever contains the API token: the client redacts response bodies before they
reach an error, and transport errors are re-raised without the httpx exception attached.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


class PrecoroError(Exception):
    """Base class: any failure of a Precoro request (or of the local request budget)."""

    def __init__(self, message: str, *, status: int | None = None, method: str | None = None,
                 path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.method = method
        self.path = path

    def __reduce__(self) -> Any:
        # Exceptions are pickled across processes (multiprocessing, Dagster subprocesses);
        # rebuild from the message and attributes instead of the constructor's positional args.
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[PrecoroError], message: str, state: dict[str, Any]) -> PrecoroError:
    error = Exception.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class PrecoroAuthError(PrecoroError):
    """401: the token is wrong, expired or disabled, or the email is not the token's user."""

    def __init__(self, *, method: str | None = None, path: str | None = None, detail: str = "") -> None:
        where = f" (HTTP 401 on {method} {path})" if method else ""
        message = (
            f"Precoro rejected the credentials{where}"
            + (f": {detail.rstrip('.')}" if detail else "")
            + ". Check the environment variable PRECORO_API_TOKEN (the API token from Precoro's "
            "Settings > API) and PRECORO_EMAIL (the email of the user who owns that token), "
            "set them to valid values and run again."
        )
        super().__init__(message, status=401, method=method, path=path)


class PrecoroNotFound(PrecoroError):
    """404: no record with that id/idn (or the token's user may not see it)."""

    def __init__(self, *, method: str | None = None, path: str | None = None) -> None:
        super().__init__(
            f"Precoro has no record at {path} (HTTP 404 on {method}), or the token's user may not see it.",
            status=404, method=method, path=path,
        )


class PrecoroValidationError(PrecoroError):
    """400: Precoro refused the request; `.fields` maps each field to Precoro's message."""

    def __init__(self, fields: Mapping[str, str], *, method: str | None = None, path: str | None = None,
                 detail: str = "") -> None:
        self.fields = dict(fields)
        if self.fields:
            what = "; ".join(f"{name}: {text}" for name, text in self.fields.items())
        else:
            what = detail or "no details given"
        super().__init__(f"Precoro refused {method} {path} (HTTP 400): {what}",
                         status=400, method=method, path=path)

    @staticmethod
    def parse_fields(body: Any) -> dict[str, str]:
        """Read `{"errors": {"errors": {"<field>": "<message>"}}}`, tolerating flatter shapes."""
        errors = body.get("errors") if isinstance(body, Mapping) else None
        if isinstance(errors, Mapping) and isinstance(errors.get("errors"), Mapping):
            errors = errors["errors"]
        if isinstance(errors, Mapping):
            return {str(name): _as_text(text) for name, text in errors.items()}
        if isinstance(errors, list):
            return {str(index): _as_text(text) for index, text in enumerate(errors)}
        return {}


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(_as_text(item) for item in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{key}: {_as_text(item)}" for key, item in value.items())
    return str(value)


class PrecoroServerError(PrecoroError):
    """5xx (or an unreadable answer) that was still failing after the retries."""


class PrecoroConnectionError(PrecoroError):
    """No usable answer: connection refused or reset, or a timeout (after the retries).

    `never_sent` is True when the connection was never made, so the request cannot have landed.
    """

    def __init__(self, message: str, *, method: str | None = None, path: str | None = None,
                 never_sent: bool = False) -> None:
        super().__init__(message, method=method, path=path)
        self.never_sent = never_sent


class PrecoroUnreachable(PrecoroConnectionError):
    """No connection could be made (refused, unknown host, connect timeout): the request never reached Precoro,
    and most likely the base URL is wrong or the network is down. Said in one line that names the setting."""

    def __init__(self, base_url: str, reason: str, *, method: str | None = None, path: str | None = None) -> None:
        super().__init__(
            f"Cannot reach Precoro at {base_url} ({reason}). Check PRECORO_BASE_URL, or PRECORO_REGION (eu: "
            "https://api.precoro.com, us: https://api.precoro.us), and the network.",
            method=method, path=path, never_sent=True)
        self.base_url = base_url


class PrecoroPaginationError(PrecoroError):
    """Rows kept shifting between pages on every re-read: refusing to return an incomplete list."""


class PrecoroRateLimited(PrecoroError):
    """429: Precoro says a window is full. `type` is its `RateLimit-Type`, `retry_at` when it lifts."""

    def __init__(self, *, limit_type: str, retry_at: datetime, method: str | None = None,
                 path: str | None = None) -> None:
        self.limit_type = limit_type
        self.retry_at = retry_at
        super().__init__(
            f"Precoro answered 429 ({limit_type}) on {method} {path}; retry after {_utc_text(retry_at)}",
            status=429, method=method, path=path,
        )


class QuotaExhausted(PrecoroError):
    """The request budget is spent for longer than we are willing to wait: nothing was sent.

    `resume_at` is when the next request may go out; `window` names the window that is full
    ("day", "hour", ... or the 429 type that blocked us).
    """

    def __init__(self, resume_at: datetime, window: str) -> None:
        self.resume_at = resume_at
        self.window = window
        super().__init__(
            f"Precoro request quota exhausted ({window} window); no request was sent. "
            f"Work can resume at {_utc_text(resume_at)}."
        )


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
