"""Precoro's rate limits, enforced per token exactly as the help centre documents them.

All at once: 1 request per second, no identical GET within 60 s, 300 per minute, 1,500 per hour and
3,000 per day. Every request counts, 429s included, and after a 429 every request fails until the
window passes. Windows are sliding (the strictest reading: a client that passes here also passes
fixed calendar windows). A 429's retry time is rounded up to the whole second as Precoro shows it; sped
up (`scaled:F`, F != 1) it is rounded up to the millisecond instead, since a whole wall-clock second
would be F simulated seconds. Hand-written rather than pyrate-limiter because we must *reproduce* Precoro's
answers (which window, when to retry, counting rejected requests), not pace a client.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

SECOND_LIMITER = "Second limiter"
IDENTICAL_GET_LIMITER = "Route based limiter by minute"
MINUTE_LIMITER = "Minute limiter"
HOURLY_LIMITER = "Hourly limiter"
DAILY_LIMITER = "Daily limiter"


@dataclass(frozen=True)
class Limits:
    """The documented limits; `scale` F divides every window (a quota day passes in 86400/F s)."""

    enabled: bool = True
    scale: float = 1.0
    per_second: int = 1
    identical_get_seconds: float = 60.0
    per_minute: int = 300
    per_hour: int = 1500
    per_day: int = 3000

    @classmethod
    def parse(cls, text: str) -> Limits:
        """`real`, `off` or `scaled:F` (the simulator's --limits option)."""
        if text == "real":
            return cls()
        if text == "off":
            return cls(enabled=False)
        if text.startswith("scaled:"):
            try:
                scale = float(text.split(":", 1)[1])
            except ValueError:
                scale = 0
            if scale > 0:
                return cls(scale=scale)
        raise ValueError(f"--limits must be 'real', 'off' or 'scaled:F' with F > 0, not {text!r}")

    @property
    def mode(self) -> str:
        if not self.enabled:
            return "off"
        return "real" if self.scale == 1 else f"scaled:{self.scale:g}"

    def windows(self) -> list[tuple[str, float, int]]:
        """(RateLimit-Type, window length in seconds, requests allowed), longest window first."""
        return [
            (DAILY_LIMITER, 86400 / self.scale, self.per_day),
            (HOURLY_LIMITER, 3600 / self.scale, self.per_hour),
            (MINUTE_LIMITER, 60 / self.scale, self.per_minute),
            (SECOND_LIMITER, 1 / self.scale, self.per_second),
        ]

    def describe(self) -> dict:
        return {"mode": self.mode, "scale": self.scale, "per_second": self.per_second,
                "identical_get_seconds": self.identical_get_seconds / self.scale,
                "per_minute": self.per_minute, "per_hour": self.per_hour, "per_day": self.per_day}


@dataclass
class Rejection:
    """What a 429 says: which window, its limit and when to retry."""

    limit_type: str
    limit: int
    retry_at: float  # epoch seconds, already rounded up to what the body shows (see `RateLimiter.rounded`)

    def body(self) -> dict:
        moment = datetime.fromtimestamp(self.retry_at, UTC)
        retry = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
        return {"error": "Too many requests for this endpoint", "RateLimit-Type": self.limit_type,
                "RateLimit-Retry-After": retry, "RateLimit-Limit": self.limit}


@dataclass
class _TokenState:
    arrivals: list[float] = field(default_factory=list)  # every counted request, in arrival order
    last_get: dict[str, float] = field(default_factory=dict)  # normalized URL -> last answered arrival
    blocked: Rejection | None = None
    last_armed: tuple[str, float | None] | None = None  # (URL, its previous last_get) of the last GET let in


class RateLimiter:
    """Decides, request by request, whether Precoro would answer 429.

    Every request counts in the second, minute, hour and day windows, rejected ones too. Only a GET that
    is answered (not a 429) starts its URL's identical-GET minute: a refused GET was never served.
    A 429's retry time is one at which the refused request, sent again, passes provided the client sends
    nothing else meanwhile: it covers the window that refused the request, any block in force, and the windows the
    refused request itself now fills (so a request sent during a block may push the retry time later).
    """

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.time):
        self.limits = limits
        self.clock = clock
        self._tokens: dict[str, _TokenState] = {}

    def admit(self, token: str, method: str, url_key: str, now: float | None = None) -> Rejection | None:
        """Count a request; return the 429 it gets, or None when it may be served."""
        now = self.clock() if now is None else now
        if not self.limits.enabled:
            # no limits, but a 429 injected by a fault (`force`) still blocks until its retry time
            state = self._tokens.get(token)
            if state is not None and state.blocked is not None and now < state.blocked.retry_at:
                return state.blocked
            return None
        state = self._tokens.setdefault(token, _TokenState())
        # Requests handled in parallel can reach the limiter out of arrival order: keep `arrivals`
        # sorted and compare with the nearest neighbour on either side.
        index = bisect.bisect_right(state.arrivals, now)
        previous = state.arrivals[index - 1] if index else None
        following = state.arrivals[index] if index < len(state.arrivals) else None
        previous_same_get = state.last_get.get(url_key) if method == "GET" else None
        state.arrivals.insert(index, now)  # every request counts, the rejected ones too
        self._forget_old(state, now)

        blocked = state.blocked if state.blocked is not None and now < state.blocked.retry_at else None
        # `rejections`: the rules that refuse this request. `fills`: windows it passes but fills up, so that the same
        # request sent again would be refused by them: if it is refused anyway, its retry time must cover them too.
        rejections: list[Rejection] = []
        fills: list[Rejection] = []
        for limit_type, window, allowed in self.limits.windows():
            if limit_type == SECOND_LIMITER:
                too_close = ((previous is not None and now - previous < window)
                             or (following is not None and following - now < window))
                # a request passes a window's length after the latest arrival (this one, or one that reached
                # the limiter before it though it arrived later); nothing arrives in between if the client waits
                passes_at = state.arrivals[-1] + window
                (rejections if too_close else fills).append(Rejection(limit_type, allowed, passes_at))
                continue
            in_window = self._in_window(state, now, window)  # this request included
            if in_window >= allowed:
                # A request sent at T counts itself too, so it passes once at most `allowed - 1` of the arrivals so far
                # (this one included) are in (T - window, T]: once arrivals[-allowed] has left. This one is refused
                # only past `allowed` (> allowed); at exactly `allowed` it passes but a retry of it would not.
                passes_at = state.arrivals[len(state.arrivals) - allowed] + window
                (rejections if in_window > allowed else fills).append(Rejection(limit_type, allowed, passes_at))
        identical_window = self.limits.identical_get_seconds / self.limits.scale
        if previous_same_get is not None and abs(now - previous_same_get) < identical_window:
            rejections.append(Rejection(IDENTICAL_GET_LIMITER, 1, previous_same_get + identical_window))
        if blocked is None and not rejections:
            if method == "GET":
                state.last_armed = (url_key, previous_same_get)
                state.last_get[url_key] = max(now, previous_same_get or now)
            return None
        # refused (by a rule or by the block), it still counts: the windows it fills must have passed by its retry time;
        # the 429 names what refused it (a rule, else the block in force), as Precoro's would, with the later time
        refusing = max(rejections, key=lambda r: r.retry_at) if rejections else blocked
        rejections += [Rejection(refusing.limit_type, refusing.limit, fill.retry_at) if refusing else fill
                       for fill in fills]
        if blocked is not None:
            # after a 429 every request fails until the window passes; this one still counts (in the
            # per-second window at least), so its answer may have to name a later time than the block's
            rejections = [r for r in rejections if r.retry_at > blocked.retry_at]
            if not rejections:
                return blocked
        worst = max(rejections, key=lambda r: r.retry_at)
        worst.retry_at = self.rounded(worst.retry_at)
        state.blocked = worst
        return worst

    def rounded(self, moment: float) -> float:
        """A retry time rounded up to what a 429 shows: Precoro's whole second, when time is scaled too (real
        clients, Precoro's own connector among them, fail on a fraction). Scaled, a block then lasts up to a
        wall-clock second longer than its simulated time: a 429 costs more, as it does at Precoro."""
        return float(math.ceil(moment))

    def force(self, token: str, limit_type: str, limit: int, retry_after_seconds: float,
              method: str = "GET", url_key: str | None = None) -> Rejection:
        """A 429 on demand (fault injection) for a request `admit` has let in: blocks the token like a
        real one, and the refused GET does not start its URL's identical-GET minute."""
        now = self.clock()
        state = self._tokens.setdefault(token, _TokenState())  # `admit` has already counted the request
        if method == "GET" and url_key is not None and state.last_armed and state.last_armed[0] == url_key:
            previous = state.last_armed[1]
            if previous is None:
                state.last_get.pop(url_key, None)
            else:
                state.last_get[url_key] = previous
        retry_at = now + retry_after_seconds
        if self.limits.enabled:
            retry_at = max(retry_at, now + 1 / self.limits.scale)
        rejection = Rejection(limit_type, limit, self.rounded(retry_at))
        state.blocked = rejection
        return rejection

    @staticmethod
    def _in_window(state: _TokenState, now: float, window: float) -> int:
        """Requests that arrived in the last `window` seconds (one exactly `window` ago has left)."""
        return len(state.arrivals) - bisect.bisect_right(state.arrivals, now - window)

    def _forget_old(self, state: _TokenState, now: float) -> None:
        day = 86400 / self.limits.scale
        if len(state.arrivals) > 1024 and state.arrivals[0] < now - day:
            del state.arrivals[: bisect.bisect_left(state.arrivals, now - day)]
        if len(state.last_get) > 4096:
            horizon = now - self.limits.identical_get_seconds / self.limits.scale
            state.last_get = {k: v for k, v in state.last_get.items() if v >= horizon}

    def usage(self, token: str) -> dict:
        """Requests counted in each window right now (for /_sim/stats)."""
        now = self.clock()
        state = self._tokens.get(token, _TokenState())
        names = {DAILY_LIMITER: "day", HOURLY_LIMITER: "hour", MINUTE_LIMITER: "minute", SECOND_LIMITER: "second"}
        usage: dict[str, object] = {names[t]: self._in_window(state, now, w) for t, w, _ in self.limits.windows()}
        blocked = state.blocked if state.blocked and state.blocked.retry_at > now else None
        usage["blocked_until"] = (datetime.fromtimestamp(blocked.retry_at, UTC).isoformat() if blocked else None)
        usage["blocked_by"] = blocked.limit_type if blocked else None
        usage["limits"] = self.limits.describe()
        return usage
