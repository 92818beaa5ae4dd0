"""The simulated company: every record in memory, the queries Precoro's list filters express,
and the state changes Precoro's writes cause.

Records are kept in the exact JSON shape the API serves (full detail, nested collections wrapped in
`{"data": [...]}`); the few fields that filters compare are mirrored as Python values on `Record`.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from .content import STATUS_NAMES

# Nested collections that a document list row leaves out (a list row is the header only).
DOCUMENT_COLLECTIONS = ("items", "taxes", "payments", "dataDocumentCustomFields", "attachments", "approvalSteps")
# Invoice list rows carry their document custom field values (Precoro's connector filters list rows by them);
# expenses are served as invoices are, with their payments as `expensePayments`.
INVOICE_COLLECTIONS = (*(c for c in DOCUMENT_COLLECTIONS if c != "dataDocumentCustomFields"),
                       "comments", "followers", "contracts")
EXPENSE_COLLECTIONS = (*INVOICE_COLLECTIONS, "expensePayments")


@dataclass(frozen=True)
class ResourceSpec:
    """How Precoro addresses and serves one resource."""

    name: str  # the URL segment, e.g. "purchaseorders"
    key: str  # "idn" for documents, "id" for reference data
    has_detail: bool  # GET /{name}/{key} exists
    patchable: bool  # PATCH /{name}/{key} with externalId / externalIntegrationLog
    collections: tuple[str, ...] = ()  # left out of list rows

    @property
    def is_document(self) -> bool:
        return self.key == "idn"


RESOURCES: dict[str, ResourceSpec] = {
    spec.name: spec
    for spec in [
        ResourceSpec("purchaserequisitions", "idn", True, False, DOCUMENT_COLLECTIONS),
        ResourceSpec("purchaseorders", "idn", True, True, DOCUMENT_COLLECTIONS),
        ResourceSpec("receipts", "idn", True, False, DOCUMENT_COLLECTIONS),
        ResourceSpec("invoices", "idn", True, True, INVOICE_COLLECTIONS),
        # PATCH externalId is documented for 11 entities, not expenses, receipts or requisitions
        ResourceSpec("expenses", "idn", True, False, EXPENSE_COLLECTIONS),
        ResourceSpec("payments", "idn", True, True, DOCUMENT_COLLECTIONS),
        # a supplier's list row lacks what only its detail carries (Precoro's connector fetches each detail)
        ResourceSpec("suppliers", "id", True, True, ("paymentTerms", "contacts", "supplierLegalEntities",
                                                     "dataSupplierCustomFields")),
        ResourceSpec("items", "id", True, True),
        ResourceSpec("taxes", "id", False, True),
        ResourceSpec("paymentterms", "id", False, True),
        ResourceSpec("locations", "id", False, True),
        ResourceSpec("legalentities", "id", False, True),
        ResourceSpec("documentcustomfields", "id", False, False),
        ResourceSpec("itemcustomfields", "id", False, False),
        ResourceSpec("users", "id", False, False),
        ResourceSpec("warehouses", "id", False, False),
        ResourceSpec("units", "id", False, False),
    ]
}

CUSTOM_FIELD_RESOURCES = ("documentcustomfields", "itemcustomfields")

# Served without createDate/updateDate, as Precoro's own connector reads them (modifiedSince still filters).
DATELESS = ("taxes",)

# Numeric ids start at a different base per resource, so a client that confuses `id` with `idn`
# (or one resource's ids with another's) gets a 404 instead of a wrong record.
ID_BASES = {
    "purchaserequisitions": 100_000,
    "purchaseorders": 200_000,
    "receipts": 300_000,
    "invoices": 400_000,
    "payments": 600_000,
    "expenses": 700_000,
    "suppliers": 1_000,
    "items": 5_000,
    "taxes": 10,
    "paymentterms": 20,
    "locations": 30,
    "legalentities": 40,
    "documentcustomfields": 50,
    "itemcustomfields": 70,
    "users": 100,
    "warehouses": 200,
    "units": 250,
    "options": 500,
    "attachments": 700_000,
    "lines": 2_000_000,
    "contacts": 900,
    "approvalsteps": 3_000_000,
}


class Invalid(Exception):
    """A write Precoro would answer with 400 and `{"errors": {"errors": {field: message}}}`."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def iso(moment: datetime) -> str:
    """Precoro's date format: ISO 8601 with an explicit offset, whole seconds."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.replace(microsecond=0).isoformat()


CENT = Decimal("0.01")


def money(value: Decimal | int | str) -> Decimal:
    return Decimal(value).quantize(CENT)


@dataclass
class Record:
    """One record: its API shape plus the values list filters compare."""

    resource: str
    id: int
    data: dict
    created: datetime
    updated: datetime
    approved: datetime | None = None

    @property
    def key(self) -> str:
        return str(self.data["idn"] if "idn" in self.data else self.id)


@dataclass(frozen=True)
class Filters:
    """Precoro's list filters, parsed. Hashable so filtered lists can be cached."""

    modified_since: datetime | None = None
    approval_left: datetime | None = None  # approvalLeftDate: approved at or after this moment
    record_id: int | None = None  # id=: one record by its numeric id
    without_external_id: bool = False  # sent_to_external=0 (documents), externalIntegrated=0 (suppliers)
    created_from: date | None = None
    created_to: date | None = None
    approved_from: date | None = None
    approved_to: date | None = None
    statuses: frozenset[int] | None = None
    external_ids: frozenset[str] | None = None
    suppliers: frozenset[int] | None = None
    enable: bool | None = None
    logic_types: frozenset[int] | None = None
    excluded_logic_types: frozenset[int] | None = None  # the shape switch "credit notes not in the plain list"
    attached_file: bool = False
    waiting_for_user: int | None = None

    def matches(self, record: Record) -> bool:
        data = record.data
        if self.modified_since is not None and record.updated < self.modified_since:
            return False
        if self.record_id is not None and record.id != self.record_id:
            return False
        if self.without_external_id and data.get("externalId"):
            return False
        if self.approval_left is not None and (record.approved is None or record.approved < self.approval_left):
            return False
        if self.created_from is not None and record.created.date() < self.created_from:
            return False
        if self.created_to is not None and record.created.date() > self.created_to:
            return False
        if self.approved_from is not None or self.approved_to is not None:
            if record.approved is None:
                return False
            if self.approved_from is not None and record.approved.date() < self.approved_from:
                return False
            if self.approved_to is not None and record.approved.date() > self.approved_to:
                return False
        if self.statuses is not None and data.get("status") not in self.statuses:
            return False
        if self.external_ids is not None and data.get("externalId") not in self.external_ids:
            return False
        if self.suppliers is not None and (data.get("supplier") or {}).get("id") not in self.suppliers:
            return False
        if self.enable is not None and data.get("enable") is not self.enable:
            return False
        if self.logic_types is not None and data.get("logicType") not in self.logic_types:
            return False
        if self.excluded_logic_types is not None and data.get("logicType") in self.excluded_logic_types:
            return False
        if self.attached_file and not (data.get("attachments") or {}).get("data"):
            return False
        if self.waiting_for_user is not None:
            steps = (data.get("approvalSteps") or {}).get("data") or []
            if data.get("status") != 1 or not any(
                step["user"]["id"] == self.waiting_for_user and step["status"] == 0 for step in steps
            ):
                return False
        return True


@dataclass
class Attachment:
    id: int
    name: str
    mime_type: str
    content: bytes


class Company:
    """All records of one Precoro company, with the writes Precoro allows on them.

    Not thread-safe by itself: the HTTP app serialises access with `lock`.
    """

    def __init__(self, clock: Callable[[], datetime] | None = None):
        self.clock = clock or (lambda: datetime.now(UTC).replace(microsecond=0))
        self.lock = threading.RLock()
        self.records: dict[str, dict[int, Record]] = {name: {} for name in RESOURCES}
        self.by_idn: dict[str, dict[str, int]] = {name: {} for name in RESOURCES if RESOURCES[name].is_document}
        self.attachments: dict[int, Attachment] = {}
        self.versions: dict[str, int] = dict.fromkeys(RESOURCES, 0)
        self._next_id = dict(ID_BASES)
        self._next_idn = dict.fromkeys(self.by_idn, 0)
        self._select_cache: OrderedDict[tuple, tuple[int, list[Record]]] = OrderedDict()
        self.token_user_id: int | None = None
        # told of every record created (action 0) or modified (1) from now on: the webhooks (see webhooks.py)
        self.on_change: Callable[[Record, int], None] | None = None

    # ---- identity -------------------------------------------------------------------------------

    def new_id(self, kind: str) -> int:
        self._next_id[kind] += 1
        return self._next_id[kind]

    def now(self) -> datetime:
        return self.clock()

    # ---- storage --------------------------------------------------------------------------------

    def add(self, resource: str, data: dict, created: datetime, updated: datetime | None = None,
            approved: datetime | None = None) -> Record:
        """Store a new record; assigns `id` (and `idn` for documents) and the three dates."""
        record_id = self.new_id(resource)
        data = {"id": record_id, **data}
        if resource in self.by_idn:
            self._next_idn[resource] += 1
            # a string, as both real clients type it (Precoro's connector rejects a record whose idn is a
            # number); the `idn_as_number` shape serves it as a number (see api.py)
            data["idn"] = str(self._next_idn[resource])
            # keep id and idn first, the way Precoro's payloads start
            data = {"id": record_id, "idn": data.pop("idn"), **{k: v for k, v in data.items() if k != "id"}}
        updated = max(updated or created, created, approved or created)  # approving modifies a record
        record = Record(resource, record_id, data, created, updated, approved)
        self._write_dates(record)
        self.records[resource][record_id] = record
        if resource in self.by_idn:
            self.by_idn[resource][str(data["idn"])] = record_id
        self.versions[resource] += 1
        if self.on_change is not None:
            self.on_change(record, 0)
        return record

    def _write_dates(self, record: Record) -> None:
        if record.resource in DATELESS:
            return
        record.data["createDate"] = iso(record.created)
        record.data["updateDate"] = iso(record.updated)
        if record.resource in self.by_idn or "approvalDate" in record.data:
            record.data["approvalDate"] = iso(record.approved) if record.approved else None

    def touch(self, record: Record, when: datetime | None = None) -> None:
        """Mark a record modified (moves `updateDate`, which `modifiedSince` compares)."""
        record.updated = max(when or self.now(), record.updated)
        self._write_dates(record)
        self.versions[record.resource] += 1
        if self.on_change is not None:
            self.on_change(record, 1)

    def delete(self, record: Record) -> None:
        del self.records[record.resource][record.id]
        if record.resource in self.by_idn:
            self.by_idn[record.resource].pop(str(record.data["idn"]), None)
        self.versions[record.resource] += 1

    def get(self, resource: str, key: str) -> Record | None:
        """A record by the key Precoro addresses it with (`idn` for documents, `id` otherwise)."""
        table = self.records[resource]
        if resource in self.by_idn:
            record_id = self.by_idn[resource].get(str(key))
            return table.get(record_id) if record_id is not None else None
        try:
            return table.get(int(key))
        except ValueError:
            return None

    def get_by_id(self, resource: str, record_id: int | str | None) -> Record | None:
        try:
            return self.records[resource].get(int(record_id))  # type: ignore[arg-type]  # None: TypeError
        except (TypeError, ValueError):
            return None

    def all(self, resource: str) -> Iterable[Record]:
        return self.records[resource].values()

    def select(self, resource: str, filters: Filters) -> list[Record]:
        """Records matching `filters`, newest first (id descending), cached until the resource changes."""
        cache_key = (resource, filters)
        version = self.versions[resource]
        cached = self._select_cache.get(cache_key)
        if cached is not None and cached[0] == version:
            self._select_cache.move_to_end(cache_key)
            return cached[1]
        rows = [r for r in reversed(self.records[resource].values()) if filters.matches(r)]
        self._select_cache[cache_key] = (version, rows)
        if len(self._select_cache) > 256:
            self._select_cache.popitem(last=False)
        return rows

    def detail(self, record: Record) -> dict:
        """The full object (a copy: callers may alter it, e.g. to inject field faults)."""
        return copy.deepcopy(record.data)

    def header(self, record: Record) -> dict:
        """The list row: the record without its nested collections (a shallow copy)."""
        hidden = RESOURCES[record.resource].collections
        return {k: v for k, v in record.data.items() if k not in hidden}

    # ---- Precoro's write semantics ----------------------------------------------------------------

    def set_status(self, record: Record, status: int, when: datetime | None = None) -> None:
        record.data["status"] = status
        record.data["statusString"] = STATUS_NAMES[status]
        self.touch(record, when)

    def record_payment(self, invoice: Record, amount: Decimal, pay_date: datetime,
                       created: datetime | None = None, logic_type: int = 0) -> Record:
        """Pay (part of) an invoice: what POST /payments does in Precoro."""
        created = created or self.now()
        if amount <= 0:
            raise Invalid("sumPaid", f"The amount must be greater than 0 and not exceed {money(_open(invoice))}")
        status = invoice.data["status"]
        total = Decimal(str(invoice.data["sum"]))
        paid = Decimal(invoice.data["sumPaid"])
        if status == 5 or paid >= total:
            raise Invalid("sumPaid", "The Invoice is already fully paid.")
        if status not in (2, 4):
            raise Invalid("invoice", f"The Invoice is not approved (status {STATUS_NAMES[status]}).")
        if paid + amount > total:
            raise Invalid("sumPaid", f"The amount must be greater than 0 and not exceed {money(total - paid)}")
        payment = self.add(
            "payments",
            {
                "invoice": {"id": invoice.id, "idn": invoice.data["idn"]},
                "supplier": dict(invoice.data["supplier"]),
                "sumPaid": money(amount),
                "payDate": iso(pay_date),
                "currency": invoice.data["currency"],
                "logicType": logic_type,
                "status": 2,
                "statusString": STATUS_NAMES[2],
                "externalId": None,
                "externalIntegrationLog": None,
            },
            created=created,
            approved=created,
        )
        paid = money(paid + amount)
        _set_paid(invoice, paid)
        invoice.data["payments"]["data"].append(
            {"id": payment.id, "idn": payment.data["idn"], "sumPaid": money(amount),
             "payDate": payment.data["payDate"], "currency": invoice.data["currency"], "logicType": logic_type,
             "status": 2, "statusString": STATUS_NAMES[2]}
        )
        self.set_status(invoice, 5 if paid >= total else 4, created)
        return payment

    def cancel_payment(self, payment: Record) -> None:
        """Cancel a payment as Precoro does: it stays listed (status 8, on the invoice too) but no longer counts
        in the invoice's sumPaid, whose status goes back to partly paid or approved."""
        if payment.data.get("status") == 8:
            raise Invalid("status", "The payment is already canceled.")
        payment.data["status"], payment.data["statusString"] = 8, STATUS_NAMES[8]
        self.touch(payment)
        invoice = self.get_by_id("invoices", payment.data["invoice"]["id"])
        if invoice is None:
            return
        for entry in invoice.data["payments"]["data"]:
            if entry["id"] == payment.id:
                entry["status"], entry["statusString"] = 8, STATUS_NAMES[8]
        paid = money(Decimal(invoice.data["sumPaid"]) - Decimal(str(payment.data["sumPaid"])))
        _set_paid(invoice, paid)
        self.set_status(invoice, 4 if paid > 0 else 2)

    def patch_external(self, record: Record, fields: dict[str, str | None]) -> None:
        """PATCH externalId / externalIntegrationLog (empty text clears the log)."""
        for name, value in fields.items():
            record.data[name] = value if value not in ("",) else None
        if "externalId" in fields and "integrationStatus" in record.data:
            record.data["integrationStatus"] = 1 if record.data.get("externalId") else 0
        self.touch(record)

    def approve(self, record: Record) -> None:
        if record.data.get("status") not in (1, 10):
            raise Invalid("status", f"The document is not waiting for approval (status {record.data.get('statusString')}).")
        now = self.now()
        for step in record.data.get("approvalSteps", {}).get("data", []):
            if step["status"] == 0:
                step["status"] = 1
                step["approvalDate"] = iso(now)
        record.approved = now
        self.set_status(record, 2, now)

    def reject(self, record: Record, comment: str) -> None:
        if not comment:
            raise Invalid("comment", "This value should not be blank.")
        if record.data.get("status") not in (1, 10):
            raise Invalid("status", f"The document is not waiting for approval (status {record.data.get('statusString')}).")
        for step in record.data.get("approvalSteps", {}).get("data", []):
            if step["status"] == 0:
                step["status"] = 2
                step["comment"] = comment
        self.set_status(record, 3)

    def confirm(self, record: Record) -> None:
        if record.data.get("status") != 6:
            raise Invalid("status", f"The document is not awaiting confirmation (status {record.data.get('statusString')}).")
        self.set_status(record, 2)


@dataclass
class Change:
    """One thing that happened in the company (returned by the control API's tick)."""

    resource: str
    key: str
    action: str
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"resource": self.resource, "key": self.key, "action": self.action, **self.extra}


def _open(invoice: Record) -> Decimal:
    return max(Decimal(str(invoice.data["sum"])) - Decimal(invoice.data["sumPaid"]), Decimal(0))


def _set_paid(invoice: Record, paid: Decimal) -> None:
    """sumPaid as Precoro returns it (a string), and its company-currency twin at the invoice's rate."""
    invoice.data["sumPaid"] = str(paid)
    rate = invoice.data.get("exchangeRate")
    if isinstance(rate, dict) and "sumPaidInCompanyCurrency" in invoice.data:
        invoice.data["sumPaidInCompanyCurrency"] = str(money(paid * Decimal(str(rate["rate"]))))
