"""Details fetched from Precoro but not yet written to the warehouse.

A partition run fetches one detail per new or changed document, then writes the whole day at once.
If the run dies in between, the details it paid for (requests are the scarce resource) wait here,
keyed by the document's `updateDate`, and the retried run takes them instead of asking Precoro again.
SQLite (stdlib) because many run processes write here at once and each detail must be durable the
moment it is fetched; the warehouse itself is written once per partition.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from .rows import parse_time, to_json


class DetailStaging:
    """A durable cache of fetched details: (entity, key) -> detail, with the detail's updateDate."""

    def __init__(self, directory: str | Path):
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(path / "staged_details.sqlite", timeout=60, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute(
            "CREATE TABLE IF NOT EXISTS staged (entity TEXT, key TEXT, update_date TEXT, detail TEXT, "
            "PRIMARY KEY (entity, key))"
        )

    def get(self, entity: str, key: str, at_least: datetime | None) -> dict | None:
        """The staged detail if it is at least as new as `at_least` (the list row's updateDate)."""
        row = self._con.execute("SELECT update_date, detail FROM staged WHERE entity = ? AND key = ?",
                                (entity, key)).fetchone()
        if row is None:
            return None
        if at_least is not None and (row[0] is None or parse_time(row[0]) < at_least):
            return None
        return json.loads(row[1], parse_float=Decimal)

    def put(self, entity: str, key: str, detail: dict) -> None:
        self._con.execute("INSERT OR REPLACE INTO staged VALUES (?, ?, ?, ?)",
                          (entity, key, detail.get("updateDate"), to_json(detail)))

    def forget(self, entity: str, keys: list[str]) -> None:
        """Drop details once they are safely in the warehouse."""
        self._con.executemany("DELETE FROM staged WHERE entity = ? AND key = ?", [(entity, k) for k in keys])

    def count(self, entity: str | None = None) -> int:
        if entity is None:
            return self._con.execute("SELECT count(*) FROM staged").fetchone()[0]
        return self._con.execute("SELECT count(*) FROM staged WHERE entity = ?", (entity,)).fetchone()[0]

    def close(self) -> None:
        self._con.close()
