"""Serves the simulator on a real localhost socket: HTTP/1.1 with keep-alive, one thread per connection.

A small hand-written WSGI server on the standard library's `http.server` (which parses the request line
and headers) rather than a library server, for one reason: fault injection needs the raw socket. The
`reset` and `lost_response` faults end the connection with a TCP reset (SO_LINGER 0, the descriptor closed
without a shutdown) and send nothing, and WSGI servers keep their sockets to themselves. werkzeug's
development server, used before, gave access to its handler but always answers `Connection: close`, so
every request paid for a new TCP connection and a new thread: it capped the simulator at ~250 requests/s.

What it does: binds 127.0.0.1 only; keeps a connection open until the client closes it, sends
`Connection: close`, or stays idle for `IDLE_TIMEOUT` seconds; reads each request's whole body
(Content-Length or chunked) before the application runs, so the next request on the connection always
starts at the right byte; stamps `sim.arrival` with the moment the request's first bytes reached the machine
(see `_StampedReader`); offers `sim.drop_connection` in the environ; logs nothing (the control API's
/_sim/requests is the request log).
"""

from __future__ import annotations

import gc
import io
import logging
import os
import socket
import socketserver
import struct
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote

from .app import SimulatorApp, SimulatorConfig
from .limits import Limits

HOST = "127.0.0.1"  # never another interface: the simulator is for this machine only
# An idle kept-alive connection is closed after this long. Longer than httpx's own keep-alive expiry
# (5 s), so that a client normally gives up a connection before the server closes it under its feet.
IDLE_TIMEOUT = 10.0
MAX_BODY = 64 * 1024 * 1024  # request bodies are forms and small JSON documents
SERVER_NAME = "precoro-simulator"
# Linux's SO_TIMESTAMPNS (and SCM_TIMESTAMPNS, its control message): the kernel stamps each received segment
# with the wall-clock time it came in. Not in Python's socket module; the value is the same on every Linux
# architecture but a few old ones, where setting it fails and the server stamps when it reads instead.
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("qq")

_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The Date header's value, formatted once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


class _StampedReader(io.RawIOBase):
    """A connection's bytes, with the kernel's receive time of each read (SO_TIMESTAMPNS).

    Why: Precoro counts a request when it arrives. A thread that reads it later (the machine is busy, the GIL is
    elsewhere, the connection is still waiting to be accepted) would stamp two well-spaced requests close together
    and answer a spurious "Second limiter" 429. The kernel's stamp does not depend on when a thread runs."""

    def __init__(self, connection: socket.socket) -> None:
        super().__init__()
        self._connection = connection
        self.first_stamp: float | None = None  # of the first read since `restart`
        self.last_stamp: float | None = None

    def restart(self) -> None:
        self.first_stamp = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - a writable buffer
        size, ancillary, _, _ = self._connection.recvmsg_into([buffer], socket.CMSG_SPACE(_TIMESPEC.size))
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
                seconds, nanoseconds = _TIMESPEC.unpack_from(data)
                self.last_stamp = seconds + nanoseconds / 1e9
                if self.first_stamp is None:
                    self.first_stamp = self.last_stamp
        return size


class _BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    """One connection: its requests in turn, each through the WSGI application; can drop the connection
    on demand (fault injection)."""

    protocol_version = "HTTP/1.1"
    server_version = SERVER_NAME
    timeout = IDLE_TIMEOUT  # the socket's timeout: an idle connection ends after this long
    disable_nagle_algorithm = True  # an answer is one write; don't hold it back waiting for an ACK
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.dropped = False
        self.server.opened(self.connection)
        self.stamps: _StampedReader | None = None
        if self.server.stamps_arrivals:
            self.rfile.close()  # the plain reader StreamRequestHandler made: nothing was read from it yet
            self.stamps = _StampedReader(self.connection)
            self.rfile = io.BufferedReader(self.stamps)

    def handle_one_request(self) -> None:
        try:
            if self.stamps is not None:
                self.stamps.restart()
            self.raw_requestline = self.rfile.readline(65537)
            # When its first bytes came in (they were read into the buffer earlier if the client sent two requests
            # at once); without kernel stamps, now: the request line has just been read.
            stamps = self.stamps
            self.sim_arrival = (stamps.first_stamp or stamps.last_stamp if stamps is not None else None) \
                or time.time()
        except (TimeoutError, OSError):  # idle for too long, or closed by the client or by stop()
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.requestline, self.request_version, self.command = "", "", ""
            self.send_error(414)
            self.close_connection = True
            return
        if not self.parse_request():  # it has answered the error and set close_connection
            return
        try:
            body = self._read_body()
        except _BadRequest as error:
            self.send_error(error.status, str(error))
            self.close_connection = True
            return
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        self._run(self._environ(body))

    def _read_body(self) -> bytes:
        """The request's whole body, so that an application that reads less cannot leave bytes behind."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(65537)
                try:
                    length = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise _BadRequest(400, "Bad chunk size") from None
                if length == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                size += length
                if size > MAX_BODY:
                    raise _BadRequest(413, "Request body too large")
                chunks.append(self._read_exactly(length))
                self.rfile.readline(65537)  # the CRLF after the chunk
        text = self.headers.get("Content-Length")
        if not text:
            return b""
        try:
            length = int(text)
        except ValueError:
            raise _BadRequest(400, "Bad Content-Length") from None
        if length < 0:
            raise _BadRequest(400, "Bad Content-Length")
        if length > MAX_BODY:
            raise _BadRequest(413, "Request body too large")
        return self._read_exactly(length)

    def _read_exactly(self, length: int) -> bytes:
        data = self.rfile.read(length) if length else b""
        if len(data) != length:
            raise _BadRequest(400, "Request body shorter than announced")
        return data

    def _environ(self, body: bytes) -> dict:
        path, _, query = self.path.partition("?")
        host, port = self.server.server_address[:2]
        environ: dict[str, object] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, "latin-1"),
            "QUERY_STRING": query,
            "RAW_URI": self.path,
            "REQUEST_URI": self.path,
            "SERVER_NAME": host,
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": self.client_address[1],
            "CONTENT_LENGTH": str(len(body)) if body else "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "sim.arrival": getattr(self, "sim_arrival", None),
        }
        for name, value in self.headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
                continue
            if key in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
                continue  # the body is read already: CONTENT_LENGTH above is its length
            key = "HTTP_" + key
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        # Only a weak reference to the handler: a bound method in the environ would make the handler and
        # whatever keeps the environ a reference cycle, pinning the app and its whole company in memory.
        handler = weakref.ref(self)

        def drop_connection() -> None:
            alive = handler()
            if alive is not None:
                alive.dropped = True
                alive.close_connection = True

        environ["sim.drop_connection"] = drop_connection
        return environ

    def _run(self, environ: dict) -> None:
        """Call the application and send its answer in one write (nothing at all if it dropped the connection)."""
        answer: list = []

        def start_response(status: str, headers: list, exc_info: object = None) -> object:
            answer[:] = [status, headers]
            return lambda data: chunks.append(data)  # the legacy write() callable

        chunks: list[bytes] = []
        try:
            result = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            logging.getLogger(__name__).exception("the simulator failed on %s %s", self.command, self.path)
            if not self.dropped:
                self.send_error(500)
            self.close_connection = True
            return
        if self.dropped:
            return  # the answer goes nowhere: finish() resets the connection
        status, headers = answer
        payload = b"".join(chunks)
        lines = [f"HTTP/1.1 {status}", f"Server: {SERVER_NAME}", f"Date: {_http_date()}"]
        has_length = False
        for name, value in headers:
            if name.lower() == "content-length":
                has_length = True
            lines.append(f"{name}: {value}")
        if not has_length:
            lines.append(f"Content-Length: {len(payload)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            self.wfile.write(head if self.command == "HEAD" else head + payload)
        except (TimeoutError, OSError):
            self.close_connection = True

    def finish(self) -> None:
        if self.dropped:
            # No answer, and a close with SO_LINGER 0 sends a TCP reset instead of a FIN. Detaching closes
            # the descriptor at once (socket.close() would wait for the makefile() readers to go).
            self.rfile.close()
            self.wfile.close()
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                os.close(self.connection.detach())
            except OSError:
                pass
            return
        super().finish()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # the control API's /_sim/requests is the request log


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A thread per connection (daemon threads); closing the server also closes its open connections."""

    daemon_threads = True
    block_on_close = False  # never wait for connection threads: stop() closes their sockets instead
    allow_reuse_address = True
    request_queue_size = 128  # the listen backlog (socketserver's default of 5 makes bursts of new clients wait)

    def __init__(self, host: str, port: int, app: SimulatorApp):
        self.app = app
        self.accepted = 0  # connections accepted so far
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__((host, port), _Handler)
        self.server_port = self.server_address[1]
        try:  # inherited by every accepted connection
            self.socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.stamps_arrivals = sys.platform.startswith("linux")
        except OSError:
            self.stamps_arrivals = False

    def process_request(self, request, client_address) -> None:  # noqa: ANN001
        self.accepted += 1
        super().process_request(request, client_address)

    def opened(self, connection: socket.socket) -> None:
        with self._open_lock:
            self._open.add(connection)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]  # a TCP server
        with self._open_lock:
            self._open.discard(request)
        if request.fileno() == -1:
            return  # already reset (a dropped connection)
        super().shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:  # wakes the threads blocked reading a kept-alive connection
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        logging.getLogger(__name__).debug("connection error from %s", client_address, exc_info=True)


@dataclass
class RunningSimulator:
    """A simulator serving on 127.0.0.1 in background threads."""

    app: SimulatorApp
    server: _Server
    threads: list[threading.Thread] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return self.app.base_url

    @property
    def token(self) -> str:
        return self.app.token

    @property
    def email(self) -> str:
        return self.app.email

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted so far (a client that keeps its connection alive opens one)."""
        return self.server.accepted

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_simulator(seed: int = 7, days: int = 90, documents: int = 600, limits: str | Limits = "off",
                    port: int = 0, tick_every: float | None = None, companies: int = 1) -> RunningSimulator:
    """Start a simulator on 127.0.0.1:`port` (0 = a free port) and return once it accepts connections.

    `companies`: how many companies it serves, each with its own token and data (see `SimulatorConfig`); `token`
    and `email` are company 1's, `app.companies` has them all."""
    limits = Limits.parse(limits) if isinstance(limits, str) else limits
    app = SimulatorApp(SimulatorConfig(seed=seed, days=days, documents=documents, limits=limits,
                                       companies=companies))
    server = _Server(HOST, port, app)
    app.base_url = f"http://{HOST}:{server.server_port}"
    running = RunningSimulator(app, server)
    serve = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                             name="precoro-simulator", daemon=True)
    serve.start()
    running.threads.append(serve)
    if tick_every:
        def live() -> None:
            while not running.stopping.wait(tick_every):
                for simulated in app.companies:  # every company lives
                    simulated.tick(3)

        ticker = threading.Thread(target=live, name="precoro-simulator-ticks", daemon=True)
        ticker.start()
        running.threads.append(ticker)
    return running


def serve_forever(seed: int, days: int, documents: int, limits: str, port: int, tick_every: float | None,
                  companies: int = 1) -> None:
    """The `precoro-assets simulator` command: start, print how to connect, serve until Ctrl-C."""
    started = time.monotonic()
    simulator = start_simulator(seed, days, documents, limits, port, tick_every, companies)
    # This process serves the simulator and nothing else. The company is millions of long-lived containers
    # (built with the collector off, see `build_company`) that the cyclic collector need never scan: without
    # this its first collections once requests come in, each 2-3 s at 100k documents, would stall answers.
    # (They have no reference cycles: if a reset replaces them, reference counting frees them.)
    gc.freeze()
    company = simulator.app.company
    counts = ", ".join(f"{len(company.records[r])} {r}" for r in
                       ("purchaserequisitions", "purchaseorders", "receipts", "invoices", "expenses", "payments",
                        "suppliers"))
    print(f"Precoro simulator ready in {time.monotonic() - started:.1f}s (seed {seed}, {days} days: {counts})")
    print(f"  PRECORO_BASE_URL={simulator.url}")
    print(f"  PRECORO_API_TOKEN={simulator.token}")
    print(f"  PRECORO_EMAIL={simulator.email}")
    for simulated in simulator.app.companies[1:]:  # the same URL and e-mail, another token
        identity = simulated.identity
        print(f"  company {identity.number} ({identity.name}, seed {identity.seed}): PRECORO_API_TOKEN={identity.token}"
              f"  (control API: ?company={identity.number})")
    print(f"  limits: {simulator.app.config.limits.mode}; control API: {simulator.url}/_sim/info", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        simulator.stop()
