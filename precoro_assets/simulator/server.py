"""Serves the simulator on a real localhost socket (werkzeug's threaded server).

werkzeug's development server is enough here (one company, one machine) and lets us reach the raw
socket, which the `reset` and `lost_response` faults need: they drop the connection without an answer.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import struct
import threading
import time
import weakref
from dataclasses import dataclass, field

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from .app import SimulatorApp, SimulatorConfig
from .limits import Limits

HOST = "127.0.0.1"  # never another interface: the simulator is for this machine only


class _Handler(WSGIRequestHandler):
    """Quiet request handler that can drop its connection on demand (fault injection)."""

    def parse_request(self) -> bool:
        self.sim_arrival = time.time()  # the request line has just been read: the request has arrived
        return super().parse_request()

    def make_environ(self) -> dict:
        environ = super().make_environ()
        environ["sim.arrival"] = getattr(self, "sim_arrival", None)
        # werkzeug keeps `self.environ`: a bound method in it would make handler and environ a reference
        # cycle that pins the server, the app and the whole company in memory until a full collection
        handler = weakref.ref(self)

        def drop_connection() -> None:
            alive = handler()
            if alive is not None:
                alive._drop_connection()

        environ["sim.drop_connection"] = drop_connection
        return environ

    def _drop_connection(self) -> None:
        # The answer goes nowhere, and closing with SO_LINGER 0 sends a TCP reset instead of a FIN.
        self.close_connection = True
        self.wfile = io.BytesIO()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.server.dropped.add(id(self.connection))

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the control API's /_sim/requests is the request log


class _Server(ThreadedWSGIServer):
    daemon_threads = True

    def __init__(self, *args, **kwargs):
        self.dropped: set[int] = set()
        super().__init__(*args, **kwargs)

    def shutdown_request(self, request: socket.socket) -> None:
        if id(request) in self.dropped:
            self.dropped.discard(id(request))
            # socket.close() waits for every makefile() reader to be closed (some are only freed by the
            # garbage collector), leaving the client hanging; detaching and closing the descriptor is
            # immediate, and with linger 0 the close is a reset (no shutdown(): that would send a FIN).
            os.close(request.detach())
            return
        super().shutdown_request(request)

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

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_simulator(seed: int = 7, days: int = 90, documents: int = 600, limits: str | Limits = "off",
                    port: int = 0, tick_every: float | None = None) -> RunningSimulator:
    """Start a simulator on 127.0.0.1:`port` (0 = a free port) and return once it accepts connections."""
    limits = Limits.parse(limits) if isinstance(limits, str) else limits
    app = SimulatorApp(SimulatorConfig(seed=seed, days=days, documents=documents, limits=limits))
    server = _Server(HOST, port, app, handler=_Handler)
    app.base_url = f"http://{HOST}:{server.server_port}"
    running = RunningSimulator(app, server)
    serve = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                             name="precoro-simulator", daemon=True)
    serve.start()
    running.threads.append(serve)
    if tick_every:
        def live() -> None:
            while not running.stopping.wait(tick_every):
                app.tick(3)

        ticker = threading.Thread(target=live, name="precoro-simulator-ticks", daemon=True)
        ticker.start()
        running.threads.append(ticker)
    return running


def serve_forever(seed: int, days: int, documents: int, limits: str, port: int, tick_every: float | None) -> None:
    """The `precoro-assets simulator` command: start, print how to connect, serve until Ctrl-C."""
    started = time.monotonic()
    simulator = start_simulator(seed, days, documents, limits, port, tick_every)
    company = simulator.app.company
    counts = ", ".join(f"{len(company.records[r])} {r}" for r in
                       ("purchaserequisitions", "purchaseorders", "receipts", "invoices", "payments", "suppliers"))
    print(f"Precoro simulator ready in {time.monotonic() - started:.1f}s (seed {seed}, {days} days: {counts})")
    print(f"  PRECORO_BASE_URL={simulator.url}")
    print(f"  PRECORO_API_TOKEN={simulator.token}")
    print(f"  PRECORO_EMAIL={simulator.email}")
    print(f"  limits: {simulator.app.config.limits.mode}; control API: {simulator.url}/_sim/info", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        simulator.stop()
