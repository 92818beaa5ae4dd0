"""Builds the simulated company: reference data, a history of documents, and the events of `tick`.

Everything is drawn from one `random.Random(seed)`, so a seed and a day always give the same company.
The same builders serve the initial history, `POST /_sim/tick` and the `shift_rows` fault, so a document
created later looks exactly like one generated at start.
"""

from __future__ import annotations

import copy
import gc
import itertools
import random
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from . import content
from .company import Attachment, Change, Company, Record, iso, money

DAY = timedelta(days=1)
CATEGORY_FIELD = "Category"  # the item custom field that holds an item's category
# What a supplier's payment terms carry of each term (Precoro's connector: every field of a payment term)
PAYMENT_TERM_FIELDS = ("name", "prepaymentPercent", "postpaymentPercent", "creditPeriodDays",
                       "termsDueDateAfterInvoicing", "paymentType", "enable", "externalId")


def start_of_today() -> datetime:
    return datetime.combine(datetime.now(UTC).date(), time(0), tzinfo=UTC)


class CompanyBuilder:
    """Creates realistic records in a `Company`."""

    def __init__(self, company: Company, rng: random.Random, reference: dict | None = None):
        self.company = company
        self.rng = rng
        self.reference = reference or {"id": 1, "name": content.COMPANY_NAME}  # the company, as documents name it
        self._lists: dict[str, tuple[int, list[Record]]] = {}
        self._fields: dict[tuple[str, str], tuple[int, Record]] = {}
        self._cumulative: dict[tuple, tuple[list[int], list[int]]] = {}
        self._items_by_supplier: tuple[int, dict[int, list[Record]]] = (-1, {})

    # ---- small helpers ----------------------------------------------------------------------

    def _between(self, start: datetime, end: datetime) -> datetime:
        seconds = max(0, int((end - start).total_seconds()))
        return start + timedelta(seconds=self.rng.randint(0, seconds))

    def _later(self, moment: datetime, max_hours: float, cap: datetime) -> datetime:
        return min(cap, moment + timedelta(seconds=self.rng.randint(0, int(max_hours * 3600))))

    def _list(self, resource: str) -> list[Record]:
        """The records of a resource as a list, cached until the resource changes (picking is hot)."""
        version = self.company.versions[resource]
        cached = self._lists.get(resource)
        if cached is None or cached[0] != version:
            cached = (version, list(self.company.records[resource].values()))
            self._lists[resource] = cached
        return cached[1]

    def _items_of(self, supplier: Record) -> list[Record]:
        version = self.company.versions["items"]
        if self._items_by_supplier[0] != version:
            index: dict[int, list[Record]] = {}
            for item in self._list("items"):
                if item.data.get("supplier"):  # items created through the API may have none
                    index.setdefault(item.data["supplier"]["id"], []).append(item)
            self._items_by_supplier = (version, index)
        return self._items_by_supplier[1].get(supplier.id) or self._list("items")

    def _pick(self, resource: str) -> Record:
        return self.rng.choice(self._list(resource))

    def _ref(self, record: Record, *fields: str) -> dict:
        return {"id": record.id, **{f: record.data[f] for f in fields}}

    def _choose_status(self, weights: dict[int, int]) -> int:
        # the same draw as rng.choices(statuses, weights), with the cumulative weights computed once
        cache_key = tuple(weights.items())
        prepared = self._cumulative.get(cache_key)
        if prepared is None:
            prepared = (list(weights), list(itertools.accumulate(weights.values())))
            self._cumulative[cache_key] = prepared
        return self.rng.choices(prepared[0], cum_weights=prepared[1])[0]

    # ---- reference data ------------------------------------------------------------------------

    def reference_data(self, suppliers: int, start: datetime, end: datetime) -> None:
        """Taxes, payment terms, locations, legal entities, custom fields, users, warehouses, units, suppliers, items."""
        c, rng = self.company, self.rng
        before = start - timedelta(days=365)

        def created() -> datetime:
            return self._between(before, start)

        def updated(moment: datetime) -> datetime:
            # a fifth of reference records were edited during the simulated period
            return self._between(start, end) if rng.random() < 0.2 else moment

        def simple(resource: str, data: dict) -> Record:
            moment = created()
            return c.add(resource, {**data, "externalId": None, "externalIntegrationLog": None}, moment,
                         updated(moment))

        for name, value in content.TAXES:
            simple("taxes", {"name": name, "percent": value, "value": value, "taxAmount": None,
                             "isWithholdingTax": False})
        for index, (name, days) in enumerate(content.PAYMENT_TERMS):
            # termsDueDateAfterInvoicing and paymentType are numbers (codes) in Precoro, as its connector and
            # SDK type them (the SDK sends paymentType 0, 1 or 2)
            simple("paymentterms", {"name": name, "creditPeriodDays": days, "prepaymentPercent": 0,
                                    "postpaymentPercent": 100, "termsDueDateAfterInvoicing": int(days > 0),
                                    "paymentType": index % 3, "enable": True})
        for name, address in content.LOCATIONS:
            simple("locations", {"name": name, "address": address, "enable": True})
        for name, tax_number in content.LEGAL_ENTITIES:
            simple("legalentities", {"name": name, "taxNumber": tax_number, "enable": True})
        for resource, fields in (("documentcustomfields", content.DOCUMENT_CUSTOM_FIELDS),
                                 ("itemcustomfields", content.ITEM_CUSTOM_FIELDS)):
            for name, kind, options in fields:
                moment = created()
                c.add(resource, {
                    "name": name, "type": kind, "required": kind == "select", "enable": True,
                    "options": [{"id": c.new_id("options"), "name": option, "code": code, "externalId": None,
                                 "externalIntegrationLog": None, "enable": True} for option, code in options],
                }, moment, updated(moment))
        # Precoro moved item categories to the item custom field "Category" (and is removing `category` from the
        # API): every item carries its category there. Dated without drawing from the random state, so the rest of
        # the company is the one the seed gave before.
        c.add("itemcustomfields", {
            "name": CATEGORY_FIELD, "type": "select", "required": False, "enable": True,
            "options": [{"id": c.new_id("options"), "name": name, "code": None, "externalId": None,
                         "externalIntegrationLog": None, "enable": True} for name in content.ITEM_CATEGORIES],
        }, before, before)
        for index, (first, last) in enumerate(content.USERS):
            email = "api@acme-sim.example" if index == 0 else f"{first.lower()}.{index}@acme-sim.example"
            user = simple("users", {"firstName": first, "lastName": last, "fullName": f"{first} {last}",
                                    "email": email, "enable": True, "roles": ["ROLE_BUYER", "ROLE_APPROVER"]})
            if index == 0:
                c.token_user_id = user.id
        locations = list(c.all("locations"))
        for index, name in enumerate(content.WAREHOUSES):
            simple("warehouses", {"name": name, "location": self._ref(locations[index % len(locations)], "name")})
        self.units(before, start, end)
        for index in range(suppliers):
            self.supplier(created(), index, end)
        for supplier in list(c.all("suppliers")):
            for _ in range(rng.randint(2, 6)):
                self.item(self._between(supplier.created, start), supplier, end)

    def units(self, before: datetime, start: datetime, end: datetime) -> None:
        """Units of measure, every line's `unit` among their codes. Dated, and a third of them edited during the
        simulated period, from their place in the list without drawing from the random state, so the rest of the
        company is the one the seed gave before."""
        count = len(content.UNITS_OF_MEASURE)
        for index, (name, code, enable) in enumerate(content.UNITS_OF_MEASURE):
            created = before + timedelta(days=7 * index, hours=9)
            edited = start + (end - start) * (index + 1) / (count + 1)
            updated = edited.replace(microsecond=0) if index % 3 == 1 else created
            self.company.add("units", {
                "name": name, "code": code, "enable": enable,
                "externalId": f"QB-UNIT-{index + 1:03d}" if enable and index % 2 == 0 else None,
                "externalIntegrationLog": None,
            }, created, updated)

    def supplier(self, moment: datetime, index: int, end: datetime) -> Record:
        c, rng = self.company, self.rng
        base = content.SUPPLIER_NAMES[index % len(content.SUPPLIER_NAMES)]
        name = base if index < len(content.SUPPLIER_NAMES) else f"{base} {index // len(content.SUPPLIER_NAMES)}"
        currency = rng.choice(list(content.EXCHANGE_RATES))
        currencies = sorted({currency, *rng.sample(list(content.EXCHANGE_RATES), rng.randint(0, 2))})
        terms = [self._ref(t, *PAYMENT_TERM_FIELDS) for t in rng.sample(list(c.all("paymentterms")), rng.randint(1, 2))]
        contacts = [{"id": c.new_id("contacts"), "name": f"{first} {last}",
                     "email": f"billing{n}@supplier{index}.example", "phone": f"+1-555-{index:04d}-{n}"}
                    for n, (first, last) in enumerate(rng.sample(content.USERS, rng.randint(1, 2)))]
        status = self._choose_status({2: 85, 1: 10, 3: 5})
        approved = self._later(moment, 48, end) if status == 2 else None
        return c.add("suppliers", {
            "name": name,
            "uniqueCode": f"SUP-{index + 1:05d}",
            "status": status,
            "statusString": content.SUPPLIER_STATUS_NAMES[status],
            "enable": status == 2 and rng.random() < 0.95,
            "currency": currency,
            "currencies": currencies,
            "taxPayer": True,
            "taxPayerNumber": f"TX{rng.randint(10**8, 10**9 - 1)}",
            "businessRegistrationNumber": f"BRN-{index + 1:06d}",
            "legalAddress": f"{index + 1} Market Street",
            **self._city(rng.choice(content.CITIES)),
            "country": rng.choice(content.COUNTRIES),
            "phone": f"+1-555-{index:04d}",
            "integrationStatus": 0,
            **self._supplier_detail_fields(index),
            **content.bank_details(rng, name),
            "paymentTerms": {"data": terms},
            "contacts": {"data": contacts},
            "supplierLegalEntities": {"data": [self._ref(e, "name") for e in rng.sample(
                list(c.all("legalentities")), rng.randint(1, 2))]},
            "externalId": f"QB-SUP-{index + 1:05d}" if rng.random() < 0.7 else None,
            "approvalDate": None,
        }, moment, self._later(moment, 24 * 30, end) if rng.random() < 0.3 else moment, approved)

    @staticmethod
    def _city(city: str) -> dict:
        state, postal_code = content.CITY_REGIONS[city]
        return {"city": city, "state": state, "postalCode": postal_code}

    def _supplier_detail_fields(self, index: int) -> dict:
        """The rest of what a supplier's detail carries (Precoro's own connector reads them): drawn from the
        supplier's number, not from the random source, so that every seed's company is otherwise unchanged."""
        users = self._list("users")
        us = index % 4 == 3
        tolerance = index % 5 == 0
        return {
            "creator": {"id": users[index % len(users)].id},
            "note": content.BUDGET_NOTES[index % len(content.BUDGET_NOTES)] if index % 3 == 0 else None,
            "conditions": "Delivery within 5 working days" if index % 4 == 1 else None,
            "deliveryPeriod": 3 + index % 10,
            "minimumSum": money(Decimal(50 * (index % 5))),
            "taxPayerType": 2 if us else 1,
            "taxPayerLabel": "EIN" if us else "VAT number",
            "enableToleranceRate": tolerance,
            "toleranceRatePercent": Decimal("2.5") if tolerance else Decimal(0),
            "dataSupplierCustomFields": {"data": [
                {"supplierCustomField": {"id": content.SUPPLIER_TIER_FIELD_ID},
                 "value": content.SUPPLIER_TIERS[index % len(content.SUPPLIER_TIERS)]}] if index % 2 == 0 else []},
        }

    def item(self, moment: datetime, supplier: Record, end: datetime) -> Record:
        c, rng = self.company, self.rng
        name, unit = rng.choice(content.ITEM_NAMES)
        category = content.ITEM_CATEGORIES.index(rng.choice(content.ITEM_CATEGORIES))
        return c.add("items", {
            "name": name,
            "sku": f"SKU-{rng.randint(10000, 99999)}",
            "price": money(Decimal(rng.randint(150, 250_000)) / 100),
            "type": 1 if unit != "service" else 2,
            "typeString": "product" if unit != "service" else "service",
            "description": f"{name} from {supplier.data['name']}",
            "category": {"id": category + 1, "name": content.ITEM_CATEGORIES[category]},
            "supplier": self._ref(supplier, "name"),
            "disabledBySupplier": False,
            "hiddenInCatalog": rng.random() < 0.05,
            "freeOfCharge": False,
            "dataProductCustomFields": {"data": [*self._line_custom_fields(), self._category_value(category)]},
            "externalId": f"QB-ITEM-{rng.randint(1000, 9999)}" if rng.random() < 0.5 else None,
        }, moment, self._later(moment, 24 * 60, end) if rng.random() < 0.2 else moment)

    # ---- document parts ----------------------------------------------------------------------------

    def _custom_field(self, resource: str, name: str) -> Record:
        version = self.company.versions[resource]
        cached = self._fields.get((resource, name))
        if cached is None or cached[0] != version:
            cached = (version, next(r for r in self._list(resource) if r.data["name"] == name))
            self._fields[(resource, name)] = cached
        return cached[1]

    def _option_value(self, field: Record) -> dict:
        key = "documentCustomField" if field.resource == "documentcustomfields" else "itemCustomField"
        return {key: {"id": field.id}, "value": str(self.rng.choice(field.data["options"])["id"])}

    def _category_value(self, category: int) -> dict:
        """The item custom field "Category" set to the option of `content.ITEM_CATEGORIES[category]`."""
        field = self._custom_field("itemcustomfields", CATEGORY_FIELD)
        option = next(o for o in field.data["options"] if o["name"] == content.ITEM_CATEGORIES[category])
        return {"itemCustomField": {"id": field.id}, "value": str(option["id"])}

    def _document_custom_fields(self) -> list[dict]:
        values = [self._option_value(self._custom_field("documentcustomfields", "Cost center"))]
        if self.rng.random() < 0.6:
            values.append(self._option_value(self._custom_field("documentcustomfields", "Project")))
        if self.rng.random() < 0.4:
            note = self._custom_field("documentcustomfields", "Budget note")
            values.append({"documentCustomField": {"id": note.id}, "value": self.rng.choice(content.BUDGET_NOTES)})
        return values

    def _line_custom_fields(self) -> list[dict]:
        values = [self._option_value(self._custom_field("itemcustomfields", "GL account"))]
        if self.rng.random() < 0.3:
            tag = self._custom_field("itemcustomfields", "Asset tag")
            values.append({"itemCustomField": {"id": tag.id}, "value": f"AT-{self.rng.randint(1000, 9999)}"})
        return values

    def _lines(self, supplier: Record, count: int) -> tuple[list[dict], dict]:
        """Line items and the document totals they add up to (net, tax and gross, exact to the cent)."""
        c, rng = self.company, self.rng
        items = self._items_of(supplier)
        taxes = self._list("taxes")
        lines: list[dict] = []
        tax_totals: dict = {}
        for _ in range(count):
            item = rng.choice(items)
            tax = rng.choice(taxes)
            quantity = Decimal(rng.choice([1, 1, 2, 3, 5, 10, 12])) if rng.random() < 0.9 else Decimal("2.5")
            price = money(Decimal(item.data["price"]) * Decimal(rng.randint(90, 110)) / 100)
            net = money(quantity * price)
            tax_sum = money(net * Decimal(tax.data["value"]) / 100)
            lines.append({
                "id": c.new_id("lines"),
                "item": self._ref(item, "name", "sku"),
                "name": item.data["name"],
                "sku": item.data["sku"],
                "unit": content.UNITS.get(item.data["name"], "pcs"),
                "quantity": quantity,
                "price": price,
                "netSum": net,
                "taxSum": tax_sum,
                "sum": net + tax_sum,
                "tax": self._ref(tax, "name", "value"),
                "dataItemCustomFields": {"data": self._line_custom_fields()},
            })
            entry = tax_totals.setdefault(tax.id, {"tax": self._ref(tax, "name", "value"), "sum": Decimal("0.00")})
            entry["sum"] += tax_sum
        net = sum((line["netSum"] for line in lines), Decimal("0.00"))
        gross = sum((line["sum"] for line in lines), Decimal("0.00"))
        return lines, {"netSum": net, "sum": gross, "taxes": {"data": list(tax_totals.values())}}

    def _attachments(self, title: str) -> list[dict]:
        if self.rng.random() >= 0.2:
            return []
        files = []
        for n in range(self.rng.randint(1, 2)):
            attachment_id = self.company.new_id("attachments")
            if n == 0:
                name, mime, data = f"{title}.pdf", "application/pdf", content.pdf_bytes(title)
            else:
                rgb = (self.rng.randint(0, 255), self.rng.randint(0, 255), self.rng.randint(0, 255))
                name, mime, data = f"{title} scan.png", "image/png", content.png_bytes(8, 8, rgb)
            self.company.attachments[attachment_id] = Attachment(attachment_id, name, mime, data)
            files.append({"id": attachment_id, "name": name, "fileName": name, "mimeType": mime, "size": len(data)})
        return files

    def approval_steps(self, status: int, approved: datetime | None) -> list[dict]:
        users = self._list("users")
        steps = []
        for step_number in range(1, self.rng.randint(1, 2) + 1):
            user = self.rng.choice(users)
            if status in (1, 10):
                step_status, when = 0, None
            elif status == 3:
                step_status, when = 2, None
            else:
                step_status, when = 1, iso(approved) if approved else None
            steps.append({"id": self.company.new_id("approvalsteps"), "step": step_number,
                          "user": {"id": user.id, "fullName": user.data["fullName"]},
                          "status": step_status, "approvalDate": when})
        return steps

    def _document(self, resource: str, created: datetime, end: datetime, supplier: Record, status: int,
                  extra: dict, line_count: int) -> Record:
        """A document with everything documents share: sums, currency, lines, custom fields, files."""
        c, rng = self.company, self.rng
        approved = self._later(created, 72, end) if status in (2, 4, 5, 9, 11) else None
        updated = self._later(approved or created, 72, end) if rng.random() < 0.5 else (approved or created)
        currency = supplier.data["currency"]
        rate = content.EXCHANGE_RATES[currency]
        lines, totals = self._lines(supplier, line_count)
        location = self._pick("locations")
        data = {
            "status": status,
            "statusString": content.STATUS_NAMES[status],
            "currency": currency,
            "exchangeRate": content.exchange_rate(currency, iso(created)),
            "sum": totals["sum"],
            "netSum": totals["netSum"],
            "sumInCompanyCurrency": money(totals["sum"] * rate),
            "netSumInCompanyCurrency": money(totals["netSum"] * rate),
            "supplier": self._ref(supplier, "name"),
            "location": self._ref(location, "name"),
            "legalEntity": self._ref(self._pick("legalentities"), "name"),
            "creator": {"id": self._pick("users").id},
            "requiredDate": iso(created + timedelta(days=rng.randint(3, 45))),
            **extra,
            "externalId": None,
            "externalIntegrationLog": None,
            "items": {"data": lines},
            "taxes": totals["taxes"],
            "dataDocumentCustomFields": {"data": self._document_custom_fields()},
            "attachments": {"data": []},
            "approvalSteps": {"data": self.approval_steps(status, approved)},
        }
        record = c.add(resource, data, created, updated, approved)
        record.data["attachments"]["data"] = self._attachments(f"{resource[:-1]} {record.data['idn']}")
        return record

    # ---- documents ------------------------------------------------------------------------------

    def purchase_requisition(self, created: datetime, end: datetime) -> Record:
        status = self._choose_status({2: 55, 1: 20, 3: 8, 8: 7, 11: 10})
        return self._document("purchaserequisitions", created, end, self._pick("suppliers"), status,
                              {"description": self.rng.choice(content.BUDGET_NOTES)}, self.rng.randint(1, 3))

    def purchase_order(self, created: datetime, end: datetime, requisition: Record | None = None) -> Record:
        status = self._choose_status({2: 55, 1: 15, 11: 10, 8: 5, 3: 5, 7: 5, 0: 5})
        supplier = (self.company.get_by_id("suppliers", requisition.data["supplier"]["id"])
                    if requisition else None) or self._pick("suppliers")
        payment_term = self._pick("paymentterms")
        extra = {
            "issueDate": iso(created),
            "deliveryAddress": self._pick("locations").data["address"],
            "paymentTerm": self._ref(payment_term, "name"),
            "purchaseRequisition": ({"id": requisition.id, "idn": requisition.data["idn"]} if requisition else None),
            "integrationStatus": 0,
        }
        return self._document("purchaseorders", created, end, supplier, status, extra, self.rng.randint(1, 5))

    def receipt(self, created: datetime, end: datetime, purchase_order: Record,
                lines: dict[int, Decimal] | None = None) -> Record:
        """A goods receipt for an approved PO: every line received in full unless `lines` says otherwise."""
        c = self.company
        status = self._choose_status({2: 85, 1: 15}) if lines is None else 2
        approved = self._later(created, 24, end) if status == 2 else None
        received = []
        for po_line in purchase_order.data["items"]["data"]:
            quantity = lines.get(po_line["id"], Decimal(0)) if lines is not None else po_line["quantity"]
            if quantity:
                received.append({"id": c.new_id("lines"), "purchaseOrderItem": {"id": po_line["id"]},
                                 "item": dict(po_line["item"]), "name": po_line["name"], "quantity": quantity,
                                 "price": po_line["price"], "sum": money(quantity * po_line["price"]),
                                 # the ordered line's custom field values (its GL account) go with it
                                 "dataItemCustomFields": copy.deepcopy(po_line.get("dataItemCustomFields", {"data": []}))})
        data = {
            "status": status,
            "statusString": content.STATUS_NAMES[status],
            "purchaseOrder": {"id": purchase_order.id, "idn": purchase_order.data["idn"]},
            "supplier": dict(purchase_order.data["supplier"]),
            "location": dict(purchase_order.data["location"]),
            "currency": purchase_order.data["currency"],
            "sum": sum((line["sum"] for line in received), Decimal("0.00")),
            "externalId": None,
            "externalIntegrationLog": None,
            "items": {"data": received},
            "dataDocumentCustomFields": {"data": []},
            "attachments": {"data": []},
            "approvalSteps": {"data": []},
        }
        return c.add("receipts", data, created, approved or created, approved)

    def invoice(self, created: datetime, end: datetime, purchase_order: Record | None = None,
                status: int | None = None, logic_type: int = 0) -> Record:
        rng = self.rng
        if status is None:
            status = self._choose_status({2: 60, 1: 12, 3: 4, 8: 4, 0: 5, 6: 5, 10: 5, 11: 5})
        billed = purchase_order.data["supplier"]["id"] if purchase_order else None
        supplier = (self.company.get_by_id("suppliers", billed) if billed else None) or self._pick("suppliers")
        payment_term = self._pick("paymentterms")
        extra = {
            "logicType": logic_type,
            "invoiceNumber": f"{(supplier.data['uniqueCode'] or str(supplier.id))[-3:]}/{created:%Y}/"
                             f"{rng.randint(1, 99999):05d}",
            "customName": rng.choice(content.BUDGET_NOTES) if rng.random() < 0.3 else None,
            "sumPaid": "0.00",
            "sumPaidInCompanyCurrency": "0.00",
            "withholdingTaxSum": "0.00",
            "issueDate": iso(created - timedelta(days=rng.randint(0, 5))),
            "creditPeriodDays": payment_term.data["creditPeriodDays"],
            "paymentTerm": self._ref(payment_term, "name"),
            "note": rng.choice(content.BUDGET_NOTES) if rng.random() < 0.3 else None,
            "purchaseOrder": ({"id": purchase_order.id, "idn": purchase_order.data["idn"]}
                              if purchase_order else None),
            "parentData": None,
            "integrationStatus": 0,
            "payments": {"data": []},
            **self._invoice_detail_fields(created, status, payment_term),
            **self._approval_settings(),
            "isRequiredTaxesForItems": True,
            "qboId": None,  # Precoro's own QuickBooks integration's id (set when the history links it)
            "xeroId": None,  # the simulated company keeps its books in QuickBooks, not Xero
        }
        lines = rng.randint(1, 4)
        return self._document("invoices", created, end, supplier, status, extra, lines)

    def expense(self, created: datetime, end: datetime) -> Record:
        """An employee's expense: fields as an invoice's plus `expenseNumber`; paid through `expensePayments`
        (whose `sumPaid` is a number, unlike an invoice's)."""
        rng = self.rng
        status = self._choose_status({2: 55, 5: 20, 1: 15, 3: 5, 8: 5})
        payment_term = self._pick("paymentterms")
        extra = {
            "expenseNumber": f"EXP-{created:%Y}-{rng.randint(1, 99999):05d}",
            "customName": rng.choice(content.BUDGET_NOTES) if rng.random() < 0.3 else None,
            "sumPaid": Decimal("0.00"),
            "issueDate": iso(created),
            "creditPeriodDays": payment_term.data["creditPeriodDays"],
            "paymentTerm": self._ref(payment_term, "name"),
            "note": rng.choice(content.BUDGET_NOTES) if rng.random() < 0.3 else None,
            "integrationStatus": 0,
            "expensePayments": {"data": []},
            **self._invoice_detail_fields(created, status, payment_term),
            **self._approval_settings(),
            "sumPaidInCompanyCurrency": Decimal("0.00"),  # numbers on expenses, as sumPaid is
            "withholdingTaxSum": Decimal("0.00"),
            "qboId": None,
        }
        record = self._document("expenses", created, end, self._pick("suppliers"), status, extra,
                                rng.randint(1, 2))
        if status == 5:
            total = Decimal(str(record.data["sum"]))
            when = record.approved or created
            record.data["expensePayments"]["data"].append({
                "id": self.company.new_id("payments"), "sumPaid": total, "payDate": iso(when),
                "currency": record.data["currency"], "status": 2, "statusString": content.STATUS_NAMES[2]})
            record.data["sumPaid"] = total
            record.data["sumPaidInCompanyCurrency"] = record.data["sumInCompanyCurrency"]
        if status == 5 or status in (2, 4, 11) and record.id % 2 == 0:  # booked in QuickBooks by Precoro itself
            record.data["qboId"] = str(9000 + record.id % 100_000)
        record.data["lastEditor"] = {"id": record.data["creator"]["id"]}
        return record

    @staticmethod
    def _approval_settings() -> dict:
        """How the document is approved and how much of its tax counts against a budget (the simulator's values:
        Precoro's own connector only says approvingWay is an object, a list or a text, and the share a text)."""
        return {"approvingWay": "workflow", "usedTaxPercentInBudget": "100"}

    def _invoice_detail_fields(self, created: datetime, status: int, payment_term: Record) -> dict:
        """The rest of what Precoro's own connector reads from an invoice's (or expense's) detail."""
        rng = self.rng
        approved = status in (2, 4, 5, 9, 11)
        return {
            "updateExchangeRateDate": iso(created),
            "precisionData": {"sum": 2, "price": 2, "quantity": 4},
            "fromSupplier": rng.random() < 0.1,
            "deliveryNote": f"DN-{rng.randint(1000, 9999)}" if rng.random() < 0.4 else None,
            "toleranceRateSum": "0.00",
            "toleranceRatePercent": "0",
            "prepaymentPercent": payment_term.data["prepaymentPercent"],
            "postpaymentPercent": payment_term.data["postpaymentPercent"],
            "approvalStep": None,
            "company": dict(self.reference),
            "budgetedSum": money(Decimal(rng.randint(1000, 90000))) if rng.random() < 0.4 else None,
            "allDocumentCustomFieldOptionsIds": "",
            "budget": None,
            "budgetLine": None,
            "secondInCharge": None,
            "lastApprover": self._ref(self._pick("users"), "fullName") if approved else None,
            "comments": {"data": []},
            "followers": {"data": []},
            "relatedOcrAttachment": None,
            "allocatedInvoice": None,
            "contracts": {"data": []},
            "isBudgetOverLimit": False,
        }

    def split_children(self, base: Record, created: datetime) -> list[Record]:
        """Two split-cost children of `base`, as Precoro makes them: allocations of its cost (half each, the second
        taking the rounding) that add up to it line by line. The base is the document that is paid and exported."""
        first_lines: list[dict] = []
        second_lines: list[dict] = []
        for line in base.data["items"]["data"]:
            half = {name: money(Decimal(str(line[name])) / 2) for name in ("netSum", "taxSum")}
            rest = {name: money(Decimal(str(line[name])) - half[name]) for name in ("netSum", "taxSum")}
            for lines, part in ((first_lines, half), (second_lines, rest)):
                lines.append({**copy.deepcopy(line), "id": self.company.new_id("lines"),
                              "quantity": Decimal(str(line["quantity"])) / 2, **part,
                              "sum": part["netSum"] + part["taxSum"]})
        rate = Decimal(str(base.data["exchangeRate"]["rate"]))
        children = []
        for lines in (first_lines, second_lines):
            total = sum((line["sum"] for line in lines), Decimal("0.00"))
            net = sum((line["netSum"] for line in lines), Decimal("0.00"))
            data = {k: copy.deepcopy(v) for k, v in base.data.items()
                    if k not in ("id", "idn", "createDate", "updateDate", "approvalDate")}
            data.update({
                "sum": total, "netSum": net, "sumInCompanyCurrency": money(total * rate),
                "netSumInCompanyCurrency": money(net * rate), "sumPaid": "0.00", "sumPaidInCompanyCurrency": "0.00",
                "items": {"data": lines}, "taxes": {"data": []}, "payments": {"data": []},
                "attachments": {"data": []}, "parentData": {"id": base.id, "idn": base.data["idn"]},
                "externalId": None, "externalIntegrationLog": None,
            })
            children.append(self.company.add("invoices", data, created, approved=base.approved and created))
        return children

    def payment_plan(self, invoice: Record, end: datetime) -> list[tuple[datetime, Decimal]]:
        """When and how much of an approved invoice gets paid inside Precoro during the history."""
        if invoice.data["status"] != 2 or invoice.data["logicType"] != 0 or invoice.approved is None:
            return []
        roll = self.rng.random()
        total = Decimal(str(invoice.data["sum"]))
        if roll < 0.45:
            amounts = [total] if self.rng.random() < 0.7 else [money(total * Decimal("0.4")), None]
        elif roll < 0.6:
            amounts = [money(total * Decimal(self.rng.randint(10, 80)) / 100)]
        else:
            return []
        plan: list[tuple[datetime, Decimal]] = []
        moment: datetime = invoice.approved
        for amount in amounts:
            moment = moment + timedelta(hours=self.rng.randint(2, 24 * 20))
            if moment >= end:
                break
            paid_so_far = sum((a for _, a in plan), Decimal(0))
            plan.append((moment, amount if amount is not None else total - paid_so_far))
        return plan

    # ---- the initial history ---------------------------------------------------------------------------

    def populate(self, days: int, documents: int, end: datetime) -> None:
        """Reference data plus about `documents` documents created over the `days` days before `end`."""
        rng = self.rng
        start = end - days * DAY
        self.reference_data(max(12, min(3000, documents // 30)), start, end)

        def moments(count: int) -> list[datetime]:
            return sorted(self._between(start, end - timedelta(seconds=1)) for _ in range(count))

        for created in moments(round(documents * 0.15)):
            self.purchase_requisition(created, end)
        requisitions = [r for r in self.company.all("purchaserequisitions") if r.data["status"] == 2]
        for created in moments(round(documents * 0.30)):
            earlier = [r for r in requisitions[-20:] if r.created < created]
            self.purchase_order(created, end, rng.choice(earlier) if earlier and rng.random() < 0.3 else None)
        approved_orders = [po for po in self.company.all("purchaseorders") if po.data["status"] == 2]
        receipts: list[tuple[datetime, Record]] = []
        for po in approved_orders:
            if po.approved is not None and rng.random() < 0.35:
                received = po.approved + timedelta(hours=rng.randint(4, 24 * 10))
                if received < end:
                    receipts.append((received, po))
        for received, po in sorted(receipts, key=lambda pair: pair[0]):
            self.receipt(received, end, po)
        payments = []
        for created in moments(round(documents * 0.30)):
            earlier = [po for po in approved_orders[-30:] if po.created < created]
            purchase_order = rng.choice(earlier) if earlier and rng.random() < 0.7 else None
            logic_type = rng.choice([1, 5]) if rng.random() < 0.05 else 0
            invoice = self.invoice(created, end, purchase_order, logic_type=logic_type)
            payments += [(moment, amount, invoice) for moment, amount in self.payment_plan(invoice, end)]
            if rng.random() < 0.03 and logic_type == 0:  # split cost: two children allocate this invoice's cost
                child_created = min(created + timedelta(minutes=1), end - timedelta(seconds=1))
                self.split_children(invoice, child_created)
        for created in moments(round(documents * 0.05)):
            self.expense(created, end)
        for moment, amount, invoice in sorted(payments, key=lambda entry: (entry[0], entry[2].id)):
            self.company.record_payment(invoice, amount, pay_date=moment, created=moment)
        self._link_some_to_accounting()

    def _link_some_to_accounting(self) -> None:
        """Part of the history is already synced with the accounting system (externalId set), a few failed."""
        for resource, prefix in (("invoices", "QB-BILL"), ("purchaseorders", "QB-PO"), ("payments", "QB-PAY")):
            for record in self.company.all(resource):
                if record.data.get("status") in (2, 4, 5, 11) and self.rng.random() < 0.4:
                    record.data["externalId"] = f"{prefix}-{record.id}"
                    if "qboId" in record.data:  # linked by Precoro's own QuickBooks integration, too
                        record.data["qboId"] = str(record.id % 100_000)
                    if "integrationStatus" in record.data:
                        record.data["integrationStatus"] = 1
                elif record.data.get("status") == 2 and self.rng.random() < 0.05:
                    record.data["externalIntegrationLog"] = "Vendor not found in accounting system"

    # ---- a company that lives ---------------------------------------------------------------------------

    def create_like(self, resource: str, created: datetime) -> Record | None:
        """A new record of `resource` (used by tick and by the shift_rows fault)."""
        c = self.company
        end = created  # nothing about a record created now happens later than now
        builders: dict[str, Callable[[], Record | None]] = {
            "purchaserequisitions": lambda: self.purchase_requisition(created, end),
            "purchaseorders": lambda: self.purchase_order(created, end),
            "invoices": lambda: self.invoice(created, end),
            "expenses": lambda: self.expense(created, end),
            "receipts": lambda: self._receipt_for_any(created, end),
            "payments": lambda: self._payment_for_any(created),
            "suppliers": lambda: self.supplier(created, len(c.records["suppliers"]), end),
            "items": lambda: self.item(created, self._pick("suppliers"), end),
        }
        builder = builders.get(resource)
        if builder is not None:
            return builder()
        template = self._pick(resource)
        data = {k: v for k, v in c.detail(template).items() if k not in ("id", "createDate", "updateDate")}
        data["name"] = f"{data.get('name', resource)} (new)"
        return c.add(resource, data, created)

    def _receipt_for_any(self, created: datetime, end: datetime) -> Record | None:
        orders = [po for po in self.company.all("purchaseorders") if po.data["status"] == 2]
        return self.receipt(created, end, self.rng.choice(orders)) if orders else None

    def _payable_invoices(self) -> list[Record]:
        return [i for i in self.company.all("invoices")
                if i.data["status"] in (2, 4) and i.data["logicType"] == 0 and not i.data.get("parentData")]

    def _payment_for_any(self, created: datetime) -> Record | None:
        invoices = self._payable_invoices()
        if not invoices:
            return None
        invoice = self.rng.choice(invoices[-200:])
        due = Decimal(str(invoice.data["sum"])) - Decimal(invoice.data["sumPaid"])
        return self.company.record_payment(invoice, due, pay_date=created, created=created)

    def tick(self, events: int) -> list[Change]:
        """`events` things happen in the company right now: documents created, edited, approved, paid."""
        c, rng = self.company, self.rng
        now = c.now()
        changes: list[Change] = []
        actions = ["create", "create", "edit", "approve", "pay", "supplier"]
        for _ in range(events):
            action = rng.choice(actions)
            if action == "create":
                resource = rng.choice(["purchaseorders", "invoices", "purchaserequisitions", "expenses"])
                created = self.create_like(resource, now)
                if created is not None:
                    changes.append(Change(resource, created.key, "created"))
            elif action == "edit":
                resource = rng.choice(["purchaseorders", "invoices"])
                record = rng.choice(list(c.all(resource))[-300:])
                record.data["requiredDate"] = iso(now + timedelta(days=rng.randint(1, 30)))
                record.data["dataDocumentCustomFields"]["data"] = self._document_custom_fields()
                c.touch(record, now)
                changes.append(Change(resource, record.key, "updated"))
            elif action == "approve":
                pending = [r for res in ("purchaseorders", "invoices", "purchaserequisitions")
                           for r in c.all(res) if r.data["status"] == 1]
                if pending:
                    record = rng.choice(pending)
                    c.approve(record)
                    changes.append(Change(record.resource, record.key, "approved"))
            elif action == "pay":
                invoices = self._payable_invoices()
                if invoices:
                    invoice = rng.choice(invoices[-300:])
                    due = Decimal(str(invoice.data["sum"])) - Decimal(invoice.data["sumPaid"])
                    amount = due if rng.random() < 0.7 else money(due / 2) or due
                    payment = c.record_payment(invoice, amount, pay_date=now, created=now)
                    changes.append(Change("payments", payment.key, "created"))
                    changes.append(Change("invoices", invoice.key, "paid", {"sumPaid": invoice.data["sumPaid"]}))
            else:
                supplier = self._pick("suppliers")
                contacts = supplier.data["contacts"]["data"]
                if not contacts:  # e.g. created through the API without any
                    contacts.append({"id": c.new_id("contacts"), "name": "Accounts payable",
                                     "email": f"ap@supplier{supplier.id}.example", "phone": None})
                contacts[0]["phone"] = f"+1-555-{rng.randint(1000, 9999)}"
                c.touch(supplier, now)
                changes.append(Change("suppliers", supplier.key, "updated"))
        return changes


def build_company(seed: int, days: int, documents: int, end: datetime | None = None,
                  clock: Callable[[], datetime] | None = None,
                  reference: dict | None = None) -> tuple[Company, CompanyBuilder]:
    """The company a seed describes, with its documents dated over the `days` days before today (`reference`: how
    its documents name it, {"id", "name"}; company 1's by default)."""
    company = Company(clock)
    builder = CompanyBuilder(company, random.Random(seed), reference)
    # Building allocates millions of small, long-lived containers and no garbage cycles: the cyclic
    # collector would rescan the growing heap again and again (it more than doubles the time at 100k).
    collecting = gc.isenabled()
    gc.disable()
    try:
        builder.populate(days, documents, end or start_of_today())
    finally:
        if collecting:
            gc.enable()
    return company, builder
