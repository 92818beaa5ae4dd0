"""Faults on demand (`POST /_sim/faults`): each kind docs/simulator.md lists does what it says, faulted requests
are counted in the statistics and against the quota, and a rate-limited request is not faulted."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import httpx
import pytest

from tests.simulator.sim_harness import PAGINATION_FIELDS, amount, retry_time, sleep_until

# ---- faults that replace the answer ----------------------------------------------------------------------


def test_an_error_burst_fails_the_next_n_matching_requests_then_stops(api):
    api.fault(kind="error", status=503, path="/invoices", count=3)

    statuses = [api.get("/invoices").status_code for _ in range(5)]

    assert statuses == [503, 503, 503, 200, 200]
    assert api.faults() == []


def test_every_nth_matching_request_fails_with_every(api):
    """A steady fault rate, as a flaky gateway gives: the 3rd, 6th, 9th ... matching request fails."""
    api.fault(kind="error", path="/invoices/{idn}", every=3, count=None)
    idn = api.get("/invoices").json()["data"][0]["idn"]

    statuses = [api.get(f"/invoices/{idn}").status_code for _ in range(9)]

    assert statuses == [200, 200, 500] * 3
    assert api.faults()[0]["every"] == 3
    assert api.control.post("/_sim/faults", json={"kind": "error", "every": 0}).status_code == 400


def test_an_error_carries_a_json_error_body_and_only_hits_what_it_matches(api):
    api.fault(kind="error", path="/invoices", query={"page": "3"}, after=1, count=1)

    assert api.get("/invoices", params={"page": 3}).status_code == 200  # `after` lets the first pass
    assert api.get("/invoices", params={"page": 2}).status_code == 200  # another page: no match
    assert api.get("/suppliers", params={"page": 3}).status_code == 200  # another path: no match
    failed = api.get("/invoices", params={"page": 3})

    assert failed.status_code == 500
    assert isinstance(failed.json()["error"], str)
    assert api.get("/invoices", params={"page": 3}).status_code == 200


def test_a_detail_fault_matches_the_path_template(api):
    idn = api.export("invoices")[0]["idn"]
    api.fault(kind="error", status=502, method="GET", path="/invoices/{idn}", count=1)

    assert api.get("/invoices").status_code == 200
    assert api.get(f"/invoices/{idn}").status_code == 502
    assert api.get(f"/invoices/{idn}").status_code == 200


@pytest.mark.e2e  # a reset is the server ending the TCP connection
def test_a_reset_closes_the_connection_without_an_answer(api_over_socket):
    api = api_over_socket
    api.fault(kind="reset", path="/invoices", count=1)

    with pytest.raises(httpx.TransportError):
        api.get("/invoices")

    assert api.get("/invoices").status_code == 200
    statuses = [entry["status"] for entry in api.requests()]
    assert statuses == [0, 200]  # the dropped answer is logged with status 0


@pytest.mark.e2e  # the client's read timeout runs out only on a connection
def test_a_slow_answer_arrives_late_but_whole(api_over_socket):
    api = api_over_socket
    normal = api.get("/suppliers").json()
    api.fault(kind="slow", seconds=1.0, path="/suppliers", count=2)

    with api.client(headers=api.headers, timeout=0.25) as impatient, \
            pytest.raises(httpx.ReadTimeout):
        impatient.get("/suppliers")
    patient = api.get("/suppliers")

    assert patient.status_code == 200 and patient.json() == normal


@pytest.mark.e2e  # a lost response is the server dropping the connection after the write
def test_a_lost_response_on_a_payment_still_creates_the_payment(api_over_socket):
    api = api_over_socket
    invoice = next(i for i in reversed(api.export("invoices"))
                   if i["status"] == 2 and i["logicType"] == 0 and amount(i["sumPaid"]) == 0)
    payments_before = {p["id"] for p in api.export("payments")}
    api.fault(kind="lost_response", method="POST", path="/payments", count=1)

    with pytest.raises(httpx.TransportError):
        api.http.post("/payments", data={"invoice[id]": str(invoice["id"]), "sumPaid": "1.00", "logicType": "0",
                                         "payDate": "2025-08-10T12:00:00+00:00"})

    created = [p for p in api.export("payments") if p["id"] not in payments_before]
    assert [(p["invoice"]["id"], amount(p["sumPaid"])) for p in created] == [(invoice["id"], Decimal("1.00"))]
    after = api.detail("invoices", invoice["idn"])
    assert after["sumPaid"] == "1.00" and after["status"] == 4
    assert created[0]["id"] in [p["id"] for p in after["payments"]["data"]]


def test_malformed_json_is_a_200_whose_body_does_not_parse(api):
    api.fault(kind="malformed_json", path="/invoices", count=1)

    response = api.get("/invoices")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert api.get("/invoices").json()["data"]


def test_an_injected_429_blocks_like_a_real_one_until_its_retry_time(api):
    api.fault(kind="rate_limit", window="Hourly limiter", retry_after=1, limit=1500, count=1)
    sent_at = time.time()

    first = api.get("/invoices")
    second = api.get("/taxes")  # not matched by the rule, but blocked: a 429 blocks the token

    for response in (first, second):
        assert response.status_code == 429
        body = response.json()
        assert body["RateLimit-Type"] == "Hourly limiter" and body["RateLimit-Limit"] == 1500
        assert retry_time(body).timestamp() > sent_at and isinstance(body["error"], str)
    sleep_until(retry_time(first.json()))
    assert api.get("/invoices").status_code == 200
    assert api.stats()["rate_limited"] == {"Hourly limiter": 2}


def test_an_injected_429_counts_like_a_real_one_and_its_refused_get_may_be_sent_again_at_the_retry_time(simulator):
    scale = 10  # the identical-GET minute lasts 6 s, longer than the 1 s retry
    api = simulator(limits=f"scaled:{scale}")
    api.fault(kind="rate_limit", window="Minute limiter", retry_after=1, path="/invoices", count=1)
    sent_at = time.time()

    refused = api.get("/invoices", params={"page": 1})

    body = refused.json()
    assert refused.status_code == 429 and body["RateLimit-Type"] == "Minute limiter"
    assert api.stats()["quota"]["day"] == 1 and api.stats()["rate_limited"] == {"Minute limiter": 1}
    sleep_until(retry_time(body))
    assert time.time() < sent_at + 60 / scale
    assert api.get("/invoices", params={"page": 1}).status_code == 200


# ---- faults that alter the records served ------------------------------------------------------------------


def test_missing_fields_are_removed_from_every_record_served(api):
    api.fault(kind="missing_fields", path="/invoices", fields=["sumPaid", "supplier"], count=None)
    api.fault(kind="missing_fields", path="/invoices/{idn}", fields=["items"], count=None)

    rows = api.walk("invoices")
    detail = api.detail("invoices", rows[0]["idn"])

    assert rows and all("sumPaid" not in row and "supplier" not in row and "sum" in row for row in rows)
    assert "items" not in detail and "sumPaid" in detail


def test_unknown_fields_are_added_to_every_record_served(api):
    api.fault(kind="unknown_fields", path="/suppliers", fields={"vatMode": "reverse", "tags": {"data": []}},
              count=None)

    rows = api.walk("suppliers", per_page=10)

    assert rows and all(row["vatMode"] == "reverse" and row["tags"] == {"data": []} for row in rows)


def test_renamed_fields_are_renamed_on_every_record_served(api):
    api.fault(kind="renamed_fields", path="/invoices", rename={"sumPaid": "amountPaid"}, count=1)
    expected = {str(i["idn"]): i["sumPaid"] for i in api.export("invoices")}

    rows = api.page("invoices", 1, 50)["data"]

    assert all("sumPaid" not in row and row["amountPaid"] == expected[str(row["idn"])] for row in rows)


def test_shift_rows_insert_puts_a_new_record_on_top_before_page_two(api):
    before = set(api.exported("invoices"))
    first = api.page("invoices", 1, 10)
    api.fault(kind="shift_rows", mode="insert", path="/invoices", count=1)

    second = api.page("invoices", 2, 10)

    new = set(api.exported("invoices")) - before
    assert len(new) == 1
    assert second["meta"]["pagination"]["total"] == first["meta"]["pagination"]["total"] + 1
    # everything moved down by one: the last row of page 1 is served again at the top of page 2
    assert second["data"][0]["idn"] == first["data"][-1]["idn"]
    assert str(api.page("invoices", 1, 10)["data"][0]["idn"]) in new


def test_shift_rows_delete_removes_a_record_already_served_before_page_two(api):
    first = api.page("invoices", 1, 10)
    second_before = api.page("invoices", 2, 10)
    api.fault(kind="shift_rows", mode="delete", path="/invoices", count=1)

    second = api.page("invoices", 2, 10)

    assert second["meta"]["pagination"]["total"] == first["meta"]["pagination"]["total"] - 1
    gone = {str(r["idn"]) for r in first["data"]} - set(api.exported("invoices"))
    assert len(gone) == 1
    # everything moved up by one: the first row of page 2 slipped onto page 1, unseen by this walk
    assert [r["idn"] for r in second["data"][:9]] == [r["idn"] for r in second_before["data"][1:]]


def test_shift_rows_only_fires_on_page_two_and_later(api):
    api.fault(kind="shift_rows", mode="insert", path="/invoices", count=1)
    total = len(api.export("invoices"))

    api.page("invoices", 1, 10)
    assert len(api.export("invoices")) == total
    api.page("invoices", 2, 10)
    assert len(api.export("invoices")) == total + 1


def test_legacy_pagination_has_no_has_next_page(api):
    api.fault(kind="legacy_pagination", path="/invoices", count=1)

    legacy = api.page("invoices", 1, 20)["meta"]["pagination"]
    modern = api.page("invoices", 1, 20)["meta"]["pagination"]

    assert "has_next_page" not in legacy
    assert set(legacy) == PAGINATION_FIELDS - {"has_next_page"}
    assert legacy["current_page"] == 1 and legacy["total_pages"] == modern["total_pages"] > 1
    assert modern["has_next_page"] is True


def test_a_bad_fault_rule_is_refused(api):
    response = api.control.post("/_sim/faults", json={"kind": "gremlins"})

    assert response.status_code == 400 and "kind" in response.json()["error"]


def test_faults_can_be_listed_and_cleared(api):
    api.fault(kind="error", path="/invoices", count=None)
    assert [rule["kind"] for rule in api.faults()] == ["error"]

    api.control.delete("/_sim/faults").raise_for_status()

    assert api.faults() == []
    assert api.get("/invoices").status_code == 200


# ---- faulted requests count -------------------------------------------------------------------------------


@pytest.mark.e2e  # one of the faults is a reset: the server drops the connection
def test_faulted_requests_are_counted_in_stats_and_against_the_quota(simulator):
    scale = 100
    api = simulator(limits=f"scaled:{scale}", over_socket=True)
    api.fault(kind="error", status=500, path="/taxes", count=2)
    api.fault(kind="reset", path="/suppliers", count=1)

    statuses = []
    for page in (1, 2, 3):
        statuses.append(api.get("/taxes", params={"page": page}).status_code)
        time.sleep(3 / scale)
    with pytest.raises(httpx.TransportError):
        api.get("/suppliers")

    assert statuses == [500, 500, 200]
    stats = api.stats()
    counts = {(r["method"], r["path"], r["status"]): r["count"] for r in stats["requests"]}
    assert counts == {("GET", "/taxes", 500): 2, ("GET", "/taxes", 200): 1, ("GET", "/suppliers", 0): 1}
    assert stats["total"] == 4
    assert stats["quota"]["day"] == stats["quota"]["hour"] == 4
    assert stats["faults_injected"] == {"error": 2, "reset": 1}
    assert stats["rate_limited"] == {}


def test_a_rate_limited_request_is_answered_429_and_leaves_the_fault_for_later(simulator):
    api = simulator(limits="real")
    api.fault(kind="error", status=500, path="/invoices", count=1)

    assert api.get("/taxes").status_code == 200
    assert api.get("/invoices").status_code == 429  # within the second: rate-limited first

    assert [rule["remaining"] for rule in api.faults()] == [1]
