"""The simulator's HTTP application: Precoro's API plus the `/_sim/` control API (WSGI, werkzeug).

Every Precoro request goes through the same steps, in Precoro's order: route, authenticate, count
against the rate limits (429), apply faults on demand, answer, record statistics.
"""

from __future__ import annotations

import builtins
import copy
import dataclasses
import hashlib
import json
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import cast

from werkzeug.exceptions import BadRequest, HTTPException, MethodNotAllowed, NotFound
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .company import CUSTOM_FIELD_RESOURCES, RESOURCES, Filters, Invalid, Record, iso, money
from .content import EXCHANGE_RATES, SUPPLIER_STATUS_NAMES, exchange_rate
from .faults import TRANSPORT_KINDS, BadRule, FaultBook, FaultRule
from .generator import build_company, start_of_today
from .limits import Limits, RateLimiter, Rejection
from .webhooks import WebhookSender

PER_PAGE_ALLOWED = (10, 20, 50, 100, 200)
DEFAULT_PER_PAGE = 10
MAX_EXTERNAL_IDS = 200
PRICE_DECIMALS = 6  # unit prices and quantities (sums have 2)
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
CREDIT_NOTE_TYPES = frozenset({1, 5})


@dataclass(frozen=True)
class SimulatorConfig:
    seed: int = 7
    days: int = 90
    documents: int = 600
    limits: Limits = Limits(enabled=False)


class ApiError(Exception):
    """An error answer in Precoro's shape."""

    def __init__(self, status: int, body: dict):
        super().__init__(str(body))
        self.status = status
        self.body = body


def validation_error(field_name: str, message: str) -> ApiError:
    return ApiError(400, {"errors": {"errors": {field_name: message}}})


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)  # at most 6 places and 15 digits here: the float's repr is the same number
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(payload: object) -> bytes:
    # PHP's json_encode escapes non-ASCII by default, as Precoro's answers do
    return json.dumps(payload, default=_json_default, ensure_ascii=True).encode()


class JsonCache:
    """Records already serialised with `to_json` (a detail, or a document's list row), least recently used
    out first once they pass `budget` bytes.

    An entry is valid while its resource's version (`Company.versions`) is unchanged: every change to a
    record moves that version before the app lock is released (`Company.add`, `touch`, `delete`; the few
    edits the generator makes without them are to a record it has just added, or happen while the company
    is being built), so a stale entry is never served. The same rule keeps `Company.select`'s cache right.
    """

    def __init__(self, budget: int = 512 * 1024 * 1024):
        self.budget = budget
        self.size = 0
        self._entries: OrderedDict[tuple[str, int, bool], tuple[int, bytes]] = OrderedDict()

    def get(self, record: Record, version: int, header: bool, make: Callable[[Record], object]) -> bytes:
        """The JSON of `record` (its list row when `header`) at `version`: cached, else `make(record)` serialised."""
        key = (record.resource, record.id, header)
        entries = self._entries
        found = entries.get(key)
        if found is not None:
            if found[0] == version:
                entries.move_to_end(key)
                return found[1]
            del entries[key]
            self.size -= len(found[1])
        encoded = to_json(make(record))
        entries[key] = (version, encoded)
        self.size += len(encoded)
        while self.size > self.budget and entries:
            self.size -= len(entries.popitem(last=False)[1][1])
        return encoded


def nest_form(pairs: Iterable[tuple[str, str]]) -> dict:
    """Form fields with bracket keys (`invoice[id]`, `currencies[]`, `contacts[data][0][email]`) as nested data."""
    root: dict = {}
    for key, value in pairs:
        name, _, rest = key.partition("[")
        parts = [name] + (re.findall(r"([^\[\]]*)\]", "[" + rest) if rest else [])
        node = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if part == "":
                raise validation_error(key, "An empty [] is only allowed at the end of a field name.")
            following = None if last else parts[index + 1]
            if last:
                node[part] = value
            elif following == "" and index + 1 == len(parts) - 1:
                node.setdefault(part, []).append(value)
                break
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise validation_error(key, "This field is given both as a value and as a group.")

    def lists(node: object) -> object:
        if isinstance(node, dict):
            converted = {k: lists(v) for k, v in node.items()}
            if converted and all(k.isdigit() for k in converted):
                return [converted[k] for k in sorted(converted, key=int)]
            return converted
        return node

    return lists(root)  # type: ignore[return-value]


def parse_day(field_name: str, text: str) -> date:
    try:
        return datetime.strptime(text, "%d.%m.%Y").date()
    except ValueError:
        raise validation_error(field_name, "This value is not a valid date (dd.mm.yyyy).") from None


def parse_moment(field_name: str, text: str) -> datetime:
    """An ISO 8601 date or datetime; naive values are UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise validation_error(field_name, "This value is not a valid datetime.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_money(field_name: str, text: object) -> Decimal:
    try:
        amount = Decimal(str(text))
    except InvalidOperation:
        raise validation_error(field_name, "This value is not a valid number.") from None
    if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
        raise validation_error(field_name, "This value must be a number with at most 2 decimals.")
    return money(amount)


def parse_number(field_name: str, text: object) -> Decimal:
    """A finite decimal number (a rate or a percent), exactly as sent."""
    try:
        number = Decimal(str(text).strip())
    except InvalidOperation:
        raise validation_error(field_name, "This value is not a valid number.") from None
    if not number.is_finite():
        raise validation_error(field_name, "This value is not a valid number.")
    return number


def parse_decimal(field_name: str, text: object) -> Decimal:
    """A unit price or quantity: as many decimals as the company's precision allows (more than a sum's 2)."""
    try:
        number = Decimal(str(text))
    except InvalidOperation:
        raise validation_error(field_name, "This value is not a valid number.") from None
    exponent = number.as_tuple().exponent  # "n", "N" or "F" when the number is not finite
    if not isinstance(exponent, int) or number < 0 or exponent < -PRICE_DECIMALS:
        raise validation_error(field_name, f"This value must be a number of at least 0 with at most {PRICE_DECIMALS} "
                                           "decimals.")
    return number


def parse_int(field_name: str, text: object) -> int:
    try:
        return int(str(text))
    except ValueError:
        raise validation_error(field_name, "This value is not a valid integer.") from None


def parse_currency(field_name: str, text: object) -> str:
    """One of the simulated company's currencies (Precoro only accepts currencies the company enabled)."""
    if text not in EXCHANGE_RATES:
        raise validation_error(field_name, f"This value is not one of the company's currencies "
                                           f"({', '.join(EXCHANGE_RATES)}).")
    return str(text)


def parse_bool(field_name: str, text: object) -> bool:
    value = str(text).lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise validation_error(field_name, "This value must be true or false.")


def parse_filters(args, token_user_id: int | None) -> Filters:
    """Precoro's list filters from the query string, or a 400 naming the bad one."""
    def ints(name: str) -> frozenset[int] | None:
        values = args.getlist(name)
        return frozenset(parse_int(name, v) for v in values) if values else None

    def moment(name: str) -> datetime | None:
        """YYYY-MM-DDTHH:MM:SS as Precoro documents it; a `Z` or `+00:00` suffix, as clients send, is UTC too."""
        value = args.get(name)
        if value is None:
            return None
        text = value.strip()
        for suffix in ("Z", "+00:00"):
            text = text.removesuffix(suffix)
        try:
            return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        except ValueError:
            raise validation_error(name, "This value is not a valid datetime (YYYY-MM-DDTHH:MM:SS).") from None

    def without_link(name: str) -> bool:
        value = args.get(name)
        if value not in (None, "0"):
            raise validation_error(name, "Only 0 is supported (records without an externalId).")
        return value == "0"

    record_id = args.get("id")
    external_ids = args.getlist("external_id[]")
    if len(external_ids) > MAX_EXTERNAL_IDS:
        raise validation_error("external_id", f"At most {MAX_EXTERNAL_IDS} values can be given.")
    enable = args.get("enable")

    def day(name: str) -> date | None:
        value = args.get(name)
        return parse_day(name, value) if value is not None else None

    return Filters(
        modified_since=moment("modifiedSince"),
        approval_left=moment("approvalLeftDate"),
        record_id=parse_int("id", record_id) if record_id is not None else None,
        without_external_id=without_link("sent_to_external") or without_link("externalIntegrated"),
        created_from=day("createDate[left_date]"),
        created_to=day("createDate[right_date]"),
        approved_from=day("approvalDate[left_date]"),
        approved_to=day("approvalDate[right_date]"),
        statuses=ints("status[]"),
        external_ids=frozenset(external_ids) if external_ids else None,
        suppliers=ints("supplier[]"),
        enable=parse_bool("enable", enable) if enable is not None else None,
        logic_types=ints("logicType[]"),
        attached_file=args.get("attachedFile") == "1",
        waiting_for_user=token_user_id if args.get("waitingForapprove") == "yes" else None,
    )


# Every query parameter the contract names (/work/shared/precoro-api.md: pagination, "Filters", "More list
# filters"). Precoro probably ignores any other silently, so a misspelt filter would pass unnoticed: the
# simulator ignores them too, but counts them (GET /_sim/stats, "unknown_parameters").
KNOWN_PARAMETERS = frozenset({
    "page", "per_page", "modifiedSince", "approvalLeftDate", "id", "sent_to_external", "externalIntegrated",
    "createDate[left_date]", "createDate[right_date]", "approvalDate[left_date]", "approvalDate[right_date]",
    "status[]", "external_id[]", "supplier[]", "enable", "logicType[]", "attachedFile", "waitingForapprove",
})


def only_fields(form: dict, allowed: set[str]) -> None:
    extra = set(form) - allowed
    if extra:
        raise validation_error(sorted(extra)[0], "This form should not contain extra fields.")


URLS = Map([
    Rule("/attachments/<key>", methods=["GET"], endpoint="attachment"),
    Rule("/receipts/<key>", methods=["POST"], endpoint="create_receipt"),
    Rule("/<resource>", methods=["GET"], endpoint="list"),
    Rule("/<resource>", methods=["POST"], endpoint="create"),
    Rule("/<resource>/<key>", methods=["GET"], endpoint="detail"),
    Rule("/<resource>/<key>", methods=["PUT"], endpoint="replace"),
    Rule("/<resource>/<key>", methods=["PATCH"], endpoint="patch"),
    Rule("/<resource>/<key>/<any(approve, reject, confirm):action>", methods=["POST"], endpoint="workflow"),
    Rule("/<resource>/<key>/options", methods=["POST"], endpoint="option_create"),
    Rule("/<resource>/<key>/options/<option>", methods=["PUT", "PATCH"], endpoint="option_write"),
    Rule("/<resource>/<key>/options", methods=["GET"], endpoint="options"),
    Rule("/<resource>/options/depend_add", methods=["PATCH"], endpoint="depend_add"),
    Rule("/payments/<key>/cancel", methods=["POST"], endpoint="cancel_payment"),
], strict_slashes=False)


def route(method: str, path: str, environ: dict) -> tuple[str, dict]:
    """(endpoint, arguments) of a request, or NotFound / MethodNotAllowed.

    The two routes nearly every request takes, `GET /{resource}` and `GET /{resource}/{key}`, are matched
    directly; they are what `URLS` answers for such paths. Everything else goes through `URLS`.
    """
    if method == "GET":
        parts = path.split("/")
        if len(parts) == 2 and parts[1] in RESOURCES:
            return "list", {"resource": parts[1]}
        if len(parts) == 3 and parts[1] in RESOURCES and parts[2]:
            return "detail", {"resource": parts[1], "key": parts[2]}
    endpoint, arguments = URLS.bind_to_environ(environ).match()
    return endpoint, dict(arguments)


class JsonAnswer:
    """A JSON answer as a WSGI application: the status line and headers werkzeug's Response gives
    (`200 OK`, Content-Type, Content-Length) without building one for every request."""

    __slots__ = ("status", "body")

    def __init__(self, status: int, body: bytes):
        self.status = status
        self.body = body

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        start_response(f"{self.status} {HTTP_STATUS_CODES.get(self.status, 'unknown').upper()}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(self.body)))])
        return [self.body]


def path_template(endpoint: str, args: dict) -> str:
    """The request's route with the key named, e.g. `/invoices/{idn}` (for statistics and fault rules)."""
    resource = args.get("resource", "")
    if endpoint in ("list", "create"):
        return f"/{resource}"
    spec = RESOURCES.get(resource)
    key = "{" + (spec.key if spec else "id") + "}"
    if endpoint in ("detail", "replace", "patch"):
        return f"/{resource}/{key}"
    if endpoint == "workflow":
        return f"/{resource}/{key}/{args.get('action')}"
    return {
        "attachment": "/attachments/{id}",
        "create_receipt": "/receipts/{purchase_order_id}",
        "option_create": f"/{resource}/{{id}}/options",
        "option_write": f"/{resource}/{{id}}/options/{{optionId}}",
        "options": f"/{resource}/{{id}}/options",
        "depend_add": f"/{resource}/options/depend_add",
        "cancel_payment": "/payments/{idn}/cancel",
    }.get(endpoint, "(unknown)")


DATE_FIELDS = ("createDate", "updateDate", "approvalDate")


def _idn_as_number(value: object) -> object:
    """A copy of a record with every `idn` (its own, and those of the documents it refers to) as a number."""
    if isinstance(value, dict):
        return {k: int(v) if k == "idn" and isinstance(v, str) and v.isdigit() else _idn_as_number(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_idn_as_number(v) for v in value]
    return value


def _write_dates_at_offsets(row: dict, offsets: list[str], fields: Iterable[str]) -> None:
    """The same instants written at other UTC offsets, one offset per record (chosen by its id), as a server
    that writes each record in the zone of whoever touched it last would; nested collections' records too
    (an invoice's payments)."""
    offset = offsets[int(row.get("id") or 0) % len(offsets)]
    zone = datetime.fromisoformat(f"2000-01-01T00:00:00{offset}").tzinfo
    for name in fields:
        value = row.get(name)
        if isinstance(value, str) and value:
            row[name] = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(zone).isoformat()
    for value in row.values():
        if isinstance(value, dict) and isinstance(value.get("data"), list):
            for nested in value["data"]:
                if isinstance(nested, dict):
                    _write_dates_at_offsets(nested, offsets, fields)


def _elements(row: dict, name: str) -> list:
    collection = row.get(name)
    return collection.get("data") or [] if isinstance(collection, dict) else []


def _reshape_record(row: dict, shapes: dict) -> None:
    """Serve a record (a copy; its nested collections are rebuilt, never altered) in the switched-on shapes."""
    if shapes["flat_document_taxes"] and _elements(row, "taxes"):
        row["taxes"] = {"data": [{"id": t["tax"]["id"], "name": t["tax"]["name"], "percent": t["tax"]["value"],
                                  "sum": t["sum"]} for t in _elements(row, "taxes")]}
    if shapes["near_field_names"]:
        near = {"status": "stepStatus", "approvalDate": "approvedAt", "fileName": "filename"}
        for name in ("approvalSteps", "attachments"):
            if _elements(row, name):
                row[name] = {"data": [{near.get(k, k): v for k, v in e.items()} for e in _elements(row, name)]}
    if shapes["line_sums_net_of_tax"] and _elements(row, "items"):
        row["items"] = {"data": [{**line, "sum": line["netSum"]} if "netSum" in line else line
                                 for line in _elements(row, "items")]}


class SimulatorApp:
    """Precoro's API over one simulated company, with rate limits, faults and a control API."""

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float] = time.time):
        self.config = config
        self.clock = clock
        self.token = token_for_seed(config.seed)
        self.email = SIM_EMAIL
        self.base_url = ""  # set by the server once the port is known
        self.lock = threading.RLock()
        self._pristine: tuple | None = None
        self.reset()

    # ---- state ----------------------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            if self._pristine is None or self._fingerprint() != self._pristine:
                self.company, self.builder = build_company(self.config.seed, self.config.days, self.config.documents)
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

    # ---- WSGI entry -----------------------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith("/_sim"):
            response: Response | JsonAnswer = self.control(request)
        else:
            response = self.precoro(request, environ)
        return response(environ, start_response)

    # ---- Precoro's API ----------------------------------------------------------------------------

    def precoro(self, request: Request, environ: dict) -> Response | JsonAnswer:
        # The server stamps each request with the moment its bytes came in (the kernel's receive time), before
        # werkzeug parses it, so that a busy machine doesn't squeeze the arrival times of well-spaced requests
        # together.
        arrival = environ.get("sim.arrival") if self.clock is time.time else None
        arrival = arrival or self.clock()
        method = request.method
        try:
            endpoint, args = route(method, request.path, environ)
            template = path_template(endpoint, args)
        except (NotFound, MethodNotAllowed) as exc:
            endpoint, args, template = None, {}, "(no route)"
            route_error = ApiError(exc.code or 404, {"error": f'No route found for "{method} {request.path}"'})
        query = {k: request.args.getlist(k) for k in request.args}
        url = request.full_path.rstrip("?")
        with self.lock:  # the log is in arrival order; the status is filled in when the answer is ready
            for name in query.keys() - KNOWN_PARAMETERS:
                self.unknown_parameters[(method, template, name)] += len(query[name])
            entry = {"seq": len(self.log) + 1, "time": arrival, "method": method, "path": template, "url": url,
                     "status": None, "rate_limit_type": None}
            self.log.append(entry)

        if not self._authenticated(request):
            return self._finish(entry, 401, to_json(
                {"error": "Invalid credentials: check the X-AUTH-TOKEN and email headers."}))

        with self.lock:
            url_key = request.path + "?" + "&".join(sorted(f"{k}={v}" for k, vs in query.items() for v in vs))
            # Requests reach this lock in the order their threads run, not always in the order they arrived: the
            # limiter places each at its arrival time among the others (moving a late one to the latest admitted
            # time would put two well-spaced requests at the same moment, a spurious "Second limiter").
            rejection = self.limiter.admit(self.token, method, url_key, now=arrival)
            if rejection is not None:
                return self._too_many(entry, rejection)
            rules = self.faults.due(method, request.path, template, query)
            transport = next((r for r in rules if r.kind in TRANSPORT_KINDS), None)
            if transport is not None and transport.kind == "rate_limit":
                # decided in the same step as the real limits, so it blocks exactly like a real 429
                rejection = self.limiter.force(self.token, transport.options.get("window", "Minute limiter"),
                                               int(transport.options.get("limit", 300)),
                                               float(transport.options.get("retry_after", 5)),
                                               method=method, url_key=url_key)
                return self._too_many(entry, rejection)
        content_rules = [r for r in rules if r is not transport]
        if transport is not None:
            early = self._transport_fault(transport, entry, environ)
            if early is not None:
                return early
        if endpoint is None:
            error = route_error
            return self._finish(entry, error.status, to_json(error.body))
        try:
            with self.lock:
                result = self._dispatch(endpoint, args, request, content_rules)
                if endpoint not in ("list", "detail") and isinstance(result, dict):  # a write's answer: a record
                    result = self._served(args.get("resource", "receipts"), result)
            body: bytes | Response = result if isinstance(result, (bytes, Response)) else to_json(result)
            status = 200
        except ApiError as error:
            status, body = error.status, to_json(error.body)
        except Invalid as invalid:
            status, body = 400, to_json({"errors": {"errors": {invalid.field: invalid.message}}})
        if transport is not None and transport.kind == "lost_response":
            environ["sim.drop_connection"]()
            return self._finish(entry, 0, b"")
        if transport is not None and transport.kind == "malformed_json" and not isinstance(body, Response):
            body = body[: max(1, len(body) // 2)]
        return self._finish(entry, status, body)

    def _authenticated(self, request: Request) -> bool:
        return (request.headers.get("X-AUTH-TOKEN") == self.token
                and (request.headers.get("email") or "").lower() == self.email)

    def _too_many(self, entry: dict, rejection: Rejection) -> Response | JsonAnswer:
        self.rate_limited[rejection.limit_type] += 1
        return self._finish(entry, 429, to_json(rejection.body()),
                            rate_limit_type=rejection.limit_type)

    def _transport_fault(self, rule: FaultRule, entry: dict, environ: dict) -> Response | JsonAnswer | None:
        """Answer for a fault that replaces the normal answer, or None to go on (slow, lost, malformed)."""
        if rule.kind == "error":
            status = int(rule.options.get("status", 500))
            body = {"error": rule.options.get("message", "Internal Server Error")}
            return self._finish(entry, status, to_json(body))
        if rule.kind == "reset":
            environ["sim.drop_connection"]()
            return self._finish(entry, 0, b"")
        if rule.kind == "slow":
            time.sleep(float(rule.options.get("seconds", 5)))
        return None

    def _finish(self, entry: dict, status: int, body: bytes | Response,
                rate_limit_type: str | None = None) -> Response | JsonAnswer:
        """Record the answer in the statistics and the request log (status 0 = connection dropped)."""
        with self.lock:
            self.counts[(entry["method"], entry["path"], status)] += 1
            entry.update(status=status, rate_limit_type=rate_limit_type)
        if isinstance(body, Response):
            return body
        return JsonAnswer(status or 500, body)

    def _dispatch(self, endpoint: str, args: dict, request: Request, content_rules: builtins.list[FaultRule]) -> object:
        if endpoint == "attachment":
            return self.attachment(args["key"])
        resource: str = args.get("resource") or ""
        if endpoint == "cancel_payment":
            resource = "payments"
        if endpoint not in ("create_receipt",) and resource not in RESOURCES:
            raise ApiError(404, {"error": f'No route found for "{request.method} {request.path}"'})
        if endpoint == "list":
            return self.list(resource, request, content_rules)
        if endpoint == "detail":
            return self.detail(resource, args["key"], content_rules)
        if endpoint == "options":
            return {"data": copy.deepcopy(self._custom_field(resource, args["key"]).data["options"])}
        form = self._form(request)
        if endpoint == "cancel_payment":
            return self.cancel_payment(args["key"], form)
        if endpoint == "create_receipt":
            return self.create_receipt(args["key"], form)
        if endpoint == "create":
            return self.create(resource, form)
        if endpoint == "replace":
            return self.replace(resource, args["key"], form)
        if endpoint == "patch":
            return self.patch(resource, args["key"], form)
        if endpoint == "workflow":
            return self.workflow(resource, args["key"], args["action"], form)
        if endpoint == "option_create":
            return self.option_create(resource, args["key"], form)
        if endpoint == "depend_add":
            return self.depend_add(resource, form)
        return self.option_write(resource, args["key"], args["option"], request.method, form)

    @staticmethod
    def _form(request: Request) -> dict:
        if request.mimetype == "application/json":
            raise validation_error("body", "JSON bodies are not accepted: send the fields form-encoded "
                                           "(application/x-www-form-urlencoded) with bracket keys.")
        return nest_form(request.form.items(multi=True))

    def _record(self, resource: str, key: str) -> Record:
        record = self.company.get(resource, key)
        if record is None:
            spec = RESOURCES[resource]
            raise ApiError(404, {"error": f"{resource} with {spec.key} {key} not found."})
        return record

    # ---- reads ------------------------------------------------------------------------------------

    def list(self, resource: str, request: Request, content_rules: builtins.list[FaultRule]) -> dict | bytes:
        args = request.args
        page = parse_int("page", args.get("page", "1"))
        per_page = parse_int("per_page", args.get("per_page", str(DEFAULT_PER_PAGE)))
        if page < 1:
            raise validation_error("page", "This value should be 1 or more.")
        if per_page not in PER_PAGE_ALLOWED:
            raise validation_error("per_page", f"This value should be one of {', '.join(map(str, PER_PAGE_ALLOWED))}.")
        filters = parse_filters(args, self.company.token_user_id)
        if resource == "invoices" and filters.logic_types is None and not self.shapes["credit_notes_in_invoice_list"]:
            filters = dataclasses.replace(filters, excluded_logic_types=CREDIT_NOTE_TYPES)
        for rule in content_rules:
            if rule.kind == "shift_rows":
                self._shift_rows(resource, filters, page, per_page, rule.options.get("mode", "insert"),
                                 rule.options.get("on", "filter"))
        rows = self.company.select(resource, filters)
        total = len(rows)
        total_pages = max(1, -(-total // per_page))
        chunk = rows[(page - 1) * per_page: page * per_page]
        spec = RESOURCES[resource]
        pagination = {"total": total, "count": len(chunk), "per_page": per_page, "current_page": page,
                      "total_pages": total_pages, "has_next_page": page < total_pages, "links": {}}
        if not content_rules and not self._reshaping():
            # The very bytes `to_json` gives for the page below (its separators are ", " and ": "), from
            # rows serialised once per version of the resource.
            version = self.company.versions[resource]
            cache, company = self.json_cache, self.company
            served = self._served
            if spec.collections:
                rows_json = [cache.get(r, version, True, lambda r: served(resource, company.header(r))) for r in chunk]
            else:
                rows_json = [cache.get(r, version, False, lambda r: served(resource, r.data)) for r in chunk]
            return b"".join((b'{"data": [', b", ".join(rows_json), b'], "meta": ',
                             to_json({"pagination": pagination}), b"}"))
        data = [self.company.header(r) if spec.collections else self.company.detail(r) for r in chunk]
        data = [self._shaped(self._alter(self._served(resource, row), content_rules)) for row in data]
        if any(rule.kind == "legacy_pagination" for rule in content_rules):
            del pagination["has_next_page"]
        return {"data": data, "meta": {"pagination": pagination}}

    def detail(self, resource: str, key: str, content_rules: builtins.list[FaultRule]) -> dict | bytes:
        if not RESOURCES[resource].has_detail:
            raise ApiError(405, {"error": f'No route found for "GET /{resource}/{key}": Method Not Allowed'})
        record = self._record(resource, key)
        if any(rule.kind == "vanish" for rule in content_rules):
            # deleted in Precoro between a client's listing and this request: the ordinary 404 follows
            self.company.delete(record)
            record = self._record(resource, key)
        if not content_rules and not self._reshaping():  # straight from the record: no copy needed
            return self.json_cache.get(record, self.company.versions[resource], False,
                                       lambda r: self._served(resource, r.data))
        return self._shaped(self._alter(self._served(resource, self.company.detail(record)), content_rules))

    def _served(self, resource: str, row: dict) -> dict:
        """A record (or list row) as the record shape switches say. `row` itself when they change nothing (it is
        never altered: it may be the stored record), else a copy.

        The company stores records in the default shape, except items, which keep `category` (so that the
        `item_category` shape can serve it) under `dataProductCustomFields`."""
        shapes = self.shapes
        if resource == "items":
            row = {k: v for k, v in row.items() if k != "category" or shapes["item_category"]}
            if shapes["item_values_as_dataItemCustomFields"] and "dataProductCustomFields" in row:
                row = {("dataItemCustomFields" if k == "dataProductCustomFields" else k): v for k, v in row.items()}
        if shapes["idn_as_number"]:
            row = cast(dict, _idn_as_number(row))
        return row

    def _reshaping(self) -> bool:
        return any(self.shapes[name] for name in RESHAPING)

    def _shaped(self, row: dict) -> dict:
        """The record as the shape switches say (see DEFAULT_SHAPES)."""
        _reshape_record(row, self.shapes)
        return cast(dict, self._as_text(row))

    def _as_text(self, row: object) -> object:
        """With numbers_as_text, every decimal number as a string."""
        if not self.shapes["numbers_as_text"]:
            return row
        if isinstance(row, dict):
            return {k: self._as_text(v) for k, v in row.items()}
        if isinstance(row, list):
            return [self._as_text(v) for v in row]
        return format(row, "f") if isinstance(row, Decimal) else row

    def attachment(self, key: str) -> Response:
        attachment = self.company.attachments.get(parse_int("id", key)) if key.isdigit() else None
        if attachment is None:
            raise ApiError(404, {"error": f"attachments with id {key} not found."})
        return Response(attachment.content, content_type=attachment.mime_type,
                        headers={"Content-Disposition": f'attachment; filename="{attachment.id}"'})

    @staticmethod
    def _alter(row: dict, content_rules: builtins.list[FaultRule]) -> dict:
        """Apply field faults: records with missing, unknown or renamed fields."""
        for rule in content_rules:
            if rule.kind == "missing_fields":
                for name in rule.options.get("fields", []):
                    row.pop(name, None)
            elif rule.kind == "unknown_fields":
                row.update(rule.options.get("fields", {"newField": "surprise"}))
            elif rule.kind == "renamed_fields":
                for old, new in rule.options.get("rename", {}).items():
                    if ".*." in old:  # a field of a collection's elements: "approvalSteps.*.status"
                        collection, name = old.split(".*.", 1)
                        if _elements(row, collection):  # rebuilt: the elements may be the stored record's own
                            row[collection] = {"data": [{(new if k == name else k): v for k, v in element.items()}
                                                        for element in _elements(row, collection)]}
                    elif old in row:
                        row[new] = row.pop(old)
            elif rule.kind == "renamed_values":
                for name, renames in rule.options.get("values", {}).items():
                    if isinstance(row.get(name), str | int) and str(row[name]) in renames:
                        row[name] = renames[str(row[name])]
            elif rule.kind == "date_offsets":
                _write_dates_at_offsets(row, rule.options["offsets"], rule.options.get("fields", DATE_FIELDS))
        return row

    def _shift_rows(self, resource: str, filters: Filters, page: int, per_page: int, mode: str,
                    on: str = "filter") -> None:
        """Rows move between two page requests: a record appears on top (created on the newest day the list
        asks for, or `on` "now": today, as the company goes on working), or one already served vanishes."""
        if mode == "insert":
            created = self.company.now()
            if filters.created_to is not None and on == "filter":
                created = datetime.combine(filters.created_to, created.time(), tzinfo=UTC)
            self.builder.create_like(resource, created)
        else:
            served = self.company.select(resource, filters)[: (page - 1) * per_page]
            if served:
                self.company.delete(served[0])

    # ---- writes ------------------------------------------------------------------------------------

    def create(self, resource: str, form: dict) -> dict:
        creators = {"payments": self.create_payment, "suppliers": self.create_supplier, "items": self.create_item,
                    "taxes": self.create_tax, "paymentterms": self.create_payment_term,
                    "purchaserequisitions": self.create_requisition, "locations": self.create_location}
        creator = creators.get(resource)
        if creator is None:
            raise ApiError(405, {"error": f'No route found for "POST /{resource}": Method Not Allowed'})
        return self.company.detail(creator(form))

    def create_payment(self, form: dict) -> Record:
        only_fields(form, {"invoice", "sumPaid", "logicType", "payDate"})
        invoice_ref = form.get("invoice")
        if not isinstance(invoice_ref, dict) or not invoice_ref.get("id"):
            raise validation_error("invoice", "This value should not be blank (send invoice[id]).")
        invoice = self.company.get_by_id("invoices", invoice_ref["id"])
        if invoice is None:
            raise validation_error("invoice", f"Invoice with id {invoice_ref['id']} not found.")
        if "sumPaid" not in form:
            raise validation_error("sumPaid", "This value should not be blank.")
        amount = parse_money("sumPaid", form["sumPaid"])
        pay_date = parse_moment("payDate", form["payDate"]) if form.get("payDate") else self.company.now()
        return self.company.record_payment(invoice, amount, pay_date, logic_type=parse_int("logicType",
                                                                                           form.get("logicType", 0)))

    SUPPLIER_FIELDS = {"name", "uniqueCode", "currency", "currencies", "enable", "taxPayerNumber", "legalAddress",
                       "externalId", "status", "contacts", "city", "state", "country", "supplierLegalEntityIds"}
    CONTACT_FIELDS = {"id", "name", "email", "phone"}

    def _contacts(self, given: object, existing: builtins.list[dict]) -> builtins.list[dict]:
        """`contacts[data][N][name|email|phone]` (an `id` keeps an existing contact's id): the new list."""
        rows = given.get("data") if isinstance(given, dict) else given
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise validation_error("contacts", "Send contacts[data][N][name], [email] and [phone].")
        known = {str(contact["id"]) for contact in existing}
        contacts = []
        for index, row in enumerate(rows):
            extra = set(row) - self.CONTACT_FIELDS
            if extra:
                raise validation_error(f"contacts[data][{index}][{sorted(extra)[0]}]",
                                       "This form should not contain extra fields.")
            email = row.get("email") or None
            if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
                raise validation_error(f"contacts[data][{index}][email]", "This value is not a valid email address.")
            contact_id = int(row["id"]) if str(row.get("id")) in known else self.company.new_id("contacts")
            contacts.append({"id": contact_id, "name": row.get("name") or None, "email": email,
                             "phone": row.get("phone") or None})
        return contacts

    def _apply_supplier(self, record_data: dict, form: dict) -> None:
        only_fields(form, self.SUPPLIER_FIELDS)
        for name in ("name", "uniqueCode", "taxPayerNumber", "legalAddress", "externalId", "city", "state", "country"):
            if name in form:
                record_data[name] = form[name]
        if "supplierLegalEntityIds" in form:  # like currencies[], what is sent replaces the whole list
            record_data["supplierLegalEntities"] = {"data": self._legal_entities("supplierLegalEntityIds",
                                                                                 form["supplierLegalEntityIds"])}
        if "currency" in form:
            record_data["currency"] = parse_currency("currency", form["currency"])
        if "currencies" in form:
            currencies = form["currencies"]
            currencies = currencies if isinstance(currencies, list) else [currencies]
            record_data["currencies"] = [parse_currency("currencies", c) for c in currencies]
        if "enable" in form:
            record_data["enable"] = parse_bool("enable", form["enable"])
        if "contacts" in form:  # like currencies[], what is sent replaces the whole list
            record_data["contacts"] = {"data": self._contacts(form["contacts"], record_data["contacts"]["data"])}
        if "status" in form:
            status = parse_int("status", form["status"])
            if status not in SUPPLIER_STATUS_NAMES:
                raise validation_error("status", "This value should be 1, 2 or 3.")
            record_data["status"], record_data["statusString"] = status, SUPPLIER_STATUS_NAMES[status]

    def _legal_entities(self, field_name: str, given: object) -> builtins.list[dict]:
        """Legal entities named by id (`name[]=5&name[]=6`, or one id): [{id, name}], or a 400 naming the field."""
        ids = given if isinstance(given, list) else [given]
        entities = []
        for value in ids:
            text = str(value).strip()
            entity = self.company.get_by_id("legalentities", text) if text.isdigit() else None
            if entity is None:
                raise validation_error(field_name, f"Legal entity {value!r} not found (send numeric legal entity ids).")
            entities.append({"id": entity.id, "name": entity.data["name"]})
        return entities

    def create_supplier(self, form: dict) -> Record:
        if not form.get("name"):
            raise validation_error("name", "This value should not be blank.")
        data: dict = {"name": "", "uniqueCode": None, "status": 1, "statusString": SUPPLIER_STATUS_NAMES[1],
                "enable": True, "currency": "USD", "currencies": ["USD"], "taxPayerNumber": None, "legalAddress": None,
                "paymentTerms": {"data": []}, "contacts": {"data": []}, "supplierLegalEntities": {"data": []},
                "externalId": None, "approvalDate": None,
                # the rest of a supplier's detail, empty until someone fills it in Precoro
                "city": None, "state": None, "country": None, "postalCode": None, "note": None, "conditions": None,
                "creator": {"id": self.company.token_user_id}, "deliveryPeriod": None, "minimumSum": None,
                "taxPayerType": None, "taxPayerLabel": None, "enableToleranceRate": False,
                "toleranceRatePercent": Decimal(0), "dataSupplierCustomFields": {"data": []}}
        self._apply_supplier(data, form)
        return self.company.add("suppliers", data, self.company.now())

    ITEM_FIELDS = {"name", "sku", "price", "description", "supplier", "externalId", "freeOfCharge"}

    def _apply_item(self, record_data: dict, form: dict) -> None:
        only_fields(form, self.ITEM_FIELDS)
        for name in ("name", "sku", "description", "externalId"):
            if name in form:
                record_data[name] = form[name]
        if "price" in form:
            record_data["price"] = parse_decimal("price", form["price"])
        if "freeOfCharge" in form:
            record_data["freeOfCharge"] = parse_bool("freeOfCharge", form["freeOfCharge"])
        if "supplier" in form:
            supplier_id = (form["supplier"] or {}).get("id") if isinstance(form["supplier"], dict) else None
            supplier = self.company.get_by_id("suppliers", supplier_id)
            if supplier is None:
                raise validation_error("supplier", "Supplier not found (send supplier[id]).")
            record_data["supplier"] = {"id": supplier.id, "name": supplier.data["name"]}

    def create_item(self, form: dict) -> Record:
        if not form.get("name"):
            raise validation_error("name", "This value should not be blank.")
        data: dict = {"name": "", "sku": None, "type": 1, "typeString": "product", "description": None,
                "price": Decimal("0.00"), "category": None, "disabledBySupplier": False, "hiddenInCatalog": False,
                "freeOfCharge": False, "supplier": None, "dataProductCustomFields": {"data": []}, "externalId": None}
        self._apply_item(data, form)
        return self.company.add("items", data, self.company.now())

    def _apply_tax(self, record_data: dict, form: dict) -> None:
        """`value` and `percent` (Precoro's connector sends both); one sent alone sets both, as for a
        percentage tax the two are the same number."""
        only_fields(form, {"name", "value", "percent", "enable", "externalId"})
        for name in ("name", "externalId"):
            if name in form:
                record_data[name] = form[name]
        rates = {name: parse_number(name, form[name]) for name in ("value", "percent") if name in form}
        for name in ("value", "percent"):
            if rates:
                record_data[name] = rates.get(name, next(iter(rates.values())))
        if "enable" in form:
            record_data["enable"] = parse_bool("enable", form["enable"])

    def create_tax(self, form: dict) -> Record:
        if not form.get("name"):
            raise validation_error("name", "This value should not be blank.")
        if not form.get("value") and not form.get("percent"):
            raise validation_error("value", "This value should not be blank (send value and/or percent).")
        data = {"name": "", "percent": Decimal(0), "value": Decimal(0), "taxAmount": None, "isWithholdingTax": False,
                "enable": True, "externalId": None, "externalIntegrationLog": None}
        self._apply_tax(data, form)
        return self.company.add("taxes", data, self.company.now())

    PAYMENT_TERM_FIELDS = {"name", "creditPeriodDays", "prepaymentPercent", "postpaymentPercent",
                           "termsDueDateAfterInvoicing", "paymentType", "enable", "externalId"}
    PAYMENT_TYPES = (0, 1, 2)  # what the SDK sends: 0 net, 1 prepayment, 2 mixed

    def _payment_term_fields(self, form: dict) -> dict:
        """Every field of a payment term, as numbers where Precoro's clients send numbers. The two shares are
        percents (0-100); one sent alone implies the other as its complement (whether Precoro refuses two that don't
        add up to 100 is not known, so both are taken as sent)."""
        fields: dict = {}
        shares = {name: parse_number(name, form[name]) for name in ("prepaymentPercent", "postpaymentPercent")
                  if name in form}
        for name, share in shares.items():
            if not 0 <= share <= 100:
                raise validation_error(name, "This value should be between 0 and 100.")
        if len(shares) == 1:
            [(name, share)] = shares.items()
            other = "postpaymentPercent" if name == "prepaymentPercent" else "prepaymentPercent"
            shares[other] = 100 - share
        fields.update({name: int(v) if v == v.to_integral_value() else v for name, v in shares.items()})
        for name in ("creditPeriodDays", "termsDueDateAfterInvoicing"):
            if name in form:
                fields[name] = parse_int(name, form[name])
                if fields[name] < 0:
                    raise validation_error(name, "This value should be 0 or more.")
        if "paymentType" in form:
            fields["paymentType"] = parse_int("paymentType", form["paymentType"])
            if fields["paymentType"] not in self.PAYMENT_TYPES:
                raise validation_error("paymentType", "This value should be 0, 1 or 2.")
        if "enable" in form:
            fields["enable"] = parse_bool("enable", form["enable"])
        return fields

    def create_payment_term(self, form: dict) -> Record:
        only_fields(form, self.PAYMENT_TERM_FIELDS)
        if not form.get("name"):
            raise validation_error("name", "This value should not be blank.")
        data = {"name": form["name"], "creditPeriodDays": parse_int("creditPeriodDays", form.get("creditPeriodDays", 0)),
                "prepaymentPercent": 0, "postpaymentPercent": 100, "termsDueDateAfterInvoicing": 1,
                "paymentType": 0, "enable": True, "externalId": form.get("externalId"),
                "externalIntegrationLog": None}
        data.update(self._payment_term_fields(form))
        return self.company.add("paymentterms", data, self.company.now())

    def create_location(self, form: dict) -> Record:
        only_fields(form, {"name", "uniqueCode", "address", "enable", "externalId"})
        if not form.get("name"):
            raise validation_error("name", "This value should not be blank.")
        data = {"name": form["name"], "address": form.get("address") or None, "enable": True,
                "externalId": form.get("externalId") or None, "externalIntegrationLog": None}
        if "uniqueCode" in form:
            data["uniqueCode"] = form["uniqueCode"] or None
        if "enable" in form:
            data["enable"] = parse_bool("enable", form["enable"])
        return self.company.add("locations", data, self.company.now())

    def create_requisition(self, form: dict) -> Record:
        """A purchase requisition from form lines (`items[N][name|quantity|price|unit]`, optional
        `supplier[id]`, `location[id]`, `currency`, `description`); it starts pending approval."""
        only_fields(form, {"supplier", "location", "currency", "description", "items"})
        lines = form.get("items")
        if not isinstance(lines, list) or not lines:
            raise validation_error("items", "At least one line is required (items[0][name], [quantity], [price]).")
        built = []
        for index, line in enumerate(lines):
            if not isinstance(line, dict) or not line.get("name"):
                raise validation_error(f"items[{index}][name]", "This value should not be blank.")
            quantity = parse_decimal(f"items[{index}][quantity]", line.get("quantity", "1"))
            price = parse_decimal(f"items[{index}][price]", line.get("price", "0"))
            built.append({"item": None, "name": line["name"], "sku": None,
                          "unit": line.get("unit", "pcs"), "quantity": quantity, "price": price,
                          "netSum": money(quantity * price), "taxSum": Decimal("0.00"),
                          "sum": money(quantity * price), "tax": None, "dataItemCustomFields": {"data": []}})
        references = {}
        for name, resource in (("supplier", "suppliers"), ("location", "locations")):
            if name in form:
                given = form[name].get("id") if isinstance(form[name], dict) else None
                found = self.company.get_by_id(resource, given) if given else None
                if found is None:
                    raise validation_error(name, f"Not found (send {name}[id] with the numeric id).")
                references[name] = {"id": found.id, "name": found.data["name"]}
        currency = parse_currency("currency", form["currency"]) if "currency" in form else None

        now = self.company.now()
        record = self.builder.purchase_requisition(now, now)
        total = sum((line["sum"] for line in built), Decimal("0.00"))
        currency = currency or record.data["currency"]
        record.data.update({
            **references,
            "items": {"data": [{"id": self.company.new_id("lines"), **line} for line in built]},
            "taxes": {"data": []}, "sum": total, "netSum": total, "currency": currency,
            "exchangeRate": exchange_rate(currency, iso(now)), "sumInCompanyCurrency": money(total * EXCHANGE_RATES[currency]),
            "description": form.get("description"), "status": 1, "statusString": "Pending",
            "approvalSteps": {"data": self.builder.approval_steps(1, None)},
        })
        record.approved = None
        self.company.touch(record, now)
        return record

    def create_receipt(self, purchase_order_id: str, form: dict) -> dict:
        """POST /receipts/{purchase_order_id}: goods received against an approved PO (numeric id, not idn)."""
        only_fields(form, {"items"})
        order = self.company.get_by_id("purchaseorders", purchase_order_id)
        if order is None:
            raise ApiError(404, {"error": f"purchaseorders with id {purchase_order_id} not found."})
        if order.data["status"] != 2:
            raise validation_error("purchaseOrder", f"The purchase order is not approved (status {order.data['statusString']}).")
        lines = None
        if "items" in form:
            ordered = {line["id"]: line["quantity"] for line in order.data["items"]["data"]}
            lines = {}
            for index, line in enumerate(form["items"] if isinstance(form["items"], list) else []):
                line_id = parse_int(f"items[{index}][id]", line.get("id"))
                quantity = parse_money(f"items[{index}][quantity]", line.get("quantity"))
                if line_id not in ordered:
                    raise validation_error(f"items[{index}][id]", "This line is not on the purchase order.")
                if quantity > ordered[line_id]:
                    raise validation_error(f"items[{index}][quantity]", "More than ordered cannot be received.")
                lines[line_id] = quantity
        now = self.company.now()
        return self.company.detail(self.builder.receipt(now, now, order, lines))

    def replace(self, resource: str, key: str, form: dict) -> dict:
        appliers = {"suppliers": self._apply_supplier, "items": self._apply_item, "taxes": self._apply_tax}
        applier = appliers.get(resource)
        if applier is None:
            raise ApiError(405, {"error": f'No route found for "PUT /{resource}/{key}": Method Not Allowed'})
        record = self._record(resource, key)
        draft = copy.deepcopy(record.data)
        applier(draft, form)  # a 400 on any field leaves the record as it was
        record.data.update(draft)
        self.company.touch(record)
        return self.company.detail(record)

    def _external_fields(self, form: dict) -> dict:
        only_fields(form, {"externalId", "externalIntegrationLog"})
        if not form:
            raise validation_error("externalId", "Send externalId and/or externalIntegrationLog.")
        return form

    def patch(self, resource: str, key: str, form: dict) -> dict:
        if not RESOURCES[resource].patchable:
            raise ApiError(405, {"error": f'No route found for "PATCH /{resource}/{key}": Method Not Allowed'})
        record = self._record(resource, key)
        self.company.patch_external(record, self._external_fields(form))
        return self.company.detail(record)

    def workflow(self, resource: str, key: str, action: str, form: dict) -> dict:
        if not RESOURCES[resource].is_document:
            raise ApiError(405, {"error": f'No route found for "POST /{resource}/{key}/{action}"'})
        record = self._record(resource, key)
        if action == "approve":
            self.company.approve(record)
        elif action == "reject":
            self.company.reject(record, str(form.get("comment") or ""))
        else:
            self.company.confirm(record)
        return self.company.detail(record)

    def _custom_field(self, resource: str, key: str) -> Record:
        if resource not in CUSTOM_FIELD_RESOURCES:
            raise ApiError(404, {"error": f"/{resource}/{key}/options does not exist."})
        return self._record(resource, key)

    OPTION_FIELDS = {"name", "code", "externalId", "parent", "enable"}

    def _option_fields(self, field: Record, form: dict, option_id: int | None = None) -> dict:
        """What an option write sets: name, code, externalId, `enable`, and `parent[id]` (another option of the
        same field: a hierarchical chart of accounts)."""
        only_fields(form, self.OPTION_FIELDS)
        fields = {k: form[k] for k in ("name", "code", "externalId") if k in form}
        if "enable" in form:
            fields["enable"] = parse_bool("enable", form["enable"])
        if "parent" in form:
            given = form["parent"].get("id") if isinstance(form["parent"], dict) else None
            if given in (None, ""):
                fields["parent"] = None
            else:
                parent = next((o for o in field.data["options"] if str(o["id"]) == str(given)), None)
                if parent is None or parent["id"] == option_id:
                    raise validation_error("parent", f"Option {given} is not another option of this field "
                                                     "(send parent[id] with an option id of the same field).")
                fields["parent"] = {"id": parent["id"]}
        return fields

    def option_create(self, resource: str, key: str, form: dict) -> dict:
        field = self._custom_field(resource, key)
        fields = self._option_fields(field, form)
        if not form.get("name"):
            raise validation_error("name", "This value should not be blank.")
        option = {"id": self.company.new_id("options"), "name": form["name"], "code": None, "externalId": None,
                  "externalIntegrationLog": None, "enable": True, "parent": None, **fields}
        field.data["options"].append(option)
        self.company.touch(field)
        return option

    DEPEND_OPTION_PARAMETER = {"itemcustomfields": "item_custom_field_option_id",
                               "documentcustomfields": "document_custom_field_option_id"}

    def depend_add(self, resource: str, form: dict) -> dict:
        """PATCH /{cf}/options/depend_add: an option offered only with some legal entities (depend_type 1), as
        Precoro's connector sends it (`entity_ids` one id, or "[5, 6]"). The simulator records the limit on the
        option as `dependLegalEntities` (where real Precoro shows it is not known)."""
        if resource not in CUSTOM_FIELD_RESOURCES:
            raise ApiError(404, {"error": f'No route found for "PATCH /{resource}/options/depend_add"'})
        parameter = self.DEPEND_OPTION_PARAMETER[resource]
        only_fields(form, {parameter, "depend_type", "entity_ids"})
        for name in (parameter, "depend_type", "entity_ids"):
            if form.get(name) in (None, "", []):
                raise validation_error(name, "This value should not be blank.")
        if str(form["depend_type"]) != "1":
            raise validation_error("depend_type", "Only 1 (legal entities) is simulated.")
        given = form["entity_ids"]
        ids = given if isinstance(given, list) else [p for p in str(given).strip().strip("[]").split(",") if p.strip()]
        entities = self._legal_entities("entity_ids", [str(i).strip() for i in ids])
        option_id = str(form[parameter]).strip()
        for field in self.company.all(resource):
            option = next((o for o in field.data["options"] if str(o["id"]) == option_id), None)
            if option is not None:
                known = {e["id"] for e in option.get("dependLegalEntities") or []}
                option["dependLegalEntities"] = (option.get("dependLegalEntities") or []) + [
                    e for e in entities if e["id"] not in known]
                self.company.touch(field)
                return copy.deepcopy(option)
        raise ApiError(404, {"error": f"Option {option_id} of {resource} not found."})

    def cancel_payment(self, key: str, form: dict) -> dict:
        """POST /payments/{idn}/cancel: the payment stays listed with status 8 and leaves the invoice's sumPaid."""
        only_fields(form, set())
        payment = self._record("payments", key)
        self.company.cancel_payment(payment)
        return self.company.detail(payment)

    def option_write(self, resource: str, key: str, option_id: str, method: str, form: dict) -> dict:
        field = self._custom_field(resource, key)
        option = next((o for o in field.data["options"] if str(o["id"]) == option_id), None)
        if option is None:
            raise ApiError(404, {"error": f"Option {option_id} of {resource} {key} not found."})
        if method == "PUT":
            option.update(self._option_fields(field, form, option["id"]))
        else:
            for name, value in self._external_fields(form).items():
                option[name] = value or None
        self.company.touch(field)
        return option

    # ---- the control API ------------------------------------------------------------------------

    def control(self, request: Request) -> Response:
        try:
            payload = self._control(request)
            text = payload if isinstance(payload, str) else json.dumps(payload, default=_json_default,
                                                                       ensure_ascii=False)
            return Response(text, content_type="application/json")
        except BadRule as error:
            return Response(json.dumps({"error": str(error)}), status=400, content_type="application/json")
        except HTTPException as error:
            return Response(json.dumps({"error": error.description}), status=error.code or 400,
                            content_type="application/json")

    def _control(self, request: Request) -> object:
        parts = request.path.strip("/").split("/")
        action = parts[1] if len(parts) > 1 else ""
        body = request.get_json(silent=True) if request.data else None
        if action == "info" and request.method == "GET":
            return self.info()
        if action == "stats" and request.method == "GET":
            return self.stats()
        if action == "requests" and request.method == "GET":
            since = int(request.args.get("since", "0"))
            with self.lock:
                entries = self.log[since:]
                return {"requests": entries, "next": len(self.log)}
        if action == "faults":
            with self.lock:
                if request.method == "POST":
                    return {"id": self.faults.add(body or {}).id}
                if request.method == "DELETE":
                    self.faults.clear()
                    return {"faults": []}
                return {"faults": [rule.as_dict() for rule in self.faults.rules], "injected": self.faults.injected}
        if action == "tick" and request.method == "POST":
            events = int((body or {}).get("events", 5))
            return {"changes": self.tick(events)}
        if action == "payments" and request.method == "POST" and len(parts) == 4 and parts[3] == "cancel":
            with self.lock:
                payment = self.company.get("payments", parts[2])
                if payment is None:
                    raise NotFound(f"no payment with idn {parts[2]}")
                try:
                    self.company.cancel_payment(payment)
                except Invalid as invalid:
                    raise BadRequest(invalid.message) from None
                return self.company.detail(payment)
        if action == "webhooks":
            with self.lock:
                if request.method == "POST":
                    options = body or {}
                    try:
                        self.webhooks.configure(options.get("urls", []), float(options.get("lose", 0)),
                                                float(options.get("duplicate", 0)), int(options.get("seed", 97)))
                    except (TypeError, ValueError) as error:
                        raise BadRequest(str(error)) from None
                return self.webhooks.state()
        if action == "shapes":
            with self.lock:
                if request.method == "POST":
                    unknown = set(body or {}) - set(DEFAULT_SHAPES)
                    if unknown or not all(isinstance(v, bool) for v in (body or {}).values()):
                        raise BadRequest(f"shapes are true/false switches among {sorted(DEFAULT_SHAPES)}")
                    self.shapes.update(body or {})
                    self.json_cache = JsonCache()  # answers serialised in the shapes before
                return dict(self.shapes)
        if action == "records" and request.method == "POST" and len(parts) == 4:
            return self._edit_in_company(parts[2], parts[3], body or {})
        if action == "warm" and request.method == "POST":
            return {"serialised": self.warm()}
        if action == "reset" and request.method == "POST":
            self.reset()
            return {"reset": True}
        if action == "export" and request.method == "GET" and len(parts) == 3:
            if parts[2] in RESOURCES:  # serialised under the lock, straight from the records: no copies
                # the records as the API serves them in the current shapes (their full detail)
                # (the record shapes and numbers as text; the taxes' and near names' shapes only in answers)
                resource, default = parts[2], self.shapes == DEFAULT_SHAPES
                with self.lock:
                    records = [r.data if default and resource != "items" else
                               self._as_text(self._served(resource, r.data)) for r in self.company.all(resource)]
                    return json.dumps({"data": records}, default=_json_default, ensure_ascii=False)
            return self.export(parts[2])
        raise NotFound(f"unknown control endpoint {request.method} {request.path}; see GET /_sim/info")

    # What someone in the company may change in Precoro's UI that no API call can (see INTERFACE.md): a
    # connector's integration status, a draft document sent for approval (status 0 -> 1), and the supplier's name as
    # a document shows it (any text: the soak types formulas and 200 KiB into it).
    UI_FIELDS = {"integrationStatus", "status", "supplierName"}

    def _edit_in_company(self, resource: str, key: str, fields: dict) -> dict:
        unknown = set(fields) - self.UI_FIELDS
        if resource not in RESOURCES or unknown or not fields:
            raise BadRequest(f"send {sorted(self.UI_FIELDS)} for a resource of {sorted(RESOURCES)}")
        if "supplierName" in fields and (not RESOURCES[resource].is_document or not isinstance(
                fields["supplierName"], str)):
            raise BadRequest("supplierName is a document's, and text")
        with self.lock:
            record = self.company.get(resource, key)
            if record is None:
                raise NotFound(f"no {resource} record {key}")
            if "status" in fields and (fields["status"] != 1 or record.data.get("status") != 0):
                raise BadRequest("only a draft (status 0) can be sent for approval (status 1) this way")
            if "status" in fields:
                self.company.set_status(record, fields.pop("status"), self.company.now())
            if "supplierName" in fields:
                record.data["supplier"] = {**(record.data.get("supplier") or {}), "name": fields.pop("supplierName")}
            record.data.update(fields)
            self.company.touch(record)
            return self.company.detail(record)

    def warm(self) -> int:
        """Serialise every list row and detail into the JSON cache now, as the first request for each would: the
        benchmarks call it before timing anything, so every client meets the same cost per answer (otherwise
        the first client measured would pay for serialising what later ones get from the cache)."""
        with self.lock:
            cache, company, warmed = self.json_cache, self.company, 0
            for resource, spec in RESOURCES.items():
                version = company.versions[resource]
                for record in company.all(resource):
                    if spec.collections:
                        cache.get(record, version, True, lambda r: self._served(r.resource, company.header(r)))
                    cache.get(record, version, False, lambda r: self._served(r.resource, r.data))
                    warmed += 1
            return warmed

    def info(self) -> dict:
        return {"url": self.base_url, "token": self.token, "email": self.email, "seed": self.config.seed,
                "days": self.config.days, "documents": self.config.documents,
                "limits": self.config.limits.describe(), "resources": sorted(RESOURCES)}

    def stats(self) -> dict:
        with self.lock:
            requests = [{"method": m, "path": p, "status": s, "count": n} for (m, p, s), n in sorted(self.counts.items())]
            unknown = [{"method": m, "path": p, "name": n, "count": c}
                       for (m, p, n), c in sorted(self.unknown_parameters.items())]
            return {"total": sum(self.counts.values()), "requests": requests, "rate_limited": dict(self.rate_limited),
                    "faults_injected": dict(self.faults.injected), "quota": self.limiter.usage(self.token),
                    "unknown_parameters": unknown}

    def export(self, resource: str) -> dict:
        """Ground truth: every record of a resource with its full detail, by id."""
        with self.lock:
            if resource == "attachments":
                return {"data": [{"id": a.id, "name": a.name, "mimeType": a.mime_type, "size": len(a.content),
                                  "sha256": hashlib.sha256(a.content).hexdigest()}
                                 for a in self.company.attachments.values()]}
            if resource not in RESOURCES:
                raise NotFound(f"unknown resource {resource!r}; one of {', '.join(sorted(RESOURCES))}")
            return {"data": [self.company.detail(r) for r in self.company.all(resource)]}
