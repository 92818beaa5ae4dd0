"""Configuration from the environment: read, never written.

For a real account set PRECORO_API_TOKEN, PRECORO_EMAIL and PRECORO_BASE_URL (or PRECORO_REGION=eu|us); local
state lives under ./var unless PRECORO_HOME says otherwise. With no token, `load()` raises an error that says
what to set. (The bundled simulator, the "embedded default" the demo and the tests use, is the harness's: it
sets these variables before the product reads them.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class Settings:
    base_url: str | None
    region: str
    start_date: date
    home: Path  # where local state lives: the warehouse, the request ledger, staged details
    warehouse: Path
    state_dir: Path
    time_scale: float
    sensor_interval_seconds: int
    timezone: str  # the company's time zone: the calendar of Precoro's createDate filter and of the partitions
    owners: tuple[str, ...] = ("team:finance_integration",)  # who answers for the assets (Dagster owners)
    webhooks: bool = False  # Precoro sends webhooks to `precoro-assets webhooks`: the polling sensor is the safety net
    # the share of the day's request quota that webhook events may spend (a flood waits for later days)
    webhook_quota_share: float = 0.30


def project_home() -> Path:
    return Path(os.environ.get("PRECORO_HOME", Path.cwd() / "var")).resolve()


def warehouse_dir() -> Path:
    """PRECORO_WAREHOUSE, else <PRECORO_HOME>/warehouse: all a reader of the warehouse needs to know."""
    return Path(os.environ.get("PRECORO_WAREHOUSE", project_home() / "warehouse")).resolve()


MISSING_TOKEN = (
    "PRECORO_API_TOKEN is not set. For a Precoro account set PRECORO_API_TOKEN and PRECORO_EMAIL (and "
    "PRECORO_BASE_URL, or PRECORO_REGION=eu|us). To try precoro-assets without an account, `precoro-assets demo` "
    "runs the bundled Precoro simulator (and `precoro-assets sync` uses it when no token is set).")


def load() -> Settings:
    if not os.environ.get("PRECORO_API_TOKEN"):
        raise ValueError(MISSING_TOKEN)
    home = project_home()
    start = os.environ.get("PRECORO_START_DATE") or (datetime.now(UTC).date() - timedelta(days=365)).isoformat()
    try:
        start_date = date.fromisoformat(start)
    except ValueError:
        raise ValueError(f"PRECORO_START_DATE must be YYYY-MM-DD, not {start!r}") from None
    webhooks = os.environ.get("PRECORO_WEBHOOKS", "").strip().lower() in ("1", "true", "yes", "on")
    timezone = os.environ.get("PRECORO_TIMEZONE") or "UTC"
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"PRECORO_TIMEZONE must be an IANA time zone name such as Europe/Warsaw or UTC, "
                         f"not {timezone!r}") from None
    return Settings(
        base_url=os.environ.get("PRECORO_BASE_URL") or None,
        region=os.environ.get("PRECORO_REGION", "eu"),
        start_date=start_date,
        home=home,
        warehouse=warehouse_dir(),
        state_dir=Path(os.environ.get("PRECORO_STATE_DIR", home / "state")).resolve(),
        time_scale=float(os.environ.get("PRECORO_TIME_SCALE", "1")),
        # with webhooks on, polling is the safety net for lost deliveries: every 6 hours
        sensor_interval_seconds=int(os.environ.get("PRECORO_SENSOR_INTERVAL_SECONDS",
                                                   "21600" if webhooks else "1800")),
        timezone=timezone,
        webhooks=webhooks,
        owners=_owners(os.environ.get("PRECORO_ASSET_OWNERS", "team:finance_integration")),
        webhook_quota_share=_percent("PRECORO_WEBHOOK_QUOTA_SHARE", "30"),
    )


def _percent(name: str, default: str) -> float:
    """A percentage setting (`30` or `30%`), as a fraction."""
    text = (os.environ.get(name) or default).strip().removesuffix("%").strip()
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 100:
        raise ValueError(f"{name} must be a percentage above 0 and at most 100 (e.g. 30), not {text!r}")
    return value / 100


def _owners(text: str) -> tuple[str, ...]:
    """PRECORO_ASSET_OWNERS: e-mail addresses or team:names, comma-separated (empty: no owners)."""
    owners = tuple(part.strip() for part in text.split(",") if part.strip())
    for owner in owners:
        if not (owner.startswith("team:") and owner[5:]) and "@" not in owner:
            raise ValueError(f"PRECORO_ASSET_OWNERS holds e-mail addresses or team:names, comma-separated; "
                             f"{owner!r} is neither")
    return owners
