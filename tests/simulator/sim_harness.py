"""Helpers for the simulator's acceptance tests: an httpx client speaking Precoro's API as the token user,
the `/_sim/` control API, and the facts of the contract (Precoro's API documentation, as docs/simulator.md
sums it up) the tests compare with.

The client talks to the simulator in-process (its WSGI application through httpx's WSGITransport: no socket,
so the fast tier can run it) or over a real localhost socket (for tests of the HTTP server itself).
Nothing here is taken from the simulator's code: resource names, keys and shapes are the contract's.
"""

from __future__ import annotations

import math
import signal
import subprocess
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx

from precoro_sim.simulator.app import SimulatorApp, SimulatorConfig
from precoro_sim.simulator.limits import Limits

# The contract's resources: documents are addressed by idn, reference data by id.
DOCUMENTS = ["purchaserequisitions", "purchaseorders", "receipts", "invoices", "expenses", "payments"]
REFERENCE = ["suppliers", "items", "taxes", "paymentterms", "locations", "legalentities",
             "documentcustomfields", "itemcustomfields", "users", "warehouses", "units"]
RESOURCES = DOCUMENTS + REFERENCE
CREDIT_NOTE_TYPES = (1, 5)  # an invoice's logicType when it is a credit note
CREDIT_NOTES = [("logicType[]", t) for t in CREDIT_NOTE_TYPES]  # the filter Precoro's connector lists them with
WITH_DETAIL = DOCUMENTS + ["suppliers", "items"]  # GET /{resource}/{key}
PAGINATION_FIELDS = {"total", "count", "per_page", "current_page", "total_pages", "has_next_page", "links"}
RETRY_AFTER_FORMAT = "%Y-%m-%d %H:%M:%S UTC"
# Under `scaled:F` (F != 1) the simulator keeps the retry time to the millisecond: "%Y-%m-%d %H:%M:%S.mmm UTC".
SCALED_RETRY_AFTER_FORMAT = "%Y-%m-%d %H:%M:%S.%f UTC"
# The base URL of an in-process simulator: a name no resolver knows, so a request that escapes the
# WSGI transport fails instead of reaching anything.
IN_PROCESS_URL = "http://simulator.test"


def in_plain_list(resource: str, record: dict) -> bool:
    """Whether a list without a logicType[] filter shows the record: /invoices leaves credit notes out (the tap's
    expectation: it lists them apart, with CREDIT_NOTES)."""
    return resource != "invoices" or record.get("logicType") not in CREDIT_NOTE_TYPES


def key_of(resource: str) -> str:
    return "idn" if resource in DOCUMENTS else "id"


def is_collection(value: object) -> bool:
    """A nested collection as Precoro wraps it: `{"data": [...]}`."""
    return isinstance(value, dict) and set(value) == {"data"} and isinstance(value["data"], list)


# Collections a list row keeps: invoice and expense rows carry their document custom field values.
IN_LIST_ROWS = {"invoices": {"dataDocumentCustomFields"}, "expenses": {"dataDocumentCustomFields"}}
# Reference data whose list rows leave out what only the detail has.
DETAIL_ONLY = {"suppliers": {"paymentTerms", "contacts", "supplierLegalEntities", "dataSupplierCustomFields"}}


def without_collections(record: dict, resource: str = "") -> dict:
    """A record as its list row shows it."""
    kept = IN_LIST_ROWS.get(resource, set())
    return {name: value for name, value in record.items() if not is_collection(value) or name in kept}


def list_row(resource: str, record: dict) -> dict:
    """An exported record as a list of its resource shows it: documents without their nested collections,
    reference data without what only its detail has."""
    if resource in DOCUMENTS:
        return without_collections(record, resource)
    return {k: v for k, v in record.items() if k not in DETAIL_ONLY.get(resource, set())}


def moment(text: str) -> datetime:
    """A response date (ISO 8601 with offset) as an aware datetime."""
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is not None, f"{text!r} has no offset"
    return parsed


def modified_since_text(when: datetime) -> str:
    """`modifiedSince`'s format: YYYY-MM-DDTHH:MM:SS in UTC."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def day_text(day: date) -> str:
    """The date filters' format: dd.mm.yyyy."""
    return day.strftime("%d.%m.%Y")


def whole_second_now() -> datetime:
    """Now, floored to the whole second (`modifiedSince` has no fractions)."""
    return datetime.fromtimestamp(math.floor(time.time()), UTC)


def amount(value: object) -> Decimal:
    """A JSON amount (a number, or a string like sumPaid) as the exact decimal it denotes."""
    return Decimal(str(value))


def retry_time(body: dict) -> datetime:
    text = body["RateLimit-Retry-After"]
    form = SCALED_RETRY_AFTER_FORMAT if "." in text else RETRY_AFTER_FORMAT
    return datetime.strptime(text, form).replace(tzinfo=UTC)


def sleep_until(when: datetime, margin: float = 0.02) -> None:
    delay = when.timestamp() - time.time() + margin
    if delay > 0:
        time.sleep(delay)


def new_simulator_app(seed: int = 7, days: int = 90, documents: int = 600, limits: str = "off") -> SimulatorApp:
    """The simulator's application without a server, built as `start_simulator` builds it."""
    return SimulatorApp(SimulatorConfig(seed=seed, days=days, documents=documents, limits=Limits.parse(limits)))


class Api:
    """Precoro's API on a simulator, as its token user, plus the simulator's control API.

    `Api.in_process(app)` calls the application directly (no socket); `Api.over_socket(running)` talks to a
    simulator served on 127.0.0.1, for what only the server does (connections, dropped connections, arrival
    stamps, client timeouts).

    `company`: which of the simulator's companies (1, 2, ...): its token, as `GET /_sim/info` lists it, and its
    control API (`?company=N`; company 1's without the parameter)."""

    def __init__(self, app: SimulatorApp, url: str, transport: httpx.BaseTransport | None = None,
                 timeout: float = 30, company: int = 1) -> None:
        self.app = app
        self.url = url
        self.transport = transport  # None: httpx's own, over the network
        self.company = company
        self.control = self.client(timeout=120, params={"company": company} if company != 1 else None)
        if company == 1:
            self.token: str = app.token
            self.email: str = app.email
        else:
            listed = self.control.get("/_sim/info").json()["companies"]
            identity = next(entry for entry in listed if entry["number"] == company)
            self.token, self.email = identity["token"], identity["email"]
        self.headers = {"X-AUTH-TOKEN": self.token, "email": self.email}
        self.http = self.client(headers=self.headers, timeout=timeout)

    @classmethod
    def in_process(cls, app: SimulatorApp, timeout: float = 30, company: int = 1) -> Api:
        """The application called in this process: its links point at IN_PROCESS_URL, as the server would set
        its own URL."""
        app.base_url = IN_PROCESS_URL
        return cls(app, IN_PROCESS_URL, httpx.WSGITransport(app=app), timeout, company)

    @classmethod
    def over_socket(cls, running, timeout: float = 30, company: int = 1) -> Api:  # noqa: ANN001 - a RunningSimulator
        return cls(running.app, running.url, None, timeout, company)

    def client(self, **options) -> httpx.Client:
        """Another client of the same simulator (no default headers unless given): in-process too if this one is."""
        return httpx.Client(base_url=self.url, transport=self.transport, **options)

    def close(self) -> None:
        self.http.close()
        self.control.close()

    # ---- Precoro's API --------------------------------------------------------------------------

    def get(self, path: str, params: object = None, **options) -> httpx.Response:
        return self.http.get(path, params=params, **options)

    def ok(self, method: str, path: str, **options) -> dict:
        """A request that must succeed; its JSON body."""
        response = self.http.request(method, path, **options)
        assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text[:500]}"
        return response.json()

    def page(self, resource: str, page: int = 1, per_page: int = 200, params: Iterable | None = None) -> dict:
        query = [("page", page), ("per_page", per_page), *(params or [])]
        return self.ok("GET", f"/{resource}", params=query)

    def walk(self, resource: str, per_page: int = 200, params: Iterable | None = None) -> list[dict]:
        """Every row of a list, page by page, checking the documented envelope on each page."""
        rows: list[dict] = []
        page = 1
        while True:
            body = self.page(resource, page, per_page, params)
            check_envelope(body, page, per_page)
            rows += body["data"]
            if not body["meta"]["pagination"]["has_next_page"]:
                return rows
            page += 1
            assert page <= 10_000, "pagination never ends"

    def walk_every(self, resource: str, per_page: int = 200, params: Iterable | None = None) -> list[dict]:
        """Every record's list row: an unfiltered /invoices leaves credit notes out (as Precoro's connector expects,
        it lists them with logicType[]=1&logicType[]=5), so they are listed apart."""
        rows = self.walk(resource, per_page, params)
        if resource == "invoices":
            rows += self.walk(resource, per_page, [*(params or []), *CREDIT_NOTES])
        return rows

    def keys(self, resource: str, params: Iterable | None = None, per_page: int = 200) -> list[str]:
        return [str(row[key_of(resource)]) for row in self.walk(resource, per_page, params)]

    def detail(self, resource: str, key: object) -> dict:
        return self.ok("GET", f"/{resource}/{key}")

    # ---- the control API ---------------------------------------------------------------------------

    def export(self, resource: str) -> list[dict]:
        response = self.control.get(f"/_sim/export/{resource}")
        response.raise_for_status()
        return response.json()["data"]

    def exported(self, resource: str) -> dict[str, dict]:
        return {str(record[key_of(resource)]): record for record in self.export(resource)}

    def listed(self, resource: str) -> dict[str, dict]:
        """The exported records an unfiltered list shows (see `in_plain_list`)."""
        return {key: record for key, record in self.exported(resource).items() if in_plain_list(resource, record)}

    def stats(self) -> dict:
        return self.control.get("/_sim/stats").json()

    def requests(self, since: int = 0) -> list[dict]:
        return self.control.get("/_sim/requests", params={"since": since}).json()["requests"]

    def fault(self, **rule) -> int:
        response = self.control.post("/_sim/faults", json=rule)
        assert response.status_code == 200, response.text
        return response.json()["id"]

    def faults(self) -> list[dict]:
        return self.control.get("/_sim/faults").json()["faults"]

    def tick(self, events: int) -> list[dict]:
        response = self.control.post("/_sim/tick", json={"events": events})
        response.raise_for_status()
        return response.json()["changes"]

    def reset(self) -> None:
        self.control.post("/_sim/reset").raise_for_status()


def check_envelope(body: dict, page: int, per_page: int) -> None:
    """The documented list envelope: `data` plus `meta.pagination` with every field, consistent."""
    assert set(body) == {"data", "meta"}, sorted(body)
    assert isinstance(body["data"], list)
    pagination = body["meta"]["pagination"]
    assert set(pagination) == PAGINATION_FIELDS, sorted(pagination)
    total = pagination["total"]
    assert pagination["per_page"] == per_page
    assert pagination["current_page"] == page
    assert pagination["count"] == len(body["data"])
    assert pagination["total_pages"] == max(1, math.ceil(total / per_page))
    assert pagination["has_next_page"] is (page < pagination["total_pages"])
    expected_count = max(0, min(per_page, total - (page - 1) * per_page))
    assert pagination["count"] == expected_count
    assert isinstance(pagination["links"], dict)


def interrupt(process: subprocess.Popen) -> None:
    """Stop a simulator process as Ctrl-C does; kill it if it has not stopped within 10 s."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
