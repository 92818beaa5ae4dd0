"""Fixtures: simulators serving on a real localhost socket, and clients that talk to them over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from precoro_sim.simulator import start_simulator
from tests.simulator.sim_harness import Api

SEED = 7


@pytest.fixture(scope="session")
def functional_simulator() -> Iterator[object]:
    """One simulator without rate limits for the functional tests (reset before each test that uses it)."""
    with start_simulator(seed=SEED, days=90, documents=600, limits="off", port=0) as running:
        yield running


@pytest.fixture
def api(functional_simulator) -> Iterator[Api]:
    """The functional simulator, freshly reset to the seed's company (no faults, no statistics)."""
    client = Api(functional_simulator)
    client.reset()
    yield client
    client.close()


@pytest.fixture
def simulator() -> Iterator[Callable[..., Api]]:
    """Start a dedicated simulator: `simulator(limits="scaled:20", documents=200)`. Stopped after the test."""
    started: list[tuple[object, Api]] = []

    def start(limits: str = "off", documents: int = 200, seed: int = SEED, days: int = 90) -> Api:
        running = start_simulator(seed=seed, days=days, documents=documents, limits=limits, port=0)
        client = Api(running)
        started.append((running, client))
        return client

    yield start
    for running, client in started:
        client.close()
        running.stop()
