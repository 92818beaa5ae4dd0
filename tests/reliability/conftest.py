"""Fixtures for the reliability suite: the ingest tests' simulator environment, reused (not copied).

`tests/ingest` is put on sys.path so its helpers (`truth.differences`, the kill helpers of
test_ingest_robustness) can be imported; its conftest is loaded under another module name so that
this directory's `conftest` is not shadowed.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

INGEST = Path(__file__).resolve().parents[1] / "ingest"
if str(INGEST) not in sys.path:
    sys.path.insert(0, str(INGEST))


def _ingest_conftest():
    name = "ingest_fixtures_for_reliability"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, INGEST / "conftest.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


make_env = _ingest_conftest().make_env


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """A simulator (limits off, 1000x clock) with the definitions pointed at it, as in tests/ingest."""
    environment = make_env(tmp_path, monkeypatch)
    yield environment
    environment.sim.stop()
