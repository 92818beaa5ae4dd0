"""The export side of the ledger folder: `FileLedgerSink` writes the documents and suppliers offered to the
accounting side to <ledger>/export/*.csv, refusing what a real accounting import would (an unknown vendor, an
over-long field), and writes text cells so that spreadsheets never run them as formulas (`neutralised`).
The folder's layout and the reading side: files.py.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .files import EXPORT_FOLDER, VENDORS_FILE, NotRegularFile, read_regular
from .source import ExportDocument, ExportResult, ExportVendor, same_name

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
# Columns written as numbers: never prefixed (a credit note's -12.50 stays a number). Every other str is text.
NUMERIC_EXPORT_COLUMNS = frozenset({"amount"})
# Spreadsheets run a cell starting with these as a formula (OWASP, "CSV Injection"); a quote marks it as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A field longer than this is refused: no accounting import takes it, and Python's csv reader stops at 128 KiB,
# which would make the export file unreadable for every later write-back.
MAX_EXPORT_FIELD = 10_000


class ExportFileError(Exception):
    """An export file (or vendors.csv) that can't be read; the message names the file and what to do."""


def neutralised(value: str) -> str:
    """A text cell that no spreadsheet runs as a formula: OWASP's CSV injection advice, a leading single quote
    for a cell starting with = + - @ tab or carriage return (spreadsheets show the text without the quote).
    A cell already starting with a quote gets one more, so `restored` gives back exactly what was written."""
    return f"'{value}" if value.startswith((*FORMULA_STARTS, "'")) else value


def restored(value: str) -> str:
    """The text `neutralised` was given (the warehouse and Precoro keep the exact value; only the file has it)."""
    return value[1:] if value.startswith("'") and value[1:].startswith((*FORMULA_STARTS, "'")) else value


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
        if not path.exists() and not path.is_symlink():
            return None
        try:  # a link to /dev/zero would never end; to a private file, not ours to read
            data = read_regular(path)
        except NotRegularFile as refusal:
            raise ExportFileError(f"{path} {refusal}") from None
        text = data.decode("utf-8", "replace").removeprefix("\ufeff")
        names = {same_name(row.get("name")) for row in _read_rows(path, io.StringIO(text, newline=""))
                 if row.get("name")}
        return names | {same_name(row.get("name")) for row in self._rows(self.export_dir / "suppliers.csv")}

    def offer(self, document: ExportDocument) -> ExportResult:
        path = self.export_dir / f"{document.resource}.csv"
        too_long = _too_long(supplier=document.supplier, number=document.number)
        if too_long:
            return ExportResult(False, error=too_long)
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
        too_long = _too_long(name=vendor.name, tax_number=vendor.tax_number, address=vendor.address)
        if too_long:
            return ExportResult(False, error=too_long)
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
            return [{name: restored(value) if isinstance(value, str) else value for name, value in row.items()}
                    for row in _read_rows(path, handle)]

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
            writer.writerow({name: neutralised(value) if isinstance(value, str) and name not in NUMERIC_EXPORT_COLUMNS
                             else value for name, value in row.items()})
            handle.flush()
            os.fsync(handle.fileno())


def _too_long(**fields: str | None) -> str | None:
    """Why a document or vendor can't be exported: a field over MAX_EXPORT_FIELD characters (None if none is)."""
    for name, value in fields.items():
        if value and len(value) > MAX_EXPORT_FIELD:
            return (f"{name} is {len(value):,} characters long; the accounting import takes at most "
                    f"{MAX_EXPORT_FIELD:,} (shorten it in Precoro)")
    return None


def _read_rows(path: Path, handle: Any) -> list[dict[str, str]]:
    """The rows of a CSV file the sink reads; a file the csv module can't read (a field over its 128 KiB limit,
    written by hand or by an older version) is an ExportFileError naming the file, not a bare csv.Error."""
    try:
        return list(csv.DictReader(handle))
    except csv.Error as error:
        raise ExportFileError(f"{path} can't be read ({error}); fix or remove the offending line, then run the "
                              "write-back again") from None
