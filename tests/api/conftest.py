"""Fixtures: a real simulator on a localhost port and clients with a fresh shared budget."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from precoro_assets import settings
from precoro_assets.api.client import PrecoroClient
from precoro_assets.api.quota import QuotaLimits
from tests.api.api_sim_support import Sim


@pytest.fixture
def simulator() -> Iterator[Callable[..., Sim]]:
    """Start a simulator: `simulator(limits="scaled:20")`. Stopped after the test."""
    from precoro_sim.simulator import start_simulator

    started: list[Sim] = []

    def start(limits: str = "off", documents: int = 600, **options) -> Sim:
        sim = Sim(start_simulator(seed=7, days=60, documents=documents, limits=limits, port=0, **options))
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "quota"


@pytest.fixture
def make_client(state_dir: Path) -> Iterator[Callable[..., PrecoroClient]]:
    """A client on the simulator whose windows are divided by `scale`, like `--limits scaled:F`."""
    clients: list[PrecoroClient] = []

    def make(sim: Sim, scale: float = 1000.0, max_wait_seconds: float = 30, token: str | None = None,
             timeout_seconds: float = 10.0, concurrent_requests: int = 4, **limits) -> PrecoroClient:
        client = PrecoroClient(token or sim.token, sim.email, base_url=sim.url, state_dir=state_dir,
                               database_url=settings.load_state().database_url_value,  # see state_backend
                               limits=QuotaLimits(time_scale=scale, **limits), max_wait_seconds=max_wait_seconds,
                               timeout_seconds=timeout_seconds, concurrent_requests=concurrent_requests)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


