"""Precoro's webhooks (issue #17, item 3): `precoro-assets webhooks` records what Precoro POSTs, refuses what is
not an event, and the precoro_webhook_events sensor turns events into a run that fetches only the changed
details; lost deliveries are caught by the polling sensor, duplicates cost nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import dagster as dg
import httpx
import pytest
from local_servers import free_port, wait_until_serving
from test_ingest_sync import detail_gets, list_gets, run_requested, sync_everything, tick_change_sensor
from truth import differences

from precoro_assets.api.catalogue import DOCUMENTS
from precoro_assets.defs.webhook_events import DOCUMENT_TYPES
from precoro_assets.webhooks import WebhookInbox, inbox_path

SECRET = "test-secret-0123456789abcdef"


@pytest.fixture
def receiver(env) -> Iterator[str]:
    """`precoro-assets webhooks` on a free port, with the test's PRECORO_HOME; yields its webhook URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "precoro_assets.cli", "webhooks", "--port", str(port)],
                               env={**os.environ, "PRECORO_WEBHOOK_SECRET": SECRET},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_until_serving(process, port, "the webhook receiver")
    yield f"http://127.0.0.1:{port}/precoro/{SECRET}"
    process.terminate()
    process.wait(timeout=30)


def inbox(env) -> WebhookInbox:
    return WebhookInbox(inbox_path(env.config.state_dir))


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
