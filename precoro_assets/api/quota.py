"""The Precoro request budget, shared by every process on this machine (or on every host).

Dagster runs each partition, backfill step and sensor tick in its own process, but Precoro
counts requests per token. So the budget lives in one small ledger that every process shares, a SQLite file
per state directory or, with PRECORO_DATABASE_URL, tables in PostgreSQL (see precoro_assets.runtime.shared_state),
and every request is written to it *before* it is sent:

    requests(token_key, started, method, url_key)   one row per request start (kept one day)
    blocks(token_key, until, limit_type)             "send nothing before `until`" after a 429

`acquire()` opens a write transaction (one writer at a time across processes: SQLite's `BEGIN IMMEDIATE`, or
PostgreSQL's advisory lock across hosts; taken in turn on each machine through a file lock, see
precoro_assets.runtime.process_lock, so a waiting writer is woken at once),
works out the earliest moment every rule allows the request, and either inserts its row and
commits (the slot is taken, the caller sends at once) or rolls back and sleeps until then.
Because the check and the insert happen in one write transaction, two processes can never
both take the same slot. The rules, per token:

- request starts are spaced by 1/per_second seconds plus a safety margin;
- a GET whose normalized URL (path + sorted query) started less than 60 s ago waits;
- sliding windows: at most 300 starts in any minute, 1,500 in any hour, 3,000 in any day
  (a sliding window never exceeds a fixed window's count, so it is safe either way);
- nothing is sent before a shared `blocks.until` recorded from a 429's `RateLimit-Retry-After`.

When the earliest allowed moment is further away than `max_wait_seconds` (the hour or day is
full, or a 429 said "come back tomorrow"), `acquire()` raises `QuotaExhausted(resume_at)`
without sending anything.

Why a hand-written ledger and not pyrate-limiter's SQLiteBucket: the bucket counts items in
rate windows, but it cannot take the identical-GET rule and the shared 429 block into the same
atomic decision, and it does not tell us *when* the day window frees up (we need that exact
moment for `QuotaExhausted.resume_at`). The ledger below is one table and a few COUNT queries.

The token itself is never stored: rows are keyed by a SHA-256 of it.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from precoro_assets.api.errors import QuotaExhausted
from precoro_assets.runtime import shared_state
from precoro_assets.runtime.process_lock import ProcessLock

DAILY_QUOTA = 3000  # Precoro's requests per sliding day: what history takes longest to fetch by

logger = logging.getLogger(__name__)

SECOND, MINUTE, HOUR, DAY = 1.0, 60.0, 3600.0, 86400.0


@dataclass(frozen=True)
class QuotaLimits:
    """Precoro's documented limits (the defaults) and the margins we keep under them.

    `time_scale` F divides every window (the simulator's `--limits scaled:F`): with F=1000 a
    day lasts 86.4 s. Counts are never scaled.
    """

    per_second: float = 1.0
    per_minute: int = 300
    per_hour: int = 1500
    per_day: int = DAILY_QUOTA
    identical_get_seconds: float = 60.0
    time_scale: float = 1.0
    # Starts are spaced (1 + spacing_margin) / per_second apart: latency and scheduling jitter
    # between our processes must not make two requests land closer than Precoro's 1 s. A generous
    # margin costs nothing real: the day's 3,000 requests, not the pace, bound the throughput.
    spacing_margin: float = 0.25
    # Added to the identical-GET window and to the minute/hour/day windows, so that a request's
    # latency (we record its start, Precoro its arrival) can't make a window look shorter.
    window_margin_seconds: float = 1.0
    # Latency does not shrink with time_scale: margins never go below these wall-clock seconds
    # (windows: a request's latency; spacing: the moment between taking a slot and sending).
    margin_floor_seconds: float = 0.01
    spacing_floor_seconds: float = 0.002
    # Scheduling jitter does not shrink with time_scale either: on a busy machine a process can lose the CPU for
    # tens of milliseconds between its send and the server's reading it, so two well-spaced requests of two
    # processes arrive closer (a 429 "Second limiter" at the demo's 10x pace, 25 ms of margin). The margin is
    # at least this many wall-clock seconds, but never more than the scaled interval itself (a simulator sped
    # up 1000x keeps its pace).
    spacing_jitter_seconds: float = 0.1

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if self.per_second <= 0 or min(self.per_minute, self.per_hour, self.per_day) <= 0:
            raise ValueError("limits must be positive")

    def _scaled(self, seconds: float, margin: float, floor: float) -> float:
        """A window in wall-clock seconds: scaled length plus a scaled margin (at least `floor`).

        The floor guards a short but real window against scheduling jitter; it never exceeds ten times the
        scaled window itself, so a simulator sped up beyond any limit (F >= 10^5, microsecond windows) is not
        paced at the floor's rate."""
        scaled = seconds / self.time_scale
        return scaled + max(margin / self.time_scale, min(floor, 10 * scaled))

    @property
    def spacing(self) -> float:
        """Seconds between two request starts."""
        interval = 1.0 / self.per_second / self.time_scale
        margin = max(interval * self.spacing_margin, min(self.spacing_floor_seconds, 10 * interval),
                     min(self.spacing_jitter_seconds, interval))
        return interval + margin

    @property
    def pending_send_window(self) -> float:
        """How long a slot taken but not yet sent holds every later request back (see QuotaGuard): long enough
        for a connection to open or a busy machine to schedule the sender; a sender that died, or hangs in a
        connect for longer, holds nobody back after it."""
        return 0.0 if self.unpaced else max(5 * self.spacing, 2.0)

    @property
    def pending_poll_seconds(self) -> float:
        """How often a request held back by a slot not yet sent looks again."""
        return min(max(self.spacing / 20, 0.001), 0.05)

    @property
    def unpaced(self) -> bool:
        """Sped up so far (the simulator with no real limits) that a second lasts less than clocks and
        schedulers can hold: spacing requests precisely protects nothing."""
        return self.spacing < 0.0001

    @property
    def identical_get_window(self) -> float:
        return self._scaled(self.identical_get_seconds, self.window_margin_seconds, self.margin_floor_seconds)

    def windows(self) -> list[tuple[str, float, int]]:
        """(name, length in seconds, max requests) for each counting window, shortest first."""
        return [
            (name, self._scaled(length, self.window_margin_seconds, self.margin_floor_seconds), limit)
            for name, length, limit in (
                ("minute", MINUTE, self.per_minute),
                ("hour", HOUR, self.per_hour),
                ("day", DAY, self.per_day),
            )
        ]

    def window_after_429(self, limit_type: str) -> float:
        """How long to block after a 429 whose body gave no retry time, judged by its type."""
        lowered = limit_type.lower()
        if "daily" in lowered or "day" in lowered:
            return DAY / self.time_scale
        if "hour" in lowered:
            return HOUR / self.time_scale
        if "second" in lowered:
            return SECOND / self.time_scale
        return MINUTE / self.time_scale


@dataclass(frozen=True)
class QuotaUsage:
    """What the ledger says right now, for logs and Dagster metadata."""

    spent_by_this_client: int
    used: dict[str, int]  # window name -> requests started in it (all processes)
    remaining: dict[str, int]  # window name -> requests still allowed in it
    blocked_until: datetime | None

    def as_metadata(self) -> dict[str, int | str]:
        """Flat values for a Dagster MaterializeResult / Output metadata."""
        metadata: dict[str, int | str] = {"precoro_requests_spent": self.spent_by_this_client}
        for name, left in self.remaining.items():
            metadata[f"precoro_requests_left_{name}"] = left
        if self.blocked_until is not None:
            metadata["precoro_blocked_until"] = self.blocked_until.isoformat()
        return metadata


def token_key(token: str) -> str:
    """Key the shared state by a hash of the token, never by the token itself."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:32]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    {row_id_column}
    token_key TEXT NOT NULL,
    started   REAL NOT NULL,
    method    TEXT NOT NULL,
    url_key   TEXT NOT NULL,
    sent      REAL          -- when its first byte went out; NULL while a paced request is still on its way
);
CREATE INDEX IF NOT EXISTS requests_by_start ON requests (token_key, started);
CREATE INDEX IF NOT EXISTS requests_by_url ON requests (token_key, url_key, started);
CREATE TABLE IF NOT EXISTS blocks (
    token_key TEXT PRIMARY KEY,
    until      REAL NOT NULL,
    limit_type TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected_credentials (
    credentials_key TEXT PRIMARY KEY,
    at              REAL NOT NULL
);
"""

# After a 401 no process sends with the same token and e-mail for this long: Precoro may block a client
# that keeps sending failing requests, and a wrong token stays wrong until someone changes it.
REJECTED_CREDENTIALS_SECONDS = 600.0

# Everything the rules need about the ledger, in one statement: a request pays for its slot in the budget
# with one round trip to the database instead of six. The windows are QuotaLimits.windows(), by name.
_RULES_QUERY = """
SELECT (SELECT until FROM blocks WHERE token_key = :key),
       (SELECT limit_type FROM blocks WHERE token_key = :key),
       (SELECT MAX(started) FROM requests WHERE token_key = :key),
       (SELECT MAX(started) FROM requests WHERE token_key = :key AND url_key = :url AND method = 'GET'),
       (SELECT at FROM rejected_credentials WHERE credentials_key = :credentials),
       (SELECT MAX(started) FROM requests WHERE token_key = :key AND sent IS NULL AND started > :pending),
       (SELECT COUNT(*) FROM requests WHERE token_key = :key AND started > :minute),
       (SELECT COUNT(*) FROM requests WHERE token_key = :key AND started > :hour),
       (SELECT COUNT(*) FROM requests WHERE token_key = :key AND started > :day)
"""

# GET URLs of a list (a JSON array) started since a moment: SQLite and PostgreSQL unpack JSON arrays differently.
_RECENT_GETS_SQLITE = """SELECT DISTINCT url_key FROM requests WHERE token_key = ? AND method = 'GET' AND started > ?
AND url_key IN (SELECT value FROM json_each(?))"""
_RECENT_GETS_POSTGRES = """SELECT DISTINCT url_key FROM requests WHERE token_key = ? AND method = 'GET' AND started > ?
AND url_key IN (SELECT jsonb_array_elements_text(CAST(? AS jsonb)))"""

# Requests older than every window are deleted from the ledger at most this often (by each process): rows
# past their windows are ignored by every rule anyway, so pruning is housekeeping, not part of a decision.
PRUNE_EVERY_SECONDS = 1.0


_process_spent = 0  # requests sent by every QuotaGuard of this process (see requests_sent_by_this_process)
_process_spent_lock = threading.Lock()


def requests_sent_by_this_process() -> int:
    """Requests charged by every client of this process so far, with those its detail worker processes sent
    for it (PrecoroClient.count_spent_elsewhere): what the CLI reports for a sync, whether its assets
    succeeded or failed (a failed materialization reports nothing of its own)."""
    return _process_spent


class CredentialsRejected(Exception):  # noqa: N818 - a state, like QuotaExhausted
    """Precoro rejected these credentials `at` (a 401, recorded by any process): nothing is sent for a while."""

    def __init__(self, at: datetime) -> None:
        super().__init__(f"credentials rejected at {at.isoformat()}")
        self.at = at


class QuotaGuard:
    """Reserve a slot in the shared budget before each request (see the module docstring)."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        token: str,
        limits: QuotaLimits | None = None,
        *,
        max_wait_seconds: float = 600.0,
        database_url: str | None = None,
        shared_budget: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`database_url` (PRECORO_DATABASE_URL, from the settings) puts the ledger in PostgreSQL for every host;
        None keeps it in a SQLite file of `state_dir`. `shared_budget`: a name that keys the budget instead of the
        token, so that the tokens of several companies that give the same name (and ledger) are paced as one (one
        Precoro user's limits counted across its companies)."""
        self.limits = limits or QuotaLimits()
        self.database_url = database_url
        self.max_wait_seconds = max_wait_seconds
        self.path = Path(state_dir) / "precoro-quota.sqlite3"
        self._key = token_key(f"shared budget {shared_budget}" if shared_budget else token)
        self._token_key = token_key(token)  # a rejected token is this token's alone, budget shared or not
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()  # one transaction at a time per process
        self._writers = ProcessLock(self.path.with_suffix(".lock"))  # one write transaction at a time, all processes
        self._conn: shared_state.StateConnection | None = None
        self._conn_pid: int | None = None
        self._pruned_at = float("-inf")
        self._reserved: collections.Counter[tuple[str, str]] = collections.Counter()  # see reserve()
        self._spent = 0

    @property
    def spent(self) -> int:
        """Requests this guard charged (sent, or counted for it by worker processes)."""
        return self._spent

    @spent.setter
    def spent(self, value: int) -> None:
        global _process_spent
        with _process_spent_lock:
            _process_spent += value - self._spent
            self._spent = value

    def __repr__(self) -> str:
        return f"QuotaGuard(path={str(self.path)!r}, limits={self.limits!r})"

    # -- the ledger ---------------------------------------------------------------------

    def _connection(self) -> shared_state.StateConnection:
        # A connection must not cross a fork: reopen when we find ourselves in a new process.
        if self._conn is None or self._conn_pid != os.getpid():
            conn = shared_state.connect(self.path, database_url=self.database_url)
            conn.create(_SCHEMA)
            if not conn.postgres and "sent" not in {c[1] for c in conn.execute("PRAGMA table_info(requests)")}:
                conn.execute("ALTER TABLE requests ADD COLUMN sent REAL")  # a ledger from an earlier version
            self._conn, self._conn_pid = conn, os.getpid()
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._conn_pid == os.getpid():
                self._conn.close()
            self._conn = None
            self._writers.close()

    def _rules(self, conn: shared_state.StateConnection, now: float, url_key: str, email: str | None) -> tuple:
        """The row of _RULES_QUERY for a request of `url_key` at `now`; CredentialsRejected if Precoro rejected the
        token with this e-mail recently."""
        credentials = self._credentials_key(email) if email is not None else ""
        row = conn.execute(_RULES_QUERY, {"key": self._key, "url": url_key, "credentials": credentials,
                                          "pending": now - self.limits.pending_send_window,
                                          **{name: now - length for name, length, _ in self.limits.windows()}}
                           ).fetchone()
        rejected_at = row[4]
        if rejected_at is not None and now - rejected_at <= REJECTED_CREDENTIALS_SECONDS:
            raise CredentialsRejected(datetime.fromtimestamp(rejected_at, UTC))
        return row

    def _earliest_start(self, conn: shared_state.StateConnection, now: float, method: str, url_key: str,
                        email: str | None) -> tuple[float, str]:
        """The earliest moment every rule allows this request, and the rule that decides it; CredentialsRejected
        if Precoro rejected the token with this e-mail recently."""
        key = self._key
        windows = self.limits.windows()
        row = self._rules(conn, now, url_key, email)
        blocked_until, block_type, last, same, _, on_its_way = row[:6]
        candidates: list[tuple[float, str]] = [(now, "none")]
        if blocked_until is not None and blocked_until > now:
            candidates.append((blocked_until, block_type))
        if on_its_way is not None:
            # A slot was taken (by any process) and its request is not out yet (connecting, or its process
            # descheduled): spacing from the slot would let this request land right after that one once it
            # leaves. Look again shortly; the spacing then counts from when it really went out.
            candidates.append((now + self.limits.pending_poll_seconds, "second"))
        if last is not None:
            candidates.append((last + self.limits.spacing, "second"))
        if method == "GET" and same is not None:
            candidates.append((same + self.limits.identical_get_window, "identical GET"))
        for (name, length, limit), used in zip(windows, row[6:], strict=True):
            if used >= limit:
                # The window frees a slot when its (used - limit + 1)-th oldest start leaves it.
                (oldest,) = conn.execute(
                    "SELECT started FROM requests WHERE token_key = ? AND started > ? "
                    "ORDER BY started LIMIT 1 OFFSET ?",
                    (key, now - length, used - limit),
                ).fetchone()
                candidates.append((oldest + length, name))
        return max(candidates)

    def acquire(self, method: str, url_key: str, *, email: str | None = None, will_mark_sent: bool = False) -> int:
        """Block until this request may start, then record (charge) it; or raise QuotaExhausted, or
        CredentialsRejected when Precoro rejected the token with this `email` in the last 10 minutes.

        `url_key` is the normalized URL (path + sorted query) used by the identical-GET rule.
        Call this immediately before sending: the recorded start is "now". Returns a ticket for
        `mark_sent`. With `will_mark_sent` (a paced budget), the request counts as on its way until
        `mark_sent` (or `never_sent`): every later request, from any process, waits for that.
        """
        method = method.upper()
        if self._reserved and self._take_reserved(method, url_key):
            return 0  # no row of its own to update: mark_sent is for paced budgets, mark_refused finds none
        while True:
            with self._lock, self._writers.held():
                conn = self._connection()
                conn.begin_write()
                try:
                    now = self._clock()
                    ready_at, rule = self._earliest_start(conn, now, method, url_key, email)
                    if ready_at <= now:
                        # a paced request is on its way until mark_sent; an unpaced one counts as sent at once
                        (ticket,) = conn.execute(
                            "INSERT INTO requests (token_key, started, method, url_key, sent) VALUES (?, ?, ?, ?, ?) "
                            "RETURNING rowid",
                            (self._key, now, method, url_key,
                             None if will_mark_sent and not self.limits.unpaced else now),
                        ).fetchone()
                        if now - self._pruned_at >= PRUNE_EVERY_SECONDS:
                            longest = max(length for _, length, _ in self.limits.windows())
                            conn.execute(
                                "DELETE FROM requests WHERE token_key = ? AND started < ?",
                                (self._key, now - max(longest, self.limits.identical_get_window)),
                            )
                            self._pruned_at = now
                        conn.execute("COMMIT")
                        self.spent += 1
                        return int(ticket or 0)
                    conn.execute("ROLLBACK")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            wait = ready_at - now
            # The spacing and identical-GET waits are short by nature; only a full window or a
            # 429 block can be worth giving up for.
            if wait > self.max_wait_seconds and rule not in ("second", "identical GET"):
                resume_at = datetime.fromtimestamp(ready_at, UTC)
                logger.warning("Precoro quota: %s window full, resuming at %s", rule, resume_at)
                raise QuotaExhausted(resume_at=resume_at, window=rule)
            if wait > 5 * self.limits.spacing:
                logger.info("Precoro quota: waiting %.1f s (%s rule) before %s %s", wait, rule, method, url_key)
            self._sleep(wait)

    def identical_get_free_at(self, url_key: str) -> float:
        """When a GET of `url_key` may go again by the identical-GET rule (a moment past, if it may now).

        Read without a write transaction, so a caller can wait for it without holding anything that other
        requests need (see PrecoroClient._send_once); `acquire` checks the rule again when the time comes."""
        with self._lock:
            row = self._connection().execute(
                "SELECT MAX(started) FROM requests WHERE token_key = ? AND url_key = ? AND method = 'GET'",
                (self._key, url_key)).fetchone()
        return float("-inf") if row is None or row[0] is None else row[0] + self.limits.identical_get_window

    def wait_for_identical_get(self, url_key: str) -> None:
        """Sleep until a GET of `url_key` may go again by the identical-GET rule, holding nothing meanwhile."""
        while (wait := self.identical_get_free_at(url_key) - self._clock()) > 0:
            self._sleep(wait)

    def reserve(self, method: str, url_keys: Sequence[str], *, email: str | None = None) -> list[str]:
        """Take the slots of several requests in one transaction, when the budget is unpaced (QuotaLimits.unpaced);
        this process's next `acquire` of each returned URL then takes its slot without a transaction of its own.

        Only an unpaced budget allows it: spacing protects nothing there, and no window can fill at any rate a
        process reaches (300 starts in under a millisecond), so slots taken a few milliseconds before their
        requests leave break no rule. Even then nothing is reserved past any window's room, while a 429 block
        holds, or for a GET of a URL started within the identical-GET window: those
        requests acquire one by one, as at a real pace. A transaction per request cost a sixth of a detail
        worker's time. Release what a caller did not use with `release`. Raises CredentialsRejected as `acquire`
        does."""
        wanted = list(dict.fromkeys(url_keys))
        if not self.limits.unpaced or not wanted:
            return []
        method = method.upper()
        with self._lock, self._writers.held():
            conn = self._connection()
            conn.begin_write()
            try:
                now = self._clock()
                row = self._rules(conn, now, wanted[0], email)  # rejected credentials: raised, reserved nothing
                blocked_until = row[0]
                room = min(limit - used for (_, _, limit), used in zip(self.limits.windows(), row[6:], strict=True))
                if (blocked_until is not None and blocked_until > now) or room <= 0:
                    conn.execute("ROLLBACK")
                    return []
                recent: set[str] = set()
                if method == "GET":
                    recent = {url for (url,) in conn.execute(
                        _RECENT_GETS_POSTGRES if conn.postgres else _RECENT_GETS_SQLITE,
                        (self._key, now - self.limits.identical_get_window, json.dumps(wanted)))}
                granted = [url for url in wanted if url not in recent][:room]
                conn.executemany("INSERT INTO requests (token_key, started, method, url_key, sent) "
                                 "VALUES (?, ?, ?, ?, ?)", [(self._key, now, method, url, now) for url in granted])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._reserved.update((method, url) for url in granted)
        return granted

    def release(self, method: str, url_keys: Sequence[str]) -> None:
        """Forget reserved slots that were not used (their rows stay: counted, never sent, which only errs on the
        safe side)."""
        with self._lock:
            for url in url_keys:
                self._reserved.pop((method.upper(), url), None)

    def _take_reserved(self, method: str, url_key: str) -> bool:
        with self._lock:
            left = self._reserved.get((method, url_key), 0)
            if left <= 0:
                return False
            if left == 1:
                del self._reserved[(method, url_key)]
            else:
                self._reserved[(method, url_key)] = left - 1
            self.spent += 1
            return True

    def mark_sent(self, ticket: int) -> None:
        """Record that a request went out (its headers are written): its start moves to now, and it no longer holds
        later requests back (see `acquire(will_mark_sent=True)`).

        Opening a connection (a TLS handshake to Precoro can take a few hundred ms) happens
        after the slot was taken; the next request must be spaced from when this one really
        left, not from when it was allowed to.
        """
        now = self._clock()
        with self._lock, self._writers.held():
            conn = self._connection()
            conn.execute("UPDATE requests SET started = CASE WHEN started > ? THEN started ELSE ? END, sent = ? "
                         "WHERE rowid = ?", (now, now, now, ticket))

    def never_sent(self, ticket: int) -> None:
        """The request could not even connect: it never reached Precoro, so it neither counts in any window nor
        starts its identical-GET minute (a retry, or the next run, need not wait for it)."""
        if not ticket:
            return  # a reserved slot (unpaced budget): its row stays, erring on the safe side
        with self._lock, self._writers.held():
            conn = self._connection()
            conn.execute("DELETE FROM requests WHERE rowid = ?", (ticket,))
        self.spent -= 1

    def mark_refused(self, ticket: int) -> None:
        """A request answered 429 still counts in every window, but a refused GET was never served: Precoro
        starts its identical-GET minute only for answered GETs, so the retry need not wait that minute."""
        with self._lock, self._writers.held():
            conn = self._connection()
            conn.execute("UPDATE requests SET url_key = 'refused:' || rowid WHERE rowid = ?", (ticket,))

    def record_rate_limited(self, until: datetime, limit_type: str) -> None:
        """Remember a 429 so that every process sends nothing before `until`."""
        until_ts = until.timestamp()
        with self._lock, self._writers.held():
            conn = self._connection()
            conn.begin_write()
            try:
                conn.execute(
                    "INSERT INTO blocks (token_key, until, limit_type) VALUES (?, ?, ?) "
                    "ON CONFLICT (token_key) DO UPDATE SET until = excluded.until, limit_type = excluded.limit_type "
                    "WHERE excluded.until > blocks.until",
                    (self._key, until_ts, limit_type),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        logger.warning("Precoro answered 429 (%s): every process waits until %s", limit_type, until.isoformat())

    def _credentials_key(self, email: str) -> str:
        return token_key(self._token_key + "\n" + email.strip().lower())

    def record_rejected_credentials(self, email: str) -> None:
        """Remember a 401 for this token and e-mail, for every process."""
        with self._lock, self._writers.held():
            self._connection().execute(
                "INSERT INTO rejected_credentials VALUES (?, ?) ON CONFLICT (credentials_key) DO UPDATE SET at = excluded.at",
                (self._credentials_key(email), self._clock()))

    def seconds_for(self, requests: int) -> float:
        """About how long `requests` more requests take from now, in wall-clock seconds: their spacing, or, when
        they need more than a window has left, that window's length for each time it fills up; after any 429
        block. Infinite when the block or a window would keep them waiting longer than `max_wait_seconds`: the
        run stops (QuotaExhausted) before they are all sent. An estimate (other processes spend the same budget),
        for choices such as whether headers are worth storing ahead of details (see sync._details_take_a_while)."""
        usage = self.usage()
        blocked = 0.0 if usage.blocked_until is None else max(0.0, usage.blocked_until.timestamp() - self._clock())
        if blocked > self.max_wait_seconds:
            return math.inf
        seconds = requests * self.limits.spacing
        for name, length, limit in self.limits.windows():
            over = requests - usage.remaining[name]
            if over > 0:
                if length > self.max_wait_seconds:
                    return math.inf
                seconds = max(seconds, math.ceil(over / limit) * length)
        return blocked + seconds

    def usage(self) -> QuotaUsage:
        """Requests used and left in each window right now (all processes), and any 429 block."""
        with self._lock:
            conn = self._connection()
            now = self._clock()
            used: dict[str, int] = {}
            remaining: dict[str, int] = {}
            for name, length, limit in self.limits.windows():
                (count,) = conn.execute(
                    "SELECT COUNT(*) FROM requests WHERE token_key = ? AND started > ?",
                    (self._key, now - length),
                ).fetchone()
                used[name] = count
                remaining[name] = max(0, limit - count)
            row = conn.execute("SELECT until FROM blocks WHERE token_key = ?", (self._key,)).fetchone()
        blocked = datetime.fromtimestamp(row[0], UTC) if row is not None and row[0] > now else None
        return QuotaUsage(spent_by_this_client=self.spent, used=used, remaining=remaining, blocked_until=blocked)
