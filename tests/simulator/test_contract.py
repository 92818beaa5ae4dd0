"""The contract's general rules: pagination, list rows versus details, keys, authentication, validation,
and the writes (PATCH externalId on every entity, suppliers, items, form-encoded bodies only)."""

from __future__ import annotations

import pytest

from tests.simulator.sim_harness import (
    DOCUMENTS,
    REFERENCE,
    RESOURCES,
    WITH_DETAIL,
    in_plain_list,
    is_collection,
    key_of,
    modified_since_text,
    moment,
    whole_second_now,
)

# ---- pagination --------------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", RESOURCES)
def test_walking_a_list_page_by_page_returns_every_record_exactly_once(api, resource):
    expected = sorted(api.listed(resource))  # invoices: credit notes are listed apart
    assert expected, f"no {resource} generated"

    for per_page in (10, 200):
        keys = api.keys(resource, per_page=per_page)  # checks the envelope on every page

        assert len(keys) == len(set(keys)), f"{resource}: a record served twice with per_page={per_page}"
        assert sorted(keys) == expected


@pytest.mark.parametrize("resource", [r for r in REFERENCE if r != "taxes"])  # taxes may come without dates
def test_a_reference_list_filtered_by_modified_since_lists_exactly_the_records_changed_since(api, resource):
    updated = {key: moment(record["updateDate"]) for key, record in api.exported(resource).items()}
    since = sorted(updated.values())[len(updated) // 2]
    expected = sorted(key for key, when in updated.items() if when >= since)
    assert 0 < len(expected) < len(updated), f"{resource}: some records changed since, some not"

    for per_page in (10, 200):
        assert sorted(api.keys(resource, [("modifiedSince", modified_since_text(since))], per_page)) == expected


def test_units_have_the_fields_the_contract_lists(api):
    rows = api.walk("units", per_page=10)

    assert len(rows) > 10, "more than a page of units"
    for row in rows:
        assert {"id", "name", "code", "enable", "externalId", "createDate", "updateDate"} <= set(row)


@pytest.mark.parametrize("per_page", [10, 20, 50, 100, 200])
def test_every_documented_page_size_is_honoured(api, per_page):
    body = api.page("invoices", 1, per_page)

    assert body["meta"]["pagination"]["per_page"] == per_page
    assert len(body["data"]) == min(per_page, body["meta"]["pagination"]["total"])


def test_a_page_past_the_end_is_empty_but_well_formed(api):
    first = api.page("suppliers", 1, 10)
    last_page = first["meta"]["pagination"]["total_pages"]

    beyond = api.page("suppliers", last_page + 1, 10)

    assert beyond["data"] == []
    assert beyond["meta"]["pagination"]["has_next_page"] is False
    assert beyond["meta"]["pagination"]["total"] == first["meta"]["pagination"]["total"]


def test_the_first_page_is_page_one_by_default(api):
    default = api.ok("GET", "/invoices", params={"per_page": 10})
    assert default == api.page("invoices", 1, 10)


# ---- list rows and details -----------------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["purchaserequisitions", "purchaseorders", "receipts", "invoices", "expenses"])
def test_list_rows_are_headers_and_details_are_bare_objects_with_wrapped_collections(api, resource):
    rows = api.page(resource, 1, 20)["data"]
    assert rows
    # invoice list rows carry their document custom field values (Precoro's connector filters on them)
    in_rows = {"dataDocumentCustomFields"} if resource in ("invoices", "expenses") else set()
    for row in rows:
        assert "items" not in row, "a list row is the header only: no line items"
        assert {name for name, value in row.items() if is_collection(value)} == in_rows

    detail = api.detail(resource, rows[0]["idn"])

    assert "data" not in detail and "meta" not in detail, "a detail is the bare object"
    assert detail["idn"] == rows[0]["idn"] and detail["id"] == rows[0]["id"]
    assert is_collection(detail["items"]) and detail["items"]["data"]
    for name in ("dataDocumentCustomFields", "attachments", "approvalSteps"):
        assert is_collection(detail[name]), name
    if resource == "invoices":
        assert is_collection(detail["payments"]) and is_collection(detail["taxes"])
    if resource == "expenses":
        assert is_collection(detail["expensePayments"]) and "expenseNumber" in detail


def test_an_invoice_has_the_fields_the_contract_lists(api):
    invoice = api.detail("invoices", api.page("invoices", 1, 10)["data"][0]["idn"])
    fields = ("id idn status statusString logicType invoiceNumber sum netSum sumPaid currency exchangeRate "
              "sumInCompanyCurrency issueDate requiredDate supplier purchaseOrder location legalEntity paymentTerm "
              "externalId externalIntegrationLog integrationStatus items taxes payments dataDocumentCustomFields "
              "attachments parentData createDate updateDate approvalDate creditPeriodDays sumPaidInCompanyCurrency "
              "netSumInCompanyCurrency withholdingTaxSum customName note "
              # the rest of what Precoro's own connector reads from an invoice's detail
              "approvalDate updateExchangeRateDate precisionData fromSupplier deliveryNote toleranceRateSum "
              "toleranceRatePercent prepaymentPercent postpaymentPercent approvalStep company budgetedSum "
              "allDocumentCustomFieldOptionsIds budget budgetLine creator secondInCharge lastApprover comments "
              "followers relatedOcrAttachment allocatedInvoice contracts isBudgetOverLimit").split()

    assert [name for name in fields if name not in invoice] == []
    assert "dueDate" not in invoice  # real invoices have none: the due date is issueDate + creditPeriodDays
    assert isinstance(invoice["exchangeRate"], dict) and "rate" in invoice["exchangeRate"]
    assert isinstance(invoice["sum"], int | float) and isinstance(invoice["sumPaid"], str)
    assert set(invoice["supplier"]) >= {"id", "name"}


def test_a_payment_a_supplier_and_an_item_have_the_fields_the_contract_lists(api):
    expected = {
        "payments": "id idn invoice sumPaid payDate currency logicType externalId createDate updateDate",
        "suppliers": "id name uniqueCode status enable currency currencies paymentTerms contacts externalId "
                     "createDate updateDate approvalDate taxPayerNumber supplierLegalEntities "
                     "internationalBankAccountNumber",
        # `category` is leaving the API: the item custom field "Category" holds it (see test_shapes.py)
        "items": "id name sku price supplier dataProductCustomFields externalId createDate updateDate",
    }
    for resource, names in expected.items():
        record = api.detail(resource, api.page(resource, 1, 10)["data"][0][key_of(resource)])
        assert [name for name in names.split() if name not in record] == [], resource
    row = api.page("suppliers", 1, 10)["data"][0]
    # a list row is partial, as Precoro's own connector found: payment terms and contacts come with the detail
    assert "paymentTerms" not in row and "contacts" not in row and isinstance(row["currencies"], list)
    supplier = api.detail("suppliers", row["id"])
    assert is_collection(supplier["paymentTerms"]) and is_collection(supplier["contacts"])


def test_dates_are_iso_8601_with_an_offset(api):
    for resource in ("invoices", "suppliers", "payments"):
        for row in api.page(resource, 1, 50)["data"]:
            for name in ("createDate", "updateDate"):
                assert moment(row[name]).utcoffset() is not None
                assert row[name][10] == "T"


# ---- keys ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", DOCUMENTS)
def test_documents_are_addressed_by_idn_and_their_numeric_id_is_not_found(api, resource):
    records = api.export(resource)
    idns = {str(r["idn"]) for r in records}
    record = records[len(records) // 2]
    assert str(record["id"]) not in idns

    assert api.detail(resource, record["idn"])["id"] == record["id"]
    response = api.get(f"/{resource}/{record['id']}")

    assert response.status_code == 404
    assert "error" in response.json()


@pytest.mark.parametrize("resource", ["suppliers", "items"])
def test_reference_data_is_addressed_by_id(api, resource):
    record = api.export(resource)[-1]

    assert api.detail(resource, record["id"]) == record
    assert api.get(f"/{resource}/999999999").status_code == 404


def test_a_detail_exists_only_where_the_contract_has_one(api):
    for resource in set(RESOURCES) - set(WITH_DETAIL):
        some_id = api.export(resource)[0]["id"]
        assert api.get(f"/{resource}/{some_id}").status_code in (404, 405), resource


# ---- authentication and validation -----------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {"X-AUTH-TOKEN": "simtok_not-the-right-one"},
    {"X-AUTH-TOKEN": None},
    {"email": "someone.else@acme-sim.example"},
    {"email": None},
], ids=["wrong token", "no token", "wrong email", "no email"])
def test_bad_credentials_get_a_401_with_an_error_message(api, headers):
    sent = {**api.headers, **headers}
    sent = {name: value for name, value in sent.items() if value is not None}

    with api.client() as client:
        response = client.get("/invoices", headers=sent)

    assert response.status_code == 401
    assert isinstance(response.json()["error"], str) and response.json()["error"]


def test_at_most_200_external_ids_may_be_asked_for(api):
    two_hundred = [("external_id[]", f"QB-{n}") for n in range(200)]

    assert api.get("/suppliers", params=two_hundred).status_code == 200
    response = api.get("/suppliers", params=two_hundred + [("external_id[]", "QB-200")])

    assert response.status_code == 400
    errors = response.json()["errors"]["errors"]
    assert isinstance(errors, dict) and all(isinstance(m, str) for m in errors.values())


@pytest.mark.parametrize("params", [
    {"modifiedSince": "10.08.2025"},
    {"approvalDate[left_date]": "2025-08-10"},
    {"status[]": "approved"},
], ids=["modifiedSince not ISO", "date filter not dd.mm.yyyy", "status not a number"])
def test_a_malformed_filter_is_a_400_in_the_validation_shape(api, params):
    response = api.get("/invoices", params=params)

    assert response.status_code == 400
    assert list(response.json()) == ["errors"] and list(response.json()["errors"]) == ["errors"]


def test_unknown_routes_and_records_are_404(api):
    assert api.get("/nosuchresource").status_code == 404
    assert api.get("/invoices/999999").status_code == 404


# ---- PATCH externalId / externalIntegrationLog on every entity --------------------------------------------

PATCHABLE = ["purchaseorders", "invoices", "payments", "suppliers", "items", "taxes", "paymentterms",
             "locations", "legalentities"]


def _read_back(api, resource: str, key: str) -> dict:
    if resource in WITH_DETAIL:
        return api.detail(resource, key)
    return next(row for row in api.walk(resource) if str(row["id"]) == key)


@pytest.mark.parametrize("resource", PATCHABLE)
def test_patching_external_fields_works_on_the_entity_and_moves_its_update_date(api, resource):
    record = api.export(resource)[0]
    key = str(record[key_of(resource)])
    since = whole_second_now()
    dated = resource != "taxes"  # Precoro may send taxes without dates; modifiedSince still finds the change
    assert not dated or moment(record["updateDate"]) < since
    log = 'Vendor "Müller & Co" not found; retry'

    response = api.http.patch(f"/{resource}/{key}", data={"externalId": f"ERP-{resource}-1",
                                                          "externalIntegrationLog": log})

    assert response.status_code == 200, response.text
    after = _read_back(api, resource, key)
    assert after["externalId"] == f"ERP-{resource}-1"
    assert after["externalIntegrationLog"] == log
    assert not dated or moment(after["updateDate"]) >= since
    assert dated or "updateDate" not in after
    assert key in api.keys(resource, [("modifiedSince", modified_since_text(since))])

    # the log is cleared by sending it empty (no error any more), the externalId stays
    assert api.http.patch(f"/{resource}/{key}", data={"externalIntegrationLog": ""}).status_code == 200
    cleared = _read_back(api, resource, key)
    assert not cleared["externalIntegrationLog"] and cleared["externalId"] == f"ERP-{resource}-1"


@pytest.mark.parametrize("resource", ["documentcustomfields", "itemcustomfields"])
def test_patching_a_custom_field_option_moves_the_fields_update_date(api, resource):
    field = next(f for f in api.export(resource) if f["options"])
    option = field["options"][-1]
    since = whole_second_now()
    assert moment(field["updateDate"]) < since

    response = api.http.patch(f"/{resource}/{field['id']}/options/{option['id']}",
                              data={"externalId": "GL-6000-Ü", "externalIntegrationLog": "no such account"})

    assert response.status_code == 200, response.text
    after = next(f for f in api.walk(resource) if f["id"] == field["id"])
    patched = next(o for o in after["options"] if o["id"] == option["id"])
    assert patched["externalId"] == "GL-6000-Ü"
    assert {k: v for k, v in patched.items() if k not in ("externalId", "externalIntegrationLog")} == \
        {k: v for k, v in option.items() if k not in ("externalId", "externalIntegrationLog")}
    assert moment(after["updateDate"]) >= since
    assert api.keys(resource, [("modifiedSince", modified_since_text(since))]) == [str(field["id"])]


def test_patch_is_refused_where_the_contract_has_none(api):
    receipt = api.export("receipts")[0]
    assert api.http.patch(f"/receipts/{receipt['idn']}", data={"externalId": "X"}).status_code in (404, 405)


def test_patch_with_an_unknown_field_is_a_400(api):
    supplier = api.export("suppliers")[0]

    response = api.http.patch(f"/suppliers/{supplier['id']}", data={"name": "Renamed"})

    assert response.status_code == 400
    assert api.detail("suppliers", supplier["id"])["name"] == supplier["name"]


# ---- suppliers and items: create and replace -------------------------------------------------------------


def test_creating_and_replacing_a_supplier(api):
    name = 'Bäckerei "Zum Löwen" & Söhne'
    created = api.http.post("/suppliers", data={"name": name, "currency": "EUR", "currencies[]": ["EUR", "USD"],
                                               "externalId": "QB-V-1"})

    assert created.status_code == 200, created.text
    supplier_id = created.json()["id"]
    assert isinstance(supplier_id, int)
    stored = api.detail("suppliers", supplier_id)
    assert stored["name"] == name and sorted(stored["currencies"]) == ["EUR", "USD"]
    assert str(supplier_id) in api.keys("suppliers")

    since = whole_second_now()
    replaced = api.http.put(f"/suppliers/{supplier_id}", data={"currencies[]": "GBP"})

    assert replaced.status_code == 200, replaced.text
    after = api.detail("suppliers", supplier_id)
    assert after["currencies"] == ["GBP"], "currencies[] replaces the whole list"
    assert after["name"] == name and after["externalId"] == "QB-V-1", "what is not sent stays"
    assert moment(after["updateDate"]) >= since

    assert api.http.put(f"/suppliers/{supplier_id}", data={"currencies[]": ["CHF", "PLN"]}).status_code == 200
    assert sorted(api.detail("suppliers", supplier_id)["currencies"]) == ["CHF", "PLN"]


def test_a_supplier_needs_a_name(api):
    response = api.http.post("/suppliers", data={"currency": "EUR"})

    assert response.status_code == 400 and "name" in response.json()["errors"]["errors"]


def test_creating_and_replacing_an_item(api):
    supplier = api.export("suppliers")[0]
    created = api.http.post("/items", data={"name": "Kaffeebohnen 1 kg – «Crema»", "sku": "SKU-NEW-1",
                                           "price": "12.50", "supplier[id]": str(supplier["id"])})

    assert created.status_code == 200, created.text
    item_id = created.json()["id"]
    assert str(item_id) in api.keys("items", [("supplier[]", supplier["id"])])

    since = whole_second_now()
    assert api.http.put(f"/items/{item_id}", data={"price": "13.75"}).status_code == 200

    item = api.detail("items", item_id)
    assert item["price"] == 13.75 and item["name"] == "Kaffeebohnen 1 kg – «Crema»"
    assert item["supplier"]["id"] == supplier["id"]
    assert moment(item["updateDate"]) >= since


# ---- only form-encoded writes ------------------------------------------------------------------------------


def test_a_json_body_on_a_write_is_a_400_and_changes_nothing(api):
    supplier = api.export("suppliers")[0]
    invoice = next(i for i in api.export("invoices") if i["status"] == 2 and i["logicType"] == 0)
    payments = len(api.export("payments"))

    patch = api.http.patch(f"/suppliers/{supplier['id']}", json={"externalId": "JSON-1"})
    payment = api.http.post("/payments", json={"invoice": {"id": invoice["id"]}, "sumPaid": "1.00",
                                               "logicType": 0})

    assert patch.status_code == 400 and "errors" in patch.json()
    assert payment.status_code == 400 and "errors" in payment.json()
    assert api.detail("suppliers", supplier["id"]) == supplier
    assert len(api.export("payments")) == payments


def test_supplier_contacts_are_written_with_bracket_keys_and_replaced_whole(api):
    created = api.http.post("/suppliers", data={
        "name": "Kontakt & Co", "contacts[data][0][name]": "Zoë Ångström", "contacts[data][0][email]": "zoe@kontakt.example",
        "contacts[data][1][name]": "Piotr", "contacts[data][1][email]": "piotr@kontakt.example",
        "contacts[data][1][phone]": "+48 12 345 67 89"})
    assert created.status_code == 200, created.text
    supplier = api.detail("suppliers", created.json()["id"])
    assert [(c["name"], c["email"]) for c in supplier["contacts"]["data"]] == [
        ("Zoë Ångström", "zoe@kontakt.example"), ("Piotr", "piotr@kontakt.example")]

    replaced = api.http.put(f"/suppliers/{supplier['id']}", data={"contacts[data][0][email]": "ap@kontakt.example"})

    assert replaced.status_code == 200, replaced.text
    assert [c["email"] for c in api.detail("suppliers", supplier["id"])["contacts"]["data"]] == ["ap@kontakt.example"]
    bad = api.http.put(f"/suppliers/{supplier['id']}", data={"contacts[data][0][email]": "not an address"})
    assert bad.status_code == 400 and "contacts[data][0][email]" in bad.json()["errors"]["errors"]


def test_taxes_and_payment_terms_can_be_created_and_taxes_replaced(api):
    tax = api.http.post("/taxes", data={"name": "VAT 8.1% (CH)", "value": "8.1"})
    term = api.http.post("/paymentterms", data={"name": "Net 60", "creditPeriodDays": "60"})

    assert tax.status_code == 200 and term.status_code == 200, (tax.text, term.text)
    assert api.http.put(f"/taxes/{tax.json()['id']}", data={"enable": "false"}).status_code == 200
    taxes = {row["id"]: row for row in api.walk("taxes")}
    assert taxes[tax.json()["id"]]["name"] == "VAT 8.1% (CH)" and taxes[tax.json()["id"]]["enable"] is False
    assert float(taxes[tax.json()["id"]]["value"]) == 8.1
    terms = {row["id"]: row for row in api.walk("paymentterms")}
    assert (terms[term.json()["id"]]["name"], terms[term.json()["id"]]["creditPeriodDays"]) == ("Net 60", 60)


def test_custom_field_options_can_be_created_and_replaced(api):
    field = next(f for f in api.export("documentcustomfields") if f["options"])
    since = whole_second_now()

    created = api.http.post(f"/documentcustomfields/{field['id']}/options", data={"name": "Logistik/Süd", "code": "CC-900"})

    assert created.status_code == 200, created.text
    assert api.keys("documentcustomfields", [("modifiedSince", modified_since_text(since))]) == [str(field["id"])]
    option_id = created.json()["id"]
    renamed = api.http.put(f"/documentcustomfields/{field['id']}/options/{option_id}", data={"name": "Logistics South"})
    assert renamed.status_code == 200
    options = next(f for f in api.walk("documentcustomfields") if f["id"] == field["id"])["options"]
    assert {"id": option_id, "name": "Logistics South", "code": "CC-900"}.items() <= \
        next(o for o in options if o["id"] == option_id).items()
    assert len(options) == len(field["options"]) + 1


def test_confirming_an_invoice_awaiting_confirmation(api):
    invoice = next(i for i in api.export("invoices") if i["status"] == 6)

    assert api.http.post(f"/invoices/{invoice['idn']}/confirm").status_code == 200

    assert api.detail("invoices", invoice["idn"])["status"] == 2
    assert api.http.post(f"/invoices/{invoice['idn']}/confirm").status_code == 400


def test_a_purchase_requisition_is_created_pending_and_a_bad_one_creates_nothing(api):
    supplier = api.export("suppliers")[0]
    before = set(api.exported("purchaserequisitions"))

    bad = api.http.post("/purchaserequisitions", data={"items[0][name]": "Paper", "items[0][quantity]": "many"})
    assert bad.status_code == 400 and set(api.exported("purchaserequisitions")) == before

    created = api.http.post("/purchaserequisitions", data={
        "supplier[id]": str(supplier["id"]), "currency": "EUR", "description": "Q4 \"office\" refresh",
        "items[0][name]": "Desk lamp", "items[0][quantity]": "3", "items[0][price]": "19.90",
        "items[1][name]": "Chair", "items[1][quantity]": "1", "items[1][price]": "240.00"})

    assert created.status_code == 200, created.text
    requisition = api.detail("purchaserequisitions", created.json()["idn"])
    assert requisition["status"] == 1 and requisition["approvalDate"] is None
    assert requisition["supplier"]["id"] == supplier["id"] and requisition["currency"] == "EUR"
    assert [(line["name"], float(line["sum"])) for line in requisition["items"]["data"]] == [
        ("Desk lamp", 59.7), ("Chair", 240.0)]
    assert float(requisition["sum"]) == 299.7
    assert set(api.exported("purchaserequisitions")) - before == {str(requisition["idn"])}


def test_waiting_for_approve_lists_the_documents_waiting_for_the_token_user(api):
    me = next(user["id"] for user in api.export("users") if user["email"] == api.email)
    orders = api.export("purchaseorders")
    expected = sorted(str(po["idn"]) for po in orders if po["status"] == 1 and any(
        step["user"]["id"] == me and step["status"] == 0 for step in po["approvalSteps"]["data"]))
    assert expected

    assert sorted(api.keys("purchaseorders", [("waitingForapprove", "yes")])) == expected


def test_payments_cannot_be_edited(api):
    payment = api.export("payments")[0]

    response = api.http.put(f"/payments/{payment['idn']}", data={"sumPaid": "1.00"})

    assert response.status_code in (404, 405)
    assert api.detail("payments", payment["idn"]) == payment


def test_a_supplier_currency_must_be_one_the_company_uses_and_a_refused_put_changes_nothing(api):
    supplier = api.export("suppliers")[0]

    response = api.http.put(f"/suppliers/{supplier['id']}", data={"name": "Renamed", "currencies[]": ["EUR", "XYZ"]})

    assert response.status_code == 400 and "currencies" in response.json()["errors"]["errors"]
    assert api.detail("suppliers", supplier["id"]) == supplier


def test_the_list_filters_precoros_own_connector_uses(api):
    invoices = api.export("invoices")
    unlinked = sorted(str(i["idn"]) for i in invoices if not i["externalId"] and in_plain_list("invoices", i))
    assert 0 < len(unlinked) < len(invoices)
    assert sorted(api.keys("invoices", [("sent_to_external", "0")])) == unlinked
    suppliers = api.export("suppliers")
    assert sorted(api.keys("suppliers", [("externalIntegrated", "0")])) == sorted(
        str(s["id"]) for s in suppliers if not s["externalId"])
    assert api.keys("suppliers", [("id", str(suppliers[3]["id"]))]) == [str(suppliers[3]["id"])]
    approved = sorted((i for i in invoices if i["approvalDate"]), key=lambda i: i["approvalDate"])
    middle = moment(approved[len(approved) // 2]["approvalDate"]).strftime("%Y-%m-%dT%H:%M:%S")
    assert sorted(api.keys("invoices", [("approvalLeftDate", middle)])) == sorted(
        str(i["idn"]) for i in approved if moment(i["approvalDate"]).strftime("%Y-%m-%dT%H:%M:%S") >= middle
        and in_plain_list("invoices", i))
    # modifiedSince with a Z or +00:00 suffix means the same moment
    plain = api.keys("invoices", [("modifiedSince", middle)])
    assert api.keys("invoices", [("modifiedSince", middle + "Z")]) == plain
    assert api.keys("invoices", [("modifiedSince", middle + "+00:00")]) == plain
