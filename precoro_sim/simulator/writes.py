"""Precoro's API, the writes: what a POST, PUT or PATCH does to the simulated company."""

from __future__ import annotations

import builtins
import copy
import re
from decimal import Decimal

from .company import CUSTOM_FIELD_RESOURCES, RESOURCES, Record, iso, money
from .content import EXCHANGE_RATES, SUPPLIER_STATUS_NAMES, exchange_rate
from .http import (
    ApiError,
    only_fields,
    parse_bool,
    parse_currency,
    parse_decimal,
    parse_int,
    parse_moment,
    parse_money,
    parse_number,
    validation_error,
)
from .state import SimulatorState


class PrecoroWrites(SimulatorState):
    """Precoro's writes: creating, replacing and patching records, workflow actions, custom field options."""

    def _record(self, resource: str, key: str) -> Record:
        record = self.company.get(resource, key)
        if record is None:
            spec = RESOURCES[resource]
            raise ApiError(404, {"error": f"{resource} with {spec.key} {key} not found."})
        return record

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

