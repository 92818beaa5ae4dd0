"""Helpers shared by the reliability tests: where secrets could hide, who listens where, Dagster homes."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

# The token grep and the socket checks live in the harness: `precoro-assets reliability --daemon` runs them too.
from precoro_sim.soak.processes import (  # noqa: F401 - re-exported for the tests
    children_of,
    files_containing,
    listening_sockets,
    processes_in_session,
    session_of,
    socket_inodes_of,
)

REPO = Path(__file__).resolve().parents[2]
DAGSTER_YAML = REPO / "precoro_assets" / "dagster.yaml"

# Text Precoro might send that would do damage if it were ever formatted into SQL.
SQL_INJECTION = "'); DROP TABLE precoro.invoices; --"
AWKWARD_NAME = 'O\'Brien "Ltd"; Müller & Søn — 株式会社 \\ %_ ?'


def persistent_instance(home: Path) -> dg.DagsterInstance:
    """A Dagster instance on disk (run storage, event log, compute logs) with the project's dagster.yaml."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(home))
