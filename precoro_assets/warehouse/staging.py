"""Details fetched from Precoro but not yet written to the warehouse, and listings of stopped runs.

A partition run fetches one detail per new or changed document, then writes the whole day at once.
If the run dies in between, the details it paid for (requests are the scarce resource) wait here,
keyed by the document's `updateDate`, and the retried run takes them instead of asking Precoro again.
A run stopped by a spent quota also leaves the listing it walked, so its retry (hours later, when the quota is
back) goes straight on with the details instead of paying for the list pages again.
SQLite (stdlib) because many run processes write here at once and each detail must survive the death of
its process the moment it is fetched (WAL with synchronous=NORMAL: a commit is in the OS before `put`
returns, so kill -9 loses nothing; only a power cut could, and then the detail is simply fetched again).
With PRECORO_DATABASE_URL the same tables live in PostgreSQL, so a run retried on another host finds them
(see precoro_assets.runtime.shared_state).
Worker processes (used only where the budget is effectively unlimited) stage a chunk of details per commit.
The warehouse itself is written once per batch of days. Safe to use from several threads.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from ..runtime import shared_state
from ..runtime.process_lock import ProcessLock
from .rows import parse_time, to_json

_SCHEMA = """
CREATE TABLE IF NOT EXISTS staged (entity TEXT, key TEXT, update_date TEXT, detail TEXT, PRIMARY KEY (entity, key));
CREATE TABLE IF NOT EXISTS listings (entity TEXT, first_day TEXT, last_day TEXT, saved_at REAL, listing TEXT,
                                     PRIMARY KEY (entity, first_day, last_day));
CREATE TABLE IF NOT EXISTS listed_ahead (run_id TEXT PRIMARY KEY, claimed_at REAL);
"""
_PUT = ("INSERT INTO staged VALUES (?, ?, ?, ?) ON CONFLICT (entity, key) "
        "DO UPDATE SET update_date = excluded.update_date, detail = excluded.detail")


class DetailStaging:
    """A durable cache of fetched details: (entity, key) -> detail, with the detail's updateDate."""

    def __init__(self, directory: str | Path, database_url: str | None = None):
        """A SQLite file in `directory`, or PostgreSQL at `database_url` (PRECORO_DATABASE_URL, from the settings)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        self.directory = path
        self.database_url = database_url
        self._con = shared_state.connect(path / "staged_details.sqlite", database_url=database_url)
        self._lock = threading.Lock()  # one statement at a time on the shared connection
        self._writers = ProcessLock(path / "staged_details.lock")  # one write at a time, all processes (one host)
        self._con.create(_SCHEMA)

    def get(self, entity: str, key: str, at_least: datetime | None) -> tuple[dict, str] | None:
        """The staged detail and its JSON text, if it is at least as new as `at_least` (the list row's
        updateDate)."""
        text = self.get_text(entity, key, at_least)
        return None if text is None else (json.loads(text, parse_float=Decimal), text)

    def get_text(self, entity: str, key: str, at_least: datetime | None) -> str | None:
        """The staged detail's JSON text, if it is at least as new as `at_least` (see get)."""
        with self._lock:
            row = self._con.execute("SELECT update_date, detail FROM staged WHERE entity = ? AND key = ?",
                                    (entity, key)).fetchone()
        if row is None:
            return None
        if at_least is not None and (row[0] is None or parse_time(row[0]) < at_least):
            return None
        return row[1]

    def keys(self, entity: str) -> set[str]:
        """Keys with a staged detail: one query up front spares a lookup per document when nothing is staged."""
        with self._lock:
            return {k for (k,) in self._con.execute("SELECT key FROM staged WHERE entity = ?", (entity,))}

    def put(self, entity: str, key: str, detail: dict, text: str | None = None) -> None:
        """Stage a detail; `text` is its JSON as received (serialized from `detail` when not given)."""
        self.put_text(entity, key, detail.get("updateDate"), text if text is not None else to_json(detail))

    def put_text(self, entity: str, key: str, update_date: str | None, text: str) -> None:
        """Stage a detail's JSON text as received, with its updateDate (or the list row's, which is not newer)."""
        with self._lock, self._writers.held():
            self._con.execute(_PUT, (entity, key, update_date, text))

    def put_texts(self, entity: str, details: list[tuple[str, str | None, str]]) -> None:
        """Stage several details in one transaction: (key, updateDate, JSON text as received) each."""
        if details:
            self._in_transaction(lambda con: con.executemany(
                _PUT, [(entity, key, update_date, text) for key, update_date, text in details]))

    def forget(self, entity: str, keys: list[str]) -> None:
        """Drop details once they are safely in the warehouse."""
        self._in_transaction(lambda con: con.executemany("DELETE FROM staged WHERE entity = ? AND key = ?",
                                                         [(entity, k) for k in keys]))

    def _in_transaction(self, work: Callable[[shared_state.StateConnection], object]) -> None:
        """Run work(connection) in one write transaction."""
        with self._lock, self._writers.held(), self._con.write_transaction():
            work(self._con)

    def save_listing(self, entity: str, first_day: str, last_day: str, listing: dict) -> None:
        """Keep what a run listed for first_day..last_day, for its retry (see `take_listing`)."""
        text = to_json(listing)
        with self._lock, self._writers.held():
            self._con.execute("INSERT INTO listings VALUES (?, ?, ?, ?, ?) ON CONFLICT (entity, first_day, last_day) "
                              "DO UPDATE SET saved_at = excluded.saved_at, listing = excluded.listing",
                              (entity, first_day, last_day, time.time(), text))

    def claim_list_ahead(self, run_id: str) -> bool:
        """Whether this step is the run's first to list its document types ahead (see sync.list_ahead): once."""
        with self._lock, self._writers.held():
            self._con.execute("DELETE FROM listed_ahead WHERE claimed_at < ?", (time.time() - 30 * 86400,))
            cursor = self._con.execute("INSERT INTO listed_ahead VALUES (?, ?) ON CONFLICT (run_id) DO NOTHING",
                                       (run_id, time.time()))
            return cursor.rowcount == 1

    def has_listing(self, entity: str, first_day: str, last_day: str, max_age_seconds: float) -> bool:
        """Whether a listing of exactly this range, recent enough, waits to be taken."""
        with self._lock:
            row = self._con.execute("SELECT saved_at FROM listings WHERE entity = ? AND first_day = ? AND last_day = ?",
                                    (entity, first_day, last_day)).fetchone()
        return row is not None and time.time() - row[0] <= max_age_seconds

    def take_listing(self, entity: str, first_day: str, last_day: str, max_age_seconds: float) -> dict | None:
        """The listing a stopped run saved for exactly this range, if recent enough; it is used once (one
        transaction: two runs on two hosts never both take it)."""
        with self._lock, self._writers.held(), self._con.write_transaction():
            row = self._con.execute("SELECT saved_at, listing FROM listings WHERE entity = ? AND first_day = ? "
                                    "AND last_day = ?", (entity, first_day, last_day)).fetchone()
            self._con.execute("DELETE FROM listings WHERE entity = ? AND first_day = ? AND last_day = ?",
                              (entity, first_day, last_day))
        if row is None or time.time() - row[0] > max_age_seconds:
            return None
        return json.loads(row[1], parse_float=Decimal)

    def count(self, entity: str | None = None) -> int:
        with self._lock:
            if entity is None:
                return self._con.execute("SELECT count(*) FROM staged").fetchone()[0]
            return self._con.execute("SELECT count(*) FROM staged WHERE entity = ?", (entity,)).fetchone()[0]

    def close(self) -> None:
        self._con.close()
        self._writers.close()
