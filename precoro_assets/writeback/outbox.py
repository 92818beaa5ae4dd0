"""The write-back outbox: every write to Precoro that reconciliation proposes, and what became of it.

Where it lives, and why: a SQLite file in PRECORO_STATE_DIR (`outbox.sqlite`), or the `outbox` table in
PostgreSQL when PRECORO_DATABASE_URL is set (runs on several hosts; see precoro_assets.runtime.shared_state), is the
operational queue, and
`precoro.writeback_outbox` in the warehouse is a copy for analysts, refreshed after each reconciliation and
each write-back run. The queue needs what the warehouse is not built for:
- a status change is one small transaction that must be durable *before* the HTTP request it guards (the
  "in flight" mark of a payment POST), so a crash or a lost response can always be detected afterwards;
- taking a row is a compare-and-set (`UPDATE ... WHERE status = 'pending'`), so two write-back runs never
  send the same row; SQLite gives row-level transactions with WAL and a busy timeout, PostgreSQL the same across
  hosts;
- hundreds of such updates per run: in DuckLake every commit writes catalog rows and files, and
  `Warehouse.write` may re-run its function, which suits rebuilding tables, not claiming rows.
Rows are never deleted. A proposal is keyed by its idempotency key (ON CONFLICT DO NOTHING): re-running
reconciliation neither duplicates a row nor brings a sent, skipped or failed one back to pending.

Statuses: pending -> sending -> sent | skipped | failed; a transient error returns the row to pending (to be
retried by the next run); `in_flight` keeps the evidence needed to adopt a payment whose answer was lost. A
pending row that a later reconciliation no longer proposes is skipped as superseded (pending again if it is
proposed again: it was never sent). `precoro-assets writeback --retry-failed` re-queues failed rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..runtime import shared_state
from .proposals import Proposal

PENDING, SENDING, SENT, SKIPPED, FAILED = "pending", "sending", "sent", "skipped", "failed"
STATUSES = (PENDING, SENDING, SENT, SKIPPED, FAILED)
DONE = (SENT, SKIPPED, FAILED)

# A row left in `sending` by a run that died is taken again after this long (its write is then checked first).
LEASE = timedelta(minutes=15)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    idempotency_key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    resource TEXT NOT NULL,
    target_key TEXT NOT NULL,
    target_id INTEGER,
    payload TEXT NOT NULL,
    reason TEXT NOT NULL,
    ledger_ref TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'skipped', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,
    last_error TEXT,
    sent_request TEXT,
    in_flight TEXT,
    proposed_by TEXT,
    superseded_by TEXT,
    last_run_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    attempted_at TEXT,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_status ON outbox (status);
"""


# Rows in the order they were proposed, ids in numeric order. SQLite's CAST of a non-number gives 0 where
# PostgreSQL raises, hence two spellings.
_ROWS_IN_ORDER_SQLITE = """SELECT * FROM outbox ORDER BY created_at, kind, resource,
CAST(target_key AS INTEGER), target_key, idempotency_key"""
_ROWS_IN_ORDER_POSTGRES = """SELECT * FROM outbox ORDER BY created_at, kind, resource,
CASE WHEN target_key ~ '^-?[0-9]{1,18}$' THEN CAST(target_key AS BIGINT) ELSE 0 END, target_key, idempotency_key"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class OutboxRow:
    key: str
    kind: str
    resource: str
    target_key: str
    target_id: int | None
    payload: dict[str, Any]
    reason: str
    ledger_ref: str | None
    status: str
    attempts: int
    outcome: str | None
    last_error: str | None
    sent_request: str | None
    in_flight: dict[str, Any] | None
    proposed_by: str | None
    superseded_by: str | None
    last_run_id: str | None
    created_at: str
    updated_at: str
    attempted_at: str | None
    finished_at: str | None

    @classmethod
    def from_sql(cls, row: Any) -> OutboxRow:
        """From a row read with `rows_as_dicts` (SQLite or PostgreSQL)."""
        values = dict(row)
        values["key"] = values.pop("idempotency_key")
        values["payload"] = json.loads(values["payload"])
        values["in_flight"] = json.loads(values["in_flight"]) if values["in_flight"] else None
        return cls(**values)

    def as_table_row(self) -> dict[str, Any]:
        """The row for the warehouse copy (timestamps as datetimes, JSON as text)."""
        values = {k: v for k, v in vars(self).items() if k != "key"}
        values["idempotency_key"] = self.key
        values["payload"] = json.dumps(self.payload, sort_keys=True)
        values["in_flight"] = json.dumps(self.in_flight, sort_keys=True) if self.in_flight else None
        for name in ("created_at", "updated_at", "attempted_at", "finished_at"):
            values[name] = datetime.fromisoformat(values[name]) if values[name] else None
        return values


@dataclass(frozen=True)
class ProposeSummary:
    proposed: int  # rows in this reconciliation's proposal
    new: int  # queued now
    known: int  # already queued by an earlier reconciliation (left as they are)
    revived: int  # superseded earlier (never sent), proposed again: pending again
    superseded: int  # pending rows this reconciliation no longer proposes (now skipped)


class Outbox:
    """The queue in one SQLite file (or PostgreSQL table). Each method is one short transaction."""

    def __init__(self, path: str | Path, database_url: str | None = None) -> None:
        """`path` is the SQLite file; `database_url` (PRECORO_DATABASE_URL, from the settings) keeps the queue in
        PostgreSQL instead."""
        self.path = Path(path)
        self.database_url = database_url

    def exists(self) -> bool:
        """Whether anything was ever queued here (reading must not create a SQLite file)."""
        return self.database_url is not None or self.path.exists()

    @contextmanager
    def _connect(self, write: bool = True) -> Iterator[shared_state.StateConnection]:
        # synchronous=FULL: a committed status survives a power cut
        con = shared_state.connect(self.path, database_url=self.database_url, synchronous="FULL", timeout=30,
                                   rows_as_dicts=True, read_only=not write)
        try:
            if write or con.postgres:
                con.create(SCHEMA)
            yield con
        finally:
            con.close()

    @contextmanager
    def _transaction(self) -> Iterator[shared_state.StateConnection]:
        with self._connect() as con, con.write_transaction():  # no two runs interleave a check and a set
            yield con

    # ---- reconciliation side ------------------------------------------------------------------------------

    def propose(self, proposals: Iterable[Proposal], batch_id: str,
                resources: Iterable[str] | None = None) -> ProposeSummary:
        """Queue new proposals and leave known ones as they are (a sent row is never sent again).

        Pending rows this batch no longer proposes are retired (skipped, `superseded_by`): the disagreement went
        away. Should it come back, the same row returns to pending: it was never sent. Only rows of `resources`
        are this batch's to retire (reconciliation writes documents, the catalogue sync suppliers; one never
        retires the other's rows); None: every pending row.
        """
        scope = set(resources) if resources is not None else None
        proposals = list(proposals)
        now = _now()
        with self._transaction() as con:
            new = revived = 0
            for p in proposals:
                cursor = con.execute(
                    "INSERT INTO outbox (idempotency_key, kind, resource, target_key, target_id, payload, "
                    "reason, ledger_ref, status, proposed_by, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
                    [p.idempotency_key, p.kind, p.resource, p.target_key, p.target_id,
                     json.dumps(p.payload, sort_keys=True), p.reason, p.ledger_ref, batch_id, now, now])
                new += cursor.rowcount
                if not cursor.rowcount:
                    revived += con.execute(
                        "UPDATE outbox SET status = 'pending', superseded_by = NULL, outcome = NULL, "
                        "finished_at = NULL, updated_at = ? WHERE idempotency_key = ? AND status = 'skipped' "
                        "AND superseded_by IS NOT NULL", [now, p.idempotency_key]).rowcount
            keys = {p.idempotency_key for p in proposals}
            stale = [row["idempotency_key"] for row in con.execute(
                "SELECT idempotency_key, resource FROM outbox WHERE status = 'pending' AND in_flight IS NULL")
                if row["idempotency_key"] not in keys and (scope is None or row["resource"] in scope)]
            for key in stale:
                con.execute("UPDATE outbox SET status = 'skipped', superseded_by = ?, outcome = ?, updated_at = ?, "
                            "finished_at = ? WHERE idempotency_key = ?",
                            [batch_id, f"superseded: reconciliation {batch_id} no longer proposes it", now, now, key])
        return ProposeSummary(len(proposals), new, len(keys) - new - revived, revived, len(stale))

    # ---- write-back side --------------------------------------------------------------------------------

    def rows(self, statuses: Iterable[str] | None = None) -> list[OutboxRow]:
        if not self.exists():
            return []
        with self._connect(write=False) as con:
            rows = con.execute(_ROWS_IN_ORDER_POSTGRES if con.postgres else _ROWS_IN_ORDER_SQLITE).fetchall()
        wanted = set(statuses) if statuses is not None else None
        return [OutboxRow.from_sql(r) for r in rows if wanted is None or r["status"] in wanted]

    def get(self, key: str) -> OutboxRow:
        with self._connect() as con:
            return OutboxRow.from_sql(con.execute("SELECT * FROM outbox WHERE idempotency_key = ?", [key]).fetchone())

    def counts(self) -> dict[str, int]:
        """Rows per status (every status listed); reads only, so a sensor may call it."""
        counts = dict.fromkeys(STATUSES, 0)
        if self.exists():
            with self._connect(write=False) as con:
                for row in con.execute("SELECT status, count(*) AS n FROM outbox GROUP BY status"):
                    counts[row["status"]] = row["n"]
        return counts

    def workable(self, now: datetime | None = None) -> list[OutboxRow]:
        """Rows a run may take: pending ones, and `sending` ones whose run died (older than LEASE)."""
        cutoff = ((now or datetime.now(UTC)) - LEASE).isoformat(timespec="microseconds")
        return [r for r in self.rows((PENDING, SENDING))
                if r.status == PENDING or (r.attempted_at or "") < cutoff]

    def leased(self, now: datetime | None = None) -> list[OutboxRow]:
        """Rows in `sending` still within their lease: another run has them, or one died and they wait it out."""
        cutoff = ((now or datetime.now(UTC)) - LEASE).isoformat(timespec="microseconds")
        return [r for r in self.rows((SENDING,)) if (r.attempted_at or "") >= cutoff]

    def claim(self, key: str, run_id: str, now: datetime | None = None) -> OutboxRow | None:
        """Take a row for this run (pending, or sending past its lease); None if another run has it."""
        stamp = _now()
        cutoff = ((now or datetime.now(UTC)) - LEASE).isoformat(timespec="microseconds")
        with self._transaction() as con:
            cursor = con.execute(
                "UPDATE outbox SET status = 'sending', attempts = attempts + 1, last_run_id = ?, attempted_at = ?, "
                "updated_at = ? WHERE idempotency_key = ? "
                "AND (status = 'pending' OR (status = 'sending' AND coalesce(attempted_at, '') < ?))",
                [run_id, stamp, stamp, key, cutoff])
            if cursor.rowcount != 1:
                return None
            return OutboxRow.from_sql(con.execute("SELECT * FROM outbox WHERE idempotency_key = ?", [key]).fetchone())

    def mark_in_flight(self, key: str, evidence: dict[str, Any], request: str) -> None:
        """Written (and committed) before a non-idempotent request goes out: what Precoro held just before."""
        with self._transaction() as con:
            con.execute("UPDATE outbox SET in_flight = ?, sent_request = ?, updated_at = ? WHERE idempotency_key = ?",
                        [json.dumps(evidence, sort_keys=True), request, _now(), key])

    def note_request(self, key: str, request: str) -> None:
        """Record an idempotent write (PATCH) just before it is sent."""
        with self._transaction() as con:
            con.execute("UPDATE outbox SET sent_request = ?, updated_at = ? WHERE idempotency_key = ?",
                        [request, _now(), key])

    def finish(self, key: str, status: str, outcome: str, last_error: str | None = None,
               keep_in_flight: bool = False) -> None:
        """The row reached sent, skipped or failed."""
        if status not in DONE:
            raise ValueError(f"finish() takes {DONE}, not {status!r}")
        now = _now()
        with self._transaction() as con:
            con.execute(
                "UPDATE outbox SET status = ?, outcome = ?, last_error = coalesce(?, last_error), updated_at = ?, "
                "finished_at = ?, in_flight = CASE WHEN ? THEN in_flight END WHERE idempotency_key = ?",
                [status, outcome, last_error, now, now, keep_in_flight, key])

    def release(self, key: str, last_error: str) -> None:
        """A transient failure: back to pending for the next run (an in-flight mark stays, to be checked)."""
        with self._transaction() as con:
            con.execute("UPDATE outbox SET status = 'pending', last_error = ?, updated_at = ? "
                        "WHERE idempotency_key = ?", [last_error, _now(), key])

    def requeue_failed(self) -> int:
        """Failed rows back to pending (after the cause was fixed); their in-flight marks are still honoured."""
        with self._transaction() as con:
            return con.execute("UPDATE outbox SET status = 'pending', finished_at = NULL, updated_at = ? "
                               "WHERE status = 'failed'", [_now()]).rowcount
