"""Dagster's default run launcher, able to tell when a run's process has died.

Run monitoring marks a run failed (and frees its `precoro_api` pool slot) only if the run launcher can check its
worker; Dagster's DefaultRunLauncher can't, so a run killed by the OOM killer or a reboot stayed "started" for
ever and every later run waited for its slot. The run worker logs its pid when it starts ("Started process for
run (pid: N)"): on the machine that runs the daemon, which for the default launcher is the one that runs the
workers, a pid that no longer exists is a dead worker. Hand-written because no launcher in Dagster or a well-kept
library does this for local processes; the health-check types come from dagster's launcher module.
"""

from __future__ import annotations

import os

import dagster as dg
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid the run's worker process reported when it started (the latest, if it was started again)."""
    pid = None
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = record.dagster_event.event_specific_data if record.dagster_event else None
        value = getattr(data, "metadata", {}).get("pid") if data is not None else None
        if value is not None and str(value.value).isdigit():
            pid = int(value.value)
    return pid


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


class LocalRunLauncher(dg.DefaultRunLauncher):
    """DefaultRunLauncher + a worker health check, so that run monitoring fails runs whose process died."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        pid = worker_pid(self._instance, run.run_id)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "the run worker has not reported its pid yet")
        if process_exists(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"the run worker process (pid {pid}) no longer exists: "
                                    "killed (e.g. by the OOM killer) or its machine restarted")
