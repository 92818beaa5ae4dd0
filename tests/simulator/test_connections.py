"""The simulator's HTTP server: HTTP/1.1 keep-alive, request bodies on a kept-alive connection, faults that
drop a connection, and a stop that does not wait for idle connections.

Each test starts its own small simulator, so that it alone opens connections to it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from precoro_sim.simulator import start_simulator

pytestmark = pytest.mark.e2e  # every test here is about the HTTP server: connections, TCP resets, request bodies


@pytest.fixture
def running() -> Iterator[object]:
    with start_simulator(seed=7, days=30, documents=60, limits="off", port=0) as simulator:
        yield simulator


def client_for(running, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=running.url, timeout=30,
                        headers={"X-AUTH-TOKEN": running.token, "email": running.email, **headers})


def local_address(response: httpx.Response) -> tuple[str, int]:
    """The client's end of the TCP connection the response came over."""
    return response.extensions["network_stream"].get_extra_info("client_addr")


def statuses(running) -> list[int]:
    return [entry["status"] for entry in httpx.get(f"{running.url}/_sim/requests").json()["requests"]]


def test_sequential_requests_of_one_client_share_one_connection(running):
    before = running.connections_accepted
    with client_for(running) as client:
        first = client.get("/invoices", params={"per_page": 10})
        second = client.get(f"/invoices/{first.json()['data'][0]['idn']}")
        third = client.get("/suppliers")

        assert [first.status_code, second.status_code, third.status_code] == [200, 200, 200]
        assert first.http_version == "HTTP/1.1" and "close" not in first.headers.get("connection", "")
        assert local_address(first) == local_address(second) == local_address(third)
    assert running.connections_accepted - before == 1


def test_a_client_that_sends_connection_close_gets_a_new_connection_each_time(running):
    before = running.connections_accepted
    with client_for(running, Connection="close") as client:
        answers = [client.get("/taxes") for _ in range(3)]

    assert [a.status_code for a in answers] == [200] * 3
    assert all(a.headers["connection"] == "close" for a in answers)
    assert running.connections_accepted - before == 3


@pytest.mark.parametrize("kind", ["reset", "lost_response"])
def test_a_dropped_kept_alive_connection_does_not_break_the_next_request(running, kind):
    with client_for(running) as client:
        assert client.get("/invoices").status_code == 200
        httpx.post(f"{running.url}/_sim/faults", json={"kind": kind, "path": "/suppliers", "count": 1})
        opened = running.connections_accepted

        with pytest.raises(httpx.TransportError):
            client.get("/suppliers")  # sent over the kept-alive connection, which ends without an answer
        after = client.get("/suppliers")

        assert after.status_code == 200 and after.json()["data"]
        assert running.connections_accepted == opened + 1, "the dropped connection is not used again"
    assert statuses(running) == [200, 0, 200]


def test_a_reset_is_a_tcp_reset_without_any_answer(running):
    httpx.post(f"{running.url}/_sim/faults", json={"kind": "reset", "path": "/taxes", "count": 1})
    with socket.create_connection(("127.0.0.1", int(running.url.rsplit(":", 1)[1])), timeout=10) as raw:
        raw.sendall(f"GET /taxes HTTP/1.1\r\nHost: x\r\nX-AUTH-TOKEN: {running.token}\r\n"
                    f"email: {running.email}\r\n\r\n".encode())
        with pytest.raises(ConnectionResetError):
            while raw.recv(65536):
                pass


def test_a_body_the_application_does_not_read_does_not_spill_into_the_next_request(running):
    with client_for(running) as client:
        # refused before its form is read (wrong token), then a GET on the same connection
        refused = client.post("/payments", data={"invoice[id]": "1", "sumPaid": "1.00"},
                              headers={"X-AUTH-TOKEN": "wrong"})
        with_body = client.request("GET", "/taxes", content=b"ignored=1&body=2")
        after = client.get("/items", params={"per_page": 10})

        assert (refused.status_code, with_body.status_code, after.status_code) == (401, 200, 200)
        assert local_address(refused) == local_address(after)
    assert statuses(running) == [401, 200, 200]


def test_chunked_request_bodies_are_read_whole(running):
    with httpx.Client(base_url=running.url, timeout=30) as control:
        chunks = [b'{"kind": "error", ', b'"path": "/taxes", ', b'"count": 1}']
        added = control.post("/_sim/faults", content=iter(chunks), headers={"Content-Type": "application/json"})
        listed = control.get("/_sim/faults")

    assert added.request.headers["transfer-encoding"] == "chunked"
    assert added.status_code == 200, added.text
    assert [(rule["kind"], rule["path"]) for rule in listed.json()["faults"]] == [("error", "/taxes")]


def test_stop_does_not_wait_for_idle_kept_alive_connections_and_closes_them():
    simulator = start_simulator(seed=7, days=30, documents=60, limits="off", port=0)
    client = client_for(simulator)
    try:
        assert client.get("/taxes").status_code == 200  # the connection stays open, idle

        started = time.monotonic()
        simulator.stop()

        assert time.monotonic() - started < 2
        with pytest.raises(httpx.TransportError):  # not served by the stopped simulator any more
            client.get("/taxes")
    finally:
        client.close()
        simulator.stop()
