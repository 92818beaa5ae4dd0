"""Precoro's webhooks (issue #17, item 3): `precoro-assets webhooks` records what Precoro POSTs, refuses what is
not an event, and the precoro_webhook_events sensor turns events into a run that fetches only the changed
details; lost deliveries are caught by the polling sensor, duplicates cost nothing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import dagster as dg
import httpx
import pytest

from precoro_assets import settings
from precoro_assets.catalogue import DOCUMENTS
from precoro_assets.defs.webhook_events import DOCUMENT_TYPES
from precoro_assets.ingest.webhook_inbox import WebhookInbox, inbox_path
from tests.ingest.test_sync import (
    changed_keys,
    detail_gets,
    list_gets,
    run_requested,
    sync_everything,
    tick_change_sensor,
)
from tests.ingest.truth import differences
from tests.support.local_servers import free_port, wait_until_serving

SECRET = "test-secret-0123456789abcdef"


@pytest.fixture
def receiver(env) -> Iterator[str]:
    """`precoro-assets webhooks` on a free port, with the test's PRECORO_HOME; yields its webhook URL."""
    yield from start_receiver()


@pytest.fixture
def impatient_receiver(env) -> Iterator[str]:
    """The receiver, giving each request 2 seconds to arrive whole."""
    yield from start_receiver("--request-timeout", "2")


def start_receiver(*options: str) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "precoro_sim.cli", "webhooks", "--port", str(port),
                                *options], env={**os.environ, "PRECORO_WEBHOOK_SECRET": SECRET},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_until_serving(process, port, "the webhook receiver")
    yield f"http://127.0.0.1:{port}/precoro/{SECRET}"
    process.terminate()
    process.wait(timeout=30)


def inbox(env) -> WebhookInbox:
    return WebhookInbox(inbox_path(env.config.state_dir), env.config.database_url_value)


@pytest.mark.e2e
@pytest.mark.usefixtures("state_backend")  # the inbox in a SQLite file and in PostgreSQL
def test_the_receiver_records_events_and_refuses_everything_else(env, receiver):
    base = receiver.rsplit("/", 1)[0]
    good = {"id": 123456, "type": 3, "action": 1, "idn": 5}
    assert httpx.post(receiver, json=good).status_code == 200
    assert httpx.post(f"{base}/wrong-secret-0123456789", json=good).status_code == 404
    assert httpx.post(receiver, content=b"x" * 5000).status_code == 413
    assert httpx.post(receiver, json={**good, "type": 12}).status_code == 422
    assert httpx.post(receiver, json={**good, "action": 2}).status_code == 422
    assert httpx.post(receiver, json={**good, "extra": 1}).status_code == 422
    assert httpx.post(receiver, json=[good]).status_code == 422
    assert httpx.post(receiver, content=b"not json").status_code == 422
    assert httpx.get(receiver).status_code == 404
    recorded = inbox(env).after(0)
    assert [(e.type, e.action, e.id, e.idn) for e in recorded] == [(3, 1, 123456, "5")]


@pytest.mark.e2e
@pytest.mark.usefixtures("state_backend")  # the inbox in a SQLite file and in PostgreSQL
def test_bodies_at_the_edges_of_json_and_of_the_database_are_refused_with_422_and_a_reason(env, receiver):
    good = {"id": 123456, "type": 3, "action": 1, "idn": 5}
    edges = [  # (body, what the answer says)
        (json.dumps({**good, "id": 10**30}), "is not a record id"),  # wider than the inbox's 64-bit integers
        (json.dumps({**good, "id": 2**63}), "is not a record id"),  # one past the largest
        ("[" * 1000, "nested too deeply"),  # deeper than the JSON parser recurses
        (json.dumps({**good, "type": 10**30}), "is not one of Precoro's webhook types"),
        (json.dumps({**good, "idn": "x" * 300}), "is not a document number"),  # a document number is short
        (json.dumps({**good, "idn": "5\u0000"}), "is not a document number"),
    ]
    for body, reason in edges:
        response = httpx.post(receiver, content=body.encode())
        assert response.status_code == 422, (body[:80], response.text)
        assert reason in response.json()["error"], response.json()

    largest = {**good, "id": 2**63 - 1}
    assert httpx.post(receiver, json=largest).status_code == 200  # the receiver still records good events
    assert [(e.type, e.id, e.idn) for e in inbox(env).after(0)] == [(3, 2**63 - 1, "5")]


@pytest.mark.e2e
def test_a_connection_that_sends_nothing_or_drips_is_closed_after_the_request_timeout(env, impatient_receiver):
    port = int(impatient_receiver.split(":")[2].split("/")[0])
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]  # half-open: nothing sent
    dripping = socket.create_connection(("127.0.0.1", port))
    opened = time.monotonic()
    request = (f"POST /precoro/{SECRET} HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n").encode()
    cut_off_after = None
    for offset in range(len(request) + 50):  # a byte every 0.1 s: the headers alone would take 6 s
        try:
            dripping.sendall((request + b"{" * 50)[offset:offset + 1])
        except OSError:
            cut_off_after = time.monotonic() - opened
            break
        if closed(dripping):
            cut_off_after = time.monotonic() - opened
            break
        time.sleep(0.1)
    assert cut_off_after is not None and cut_off_after < 4, cut_off_after
    # meanwhile a whole request is served at once
    assert httpx.post(impatient_receiver, json={"id": 1, "type": 3, "action": 1, "idn": 5}).status_code == 200
    deadline = opened + 6
    while not all(closed(s) for s in idle):
        assert time.monotonic() < deadline, sum(not closed(s) for s in idle)
        time.sleep(0.1)
    for s in [*idle, dripping]:
        s.close()
    assert [e.idn for e in inbox(env).after(0)] == ["5"]


def closed(connection: socket.socket) -> bool:
    """Whether the server has closed the connection (an empty read), without waiting."""
    connection.setblocking(False)
    try:
        return connection.recv(1024) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        connection.setblocking(True)


@pytest.mark.e2e
def test_webhooks_lost_and_duplicated_leave_nothing_missed_after_the_safety_net_poll(env, receiver):
    sync_everything(env)
    env.control("POST", "webhooks", json={"urls": [receiver], "lose": 0.2, "duplicate": 0.3, "seed": 5})
    env.control("POST", "tick", json={"events": 40})
    deadline = time.monotonic() + 60
    while (state := env.control("GET", "webhooks"))["pending"]:
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    assert state["lost"] > 0 and state["duplicated"] > 0 and state["failed"] == 0, state

    events = inbox(env).after(0)
    assert len(events) == state["delivered"]
    documents = {(e.type, e.idn) for e in events if e.type in DOCUMENT_TYPES}
    assert len(documents) < len([e for e in events if e.type in DOCUMENT_TYPES])  # some came twice (or more)

    sensor = env.defs.resolve_sensor_def("precoro_webhook_events")
    with dg.build_sensor_context(instance=env.instance, definitions=env.defs, resources=env.defs.resources) as context:
        result = sensor.evaluate_tick(context)
    document_runs = [r for r in result.run_requests if r.job_name == "precoro_documents"]
    assert len(document_runs) == 1
    _, mark = env.request_log()
    assert run_requested(env, document_runs[0]).success
    log, mark = env.request_log(mark)
    assert list_gets(log) == []  # events name the documents: nothing is listed
    assert len(detail_gets(log)) == len(log) == len(documents)  # one detail per document, duplicates free
    for request in result.run_requests:
        if request.job_name == "precoro_reference":
            assert env.materialize([k.to_user_string() for k in request.asset_selection]).success

    # the events' documents are current; what was lost (and payments, which have no webhook) waits for the poll
    poll = tick_change_sensor(env)
    for request in poll.run_requests:
        assert run_requested(env, request).success
    for entity in DOCUMENTS:
        assert differences(env, entity) == [], entity.name
    # a tick with no new event asks for nothing
    with dg.build_sensor_context(instance=env.instance, definitions=env.defs, resources=env.defs.resources,
                                 cursor=result.cursor) as context:
        again = sensor.evaluate_tick(context)
    assert not again.run_requests


def tick_webhook_sensor(env, cursor: str | None) -> dg.SensorResult:
    sensor = env.defs.resolve_sensor_def("precoro_webhook_events")
    with dg.build_sensor_context(instance=env.instance, definitions=env.defs, resources=env.defs.resources,
                                 cursor=cursor) as context:
        return sensor.evaluate_tick(context)


def handed_over(result) -> list[tuple[str, str]]:
    """The documents (asset, idn) a tick handed to runs."""
    return [(key.to_user_string(), idn) for request in result.run_requests for key in request.asset_selection
            for idn in changed_keys(request, key)]


@pytest.mark.e2e
@pytest.mark.usefixtures("state_backend")  # the inbox in a SQLite file and in PostgreSQL
def test_a_flood_of_events_spends_at_most_its_share_of_the_days_quota_and_the_rest_waits_for_later_days(
        make_sim_env):
    # events may spend 1 % of the day's 3,000 requests: 30 details a day; a quota day lasts 6 s here
    env = make_sim_env(time_scale=14_400.0, PRECORO_WEBHOOK_QUOTA_SHARE="1")
    share = 30
    flood = [(3, r["id"], str(r["idn"])) for r in env.export("invoices")] + \
        [(2, r["id"], str(r["idn"])) for r in env.export("purchaseorders")]
    assert len(flood) > 4 * share
    for kind, record_id, idn in flood:  # someone who knows the secret names every document there is
        inbox(env).record(kind, 1, record_id, idn)

    first = tick_webhook_sensor(env, None)
    assert len(handed_over(first)) == share  # the first 30 events' documents
    assert {request.tags["precoro/webhook_events_waiting"] for request in first.run_requests} == \
        {str(len(flood) - share)}  # the flood is reported on the run it asked for
    again = tick_webhook_sensor(env, first.cursor)  # the same day: nothing more
    assert not again.run_requests
    assert f"{len(flood) - share} webhook event(s) wait" in again.skip_message
    assert "1 % of the day's 3000 requests" in again.skip_message

    _, mark = env.request_log()
    for request in first.run_requests:
        assert run_requested(env, request).success
    log, _ = env.request_log(mark)
    assert len(detail_gets(log)) == len(log) == share  # what the tick handed over is what was spent

    handed, cursor = handed_over(first), first.cursor
    deadline = time.monotonic() + 120
    while len(handed) < len(flood):  # each later day takes the next 30: none lost, none twice
        assert time.monotonic() < deadline, len(handed)
        time.sleep(0.5)
        result = tick_webhook_sensor(env, cursor)
        cursor = result.cursor or cursor
        assert len(handed_over(result)) <= share
        handed += handed_over(result)
    names = {3: "precoro/invoices", 2: "precoro/purchase_orders"}
    assert sorted(handed) == sorted((names[kind], idn) for kind, _, idn in flood)


def test_the_share_of_the_quota_for_events_is_a_percentage_and_a_wrong_one_names_the_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("PRECORO_API_TOKEN", "token")  # a real account's settings: nothing else is filled in
    monkeypatch.setenv("PRECORO_HOME", str(tmp_path))
    monkeypatch.delenv("PRECORO_WEBHOOK_QUOTA_SHARE", raising=False)
    assert settings.load().webhook_quota_share == 0.30
    monkeypatch.setenv("PRECORO_WEBHOOK_QUOTA_SHARE", "25%")
    assert settings.load().webhook_quota_share == 0.25
    for wrong in ("0", "150", "a third"):
        monkeypatch.setenv("PRECORO_WEBHOOK_QUOTA_SHARE", wrong)
        with pytest.raises(ValueError, match="PRECORO_WEBHOOK_QUOTA_SHARE must be a percentage above 0"):
            settings.load()


@pytest.mark.e2e
def test_one_receiver_serves_several_companies_each_event_to_the_inbox_its_secret_names(tmp_path, monkeypatch):
    """`precoro-assets webhooks --company acme=HOME --company globex=HOME`: each company gives Precoro its own URL
    (its secret in <NAME>_PRECORO_WEBHOOK_SECRET), and its events land in the inbox its webhook sensor reads (the
    company's state under its home, as load_settings(PRECORO_HOME=...) places it)."""
    secrets = {"acme": "acme-secret-0123456789abcdef", "globex": "globex-secret-0123456789abcd"}
    homes = {name: tmp_path / name for name in secrets}
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "precoro_assets.cli", "webhooks", "--port", str(port),
         *(option for name in secrets for option in ("--company", f"{name}={homes[name]}"))],
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
             **{f"{name.upper()}_PRECORO_WEBHOOK_SECRET": secret for name, secret in secrets.items()}},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_serving(process, port, "the webhook receiver")
        url = f"http://127.0.0.1:{port}/precoro"
        assert httpx.post(f"{url}/{secrets['acme']}", json={"id": 1, "type": 3, "action": 1, "idn": 7}).status_code \
            == 200
        assert httpx.post(f"{url}/{secrets['globex']}", json={"id": 2, "type": 5, "action": 0, "idn": 9}
                          ).status_code == 200
        assert httpx.post(f"{url}/not-a-company-secret-0123", json={"id": 3, "type": 3, "action": 1, "idn": 1}
                          ).status_code == 404
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    for secret in secrets.values():
        assert secret not in output  # the log names the variable, never the secret
    assert f"for acme on http://127.0.0.1:{port}/precoro/<ACME_PRECORO_WEBHOOK_SECRET>" in output
    for name, event in (("acme", (3, 1, "7")), ("globex", (5, 2, "9"))):
        monkeypatch.setenv("COMPANY_TOKEN", "x")
        state = settings.load("COMPANY_TOKEN", PRECORO_HOME=str(homes[name])).state_dir
        assert [(e.type, e.id, e.idn) for e in WebhookInbox(inbox_path(state)).after(0)] == [event], name


@pytest.mark.e2e
def test_a_company_without_its_webhook_secret_is_told_which_variable_to_set(tmp_path):
    done = subprocess.run([sys.executable, "-m", "precoro_assets.cli", "webhooks", "--company",
                           f"acme={tmp_path / 'acme'}"], capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ["PATH"], "HOME": str(tmp_path),
                               "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    assert done.returncode != 0 and "Set ACME_PRECORO_WEBHOOK_SECRET to a random string" in done.stderr
    assert "set `webhooks: true` in company acme's defs.yaml" in done.stderr
