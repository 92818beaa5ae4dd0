"""Precoro's API over the simulated company: the request path (authentication, limits, faults, statistics) and
the reads (lists with Precoro's filters and pagination, details, attachments, answer shapes)."""

from __future__ import annotations

import builtins
import copy
import dataclasses
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import cast

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.wrappers import Request, Response

from .company import RESOURCES, Filters, Invalid
from .faults import TRANSPORT_KINDS, FaultRule
from .http import (
    KNOWN_PARAMETERS,
    ApiError,
    JsonAnswer,
    nest_form,
    parse_filters,
    parse_int,
    path_template,
    route,
    to_json,
    validation_error,
)
from .limits import Rejection
from .state import RESHAPING
from .writes import PrecoroWrites

PER_PAGE_ALLOWED = (10, 20, 50, 100, 200)
DEFAULT_PER_PAGE = 10
CREDIT_NOTE_TYPES = frozenset({1, 5})

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



class PrecoroApi(PrecoroWrites):
    """Precoro's API: every request goes through the same steps, in Precoro's order: route, authenticate, count
    against the rate limits (429), apply faults on demand, answer (reads here, writes in writes.py), record
    statistics."""

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

