"""Precoro's guides, request by request: each request the help centre shows gets the documented answer.

Expected answers are computed here from the contract's definition of each filter, applied to the
simulator's ground truth (`/_sim/export`), never taken from the simulator's own filtering code.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal

from tests.simulator.sim_harness import (
    amount,
    day_text,
    in_plain_list,
    modified_since_text,
    moment,
    whole_second_now,
)

INVOICE_PAID = 5
INVOICE_PARTLY_PAID = 4
APPROVED = 2


def _quantile(values: list, fraction: float):
    ordered = sorted(values)
    return ordered[int(fraction * (len(ordered) - 1))]


# ---- reads the guides show --------------------------------------------------------------------------


def test_approved_purchase_orders_in_an_approval_window_modified_since_a_moment(api):
    orders = api.export("purchaseorders")
    approval_days = [moment(po["approvalDate"]).date() for po in orders if po["approvalDate"]]
    left, right = _quantile(approval_days, 0.2), _quantile(approval_days, 0.8)
    since = _quantile([moment(po["updateDate"]) for po in orders], 0.3)

    def in_window(po: dict) -> bool:
        return po["approvalDate"] is not None and left <= moment(po["approvalDate"]).date() <= right

    expected = {str(po["idn"]) for po in orders
                if po["status"] == APPROVED and in_window(po) and moment(po["updateDate"]) >= since}
    # every one of the three filters narrows the answer, so each is really applied
    assert expected
    assert expected < {str(po["idn"]) for po in orders if po["status"] == APPROVED and in_window(po)}
    assert expected < {str(po["idn"]) for po in orders if in_window(po) and moment(po["updateDate"]) >= since}
    assert expected < {str(po["idn"]) for po in orders
                       if po["status"] == APPROVED and moment(po["updateDate"]) >= since}

    params = [("modifiedSince", modified_since_text(since)), ("approvalDate[left_date]", day_text(left)),
              ("approvalDate[right_date]", day_text(right)), ("status[]", APPROVED)]
    rows = api.walk("purchaseorders", per_page=20, params=params)

    assert sorted(str(row["idn"]) for row in rows) == sorted(expected)
    for row in rows:
        assert row["status"] == APPROVED and left <= moment(row["approvalDate"]).date() <= right


def test_purchase_orders_created_in_a_window_of_days(api):
    orders = api.export("purchaseorders")
    days = [moment(po["createDate"]).date() for po in orders]
    left, right = _quantile(days, 0.4), _quantile(days, 0.6)
    expected = sorted(str(po["idn"]) for po in orders if left <= moment(po["createDate"]).date() <= right)
    assert 0 < len(expected) < len(orders)

    params = [("createDate[left_date]", day_text(left)), ("createDate[right_date]", day_text(right))]
    assert sorted(api.keys("purchaseorders", params)) == expected


def test_suppliers_by_several_external_ids(api):
    linked = [s for s in api.export("suppliers") if s["externalId"]]
    wanted = linked[:3]
    assert len(wanted) == 3

    params = [("external_id[]", s["externalId"]) for s in wanted] + [("external_id[]", "NOT-IN-ANY-LEDGER")]
    rows = api.walk("suppliers", params=params)

    assert sorted(row["id"] for row in rows) == sorted(s["id"] for s in wanted)
    assert {row["externalId"] for row in rows} == {s["externalId"] for s in wanted}


def test_unpaid_or_partly_paid_invoices(api):
    invoices = api.export("invoices")
    # an invoice list without logicType[] leaves credit notes out
    expected = sorted(str(i["idn"]) for i in invoices if i["status"] in (APPROVED, INVOICE_PARTLY_PAID)
                      and in_plain_list("invoices", i))
    statuses = {i["status"] for i in invoices if str(i["idn"]) in expected}
    assert statuses == {APPROVED, INVOICE_PARTLY_PAID}, "the data must contain both kinds to tell anything"

    rows = api.walk("invoices", per_page=50, params=[("status[]", APPROVED), ("status[]", INVOICE_PARTLY_PAID)])

    assert sorted(str(row["idn"]) for row in rows) == expected
    for row in rows:
        assert isinstance(row["sumPaid"], str), "sumPaid comes back as a string"
        assert amount(row["sumPaid"]) < amount(row["sum"]) or row["logicType"] != 0
        if row["status"] == INVOICE_PARTLY_PAID:
            assert 0 < amount(row["sumPaid"]) < amount(row["sum"])


def test_paid_invoices(api):
    invoices = api.export("invoices")
    expected = sorted(str(i["idn"]) for i in invoices if i["status"] == INVOICE_PAID)
    assert expected

    rows = api.walk("invoices", per_page=20, params=[("status[]", INVOICE_PAID)])

    assert sorted(str(row["idn"]) for row in rows) == expected
    assert all(amount(row["sumPaid"]) == amount(row["sum"]) for row in rows)


def test_purchase_orders_with_attached_files(api):
    orders = api.export("purchaseorders")
    expected = sorted(str(po["idn"]) for po in orders if po["attachments"]["data"])
    assert 0 < len(expected) < len(orders)

    assert sorted(api.keys("purchaseorders", [("attachedFile", 1)])) == expected


def test_items_of_some_suppliers(api):
    items = api.export("items")
    suppliers = sorted({item["supplier"]["id"] for item in items})[:2]
    expected = sorted(str(item["id"]) for item in items if item["supplier"]["id"] in suppliers)
    assert 0 < len(expected) < len(items)

    assert sorted(api.keys("items", [("supplier[]", s) for s in suppliers])) == expected


def test_credit_notes_by_logic_type(api):
    invoices = api.export("invoices")
    expected = sorted(str(i["idn"]) for i in invoices if i["logicType"] in (1, 5))
    assert expected

    assert sorted(api.keys("invoices", [("logicType[]", 1), ("logicType[]", 5)])) == expected


def test_active_suppliers(api):
    suppliers = api.export("suppliers")
    expected = sorted(str(s["id"]) for s in suppliers if s["enable"] is True)
    assert 0 < len(expected) < len(suppliers)

    assert sorted(api.keys("suppliers", [("enable", "true")])) == expected


# ---- externalId write-back ---------------------------------------------------------------------------


def _patch_external_id_and_check(api, resource: str, key: str, value: str) -> None:
    since = whole_second_now()
    modified = [("modifiedSince", modified_since_text(since))]
    before = api.detail(resource, key)
    assert moment(before["updateDate"]) < since, "pick a record not already modified now"
    assert key not in api.keys(resource, modified)

    response = api.http.patch(f"/{resource}/{key}", data={"externalId": value})

    assert response.status_code == 200, response.text
    after = api.detail(resource, key)
    assert after["externalId"] == value
    assert moment(after["updateDate"]) >= since > moment(before["updateDate"])
    assert key in api.keys(resource, modified)
    assert api.keys(resource, [("external_id[]", value)]) == [key]
    # nothing else about the record changed
    unchanged = {k: v for k, v in after.items() if k not in ("externalId", "updateDate", "integrationStatus")}
    assert unchanged == {k: v for k, v in before.items() if k not in ("externalId", "updateDate", "integrationStatus")}


def test_patching_a_suppliers_external_id_moves_its_update_date(api):
    supplier = next(s for s in api.export("suppliers") if not s["externalId"])
    _patch_external_id_and_check(api, "suppliers", str(supplier["id"]), "QB-VENDOR-77 & \"Søn\"")


def test_patching_an_invoices_external_id_moves_its_update_date(api):
    invoice = next(i for i in api.export("invoices") if not i["externalId"] and i["status"] == APPROVED)
    _patch_external_id_and_check(api, "invoices", str(invoice["idn"]), "QB-BILL-900001")


# ---- payments ----------------------------------------------------------------------------------------


def _unpaid_invoice(api) -> dict:
    return next(i for i in reversed(api.export("invoices"))
                if i["status"] == APPROVED and i["logicType"] == 0 and amount(i["sumPaid"]) == 0
                and amount(i["sum"]) >= 3)


def _pay(api, invoice_id: int, sum_paid: Decimal, pay_date: str = "2025-08-10T12:00:00+00:00"):
    return api.http.post("/payments", data={"invoice[id]": str(invoice_id), "sumPaid": f"{sum_paid:.2f}",
                                            "logicType": "0", "payDate": pay_date})


def test_a_payment_grows_sum_paid_moves_the_status_and_is_listed_everywhere(api):
    invoice = _unpaid_invoice(api)
    total = amount(invoice["sum"])
    part = (total / 3).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    since = whole_second_now()

    response = _pay(api, invoice["id"], part)

    assert response.status_code == 200, response.text
    payment = response.json()
    assert isinstance(payment["id"], int) and payment["idn"] is not None
    assert payment["invoice"]["id"] == invoice["id"] and str(payment["invoice"]["idn"]) == str(invoice["idn"])
    assert amount(payment["sumPaid"]) == part
    assert moment(payment["payDate"]) == moment("2025-08-10T12:00:00+00:00")

    after = api.detail("invoices", invoice["idn"])
    assert isinstance(after["sumPaid"], str) and after["sumPaid"] == f"{part:.2f}"
    assert after["status"] == INVOICE_PARTLY_PAID
    assert moment(after["updateDate"]) >= since > moment(invoice["updateDate"])
    assert payment["id"] in [p["id"] for p in after["payments"]["data"]]

    listed = api.walk("payments", params=[("modifiedSince", modified_since_text(since))])
    assert [row["id"] for row in listed] == [payment["id"]]
    one = api.detail("payments", payment["idn"])
    assert one["id"] == payment["id"] and amount(one["sumPaid"]) == part
    assert one["invoice"]["id"] == invoice["id"]
    changed_invoices = api.keys("invoices", [("modifiedSince", modified_since_text(since))])
    assert changed_invoices == [str(invoice["idn"])]

    # paying the rest makes it paid
    rest = total - part
    assert _pay(api, invoice["id"], rest).status_code == 200
    paid = api.detail("invoices", invoice["idn"])
    assert paid["status"] == INVOICE_PAID and amount(paid["sumPaid"]) == total
    assert paid["sumPaid"] == f"{total:.2f}"
    assert len(paid["payments"]["data"]) == 2
    assert str(invoice["idn"]) in api.keys("invoices", [("status[]", INVOICE_PAID)])


def test_overpaying_a_fully_paid_invoice_is_a_400_and_changes_nothing(api):
    invoice = next(i for i in api.export("invoices") if i["status"] == INVOICE_PAID and i["logicType"] == 0)
    payments_before = len(api.export("payments"))

    response = _pay(api, invoice["id"], Decimal("0.01"))

    assert response.status_code == 400
    assert response.json() == {"errors": {"errors": {"sumPaid": "The Invoice is already fully paid."}}}
    assert len(api.export("payments")) == payments_before
    assert api.detail("invoices", invoice["idn"]) == next(
        i for i in api.export("invoices") if i["id"] == invoice["id"])


def test_paying_more_than_is_due_is_a_400(api):
    invoice = _unpaid_invoice(api)

    response = _pay(api, invoice["id"], amount(invoice["sum"]) + Decimal("0.01"))

    assert response.status_code == 400
    assert "sumPaid" in response.json()["errors"]["errors"]
    assert api.detail("invoices", invoice["idn"])["sumPaid"] == invoice["sumPaid"]


def test_a_payment_names_its_invoice_by_numeric_id_not_by_idn(api):
    invoice = _unpaid_invoice(api)
    idns_that_are_also_ids = {i["idn"] for i in api.export("invoices")} & {i["id"] for i in api.export("invoices")}
    assert invoice["idn"] not in idns_that_are_also_ids

    response = _pay(api, invoice["idn"], Decimal("1.00"))

    assert response.status_code in (400, 404)
    assert api.detail("invoices", invoice["idn"])["sumPaid"] == invoice["sumPaid"]


# ---- receipts ----------------------------------------------------------------------------------------


def test_a_receipt_is_created_for_a_purchase_order_by_its_numeric_id(api):
    order = next(po for po in reversed(api.export("purchaseorders")) if po["status"] == APPROVED)
    receipts_before = api.exported("receipts")

    assert api.http.post(f"/receipts/{order['idn']}").status_code == 404  # the idn is not the key here
    response = api.http.post(f"/receipts/{order['id']}")

    assert response.status_code == 200, response.text
    receipt = response.json()
    assert str(receipt["idn"]) not in receipts_before
    assert receipt["purchaseOrder"] == {"id": order["id"], "idn": order["idn"]}
    received = {line["purchaseOrderItem"]["id"]: amount(line["quantity"]) for line in receipt["items"]["data"]}
    assert received == {line["id"]: amount(line["quantity"]) for line in order["items"]["data"]}
    assert api.detail("receipts", receipt["idn"]) == receipt
    assert str(receipt["idn"]) in api.keys("receipts")


def test_a_partial_receipt_receives_only_the_lines_given(api):
    order = next(po for po in reversed(api.export("purchaseorders"))
                 if po["status"] == APPROVED and len(po["items"]["data"]) >= 2
                 and amount(po["items"]["data"][0]["quantity"]) >= 1)
    line = order["items"]["data"][0]

    response = api.http.post(f"/receipts/{order['id']}", data={"items[0][id]": str(line["id"]),
                                                                "items[0][quantity]": "1"})

    assert response.status_code == 200, response.text
    lines = response.json()["items"]["data"]
    assert [(item["purchaseOrderItem"]["id"], amount(item["quantity"])) for item in lines] == [(line["id"], 1)]


def test_a_receipt_for_a_purchase_order_that_is_not_approved_is_a_400(api):
    order = next(po for po in api.export("purchaseorders") if po["status"] not in (APPROVED, 11))

    response = api.http.post(f"/receipts/{order['id']}")

    assert response.status_code == 400 and "errors" in response.json()


# ---- attachments -------------------------------------------------------------------------------------


def _png_is_valid(data: bytes) -> tuple[int, int]:
    """Walk a PNG's chunks, checking every CRC and that IDAT inflates to width x height pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks, idat = 8, [], b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind = data[position + 4:position + 8]
        body = data[position + 8:position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length:position + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, f"bad CRC in {kind!r}"
        chunks.append(kind)
        if kind == b"IDAT":
            idat += body
        position += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and colour == 2
    assert len(zlib.decompress(idat)) == height * (1 + 3 * width)
    return width, height


def _pdf_is_valid(data: bytes) -> None:
    """A PDF header, trailer and an xref table whose offsets point at the objects."""
    assert data.startswith(b"%PDF-1.") and data.rstrip().endswith(b"%%EOF")
    xref_at = int(data.rsplit(b"startxref", 1)[1].split()[0])
    assert data[xref_at:xref_at + 4] == b"xref"
    lines = data[xref_at:].split(b"\n")
    count = int(lines[1].split()[1])
    for number, entry in enumerate(lines[3:3 + count - 1], start=1):
        offset = int(entry.split()[0])
        assert data[offset:].startswith(f"{number} 0 obj".encode())


def test_attachments_are_downloaded_as_the_real_files_a_document_lists(api):
    files = {a["id"]: a for a in api.export("attachments")}
    order = next(po for po in api.export("purchaseorders") if len(po["attachments"]["data"]) == 2)
    listed = api.detail("purchaseorders", order["idn"])["attachments"]["data"]
    kinds = set()

    for attachment in listed:
        response = api.get(f"/attachments/{attachment['id']}")

        assert response.status_code == 200
        assert response.headers["content-type"].startswith(attachment["mimeType"])
        assert len(response.content) == attachment["size"] == files[attachment["id"]]["size"]
        assert hashlib.sha256(response.content).hexdigest() == files[attachment["id"]]["sha256"]
        if attachment["mimeType"] == "application/pdf":
            _pdf_is_valid(response.content)
        else:
            assert attachment["mimeType"] == "image/png"
            _png_is_valid(response.content)
        kinds.add(attachment["mimeType"])
    assert kinds == {"application/pdf", "image/png"}


def test_every_attachment_downloads_with_the_bytes_the_ground_truth_names(api):
    for attachment in api.export("attachments"):
        response = api.get(f"/attachments/{attachment['id']}")
        assert response.status_code == 200
        assert hashlib.sha256(response.content).hexdigest() == attachment["sha256"]
    assert api.get("/attachments/1").status_code == 404


# ---- workflow ----------------------------------------------------------------------------------------


def test_approving_a_pending_purchase_order(api):
    order = next(po for po in api.export("purchaseorders") if po["status"] == 1)
    since = whole_second_now()

    response = api.http.post(f"/purchaseorders/{order['idn']}/approve")

    assert response.status_code == 200, response.text
    after = api.detail("purchaseorders", order["idn"])
    assert after["status"] == APPROVED and after["approvalDate"] is not None
    assert moment(after["approvalDate"]) >= since and moment(after["updateDate"]) >= since
    today = day_text(moment(after["approvalDate"]).date())
    approved_today = api.keys("purchaseorders", [("status[]", APPROVED), ("approvalDate[left_date]", today),
                                                 ("approvalDate[right_date]", today)])
    assert str(order["idn"]) in approved_today
    assert api.http.post(f"/purchaseorders/{order['idn']}/approve").status_code == 400  # not pending any more


def test_rejecting_needs_a_comment(api):
    order = next(po for po in api.export("purchaseorders") if po["status"] == 1)

    refused = api.http.post(f"/purchaseorders/{order['idn']}/reject")
    assert refused.status_code == 400 and "comment" in refused.json()["errors"]["errors"]
    assert api.detail("purchaseorders", order["idn"])["status"] == 1

    rejected = api.http.post(f"/purchaseorders/{order['idn']}/reject", data={"comment": "Wrong supplier – ask Jürgen"})
    assert rejected.status_code == 200
    assert api.detail("purchaseorders", order["idn"])["status"] == 3


def test_modified_since_in_the_future_lists_nothing(api):
    """modifiedSince in the future: nothing has been modified yet."""
    future = whole_second_now() + timedelta(days=1)
    assert api.walk("invoices", params=[("modifiedSince", modified_since_text(future))]) == []
