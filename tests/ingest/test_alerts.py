"""Someone hears when syncs stop: a failed run and a request quota running low are posted to PRECORO_ALERT_URL
(Slack-compatible JSON), and the quota is an asset check on precoro/api."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from precoro_assets.defs.alerts import AlertResource, build_quota_check
from precoro_assets.defs.naming import DEFAULT
from precoro_assets.defs.resources import PrecoroResource
from precoro_assets.defs.sources import PRECORO_API
from tests.ingest.environment import make_env
from tests.ingest.test_sync import sync_everything

pytestmark = pytest.mark.e2e


class Receiver(ThreadingHTTPServer):
    """A local incoming webhook: keeps the JSON bodies it is sent, answers `status`."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/secret-path"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def alerting_env(tmp_path, monkeypatch, receiver):
    environment = make_env(tmp_path, monkeypatch, PRECORO_ALERT_URL=receiver.url)
    try:
        yield environment
    finally:
        environment.sim.stop()


def precoro_with(env, per_day: int) -> PrecoroResource:
    """The environment's Precoro resource, with a day of `per_day` requests."""
    configured = env.defs.resources["precoro"]
    return PrecoroResource(**{**{name: getattr(configured, name) for name in PrecoroResource.model_fields},
                              "per_day": per_day})


def tick_quota_watch(env, cursor: str | None, per_day: int) -> dg.SensorResult:
    """A tick of the quota watch, its PrecoroResource given a day of `per_day` requests."""
    sensor = env.defs.resolve_sensor_def("precoro_quota_watch")
    resources = {**env.defs.resources, "precoro": precoro_with(env, per_day)}
    with dg.build_sensor_context(instance=env.instance, definitions=env.defs, resources=resources,
                                 cursor=cursor) as context:
        return sensor.evaluate_tick(context)


def test_a_quota_below_a_tenth_of_the_day_is_a_check_warning_posted_once(alerting_env, receiver):
    env = alerting_env
    sync_everything(env)
    spent = len(env.request_log()[0])

    ample = tick_quota_watch(env, None, per_day=10 * spent)  # 90 % left: the check passes, nothing is posted
    [verdict] = ample.asset_events
    assert isinstance(verdict, dg.AssetCheckEvaluation) and verdict.asset_key == PRECORO_API.key
    assert verdict.passed and verdict.metadata["requests left this day"].value == 9 * spent
    assert receiver.posts == []

    low = tick_quota_watch(env, ample.cursor, per_day=spent + spent // 20)  # under 5 % left
    [verdict] = low.asset_events
    assert not verdict.passed and verdict.severity == dg.AssetCheckSeverity.WARN
    assert verdict.metadata["requests left this day"].value == spent // 20
    [post] = receiver.posts
    assert f"{spent // 20} of the day's {spent + spent // 20} Precoro requests are left" in post["text"]

    again = tick_quota_watch(env, low.cursor, per_day=spent + spent // 20)
    assert again.asset_events == [] and len(receiver.posts) == 1  # still low: said once

    # the same check, run on demand (the asset check's own step): the same verdict, no request
    _, mark = env.request_log()
    low_precoro = precoro_with(env, spent + spent // 20)
    quota_left = build_quota_check(DEFAULT)
    checked = dg.materialize([PRECORO_API, quota_left], resources={"precoro": low_precoro}, instance=env.instance,
                             selection=dg.AssetSelection.checks(quota_left))
    [evaluation] = checked.get_asset_check_evaluations()
    assert evaluation.asset_key == PRECORO_API.key and not evaluation.passed
    assert env.request_log(mark)[0] == []


def test_a_failed_run_is_posted_with_its_job_days_and_reason(alerting_env, receiver):
    env = alerting_env
    env.control("POST", "faults", json={"kind": "error", "status": 401, "path": "/invoices", "count": 1000})
    day = env.days()[1].isoformat()
    failed = env.materialize("precoro/invoices", partition=day)
    assert not failed.success

    sensor = env.defs.resolve_sensor_def("precoro_run_failure_alerts")
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_instance=env.instance, dagster_run=failed.dagster_run,
        dagster_event=failed.get_run_failure_event()).for_run_failure()  # the alert URL: PRECORO_ALERT_URL
    sensor(context)
    [post] = receiver.posts
    assert post["text"].startswith(f"precoro-assets: run {failed.run_id} of ")
    assert f"({day})" in post["text"] and "failed" in post["text"]

    # a post refused, or redirected (nothing delivered), is an error the tick shows, without the secret URL
    for status in (500, 302):
        receiver.status = status
        with pytest.raises(RuntimeError, match=f"PRECORO_ALERT_URL.* answered {status}") as refused:
            sensor(context)
        assert "secret-path" not in str(refused.value)
    assert "secret-path" not in repr(AlertResource(url=receiver.url))
