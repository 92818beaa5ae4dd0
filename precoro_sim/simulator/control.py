"""The simulator's `/_sim/` control API: what the tests, the demo and the benchmarks steer it with (see
docs/simulator.md).

Every endpoint is one company's: the app (app.py) hands a control request to the company its `?company=N` query
parameter names, company 1 without it; `GET /_sim/info` also lists every company the simulator serves."""

from __future__ import annotations

import hashlib
import json

from werkzeug.exceptions import BadRequest, HTTPException, NotFound
from werkzeug.wrappers import Request, Response

from .api import PrecoroApi
from .company import RESOURCES, Invalid
from .faults import BadRule
from .http import JsonCache, _json_default
from .state import DEFAULT_SHAPES


def control_error(status: int, message: str | None) -> Response:
    """A control API error: `{"error": message}`."""
    return Response(json.dumps({"error": message}), status=status, content_type="application/json")


class ControlApi(PrecoroApi):
    """One company's `/_sim/` control API: reset, tick, faults, shapes, webhooks, statistics, the request log,
    exports."""

    def control(self, request: Request) -> Response:
        try:
            payload = self._control(request)
            text = payload if isinstance(payload, str) else json.dumps(payload, default=_json_default,
                                                                       ensure_ascii=False)
            return Response(text, content_type="application/json")
        except BadRule as error:
            return control_error(400, str(error))
        except HTTPException as error:
            return control_error(error.code or 400, error.description)

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
        if action == "records" and request.method == "DELETE" and len(parts) == 4:
            return self._delete_in_company(parts[2], parts[3])
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

    # What someone in the company may change in Precoro's UI that no API call can (see docs/simulator.md): a
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

    def _delete_in_company(self, resource: str, key: str) -> dict:
        """Someone deletes a record in Precoro's UI: no webhook says so, and `modifiedSince` lists it no more."""
        with self.lock:
            record = self.company.get(resource, key) if resource in RESOURCES else None
            if record is None:
                raise NotFound(f"no {resource} record {key}")
            self.company.delete(record)
            return {"deleted": {"resource": resource, "key": key}}

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
        """This company's URL, token, e-mail and seed, the simulator's settings, and every company it serves."""
        return {"url": self.base_url, "token": self.token, "email": self.email, "seed": self.identity.seed,
                "days": self.config.days, "documents": self.config.documents,
                "limits": self.config.limits.describe(), "resources": sorted(RESOURCES),
                "companies": [identity.as_dict() for identity in self.config.identities()]}

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
