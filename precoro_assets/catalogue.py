"""The entity catalogue: one declarative entry per Precoro resource and the warehouse tables it fills.

Everything else is generated from this file: Dagster assets, warehouse tables and their comments,
column schema metadata, asset checks and analyst documentation. To add a field, add a `Column`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

# Precoro's own connector lists credit notes with this filter; whether an unfiltered /invoices includes them is
# not known, so invoices are listed both ways and merged by idn (one more list page per walk, usually).
CREDIT_NOTE_LOGIC_TYPES: tuple[int, ...] = (1, 5)  # an invoice's `logicType` when it is a credit note
CREDIT_NOTES: tuple[tuple[str, str], ...] = tuple(("logicType[]", str(t)) for t in CREDIT_NOTE_LOGIC_TYPES)

# Document statuses as Precoro numbers them (invoices; the other documents use the same numbers).
STATUS_NAMES: dict[int, str] = {
    0: "Open", 1: "Pending", 2: "Approved", 3: "Denied", 4: "Partly paid", 5: "Paid", 6: "Awaiting confirmation",
    7: "On revise", 8: "Canceled", 9: "Pending receipt", 10: "Approval review", 11: "Closed",
}
CANCELED = 8  # a payment's status once cancelled in Precoro

# Sums of money: Precoro sends them with the company's sum precision, 2 decimals (its precisionData says
# "sum": 2), and a 2-decimal DECIMAL is what amounts are compared and added up in.
MONEY = "DECIMAL(18,2)"
# Unit prices, quantities and rates come with as many decimals as the company set (precisionData "price",
# "quantity"), exchange rates and tax percents with more (8.875 %, 0.000039 VND->USD): 10 decimals keep every one
# Precoro sends exactly (a price of 12.345 was NULL in DECIMAL(18,2)), with 28 digits before the point. A value
# with more decimals still lands nowhere rounded: it is a field problem and stays exact in `raw`.
UNIT_PRICE = "DECIMAL(38,10)"
RATE = "DECIMAL(38,10)"
QUANTITY = "DECIMAL(38,10)"
TIME = "TIMESTAMPTZ"


@dataclass(frozen=True)
class Column:
    """A typed warehouse column read from a dotted path of the Precoro record (`supplier.id`).

    A derived column computes its value from the whole record (`derive`); `source` then names the field it
    chiefly depends on, and its description says how it is derived."""

    name: str
    type: str
    source: str
    description: str
    derive: Callable[[dict], object] | None = None
    also_reads: tuple[str, ...] = ()  # other fields a derived column reads (the drift check counts them as read)


@dataclass(frozen=True)
class ChildTable:
    """Rows that live in a nested collection of each record (`items`, `contacts`, ...)."""

    name: str
    collection: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # unique within the table, together with the parent key
    # other names Precoro sends the collection under (items' custom field values: dataProductCustomFields, which its
    # connector reads, or dataItemCustomFields, as in its announcement of the category change): the first present
    also_from: tuple[str, ...] = ()

    @property
    def collections(self) -> tuple[str, ...]:
        """Every name the collection may come under, the usual one first."""
        return (self.collection, *self.also_from)


@dataclass(frozen=True)
class Entity:
    """One Precoro resource, the table it lands in, and how it is kept current."""

    name: str  # asset and table name, snake_case, plural
    path: str  # Precoro URL segment
    key: str  # "idn" (documents) or "id" (reference data)
    description: str
    columns: tuple[Column, ...]
    children: tuple[ChildTable, ...] = ()
    partitioned: bool = False  # documents: daily partitions on createDate
    fetch_detail: bool = False  # list rows are headers only: one GET per new or changed record
    document_type: str = ""  # singular name used in child tables, e.g. "invoice"
    status_filter_values: tuple[int, ...] = field(default=())
    sensitive: tuple[str, ...] = ()  # fields masked wherever they occur in a record (see warehouse/sensitive.py)
    raw_only: tuple[str, ...] = ()  # top-level fields known and deliberately kept in `raw` only (drift check)
    may_lack: tuple[str, ...] = ()  # fields Precoro may leave out of every record (drift check: no warning)
    # the list is also walked with each of these parameters and the rows merged by key (see `CREDIT_NOTES`)
    also_list: tuple[tuple[tuple[str, str], ...], ...] = ()

    @property
    def key_column(self) -> str:
        return self.key

    @property
    def parent_column(self) -> str:
        """The column that links a child row to this entity's row."""
        return f"{self.document_type}_{self.key}"

    def table(self, child: ChildTable | None = None) -> str:
        return child.name if child else self.name


def c(name: str, type_: str, source: str, description: str) -> Column:
    return Column(name, type_, source, description)


# ---- derived values: where Precoro's real responses need more than a path --------------------------

def exchange_rate(record: dict) -> object:
    """The rate out of `exchangeRate`, which real responses send as an object or a list (older ones: a number).

    The object's layout is not documented, so the first numeric member named like a rate is taken; a list is read
    by its first element. Whatever it was, `raw` keeps the whole value."""
    value = record.get("exchangeRate")
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        for name in ("rate", "exchangeRate", "value", "companyRate"):
            member = value.get(name)
            if member is not None and not isinstance(member, (dict, list, bool)):
                return member
        raise ValueError(f"no rate in {value!r}")
    return value


def due_date(record: dict) -> object:
    """`issueDate` + `creditPeriodDays`: real invoices carry no due date of their own."""
    issued, days = record.get("issueDate"), record.get("creditPeriodDays")
    if not issued or days is None or days == "":
        return None
    try:
        offset = timedelta(days=int(Decimal(str(days))))
        moment = datetime.fromisoformat(str(issued).strip().replace("Z", "+00:00"))
    except (ValueError, InvalidOperation, OverflowError):
        raise ValueError(f"issueDate {issued!r} + creditPeriodDays {days!r} is not a date") from None
    return moment + offset


def either(*paths: str) -> Callable[[dict], object]:
    """The first of several dotted paths that holds a value: for a field that comes under more than one name
    (the contract names some nested fields nowhere, and a server built from it chose near names)."""

    def first(record: dict) -> object:
        for path in paths:
            node: object = record
            for step in path.split("."):
                node = node.get(step) if isinstance(node, dict) else None
            if node is not None and node != "":
                return node
        return None

    return first


def read_either(name: str, type_: str, description: str, *paths: str) -> Column:
    """A column read from the first of these paths present (the drift check counts them all as read)."""
    return Column(name, type_, paths[0], description, either(*paths), tuple(p.split(".", 1)[0] for p in paths[1:]))


def parent_idn(record: dict) -> object:
    """A split-cost child's base invoice: `parentData.idn`, or the flat `parentIdn` Precoro sent before 2026."""
    parent = record.get("parentData")
    if isinstance(parent, dict) and parent.get("idn") not in (None, ""):
        return parent["idn"]
    return record.get("parentIdn")


# ---- columns that many entities share ------------------------------------------------------------

def _dates(approval: bool = True) -> tuple[Column, ...]:
    columns: tuple[Column, ...] = (
        c("create_date", TIME, "createDate", "When the record was created in Precoro (UTC)."),
        c("update_date", TIME, "updateDate", "When the record was last modified in Precoro (UTC); "
                                              "what Precoro's modifiedSince filter compares."),
    )
    if approval:
        columns += (c("approval_date", TIME, "approvalDate", "When the record was approved; empty if not approved."),)
    return columns


def _links() -> tuple[Column, ...]:
    return (
        c("external_id", "VARCHAR", "externalId", "Id of the twin record in the accounting system; empty if not linked."),
        c("external_integration_log", "VARCHAR", "externalIntegrationLog",
          "Error text from the last accounting sync attempt (Precoro shows a 'Not synced' card); empty = no error."),
    )


def _document_header(amounts: bool = True) -> tuple[Column, ...]:
    columns: tuple[Column, ...] = (
        c("id", "BIGINT", "id", "Precoro's numeric id of the document."),
        c("idn", "VARCHAR", "idn", "The company's document number in Precoro (how Precoro addresses documents)."),
        c("status", "INTEGER", "status", "Status code (see precoro.status_names)."),
        c("status_name", "VARCHAR", "statusString", "Status as Precoro names it."),
        c("supplier_id", "BIGINT", "supplier.id", "The supplier (precoro.suppliers.id)."),
        c("supplier_name", "VARCHAR", "supplier.name", "The supplier's name as shown on the document."),
        c("location_id", "BIGINT", "location.id", "The location (precoro.locations.id)."),
        c("currency", "VARCHAR", "currency", "ISO currency code of the document's amounts."),
    )
    if amounts:
        columns += (
            Column("exchange_rate", RATE, "exchangeRate", "Company-currency units per unit of the document currency "
                   "(read out of Precoro's exchangeRate object; the whole object is in raw).", exchange_rate),
            c("sum", MONEY, "sum", "Total including taxes, in the document currency."),
            c("net_sum", MONEY, "netSum", "Total before taxes, in the document currency."),
            c("sum_in_company_currency", MONEY, "sumInCompanyCurrency", "Total converted to the company currency."),
            c("net_sum_in_company_currency", MONEY, "netSumInCompanyCurrency",
              "Total before taxes, in the company currency."),
            c("legal_entity_id", "BIGINT", "legalEntity.id", "The legal entity (precoro.legal_entities.id)."),
            c("creator_id", "BIGINT", "creator.id", "The user who created the document (precoro.users.id)."),
            c("required_date", TIME, "requiredDate", "When the goods or services are needed."),
        )
    return columns


def _line_columns(document_type: str) -> tuple[Column, ...]:
    return (
        c("line_id", "BIGINT", "id", "Precoro's id of the line."),
        c("item_id", "BIGINT", "item.id", "The catalogue item (precoro.items.id); empty for free-text lines."),
        c("name", "VARCHAR", "name", "What was ordered, as written on the line."),
        c("sku", "VARCHAR", "sku", "The item's SKU."),
        c("unit", "VARCHAR", "unit", "Unit of measure, as text (a unit's code in precoro.units)."),
        c("quantity", QUANTITY, "quantity", "Quantity."),
        c("price", UNIT_PRICE, "price", f"Unit price, in the {document_type}'s currency (every decimal Precoro "
          "sends)."),
        c("net_sum", MONEY, "netSum", "Line total before tax."),
        c("tax_sum", MONEY, "taxSum", "Tax on the line."),
        c("sum", MONEY, "sum", "Line total including tax."),
        c("tax_id", "BIGINT", "tax.id", "The tax applied (precoro.taxes.id)."),
    )


def _line_custom_field_values(document_type: str) -> ChildTable:
    return ChildTable(
        f"{document_type}_line_custom_field_values", "items.*.dataItemCustomFields",
        f"Item custom field values on {document_type} lines; for drop-downs `value` is an option id "
        "(see the *_custom_fields_resolved views for names).",
        (c("line_id", "BIGINT", "^id", "The line (the *_items table's line_id)."),
         c("field_id", "BIGINT", "itemCustomField.id", "The item custom field (precoro.item_custom_fields.id)."),
         c("value", "VARCHAR", "value", "The value as Precoro stores it: text, or an option id for drop-downs.")),
        ("line_id", "field_id"))


def _document_children(document_type: str, lines: bool = True) -> tuple[ChildTable, ...]:
    children = []
    if lines:
        children.append(ChildTable(f"{document_type}_items", "items", f"Line items of {document_type}s.",
                                   _line_columns(document_type), ("line_id",)))
        children.append(_line_custom_field_values(document_type))
        # each tax as {"tax": {id, name, ...}, "sum"} or flat {id, name, percent, sum}: the contract names neither
        children.append(ChildTable(
            f"{document_type}_taxes", "taxes", f"Tax totals of {document_type}s, one row per tax applied.",
            (read_either("tax_id", "BIGINT", "The tax (precoro.taxes.id).", "tax.id", "id"),
             read_either("tax_name", "VARCHAR", "The tax's name.", "tax.name", "name"),
             read_either("percent", RATE, "The tax's rate in percent.", "percent", "tax.percent", "tax.value"),
             c("sum", MONEY, "sum", f"Tax on the whole {document_type}, in its currency.")),
            ("tax_id",)))
    children += [
        ChildTable(
            f"{document_type}_custom_field_values", "dataDocumentCustomFields",
            f"Document custom field values of {document_type}s; for drop-downs `value` is an option id.",
            (c("field_id", "BIGINT", "documentCustomField.id",
               "The document custom field (precoro.document_custom_fields.id)."),
             c("value", "VARCHAR", "value", "The value as Precoro stores it: text, or an option id for drop-downs.")),
            ("field_id",)),
        ChildTable(
            f"{document_type}_attachments", "attachments", f"Files attached to {document_type}s (metadata only).",
            (c("attachment_id", "BIGINT", "id", "Precoro's attachment id (GET /attachments/{id} returns the file)."),
             c("name", "VARCHAR", "name", "File name."),
             read_either("file_name", "VARCHAR", "File name as uploaded.", "fileName", "filename", "file_name",
                         "originalName", "originalFileName"),
             c("mime_type", "VARCHAR", "mimeType", "MIME type of the file."),
             c("size", "BIGINT", "size", "Size in bytes.")),
            ("attachment_id",)),
        ChildTable(
            f"{document_type}_approval_steps", "approvalSteps", f"Approval steps of {document_type}s.",
            (c("step_id", "BIGINT", "id", "Precoro's id of the approval step."),
             c("step", "INTEGER", "step", "Position of the step in the approval flow."),
             c("user_id", "BIGINT", "user.id", "The approver (precoro.users.id)."),
             c("user_name", "VARCHAR", "user.fullName", "The approver's name."),
             read_either("step_status", "INTEGER", "0 waiting, 1 approved, 2 rejected.", "status", "stepStatus",
                         "approvalStatus", "state"),
             read_either("approval_date", TIME, "When the approver acted.", "approvalDate", "approvedAt",
                         "approvedDate", "approveDate", "actionDate")),
            ("step_id",)),
    ]
    return tuple(children)


def _payable_columns(kind: str) -> tuple[Column, ...]:
    """What invoices and expenses share as documents someone pays by a term."""
    return (
        c("custom_name", "VARCHAR", "customName", f"The {kind}'s own title in Precoro, if given."),
        c("issue_date", TIME, "issueDate", f"{kind.capitalize()} date."),
        c("credit_period_days", "INTEGER", "creditPeriodDays", f"Days to pay after the {kind} date (from the "
          "payment term)."),
        c("payment_term_id", "BIGINT", "paymentTerm.id", "The payment term (precoro.payment_terms.id)."),
        c("note", "VARCHAR", "note", f"Note on the {kind}."),
    )


def _invoice_detail_columns() -> tuple[Column, ...]:
    """What Precoro's own connector reads from an invoice's (and an expense's) detail, besides the header."""
    return (
        c("delivery_note", "VARCHAR", "deliveryNote", "The supplier's delivery note number."),
        c("from_supplier", "BOOLEAN", "fromSupplier", "Whether the supplier submitted it (supplier portal)."),
        c("prepayment_percent", RATE, "prepaymentPercent", "Share paid before delivery, in percent."),
        c("postpayment_percent", RATE, "postpaymentPercent", "Share paid after invoicing, in percent."),
        c("tolerance_rate_sum", MONEY, "toleranceRateSum", "Tolerated difference to the purchase order, amount."),
        c("tolerance_rate_percent", RATE, "toleranceRatePercent",
          "Tolerated difference to the purchase order, percent."),
        c("budgeted_sum", MONEY, "budgetedSum", "Amount counted against the budget."),
        c("is_budget_over_limit", "BOOLEAN", "isBudgetOverLimit", "Whether it takes its budget over the limit."),
        c("update_exchange_rate_date", TIME, "updateExchangeRateDate", "When the exchange rate was last updated."),
        c("last_approver_id", "BIGINT", "lastApprover.id", "The last approver (precoro.users.id)."),
        c("company_id", "BIGINT", "company.id", "The company in Precoro."),
    )


def _approval_columns(kind: str) -> tuple[Column, ...]:
    """Detail fields Precoro's own connector reads from invoices and expenses alike."""
    return (
        c("approving_way", "VARCHAR", "approvingWay", f"How the {kind} is approved, as Precoro sends it (a text, or "
          "the JSON of an object or list)."),
        c("used_tax_percent_in_budget", RATE, "usedTaxPercentInBudget",
          f"Share of the {kind}'s tax, in percent, counted against its budget."),
        c("qbo_id", "VARCHAR", "qboId", f"The {kind}'s id in QuickBooks Online, when Precoro's own QuickBooks "
          "integration synced it."),
    )


# Detail fields known and kept in `raw` only (no column reads them; the schema drift check does not warn).
INVOICE_RAW_ONLY = ("precisionData", "approvalStep", "allDocumentCustomFieldOptionsIds", "budget", "budgetLine",
                    "secondInCharge", "comments", "followers", "relatedOcrAttachment", "allocatedInvoice",
                    "contracts")


# ---- documents: partitioned by day of createDate, details fetched for new or changed ones ----------

DOCUMENTS: tuple[Entity, ...] = (
    Entity(
        "purchase_requisitions", "purchaserequisitions", "idn",
        "Purchase requisitions: requests to buy, before a purchase order.",
        _document_header() + (c("description", "VARCHAR", "description", "Why the purchase is requested."),)
        + _links() + _dates(),
        _document_children("purchase_requisition"), partitioned=True, fetch_detail=True,
        document_type="purchase_requisition"),
    Entity(
        "purchase_orders", "purchaseorders", "idn",
        "Purchase orders sent to suppliers.",
        _document_header() + (
            c("issue_date", TIME, "issueDate", "When the purchase order was issued."),
            c("delivery_address", "VARCHAR", "deliveryAddress", "Where the goods are delivered."),
            c("payment_term_id", "BIGINT", "paymentTerm.id", "The payment term (precoro.payment_terms.id)."),
            c("purchase_requisition_idn", "VARCHAR", "purchaseRequisition.idn",
              "The requisition this order came from, if any."),
            c("integration_status", "INTEGER", "integrationStatus", "Precoro's integration status flag."),
        ) + _links() + _dates(),
        _document_children("purchase_order"), partitioned=True, fetch_detail=True, document_type="purchase_order"),
    Entity(
        "receipts", "receipts", "idn",
        "Goods receipts: what was received against purchase orders.",
        (c("id", "BIGINT", "id", "Precoro's numeric id of the receipt."),
         c("idn", "VARCHAR", "idn", "The company's receipt number in Precoro."),
         c("status", "INTEGER", "status", "Status code (see precoro.status_names)."),
         c("status_name", "VARCHAR", "statusString", "Status as Precoro names it."),
         c("purchase_order_id", "BIGINT", "purchaseOrder.id", "The purchase order's numeric id."),
         c("purchase_order_idn", "VARCHAR", "purchaseOrder.idn", "The purchase order's number."),
         c("supplier_id", "BIGINT", "supplier.id", "The supplier (precoro.suppliers.id)."),
         c("location_id", "BIGINT", "location.id", "The location (precoro.locations.id)."),
         c("currency", "VARCHAR", "currency", "ISO currency code."),
         c("sum", MONEY, "sum", "Value of the goods received.")) + _links() + _dates(),
        (ChildTable("receipt_items", "items", "Lines of goods receipts.",
                    (c("line_id", "BIGINT", "id", "Precoro's id of the receipt line."),
                     c("purchase_order_item_id", "BIGINT", "purchaseOrderItem.id",
                       "The purchase order line received (precoro.purchase_order_items.line_id)."),
                     c("item_id", "BIGINT", "item.id", "The catalogue item (precoro.items.id)."),
                     c("name", "VARCHAR", "name", "What was received."),
                     c("quantity", QUANTITY, "quantity", "Quantity received."),
                     c("price", UNIT_PRICE, "price", "Unit price (every decimal Precoro sends)."),
                     c("sum", MONEY, "sum", "Value received on the line.")), ("line_id",)),
         _line_custom_field_values("receipt"))
        + _document_children("receipt", lines=False),
        partitioned=True, fetch_detail=True, document_type="receipt"),
    Entity(
        "invoices", "invoices", "idn",
        "Supplier invoices, credit notes included (logic_type 1 or 5).",
        _document_header() + (
            c("logic_type", "INTEGER", "logicType", "0 invoice; 1 and 5 are credit notes."),
            c("invoice_number", "VARCHAR", "invoiceNumber", "The supplier's invoice number."),
            c("sum_paid", MONEY, "sumPaid", "Amount paid so far, as recorded in Precoro."),
            c("sum_paid_in_company_currency", MONEY, "sumPaidInCompanyCurrency",
              "Amount paid so far, in the company currency."),
            c("withholding_tax_sum", MONEY, "withholdingTaxSum", "Withholding tax on the invoice."),
        ) + _payable_columns("invoice") + (
            Column("due_date", TIME, "creditPeriodDays", "Derived: issue_date + credit_period_days (Precoro sends no "
                   "due date); empty when either is unknown.", due_date, ("issueDate",)),
            c("purchase_order_id", "BIGINT", "purchaseOrder.id", "The purchase order's numeric id, if any (the first "
              "one when Precoro lists several; all are in raw)."),
            c("purchase_order_idn", "VARCHAR", "purchaseOrder.idn", "The purchase order's number, if any."),
            Column("parent_idn", "VARCHAR", "parentData.idn", "For split-cost child invoices: the base invoice's "
                   "number (parentData.idn, formerly parentIdn); empty for a base or ordinary invoice.", parent_idn,
                   ("parentIdn",)),
            c("integration_status", "INTEGER", "integrationStatus", "Precoro's integration status flag (8 = waiting "
              "for a disabled connector: not offered for export)."),
        ) + _invoice_detail_columns() + _approval_columns("invoice") + (
            c("is_required_taxes_for_items", "BOOLEAN", "isRequiredTaxesForItems",
              "Whether every line of the invoice must carry a tax."),
            c("xero_id", "VARCHAR", "xeroId", "The invoice's id in Xero, when Precoro's own Xero integration synced it."),
        ) + _links() + _dates(),
        _document_children("invoice") + (
            ChildTable("invoice_payments", "payments", "Payments recorded against each invoice (invoice ↔ payment).",
                       (c("payment_id", "BIGINT", "id", "The payment's numeric id."),
                        c("payment_idn", "VARCHAR", "idn", "The payment's number (precoro.payments.idn)."),
                        c("sum_paid", MONEY, "sumPaid", "Amount of this payment."),
                        c("pay_date", TIME, "payDate", "When it was paid."),
                        c("currency", "VARCHAR", "currency", "Currency of the payment."),
                        c("logic_type", "INTEGER", "logicType", "Payment logic type (0 = payment)."),
                        c("status", "INTEGER", "status", "The payment's status (8 = canceled: still listed, but no "
                          "longer counted in the invoice's sumPaid)."),
                        c("status_name", "VARCHAR", "statusString", "The payment's status as Precoro names it.")),
                       ("payment_id",)),
        ),
        partitioned=True, fetch_detail=True, document_type="invoice", also_list=(CREDIT_NOTES,),
        raw_only=INVOICE_RAW_ONLY),
    Entity(
        "expenses", "expenses", "idn",
        "Expenses: employees' spending, approved and paid like invoices.",
        _document_header() + (
            c("expense_number", "VARCHAR", "expenseNumber", "The expense's number."),
            c("sum_paid", MONEY, "sumPaid", "Amount paid so far (a number here, a string on invoices)."),
            c("integration_status", "INTEGER", "integrationStatus", "Precoro's integration status flag."),
        ) + _payable_columns("expense") + _invoice_detail_columns() + _approval_columns("expense") + (
            c("sum_paid_in_company_currency", MONEY, "sumPaidInCompanyCurrency",
              "Amount paid so far, in the company currency."),
            c("withholding_tax_sum", MONEY, "withholdingTaxSum", "Withholding tax on the expense."),
            c("last_editor_id", "BIGINT", "lastEditor.id", "The user who last edited the expense (precoro.users.id)."),
        ) + _links() + _dates(),
        _document_children("expense") + (
            ChildTable("expense_payments", "expensePayments", "Payments of expenses (Precoro's expensePayments).",
                       (c("payment_id", "BIGINT", "id", "The payment's numeric id."),
                        c("sum_paid", MONEY, "sumPaid", "Amount of this payment."),
                        c("pay_date", TIME, "payDate", "When it was paid."),
                        c("currency", "VARCHAR", "currency", "Currency of the payment."),
                        c("status", "INTEGER", "status", "The payment's status (8 = canceled)."),
                        c("status_name", "VARCHAR", "statusString", "The payment's status as Precoro names it.")),
                       ("payment_id",)),
        ),
        partitioned=True, fetch_detail=True, document_type="expense", raw_only=INVOICE_RAW_ONLY),
    Entity(
        "payments", "payments", "idn",
        "Payments recorded in Precoro against invoices.",
        (c("id", "BIGINT", "id", "Precoro's numeric id of the payment."),
         c("idn", "VARCHAR", "idn", "The company's payment number in Precoro."),
         c("invoice_id", "BIGINT", "invoice.id", "The paid invoice's numeric id."),
         c("invoice_idn", "VARCHAR", "invoice.idn", "The paid invoice's number (precoro.invoices.idn)."),
         c("supplier_id", "BIGINT", "supplier.id", "The supplier paid."),
         c("sum_paid", MONEY, "sumPaid", "Amount paid."),
         c("pay_date", TIME, "payDate", "When it was paid."),
         c("currency", "VARCHAR", "currency", "Currency of the payment."),
         c("logic_type", "INTEGER", "logicType", "Payment logic type (0 = payment)."),
         c("status", "INTEGER", "status", "Status code (8 = canceled: it no longer counts in the invoice's "
           "sumPaid)."),
         c("status_name", "VARCHAR", "statusString", "Status as Precoro names it.")) + _links() + _dates(),
        (), partitioned=True, fetch_detail=False, document_type="payment"),
)


# ---- reference data: unpartitioned, synced by modifiedSince ---------------------------------------

# Suppliers' bank details: what a payment fraud needs, so analysts don't read them by default.
BANK_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("account_number", "accountNumber", "Bank account number"),
    ("iban", "internationalBankAccountNumber", "IBAN"),
    ("swift_code", "swiftCode", "SWIFT/BIC code"),
    ("sort_code", "sortCode", "UK sort code"),
    ("aba_routing_number", "americanBankersAssociationNumber", "US ABA routing number"),
    ("ifsc", "indianFinancialSystemCode", "Indian Financial System Code"),
    ("pan", "permanentAccountNumber", "Indian Permanent Account Number (tax id)"),
)
MASKED = ("masked to its last 4 characters (here and in raw) unless PRECORO_KEEP_BANK_DETAILS=1 was set when "
          "it was synced.")

def _custom_fields(name: str, path: str, kind: str) -> Entity:
    singular = name[:-1]
    return Entity(
        name, path, "id", f"{kind.capitalize()} custom fields defined in Precoro, with their drop-down options.",
        (c("id", "BIGINT", "id", "Precoro's id of the custom field."),
         c("name", "VARCHAR", "name", "The field's label."),
         c("type", "VARCHAR", "type", "Field type (select = drop-down, text, number, date)."),
         c("required", "BOOLEAN", "required", "Whether the field must be filled."),
         c("enable", "BOOLEAN", "enable", "Whether the field is active.")) + _dates(approval=False),
        (ChildTable(f"{singular}_options", "options", f"Drop-down options of {kind} custom fields.",
                    (c("option_id", "BIGINT", "id", "Precoro's id of the option (what values refer to)."),
                     c("name", "VARCHAR", "name", "The option's label."),
                     c("code", "VARCHAR", "code", "The option's code."),
                     c("enable", "BOOLEAN", "enable", "Whether the option is active.")) + _links()[:1]
                    + (c("external_integration_log", "VARCHAR", "externalIntegrationLog",
                         "Error text from the last accounting sync attempt."),),
                    ("option_id",)),),
        document_type=singular)


def _simple(name: str, path: str, description: str, extra: tuple[Column, ...],
            may_lack: tuple[str, ...] = ()) -> Entity:
    columns = (c("id", "BIGINT", "id", "Precoro's id."), c("name", "VARCHAR", "name", "Name."))
    return Entity(name, path, "id", description, columns + extra + _links() + _dates(approval=False),
                  document_type=name[:-1], may_lack=may_lack)


def _payment_term_codes() -> tuple[Column, ...]:
    """Two codes of a payment term that Precoro sends as numbers (its connector and SDK type them so; the SDK sends
    paymentType 0, 1 or 2). What each code means is not documented: they are kept as the numbers Precoro sends."""
    return (
        c("terms_due_date_after_invoicing", "INTEGER", "termsDueDateAfterInvoicing",
          "Precoro's code for when the credit period starts (a number)."),
        c("payment_type", "INTEGER", "paymentType", "Precoro's code for how payment is made (a number: 0, 1 or 2)."),
    )


REFERENCE: tuple[Entity, ...] = (
    Entity(
        "suppliers", "suppliers", "id", "Suppliers (vendors) the company buys from.",
        (c("id", "BIGINT", "id", "Precoro's id of the supplier."),
         c("name", "VARCHAR", "name", "Supplier name."),
         c("unique_code", "VARCHAR", "uniqueCode", "The company's supplier code."),
         c("status", "INTEGER", "status", "1 pending, 2 approved, 3 rejected."),
         c("status_name", "VARCHAR", "statusString", "Status as Precoro names it."),
         c("enable", "BOOLEAN", "enable", "Whether the supplier is active."),
         c("currency", "VARCHAR", "currency", "Default currency."),
         c("currencies", "VARCHAR", "currencies", "All currencies the supplier works in (JSON list)."),
         c("tax_number", "VARCHAR", "taxPayerNumber", "Tax/VAT number (Precoro's taxPayerNumber)."),
         c("tax_payer", "BOOLEAN", "taxPayer", "Whether the supplier is a tax payer."),
         c("business_registration_number", "VARCHAR", "businessRegistrationNumber", "Company registration number."),
         c("legal_address", "VARCHAR", "legalAddress", "Registered address."),
         c("city", "VARCHAR", "city", "City."),
         c("country", "VARCHAR", "country", "Country."),
         c("phone", "VARCHAR", "phone", "Phone number."),
         # the rest of the supplier's detail (GET /suppliers/{id}), as Precoro's own connector reads it
         c("state", "VARCHAR", "state", "State or region."),
         c("postal_code", "VARCHAR", "postalCode", "Postal code."),
         c("note", "VARCHAR", "note", "Note on the supplier."),
         c("conditions", "VARCHAR", "conditions", "Terms and conditions agreed with the supplier."),
         c("creator_id", "BIGINT", "creator.id", "The user who created the supplier (precoro.users.id)."),
         c("tax_payer_type", "INTEGER", "taxPayerType", "Kind of tax number, as Precoro numbers it (see "
           "tax_payer_label)."),
         c("tax_payer_label", "VARCHAR", "taxPayerLabel", "What the tax number is called (e.g. VAT number, EIN)."),
         c("delivery_period", "INTEGER", "deliveryPeriod", "Usual delivery time, in days."),
         c("minimum_sum", MONEY, "minimumSum", "Minimum order amount, in the supplier's currency."),
         c("enable_tolerance_rate", "BOOLEAN", "enableToleranceRate",
           "Whether invoices may differ from their purchase order within a tolerance."),
         c("tolerance_rate_percent", RATE, "toleranceRatePercent", "That tolerance, in percent."),
         c("integration_status", "INTEGER", "integrationStatus", "Precoro's integration status flag."),
         c("account_holder_name", "VARCHAR", "accountHolderName", "Bank account holder."),
         c("bank_name", "VARCHAR", "bankName", "Bank name."),
         c("bank_address", "VARCHAR", "bankAddress", "Bank address."))
        + tuple(c(name, "VARCHAR", source, f"{what}; {MASKED}") for name, source, what in BANK_FIELDS)
        + _links()[:1] + _dates(),
        (ChildTable("supplier_contacts", "contacts", "Contact people of suppliers.",
                    (c("contact_id", "BIGINT", "id", "Precoro's id of the contact."),
                     c("name", "VARCHAR", "name", "Contact name."),
                     c("email", "VARCHAR", "email", "E-mail address."),
                     c("phone", "VARCHAR", "phone", "Phone number.")), ("contact_id",)),
         ChildTable("supplier_payment_terms", "paymentTerms", "Payment terms agreed with each supplier.",
                    (c("payment_term_id", "BIGINT", "id", "The payment term (precoro.payment_terms.id)."),
                     c("name", "VARCHAR", "name", "Payment term name."),
                     c("credit_period_days", "INTEGER", "creditPeriodDays", "Days to pay after the invoice date."),
                     c("prepayment_percent", RATE, "prepaymentPercent", "Share paid before delivery, in percent."),
                     c("postpayment_percent", RATE, "postpaymentPercent", "Share paid after invoicing, in percent."),
                     *_payment_term_codes(),
                     c("enable", "BOOLEAN", "enable", "Whether the payment term is active."),
                     c("external_id", "VARCHAR", "externalId", "Id of the payment term in the accounting system.")),
                    ("payment_term_id",)),
         ChildTable("supplier_custom_field_values", "dataSupplierCustomFields",
                    "Supplier custom field values (the fields themselves are not read yet: GET /suppliercustomfields).",
                    (c("field_id", "BIGINT", "supplierCustomField.id", "The supplier custom field's id."),
                     c("value", "VARCHAR", "value", "The value as Precoro stores it: text, or an option id for "
                       "drop-downs.")), ("field_id",)),
         ChildTable("supplier_legal_entities", "supplierLegalEntities",
                    "The company's legal entities each supplier works with.",
                    (c("legal_entity_id", "BIGINT", "id", "The legal entity (precoro.legal_entities.id)."),
                     c("name", "VARCHAR", "name", "The legal entity's name.")), ("legal_entity_id",))),
        # list rows lack payment terms, contacts and legal entities: the detail of each new or changed supplier
        fetch_detail=True, document_type="supplier", sensitive=tuple(source for _, source, _ in BANK_FIELDS)),
    Entity(
        "items", "items", "id", "Catalogue items (products and services) with their supplier and price.",
        (c("id", "BIGINT", "id", "Precoro's id of the item."),
         c("name", "VARCHAR", "name", "Item name."),
         c("sku", "VARCHAR", "sku", "Stock keeping unit."),
         c("type", "INTEGER", "type", "Item type code (see type_name)."),
         c("type_name", "VARCHAR", "typeString", "Item type as Precoro names it (e.g. product, service)."),
         c("description", "VARCHAR", "description", "Description."),
         c("price", UNIT_PRICE, "price", "Catalogue price (in the supplier's currency; every decimal Precoro sends)."),
         c("category_id", "BIGINT", "category.id", "Item category's id, where Precoro still sends `category` (it is "
           "removing it; see items_overview for the category from the item custom field \"Category\")."),
         c("category_name", "VARCHAR", "category.name", "Item category, where Precoro still sends `category` (see "
           "items_overview.category)."),
         c("supplier_id", "BIGINT", "supplier.id", "The supplier (precoro.suppliers.id)."),
         c("disabled_by_supplier", "BOOLEAN", "disabledBySupplier", "Whether the supplier disabled the item."),
         c("hidden_in_catalog", "BOOLEAN", "hiddenInCatalog", "Whether the item is hidden in the catalogue."),
         c("free_of_charge", "BOOLEAN", "freeOfCharge", "Whether the item is free of charge."))
        + _links()[:1] + _dates(approval=False),
        (ChildTable("item_custom_field_values", "dataProductCustomFields", "Custom field values of catalogue items "
                    "(Precoro's dataProductCustomFields or dataItemCustomFields), the \"Category\" field included.",
                    (c("field_id", "BIGINT", "itemCustomField.id", "The item custom field."),
                     c("value", "VARCHAR", "value", "Text, or an option id for drop-downs.")), ("field_id",),
                    also_from=("dataItemCustomFields",)),),
        # Precoro is removing `category` from every response (the item custom field "Category" holds it)
        document_type="item", may_lack=("category",)),
    # Precoro may send taxes without dates: with no update_date stored, every sync re-reads them all (few rows)
    _simple("taxes", "taxes", "Taxes defined in Precoro.",
            (c("percent", RATE, "percent", "Tax rate in percent."),
             c("value", RATE, "value", "Precoro's value of the tax (the rate, for percentage taxes)."),
             c("tax_amount", MONEY, "taxAmount", "Fixed tax amount, for taxes that are an amount."),
             c("is_withholding_tax", "BOOLEAN", "isWithholdingTax", "Whether this is a withholding tax.")),
            may_lack=("createDate", "updateDate")),
    _simple("payment_terms", "paymentterms", "Payment terms.",
            (c("credit_period_days", "INTEGER", "creditPeriodDays", "Days to pay after the invoice date."),
             c("prepayment_percent", RATE, "prepaymentPercent", "Share paid before delivery, in percent."),
             c("postpayment_percent", RATE, "postpaymentPercent", "Share paid after invoicing, in percent."),
             *_payment_term_codes(),
             c("enable", "BOOLEAN", "enable", "Active."))),
    _simple("locations", "locations", "Company locations (offices, sites).",
            (c("address", "VARCHAR", "address", "Address."), c("enable", "BOOLEAN", "enable", "Active."))),
    _simple("legal_entities", "legalentities", "The company's legal entities.",
            (c("tax_number", "VARCHAR", "taxNumber", "Tax number."), c("enable", "BOOLEAN", "enable", "Active."))),
    _custom_fields("document_custom_fields", "documentcustomfields", "document"),
    _custom_fields("item_custom_fields", "itemcustomfields", "item (line)"),
    Entity(
        "users", "users", "id", "Users of the company's Precoro account (as far as the API token may see).",
        (c("id", "BIGINT", "id", "Precoro's id of the user."),
         c("full_name", "VARCHAR", "fullName", "Full name."),
         c("first_name", "VARCHAR", "firstName", "First name."),
         c("last_name", "VARCHAR", "lastName", "Last name."),
         c("email", "VARCHAR", "email", "E-mail address."),
         c("roles", "VARCHAR", "roles", "The user's roles in Precoro (JSON list)."),
         c("enable", "BOOLEAN", "enable", "Whether the user is active.")) + _links() + _dates(approval=False),
        document_type="user"),
    _simple("warehouses", "warehouses", "Warehouses (stock locations).",
            (c("location_id", "BIGINT", "location.id", "The location (precoro.locations.id)."),)),
    # no webhook type: kept current by modifiedSince only
    _simple("units", "units", "Units of measure (pieces, kilograms, hours...); a line's `unit` is a unit's code.",
            (c("code", "VARCHAR", "code", "The unit's code, as lines name their unit (e.g. pcs, kg, hour)."),
             c("enable", "BOOLEAN", "enable", "Active."))),
)

ENTITIES: tuple[Entity, ...] = DOCUMENTS + REFERENCE
BY_NAME: dict[str, Entity] = {entity.name: entity for entity in ENTITIES}


def select(names: Iterable[str] | None) -> tuple[Entity, ...]:
    """The entities named (in catalogue order), every entity for None; an unknown name is an error that lists the
    known ones."""
    if names is None:
        return ENTITIES
    wanted = set(names)
    unknown = sorted(wanted - set(BY_NAME))
    if unknown:
        raise ValueError(f"unknown entities {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    return tuple(entity for entity in ENTITIES if entity.name in wanted)
