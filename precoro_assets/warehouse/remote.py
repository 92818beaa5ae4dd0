"""The warehouse off this disk: its DuckLake catalog in PostgreSQL, its Parquet files on S3-compatible storage.

On one machine the warehouse is a directory (a SQLite catalog and local Parquet files). Runs in containers with
no shared disk need both parts where every host reaches them:
- PRECORO_DATABASE_URL (see precoro_assets.runtime.shared_state) puts the catalog in that PostgreSQL database too
  (DuckLake's `ducklake_*` tables, beside the shared-state tables);
- PRECORO_WAREHOUSE_DATA_PATH=s3://bucket/prefix/ puts the Parquet files in a bucket, with PRECORO_S3_ENDPOINT,
  PRECORO_S3_ACCESS_KEY_ID, PRECORO_S3_SECRET_ACCESS_KEY, PRECORO_S3_REGION, PRECORO_S3_URL_STYLE and
  PRECORO_S3_USE_SSL for any S3-compatible server (AWS, MinIO, Ceph, R2, ...).
The settings (precoro_assets/settings.py) read these variables; a Warehouse receives them as `database_url` and an
`ObjectStorage`. DuckDB reaches them through its postgres and httpfs extensions, installed as Python wheels (no download at run
time). Credentials go into DuckDB as temporary secrets of the connection, never into an ATTACH string, a log line
or an exception text; `analyst_secrets` prints them without the password and the secret key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

CATALOG_SECRET = "precoro_catalog"
STORAGE_SECRET = "precoro_storage"


@dataclass(frozen=True)
class ObjectStorage:
    """Where the warehouse's Parquet files are when they are not on this disk: PRECORO_WAREHOUSE_DATA_PATH and
    the PRECORO_S3_* settings, as the settings read them (`Settings.object_storage()`). The key id and the secret
    key stay out of the repr."""

    data_path: str  # an object-storage URL ending in '/'
    endpoint: str | None = None
    key_id: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)
    region: str | None = None
    url_style: str | None = None
    use_ssl: bool | None = None  # None: DuckDB's default


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def catalog_parts(url: str) -> dict[str, str]:
    """Host, port, database, user and password of a postgresql:// URL (a unix socket's directory as its host)."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    found = {"HOST": query.get("host") or parts.hostname or "localhost",
             "PORT": str(parts.port or query.get("port") or 5432),
             "DATABASE": unquote(parts.path.lstrip("/")) or query.get("dbname") or "postgres",
             "USER": unquote(parts.username or "") or query.get("user") or "postgres",
             "PASSWORD": unquote(parts.password or "") or query.get("password") or ""}
    return found


def catalog_secret_sql(url: str) -> str:
    """The DuckDB secret holding the catalog database's connection (the password included)."""
    fields = ", ".join(f"{name} {_literal(value)}" for name, value in catalog_parts(url).items())
    return f"CREATE OR REPLACE TEMPORARY SECRET {CATALOG_SECRET} (TYPE postgres, {fields})"


def storage_secret_sql(storage: ObjectStorage) -> str | None:
    """The DuckDB secret for the bucket, when any S3 setting is given (else DuckDB's own credential chain)."""
    settings = {"KEY_ID": storage.key_id, "SECRET": storage.secret, "REGION": storage.region,
                "ENDPOINT": storage.endpoint, "URL_STYLE": storage.url_style}
    fields = [f"{name} {_literal(value.strip())}" for name, value in settings.items() if value and value.strip()]
    if storage.use_ssl is not None:
        fields.append(f"USE_SSL {'true' if storage.use_ssl else 'false'}")
    if not fields:
        return None
    return f"CREATE OR REPLACE TEMPORARY SECRET {STORAGE_SECRET} (TYPE s3, {', '.join(fields)})"


def analyst_secrets(url: str | None, storage: ObjectStorage | None, reveal: bool = False) -> list[str]:
    """The secrets an analyst creates to attach the warehouse: with `reveal`, as this process holds them (for a
    program run with the same settings); otherwise with the password and the keys left for the reader to fill."""
    statements = []
    if url is not None:
        statements.append(catalog_secret_sql(url) if reveal else catalog_secret_sql(url).replace(
            f"PASSWORD {_literal(catalog_parts(url)['PASSWORD'])}", "PASSWORD '<the database password>'"))
    text = storage_secret_sql(storage) if storage is not None else None
    if text is not None and storage is not None and not reveal:
        for value, placeholder in ((storage.key_id, "<key id>"), (storage.secret, "<secret key>")):
            if value and value.strip():
                text = text.replace(_literal(value.strip()), _literal(placeholder))
    return statements + ([text] if text else [])
