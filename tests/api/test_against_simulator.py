"""Acceptance specifications for the client and its shared budget, against the simulator on localhost."""

from __future__ import annotations

import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from precoro_assets import settings
from precoro_assets.api.errors import (
    PrecoroAuthError,
    PrecoroNotFound,
    PrecoroServerError,
    PrecoroValidationError,
    QuotaExhausted,
)
from tests.api.api_sim_support import query_of, run_workers

pytestmark = pytest.mark.e2e  # a simulator on a socket or child processes: in make test, not in make test-fast


# -- pacing across processes ------------------------------------------------------------------


@pytest.mark.usefixtures("state_backend")  # the ledger in a SQLite file and in PostgreSQL
def test_three_processes_share_one_budget_and_never_get_a_429(simulator, state_dir):
    scale = 2  # 1 s -> 0.5 s, with 125 ms of margin: scheduling jitter of a busy 2-core machine fits in it
    sim = simulator(limits=f"scaled:{scale}")
    jobs = [("/invoices", "idn", 20), ("/purchaseorders", "idn", 20), ("/purchaserequisitions", "idn", 10)]

    results = run_workers(sim, state_dir, scale, jobs)

    log = sim.requests()
    assert sim.rate_limited() == 0, [(e["url"], e["rate_limit_type"]) for e in log if e["status"] == 429]
    arrivals = sorted(entry["time"] for entry in log)  # the log is in order of completion
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
    assert min(gaps) >= 1 / scale
    assert {entry["path"] for entry in log} == {path for path, _, _ in jobs}
    # every request is charged to the shared budget, and each process got every row once
    assert len(log) == sum(result["spent"] for result in results)
    for (path, key, _), result in zip(jobs, results, strict=True):
        expected = sorted(str(row[key]) for row in sim.listed(path.strip("/")))
        assert result["keys"] == expected and result["rows"] == len(expected)


@pytest.mark.parametrize("scale", [2, 1000])
def test_threads_sharing_one_client_leave_at_the_budgets_pace_and_get_no_429(simulator, make_client, scale):
    # at 2x the 125 ms margin absorbs thread jitter; at 1000x (margins of 2 ms) the client sends one at a time
    sim = simulator(limits=f"scaled:{scale}", documents=1200 if scale > 2 else 50)
    client = make_client(sim, scale=scale, concurrent_requests=4)
    keys = [row["idn"] for row in client.iter_rows("/invoices", key="idn")][:300]
    assert len(keys) >= (300 if scale > 2 else 8)
    workers = client.concurrent_requests
    assert workers == (4 if scale == 2 else 1)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        details = list(pool.map(lambda key: client.get_detail("invoices", key), keys))

    assert [d["idn"] for d in details] == keys
    assert sim.rate_limited() == 0, [(e["url"], e["rate_limit_type"]) for e in sim.requests() if e["status"] == 429]
    arrivals = sorted(e["time"] for e in sim.requests())
    assert min(b - a for a, b in zip(arrivals, arrivals[1:], strict=False)) >= 1 / scale


def test_a_500_is_retried_only_once_the_identical_get_window_allows_it(simulator, make_client):
    scale = 10
    sim = simulator(limits=f"scaled:{scale}")
    sim.fault(kind="error", status=500, path="/invoices", query={"page": "3"}, count=1)
    client = make_client(sim, scale=scale)

    keys = [row["idn"] for row in client.iter_rows("/invoices", key="idn", per_page=20)]

    assert sorted(map(str, keys)) == sorted(str(row["idn"]) for row in sim.listed("invoices"))
    page_3 = [entry for entry in sim.requests() if query_of(entry).get("page") == ["3"]]
    assert [entry["status"] for entry in page_3] == [500, 200]
    assert page_3[1]["time"] - page_3[0]["time"] >= 60 / scale
    assert sim.rate_limited() == 0


def test_a_get_refused_with_429_is_sent_again_without_waiting_the_identical_get_minute(simulator, make_client):
    scale = 10  # identical-GET window: 6 s; the forced block: 1 s (the simulator may round it up a second)
    sim = simulator(limits=f"scaled:{scale}")
    sim.fault(kind="rate_limit", window="Minute limiter", retry_after=1, path="/invoices", count=1)
    client = make_client(sim, scale=scale)

    client.get("/invoices", per_page=10)

    attempts = [entry for entry in sim.requests() if entry["path"] == "/invoices"]
    assert [entry["status"] for entry in attempts] == [429, 200]
    assert attempts[1]["url"] == attempts[0]["url"]
    assert attempts[1]["time"] - attempts[0]["time"] < 60 / scale  # Precoro never served the refused GET


@pytest.mark.usefixtures("state_backend")  # the ledger in a SQLite file and in PostgreSQL
def test_a_429_makes_every_process_wait_until_its_retry_time_then_continue(simulator, state_dir):
    scale = 2  # 125 ms of spacing margin: scheduling jitter of a busy 2-core machine fits in it
    sim = simulator(limits=f"scaled:{scale}")
    sim.fault(kind="rate_limit", window="Minute limiter", retry_after=2, after=6, count=1)
    jobs = [("/invoices", "idn", 20), ("/purchaseorders", "idn", 20), ("/purchaserequisitions", "idn", 10)]

    results = run_workers(sim, state_dir, scale, jobs)

    log = sim.requests()
    rejected = [entry for entry in log if entry["status"] == 429]
    assert len(rejected) == 1 and sim.stats()["rate_limited"] == {"Minute limiter": 1}
    # the simulator's block lasted at least until arrival + 2 s (rounded up to the whole second, as Precoro
    # shows it): nobody sent before it
    blocked_until = rejected[0]["time"] + 2
    later = [entry for entry in log if entry["time"] > rejected[0]["time"]]
    assert later and all(entry["time"] >= blocked_until for entry in later)
    assert {entry["path"] for entry in later} == {path for path, _, _ in jobs}, "every process went on"
    for (path, key, _), result in zip(jobs, results, strict=True):
        assert result["keys"] == sorted(str(row[key]) for row in sim.listed(path.strip("/")))


@pytest.mark.timing  # 3,000 requests within one scaled day: a loaded machine can't send them fast enough
def test_spending_the_day_raises_quota_exhausted_and_sends_nothing_until_it_resumes(simulator, make_client):
    # A quota day lasts 43.2 s; counts stay the real 3,000 a day. The 3,000 requests must all go out within one
    # scaled day (70 a second): at 4000x (139 a second) a machine at load 16 sent too few, the day's first
    # requests left the window and the quota never ran out.
    scale = 2000
    sim = simulator(limits=f"scaled:{scale}")
    client = make_client(sim, scale=scale, max_wait_seconds=5)
    idns = [row["idn"] for row in client.iter_rows("/invoices", key="idn")]

    with pytest.raises(QuotaExhausted) as raised:
        for turn in range(4000):
            client.get_detail("invoices", idns[turn % len(idns)])

    log = sim.requests()
    assert len(log) == 3000 and client.spent == 3000
    assert sim.rate_limited() == 0
    assert raised.value.window == "day"
    # the day frees up one scaled day after the first request (plus a margin of a few ms)
    expected = log[0]["time"] + 86400 / scale
    assert abs(raised.value.resume_at.timestamp() - expected) < 0.05
    # asking again is refused at once, without a request
    with pytest.raises(QuotaExhausted):
        client.get_detail("invoices", idns[0])
    assert len(sim.requests()) == 3000
    # once the resume time has passed, requests flow again and the simulator accepts them
    time.sleep(max(0.0, raised.value.resume_at.timestamp() - time.time()))
    assert client.get_detail("invoices", idns[1])["idn"] == idns[1]
    log = sim.requests()
    assert len(log) == 3001 and log[-1]["status"] == 200
    assert log[-1]["time"] >= raised.value.resume_at.timestamp()
    assert sim.rate_limited() == 0


# -- pagination -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["insert", "delete"])
def test_rows_shifting_between_pages_lose_nothing_and_duplicate_nothing(simulator, make_client, mode):
    scale = 10
    sim = simulator(limits=f"scaled:{scale}")
    before = {str(row["idn"]) for row in sim.listed("invoices")}
    sim.fault(kind="shift_rows", mode=mode, method="GET", path="/invoices", query={"page": "2"}, count=1)
    client = make_client(sim, scale=scale)

    keys = [str(row["idn"]) for row in client.iter_rows("/invoices", key="idn", per_page=20)]

    after = {str(row["idn"]) for row in sim.listed("invoices")}
    assert len(keys) == len(set(keys)), "a row was yielded twice"
    assert after <= set(keys), f"rows lost: {sorted(after - set(keys))}"
    if mode == "insert":
        assert len(after) == len(before) + 1 and set(keys) == after
    else:  # the vanished row had been served (and yielded) before it was deleted
        assert len(after) == len(before) - 1 and set(keys) == before
    page_1 = [e for e in sim.requests() if e["path"] == "/invoices" and query_of(e).get("page") == ["1"]]
    assert len(page_1) == 2, "the list was read again after the shift"
    assert sim.rate_limited() == 0


def test_legacy_pagination_without_has_next_page_reads_every_page(simulator, make_client):
    sim = simulator()
    sim.fault(kind="legacy_pagination", path="/purchaseorders", count=None)
    client = make_client(sim)

    keys = [str(row["idn"]) for row in client.iter_rows("/purchaseorders", key="idn", per_page=50)]

    assert sorted(keys) == sorted(str(row["idn"]) for row in sim.export("purchaseorders"))


def test_more_than_200_external_ids_are_looked_up_in_batches_of_200(simulator, make_client):
    sim = simulator()
    client = make_client(sim)
    invoices = list(client.iter_rows("/invoices", key="idn"))[:5]
    for number, invoice in enumerate(invoices):
        client.patch_external("invoices", invoice["idn"], external_id=f"EXT-{number}")
    wanted = [f"EXT-{n}" for n in range(5)] + [f"NOPE-{n}" for n in range(300)]

    found = list(client.iter_rows("/invoices", key="idn", external_id=wanted))

    assert sorted(row["externalId"] for row in found) == [f"EXT-{n}" for n in range(5)]
    lookups = [e for e in sim.requests() if e["path"] == "/invoices" and "external_id" in e["url"]]
    assert [len(query_of(e)["external_id[]"]) for e in lookups] == [200, 105]


# -- retries, errors, writes ------------------------------------------------------------------------


@pytest.mark.parametrize("fault, logged_status", [
    ({"kind": "reset"}, 0),
    ({"kind": "malformed_json"}, 200),
    ({"kind": "error", "status": 503}, 503),
    ({"kind": "slow", "seconds": 1.5}, 200),  # longer than the client's 1 s timeout
])
def test_a_failed_get_is_retried_and_the_detail_comes_back_with_exact_money(simulator, make_client, fault,
                                                                            logged_status):
    sim = simulator()
    client = make_client(sim, timeout_seconds=1.0)
    idn = next(client.iter_rows("/invoices", key="idn", per_page=10))["idn"]
    sim.fault(path="/invoices/{idn}", count=1, **fault)

    invoice = client.get_detail("invoices", idn)

    assert invoice["idn"] == idn and "items" in invoice
    assert isinstance(invoice["sum"], Decimal | int) and not isinstance(invoice["sum"], float)
    details = []
    for _ in range(50):  # a slow request is logged at arrival; its status comes once it has finished sleeping
        details = [e for e in sim.requests() if e["path"] == "/invoices/{idn}"]
        if len(details) >= 2 and all(e["status"] is not None for e in details):
            break
        time.sleep(0.1)
    assert [e["status"] for e in sorted(details, key=lambda e: e["time"])] == [logged_status, 200]
    assert client.spent == 3


def test_a_post_that_may_have_landed_is_not_repeated(simulator, make_client):
    sim = simulator()
    client = make_client(sim)
    invoice = next(row for row in client.iter_rows("/invoices", key="idn", status=[2]))
    sim.fault(kind="error", status=500, method="POST", path="/payments", count=1)

    with pytest.raises(PrecoroServerError):
        client.create_payment(invoice["id"], Decimal("1.00"), datetime.now(UTC))

    assert [e["status"] for e in sim.requests() if e["path"] == "/payments"] == [500]


def test_a_wrong_token_fails_after_one_request_naming_the_variable_but_not_the_token(simulator, make_client):
    sim = simulator(limits="scaled:20")
    secret = "wrong-token-5f2c9a7e81"
    client = make_client(sim, token=secret)

    with pytest.raises(PrecoroAuthError) as raised:
        list(client.iter_rows("/invoices", key="idn"))

    assert len(sim.requests()) == 1
    text = str(raised.value) + repr(raised.value) + "".join(traceback.format_exception(raised.value))
    assert "PRECORO_API_TOKEN" in text and "PRECORO_EMAIL" in text
    assert secret not in text and secret not in repr(client)


def test_after_a_401_no_client_on_the_same_ledger_sends_with_those_credentials(simulator, make_client):
    sim = simulator(limits="scaled:20")
    first = make_client(sim, token="wrong-token-0b7d")
    with pytest.raises(PrecoroAuthError):
        first.get_detail("invoices", "1")

    later = make_client(sim, token="wrong-token-0b7d")  # another run's client: the ledger is what they share
    with pytest.raises(PrecoroAuthError) as raised:
        list(later.iter_rows("/invoices", key="idn"))

    assert len(sim.requests()) == 1
    assert "nothing was sent" in str(raised.value)
    assert later.spent == 0 and later.usage().used["day"] == 1
    right = make_client(sim)  # the right token is not held back by the wrong one
    assert next(right.iter_rows("/invoices", key="idn"))


def test_payments_and_external_ids_are_written_form_encoded(simulator, make_client):
    sim = simulator()
    client = make_client(sim)
    invoice = next(row for row in client.iter_rows("/invoices", key="idn", status=[2]))
    detail = client.get_detail("invoices", invoice["idn"])
    open_amount = Decimal(str(detail["sum"])) - Decimal(str(detail["sumPaid"] or "0"))

    created = client.create_payment(detail["id"], open_amount, datetime.now(UTC))
    client.patch_external("invoices", invoice["idn"], external_id="LEDGER-1", external_integration_log="")

    assert created["id"]
    after = client.get_detail("invoices", invoice["idn"])
    assert after["status"] == 5 and after["externalId"] == "LEDGER-1"
    with pytest.raises(PrecoroValidationError) as raised:  # paying a paid invoice again
        client.create_payment(detail["id"], Decimal("1.00"), datetime.now(UTC))
    assert "sumPaid" in raised.value.fields and "sumPaid" in str(raised.value)
    with pytest.raises(PrecoroNotFound):
        client.get_detail("invoices", "999999999")


# -- a Precoro that can't be reached -----------------------------------------------------------------


def test_an_unreachable_base_url_fails_within_seconds_names_the_setting_and_spends_nothing(state_dir):
    import socket

    from precoro_assets.api.client import PrecoroClient
    from precoro_assets.api.errors import PrecoroUnreachable

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Precoro's real pace: a retry that waited out the identical-GET minute would take minutes
    client = PrecoroClient("token", "me@example.com", base_url=f"http://127.0.0.1:{port}", state_dir=state_dir,
                           database_url=settings.load_state().database_url_value)
    try:
        started = time.monotonic()
        with pytest.raises(PrecoroUnreachable) as failure:
            client.get("/invoices")
        assert time.monotonic() - started < 15
        assert "PRECORO_BASE_URL" in str(failure.value) and "PRECORO_REGION" in str(failure.value)
        assert "token" not in str(failure.value)
        # nothing reached Precoro: nothing is charged, and no identical-GET minute was started
        assert client.spent == 0 and all(used == 0 for used in client.usage().used.values())
        started = time.monotonic()
        with pytest.raises(PrecoroUnreachable):
            client.get("/invoices")
        assert time.monotonic() - started < 15
    finally:
        client.close()


def test_four_busy_processes_of_four_threads_send_over_a_thousand_requests_without_a_429(simulator, state_dir):
    """At the demo's pace (the simulator 10x faster than Precoro), for about two minutes: every request of every
    process and thread respects the spacing, whatever each one's connect and scheduling delays."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    sim = simulator(limits="scaled:10")
    worker = Path(__file__).with_name("traffic_worker.py")
    env = {**os.environ, "PRECORO_API_TOKEN": sim.token, "PRECORO_EMAIL": sim.email}
    jobs = [("invoices", "idn"), ("purchaseorders", "idn"), ("purchaserequisitions", "idn"), ("suppliers", "id")]
    processes = [subprocess.Popen([sys.executable, str(worker), sim.url, str(state_dir), "10", resource, key, "260"],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for resource, key in jobs]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    log = sim.requests()
    assert len(log) >= 1000 and len(log) == sum(result["spent"] for result in results)
    assert sim.rate_limited() == 0, [(e["url"], e["rate_limit_type"]) for e in log if e["status"] == 429][:10]
    arrivals = sorted(entry["time"] for entry in log)
    assert min(later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)) >= 0.1
