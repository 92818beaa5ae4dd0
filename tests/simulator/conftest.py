"""Fixtures: simulators called in-process (the default: no socket, so the fast tier runs them), and simulators
serving on a real localhost socket for the tests of what only the HTTP server does (those are marked e2e)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from precoro_sim.simulator import start_simulator
from precoro_sim.simulator.app import SimulatorApp
from tests.simulator.sim_harness import Api, new_simulator_app

SEED = 7


@pytest.fixture(scope="session")
def functional_app() -> SimulatorApp:
    """One simulator application without rate limits for the functional tests (reset before each test)."""
    return new_simulator_app(seed=SEED, days=90, documents=600, limits="off")


@pytest.fixture
def api(functional_app) -> Iterator[Api]:
    """The functional simulator in-process, freshly reset to the seed's company (no faults, no statistics)."""
    client = Api.in_process(functional_app)
    client.reset()
    yield client
    client.close()


@pytest.fixture(scope="session")
def functional_simulator() -> Iterator[object]:
    """The same company served on a real localhost socket: started only if an e2e test asks for it."""
    with start_simulator(seed=SEED, days=90, documents=600, limits="off", port=0) as running:
        yield running


@pytest.fixture
def api_over_socket(functional_simulator) -> Iterator[Api]:
    """`api` over a real socket, for tests of what only the server does (dropped connections, client timeouts)."""
    client = Api.over_socket(functional_simulator)
    client.reset()
    yield client
    client.close()


@pytest.fixture
def simulator() -> Iterator[Callable[..., Api]]:
    """A dedicated simulator: `simulator(limits="scaled:20", documents=200)`, in-process unless
    `over_socket=True` (for a test of the server: it is then stopped after the test)."""
    started: list[tuple[object | None, Api]] = []

    def start(limits: str = "off", documents: int = 200, seed: int = SEED, days: int = 90,
              over_socket: bool = False) -> Api:
        if over_socket:
            running = start_simulator(seed=seed, days=days, documents=documents, limits=limits, port=0)
            client = Api.over_socket(running)
        else:
            running = None
            client = Api.in_process(new_simulator_app(seed=seed, days=days, documents=documents, limits=limits))
        started.append((running, client))
        return client

    yield start
    for running, client in started:
        client.close()
        if running is not None:
            running.stop()
