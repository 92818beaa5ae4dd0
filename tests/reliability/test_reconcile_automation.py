"""Reconciliation follows the data when `precoro_reconcile_automation` runs (the daemon soak relies on it): the
ledger is loaded when missing, reconciliation runs after its inputs change and only then, and the sensor is off
until someone switches it on. Evaluated in-process with Dagster's own evaluator, as the daemon evaluates it."""

from __future__ import annotations

import dagster as dg
import pytest

from precoro_assets import settings
from precoro_assets.definitions import build_definitions

LEDGER = {"precoro/ledger_payments", "precoro/ledger_bills"}
RECONCILIATION = {"precoro/reconciliation_invoices", "precoro/reconciliation_ledger", "precoro/writeback_outbox"}
DAY = "2026-01-05"

pytestmark = pytest.mark.filterwarnings("ignore::dagster.BetaWarning", "ignore::dagster.PreviewWarning")


@pytest.fixture
def defs(tmp_path, monkeypatch) -> dg.Definitions:
    for name, value in dict(PRECORO_API_TOKEN="not-a-token", PRECORO_EMAIL="a@example.com",
                            PRECORO_BASE_URL="http://127.0.0.1:9", PRECORO_HOME=str(tmp_path),
                            PRECORO_START_DATE="2026-01-01", PRECORO_TIME_SCALE="1").items():
        monkeypatch.setenv(name, value)
    return build_definitions(settings.load())


class Evaluator:
    def __init__(self, defs: dg.Definitions):
        self.defs, self.instance, self.cursor = defs, dg.DagsterInstance.ephemeral(), None

    def requested(self) -> set[str]:
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        return {r.key.to_user_string() for r in result.results if r.true_subset.size}

    def materialized(self, *keys: str, partition: str | None = None) -> None:
        for key in keys:
            self.instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))


def test_the_automation_sensor_targets_the_reconciliation_group_and_is_off_by_default(defs):
    sensor = defs.resolve_sensor_def("precoro_reconcile_automation")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert {k.to_user_string() for k in sensor.asset_selection.resolve(defs.resolve_asset_graph())} \
        == LEDGER | RECONCILIATION


def test_reconciliation_runs_after_its_inputs_change_and_only_then(defs):
    evaluator = Evaluator(defs)
    # switched on with nothing materialized: the ledger and the reconciliation (one run, in order)
    assert evaluator.requested() == LEDGER | RECONCILIATION
    assert evaluator.requested() == set()  # requested once, not on every tick
    evaluator.materialized(*LEDGER, *RECONCILIATION)
    assert evaluator.requested() == set()

    # a synced day of invoices (one partition of many, the others never synced) -> reconcile again
    evaluator.materialized("precoro/invoices", partition=DAY)
    requested = evaluator.requested()
    assert requested and requested <= RECONCILIATION and not requested & LEDGER
    evaluator.materialized(*RECONCILIATION)
    assert evaluator.requested() == set()

    # receipts are not an input of the reconciliation
    evaluator.materialized("precoro/receipts", partition=DAY)
    assert evaluator.requested() == set()

    # a new ledger load -> reconcile again
    evaluator.materialized(*LEDGER)
    assert evaluator.requested() and evaluator.requested() == set()
