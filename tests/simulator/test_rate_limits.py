"""Precoro's rate limits, per token, all at once: 1 request per second, no identical GET within 60 s,
300 a minute, 1,500 an hour, 3,000 a day; every request counts, 429s included; a 429 names its window and
its retry time in the JSON body, and blocks every request until then.

Each test gets its own simulator. Long windows run time-scaled (`limits="scaled:F"`: every window divided
by F, counts unchanged); requests are paced with the scaled windows so that only the window under test
can answer 429. Nothing here asserts how fast anything is.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from tests.simulator.sim_harness import retry_time, sleep_until

# Every test here paces requests in scaled wall-clock time (a second of 0.1 s or less): make test runs them
# after the parallel workers, whose load would delay a request by more than a scaled second.
pytestmark = pytest.mark.timing

SECOND = 1
MINUTE, HOUR, DAY = 60, 3600, 86400
PER_MINUTE, PER_HOUR, PER_DAY = 300, 1500, 3000
RETRY_AFTER = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$")


def check_429(response: httpx.Response, sent_at: float, limit_type: str | None = None,
              limit: int | None = None, scaled: bool = False) -> dict:
    """A 429 in Precoro's shape: error, RateLimit-Type, RateLimit-Retry-After (in the future), RateLimit-Limit.
    `scaled`: the simulator runs `scaled:F` with F != 1 (the retry time still shows whole seconds)."""
    assert response.status_code == 429, f"{response.status_code}: {response.text[:300]}"
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["RateLimit-Type"], str)
    assert RETRY_AFTER.match(body["RateLimit-Retry-After"]), body["RateLimit-Retry-After"]
    assert retry_time(body).timestamp() > sent_at, "the retry time is in the future"
    assert isinstance(body["RateLimit-Limit"], int)
    assert "retry-after" not in response.headers, "the retry time is in the body, not in a header"
    if limit_type is not None:
        assert body["RateLimit-Type"] == limit_type, body
    if limit is not None:
        assert body["RateLimit-Limit"] == limit, body
    return body


def send(api, path: str, params=None) -> tuple[float, httpx.Response]:
    sent_at = time.time()
    return sent_at, api.get(path, params=params)


# ---- one request per second ------------------------------------------------------------------------------


def test_a_second_request_within_one_second_is_rejected_until_its_retry_time(simulator):
    api = simulator(limits="real")

    _, first = send(api, "/taxes", {"page": 1})
    sent_at, second = send(api, "/taxes", {"page": 2})

    assert first.status_code == 200
    arrivals = [entry["time"] for entry in api.requests()]
    assert arrivals[1] - arrivals[0] < SECOND  # (the premise: they did arrive within a second)
    body = check_429(second, sent_at, limit=1)
    assert retry_time(body).timestamp() - sent_at <= 2 * SECOND

    # waiting until the retry time lets the refused request through (a refused GET was never served,
    # so sending it again is not an identical GET within the minute)
    sleep_until(retry_time(body))
    assert api.get("/taxes", params={"page": 2}).status_code == 200
    assert api.stats()["rate_limited"] == {body["RateLimit-Type"]: 1}


def test_waiting_for_the_retry_time_of_the_last_429_lets_the_next_request_through_even_after_hammering(simulator):
    """Every request counts, refused ones too, so a request sent just before a block ends fills the next
    per-second window: the retry time it is given must cover that, or the client that trusts it fails."""
    scale = 10  # a second lasts 0.1 s; pacing at 15 ms keeps under 300 a (6 s) minute
    api = simulator(limits=f"scaled:{scale}")
    assert api.get("/suppliers").status_code == 200
    # keep sending across the end of the first block, and stop 30 ms before the end of the next one
    page, first_block_end, next_block_end, response = 0, None, None, None
    while next_block_end is None or time.time() < next_block_end.timestamp() - 0.03 or response.status_code != 429:
        page += 1
        sent_at, response = send(api, "/taxes", {"page": page})
        if response.status_code == 200:  # (a stall of more than 0.1 s just after a block ended)
            continue
        retry = retry_time(check_429(response, sent_at, "Second limiter", 1, scaled=True))
        if first_block_end is None:
            first_block_end = retry
        elif next_block_end is None and retry > first_block_end:
            next_block_end = retry
        time.sleep(0.015)
    last_arrival = api.requests()[-1]["time"]

    assert retry.timestamp() >= last_arrival + SECOND / scale
    sleep_until(retry)
    assert api.get("/taxes", params={"page": page}).status_code == 200


def test_under_scaled_limits_the_retry_time_is_still_whole_seconds(simulator):
    """Precoro shows whole seconds and real clients (Precoro's own connector among them) fail on a fraction, so
    the simulator shows whole seconds when sped up too: rounded up, a block may last longer than its scaled
    second, never shorter."""
    scale = 10  # a second lasts 0.1 s
    api = simulator(limits=f"scaled:{scale}")
    for page in range(1, 50):  # back to back: one of them lands within 0.1 s of the one before
        sent_at, response = send(api, "/taxes", {"page": page})
        if response.status_code == 429:
            break

    body = check_429(response, sent_at, "Second limiter", 1, scaled=True)
    refused_at = api.requests()[-1]["time"]
    retry = retry_time(body).timestamp()
    assert retry == math.ceil(refused_at + SECOND / scale - 1e-9) or retry == math.ceil(refused_at + SECOND / scale)
    sleep_until(retry_time(body), margin=0.005)
    assert api.get("/taxes", params={"page": page}).status_code == 200


def test_a_429_says_when_to_retry_in_its_body_and_in_no_header(simulator):
    """What the simulator does with headers, said outright: Precoro documents the retry time in the JSON body
    (`RateLimit-Retry-After`, whole seconds, UTC), so a 429 has no `Retry-After` and no `RateLimit-*` header.
    A client that waits for a header (the `precoro-sdk` does) falls back to its own guess here."""
    api = simulator(limits="real")
    assert api.get("/taxes", params={"page": 1}).status_code == 200
    sent_at, refused = send(api, "/taxes", {"page": 2})

    body = check_429(refused, sent_at, "Second limiter", 1)
    assert set(body) == {"error", "RateLimit-Type", "RateLimit-Retry-After", "RateLimit-Limit"}
    assert refused.headers["content-type"] == "application/json"
    rate_headers = [name for name in refused.headers if name.lower() == "retry-after"
                    or name.lower().startswith(("ratelimit", "x-ratelimit"))]
    assert rate_headers == []


def test_parallel_requests_get_429(simulator):
    api = simulator(limits="real")
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def one(page: int) -> None:
        with api.client(headers=api.headers, timeout=30) as client:
            barrier.wait()
            statuses.append(client.get("/taxes", params={"page": page}).status_code)

    threads = [threading.Thread(target=one, args=(page,)) for page in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses.count(200) <= 1 and statuses.count(429) >= 3
    assert sum(api.stats()["rate_limited"].values()) == statuses.count(429)


def test_failed_requests_count_too(simulator):
    api = simulator(limits="real")

    assert api.get("/invoices/999999").status_code == 404
    sent_at, response = send(api, "/taxes")

    check_429(response, sent_at)


# ---- no identical GET within 60 seconds ------------------------------------------------------------------


def test_an_identical_get_within_60_seconds_is_rejected_by_the_route_limiter(simulator):
    api = simulator(limits="real")
    assert api.get("/suppliers", params={"page": 1, "per_page": 10}).status_code == 200
    time.sleep(1.1)  # past the one-second window, well inside the 60-second one

    sent_at, again = send(api, "/suppliers", {"page": 1, "per_page": 10})

    body = check_429(again, sent_at, "Route based limiter by minute", 1)
    first_arrival = api.requests()[0]["time"]
    assert first_arrival + MINUTE <= retry_time(body).timestamp() < first_arrival + MINUTE + 1
    # after a 429 every later request fails too until the window passes, even a different one
    time.sleep(1.1)
    sent_at, other = send(api, "/taxes")
    assert check_429(other, sent_at) == body
    assert api.stats()["rate_limited"] == {"Route based limiter by minute": 2}


def test_an_identical_get_passes_once_its_retry_time_has_come(simulator):
    scale = 20  # the 60-second window lasts 3 s
    api = simulator(limits=f"scaled:{scale}")
    assert api.get("/suppliers", params={"page": 1}).status_code == 200
    time.sleep(2 / scale)

    sent_at, again = send(api, "/suppliers", {"page": 1})
    body = check_429(again, sent_at, "Route based limiter by minute", 1, scaled=True)
    sleep_until(retry_time(body))

    assert api.get("/suppliers", params={"page": 1}).status_code == 200


def test_identical_means_same_path_and_query_other_pages_and_writes_are_not_identical(simulator):
    scale = 20
    api = simulator(limits=f"scaled:{scale}")
    supplier = api.export("suppliers")[0]["id"]
    requests = [("GET", "/suppliers", {"page": 1}), ("GET", "/suppliers", {"page": 2}),
                ("GET", "/suppliers", {"page": 1, "per_page": 20}),
                ("PATCH", f"/suppliers/{supplier}", None), ("PATCH", f"/suppliers/{supplier}", None)]
    statuses = []
    for method, path, params in requests:
        data = {"externalId": "X"} if method == "PATCH" else None
        statuses.append(api.http.request(method, path, params=params, data=data).status_code)
        time.sleep(1.5 / scale)

    assert statuses == [200] * len(requests)


# ---- 300 a minute --------------------------------------------------------------------------------------


def test_the_301st_request_of_a_minute_is_rejected_by_the_minute_limiter(simulator):
    """One request a second passes, so 301 in a minute only happen to a client that keeps sending after
    its 429s, which count too. Once the per-second block has passed, its 300th request of the minute
    still passes and its 301st meets the Minute limiter; waiting until that 429's retry time lets the
    next request through."""
    scale = 8  # a minute lasts 7.5 s, a second 0.125 s
    api = simulator(limits=f"scaled:{scale}")
    started = time.time()
    answers = [send(api, "/taxes", {"page": n}) for n in range(1, PER_MINUTE)]  # 299, back to back
    blocked = [check_429(response, sent_at, scaled=True) for sent_at, response in answers
               if response.status_code == 429]
    assert len(blocked) >= PER_MINUTE - 10
    assert "Minute limiter" not in {b["RateLimit-Type"] for b in blocked}
    sleep_until(max(retry_time(b) for b in blocked))
    time.sleep(1.5 / scale)  # (in case a stall let the last one through: keep out of its second)

    the_300th = api.get("/taxes", params={"page": PER_MINUTE})
    time.sleep(1.5 / scale)
    sent_at, the_301st = send(api, "/taxes", {"page": PER_MINUTE + 1})

    assert time.time() - started < MINUTE / scale - 1, "(the premise: all 301 within one scaled minute)"
    assert the_300th.status_code == 200
    body = check_429(the_301st, sent_at, "Minute limiter", PER_MINUTE, scaled=True)
    arrivals = [entry["time"] for entry in api.requests()]
    assert len(arrivals) == PER_MINUTE + 1
    # it may pass once all but 299 of the minute's requests have left the window
    assert retry_time(body).timestamp() >= arrivals[1] + MINUTE / scale
    assert retry_time(body).timestamp() <= math.ceil(arrivals[1] + MINUTE / scale)  # rounded up to the second
    stats = api.stats()
    assert stats["quota"]["minute"] == stats["quota"]["hour"] == stats["quota"]["day"] == PER_MINUTE + 1
    assert stats["quota"]["blocked_until"] is not None
    assert stats["rate_limited"]["Minute limiter"] == 1
    assert sum(stats["rate_limited"].values()) == len(blocked) + 1

    sleep_until(retry_time(body))
    assert api.get("/taxes", params={"page": PER_MINUTE + 2}).status_code == 200


# ---- 3,000 a day ---------------------------------------------------------------------------------------


def test_the_3001st_request_of_a_day_is_rejected_by_the_daily_limiter(simulator):
    """A client that respects every shorter window (one request per scaled second, batches of 1,000 below
    the hourly 1,500, an hour's pause between batches, never the same URL twice) is stopped by the
    Daily limiter at its 3,001st request."""
    scale = 3000  # a second lasts 0.33 ms, an hour 1.2 s, a day 28.8 s
    api = simulator(limits=f"scaled:{scale}")
    statuses: Counter[int] = Counter()
    started = time.time()
    page = 0
    for batch in range(3):
        if batch:
            time.sleep(HOUR / scale + 0.1)
        for _ in range(1000):
            page += 1
            statuses[api.get("/taxes", params={"page": page}).status_code] += 1
            time.sleep(SECOND / scale)
    assert statuses == {200: PER_DAY}
    quota = api.stats()["quota"]
    assert quota["day"] == PER_DAY and quota["hour"] <= 1000

    sent_at, the_3001st = send(api, "/taxes", {"page": page + 1})

    assert time.time() - started < DAY / scale, "(the premise: all 3,001 within one scaled day)"
    body = check_429(the_3001st, sent_at, "Daily limiter", PER_DAY, scaled=True)
    arrivals = [entry["time"] for entry in api.requests()]
    assert retry_time(body).timestamp() >= arrivals[1] + DAY / scale
    stats = api.stats()
    assert stats["rate_limited"] == {"Daily limiter": 1}
    assert stats["quota"]["day"] == PER_DAY + 1


# ---- statistics --------------------------------------------------------------------------------------------


def test_429s_are_counted_by_type_and_the_quota_shows_each_windows_usage(simulator):
    scale = 10
    api = simulator(limits=f"scaled:{scale}")
    seen: Counter[str] = Counter()
    for page in (1, 1, 2, 3):  # back to back: the first passes, the second repeats it, the rest are blocked
        sent_at, response = send(api, "/taxes", {"page": page})
        if response.status_code == 429:
            seen[check_429(response, sent_at, scaled=True)["RateLimit-Type"]] += 1

    stats = api.stats()

    assert seen == {"Route based limiter by minute": 3}
    assert stats["rate_limited"] == dict(seen)
    assert stats["total"] == 4
    assert sum(r["count"] for r in stats["requests"] if r["status"] == 429) == sum(seen.values())
    quota = stats["quota"]
    assert quota["day"] == quota["hour"] == 4, "every request counts, 429s included"
    assert quota["minute"] == 4
    assert quota["blocked_until"] is not None
    blocked_until = datetime.fromisoformat(quota["blocked_until"])
    assert blocked_until > datetime.now(UTC)
    for window in ("per_minute", "per_hour", "per_day"):
        assert window in quota["limits"]
    assert (quota["limits"]["per_minute"], quota["limits"]["per_hour"], quota["limits"]["per_day"]) == \
        (PER_MINUTE, PER_HOUR, PER_DAY)


def test_without_limits_nothing_is_ever_429(simulator):
    api = simulator(limits="off")
    statuses = {api.get("/taxes").status_code for _ in range(50)}
    assert statuses == {200}


# ---- arrival times under scheduling jitter -------------------------------------------------------------------


@pytest.mark.e2e  # the arrival stamp is the server's (the kernel's receive time of the request's bytes)
def test_a_request_is_stamped_when_it_arrived_not_when_a_busy_server_got_round_to_it(simulator, monkeypatch):
    """On a loaded machine the thread that serves a connection may run long after the request came in. Precoro
    counts a request when it arrives: two requests sent 0.4 s apart under `scaled:4` (a second lasts 0.25 s) are
    both served, even when the first one is read 0.6 s late, after the second was admitted."""
    from precoro_sim.simulator import server

    scale = 4
    api = simulator(limits=f"scaled:{scale}", over_socket=True)
    read_request_line = server._Handler.parse_request

    def descheduled(handler) -> bool:
        if b"page=1" in handler.raw_requestline:
            time.sleep(0.6)  # the request line is in; its thread loses the CPU before it goes on
        return read_request_line(handler)

    monkeypatch.setattr(server._Handler, "parse_request", descheduled)
    answers: dict[int, httpx.Response] = {}
    sent: dict[int, float] = {}

    def one(page: int) -> None:
        with httpx.Client(base_url=api.url, headers=api.headers, timeout=30) as client:
            sent[page] = time.time()
            answers[page] = client.get("/taxes", params={"page": page})

    first = threading.Thread(target=one, args=(1,))
    first.start()
    time.sleep(0.4)
    one(2)
    first.join()

    assert sent[2] - sent[1] >= SECOND / scale  # (the premise: the client spaced them)
    assert [answers[1].status_code, answers[2].status_code] == [200, 200], [answers[1].text, answers[2].text]
    stamped = {entry["url"]: entry["time"] for entry in api.requests()}
    assert abs(stamped["/taxes?page=1"] - sent[1]) < 0.2, "stamped when it arrived, not when it was read"
    assert api.stats()["rate_limited"] == {}


def test_a_request_refused_by_a_block_still_fills_its_second_so_its_retry_time_covers_it():
    """A clock run by hand: blocked until t=1.0, a request at t=0.96 (more than a second after the one before it)
    is refused by the block, but it still fills [0.96, 1.06): a retry at 1.0 would be refused again."""
    from precoro_sim.simulator.limits import Limits, RateLimiter

    limiter = RateLimiter(Limits.parse("scaled:10"))
    assert limiter.admit("token", "GET", "/taxes?page=1", now=0.0) is None
    block = limiter.admit("token", "GET", "/taxes?page=2", now=0.05)
    assert block is not None and block.retry_at == 1.0  # 0.15, shown as Precoro shows it: the whole second
    late = limiter.admit("token", "GET", "/taxes?page=3", now=0.96)
    assert late is not None and late.retry_at >= 0.96 + 0.1
    assert limiter.admit("token", "GET", "/taxes?page=3", now=late.retry_at) is None


def test_a_get_refused_by_the_identical_get_rule_alone_still_fills_its_second_so_its_retry_time_covers_it():
    """A clock run by hand (identical-GET window 6 s, a second 0.1 s): the same GET at 0 and at 5.95 is refused by
    the identical-GET rule alone (no block, more than a second after the request before it), its minute ending at
    6.0. But the refused GET fills [5.95, 6.05): a retry at 6.0 would be refused again by the second limiter."""
    from precoro_sim.simulator.limits import Limits, RateLimiter

    limiter = RateLimiter(Limits.parse("scaled:10"))
    assert limiter.admit("token", "GET", "/taxes?page=1", now=0.0) is None
    refused = limiter.admit("token", "GET", "/taxes?page=1", now=5.95)
    assert refused is not None and refused.retry_at >= 5.95 + 0.1
    assert limiter.admit("token", "GET", "/taxes?page=1", now=refused.retry_at) is None


def test_a_request_refused_while_it_fills_a_longer_window_gets_a_retry_time_after_that_window_has_room():
    """A clock run by hand, 5 a minute: four requests pass at 0, 1, 2 and 3, a fifth at 3.5 is refused by the second
    limiter but is the minute's fifth. A retry counts itself, so it is the sixth until the one at 0 has left the
    minute: its retry time is 60, not 4.5. And refused by the minute limiter itself (a sixth), the retry waits for
    all but four of the arrivals so far, the refused one included, to leave the minute."""
    from precoro_sim.simulator.limits import MINUTE_LIMITER, SECOND_LIMITER, Limits, RateLimiter

    limiter = RateLimiter(Limits(per_minute=5))
    for second in range(4):
        assert limiter.admit("token", "POST", "/invoices", now=float(second)) is None
    refused = limiter.admit("token", "POST", "/invoices", now=3.5)
    assert refused is not None and refused.retry_at == 60.0 and refused.limit_type == SECOND_LIMITER  # the rule that refused
    assert limiter.admit("token", "POST", "/invoices", now=refused.retry_at) is None

    limiter = RateLimiter(Limits(per_minute=5))
    for second in range(5):
        assert limiter.admit("token", "POST", "/invoices", now=float(second)) is None
    sixth = limiter.admit("token", "POST", "/invoices", now=5.0)
    assert sixth is not None and sixth.limit_type == MINUTE_LIMITER and sixth.retry_at == 61.0  # 0 and 1 have left
    assert limiter.admit("token", "POST", "/invoices", now=sixth.retry_at) is None


def test_after_any_429_the_refused_request_sent_again_exactly_at_its_retry_time_passes():
    """The contract of a retry time, over seeded random request patterns on a hand-run clock (small limits, so
    that every window refuses now and then; a few requests reach the limiter slightly out of order): after every
    429, the refused request sent again at its retry time, with nothing else in between, passes."""
    import copy
    import random

    from precoro_sim.simulator.limits import Limits, RateLimiter

    rng = random.Random(19)
    limits = Limits(scale=10, identical_get_seconds=30, per_minute=5, per_hour=9, per_day=14)
    refusals = Counter[str]()
    for _ in range(400):
        limiter = RateLimiter(limits)
        now = rng.uniform(0, 5)
        for _ in range(rng.randint(5, 40)):
            method = rng.choice(["GET", "GET", "GET", "POST"])
            url = f"/taxes?page={rng.randint(1, 3)}"
            sent_at = now - rng.uniform(0, 0.1) if rng.random() < 0.1 else now  # reached the limiter late
            refused = limiter.admit("token", method, url, now=sent_at)
            if refused is not None:
                refusals[refused.limit_type] += 1
                retried = copy.deepcopy(limiter)
                again = retried.admit("token", method, url, now=refused.retry_at)
                assert again is None, (method, url, sent_at, refused, again)
                if rng.random() < 0.3:  # sometimes the client does retry then, and carries on from there
                    limiter, now = retried, refused.retry_at
            now += rng.choice([0.0, 0.05, 0.1, 0.3, 1.0, 3.0, 10.0, 400.0]) * rng.random()
    assert set(refusals) >= {"Second limiter", "Route based limiter by minute", "Minute limiter",
                             "Hourly limiter", "Daily limiter"}, refusals


def test_a_request_refused_by_a_block_is_told_the_blocks_rule_with_the_later_time_of_the_second_it_fills():
    """Hand-run clock: a GET repeated at 10 s is refused by the identical-GET rule (blocked until 60). A request at
    59.5 is refused by that block and fills its own second, so it can pass only at 60.5 (shown as 61). Its 429
    still names what refused it, the identical-GET rule, not the second that only set the time."""
    from precoro_sim.simulator.limits import IDENTICAL_GET_LIMITER, Limits, RateLimiter

    limiter = RateLimiter(Limits())
    assert limiter.admit("token", "GET", "/a", now=0.0) is None
    blocked = limiter.admit("token", "GET", "/a", now=10.0)
    assert blocked is not None and blocked.limit_type == IDENTICAL_GET_LIMITER and blocked.retry_at == 60.0
    later = limiter.admit("token", "POST", "/b", now=59.5)
    assert later is not None and later.limit_type == IDENTICAL_GET_LIMITER and later.retry_at == 61.0
    assert limiter.admit("token", "POST", "/b", now=later.retry_at) is None
