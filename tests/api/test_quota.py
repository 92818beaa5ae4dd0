"""Unit specifications for the shared request budget, on a fake clock (no network, no real waits)."""

import os
from datetime import UTC, datetime

import pytest

from precoro_assets.api.errors import QuotaExhausted
from precoro_assets.api.quota import CredentialsRejected, QuotaGuard, QuotaLimits
from precoro_assets.settings import ENV_DATABASE_URL, load_state
from tests.support import postgres_server

# Every specification holds with the ledger in a SQLite file and in PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("state_backend")

TOKEN = "token-abc-123-secret"
T0 = 1_760_000_000.0


class FakeClock:
    """Time that only moves when someone sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = T0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


def guard(tmp_path, clock, token=TOKEN, **limits) -> QuotaGuard:
    max_wait = limits.pop("max_wait_seconds", 600.0)
    return QuotaGuard(tmp_path, token, QuotaLimits(**limits), max_wait_seconds=max_wait,
                      database_url=load_state().database_url_value, clock=clock, sleep=clock.sleep)


def test_request_starts_are_spaced_one_second_plus_a_quarter(tmp_path, clock):
    quota = guard(tmp_path, clock)
    starts = []
    for page in range(4):
        quota.acquire("GET", f"/invoices?page={page}")
        starts.append(clock.now)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert all(gap >= 1.25 - 1e-6 for gap in gaps)
    assert quota.spent == 4


def test_an_identical_get_waits_out_its_sixty_seconds_but_other_methods_do_not(tmp_path, clock):
    quota = guard(tmp_path, clock)
    quota.acquire("GET", "/invoices?page=1")
    first = clock.now
    quota.acquire("PATCH", "/invoices?page=1")
    assert clock.now - first < 2
    quota.acquire("GET", "/invoices?page=1")
    assert clock.now - first >= 60


def test_every_process_shares_the_budget_through_the_state_directory(tmp_path, clock):
    one, two = guard(tmp_path, clock), guard(tmp_path, clock)
    one.acquire("GET", "/invoices?page=1")
    start = clock.now
    two.acquire("GET", "/invoices?page=1")  # same URL from "another process": waits too
    assert clock.now - start >= 60
    assert (one.spent, two.spent) == (1, 1)


def test_tokens_have_separate_budgets_and_the_token_is_not_stored(tmp_path, clock):
    guard(tmp_path, clock).acquire("GET", "/x")
    start = clock.now
    guard(tmp_path, clock, token="another-token").acquire("GET", "/x")
    assert clock.now == start
    for path in tmp_path.iterdir():
        assert TOKEN.encode() not in path.read_bytes()
    if os.environ.get(ENV_DATABASE_URL):
        stored = postgres_server.dump(os.environ[ENV_DATABASE_URL])
        assert "/x" in stored and TOKEN not in stored


def test_companies_that_share_a_budget_are_paced_as_one_token(tmp_path, clock):
    """Two companies' tokens (one Precoro user) naming one shared budget: the second waits for the first's second,
    and a full minute of one stops the other; by default they do not wait for each other."""
    def company(token: str, shared: str | None, **limits) -> QuotaGuard:
        return QuotaGuard(tmp_path, token, QuotaLimits(**limits), database_url=load_state().database_url_value,
                          shared_budget=shared, clock=clock, sleep=clock.sleep)

    company("acme-token", "one-user").acquire("GET", "/invoices?page=1")
    start = clock.now
    company("globex-token", "one-user").acquire("GET", "/suppliers?page=1")
    assert clock.now - start >= 1.0  # the shared second
    start = clock.now
    company("initech-token", None).acquire("GET", "/suppliers?page=1")
    assert clock.now == start  # a company of its own budget waits for nobody

    full = [company(token, "minute", per_minute=2) for token in ("a-token", "b-token")]
    full[0].acquire("GET", "/a")
    full[0].acquire("GET", "/b")
    start = clock.now
    full[1].acquire("GET", "/c")  # the third of the shared minute
    assert clock.now - start >= 55


def test_a_rejected_token_blocks_only_itself_under_a_shared_budget(tmp_path, clock):
    """Companies of one Precoro user share the e-mail and, if they say so, the budget: a revoked token of one must
    not stop the other's valid token."""
    def company(token: str) -> QuotaGuard:
        return QuotaGuard(tmp_path, token, QuotaLimits(), database_url=load_state().database_url_value,
                          shared_budget="one-user", clock=clock, sleep=clock.sleep)

    company("acme-token-revoked").record_rejected_credentials("ap@example.com")
    with pytest.raises(CredentialsRejected):
        company("acme-token-revoked").acquire("GET", "/x", email="ap@example.com")
    company("globex-token-valid").acquire("GET", "/x", email="ap@example.com")  # not refused


def test_a_full_window_within_max_wait_is_waited_for(tmp_path, clock):
    quota = guard(tmp_path, clock, per_minute=3)
    for page in range(4):
        quota.acquire("GET", f"/p{page}")
    # the 4th start waited until the 1st left the (60 s + 1 s margin) minute
    assert clock.now - T0 >= 61


def test_a_full_day_raises_quota_exhausted_with_the_resume_time_and_sends_nothing(tmp_path, clock):
    quota = guard(tmp_path, clock, per_day=5, per_hour=5, per_minute=5, max_wait_seconds=300)
    for page in range(5):
        quota.acquire("GET", f"/p{page}")
    with pytest.raises(QuotaExhausted) as raised:
        quota.acquire("GET", "/p5")
    assert raised.value.window == "day"
    assert raised.value.resume_at == datetime.fromtimestamp(T0 + 86400 + 1, UTC)
    assert quota.spent == 5
    assert quota.usage().remaining["day"] == 0


def test_time_scale_divides_every_window(tmp_path, clock):
    quota = guard(tmp_path, clock, per_day=2, time_scale=1000, max_wait_seconds=100)
    quota.acquire("GET", "/a")
    quota.acquire("GET", "/a")  # identical GET: waits 60/1000 s + the 10 ms margin floor
    assert clock.now - T0 == pytest.approx(0.070, abs=1e-5)
    with pytest.raises(QuotaExhausted):
        guard(tmp_path, clock, per_day=2, time_scale=1000, max_wait_seconds=1).acquire("GET", "/b")
    quota.acquire("GET", "/b")  # within its 100 s of max wait: waits for the scaled day (86.4 s + 10 ms)
    assert clock.now - T0 == pytest.approx(86.41, abs=1e-5)


def test_a_recorded_429_blocks_every_process_until_its_retry_time(tmp_path, clock):
    one, two = guard(tmp_path, clock), guard(tmp_path, clock)
    one.record_rate_limited(datetime.fromtimestamp(T0 + 30, UTC), "Minute limiter")
    assert two.usage().blocked_until == datetime.fromtimestamp(T0 + 30, UTC)
    two.acquire("GET", "/x")
    assert clock.now >= T0 + 30


def test_a_429_far_in_the_future_raises_instead_of_sleeping_for_hours(tmp_path, clock):
    quota = guard(tmp_path, clock, max_wait_seconds=600)
    quota.record_rate_limited(datetime.fromtimestamp(T0 + 7200, UTC), "Daily limiter")
    with pytest.raises(QuotaExhausted) as raised:
        quota.acquire("GET", "/x")
    assert raised.value.window == "Daily limiter"
    assert raised.value.resume_at == datetime.fromtimestamp(T0 + 7200, UTC)
    assert clock.sleeps == [] and quota.spent == 0


def test_usage_reports_what_is_left_in_each_window(tmp_path, clock):
    quota = guard(tmp_path, clock)
    quota.acquire("GET", "/a")
    quota.acquire("GET", "/b")
    usage = quota.usage()
    assert usage.spent_by_this_client == 2
    assert usage.remaining == {"minute": 298, "hour": 1498, "day": 2998}
    assert usage.as_metadata()["precoro_requests_left_day"] == 2998


def test_seconds_for_estimates_the_pace_the_windows_and_a_stop(tmp_path, clock):
    quota = guard(tmp_path, clock, per_minute=10, max_wait_seconds=600)
    assert quota.seconds_for(8) == pytest.approx(8 * 1.25)  # the spacing alone
    assert quota.seconds_for(25) == pytest.approx(2 * 61)  # 15 beyond the minute's 10: it fills twice more
    assert quota.seconds_for(3001) == float("inf")  # beyond the day's 3,000: a day's wait, the run stops
    assert guard(tmp_path, clock, per_minute=10, max_wait_seconds=30).seconds_for(25) == float("inf")
    quota.record_rate_limited(datetime.fromtimestamp(T0 + 30, UTC), "Minute limiter")
    assert quota.seconds_for(8) == pytest.approx(30 + 8 * 1.25)  # after the 429 block
    quota.record_rate_limited(datetime.fromtimestamp(T0 + 7200, UTC), "Daily limiter")
    assert quota.seconds_for(1) == float("inf")


def test_short_waits_are_never_refused_even_with_a_small_max_wait(tmp_path, clock):
    quota = guard(tmp_path, clock, max_wait_seconds=5)
    quota.acquire("GET", "/invoices?page=3")
    quota.acquire("GET", "/invoices?page=3")  # a retry: waits its 60 s instead of raising
    assert clock.now - T0 >= 60


def test_spacing_counts_from_when_a_request_really_went_out(tmp_path, clock):
    quota = guard(tmp_path, clock)
    ticket = quota.acquire("GET", "/a")
    clock.now += 0.5  # a slow TLS handshake before the first byte leaves
    quota.mark_sent(ticket)
    quota.acquire("GET", "/b")
    assert clock.now >= T0 + 0.5 + 1.25 - 1e-6


# ---- slots taken together (an unpaced budget: the simulator with its limits off) -------------------------

def ledger_rows(quota: QuotaGuard) -> int:
    return quota._connection().execute("SELECT count(*) FROM requests").fetchone()[0]


def test_at_a_real_pace_nothing_is_reserved_and_each_request_takes_its_own_spaced_slot(tmp_path, clock):
    quota = guard(tmp_path, clock)
    assert quota.reserve("GET", ["/invoices/1", "/invoices/2"]) == []
    assert ledger_rows(quota) == 0
    quota.acquire("GET", "/invoices/1")
    quota.acquire("GET", "/invoices/2")
    assert clock.sleeps and clock.now - T0 >= 1.25 - 1e-6  # spaced as ever


def test_an_unpaced_budget_reserves_slots_in_one_go_and_each_is_used_once(tmp_path, clock):
    quota = guard(tmp_path, clock, time_scale=1e6)
    assert quota.reserve("GET", ["/invoices/1", "/invoices/2", "/invoices/1"]) == ["/invoices/1", "/invoices/2"]
    assert ledger_rows(quota) == 2 and quota.spent == 0  # counted in every window, not yet sent
    quota.acquire("GET", "/invoices/1")
    quota.acquire("GET", "/invoices/2")
    assert ledger_rows(quota) == 2 and quota.spent == 2  # the reserved slots, no new rows
    clock.now += 0.001  # the identical-GET window (60 s scaled down a millionfold, plus margin) is over
    quota.acquire("GET", "/invoices/1")  # a second request of the same URL: a slot of its own
    assert ledger_rows(quota) == 3 and quota.spent == 3


def test_a_reservation_never_goes_past_a_window_a_429_block_or_the_identical_get_rule(tmp_path, clock):
    quota = guard(tmp_path, clock, time_scale=1e6, per_minute=3)
    quota.acquire("GET", "/invoices/1")
    # /invoices/1 started within the identical-GET window; the minute has room for 2 more starts.
    assert quota.reserve("GET", ["/invoices/1", "/invoices/2", "/invoices/3", "/invoices/4"]) == \
        ["/invoices/2", "/invoices/3"]
    quota.release("GET", ["/invoices/2", "/invoices/3"])
    clock.now += 0.001
    quota.acquire("GET", "/invoices/2")  # released: it takes a slot (a row) of its own
    assert ledger_rows(quota) == 4
    quota.record_rate_limited(datetime.fromtimestamp(clock.now + 5, UTC), "minute")
    assert quota.reserve("GET", ["/invoices/5"]) == []


def test_a_slot_taken_but_not_yet_sent_holds_back_every_later_request_until_it_goes_out(tmp_path, clock):
    # Two processes (two guards on one ledger). The first takes its slot, then its request is slow to leave
    # (a connection opening, a busy machine): the second must not leave a spacing after the *slot*, or it
    # would arrive right after the first request and earn a 429 "Second limiter".
    first, second = guard(tmp_path, clock, time_scale=10), guard(tmp_path, clock, time_scale=10)
    spacing = first.limits.spacing
    ticket = first.acquire("GET", "/invoices?page=1", will_mark_sent=True)
    leaves_at = clock.now + 3 * spacing
    original_sleep = clock.sleep

    def sleep(seconds: float) -> None:  # the first request goes out while the second waits
        original_sleep(seconds)
        if clock.now >= leaves_at and not sent:
            sent.append(clock.now)
            first.mark_sent(ticket)

    sent: list[float] = []
    second._sleep = sleep
    second.acquire("GET", "/invoices?page=2", will_mark_sent=True)
    assert sent and clock.now >= sent[0] + spacing - 1e-9  # spaced from when the first really left

    # a slot whose sender died holds nobody back for long
    stuck = second.acquire("GET", "/invoices?page=3", will_mark_sent=True)
    before = clock.now
    first.acquire("GET", "/invoices?page=4")
    assert clock.now - before <= first.limits.pending_send_window + first.limits.pending_poll_seconds and stuck
