"""The accounting system's catalogue in the drop folder: vendors, products and services, accounts, tracking
categories and tax rates, the reference data Precoro should hold in step with it.

Files (CSV or Parquet, read like the payments and bills files: any column order, `,` `;` or tab separators,
UTF-8 or UTF-16 with a byte order mark, one full export per file):

    vendors.csv              vendor_id, name, [currency], [currencies], [tax_number], [address],
                             [payment_terms_days], [enabled]
    products.csv             product_id, name, [sku], [unit], [price], [currency], [enabled]
    accounts.csv             account_id, name, [code], [enabled]                     (the chart of accounts)
    tracking_categories.csv  category, option_id, name, [enabled]       (e.g. category "Department", option "Sales")
    tax_rates.csv            tax_id, name, rate, [enabled]                    (rate in percent: 20 or 7.5)

`currencies` lists every currency a vendor is paid in, separated by spaces or `|` ("EUR|USD"); `currency` is
the main one (added to the list). `enabled` is true/false, yes/no or 1/0; empty (or no such column) means the
export does not say: records are created enabled and Precoro's flag is left as it is. A row that breaks a rule is
returned as a RejectedRow with its file, line and reason; the rest of the file still loads.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .files import (
    CATALOGUE_FILES,
    BadValue,
    FileLedgerSource,
    parse_amount,
    parse_currency,
    parse_text,
    regular_file,
)
from .source import RejectedRow

_TRUE, _FALSE = {"1", "true", "yes", "y", "t"}, {"0", "false", "no", "n", "f"}
_RATE = re.compile(r"^\d{1,3}(\.\d{1,4})?$")


@dataclass(frozen=True)
class LedgerVendor:
    vendor_id: str  # the accounting system's id: what Precoro stores as the supplier's externalId
    name: str
    currencies: tuple[str, ...] = ()  # the main currency first
    tax_number: str | None = None
    address: str | None = None
    payment_terms_days: int | None = None
    enabled: bool | None = None  # None: the export does not say
    source_file: str = ""
    source_line: int = 0


@dataclass(frozen=True)
class LedgerProduct:
    product_id: str
    name: str
    sku: str | None = None
    unit: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    enabled: bool | None = None  # None: the export does not say
    source_file: str = ""
    source_line: int = 0


@dataclass(frozen=True)
class LedgerAccount:
    account_id: str
    name: str
    code: str | None = None
    enabled: bool | None = None  # None: the export does not say
    source_file: str = ""
    source_line: int = 0


@dataclass(frozen=True)
class LedgerTrackingOption:
    category: str  # the tracking category (a Precoro custom field of that name)
    option_id: str  # the option's id in the accounting system
    name: str
    enabled: bool | None = None  # None: the export does not say
    source_file: str = ""
    source_line: int = 0

    @property
    def key(self) -> str:
        """Unique within the file: an option id is unique within its category."""
        return f"{self.category}/{self.option_id}"


@dataclass(frozen=True)
class LedgerTaxRate:
    tax_id: str
    name: str
    rate: Decimal  # percent
    enabled: bool | None = None  # None: the export does not say
    source_file: str = ""
    source_line: int = 0


@dataclass
class LedgerCatalogue:
    """Everything one load of the catalogue files produced."""

    vendors: list[LedgerVendor] = field(default_factory=list)
    products: list[LedgerProduct] = field(default_factory=list)
    accounts: list[LedgerAccount] = field(default_factory=list)
    tracking_options: list[LedgerTrackingOption] = field(default_factory=list)
    tax_rates: list[LedgerTaxRate] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


# ---- field parsers ------------------------------------------------------------------------------------------

def parse_enabled(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else "").strip().lower()
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadValue(f"enabled {value!r} is not true/false, yes/no or 1/0")


def parse_currencies(main: Any, listed: Any) -> tuple[str, ...]:
    """The main currency first, then the others listed, each once."""
    codes = [parse_currency(main)] if parse_text(main, "currency", required=False) else []
    text = parse_text(listed, "currencies", required=False) or ""
    for code in re.split(r"[\s|]+", text):
        if code:
            try:
                codes.append(parse_currency(code))
            except BadValue:
                raise BadValue(f"currencies {text!r}: {code!r} is not a three-letter ISO code (separate codes with "
                               "spaces or |)") from None
    return tuple(dict.fromkeys(codes))


def parse_days(value: Any) -> int | None:
    text = parse_text(value, "payment_terms_days", required=False)
    if text is None:
        return None
    if not text.isdigit() or int(text) > 3650:
        raise BadValue(f"payment_terms_days {text!r} is not a whole number of days (0 to 3650)")
    return int(text)


def parse_rate(value: Any) -> Decimal:
    if isinstance(value, float):
        raise BadValue(f"rate {value!r} is a floating-point number; export rates as decimals or text")
    text = parse_text(value, "rate") or ""
    if not _RATE.match(text):
        raise BadValue(f"rate {text!r} is not a percentage like 20 or 7.5 (at most four decimals, no % sign)")
    try:
        rate = Decimal(text)
    except InvalidOperation:
        raise BadValue(f"rate {text!r} is not a number") from None
    if rate > 100:
        raise BadValue(f"rate {text!r} is over 100 percent")
    return rate


def vendor_from(fields: dict[str, Any], file: str, line: int) -> LedgerVendor:
    return LedgerVendor(
        vendor_id=parse_text(fields.get("vendor_id"), "vendor_id") or "",
        name=parse_text(fields.get("name"), "name") or "",
        currencies=parse_currencies(fields.get("currency"), fields.get("currencies")),
        tax_number=parse_text(fields.get("tax_number"), "tax_number", required=False),
        address=parse_text(fields.get("address"), "address", required=False),
        payment_terms_days=parse_days(fields.get("payment_terms_days")),
        enabled=parse_enabled(fields.get("enabled")), source_file=file, source_line=line)


def product_from(fields: dict[str, Any], file: str, line: int) -> LedgerProduct:
    price = fields.get("price")
    has_price = parse_text(price, "price", required=False) is not None
    currency = fields.get("currency")
    if has_price and not parse_text(currency, "currency", required=False):
        raise BadValue("price without currency: give the price's currency")
    return LedgerProduct(
        product_id=parse_text(fields.get("product_id"), "product_id") or "",
        name=parse_text(fields.get("name"), "name") or "",
        sku=parse_text(fields.get("sku"), "sku", required=False),
        unit=parse_text(fields.get("unit"), "unit", required=False),
        price=parse_amount(price, "price") if has_price else None,
        currency=parse_currency(currency) if parse_text(currency, "currency", required=False) else None,
        enabled=parse_enabled(fields.get("enabled")), source_file=file, source_line=line)


def account_from(fields: dict[str, Any], file: str, line: int) -> LedgerAccount:
    return LedgerAccount(
        account_id=parse_text(fields.get("account_id"), "account_id") or "",
        name=parse_text(fields.get("name"), "name") or "",
        code=parse_text(fields.get("code"), "code", required=False),
        enabled=parse_enabled(fields.get("enabled")), source_file=file, source_line=line)


def tracking_option_from(fields: dict[str, Any], file: str, line: int) -> LedgerTrackingOption:
    return LedgerTrackingOption(
        category=parse_text(fields.get("category"), "category") or "",
        option_id=parse_text(fields.get("option_id"), "option_id") or "",
        name=parse_text(fields.get("name"), "name") or "",
        enabled=parse_enabled(fields.get("enabled")), source_file=file, source_line=line)


def tax_rate_from(fields: dict[str, Any], file: str, line: int) -> LedgerTaxRate:
    return LedgerTaxRate(
        tax_id=parse_text(fields.get("tax_id"), "tax_id") or "",
        name=parse_text(fields.get("name"), "name") or "",
        rate=parse_rate(fields.get("rate")),
        enabled=parse_enabled(fields.get("enabled")), source_file=file, source_line=line)


@dataclass(frozen=True)
class _Kind:
    """One catalogue file: its columns, the required ones, the row parser, the field that must be unique, and the
    LedgerCatalogue list its records go to."""

    columns: tuple[str, ...]
    required: tuple[str, ...]
    build: Callable[[dict[str, Any], str, int], Any]
    id_field: str
    into: str


KINDS: dict[str, _Kind] = {
    "vendors": _Kind(("vendor_id", "name", "currency", "currencies", "tax_number", "address", "payment_terms_days",
                      "enabled"), ("vendor_id", "name"), vendor_from, "vendor_id", "vendors"),
    "products": _Kind(("product_id", "name", "sku", "unit", "price", "currency", "enabled"), ("product_id", "name"),
                      product_from, "product_id", "products"),
    "accounts": _Kind(("account_id", "name", "code", "enabled"), ("account_id", "name"), account_from,
                      "account_id", "accounts"),
    "tracking_categories": _Kind(("category", "option_id", "name", "enabled"), ("category", "option_id", "name"),
                                 tracking_option_from, "key", "tracking_options"),
    "tax_rates": _Kind(("tax_id", "name", "rate", "enabled"), ("tax_id", "name", "rate"), tax_rate_from, "tax_id",
                       "tax_rates"),
}
assert set(KINDS) == set(CATALOGUE_FILES)


def catalogue_kind(path: Path) -> str | None:
    """Which catalogue file this is (vendors, products, ...), or None."""
    if path.suffix.lower() not in (".csv", ".parquet") or path.name.startswith("."):
        return None
    stem = path.stem.lower()
    return stem if stem in KINDS else None


def load_catalogue(directory: str | Path, settle_seconds: float | None = None) -> LedgerCatalogue:
    """Read every catalogue file of the drop folder; an id seen twice keeps its first row (the second is
    rejected, naming where the first is). `settle_seconds` as for FileLedgerSource."""
    catalogue = LedgerCatalogue()
    folder = Path(directory)
    if not folder.is_dir():
        return catalogue
    for path in sorted(p for p in folder.iterdir() if catalogue_kind(p)):
        if not regular_file(path, catalogue.rejected):
            continue
        kind = KINDS[catalogue_kind(path) or ""]
        catalogue.files.append(path.name)
        FileLedgerSource.load_file(path, kind.columns, kind.required, kind.build, kind.id_field, {},
                                   getattr(catalogue, kind.into), catalogue.rejected, settle_seconds)
    return catalogue
