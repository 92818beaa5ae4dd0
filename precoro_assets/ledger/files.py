"""The default accounting side: a drop folder of CSV or Parquet exports, and an export folder for documents.

Layout of the folder (PRECORO_LEDGER_DIR, default <PRECORO_HOME>/ledger: the settings read it and the caller
passes the directory, as it passes PRECORO_LEDGER_SETTLE_SECONDS):

    payments*.csv | payments*.parquet   payment_id, amount, currency, paid_on, and either bill_id
                                         (the bill = the Precoro invoice's externalId) or supplier (with
                                         invoice_number, or placed by the AP rules of reconcile/ap_matching.py)
    bills*.csv    | bills*.parquet      bill_id, supplier, invoice_number, amount, currency, [bill_date], [type]
                                         (type "credit_note", or a negative amount, marks a credit note)
    vendors.csv                          vendor_id, name: the suppliers the accounting system knows (for exports;
                                         with more columns, see master_data_files.py)
    products, accounts, tracking_categories, tax_rates (.csv/.parquet): the rest of the accounting catalogue,
                                         read by master_data_files.py
    payment_allocations.csv, supplier_aliases.csv, reconciliation.yaml: the AP matching rules' inputs and
                                         settings, read by reconcile/ap_matching.py
    export/                              written by FileLedgerSink (file_sink.py): documents and suppliers handed to the
                                         accounting side

Every file is a full export (the folder is read as a snapshot). Amounts are plain decimals with at most two
decimals ("1234.50"), dates are YYYY-MM-DD, text is UTF-8. A row that breaks a rule is not loaded: it is
returned as a `RejectedRow` with its file, line and reason, and the rest of the file still loads.

Only regular files of the folder itself are read (a link is refused unread: see `check_regular`), only once nobody
is writing them (`read_stable`), and a last line without its line break is never loaded. The export side
(file_sink.py) writes text cells so that spreadsheets never run them as formulas (`neutralised`).
"""

from __future__ import annotations

import csv
import errno
import io
import os
import re
import stat
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

from .source import (
    BILL,
    CREDIT_NOTE,
    LedgerBill,
    LedgerNotReady,
    LedgerPayment,
    LedgerSnapshot,
    RejectedRow,
)

EXPORT_FOLDER = "export"
VENDORS_FILE = "vendors.csv"
# The accounting catalogue's files (stems), read by master_data_files.py; vendors.csv also serves the export sink.
CATALOGUE_FILES = ("vendors", "products", "accounts", "tracking_categories", "tax_rates")
# The matching rules' files (stems), read by reconcile/ap_matching.py with reconciliation.yaml.
MATCHING_FILES = ("supplier_aliases", "payment_allocations")

PAYMENT_COLUMNS = ("payment_id", "bill_id", "supplier", "invoice_number", "amount", "currency", "paid_on")
PAYMENT_REQUIRED = ("payment_id", "amount", "currency", "paid_on")
BILL_COLUMNS = ("bill_id", "type", "supplier", "invoice_number", "amount", "currency", "bill_date")
BILL_REQUIRED = ("bill_id", "supplier", "invoice_number", "amount", "currency")

_AMOUNT = re.compile(r"^-?\d+(\.\d+)?$")
# MONEY is DECIMAL(18,2): 16 digits before the point. A larger amount is a typo or a hostile file, never money.
AMOUNT_LIMIT = Decimal(10) ** 16
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _shown(value: Any, limit: int = 40) -> str:
    """A value quoted in a reason, cut to `limit` characters: reasons go to logs and Dagster's event log."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(str(value)):,} characters)"


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
            raise BadValue(f"{column} {_shown(text)} is not a plain decimal number (write 1234.50: a dot for decimals, "
                           "no thousands separators or currency signs)")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise BadValue(f"{column} {_shown(text)} is not a number") from None
    if not number.is_finite():
        raise BadValue(f"{column} {_shown(value)} is not a finite number")
    if abs(number) >= AMOUNT_LIMIT:  # checked first: quantize() itself fails on 27+ digits
        raise BadValue(f"{column} {_shown(value)} is out of range: the warehouse keeps amounts as DECIMAL(18,2), at "
                       f"most {AMOUNT_LIMIT.adjusted()} digits before the decimal point")
    if number != number.quantize(Decimal("0.01")):
        raise BadValue(f"{column} {_shown(value)} has more than two decimals")
    return number.quantize(Decimal("0.01"))


def parse_day(value: Any, column: str) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    text = str(value or "").strip()
    if not _DATE.match(text):
        raise BadValue(f"{column} {_shown(text)} is not a date in the form YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise BadValue(f"{column} {_shown(text)} is not a valid date ({error})") from None


def parse_currency(value: Any) -> str:
    text = str(value or "").strip().upper()
    if not _CURRENCY.match(text):
        raise BadValue(f"currency {_shown(value)} is not a three-letter ISO code")
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
    faults.check(f"type {_shown(fields.get('type'))} is neither 'bill' nor 'credit_note'"
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


# ---- reading a file of the folder: only regular files, only once nobody writes them -----------------------------

# A file must have been left alone this long before it is read, unless the caller passes
# PRECORO_LEDGER_SETTLE_SECONDS from the settings (whose default this is). Read when called, so tests may lower it.
SETTLE_SECONDS = 2.0
WAIT_SECONDS = 30.0  # how long a load waits for a file being written before it gives up (the previous load stays)
ROW_TEXT_LIMIT = 1000  # characters of a rejected row kept for the person fixing the export


class NotRegularFile(Exception):
    """A name in the folder that is a link, a directory, a pipe or a device: never read (see `read_stable`)."""


def check_regular(path: Path) -> None:
    """Refuse a symbolic link or anything but a regular file, without following it."""
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        raise NotRegularFile("is a symbolic link: ledger files are read only as regular files in the folder itself "
                             "(a link could bring in any file of this computer); copy the export into the folder")
    if not stat.S_ISREG(mode):
        raise NotRegularFile("is not a regular file (a directory, pipe or device); put the export itself here")


def open_regular(path: Path) -> tuple[BinaryIO, os.stat_result]:
    """A regular file of the folder, open for reading, and its status: opened without following a link and checked
    on the open descriptor (a link swapped in after a check by name is not followed either)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        if error.errno == errno.ELOOP:
            check_regular(path)  # raises NotRegularFile for the link
        raise
    handle = os.fdopen(fd, "rb")
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        handle.close()
        raise NotRegularFile("is not a regular file (a directory, pipe or device); put the export itself here")
    return handle, status


def read_regular(path: Path) -> bytes:
    """The bytes of a regular file of the folder (see open_regular)."""
    handle, _ = open_regular(path)
    with handle:
        return handle.read()


def read_stable(path: Path, settle: float | None = None, wait: float | None = None) -> bytes:
    """The bytes of a regular file of the folder, read once nobody is writing it.

    Why a quiet period and not a completion marker: exports come from accounting systems, scheduled jobs and
    people saving spreadsheets, and none of them writes a marker; all of them change the file's size or
    modification time while they write. So a file is read only when its last change is at least `settle` seconds
    old (or it was seen unchanged that long, should its time be odd, e.g. in the future), and the read counts only
    if size, modification time and inode are the same after it as before (a rewrite or a rename meanwhile is
    caught). A file that stays busy for `wait` seconds raises LedgerNotReady. The file is opened without following
    links (O_NOFOLLOW) and checked to be regular on the open descriptor, so swapping in a link after the check
    does not work either. Exporters that write to a hidden name (.payments.csv.tmp) and rename it when done are
    never seen half-written: dot-files are not read.
    """
    settle = SETTLE_SECONDS if settle is None else settle
    wait = WAIT_SECONDS if wait is None else wait
    deadline = time.monotonic() + wait
    seen, quiet_since = None, time.monotonic()
    while True:
        handle, before = open_regular(path)
        with handle:
            signature = (before.st_size, before.st_mtime_ns, before.st_ino)
            if signature != seen:
                seen, quiet_since = signature, time.monotonic()
            quiet = max(time.time() - before.st_mtime, time.monotonic() - quiet_since)
            if quiet >= settle:
                data = handle.read()
                after = os.fstat(handle.fileno())
                try:
                    now = os.stat(path, follow_symlinks=False)
                except FileNotFoundError:
                    now = None
                if (now is not None and (after.st_size, after.st_mtime_ns, after.st_ino) == signature
                        and (now.st_size, now.st_mtime_ns, now.st_ino) == signature and len(data) == before.st_size):
                    return data
                seen = None  # it changed while being read: wait for it to be quiet again
        if time.monotonic() >= deadline:
            raise LedgerNotReady(f"{path.name} is still being written (it changed during the last {wait:.0f} s; "
                                 f"{before.st_size:,} bytes when last seen): nothing was loaded and the previous "
                                 "load stays; the next load reads it again. Exporters should write to a hidden name "
                                 "(.name.tmp) and rename it when done")
        time.sleep(min(max(settle - quiet, 0.05), 0.5, max(deadline - time.monotonic(), 0)))


def _cut(text: str) -> str:
    """A rejected row's text, cut to ROW_TEXT_LIMIT characters: enough to find and fix the row."""
    return text if len(text) <= ROW_TEXT_LIMIT else f"{text[:ROW_TEXT_LIMIT]}... ({len(text):,} characters)"


# ---- readers: one file -> (line number, fields) pairs, or rejected rows ----------------------------------------

Row = tuple[int, dict[str, Any], str]  # line, fields by column, the row as text


def _printable(text: str) -> str:
    """Text that may hold undecodable bytes (kept as surrogates) with those bytes shown as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _has_bad_bytes(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _text_lines(data: bytes) -> Iterator[str]:
    """The file's lines with their line breaks (\\n, \\r\\n or \\r), decoded as they are read: UTF-8 (undecodable
    bytes kept as surrogates, reported per line), or UTF-16 when the file says so with its byte order mark, as
    spreadsheet programs' "Unicode text" exports do. A large file's text is never held whole."""
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    return io.TextIOWrapper(io.BytesIO(data), encoding=encoding, errors="surrogateescape", newline="")


class _Lines:
    """Iterates the lines of a file but holds back a last line without its line break (`unfinished`): an export
    read while it is written may end mid-line (1234.50 read as 12), so such a line is never loaded as data."""

    def __init__(self, lines: Iterator[str], counted: int = 0) -> None:
        self._lines = lines
        self.unfinished: str | None = None
        self.count = counted  # lines read so far

    def __iter__(self) -> Iterator[str]:
        for line in self._lines:
            self.count += 1
            if not line.endswith(("\n", "\r")):  # only the last line can end without one
                if line.strip():
                    self.unfinished = line
                return
            yield line


def _delimiter(header_line: str) -> str:
    """The header's separator: a comma, or a semicolon or tab where the header has no comma (spreadsheets in
    many locales write ';')."""
    if "," in header_line:
        return ","
    return max(";\t|", key=header_line.count) if any(c in header_line for c in ";\t|") else ","


def _records(lines: Iterator[str], delimiter: str, width: int) -> Iterator[tuple[int, list[str] | None, str]]:
    """(first line number, fields, raw text) per record from line 2 on (`lines` starts there); fields None for a
    line whose quote is left open. A quoted field may span lines (a note with a line break) when the record it
    makes has the header's width; otherwise the open quote is taken as a mistake of its line alone, and the lines
    after it are read as rows of their own (instead of vanishing into one field). At most MAX_LINES_PER_RECORD
    lines are held at a time."""
    ahead: deque[str] = deque()
    number = 2

    def have(count: int) -> bool:
        while len(ahead) < count:
            line = next(lines, None)
            if line is None:
                return False
            ahead.append(line)
        return True

    while have(1):
        taken = 1
        for size in range(1, MAX_LINES_PER_RECORD + 1):
            if not have(size):
                size = 0  # the file ended with the quote still open
                break
            chunk = "".join(islice(ahead, size))
            try:
                parsed = list(csv.reader(io.StringIO(chunk, newline=""), delimiter=delimiter, strict=True))
            except csv.Error:
                continue  # a quote still open: the field may go on on the next line
            if len(parsed) <= 1 and (size == 1 or (parsed and len(parsed[0]) == width)):
                yield number, (parsed[0] if parsed else []), chunk.rstrip("\r\n")
                taken = size
            else:
                yield number, None, ahead[0].rstrip("\r\n")
            break
        else:
            size = 0
        if not size:  # never closed within reach
            yield number, None, ahead[0].rstrip("\r\n")
        for _ in range(taken):
            ahead.popleft()
        number += taken


MAX_LINES_PER_RECORD = 20  # a quoted field spanning more lines than this is taken as a quote left open


def read_csv(path: Path, columns: tuple[str, ...], required: tuple[str, ...],
             rejected: list[RejectedRow], settle: float | None = None) -> Iterator[Row]:
    """Rows of a CSV file (comma-, semicolon- or tab-separated; UTF-8, or UTF-16 with a byte order mark); bad
    encodings, wrong field counts and quotes left open become rejected rows, and no line is lost."""
    text = _text_lines(read_stable(path, settle))
    first = next(text, "")  # the header (it may lack a line break in a file of no rows)
    lines = _Lines(text, counted=1)
    if not first.strip():
        rejected.append(RejectedRow(path.name, 0, "the file is empty (expected a header line)"))
        return
    delimiter = _delimiter(first)
    header = [name.strip().lower() for name in next(csv.reader([first], delimiter=delimiter))]
    missing = [name for name in required if name not in header]
    if missing:
        rejected.append(RejectedRow(path.name, 1, f"wrong columns: {', '.join(missing)} missing; the header must "
                                    f"name {', '.join(columns)} (in any order), separated by commas; no row of this "
                                    "file was loaded", _cut(_printable(first.rstrip("\r\n"))), whole_file=True))
        return
    for start, fields, record_text in _records(iter(lines), delimiter, len(header)):
        raw = _cut(_printable(record_text))
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
    if lines.unfinished is not None:
        rejected.append(RejectedRow(path.name, lines.count, "the last line has no line break at its end: the file "
                                    "may have been cut off while it was written (1234.50 read as 12), so the line is "
                                    "not loaded; re-export the file (a complete export ends every line)",
                                    _cut(_printable(lines.unfinished))))


def read_parquet(path: Path, columns: tuple[str, ...], required: tuple[str, ...],
                 rejected: list[RejectedRow], settle: float | None = None) -> Iterator[Row]:
    """Rows of a Parquet file (line = row number, from 1); typed values are kept for the parsers."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(read_stable(path, settle)))
    except (NotRegularFile, LedgerNotReady):
        raise
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
        yield index, fields, _cut(", ".join(f"{k}={v!r}" for k, v in fields.items()))


# ---- the source ----------------------------------------------------------------------------------------------

BATCH_ROWS = 50_000  # records handed over at a time by FileLedgerSource.load_into


class _Batches:
    """A list-like `into` for load_file that hands its records over every BATCH_ROWS."""

    def __init__(self, add: Callable[[str, list], None], kind: str) -> None:
        self.add, self.kind = add, kind
        self.records: list = []

    def append(self, record: Any) -> None:
        self.records.append(record)
        if len(self.records) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.records:
            self.add(self.kind, self.records)
            self.records = []


class FileLedgerSource:
    """A LedgerSource over the drop folder (see the module docstring for the format)."""

    def __init__(self, directory: str | Path, settle_seconds: float | None = None) -> None:
        """`settle_seconds`: PRECORO_LEDGER_SETTLE_SECONDS from the settings (None: SETTLE_SECONDS)."""
        self.directory = Path(directory)
        self.settle_seconds = settle_seconds
        self.name = f"files in {self.directory}"

    def load(self) -> LedgerSnapshot:
        """Every payment and bill at once (see `load_into` for a large ledger)."""
        snapshot = LedgerSnapshot()
        self.load_into(lambda kind, records: getattr(snapshot, kind).extend(records), snapshot)
        return snapshot

    def load_into(self, add: Callable[[str, list], None], snapshot: LedgerSnapshot | None = None) -> LedgerSnapshot:
        """Hand the payments and bills to add("payments" | "bills", records) in batches of BATCH_ROWS as the files
        are read, so a year of a large company's payments (a million rows) never sits in memory as objects; the
        snapshot returned holds the rejected rows and the files read."""
        snapshot = snapshot or LedgerSnapshot()
        if not self.directory.is_dir():
            return snapshot
        payment_ids: dict[str, str] = {}
        bill_ids: dict[str, str] = {}
        for path in sorted(self.directory.iterdir()):
            kind = _file_kind(path)
            if kind is None:
                continue
            if kind == "unknown":
                snapshot.rejected.append(RejectedRow(path.name, 0, "unknown file: name ledger files payments*.csv, "
                                                     "bills*.csv (or .parquet), or one of the catalogue files "
                                                     f"{', '.join(f'{n}.csv' for n in CATALOGUE_FILES)}"))
                continue
            if kind in ("catalogue", "matching"):
                continue  # read by master_data_files.py (vendors.csv by FileLedgerSink too), or by reconcile/ap_matching.py
            if not regular_file(path, snapshot.rejected):
                continue
            snapshot.files.append(path.name)
            batches = _Batches(add, "payments" if kind == "payments" else "bills")
            if kind == "payments":
                self.load_file(path, PAYMENT_COLUMNS, PAYMENT_REQUIRED, payment_from, "payment_id", payment_ids,
                               batches, snapshot.rejected, self.settle_seconds)
            else:
                self.load_file(path, BILL_COLUMNS, BILL_REQUIRED, bill_from, "bill_id", bill_ids, batches,
                               snapshot.rejected, self.settle_seconds)
            batches.flush()
        return snapshot

    @staticmethod
    def load_file(path: Path, columns: tuple[str, ...], required: tuple[str, ...],
                  build: Callable[[dict[str, Any], str, int], Any], id_column: str, seen: dict[str, str],
                  into: list | _Batches, rejected: list[RejectedRow], settle: float | None = None) -> None:
        """Parse each row of one file with `build` into `into`; bad rows, and ids already `seen`, are rejected."""
        reader = read_parquet if path.suffix.lower() == ".parquet" else read_csv
        rows = reader(path, columns, required, rejected, settle)
        while True:
            try:
                line, fields, raw = next(rows)
            except StopIteration:
                break
            except NotRegularFile as refusal:  # became a link after the folder was listed
                rejected.append(RejectedRow(path.name, 0, f"not read: {path.name} {refusal}"))
                break
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


def regular_file(path: Path, rejected: list[RejectedRow]) -> bool:
    """Whether a data file of the folder may be read; if not, a rejected row (line 0) says why. Nothing of a
    refused file is read, so nothing of it reaches the warehouse or the logs."""
    try:
        check_regular(path)
    except NotRegularFile as refusal:
        rejected.append(RejectedRow(path.name, 0, f"not read: {path.name} {refusal}"))
        return False
    return True


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
