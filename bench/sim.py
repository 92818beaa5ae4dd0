"""The simulator in its own process, and the control-API reads every measurement is built from.

A separate process so that neither its CPU nor its memory (about 1 GB at 100k documents) is counted
against the tool being measured, and so that generating the company is never inside a timing.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

# What each tool is asked to sync: every document type precoro-assets syncs (its `precoro_documents` group).
DOCUMENT_RESOURCES = ("purchaserequisitions", "purchaseorders", "receipts", "invoices", "expenses", "payments")
# List rows of these are headers only: a complete copy needs one detail GET per document.
DETAIL_RESOURCES = ("purchaserequisitions", "purchaseorders", "receipts", "invoices", "expenses")
# Credit notes are invoices (logicType 1 or 5) that Precoro's unfiltered GET /invoices leaves out: a client walks
# them apart with `logicType[]`, as Precoro's own connector does. The bench serves that shape (SHAPES) and counts
# them as a list of their own: their list pages and their details.
CREDIT_NOTES = "credit_notes"
CREDIT_NOTE_PARAMS = (("logicType[]", "1"), ("logicType[]", "5"))
CREDIT_NOTE_LOGIC_TYPES = (1, 5)
LISTS = (*DOCUMENT_RESOURCES, CREDIT_NOTES)  # the list walks a complete copy takes
LISTS_WITH_DETAILS = (*DETAIL_RESOURCES, CREDIT_NOTES)
SHAPES = {"credit_notes_in_invoice_list": False}  # as Precoro answers (see docs/simulator.md)
PER_PAGE = 200


def list_request(name: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The path and extra query parameters of one of LISTS."""
    return ("invoices", CREDIT_NOTE_PARAMS) if name == CREDIT_NOTES else (name, ())


@dataclass
class Simulator:
    """A running `precoro-assets simulator` subprocess and its connection facts."""

    process: subprocess.Popen
    url: str
    token: str
    email: str
    limits: str
    documents: int
    days: int
    startup_seconds: float
    _output: list[str] = field(default_factory=list)
    company: int | None = None  # which of a several-company simulator's companies this one speaks for

    def of_company(self, number: int, token: str) -> Simulator:
        """The same simulator, as company `number` (its token; its control API reads with `?company=N`)."""
        return replace(self, token=token, company=number)

    # -- control API -----------------------------------------------------------------------------

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        if self.company is not None:
            kwargs["params"] = {**kwargs.get("params", {}), "company": self.company}
        response = httpx.request(method, f"{self.url}/_sim/{path}", timeout=600, **kwargs)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict:
        return self.control("GET", "stats")

    def request_log(self, since: int = 0) -> tuple[list[dict], int]:
        body = self.control("GET", "requests", params={"since": since})
        return body["requests"], body["next"]

    def log_position(self) -> int:
        """Where the next request will be logged: measure one run alone with `request_log(since)`."""
        return self.request_log(10**12)[1]

    def document_counts(self) -> dict[str, int]:
        """Documents per list (see LISTS) as the simulator announced them at start, the credit notes apart.

        Cheap even at 1M documents: the announced counts, and the credit notes' count from one list page (its
        pagination total). Only for a simulator without limits: that page is a request like any other."""
        counts: dict[str, int] = {}
        for line in self._output:
            if "simulator ready" in line and ":" in line:
                for part in line.rsplit(":", 1)[1].strip(" )").split(","):
                    number, _, name = part.strip().partition(" ")
                    if name in DOCUMENT_RESOURCES and number.isdigit():
                        counts[name] = int(number)
        response = httpx.get(f"{self.url}/invoices", params=[("per_page", "10"), *CREDIT_NOTE_PARAMS],
                             headers={"X-AUTH-TOKEN": self.token, "email": self.email}, timeout=600)
        response.raise_for_status()
        counts[CREDIT_NOTES] = response.json()["meta"]["pagination"]["total"]
        counts["invoices"] = counts.get("invoices", 0) - counts[CREDIT_NOTES]
        return counts

    def export(self, resource: str) -> list[dict]:
        return self.control("GET", f"export/{resource}")["data"]

    def tick(self, events: int) -> list[dict]:
        return self.control("POST", "tick", json={"events": events})["changes"]

    def versions(self) -> dict[str, dict[str, str]]:
        """Ground truth: list (see LISTS) -> key -> updateDate of every document, the credit notes apart."""
        out: dict[str, dict[str, str]] = {name: {} for name in LISTS}
        for resource in DOCUMENT_RESOURCES:
            for record in self.export(resource):
                credit_note = resource == "invoices" and record.get("logicType") in CREDIT_NOTE_LOGIC_TYPES
                out[CREDIT_NOTES if credit_note else resource][str(record["idn"])] = str(record["updateDate"])
        return out

    def reset(self) -> None:
        """The company as generated, served in the bench's shapes (a reset restores the simulator's defaults)."""
        self.control("POST", "reset")
        self.control("POST", "shapes", json=SHAPES)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


ROOT = Path(__file__).resolve().parents[1]


def start(documents: int, days: int, limits: str, seed: int = 7, timeout: float = 600.0,
          root: Path = ROOT, companies: int = 1) -> Simulator:
    """Start the simulator CLI of the checkout `root` on a free port; return once it has generated the company and
    listens. (Another checkout: an earlier commit, for an A/B comparison; it serves its own simulator.)"""
    command = [sys.executable, "-m", "precoro_sim.cli", "simulator", "--port", "0", "--seed", str(seed),
               "--days", str(days), "--documents", str(documents), "--limits", limits,
               *(["--companies", str(companies)] if companies > 1 else [])]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=root,
                               env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(root)})
    assert process.stdout is not None
    facts: dict[str, str] = {}
    lines: list[str] = []
    deadline = started + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        name, _, value = line.strip().partition("=")
        if name in ("PRECORO_BASE_URL", "PRECORO_API_TOKEN", "PRECORO_EMAIL"):
            facts[name] = value
        if len(facts) == 3:
            break
    if len(facts) < 3:
        process.kill()
        raise RuntimeError("the simulator did not start:\n" + "\n".join(lines[-20:]))
    # Keep reading its output so a full pipe can never block it.
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # type: ignore[union-attr]
    simulator = Simulator(process, facts["PRECORO_BASE_URL"], facts["PRECORO_API_TOKEN"], facts["PRECORO_EMAIL"],
                          limits, documents, days, 0.0, lines)
    if root == ROOT:  # an earlier commit's simulator may not know these switches: it serves what it served then
        simulator.control("POST", "shapes", json=SHAPES)
    # Part of generating (not timed): every answer serialised once, so the tool measured first doesn't pay for
    # what the simulator then serves the others from its cache.
    simulator.control("POST", "warm")
    simulator.startup_seconds = time.monotonic() - started
    return simulator


# -- what a run cost, from the simulator's own request log ------------------------------------------

@dataclass
class Spent:
    """Requests one run sent, as the simulator saw them."""

    total: int = 0
    list_pages: int = 0
    details: int = 0
    other: int = 0
    rate_limited: int = 0
    rate_limited_by: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    duplicate_details: int = 0  # a 200 detail of a URL already answered 200 earlier in the measured span
    duplicate_lists: int = 0  # a 200 list page of a URL already answered 200 earlier in the measured span
    duplicate_examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def spent(entries: list[dict]) -> Spent:
    """Classify logged requests: list pages, detail GETs, 429s, and URLs answered twice."""
    result = Spent(total=len(entries))
    answered: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    for entry in entries:
        status, path, url = entry["status"], entry["path"], entry["url"]
        if status == 429:
            result.rate_limited += 1
            by_type[entry.get("rate_limit_type") or "unknown"] += 1
            continue
        if status != 200:
            result.errors += 1
            continue
        is_detail = path.endswith("{idn}")
        is_list = path.strip("/") in DOCUMENT_RESOURCES
        if is_detail:
            result.details += 1
            result.duplicate_details += bool(answered[url])
        elif is_list:
            result.list_pages += 1
            result.duplicate_lists += bool(answered[url])
        else:
            result.other += 1
        if answered[url] and len(result.duplicate_examples) < 5:
            result.duplicate_examples.append(url)
        answered[url] += 1
    result.rate_limited_by = dict(by_type)
    return result


def pages(count: int) -> int:
    """List requests needed to read `count` rows at 200 a page: at least one, to learn there are none."""
    return max(1, math.ceil(count / PER_PAGE))


def minimum_initial(counts: Mapping[str, int]) -> dict[str, int]:
    """Fewest requests that can copy every document (count per list of LISTS): list pages plus one detail each."""
    lists = sum(pages(counts.get(r, 0)) for r in LISTS)
    details = sum(counts.get(r, 0) for r in LISTS_WITH_DETAILS)
    return {"list_pages": lists, "details": details, "total": lists + details}


def counts(versions: Mapping[str, Mapping[str, str]]) -> dict[str, int]:
    return {resource: len(keys) for resource, keys in versions.items()}


def changed_documents(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> dict[str, set[str]]:
    """Documents created or modified between two ground-truth snapshots."""
    return {r: {k for k, v in after[r].items() if before[r].get(k) != v} for r in LISTS}


def minimum_incremental(changed: dict[str, set[str]]) -> dict[str, int]:
    """Fewest requests that bring a copy up to date: one modifiedSince walk per list plus changed details."""
    lists = sum(pages(len(changed[r])) for r in LISTS)
    details = sum(len(changed[r]) for r in LISTS_WITH_DETAILS)
    return {"list_pages": lists, "details": details, "total": lists + details}


def count_documents(versions: dict[str, dict[str, str]]) -> int:
    return sum(len(v) for v in versions.values())
