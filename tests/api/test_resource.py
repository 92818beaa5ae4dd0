"""Specifications for PrecoroResource: secrets from the environment, a working client, accounting metadata."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from precoro_assets.defs.resources import PrecoroResource

pytestmark = pytest.mark.e2e  # a simulator on a socket or child processes: in make test, not in make test-fast



@pytest.fixture
def env(monkeypatch, simulator):
    sim = simulator()
    monkeypatch.setenv("PRECORO_API_TOKEN", sim.token)
    monkeypatch.setenv("PRECORO_EMAIL", sim.email)
    return sim


def definitions(sim, state_dir) -> dg.Definitions:
    @dg.asset
    def suppliers(precoro: PrecoroResource) -> dg.MaterializeResult:
        rows = list(precoro.get_client().iter_rows("/suppliers", key="id"))
        return dg.MaterializeResult(metadata={"rows": len(rows), **precoro.accounting_metadata()})

    precoro = PrecoroResource(api_token=dg.EnvVar("PRECORO_API_TOKEN"), email=dg.EnvVar("PRECORO_EMAIL"),
                              base_url=sim.url, state_dir=str(state_dir), time_scale=1000)
    return dg.Definitions(assets=[suppliers], resources={"precoro": precoro})


def test_dagster_shows_the_variable_names_never_the_token(env, state_dir):
    defs = definitions(env, state_dir)
    # what the Dagster UI and `dagster definitions` read about the resource
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert "PRECORO_API_TOKEN" in snapshot and "PRECORO_EMAIL" in snapshot
    assert env.token not in snapshot
    resolved = PrecoroResource(api_token=env.token, email=env.email, state_dir=str(state_dir))
    assert env.token not in repr(resolved) and env.token not in repr(resolved.get_client())


def test_an_asset_reads_through_the_resource_and_reports_requests_spent_and_left(env, state_dir):
    defs = definitions(env, state_dir)
    with dg.instance_for_test() as instance:
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance)
        assert result.success
        materialization = result.asset_materializations_for_node("suppliers")[0]
        metadata = {key: value.value for key, value in materialization.metadata.items()}
        events = serialize_value(instance.all_logs(result.run_id))
        run = instance.get_run_by_id(result.run_id)

    assert metadata["rows"] == len(env.export("suppliers"))
    assert metadata["precoro_requests_spent"] == 1
    assert metadata["precoro_requests_left_day"] == 2999
    assert env.token not in events and env.token not in serialize_value(run)
