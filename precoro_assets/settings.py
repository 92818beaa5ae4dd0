"""Configuration from the environment, with the embedded default when nothing is set.

For a real account set PRECORO_API_TOKEN, PRECORO_EMAIL and PRECORO_BASE_URL (or PRECORO_REGION=eu|us).
With no token set, everything points at the bundled simulator on 127.0.0.1:8787 (seed 7) and a local
warehouse under ./var, so the demo and the tests need no account and no network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SIMULATOR_PORT = 8787
SIMULATOR_SEED = 7
SIMULATOR_DAYS = 90
# The embedded simulator runs Precoro's limits 10x faster (1 s -> 0.1 s, a quota day -> 2.4 h) so the
# demo is quick while every limit is still enforced; the client is told the same scale.
SIMULATOR_TIME_SCALE = 10.0


def simulator_port() -> int:
    """Where the embedded default looks for (or starts) the simulator: PRECORO_SIMULATOR_PORT, else 8787."""
    return int(os.environ.get("PRECORO_SIMULATOR_PORT", SIMULATOR_PORT))


def webhook_port() -> int:
    """Where the demo receives the simulator's webhooks: PRECORO_WEBHOOK_PORT, else 8790."""
    return int(os.environ.get("PRECORO_WEBHOOK_PORT", "8790"))


def simulator_limits() -> str:
    return f"scaled:{SIMULATOR_TIME_SCALE:g}"


def _running_simulator_scale(base_url: str) -> float | None:
    """The time scale of a simulator already serving at base_url (its control API says), if any."""
    import httpx

    try:
        limits = httpx.get(f"{base_url}/_sim/info", timeout=0.5).json()["limits"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    return 1000.0 if limits.get("mode") == "off" else float(limits.get("scale", 1))


@dataclass(frozen=True)
class Settings:
    using_simulator: bool
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


def apply_embedded_default() -> bool:
    """Point the process at the simulator when no token is configured; returns whether it did.

    The secrets still reach Dagster through EnvVar, so even the simulator's token never shows in run config.
    """
    if os.environ.get("PRECORO_API_TOKEN"):
        return False
    from precoro_sim.simulator.app import SIM_EMAIL, token_for_seed

    os.environ["PRECORO_API_TOKEN"] = token_for_seed(SIMULATOR_SEED)
    os.environ.setdefault("PRECORO_EMAIL", SIM_EMAIL)
    os.environ.setdefault("PRECORO_BASE_URL", f"http://127.0.0.1:{simulator_port()}")
    os.environ.setdefault("PRECORO_START_DATE", (datetime.now(UTC).date() - timedelta(days=SIMULATOR_DAYS)).isoformat())
    return True


def load() -> Settings:
    using_simulator = apply_embedded_default()
    home = project_home()
    start = os.environ.get("PRECORO_START_DATE") or (datetime.now(UTC).date() - timedelta(days=365)).isoformat()
    try:
        start_date = date.fromisoformat(start)
    except ValueError:
        raise ValueError(f"PRECORO_START_DATE must be YYYY-MM-DD, not {start!r}") from None
    if using_simulator and not os.environ.get("PRECORO_TIME_SCALE"):
        scale = _running_simulator_scale(os.environ["PRECORO_BASE_URL"]) or SIMULATOR_TIME_SCALE
        os.environ["PRECORO_TIME_SCALE"] = f"{scale:g}"
    webhooks = os.environ.get("PRECORO_WEBHOOKS", "").strip().lower() in ("1", "true", "yes", "on")
    timezone = os.environ.get("PRECORO_TIMEZONE") or "UTC"
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"PRECORO_TIMEZONE must be an IANA time zone name such as Europe/Warsaw or UTC, "
                         f"not {timezone!r}") from None
    return Settings(
        using_simulator=using_simulator,
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
