"""Dagster's default run launcher, able to tell when a run's process has died; and the pool slots of dead runs,
given back.

Run monitoring marks a run failed (and frees its `precoro_api` pool slot) only if the run launcher can check its
worker; Dagster's DefaultRunLauncher can't, so a run killed by the OOM killer or a reboot stayed "started" for
ever and every later run waited for its slot. The run worker logs its pid when it starts ("Started process for
run (pid: N)"): on the machine that runs the daemon, which for the default launcher is the one that runs the
workers, a pid that no longer exists is a dead worker. Hand-written because no launcher in Dagster or a well-kept
library does this for local processes; the health-check types come from dagster's launcher module.

`precoro-assets sync` runs without the daemon, so nothing would ever free the slot of a sync killed by kill -9:
each sync tags its runs with its pid and host, and before (and while) it waits for the slot it fails the runs
whose process is gone and frees their slots (`free_slots_of_dead_runs`), or says which live run holds it.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import socket
import sys
import threading
import time
from datetime import UTC, datetime

import dagster as dg
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus

PID_TAG, HOST_TAG = "precoro/pid", "precoro/host"
# As run_monitoring.free_slots_after_run_end_seconds in dagster.yaml: a run that ended may have had a step
# still finishing; after this long, its slots are given back.
FREE_SLOTS_AFTER_RUN_END_S = 60


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid the run's worker process reported when it started (the latest, if it was started again).

    Only the run's own engine events count: the multiprocess executor's step subprocesses log their pids too,
    and one of them ending is not the run dying."""
    pid = None
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        data = event.event_specific_data if event is not None and event.step_key is None else None
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


# ---- pool slots of runs that died ---------------------------------------------------------------------------------

def process_tags() -> dict[str, str]:
    """Tags naming this process and its machine, so that a later run can tell that a run of it died."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def run_pid(instance: dg.DagsterInstance, run: dg.DagsterRun) -> int | None:
    """The pid of the run's process if it runs on this machine; None when that can't be known from here (another
    host, or a launcher that doesn't say)."""
    if run.tags.get(PID_TAG, "").isdigit():
        return int(run.tags[PID_TAG]) if run.tags.get(HOST_TAG) == socket.gethostname() else None
    if isinstance(instance.run_launcher, LocalRunLauncher):  # its workers run on this machine
        return worker_pid(instance, run.run_id)
    return None


def holders(instance: dg.DagsterInstance, pool: str) -> list[str]:
    """The runs that hold a slot of the pool or have been assigned one, in order."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    held = [slot.run_id for slot in info.claimed_slots]
    held += [step.run_id for step in info.pending_steps if step.assigned_timestamp is not None]
    return list(dict.fromkeys(held))


def limit_pool(instance: dg.DagsterInstance, pool: str, limit: int) -> bool:
    """Give `pool` a limit of its own on this instance unless it has one (what `dagster instance concurrency set
    <pool> <limit>` does); True when set now. Per pool, not through dagster.yaml's `pools: default_limit`, which
    caps every pool of the instance: in a host's own deployment, its own pools too."""
    storage = instance.event_log_storage
    if pool in storage.get_concurrency_keys():
        return False  # set before, by us or by whoever runs the instance (the UI's Concurrency tab, the CLI)
    storage.set_concurrency_slots(pool, limit)
    return True


def pool_limit(instance: dg.DagsterInstance, pool: str) -> int | None:
    """The pool's limit on this instance; None when it has none (its steps run side by side)."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    return info.limit if info.limit is not None else (info.slot_count or None)


def pool_is_full(instance: dg.DagsterInstance, pool: str) -> bool:
    info = instance.event_log_storage.get_concurrency_info(pool)
    limit = pool_limit(instance, pool)
    return limit is not None and len(info.claimed_slots) >= limit


def free_slots_of_dead_runs(instance: dg.DagsterInstance, pool: str) -> list[str]:
    """Give back the pool's slots (held or waited for) of runs that can't use them any more: a run whose process is
    gone (kill -9, the OOM killer, a reboot) is marked failed first; a run that ended more than a minute ago had
    its slots kept only because no daemon ran to free them. Returns one line per run freed."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    freed = []
    for run_id in dict.fromkeys([s.run_id for s in info.claimed_slots] + [s.run_id for s in info.pending_steps]):
        record = next(iter(instance.get_run_records(dg.RunsFilter(run_ids=[run_id]))), None)
        if record is None:
            why = "no longer exists"
        elif record.dagster_run.is_finished:
            if record.end_time and time.time() - record.end_time < FREE_SLOTS_AFTER_RUN_END_S:
                continue
            why = f"ended ({record.dagster_run.status.value.lower()})"
        else:
            pid = run_pid(instance, record.dagster_run)
            if pid is None or process_exists(pid):
                continue
            why = f"was killed: its process (pid {pid}) is gone; marked failed"
            instance.report_run_failed(record.dagster_run, f"The run's process (pid {pid}) no longer exists: killed "
                                       f"(kill -9, the OOM killer) or its machine restarted. Its {pool} pool slot "
                                       "was freed.")
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        freed.append(f"Run {run_id[:8]} {describe(record.dagster_run) if record else ''} {why}, and its {pool} "
                     "pool slot was freed.".replace("  ", " "))
    return freed


def describe(run: dg.DagsterRun) -> str:
    """The run in a few words: what started it, and where its process runs."""
    what = run.tags.get("precoro/cli") or run.tags.get("precoro/trigger") or run.job_name
    where = f", pid {run.tags[PID_TAG]} on {run.tags.get(HOST_TAG, '?')}" if PID_TAG in run.tags else ""
    return f"({what}{where})"


def holder_line(instance: dg.DagsterInstance, pool: str, run_id: str) -> str:
    """One line: which run holds the pool's slot, and how to free it if it is stuck."""
    record = next(iter(instance.get_run_records(dg.RunsFilter(run_ids=[run_id]))), None)
    if record is None:
        return f"Waiting for the {pool} pool slot: run {run_id} holds it."
    started = ""
    if record.start_time:
        started = f", started {datetime.fromtimestamp(record.start_time, UTC):%Y-%m-%d %H:%M:%S} UTC"
    pid = run_pid(instance, record.dagster_run)
    state = "is still running" if pid is not None else "can't be checked from this machine"
    return (f"Waiting for the {pool} pool slot: run {run_id} {describe(record.dagster_run)[:-1]}{started}) holds "
            f"it and {state}. If it is stuck, terminate it in the Dagster UI (Runs > {run_id[:8]} > Terminate, "
            f"forced if asked): its slot is freed a minute later.")


def our_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """This process's runs that have not ended (tagged with process_tags)."""
    return [run for run in instance.get_runs(dg.RunsFilter(tags=process_tags())) if not run.is_finished]


POLL_S = 1.0
CHECK_HOLDERS_EVERY_S = 5.0
# After SIGTERM/SIGINT, how long a run with a step under way may take to stop by itself (Dagster interrupts
# the step) before this process gives it up.
STOP_GRACE_S = 20.0


class StopRequest(threading.Event):
    """Set by SIGTERM or SIGINT (Ctrl-C) in a headless command: no later run is started. `name` says which."""

    name = "SIGTERM"


class SlotWatch:
    """While this process executes a run in-process (`dg.materialize`), watch it from a thread: a run waiting for
    the pool's slot frees the slots of dead runs that hold it (or says once who holds it), and SIGTERM or SIGINT
    ends the process at once.

    Why a thread: while Dagster's in-process executor waits for a slot, its signal handler only notes the signal
    for the next step to raise, and that step never starts; the wait loop itself spins without sleeping. The
    thread learns of each signal through `signal.set_wakeup_fd`, which Dagster's handlers leave alone; it then
    marks this process's runs canceled, frees their slots, stops the processes it started and exits 128 + the
    signal's number. A run with a step under way is left STOP_GRACE_S to stop by itself (Dagster interrupts the
    step) first.
    """

    def __init__(self, pool: str, say, stop: StopRequest | None = None) -> None:
        self.pool, self.say, self.stop = pool, say, stop
        self.signal: signal.Signals | None = None  # the last SIGTERM/SIGINT received meanwhile
        self._done = threading.Event()
        self._read, self._write = socket.socketpair()
        self._previous_fd: int | None = None

    def __enter__(self) -> SlotWatch:
        for end in (self._read, self._write):
            end.setblocking(False)
        if threading.current_thread() is threading.main_thread():
            self._previous_fd = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._watch, name="precoro-slot-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._previous_fd is not None:
            signal.set_wakeup_fd(self._previous_fd)
        self._thread.join()
        self._read.close()
        self._write.close()

    def _watch(self) -> None:
        instance = dg.DagsterInstance.get()  # its own: the run's is busy in the main thread
        try:
            signalled_at, checked_at = None, 0.0
            told: set[str] = set()
            while not self._done.is_set():
                if select.select([self._read], [], [], POLL_S)[0]:
                    for number in self._read.recv(512):
                        if number in (signal.SIGTERM, signal.SIGINT):
                            self.signal, signalled_at = signal.Signals(number), signalled_at or time.monotonic()
                            if self.stop is not None:  # no later run: the sync says which signal stopped it
                                self.stop.name = self.signal.name
                                self.stop.set()
                if self._done.is_set():
                    return
                try:
                    ours = our_runs(instance)
                    waiting = self._waiting(instance, {run.run_id for run in ours})
                except Exception:  # noqa: BLE001 - e.g. the instance's SQLite busy with the run's writes: next poll
                    ours, waiting = [], False
                if signalled_at is not None and (waiting or time.monotonic() - signalled_at > STOP_GRACE_S):
                    self._give_up(instance, ours, waiting)
                if waiting and time.monotonic() - checked_at > CHECK_HOLDERS_EVERY_S:
                    checked_at = time.monotonic()
                    self._free_or_tell(instance, {run.run_id for run in ours}, told)
        finally:
            instance.dispose()

    def _free_or_tell(self, instance: dg.DagsterInstance, ours: set[str], told: set[str]) -> None:
        try:
            for line in free_slots_of_dead_runs(instance, self.pool):
                self.say(line)
            for run_id in holders(instance, self.pool):
                if run_id not in told and run_id not in ours:
                    told.add(run_id)
                    self.say(holder_line(instance, self.pool, run_id))
        except Exception:  # noqa: BLE001 - the instance's database busy: tried again a few seconds later
            return

    def _waiting(self, instance: dg.DagsterInstance, ours: set[str]) -> bool:
        """Whether one of our runs waits for a slot of the pool and holds none (so no step of it is under way)."""
        info = instance.event_log_storage.get_concurrency_info(self.pool)
        return (any(s.run_id in ours and s.assigned_timestamp is None for s in info.pending_steps)
                and not any(s.run_id in ours for s in info.claimed_slots))

    def _give_up(self, instance: dg.DagsterInstance, ours: list[dg.DagsterRun], waiting: bool) -> None:
        name = self.signal.name if self.signal else "signal"
        try:
            for run in ours or our_runs(instance):
                instance.report_run_canceled(run, f"Stopped by {name} while waiting for the {self.pool} pool slot"
                                             if waiting else f"Stopped by {name}; the run did not stop within "
                                             f"{STOP_GRACE_S:.0f} s")
                instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        except Exception:  # noqa: BLE001 - the process ends all the same; the next sync frees what is left
            pass
        for child in multiprocessing.active_children():  # e.g. detail worker processes
            child.kill()
        self.say(f"Stopped ({name}) " + (f"while the run waited for the {self.pool} pool slot (no step was under "
                                         "way)" if waiting else f"after {STOP_GRACE_S:.0f} s: the run under way did "
                                         "not stop by itself") + "; it was canceled and no later run was started.")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + (self.signal or signal.SIGTERM))


def wait_for_slot(instance: dg.DagsterInstance, pool: str, say, poll_s: float = 2.0) -> None:
    """Before a run starts: free the slots of dead runs, and while live runs hold every slot, say once who holds
    it and wait here (Dagster's own wait spins a core and ignores signals; this one sleeps, and a signal ends
    it)."""
    told: set[str] = set()
    while True:
        for line in free_slots_of_dead_runs(instance, pool):
            say(line)
        if not pool_is_full(instance, pool):
            return
        for run_id in holders(instance, pool):
            if run_id not in told:
                told.add(run_id)
                say(holder_line(instance, pool, run_id))
        time.sleep(poll_s)
