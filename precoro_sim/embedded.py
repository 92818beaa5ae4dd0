"""The embedded default: no Precoro account configured, the bundled simulator stands in for Precoro.

The product (`precoro_assets.settings`) only reads the environment and, with no PRECORO_API_TOKEN, says what to
set. The harness's entry points (`precoro-assets demo|sync|...` through `precoro_sim.cli`, the tests' conftest)
call `apply()` first: it writes the simulator's PRECORO_* variables into this process's environment, which the
processes it starts (the demo's `dagster dev`) inherit.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

SIMULATOR_PORT = 8787
SIMULATOR_SEED = 7
SIMULATOR_DAYS = 90
SIMULATOR_DOCUMENTS = 600  # what `precoro-assets simulator` and the demo generate by default
# The embedded simulator runs Precoro's limits 10x faster (1 s -> 0.1 s, a quota day -> 2.4 h) so the
# demo is quick while every limit is still enforced; the client is told the same scale.
SIMULATOR_TIME_SCALE = 10.0


def simulator_port() -> int:
    """Where the embedded default looks for (or starts) the simulator: PRECORO_SIMULATOR_PORT, else 8787."""
    return int(os.environ.get("PRECORO_SIMULATOR_PORT", SIMULATOR_PORT))


def webhook_port() -> int:
    """Where the demo receives the simulator's webhooks: PRECORO_WEBHOOK_PORT, else 8790."""
    return int(os.environ.get("PRECORO_WEBHOOK_PORT", "8790"))


def simulator_limits() -> str:
    return f"scaled:{SIMULATOR_TIME_SCALE:g}"


def _running_simulator_scale(base_url: str) -> float | None:
    """The time scale of a simulator already serving at base_url (its control API says), if any."""
    import httpx

    try:
        limits = httpx.get(f"{base_url}/_sim/info", timeout=0.5).json()["limits"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    return 1000.0 if limits.get("mode") == "off" else float(limits.get("scale", 1))


def _aims_at_precoro() -> bool:
    """Whether the environment names a Precoro other than a local simulator (a region, or a base URL elsewhere):
    then a missing token is a mistake to report, never a cue to fill in the simulator's (its token, its time
    scale and a local simulator would be aimed at the real API)."""
    if os.environ.get("PRECORO_REGION"):
        return True
    base_url = os.environ.get("PRECORO_BASE_URL")
    return bool(base_url) and urlsplit(base_url).hostname not in ("127.0.0.1", "localhost", "::1")


def apply() -> bool:
    """Point this process (and what it starts) at the bundled simulator when no token is configured and no other
    Precoro is named (see _aims_at_precoro); returns whether it did. A simulator already listening says its time scale; else the embedded one's is assumed.

    The secrets still reach Dagster through EnvVar, so even the simulator's token never shows in run config.
    """
    if os.environ.get("PRECORO_API_TOKEN") or _aims_at_precoro():
        return False
    from .simulator.app import SIM_EMAIL, token_for_seed

    os.environ["PRECORO_API_TOKEN"] = token_for_seed(SIMULATOR_SEED)
    os.environ.setdefault("PRECORO_EMAIL", SIM_EMAIL)
    os.environ.setdefault("PRECORO_BASE_URL", f"http://127.0.0.1:{simulator_port()}")
    os.environ.setdefault("PRECORO_START_DATE", (datetime.now(UTC).date() - timedelta(days=SIMULATOR_DAYS)).isoformat())
    if not os.environ.get("PRECORO_TIME_SCALE"):
        scale = _running_simulator_scale(os.environ["PRECORO_BASE_URL"]) or SIMULATOR_TIME_SCALE
        os.environ["PRECORO_TIME_SCALE"] = f"{scale:g}"
    return True


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.3)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def simulator_if_needed(echo: Callable[[str], None] = print) -> Iterator[object]:
    """With the embedded default applied and no simulator listening, run one in this process meanwhile."""
    if port_open(simulator_port()):
        yield None
        return
    from .simulator import start_simulator

    echo(f"No Precoro account configured and no simulator on port {simulator_port()}: "
         f"starting the bundled simulator (seed {SIMULATOR_SEED}).")
    simulator = start_simulator(seed=SIMULATOR_SEED, days=SIMULATOR_DAYS, limits=simulator_limits(),
                                port=simulator_port())
    try:
        yield simulator
    finally:
        simulator.stop()
