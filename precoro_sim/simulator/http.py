"""The HTTP plumbing of the simulator: Precoro's error answers, JSON out (with a cache of serialised records),
bracket-keyed forms and query parameters in, and the route map."""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.routing import Map, Rule

from .company import RESOURCES, Filters, Record, money
from .content import EXCHANGE_RATES

MAX_EXTERNAL_IDS = 200
PRICE_DECIMALS = 6  # unit prices and quantities (sums have 2)


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


# Every query parameter the contract names (Precoro's API documentation: pagination, "Filters", "More list
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


