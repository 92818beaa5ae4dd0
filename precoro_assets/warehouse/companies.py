"""Every company's warehouse in one DuckDB session, and views over all of them with a `company` column.

A project of several companies keeps one warehouse per company, under the company's home (docs/embedding.md), so a
run of one company never writes another's tables. An analyst who compares companies attaches them all, read-only:
each is the catalog named after its company (`acme.precoro.invoices`), and the session's schema `companies` holds,
for each table and view of any company, one view of the rows of every company that has it, `company` first
(`companies.invoices`). Columns are matched by name (`UNION ALL BY NAME`): a company synced by an older version,
with a column fewer, shows NULL there.

Written by hand: DuckDB attaches and unions, but nothing knows which catalogs are companies or what to call them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb

from ..settings import COMPANY_NAME
from .store import (
    SCHEMA,
    Warehouse,
    extension_files,
    is_retryable,
    new_session,
    quote_ident,
    quote_literal,
    retrying,
)

COMPANIES = "companies"  # the session's schema of views over every company
_TAKEN = {"memory", "system", "temp", "main", COMPANIES, SCHEMA}  # DuckDB's catalogs and our schemas


def warehouse_of(place: str | Path) -> Warehouse:
    """A company's warehouse from its home (`<home>/warehouse`) or from the warehouse's own directory."""
    path = Path(place).expanduser()
    if (path / "catalog.sqlite").exists() or not (path / "warehouse" / "catalog.sqlite").exists():
        return Warehouse(path)
    return Warehouse(path / "warehouse")


def connect(companies: Mapping[str, str | Path | Warehouse]) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB session over the companies' warehouses: each attached as its name's catalog, and the
    schema `companies` of views that union them with a `company` column. Close it when done (it holds no lock: a
    sync goes on meanwhile, and a query sees each warehouse's latest snapshot). Warehouses in files only: the
    companies of a project keep theirs under their homes (a catalog in PostgreSQL is the bundled location's)."""
    if not companies:
        raise ValueError("no company: give each company's name and its home (or warehouse directory)")
    warehouses = {name: place if isinstance(place, Warehouse) else warehouse_of(place)
                  for name, place in companies.items()}
    for name, warehouse in warehouses.items():
        if not COMPANY_NAME.fullmatch(name) or name in _TAKEN:
            raise ValueError(f"{name!r} can't name a company's catalog: lowercase letters, digits and _, starting "
                             f"with a letter, and none of {', '.join(sorted(_TAKEN))}")
        if warehouse.database_url is not None or warehouse.object_storage is not None:
            raise ValueError(f"company {name}: its warehouse's catalog or files are not in its directory "
                             "(PostgreSQL, object storage): only warehouses in files can be read together")
        if not warehouse.catalog_path.exists():
            raise ValueError(f"company {name} has no warehouse at {warehouse.location} yet: sync it first (or give "
                             "the company's home, or its warehouse directory)")

    def attempt() -> duckdb.DuckDBPyConnection:
        con = new_session(extension_files())
        try:
            for name, warehouse in warehouses.items():
                try:
                    con.execute(warehouse.attach_sql(read_only=True, alias=name))
                except duckdb.Error as error:
                    if is_retryable(error):
                        raise
                    raise ValueError(f"company {name}: DuckDB could not open the warehouse at "
                                     f"{warehouse.location}: {error}") from None
            _create_views(con, list(warehouses))
        except BaseException:
            con.close()
            raise
        return con

    return retrying(attempt, "attach the companies' warehouses")


def _create_views(con: duckdb.DuckDBPyConnection, companies: list[str]) -> None:
    """One view per table or view name of any company, over the companies that have it, with the description
    and column descriptions of the first company that has it."""
    found = con.execute(
        "SELECT database_name, table_name, comment FROM duckdb_tables() WHERE schema_name = ? "
        "UNION ALL SELECT database_name, view_name, comment FROM duckdb_views() WHERE schema_name = ? "
        "AND NOT internal", [SCHEMA, SCHEMA]).fetchall()
    holders: dict[str, list[str]] = {}
    descriptions: dict[str, str] = {}
    for company in companies:  # in the order given: the first company's description is the view's
        for database, table, comment in found:
            if database == company:
                holders.setdefault(table, []).append(company)
                if comment:
                    descriptions.setdefault(table, comment)
    con.execute(f"CREATE SCHEMA memory.{COMPANIES}")
    columns = _column_descriptions(con, companies)
    for table in sorted(holders):
        view = f"memory.{COMPANIES}.{quote_ident(table)}"
        union = " UNION ALL BY NAME ".join(  # names checked (COMPANY_NAME) and quoted
            f"SELECT {quote_literal(company)} AS company, * "  # noqa: S608
            f"FROM {quote_ident(company)}.{SCHEMA}.{quote_ident(table)}" for company in holders[table])
        con.execute(f"CREATE VIEW {view} AS {union}")
        described = descriptions.get(table, "").rstrip(". ")
        con.execute(f"COMMENT ON VIEW {view} IS " + quote_literal(
            f"{described + '. ' if described else ''}Every company's rows ({', '.join(holders[table])}), by company."))
        con.execute(f"COMMENT ON COLUMN {view}.company IS "
                    + quote_literal("The company the row is from (its name in this session's catalogs)."))
        for column, comment in columns.get(table, {}).items():
            con.execute(f"COMMENT ON COLUMN {view}.{quote_ident(column)} IS {quote_literal(comment)}")


def _column_descriptions(con: duckdb.DuckDBPyConnection, companies: list[str]) -> dict[str, dict[str, str]]:
    """table -> column -> description, the first company's that describes it."""
    described: dict[str, dict[str, str]] = {}
    rows = con.execute("SELECT database_name, table_name, column_name, comment FROM duckdb_columns() "
                       "WHERE schema_name = ? AND comment IS NOT NULL AND comment <> ''", [SCHEMA]).fetchall()
    for company in companies:
        for database, table, column, comment in rows:
            if database == company and column != "company":
                described.setdefault(table, {}).setdefault(column, comment)
    return described
