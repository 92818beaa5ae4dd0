"""Precoro's webhooks, received: `precoro-assets webhooks --port N` serves them, each event is recorded on disk
before the 200, and the `precoro_webhook_events` sensor turns recorded events into runs (see defs/changes.py).

Precoro signs nothing (its documented body is `{"id", "type", "action", "idn"}`), so the receiver trusts
little: the URL carries a secret path segment (PRECORO_WEBHOOK_SECRET; one per company, when one receiver serves
several: the secret says whose event it is), bodies over a small limit or of any
other shape are refused with a 4xx and logged, and an event is only a hint: the run re-reads the record.

Starlette and uvicorn serve it: the ASGI pair dagster-webserver already installs.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..runtime import shared_state

logger = logging.getLogger("precoro_assets.ingest.webhook_inbox")

MAX_BODY_BYTES = 1024  # Precoro's event is about 50 bytes
KNOWN_TYPES = range(0, 12)  # 0 warehouse request ... 9 budget, 10 document and 11 item custom fields
ACTIONS = {0: "created", 1: "updated"}


@dataclass(frozen=True)
class WebhookEvent:
    seq: int
    received_at: datetime
    type: int
    action: int
    id: int
    idn: str | None


class BadEvent(ValueError):
    """A body that is not a Precoro webhook event."""


MAX_RECORD_ID = 2**63 - 1  # the inbox's INTEGER (SQLite) / BIGINT (PostgreSQL) column holds no more
MAX_IDN_CHARACTERS = 64  # Precoro's document numbers are a few digits


def parse_event(body: bytes) -> tuple[int, int, int, str | None]:
    """(type, action, id, idn) of a webhook body, or BadEvent saying what is wrong with it: whatever the body, the
    receiver answers 422 with the reason rather than failing with a 500."""
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadEvent("the body is not JSON") from None
    except RecursionError:  # e.g. a thousand `[`: the parser recurses once per level
        raise BadEvent("the body is JSON nested too deeply to be an event") from None
    if not isinstance(event, dict) or set(event) - {"id", "type", "action", "idn"}:
        raise BadEvent('the body is not an object of "id", "type", "action" and "idn"')
    kind, action, record_id, idn = (event.get(name) for name in ("type", "action", "id", "idn"))
    if not isinstance(kind, int) or isinstance(kind, bool) or kind not in KNOWN_TYPES:
        raise BadEvent(f"type {_short(kind)} is not one of Precoro's webhook types 0-11")
    if action not in ACTIONS or isinstance(action, bool):
        raise BadEvent(f"action {_short(action)} is neither 0 (created) nor 1 (updated)")
    if not isinstance(record_id, int) or isinstance(record_id, bool) or not 0 < record_id <= MAX_RECORD_ID:
        raise BadEvent(f"id {_short(record_id)} is not a record id (1 to {MAX_RECORD_ID})")
    if idn is not None and not (isinstance(idn, int | str) and not isinstance(idn, bool)
                                and 0 < len(str(idn).strip()) <= MAX_IDN_CHARACTERS and str(idn).isprintable()):
        raise BadEvent(f"idn {_short(idn)} is not a document number (up to {MAX_IDN_CHARACTERS} printable "
                       "characters)")
    return kind, action, record_id, None if idn is None else str(idn).strip()


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


class WebhookInbox:
    """Received events, in order, where every process can read them (the receiver writes, sensors read): a SQLite
    file in the state directory, or PostgreSQL with PRECORO_DATABASE_URL (receiver and daemon on other hosts)."""

    def __init__(self, path: Path, database_url: str | None = None):
        """A SQLite file at `path`, or PostgreSQL at `database_url` (PRECORO_DATABASE_URL, from the settings)."""
        self.path = Path(path)
        self.database_url = database_url
        with closing(self._connect()) as con:
            con.create("CREATE TABLE IF NOT EXISTS events (seq {serial_key}, received_at TEXT NOT NULL, "
                       "type INTEGER NOT NULL, action INTEGER NOT NULL, id INTEGER NOT NULL, idn TEXT)")

    def _connect(self) -> shared_state.StateConnection:
        # synchronous=FULL: recorded means on disk, and Precoro won't send it again
        return shared_state.connect(self.path, database_url=self.database_url, synchronous="FULL", timeout=30)

    def record(self, kind: int, action: int, record_id: int, idn: str | None) -> int:
        # one writer at a time: numbers are committed in order, so a reader past seq N never misses one below it
        with closing(self._connect()) as con, con.write_transaction():
            (seq,) = con.execute("INSERT INTO events (received_at, type, action, id, idn) VALUES (?, ?, ?, ?, ?) "
                                 "RETURNING seq", [datetime.now(UTC).isoformat(), kind, action, record_id, idn]
                                 ).fetchone()
            return int(seq)

    def count_after(self, seq: int) -> int:
        with closing(self._connect()) as con:
            return int(con.execute("SELECT COUNT(*) FROM events WHERE seq > ?", [seq]).fetchone()[0])

    def after(self, seq: int, limit: int = 10_000) -> list[WebhookEvent]:
        with closing(self._connect()) as con:
            rows = con.execute("SELECT seq, received_at, type, action, id, idn FROM events WHERE seq > ? "
                               "ORDER BY seq LIMIT ?", [seq, limit]).fetchall()
        return [WebhookEvent(s, datetime.fromisoformat(at), t, a, i, n) for s, at, t, a, i, n in rows]


def inbox_path(state_dir: Path | str) -> Path:
    return Path(state_dir) / "webhooks.sqlite"


@dataclass(frozen=True)
class Mailbox:
    """Where one company's events go: its inbox, behind the secret of its webhook URL. `company` names it in the
    log ("" for the bundled location's one company)."""

    inbox: WebhookInbox
    secret: str = field(repr=False)
    company: str = ""


def build_app(mailboxes: Sequence[Mailbox]) -> Starlette:
    """POST /precoro/<secret>: record the event in the inbox of the company whose secret it is, then 200. Anything
    else: a 4xx, logged without the secret. Each company gives Precoro its own URL (Precoro issues a token, and so a
    webhook, per company)."""
    if not mailboxes:
        raise ValueError("no company to receive webhooks for")
    if any(len(mailbox.secret) < 16 for mailbox in mailboxes):
        raise ValueError("a webhook secret must be at least 16 characters (it is all that guards the URL)")
    if len({mailbox.secret for mailbox in mailboxes}) < len(mailboxes):
        raise ValueError("two companies have the same webhook secret: each needs its own (its URL says whose "
                         "events they are)")

    def addressee(given: str) -> Mailbox | None:
        """The company whose secret the URL carries: each secret compared in constant time, all of them."""
        found = None
        for mailbox in mailboxes:
            if hmac.compare_digest(given.encode(), mailbox.secret.encode()):
                found = mailbox
        return found

    async def receive(request: Request) -> JSONResponse:
        mailbox = addressee(request.path_params["secret"])
        if mailbox is None:
            logger.warning("webhook refused: wrong secret in the URL (from %s)", _client(request))
            return JSONResponse({"error": "not found"}, status_code=404)
        inbox, company = mailbox.inbox, f" for {mailbox.company}" if mailbox.company else ""
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            logger.warning("webhook refused: body of %s bytes (limit %d) from %s", declared, MAX_BODY_BYTES,
                           _client(request))
            return JSONResponse({"error": f"body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        body = b""
        try:
            async for chunk in request.stream():  # a body without a length is read only up to the limit
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    logger.warning("webhook refused: body over %d bytes from %s", MAX_BODY_BYTES, _client(request))
                    return JSONResponse({"error": f"body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        except ClientDisconnect:  # gone, or cut off by the request deadline (see deadline_protocol)
            logger.warning("webhook refused: the connection closed before the body's end (from %s)",
                           _client(request))
            return JSONResponse({"error": "incomplete body"}, status_code=400)
        try:
            kind, action, record_id, idn = parse_event(body)
        except BadEvent as error:
            logger.warning("webhook refused: %s (from %s): %r", error, _client(request), body[:200])
            return JSONResponse({"error": str(error)}, status_code=422)
        seq = inbox.record(kind, action, record_id, idn)
        logger.info("webhook %d recorded%s: type %d, %s, id %d, idn %s", seq, company, kind, ACTIONS[action],
                    record_id, idn)
        return JSONResponse({"recorded": seq})

    async def refuse(request: Request) -> JSONResponse:
        logger.warning("webhook refused: %s %s is not the webhook URL (from %s)", request.method,
                       "/precoro/<secret>" if request.url.path.startswith("/precoro/") else request.url.path,
                       _client(request))
        return JSONResponse({"error": "not found"}, status_code=404)

    return Starlette(routes=[Route("/precoro/{secret}", receive, methods=["POST"]),
                             Route("/{path:path}", refuse, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])])


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


REQUEST_TIMEOUT_S = 10.0  # Precoro's event is ~50 bytes: whole within a second on any network
KEEP_ALIVE_S = 5  # an idle connection between requests (uvicorn's own timeout)


def serve(mailboxes: Sequence[Mailbox], host: str, port: int, request_timeout: float = REQUEST_TIMEOUT_S) -> None:
    import uvicorn

    # uvicorn's access log prints each request's path, the secret included: ours logs without it
    uvicorn.run(build_app(mailboxes), host=host, port=port, access_log=False, log_level="info",
                http=deadline_protocol(request_timeout), timeout_keep_alive=KEEP_ALIVE_S)


def deadline_protocol(seconds: float) -> type:
    """uvicorn's HTTP protocol, with a deadline on each request: from the connection (or the end of the previous
    response) to the last byte of its body, a request has `seconds`; a connection that sends nothing, or drips a
    byte at a time, is closed then.

    uvicorn closes idle connections only between requests (timeout_keep_alive) and has no header or body timeout,
    so 1,000 half-open sockets were held for as long as their clients liked. Hand-written: a subclass of uvicorn's
    own protocol is a few lines, where another server would be a new dependency with only a per-read timeout
    (which a client sending a byte a second never meets)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class DeadlineProtocol(HttpToolsProtocol):
        _deadline = None

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            logger.warning("webhook connection from %s closed: no whole request within %g s",
                           self.client[0] if self.client else "?", seconds)
            self.transport.close()

        def connection_made(self, transport) -> None:  # noqa: ANN001 - asyncio's signature
            super().connection_made(transport)
            self._arm()

        def on_message_complete(self) -> None:  # the whole request is in: the app answers it
            super().on_message_complete()
            self._disarm()

        def on_response_complete(self) -> None:  # kept alive: the next request has its own deadline
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return DeadlineProtocol
