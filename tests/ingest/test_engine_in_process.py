"""The sync engine (ingest/sync.py, ingest/reference.py) against the simulator's WSGI app in the same process: no
socket, no child process, no Dagster, so the fast tier checks the engine itself. The end-to-end tests (test_sync.py)
check the same behaviour through Dagster and a simulator on a socket.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from precoro_assets.api.client import PrecoroClient
from precoro_assets.api.quota import QuotaLimits
from precoro_assets.catalogue import BY_NAME
from precoro_assets.ingest.reference import sync_reference
from precoro_assets.ingest.sync import sync_documents
from precoro_assets.warehouse import tables
from precoro_assets.warehouse.staging import DetailStaging
from precoro_assets.warehouse.store import Warehouse
from precoro_sim.simulator.app import SimulatorApp, SimulatorConfig
from precoro_sim.simulator.limits import Limits
from tests.ingest.truth import differences

DAYS = 10
# Kept small for the fast tier: a reference entity fetched with details and two document types (test_sync.py
# syncs every entity end to end).
REFERENCE = (BY_NAME["suppliers"],)
DOCUMENTS = (BY_NAME["purchase_orders"], BY_NAME["invoices"])


@dataclass
class Engine:
    """The engine's two collaborators wired to an in-process simulator, plus what the ground truth needs."""

    client: PrecoroClient
    warehouse: Warehouse
    staging: DetailStaging
    control: httpx.Client

    def export(self, resource: str) -> list[dict]:
        return self.control.get(f"/_sim/export/{resource}").raise_for_status().json()["data"]

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        return [tuple(row) for row in self.warehouse.query(sql, params).itertuples(index=False, name=None)]

    def requests_since(self, since: int) -> tuple[list[dict], int]:
        body = self.control.get(f"/_sim/requests?since={since}").raise_for_status().json()
        return body["requests"], body["next"]

    def days(self) -> tuple:
        today = datetime.now(UTC).date()
        return today - timedelta(days=DAYS), today


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    app = SimulatorApp(SimulatorConfig(seed=11, days=DAYS, documents=80, limits=Limits.parse("off")))
    app.base_url = "http://simulator.test"
    transport = httpx.WSGITransport(app=app)
    # a second is a microsecond: nothing paces the requests (the budget still counts them)
    client = PrecoroClient(app.token, app.email, base_url=app.base_url, state_dir=tmp_path / "quota",
                           limits=QuotaLimits(time_scale=1e6), transport=transport)
    control = httpx.Client(transport=transport, base_url=app.base_url)
    yield Engine(client, Warehouse(tmp_path / "warehouse"), DetailStaging(tmp_path / "staging"), control)
    control.close()
    client.close()


def sync_all(engine: Engine) -> None:
    start, end = engine.days()
    for entity in REFERENCE:
        # the reference asset makes its tables ready first (defs/ingest.py); the document sync does it itself
        engine.warehouse.write(lambda con, entity=entity: (tables.ensure_sync_state(con), tables.ensure_tables(con, entity)))
        sync_reference(engine.client, engine.warehouse, entity, progress=lambda _: None)
    for entity in DOCUMENTS:
        sync_documents(engine.client, engine.warehouse, engine.staging, entity, start, end, progress=lambda _: None)


def test_a_sync_of_a_reference_entity_and_two_document_types_equals_the_simulators_ground_truth(engine: Engine) -> None:
    sync_all(engine)
    for entity in (*REFERENCE, *DOCUMENTS):
        assert differences(engine, entity) == [], entity.name


def test_each_detail_is_fetched_once_and_a_second_sync_of_an_unchanged_company_fetches_none(engine: Engine) -> None:
    sync_all(engine)
    first, mark = engine.requests_since(0)
    details = [r["url"] for r in first if r["path"].endswith("}")]  # /invoices/{idn}, /suppliers/{id}
    assert len(details) == len(set(details)) == sum(len(engine.export(e.path)) for e in (*REFERENCE, *DOCUMENTS))
    start, end = engine.days()
    for entity in DOCUMENTS:
        sync_documents(engine.client, engine.warehouse, engine.staging, entity, start, end, progress=lambda _: None)
    again, _ = engine.requests_since(mark)
    assert again, "the second sync lists the days again"
    assert [r for r in again if r["path"].endswith("}")] == []  # nothing changed: no detail asked for
    assert all(r["status"] == 200 for r in again)


def test_documents_changed_in_precoro_are_fetched_again_and_only_they(engine: Engine) -> None:
    sync_all(engine)
    invoices = next(e for e in DOCUMENTS if e.name == "invoices")
    ticked = engine.control.post("/_sim/tick", json={"events": 30}).raise_for_status().json()["changes"]
    changed = {change["key"] for change in ticked if change["resource"] == "invoices"}
    assert changed, "thirty events touch some invoice"
    _, mark = engine.requests_since(0)
    start, end = engine.days()
    sync_documents(engine.client, engine.warehouse, engine.staging, invoices, start, end, progress=lambda _: None)
    log, _ = engine.requests_since(mark)
    fetched = {r["url"].split("?")[0].rsplit("/", 1)[-1] for r in log if r["path"] == "/invoices/{idn}"}
    assert fetched == changed
    assert differences(engine, invoices) == []
