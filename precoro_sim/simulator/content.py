"""Static content the simulated company is made of: names, currencies, statuses, file bytes.

Names deliberately contain quotes, `&`, `;` and non-ASCII characters so that every layer
(HTTP, JSON, SQL, CSV) is exercised with the text real companies have.
"""

from __future__ import annotations

import struct
import zlib
from decimal import Decimal

from precoro_assets.catalogue import STATUS_NAMES  # noqa: F401  (re-exported: the simulator speaks the contract)

COMPANY_CURRENCY = "USD"
COMPANY_NAME = "ACME Simulated Inc."

# Units of company currency per unit of the currency (4 decimals, like Precoro's exchangeRate).
EXCHANGE_RATES: dict[str, Decimal] = {
    "USD": Decimal("1.0000"),
    "EUR": Decimal("1.0812"),
    "GBP": Decimal("1.2705"),
    "PLN": Decimal("0.2493"),
    "UAH": Decimal("0.0241"),
    "CHF": Decimal("1.1236"),
}



def exchange_rate(currency: str, moment: str) -> dict:
    """`exchangeRate` as real invoices carry it: an object (Precoro's own connector types it object or list)."""
    return {"rate": EXCHANGE_RATES[currency], "currency": currency, "companyCurrency": COMPANY_CURRENCY,
            "date": moment}


SUPPLIER_STATUS_NAMES = {1: "Pending", 2: "Approved", 3: "Rejected"}

SUPPLIER_NAMES = [
    "Acme Office Supplies",
    "O'Brien & Sons Ltd",
    "Zürich Bürobedarf AG",
    'Café "Lumière" SARL',
    "Łódź Logistics Sp. z o.o.",
    "Nordic Timber Økonomi AS",
    "Smith & Wesson Paper Co.",
    "Müller Elektrotechnik GmbH",
    "São Paulo Importação Ltda",
    "Tokyo Denki 東京電機",
    "Київ Друк ТОВ",
    "Global IT Services; Inc.",
    "Blue River Catering",
    "Delta Facilities Management",
    '"Quick" Couriers & Express',
    "Ångström Lab Equipment AB",
    "Çelik Yapı A.Ş.",
    "Peña & Hijos S.L.",
    "Northwind Traders",
    "Contoso Cleaning Services",
]

COMPANY_SUFFIXES = ["Ltd", "GmbH", "LLC", "S.A.", "Oy", "B.V.", "Inc.", "Sp. z o.o."]

ITEM_NAMES = [
    ("Copy paper A4, 500 sheets", "pack"),
    ("Laptop 14\" business", "pcs"),
    ("Monitor 27\" 4K", "pcs"),
    ("Office chair \"Ergo\"", "pcs"),
    ("Coffee beans 1 kg – Arabica", "kg"),
    ("Cleaning service, monthly", "service"),
    ("Software licence; annual", "licence"),
    ("Courier delivery", "service"),
    ("Safety gloves size L", "pair"),
    ("Whiteboard markers & erasers set", "set"),
    ("Server rack 42U", "pcs"),
    ("Catering lunch (per person)", "person"),
    ("Toner cartridge Ø 45 mm", "pcs"),
    ("Electricity installation work", "hour"),
    ("Timber beam 4 m", "m"),
]

ITEM_CATEGORIES = ["Office", "IT hardware", "Services", "Facilities", "Raw materials"]

LOCATIONS = [
    ("Headquarters – New York", "350 Fifth Avenue, New York, NY 10118"),
    ("Kraków Office", "ul. Floriańska 3, 31-019 Kraków"),
    ("München Lager", "Schleißheimer Str. 12, 80333 München"),
    ("Kyiv R&D", "вул. Хрещатик 1, Київ"),
]

LEGAL_ENTITIES = [
    ("Acme Corp (US) Inc.", "US-EIN 12-3456789"),
    ("Acme Polska Sp. z o.o.", "PL 5260001234"),
    ("Acme Deutschland GmbH", "DE 123456789"),
]

UNITS: dict[str, str] = dict(ITEM_NAMES)  # an item name's unit: items carry no unit, lines do

# Units of measure (GET /units: name, code, enable, externalId): each line's `unit` text is a unit's code, so an
# analyst joins lines to units on it; a few more units the company defined, one of them disabled.
UNITS_OF_MEASURE: list[tuple[str, str, bool]] = [
    ("Pieces", "pcs", True),
    ("Pack", "pack", True),
    ("Kilogram", "kg", True),
    ("Service", "service", True),
    ("Licence", "licence", True),
    ("Pair", "pair", True),
    ("Set", "set", True),
    ("Person", "person", True),
    ("Hour", "hour", True),
    ("Metre", "m", True),
    ("Litre", "l", True),
    ("Box", "box", True),
    ("Square metre", "m²", True),
    ("Dozen", "doz", False),
]

CITIES = ["Kraków", "Zürich", "Lyon", "Oslo", "São Paulo", "Kyiv", "Austin", "Leeds"]
COUNTRIES = ["PL", "CH", "FR", "NO", "BR", "UA", "US", "GB"]
# a city's state (region) and postal code, for the supplier detail's `state` and `postalCode`
CITY_REGIONS = {"Kraków": ("Małopolskie", "30-001"), "Zürich": ("ZH", "8001"), "Lyon": ("Auvergne-Rhône-Alpes", "69001"),
                "Oslo": ("Oslo", "0150"), "São Paulo": ("SP", "01000-000"), "Kyiv": ("Kyiv", "01001"),
                "Austin": ("TX", "78701"), "Leeds": ("West Yorkshire", "LS1 1AA")}
SUPPLIER_TIERS = ["Strategic", "Preferred", "Approved", "Tactical"]  # a supplier custom field's values
SUPPLIER_TIER_FIELD_ID = 91  # the supplier custom field "Tier" (supplier custom fields are not modelled yet)
BANKS = [("Bank Śląski", "ul. Sokolska 34, Katowice"), ("Crédit Mutuel", "4 rue Raiffeisen, Strasbourg"),
         ("First National Bank", "1 Main St, Austin TX")]


def iban(rng, country: str = "DE") -> str:
    """A well-formed IBAN (ISO 13616 check digits), so masking is tested on what real bank fields look like."""
    bban = "".join(str(rng.randint(0, 9)) for _ in range(18))
    digits = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


def bank_details(rng, holder: str) -> dict:
    """A supplier's bank fields, named as Precoro's own connector reads them (sensitive: masked by default)."""
    bank, address = rng.choice(BANKS)
    return {
        "accountHolderName": holder,
        "bankName": bank,
        "accountNumber": "".join(str(rng.randint(0, 9)) for _ in range(12)),
        "bankAddress": address,
        "swiftCode": f"{rng.choice(['COBA', 'BSLA', 'FNBU'])}DE{rng.randint(10, 99)}XXX",
        "internationalBankAccountNumber": iban(rng),
        "sortCode": f"{rng.randint(10, 99)}-{rng.randint(10, 99)}-{rng.randint(10, 99)}",
        "americanBankersAssociationNumber": f"{rng.randint(10**8, 10**9 - 1)}",
        **({"indianFinancialSystemCode": f"HDFC0{rng.randint(100000, 999999)}",
            "permanentAccountNumber": f"ABCDE{rng.randint(1000, 9999)}F"} if rng.random() < 0.2 else
           {"indianFinancialSystemCode": None, "permanentAccountNumber": None}),
    }

PAYMENT_TERMS = [("Net 15", 15), ("Net 30", 30), ("Net 45", 45), ("Due on receipt", 0), ("2/10 Net 30", 30)]

TAXES = [("VAT 20%", Decimal("20.00")), ("VAT 23%", Decimal("23.00")), ("Reduced 7%", Decimal("7.00")),
         ("Zero-rated", Decimal("0.00")), ("Sales tax 8.875%", Decimal("8.875"))]

USERS = [
    ("Ada", "Lovelace"),
    ("Jürgen", "Weiß"),
    ("Zofia", "Łukasiewicz"),
    ("Seán", "O'Connor"),
    ("Олена", "Шевченко"),
    ("Maria", "García-Núñez"),
    ("Li", "Wei"),
    ("Tom", "Smith & Co"),
]

WAREHOUSES = ["Main warehouse", "Kraków stock", "München Außenlager"]

# Document custom fields: (name, type, options). Drop-downs ("select") carry options.
DOCUMENT_CUSTOM_FIELDS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("Cost center", "select", [("Marketing", "CC-100"), ("R&D", "CC-200"), ("Sales & Ops", "CC-300"),
                               ("Finance", "CC-400"), ("Büro/Verwaltung", "CC-500")]),
    ("Project", "select", [("Apollo", "PRJ-A"), ("Zeus \"Phase 2\"", "PRJ-Z"), ("Kyiv launch", "PRJ-K")]),
    ("Budget note", "text", []),
    ("Contract number", "text", []),
]

ITEM_CUSTOM_FIELDS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("GL account", "select", [("6000 Office supplies", "6000"), ("6100 IT equipment", "6100"),
                              ("6200 Services", "6200"), ("1500 Fixed assets", "1500")]),
    ("Asset tag", "text", []),
]

BUDGET_NOTES = ["Q3 budget", "Approved by CFO; urgent", "Replacement for broken unit", "Ref: \"framework\" deal",
                "Kostenstelle Süd", "Оплата до кінця місяця"]


def pdf_bytes(title: str) -> bytes:
    """A small, valid one-page PDF whose text is `title` (so attachments are real files)."""
    safe = title.encode("latin-1", "replace").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    stream = b"BT /F1 18 Tf 72 720 Td (" + safe + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += str(number).encode() + b" 0 obj\n" + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 " + str(len(objects) + 1).encode() + b"\n0000000000 65535 f \n"
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += b"trailer\n<< /Size " + str(len(objects) + 1).encode() + b" /Root 1 0 R >>\nstartxref\n"
    out += str(xref).encode() + b"\n%%EOF\n"
    return bytes(out)


def png_bytes(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A small, valid solid-colour PNG (so attachments are real files)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * height))
            + chunk(b"IEND", b""))
