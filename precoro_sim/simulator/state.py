"""The simulator's state: one simulated company, its token, the answer shapes and what requests changed.

A simulator may serve several companies (`SimulatorConfig.companies`), as Precoro issues one API token per
company: each company is a `SimulatorState` of its own (see app.py), company N generated from seed + N - 1."""

from __future__ import annotations

import builtins
import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass

from .content import COMPANY_NAME
from .faults import FaultBook
from .generator import build_company, start_of_today
from .http import JsonCache
from .limits import Limits, RateLimiter
from .webhooks import WebhookSender

SIM_EMAIL = "api@acme-sim.example"


def token_for_seed(seed: int) -> str:
    """A token that looks like a real secret (so leak tests have something to grep for)."""
    return "simtok_" + hashlib.sha256(f"precoro-simulator-{seed}".encode()).hexdigest()[:40]


# Where the real API is not known, the simulator serves either shape (POST /_sim/shapes; reset restores these).
DEFAULT_SHAPES = {
    # does an unfiltered GET /invoices list credit notes (logicType 1, 5)? Precoro's connector asks for them apart
    # (logicType[]=1&logicType[]=5) and would export them twice if the plain list held them too: by default not
    "credit_notes_in_invoice_list": False,
    # money (and rates, quantities) as JSON numbers, or as strings as some real fields come ("sumPaid": "0.00")
    "numbers_as_text": False,
    # a document's taxes as {"tax": {id, name, value}, "sum"} or flat {id, name, percent, sum} (the contract names
    # neither; a server written from it sent the flat one)
    "flat_document_taxes": False,
    # approval steps and attachments under the near names a server written from the contract used (stepStatus,
    # approvedAt, filename) instead of status, approvalDate, fileName
    "near_field_names": False,
    # a line's `sum` net of tax (as price x quantity) instead of including it; netSum and taxSum stay
    "line_sums_net_of_tax": False,
    # `idn` (a document's own and in references to documents) as a number; by default a string, as both real
    # clients type it
    "idn_as_number": False,
    # items with `category` {id, name}: Precoro is removing it from the API (the item custom field "Category"
    # holds it); by default absent
    "item_category": False,
    # an item's custom field values under `dataItemCustomFields` (Precoro's announcement of the category change)
    # instead of `dataProductCustomFields` (what its connector reads)
    "item_values_as_dataItemCustomFields": False,
}
# The switches that change what a record looks like: while one is on, answers are built per request (not cached).
RESHAPING = ("numbers_as_text", "flat_document_taxes", "near_field_names", "line_sums_net_of_tax")
# The other switches (idn_as_number, item_category, item_values_as_dataItemCustomFields) change records as served
# and exported alike; their answers are cached, and the cache is emptied when a switch changes.


@dataclass(frozen=True)
class SimulatorConfig:
    seed: int = 7
    days: int = 90
    documents: int = 600
    limits: Limits = Limits(enabled=False)
    # How many companies the simulator serves on its port, each behind its own token ("If you have multiple
    # companies within your account, you have to set up a separate API token for each company"). Company 1 is
    # the seed's, exactly the company a single-company simulator serves; company N is generated from seed + N - 1.
    companies: int = 1

    def __post_init__(self) -> None:
        if self.companies < 1:
            raise ValueError(f"a simulator serves at least one company, not {self.companies}")

    def identities(self) -> list[CompanyIdentity]:
        """Who each company is, company 1 first."""
        return [CompanyIdentity.of(self, number) for number in range(1, self.companies + 1)]


@dataclass(frozen=True)
class CompanyIdentity:
    """Who one simulated company is to a client: what `GET /_sim/info` lists under `companies`.

    Every company has the same token user (one user, one e-mail, several companies: Precoro generates a token per
    user and company), its own seed and so its own token and data."""

    number: int  # 1, 2, ...: what `?company=N` on the control API names
    name: str
    seed: int
    token: str
    email: str

    @classmethod
    def of(cls, config: SimulatorConfig, number: int) -> CompanyIdentity:
        seed = config.seed + number - 1
        name = COMPANY_NAME if number == 1 else f"{COMPANY_NAME} {number}"
        return cls(number, name, seed, token_for_seed(seed), SIM_EMAIL)

    def as_dict(self) -> dict:
        return asdict(self)

    def reference(self) -> dict:
        """How the company's documents name it (an invoice's `company`)."""
        return {"id": self.number, "name": self.name}


class SimulatorState:
    """One simulated company (company `number` of `config`) and everything a request may change: the limiter, the
    faults, the shapes, the statistics and the request log. `reset()` puts it back as it was built."""

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float] = time.time, number: int = 1):
        self.config = config
        self.clock = clock
        self.identity = CompanyIdentity.of(config, number)
        self.token = self.identity.token
        self.email = self.identity.email
        self.base_url = ""  # set by the server once the port is known
        self.lock = threading.RLock()
        self._pristine: tuple | None = None
        self.reset()

    # ---- state ----------------------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            if self._pristine is None or self._fingerprint() != self._pristine:
                self.company, self.builder = build_company(self.identity.seed, self.config.days, self.config.documents,
                                                           reference=self.identity.reference())
                self._pristine = self._fingerprint()
                self.json_cache = JsonCache()  # keyed by the versions of this company's resources
            # else: nothing has changed the company since it was built today, and rebuilding it would give
            # the very same one (the same records, ids and random state): keep it
            self.limiter = RateLimiter(self.config.limits, self.clock)
            self.webhooks = WebhookSender()  # none configured: a reset stops sending
            self.company.on_change = self.webhooks.record_changed  # no reference back to the app: no cycle
            self.faults = FaultBook()
            if getattr(self, "shapes", DEFAULT_SHAPES) != DEFAULT_SHAPES:
                self.json_cache = JsonCache()  # answers serialised in other shapes
            self.shapes = dict(DEFAULT_SHAPES)
            self.counts: Counter[tuple[str, str, int]] = Counter()
            self.rate_limited: Counter[str] = Counter()
            self.unknown_parameters: Counter[tuple[str, str, str]] = Counter()  # (method, path, name)
            self.log: list[dict] = []

    def _fingerprint(self) -> tuple:
        """What any change to the company moves: record versions, id counters, the random state, the day."""
        company = self.company
        return (start_of_today(), tuple(company.versions.values()), tuple(company._next_id.values()),
                tuple(company._next_idn.values()), len(company.attachments), self.builder.rng.getstate())

    def tick(self, events: int) -> builtins.list[dict]:
        with self.lock:
            return [change.as_dict() for change in self.builder.tick(events)]

