"""The default accounting side: a drop folder of CSV or Parquet exports, and an export folder for documents.

Layout of the folder (env PRECORO_LEDGER_DIR, default <PRECORO_HOME>/ledger):

    payments*.csv | payments*.parquet   payment_id, amount, currency, paid_on, and either bill_id
                                         (the bill = the Precoro invoice's externalId) or supplier (with
                                         invoice_number, or placed by the AP rules of ap_matching.py)
    bills*.csv    | bills*.parquet      bill_id, supplier, invoice_number, amount, currency, [bill_date], [type]
                                         (type "credit_note", or a negative amount, marks a credit note)
    vendors.csv                          vendor_id, name: the suppliers the accounting system knows (for exports;
                                         with more columns, see catalogue_files.py)
    products, accounts, tracking_categories, tax_rates (.csv/.parquet): the rest of the accounting catalogue,
                                         read by catalogue_files.py
    payment_allocations.csv, supplier_aliases.csv, reconciliation.yaml: the AP matching rules' inputs and
                                         settings, read by ap_matching.py
    export/                              written by FileLedgerSink: documents and suppliers handed to the
                                         accounting side

Every file is a full export (the folder is read as a snapshot). Amounts are plain decimals with at most two
decimals ("1234.50"), dates are YYYY-MM-DD, text is UTF-8. A row that breaks a rule is not loaded: it is
returned as a `RejectedRow` with its file, line and reason, and the rest of the file still loads.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .. import settings
from .source import (
    BILL,
    CREDIT_NOTE,
    ExportDocument,
    ExportResult,
    ExportVendor,
    LedgerBill,
    LedgerPayment,
    LedgerSnapshot,
    RejectedRow,
    same_name,
)

ENV_LEDGER_DIR = "PRECORO_LEDGER_DIR"
EXPORT_FOLDER = "export"
VENDORS_FILE = "vendors.csv"
# The accounting catalogue's files (stems), read by catalogue_files.py; vendors.csv also serves the export sink.
CATALOGUE_FILES = ("vendors", "products", "accounts", "tracking_categories", "tax_rates")
# The matching rules' files (stems), read by ap_matching.py with reconciliation.yaml.
MATCHING_FILES = ("supplier_aliases", "payment_allocations")

PAYMENT_COLUMNS = ("payment_id", "bill_id", "supplier", "invoice_number", "amount", "currency", "paid_on")
PAYMENT_REQUIRED = ("payment_id", "amount", "currency", "paid_on")
BILL_COLUMNS = ("bill_id", "type", "supplier", "invoice_number", "amount", "currency", "bill_date")
BILL_REQUIRED = ("bill_id", "supplier", "invoice_number", "amount", "currency")

_AMOUNT = re.compile(r"^-?\d+(\.\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def ledger_dir() -> Path:
    """The drop folder: PRECORO_LEDGER_DIR, else <PRECORO_HOME>/ledger."""
    configured = os.environ.get(ENV_LEDGER_DIR)
    return Path(configured).expanduser().resolve() if configured else settings.project_home() / "ledger"


class BadValue(ValueError):
    """A field that breaks the file format; the message is what the person fixing the export reads."""


# ---- field parsers: text (or a typed Parquet value) -> the value, or BadValue with a reason ---------------------

def parse_amount(value: Any, column: str = "amount") -> Decimal:
    """An exact amount with at most two decimals. Floats are refused: they can't carry cents exactly."""
    if isinstance(value, bool) or isinstance(value, float):
        raise BadValue(f"{column} {value!r} is a floating-point number; export amounts as decimals or text")
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    else:
        text = str(value or "").strip()
        if not text:
            raise BadValue(f"{column} is empty")
        if not _AMOUNT.match(text):
            raise BadValue(f"{column} {text!r} is not a plain decimal number (write 1234.50: a dot for decimals, "
                           "no thousands separators or currency signs)")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise BadValue(f"{column} {text!r} is not a number") from None
    if not number.is_finite():
        raise BadValue(f"{column} {value!r} is not a finite number")
    if number != number.quantize(Decimal("0.01")):
        raise BadValue(f"{column} {value!r} has more than two decimals")
    return number.quantize(Decimal("0.01"))


def parse_day(value: Any, column: str) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    text = str(value or "").strip()
    if not _DATE.match(text):
        raise BadValue(f"{column} {text!r} is not a date in the form YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise BadValue(f"{column} {text!r} is not a valid date ({error})") from None


def parse_currency(value: Any) -> str:
    text = str(value or "").strip().upper()
    if not _CURRENCY.match(text):
        raise BadValue(f"currency {value!r} is not a three-letter ISO code")
    return text


def parse_text(value: Any, column: str, required: bool = True) -> str | None:
    text = "" if value is None else str(value).strip()
    if not text:
        if required:
            raise BadValue(f"{column} is empty")
        return None
    return text


class _Faults:
    """Collects every fault of one row, so the person fixing the export sees them all at once."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def __call__(self, parse: Callable[..., Any], *args: Any) -> Any:
        try:
            return parse(*args)
        except BadValue as error:
            self.found.append(str(error))
            return None

    def check(self, fault: str | None) -> None:
        if fault:
            self.found.append(fault)

    def raise_any(self) -> None:
        if self.found:
            raise BadValue("; ".join(self.found))


def payment_from(fields: dict[str, Any], file: str, line: int) -> LedgerPayment:
    faults = _Faults()
    amount = faults(parse_amount, fields.get("amount"))
    faults.check(f"amount {amount} must be greater than zero (record refunds and credits as credit notes in the "
                 "bills file)" if amount is not None and amount <= 0 else None)
    bill_id = parse_text(fields.get("bill_id"), "bill_id", required=False)
    supplier = parse_text(fields.get("supplier"), "supplier", required=False)
    number = parse_text(fields.get("invoice_number"), "invoice_number", required=False)
    faults.check("the payment names no invoice: give bill_id, or supplier (with invoice_number, or allocation "
                 "lines in payment_allocations.csv, or an amount that settles its open invoices)"
                 if bill_id is None and supplier is None else None)
    payment_id = faults(parse_text, fields.get("payment_id"), "payment_id")
    currency = faults(parse_currency, fields.get("currency"))
    paid_on = faults(parse_day, fields.get("paid_on"), "paid_on")
    faults.raise_any()
    return LedgerPayment(
        payment_id=payment_id, amount=amount, currency=currency, paid_on=paid_on,
        bill_id=bill_id, supplier=supplier, invoice_number=number, source_file=file, source_line=line)


def bill_from(fields: dict[str, Any], file: str, line: int) -> LedgerBill:
    faults = _Faults()
    amount = faults(parse_amount, fields.get("amount"))
    kind = (parse_text(fields.get("type"), "type", required=False) or "").lower().replace(" ", "_")
    faults.check(f"type {fields.get('type')!r} is neither 'bill' nor 'credit_note'"
                 if kind not in ("", BILL, CREDIT_NOTE) else None)
    if amount is not None:
        faults.check(f"amount {amount} is negative on a bill; mark credit notes with type credit_note"
                     if amount < 0 and kind == BILL else "amount is zero" if amount == 0 else None)
    bill_id = faults(parse_text, fields.get("bill_id"), "bill_id")
    supplier = faults(parse_text, fields.get("supplier"), "supplier")
    number = faults(parse_text, fields.get("invoice_number"), "invoice_number")
    currency = faults(parse_currency, fields.get("currency"))
    bill_date = fields.get("bill_date")
    day = faults(parse_day, bill_date, "bill_date") if parse_text(bill_date, "bill_date", False) else None
    faults.raise_any()
    kind = CREDIT_NOTE if kind == CREDIT_NOTE or amount < 0 else BILL
    return LedgerBill(bill_id=bill_id, kind=kind, supplier=supplier, invoice_number=number, amount=abs(amount),
                      currency=currency, bill_date=day, source_file=file, source_line=line)


# ---- readers: one file -> (line number, fields) pairs, or rejected rows ----------------------------------------

Row = tuple[int, dict[str, Any], str]  # line, fields by column, the row as text


def _printable(text: str) -> str:
    """Text that may hold undecodable bytes (kept as surrogates) with those bytes shown as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _has_bad_bytes(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _decode(data: bytes) -> str:
    """UTF-8 (undecodable bytes kept as surrogates, reported per line), or UTF-16 when the file says so with its
    byte order mark, as spreadsheet programs' "Unicode text" exports do."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "surrogateescape")
    return data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")


def _delimiter(header_line: str) -> str:
    """The header's separator: a comma, or a semicolon or tab where the header has no comma (spreadsheets in
    many locales write ';')."""
    if "," in header_line:
        return ","
    return max(";\t|", key=header_line.count) if any(c in header_line for c in ";\t|") else ","


def _records(lines: list[str], delimiter: str, width: int) -> Iterator[tuple[int, list[str] | None, str]]:
    """(first line number, fields, raw text) per record from line 2 on; fields None for a line whose quote is
    left open. A quoted field may span lines (a note with a line break) when the record it makes has the
    header's width; otherwise the open quote is taken as a mistake of its line alone, and the lines after it are
    read as rows of their own (instead of vanishing into one field)."""
    index = 1
    while index < len(lines):
        for end in range(index + 1, min(index + MAX_LINES_PER_RECORD, len(lines)) + 1):
            chunk = "".join(lines[index:end])
            try:
                parsed = list(csv.reader(io.StringIO(chunk, newline=""), delimiter=delimiter, strict=True))
            except csv.Error:
                continue  # a quote still open: the field may go on on the next line
            if len(parsed) <= 1 and (end == index + 1 or (parsed and len(parsed[0]) == width)):
                yield index + 1, (parsed[0] if parsed else []), chunk.rstrip("\r\n")
                index = end
            else:
                yield index + 1, None, lines[index].rstrip("\r\n")
                index += 1
            break
        else:  # never closed within reach
            yield index + 1, None, lines[index].rstrip("\r\n")
            index += 1


MAX_LINES_PER_RECORD = 20  # a quoted field spanning more lines than this is taken as a quote left open


def read_csv(path: Path, columns: tuple[str, ...], required: tuple[str, ...],
             rejected: list[RejectedRow]) -> Iterator[Row]:
    """Rows of a CSV file (comma-, semicolon- or tab-separated; UTF-8, or UTF-16 with a byte order mark); bad
    encodings, wrong field counts and quotes left open become rejected rows, and no line is lost."""
    lines = _decode(path.read_bytes()).splitlines(keepends=True)
    if not lines or not lines[0].strip():
        rejected.append(RejectedRow(path.name, 0, "the file is empty (expected a header line)"))
        return
    delimiter = _delimiter(lines[0])
    header = [name.strip().lower() for name in next(csv.reader([lines[0]], delimiter=delimiter))]
    missing = [name for name in required if name not in header]
    if missing:
        rejected.append(RejectedRow(path.name, 1, f"wrong columns: {', '.join(missing)} missing; the header must "
                                    f"name {', '.join(columns)} (in any order), separated by commas; no row of this "
                                    "file was loaded", _printable(lines[0].rstrip("\r\n")), whole_file=True))
        return
    for start, fields, text in _records(lines, delimiter, len(header)):
        raw = _printable(text)
        if fields is None:
            rejected.append(RejectedRow(path.name, start, "a quote (\") is left open on this line, or not followed by "
                                        f"the separator {delimiter!r}; the lines after it are read on their own", raw))
            continue
        if not fields or all(not f.strip() for f in fields):
            continue  # a blank line holds no row
        if any(_has_bad_bytes(f) for f in fields):
            rejected.append(RejectedRow(path.name, start, "bad encoding: the line is not valid UTF-8 (re-export the "
                                        "file as UTF-8)", raw))
            continue
        if len(fields) != len(header):
            rejected.append(RejectedRow(path.name, start, f"expected {len(header)} fields, found {len(fields)}",
                                        raw))
            continue
        yield start, dict(zip(header, fields, strict=True)), raw


def read_parquet(path: Path, columns: tuple[str, ...], required: tuple[str, ...],
                 rejected: list[RejectedRow]) -> Iterator[Row]:
    """Rows of a Parquet file (line = row number, from 1); typed values are kept for the parsers."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as error:  # noqa: BLE001 - any unreadable file is reported, not raised
        rejected.append(RejectedRow(path.name, 0, f"not a readable Parquet file: {error}"))
        return
    names = [name.strip().lower() for name in table.column_names]
    missing = [name for name in required if name not in names]
    if missing:
        rejected.append(RejectedRow(path.name, 0, f"wrong columns: {', '.join(missing)} missing; no row of this "
                                    "file was loaded", ",".join(names)))
        return
    for index, values in enumerate(table.to_pylist(), start=1):
        fields = {name.strip().lower(): value for name, value in values.items()}
        yield index, fields, ", ".join(f"{k}={v!r}" for k, v in fields.items())


# ---- the source ----------------------------------------------------------------------------------------------

class FileLedgerSource:
    """A LedgerSource over the drop folder (see the module docstring for the format)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.name = f"files in {self.directory}"

    def load(self) -> LedgerSnapshot:
        snapshot = LedgerSnapshot()
        if not self.directory.is_dir():
            return snapshot
        payment_ids: dict[str, str] = {}
        bill_ids: dict[str, str] = {}
        for path in sorted(p for p in self.directory.iterdir() if p.is_file()):
            kind = _file_kind(path)
            if kind is None:
                continue
            if kind == "unknown":
                snapshot.rejected.append(RejectedRow(path.name, 0, "unknown file: name ledger files payments*.csv, "
                                                     "bills*.csv (or .parquet), or one of the catalogue files "
                                                     f"{', '.join(f'{n}.csv' for n in CATALOGUE_FILES)}"))
                continue
            if kind in ("catalogue", "matching"):
                continue  # read by catalogue_files.py (vendors.csv by FileLedgerSink too), or by ap_matching.py
            snapshot.files.append(path.name)
            if kind == "payments":
                self.load_file(path, PAYMENT_COLUMNS, PAYMENT_REQUIRED, payment_from, "payment_id", payment_ids,
                               snapshot.payments, snapshot.rejected)
            else:
                self.load_file(path, BILL_COLUMNS, BILL_REQUIRED, bill_from, "bill_id", bill_ids, snapshot.bills,
                               snapshot.rejected)
        return snapshot

    @staticmethod
    def load_file(path: Path, columns: tuple[str, ...], required: tuple[str, ...],
                  build: Callable[[dict[str, Any], str, int], Any], id_column: str, seen: dict[str, str],
                  into: list, rejected: list[RejectedRow]) -> None:
        """Parse each row of one file with `build` into `into`; bad rows, and ids already `seen`, are rejected."""
        reader = read_parquet if path.suffix.lower() == ".parquet" else read_csv
        for line, fields, raw in reader(path, columns, required, rejected):
            try:
                record = build(fields, path.name, line)
            except BadValue as error:
                rejected.append(RejectedRow(path.name, line, str(error), raw))
                continue
            identity = getattr(record, id_column)
            if identity in seen:
                rejected.append(RejectedRow(path.name, line, f"duplicate {id_column} {identity!r} (first at "
                                            f"{seen[identity]}); only the first is loaded", raw))
                continue
            seen[identity] = f"{path.name}:{line}"
            into.append(record)


def _file_kind(path: Path) -> str | None:
    """payments | bills | catalogue | unknown (a data file we can't place) | None (not a data file)."""
    if path.suffix.lower() not in (".csv", ".parquet") or path.name.startswith("."):
        return None
    stem = path.stem.lower()
    if stem in CATALOGUE_FILES:
        return "catalogue"
    if stem in MATCHING_FILES:
        return "matching"
    for kind in ("payments", "bills"):
        if stem.startswith(kind):
            return kind
    return "unknown"


# ---- the sink ------------------------------------------------------------------------------------------------

# `type` (bill, credit_note, purchase_order) came last, after exported_at: files written before it keep their
# columns, and new rows follow a file's own header.
EXPORT_COLUMNS = ("external_id", "precoro_idn", "precoro_id", "supplier", "number", "amount", "currency",
                  "exported_at", "type")
EXTERNAL_ID_PREFIX = {"invoices": "ACC-BILL", "purchaseorders": "ACC-PO"}
# Suppliers offered as new vendors: export/suppliers.csv, in the catalogue's vendors.csv columns (an accounting
# import reads both the same way), plus Precoro's id and when it was offered.
VENDOR_EXPORT_COLUMNS = ("vendor_id", "name", "currency", "currencies", "tax_number", "address", "precoro_id",
                         "exported_at")
VENDOR_ID_PREFIX = "ACC-VEN"


class FileLedgerSink:
    """A LedgerSink that writes accepted documents to <ledger>/export/<resource>.csv for the accounting import.

    It stands in for the accounting system's API, including its refusals: a document whose supplier is not in
    vendors.csv is refused ("unknown vendor"), the most common reason real imports fail. Without vendors.csv
    every supplier is accepted. Offering a document again returns the id it already got (idempotent), so a
    write-back retried after a crash never exports a document twice.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.export_dir = self.directory / EXPORT_FOLDER
        self.name = f"files in {self.export_dir}"

    def vendors(self) -> set[str] | None:
        """The accounting system's vendor names (compared with `same_name`), or None when no list is kept: its
        vendors.csv, and the suppliers offered to it since (accepted there, as an accounting API would)."""
        path = self.directory / VENDORS_FILE
        if not path.exists():
            return None
        text = path.read_bytes().decode("utf-8", "replace").removeprefix("\ufeff")
        names = {same_name(row.get("name")) for row in csv.DictReader(io.StringIO(text, newline=""))
                 if row.get("name")}
        return names | {same_name(row.get("name")) for row in self._rows(self.export_dir / "suppliers.csv")}

    def offer(self, document: ExportDocument) -> ExportResult:
        path = self.export_dir / f"{document.resource}.csv"
        with self._locked():
            existing = self._exported(path, "precoro_idn", "external_id").get(document.idn)
            if existing:
                return ExportResult(True, external_id=existing)
            vendors = self.vendors()
            if vendors is not None and same_name(document.supplier) not in vendors:
                return ExportResult(False, error=f"Vendor '{document.supplier}' does not exist in the "
                                                 "accounting system")
            external_id = f"{EXTERNAL_ID_PREFIX.get(document.resource, 'ACC')}-{document.idn}"
            self._append(path, EXPORT_COLUMNS, {
                "external_id": external_id, "precoro_idn": document.idn, "precoro_id": document.id or "",
                "supplier": document.supplier, "number": document.number, "amount": format(document.amount, "f"),
                "currency": document.currency, "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "type": document.kind})
            return ExportResult(True, external_id=external_id)

    def offer_vendor(self, vendor: ExportVendor) -> ExportResult:
        path = self.export_dir / "suppliers.csv"
        with self._locked():
            existing = self._exported(path, "precoro_id", "vendor_id").get(str(vendor.precoro_id))
            if existing:
                return ExportResult(True, external_id=existing)
            vendor_id = f"{VENDOR_ID_PREFIX}-{vendor.precoro_id}"
            self._append(path, VENDOR_EXPORT_COLUMNS, {
                "vendor_id": vendor_id, "name": vendor.name, "currency": vendor.currency or "",
                "currencies": "|".join(vendor.currencies), "tax_number": vendor.tax_number or "",
                "address": vendor.address or "", "precoro_id": vendor.precoro_id,
                "exported_at": datetime.now(UTC).isoformat(timespec="seconds")})
            return ExportResult(True, external_id=vendor_id)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Two write-back runs never append the same record twice."""
        self.export_dir.mkdir(parents=True, exist_ok=True)
        with open(self.export_dir / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _rows(path: Path) -> list[dict[str, str]]:
        if not path.exists():
            return []
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    def _exported(self, path: Path, key: str, value: str) -> dict[str, str]:
        return {row[key]: row[value] for row in self._rows(path)}

    @staticmethod
    def _append(path: Path, columns: tuple[str, ...], row: dict[str, object]) -> None:
        header = columns
        if path.exists():
            with open(path, newline="", encoding="utf-8") as handle:
                header = tuple(next(csv.reader(handle), columns))
        with open(path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
            if not path.stat().st_size:
                writer.writeheader()
            writer.writerow(row)
            handle.flush()
            os.fsync(handle.fileno())
