"""Dagster resources, all of them: Precoro's API, the warehouse, the ledger folder and the write-back outbox.

Configure the secrets from the environment so Dagster shows only the variable names, never the values (in the
UI, run config and logs):

    PrecoroResource(api_token=EnvVar("PRECORO_API_TOKEN"), email=EnvVar("PRECORO_EMAIL"))

and so for `database_url` (PRECORO_DATABASE_URL holds the database password) and the S3 keys; the code location
(definitions.py) does so from its settings. Every other value is passed as the settings read it: the resources
read no environment themselves. Every process that uses PrecoroResource shares one request budget through
`state_dir` (and `database_url`, on several hosts: a resource given none uses PRECORO_DATABASE_URL when it is
set).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from ..api.client import PrecoroClient
from ..api.quota import QuotaLimits
from ..ledger.file_sink import FileLedgerSink
from ..ledger.files import SETTLE_SECONDS, FileLedgerSource
from ..ledger.source import LedgerSink, LedgerSource
from ..warehouse.remote import ObjectStorage
from ..warehouse.staging import DetailStaging
from ..warehouse.store import Warehouse
from ..writeback.outbox import Outbox

DATABASE_URL_HELP = ("PostgreSQL of the shared state (PRECORO_DATABASE_URL; pass EnvVar, it holds the password); "
                     "None: SQLite files")


def default_state_dir() -> str:
    """One budget per machine and user, wherever the process was started from (XDG_STATE_HOME, from the
    settings): for a PrecoroResource configured without `state_dir`."""
    from .. import settings

    return str(settings.load_state().quota_state_home() / "precoro-assets" / "quota")


def _secret(value: str | None) -> str | None:
    """A secret field's value, stripped, None when empty. Inside a run Dagster has resolved an EnvVar to the
    variable's text; a resource used directly (a test, a script calling `open()`) still holds the EnvVar, whose
    value Dagster's `get_value` reads the same way."""
    if isinstance(value, dg.EnvVar):
        value = value.get_value()
    return (value or "").strip() or None


def _database_url(value: str | None) -> str | None:
    """A resource's `database_url`, or else PRECORO_DATABASE_URL as the settings read it, at run time (so no
    config shown in the UI holds it): a resource built without one (a script, another code location) still
    shares the request budget, the catalog and the outbox of every host, as the code location's do."""
    from .. import settings

    return _secret(value) or settings.load_state().database_url_value


class PrecoroResource(dg.ConfigurableResource):
    """Precoro API access with the shared request budget (see precoro_assets/api/quota.py)."""

    api_token: str = Field(repr=False, description="Precoro API token; pass EnvVar('PRECORO_API_TOKEN').")
    email: str = Field(repr=False, description="Email of the token's user; pass EnvVar('PRECORO_EMAIL').")
    region: str = Field(default="eu", description="'eu' (api.precoro.com) or 'us' (api.precoro.us).")
    base_url: str | None = Field(default=None, description="Overrides region, e.g. the simulator's URL.")
    timeout_seconds: float = Field(default=30.0, description="Per-request timeout.")
    per_second: float = Field(default=1.0, description="Requests per second (Precoro: 1).")
    per_minute: int = Field(default=300, description="Requests per sliding minute (Precoro: 300).")
    per_hour: int = Field(default=1500, description="Requests per sliding hour (Precoro: 1,500).")
    per_day: int = Field(default=3000, description="Requests per sliding day (Precoro: 3,000).")
    identical_get_seconds: float = Field(default=60.0, description="An identical GET waits this long (Precoro: 60).")
    time_scale: float = Field(default=1.0, description="Divides every window; only for the scaled simulator.")
    state_dir: str = Field(default_factory=default_state_dir,
                           description="Directory of the request ledger shared by every process.")
    database_url: str | None = Field(default=None, repr=False, description=DATABASE_URL_HELP)
    shared_budget: str | None = Field(default=None, description=(
        "None: this token's own request budget. A name (build_definitions gives the shared budget's directory, "
        "PRECORO_SHARED_BUDGET): one budget for every token that gives the same name and state_dir (companies of "
        "one Precoro user whose limits are counted across them), paced as one."))
    max_wait_seconds: float = Field(
        default=600.0, description="Wait at most this long for quota; beyond it raise QuotaExhausted.")
    concurrent_requests: int = Field(
        default=4, ge=1, le=16, description="Detail requests a run keeps in flight. The shared quota paces them "
        "all the same: at Precoro's 1 request/s they only hide latency.")

    _client: PrecoroClient | None = PrivateAttr(default=None)

    def limits(self) -> QuotaLimits:
        return QuotaLimits(
            per_second=self.per_second, per_minute=self.per_minute, per_hour=self.per_hour,
            per_day=self.per_day, identical_get_seconds=self.identical_get_seconds, time_scale=self.time_scale,
        )

    def get_client(self) -> PrecoroClient:
        """The client of this resource instance, created on first use (one per run process)."""
        if self._client is None:
            self._client = PrecoroClient(
                self.api_token, self.email, base_url=self.base_url, region=self.region,
                timeout_seconds=self.timeout_seconds, state_dir=self.state_dir,
                database_url=_database_url(self.database_url), shared_budget=self.shared_budget,
                limits=self.limits(),
                max_wait_seconds=self.max_wait_seconds, concurrent_requests=self.concurrent_requests,
            )
        return self._client

    def accounting_metadata(self, spent_before: int = 0) -> dict[str, Any]:
        """Requests this run's client spent since it had spent `spent_before` (a step's own, as the run's steps
        share one client), and what is left per window, for MaterializeResult."""
        metadata = self.get_client().usage().as_metadata()
        metadata["precoro_requests_spent"] = int(metadata["precoro_requests_spent"]) - spent_before
        return metadata

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class WarehouseResource(dg.ConfigurableResource):
    """Where the Precoro tables live, and where fetched details wait until they are written."""

    location: str = Field(description="Directory of the warehouse (PRECORO_WAREHOUSE).")
    state_dir: str = Field(description="Directory for staged details (PRECORO_STATE_DIR).")
    database_url: str | None = Field(default=None, repr=False, description=DATABASE_URL_HELP + "; the catalog "
                                     "and staged details go there too")
    data_path: str | None = Field(default=None, description="s3://bucket/prefix/ for the Parquet files "
                                  "(PRECORO_WAREHOUSE_DATA_PATH); None: <location>/data")
    s3_endpoint: str | None = Field(default=None, description="PRECORO_S3_ENDPOINT")
    s3_region: str | None = Field(default=None, description="PRECORO_S3_REGION")
    s3_url_style: str | None = Field(default=None, description="PRECORO_S3_URL_STYLE")
    s3_use_ssl: bool | None = Field(default=None, description="PRECORO_S3_USE_SSL (None: DuckDB's default)")
    s3_access_key_id: str | None = Field(default=None, repr=False,
                                         description="PRECORO_S3_ACCESS_KEY_ID; pass EnvVar")
    s3_secret_access_key: str | None = Field(default=None, repr=False,
                                             description="PRECORO_S3_SECRET_ACCESS_KEY; pass EnvVar")
    keep_bank_details: bool = Field(default=False, description="Store suppliers' bank details unmasked "
                                    "(PRECORO_KEEP_BANK_DETAILS).")

    def object_storage(self) -> ObjectStorage | None:
        if not self.data_path:
            return None
        return ObjectStorage(self.data_path, endpoint=self.s3_endpoint, key_id=_secret(self.s3_access_key_id),
                             secret=_secret(self.s3_secret_access_key), region=self.s3_region,
                             url_style=self.s3_url_style,
                             use_ssl=self.s3_use_ssl)

    def shared_database_url(self) -> str | None:
        """Where the shared state is (the webhook inbox too): PostgreSQL's URL, or None for SQLite files."""
        return _database_url(self.database_url)

    def open(self) -> Warehouse:
        return Warehouse(self.location, database_url=_database_url(self.database_url), object_storage=self.object_storage())

    def staging(self) -> DetailStaging:
        return DetailStaging(Path(self.state_dir), _database_url(self.database_url))


class LedgerResource(dg.ConfigurableResource):
    """The accounting side: where its exports are read from and where documents are offered to it."""

    directory: str = Field(description="The ledger drop folder (PRECORO_LEDGER_DIR, default <PRECORO_HOME>/ledger).")
    settle_seconds: float = Field(default=SETTLE_SECONDS, description="How long a file must have been left alone before it is "
                                  "read (PRECORO_LEDGER_SETTLE_SECONDS).")

    def source(self) -> LedgerSource:
        return FileLedgerSource(Path(self.directory), self.settle_seconds)

    def sink(self) -> LedgerSink:
        return FileLedgerSink(Path(self.directory))


class OutboxResource(dg.ConfigurableResource):
    """The write-back queue (a SQLite file in PRECORO_STATE_DIR; see writeback/outbox.py for why)."""

    path: str = Field(description="The outbox file, <PRECORO_STATE_DIR>/outbox.sqlite.")
    database_url: str | None = Field(default=None, repr=False, description=DATABASE_URL_HELP)
    send: bool = Field(default=False, description="The write-back runs send to Precoro (PRECORO_WRITEBACK_SEND); "
                       "else a run sends only with run config send: true.")

    def open(self) -> Outbox:
        return Outbox(Path(self.path), _database_url(self.database_url))
