"""What one sync did (`SyncSummary`, for logs and Dagster metadata), and a listed record's update time: shared by
the documents' sync (sync.py), the reference data's (reference.py) and the detail fetching (details.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from ..warehouse.rows import (
    Problem,
    parse_time,
    to_json,
)


@dataclass
class SyncSummary:
    """What one sync did, for logs and Dagster metadata."""

    entity: str
    listed: int = 0  # documents this run listed (a list walk of their days)
    handed_over: int = 0  # documents a sensor handed to this run as changed (their days not listed)
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    details_fetched: int = 0
    details_from_staging: int = 0
    full_refresh: bool | None = None
    listed_per_day: dict[str, int] = field(default_factory=dict)
    vanished: list[str] = field(default_factory=list)  # listed, then 404 on their detail: deleted meanwhile
    unstable_days: list[str] = field(default_factory=list)  # days whose list kept moving: nothing removed
    kept_elsewhere: list[str] = field(default_factory=list)  # missing from their day's list, but they exist
    per_day: dict[str, dict[str, int]] = field(default_factory=dict)  # day -> listed/new/changed/... of that day
    # documents a change run filed under their own createDate's day, not the run's partition: day -> documents
    filed_under: dict[str, int] = field(default_factory=dict)
    rows_written: dict[str, int] = field(default_factory=dict)
    rejected: list[dict] = field(default_factory=list)  # partition_day, reason, raw, seen_at
    problems: list[Problem] = field(default_factory=list)

    def reject(self, reason: str, record: object, day: date | None = None) -> None:
        """Keep a record out of its table, with the reason; it goes to precoro.rejected_records."""
        self.rejected.append({"partition_day": day, "reason": reason, "raw": to_json(record),
                              "seen_at": datetime.now(UTC)})

    def count_detail(self, from_staging: bool) -> None:
        if from_staging:
            self.details_from_staging += 1
        else:
            self.details_fetched += 1

    def add_written(self, written: dict[str, int]) -> None:
        for table, count in written.items():
            self.rows_written[table] = self.rows_written.get(table, 0) + count

    def merge(self, other: SyncSummary) -> None:
        """Add another sync of the same entity (other days) to this one."""
        for name in ("listed", "handed_over", "new", "changed", "unchanged", "removed", "details_fetched", "details_from_staging"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("vanished", "unstable_days", "kept_elsewhere", "rejected", "problems"):
            getattr(self, name).extend(getattr(other, name))
        self.listed_per_day.update(other.listed_per_day)
        self.per_day.update(other.per_day)
        for day, count in other.filed_under.items():
            self.filed_under[day] = self.filed_under.get(day, 0) + count
        self.add_written(other.rows_written)


def update_date(row: dict) -> datetime | None:
    try:
        return parse_time(row["updateDate"]) if row.get("updateDate") else None
    except (TypeError, ValueError):
        return None
