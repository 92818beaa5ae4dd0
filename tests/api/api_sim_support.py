"""Helpers for the API tests: the simulator's control API and worker processes sharing one budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

WORKER = Path(__file__).with_name("paginate_worker.py")


class Sim:
    """A running simulator and its `/_sim/` control API (never rate-limited)."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.url: str = handle.url
        self.token: str = handle.token
        self.email: str = handle.email
        self.control = httpx.Client(base_url=self.url, timeout=30)

    def stats(self) -> dict:
        return self.control.get("/_sim/stats").json()

    def rate_limited(self) -> int:
        return sum(self.stats()["rate_limited"].values())

    def requests(self) -> list[dict]:
        """Every request the simulator received, in arrival order."""
        seen: list[dict] = []
        since = 0
        while True:
            body = self.control.get("/_sim/requests", params={"since": since}).json()
            if not body["requests"]:
                return seen
            seen += body["requests"]
            if body["next"] == since:
                return seen
            since = body["next"]

    def fault(self, **rule) -> int:
        response = self.control.post("/_sim/faults", json=rule)
        response.raise_for_status()
        return response.json()["id"]

    def export(self, resource: str) -> list[dict]:
        return self.control.get(f"/_sim/export/{resource}").json()["data"]

    def listed(self, resource: str) -> list[dict]:
        """The exported records a list without logicType[] shows: /invoices leaves credit notes out (the product
        lists them apart, with logicType[]=1&logicType[]=5)."""
        return [r for r in self.export(resource) if resource != "invoices" or r.get("logicType") not in (1, 5)]

    def stop(self) -> None:
        self.control.close()
        self.handle.stop()


def query_of(logged: dict) -> dict[str, list[str]]:
    return parse_qs(urlsplit(logged["url"]).query)



def run_workers(sim: Sim, state_dir: Path, scale: float, jobs: list[tuple[str, str, int]]) -> list[dict]:
    """Paginate each (path, key, per_page) in its own process, all sharing `state_dir`; their results."""
    env = {**os.environ, "PRECORO_API_TOKEN": sim.token, "PRECORO_EMAIL": sim.email}
    processes = [
        subprocess.Popen([sys.executable, str(WORKER), sim.url, str(state_dir), str(scale), path, key, str(per_page)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for path, key, per_page in jobs
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results
