"""The tests compare the warehouse with Precoro through precoro_sim.ground_truth (also used by the soak report).

`differences` runs the comparison's queries on one warehouse connection in one snapshot: the ground truth asks
about forty queries of a document type, and opening DuckLake afresh for each (as `env.query` does) cost about
0.4 s of CPU a query, most of a sync test's time.
"""

from __future__ import annotations

from typing import Any

import duckdb

from precoro_assets.catalogue import Entity
from precoro_sim import ground_truth
from precoro_sim.ground_truth import exact

__all__ = ["differences", "exact"]


class _Snapshot:
    """What the ground truth reads: the simulator's export from `env`, the warehouse through one connection."""

    def __init__(self, env: Any, con: duckdb.DuckDBPyConnection) -> None:
        self.env, self.con = env, con

    def export(self, resource: str) -> list[dict]:
        return self.env.export(resource)

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        return [tuple(row) for row in self.con.execute(sql, params).fetchall()]


def differences(env: Any, entity: Entity, in_range=None) -> list[str]:
    """Everything on which precoro.<entity> and its child tables disagree with the simulator's export."""
    warehouse = getattr(env, "warehouse", None)
    if warehouse is None:  # an environment that only answers queries (tests/deployment's hosts)
        return ground_truth.differences(env, entity, in_range)
    return warehouse.read(lambda con: ground_truth.differences(_Snapshot(env, con), entity, in_range))
