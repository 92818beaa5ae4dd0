"""The warehouse off this disk: its DuckLake catalog in PostgreSQL, its Parquet files on S3-compatible storage.

On one machine the warehouse is a directory (a SQLite catalog and local Parquet files). Runs in containers with
no shared disk need both parts where every host reaches them:
- PRECORO_DATABASE_URL (see precoro_assets.runtime.shared_state) puts the catalog in that PostgreSQL database too
  (DuckLake's `ducklake_*` tables, beside the shared-state tables);
- PRECORO_WAREHOUSE_DATA_PATH=s3://bucket/prefix/ puts the Parquet files in a bucket, with PRECORO_S3_ENDPOINT,
  PRECORO_S3_ACCESS_KEY_ID, PRECORO_S3_SECRET_ACCESS_KEY, PRECORO_S3_REGION, PRECORO_S3_URL_STYLE and
  PRECORO_S3_USE_SSL for any S3-compatible server (AWS, MinIO, Ceph, R2, ...).
DuckDB reaches them through its postgres and httpfs extensions, installed as Python wheels (no download at run
time). Credentials go into DuckDB as temporary secrets of the connection, never into an ATTACH string, a log line
or an exception text; `analyst_secrets` prints them without the password and the secret key.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs, unquote, urlsplit

ENV_DATA_PATH = "PRECORO_WAREHOUSE_DATA_PATH"
ENV_S3_ENDPOINT = "PRECORO_S3_ENDPOINT"
ENV_S3_KEY_ID = "PRECORO_S3_ACCESS_KEY_ID"
ENV_S3_SECRET = "PRECORO_S3_SECRET_ACCESS_KEY"
ENV_S3_REGION = "PRECORO_S3_REGION"
ENV_S3_URL_STYLE = "PRECORO_S3_URL_STYLE"
ENV_S3_USE_SSL = "PRECORO_S3_USE_SSL"

CATALOG_SECRET = "precoro_catalog"
STORAGE_SECRET = "precoro_storage"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def data_path() -> str | None:
    """PRECORO_WAREHOUSE_DATA_PATH (an s3:// URL ending in '/'), or None for the local data directory."""
    path = (os.environ.get(ENV_DATA_PATH) or "").strip()
    if not path:
        return None
    if not path.startswith(("s3://", "s3a://", "gcs://", "r2://")):
        raise ValueError(f"{ENV_DATA_PATH} must be an object-storage URL such as s3://bucket/precoro/ "
                         f"(got {path.split('://')[0] + '://...' if '://' in path else 'a local path'}); "
                         "for a local directory set PRECORO_WAREHOUSE instead")
    return path if path.endswith("/") else path + "/"


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


def storage_secret_sql() -> str | None:
    """The DuckDB secret for the bucket, when any S3 setting is given (else DuckDB's own credential chain)."""
    settings = {"KEY_ID": os.environ.get(ENV_S3_KEY_ID), "SECRET": os.environ.get(ENV_S3_SECRET),
                "REGION": os.environ.get(ENV_S3_REGION), "ENDPOINT": os.environ.get(ENV_S3_ENDPOINT),
                "URL_STYLE": os.environ.get(ENV_S3_URL_STYLE)}
    fields = [f"{name} {_literal(value.strip())}" for name, value in settings.items() if value and value.strip()]
    use_ssl = os.environ.get(ENV_S3_USE_SSL)
    if use_ssl is not None and use_ssl.strip():
        fields.append(f"USE_SSL {'true' if use_ssl.strip().lower() in ('1', 'true', 'yes') else 'false'}")
    if not fields:
        return None
    return f"CREATE OR REPLACE TEMPORARY SECRET {STORAGE_SECRET} (TYPE s3, {', '.join(fields)})"


def analyst_secrets(url: str | None, reveal: bool = False) -> list[str]:
    """The secrets an analyst creates to attach the warehouse: with `reveal`, as this process holds them (for a
    program run with the same settings); otherwise with the password and the keys left for the reader to fill."""
    statements = []
    if url is not None:
        statements.append(catalog_secret_sql(url) if reveal else catalog_secret_sql(url).replace(
            f"PASSWORD {_literal(catalog_parts(url)['PASSWORD'])}", "PASSWORD '<the database password>'"))
    storage = storage_secret_sql() if data_path() is not None else None
    if storage is not None and not reveal:
        for env, placeholder in ((ENV_S3_KEY_ID, "<key id>"), (ENV_S3_SECRET, "<secret key>")):
            value = (os.environ.get(env) or "").strip()
            if value:
                storage = storage.replace(_literal(value), _literal(placeholder))
    return statements + ([storage] if storage else [])
