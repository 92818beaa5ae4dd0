"""A run whose process died is marked failed by Dagster's run monitoring, which frees its precoro_api pool slot:
nobody has to find it and terminate it by hand."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import EngineEventData
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from precoro_assets.runtime.run_launcher import LocalRunLauncher

pytestmark = pytest.mark.e2e  # a simulator on a socket or child processes: in make test, not in make test-fast


PROJECT_YAML = Path(__file__).resolve().parents[2] / "precoro_assets" / "dagster.yaml"


def instance_with_project_settings(home: Path) -> dg.DagsterInstance:
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_YAML, home / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(home))


def started_run(instance: dg.DagsterInstance, worker_pid: int) -> dg.DagsterRun:
    run = instance.add_run(dg.DagsterRun(job_name="precoro_sync", status=dg.DagsterRunStatus.STARTED))
    # what the run worker logs first, as Dagster's default launcher starts it
    instance.report_engine_event(f"Started process for run (pid: {worker_pid}).", run,
                                 EngineEventData.in_process(worker_pid))
    return run


def monitor(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.DagsterRunStatus:
    [record] = instance.get_run_records(dg.RunsFilter(run_ids=[run.run_id]))
    monitor_started_run(instance, None, record, logging.getLogger("test"))
    return instance.get_run_by_id(run.run_id).status


def test_a_run_whose_worker_process_died_is_marked_failed_by_run_monitoring(tmp_path):
    instance = instance_with_project_settings(tmp_path / "dagster_home")
    assert isinstance(instance.run_launcher, LocalRunLauncher) and instance.run_monitoring_enabled
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a worker that was killed: its pid is gone
    alive = started_run(instance, os.getpid())
    killed = started_run(instance, dead.pid)

    assert monitor(instance, alive) == dg.DagsterRunStatus.STARTED
    assert monitor(instance, killed) == dg.DagsterRunStatus.FAILURE
    messages = [r.message for r in instance.all_logs(killed.run_id)]
    assert any(f"pid {dead.pid}" in m and "no longer exists" in m for m in messages)
    instance.dispose()


def test_a_step_subprocess_that_ended_is_not_taken_for_a_dead_run_worker(tmp_path):
    instance = instance_with_project_settings(tmp_path / "dagster_home")
    step_process = subprocess.Popen([sys.executable, "-c", "pass"])
    step_process.wait()  # the multiprocess executor's step subprocess: it ends with its step
    run = started_run(instance, os.getpid())
    instance.report_engine_event('Executing step "precoro__invoices" in subprocess.', run,
                                 EngineEventData.in_process(step_process.pid), step_key="precoro__invoices")

    assert monitor(instance, run) == dg.DagsterRunStatus.STARTED  # the run's worker is alive
    instance.dispose()
