"""One measured run of one tool, in a fresh process: `python -m bench.worker '<json spec>'`.

A fresh process per run gives each tool its own peak RSS (this process and every process under it, summed)
and keeps dlt's and Dagster's global state apart. The spec names the tool, the action and the
simulator; the last line printed is the result as JSON.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from datetime import date
from pathlib import Path


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its waited-for children, in MiB (Linux reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


class TreeMemory:
    """Peak resident memory of this process and all its descendants together, sampled every 50 ms.

    ru_maxrss misses processes that are not our waited-for children (ours fetches details from worker
    processes started by a fork server), and it never adds processes up. Linux only (/proc)."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, sum(_rss_kb(pid) for pid in _tree(os.getpid())) / 1024)
            self._stop.wait(0.05)


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo += [int(child) for child in children.read().split()]
        except OSError:
            continue
    return pids


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class HeadersWatch:
    """When every expected document was first queryable (headers included), polled from a thread during the run."""

    def __init__(self, ours, expected: int, began: float) -> None:
        self.seconds: float | None = None
        self._ours, self._expected, self._began = ours, expected, began
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                if self._ours.stored_documents() >= self._expected:
                    self.seconds = time.perf_counter() - self._began
                    return
            except Exception:  # noqa: BLE001, S110 - no table yet, or a write in progress: look again
                pass
            self._stop.wait(0.25)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return None if self.seconds is None else round(self.seconds, 1)


def bare_http(url: str, token: str, email: str) -> int:
    """The floor for any sequential client: the same list pages and detail GETs, bodies read and dropped.

    Returns the documents seen. Nothing is parsed beyond the keys and the page count, nothing is stored.
    """
    import httpx

    from .sim import LISTS, LISTS_WITH_DETAILS, PER_PAGE, list_request

    seen = 0
    with httpx.Client(base_url=url, headers={"X-AUTH-TOKEN": token, "email": email}, timeout=60) as client:
        for name in LISTS:
            path, extra = list_request(name)
            page, pages = 1, 1
            while page <= pages:
                body = client.get(f"/{path}", params=[("per_page", PER_PAGE), ("page", page), *extra]).json()
                pages = body["meta"]["pagination"]["total_pages"]
                for row in body["data"]:
                    seen += 1
                    if name in LISTS_WITH_DETAILS:
                        client.get(f"/{path}/{row['idn']}").read()
                page += 1
    return seen


def run(spec: dict) -> dict:
    with TreeMemory() as memory:
        result = _run(spec)
    return {**result, "peak_rss_mb": max(result["peak_rss_mb"], memory.peak_mb)}


def _run(spec: dict) -> dict:
    home = Path(spec["home"])
    home.mkdir(parents=True, exist_ok=True)
    start, end = date.fromisoformat(spec["start"]), date.fromisoformat(spec["end"])
    scale = float(spec.get("time_scale", 1.0))
    if spec["tool"] == "ours":
        from .ours import Ours, configure

        configure(spec["url"], spec["token"], spec["email"], home, start, scale, spec.get("shared_budget"))
        ours = Ours(max_wait_seconds=spec.get("max_wait_seconds"))
        baseline = peak_rss_mb()
        began = time.perf_counter()
        watch = HeadersWatch(ours, spec["expect_documents"], began) if spec.get("expect_documents") else None
        if spec["action"] == "sensor":
            outcome = ours.sensor_cycle()
        else:
            outcome = ours.sync_range(start, end, spec.get("assets"))
        seconds = time.perf_counter() - began
        loaded = ours.loaded_documents()
        if watch is not None:
            outcome = {**outcome, "headers_seconds": watch.stop(), "stored_documents": ours.stored_documents()}
    elif spec["tool"] == "http":
        baseline = peak_rss_mb()
        began = time.perf_counter()
        loaded = bare_http(spec["url"], spec["token"], spec["email"])
        seconds = time.perf_counter() - began
        outcome = {"ok": True}
    else:
        import dlt  # noqa: F401 - imported before the baseline so the baseline covers the library
        from dlt.sources.rest_api import rest_api_source  # noqa: F401

        from . import dlt_pipeline

        baseline = peak_rss_mb()
        began = time.perf_counter()
        outcome = dlt_pipeline.run(spec["url"], spec["token"], spec["email"], f"{start.isoformat()}T00:00:00+00:00",
                                   home, time_scale=scale)
        seconds = time.perf_counter() - began
        loaded = dlt_pipeline.loaded_documents(home)
    return {**outcome, "seconds": seconds, "peak_rss_mb": peak_rss_mb(), "baseline_rss_mb": baseline,
            "loaded_documents": loaded}


def main() -> None:
    spec = json.loads(sys.argv[1])
    print(json.dumps(run(spec)), flush=True)


if __name__ == "__main__":
    main()
