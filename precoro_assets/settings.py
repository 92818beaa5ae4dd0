"""Configuration from the environment, in this one module: read, never written.

For a real account set PRECORO_API_TOKEN, PRECORO_EMAIL and PRECORO_BASE_URL (or PRECORO_REGION=eu|us); local
state lives under ./var unless PRECORO_HOME says otherwise. With no token, `load()` raises an error that says
what to set. (The bundled simulator, the "embedded default" the demo and the tests use, is the harness's: it
sets these variables before the product reads them.)

Why one module: every variable is a typed field with its description (docs/configuration.md lists the same), a
wrong value is reported together with every other wrong one in one error that names the variables, and the
modules that use a value receive it from their caller (the code location, a command, a worker's entry point)
instead of each reading the environment on its own. Secrets (the token, the e-mail, the database URL, the S3
secret key, the webhook secret) are `SecretStr`: no repr, str or error message shows them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, create_model, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .catalogue import BY_NAME

if TYPE_CHECKING:
    from .warehouse.remote import ObjectStorage

# The names other modules and the harness refer to (messages, subprocess environments, tests).
ENV_HOME = "PRECORO_HOME"
ENV_WAREHOUSE = "PRECORO_WAREHOUSE"
ENV_STATE_DIR = "PRECORO_STATE_DIR"
ENV_SHARED_BUDGET = "PRECORO_SHARED_BUDGET"
ENV_DATABASE_URL = "PRECORO_DATABASE_URL"
ENV_DATA_PATH = "PRECORO_WAREHOUSE_DATA_PATH"
ENV_S3_ENDPOINT = "PRECORO_S3_ENDPOINT"
ENV_S3_KEY_ID = "PRECORO_S3_ACCESS_KEY_ID"
ENV_S3_SECRET = "PRECORO_S3_SECRET_ACCESS_KEY"
ENV_S3_REGION = "PRECORO_S3_REGION"
ENV_S3_URL_STYLE = "PRECORO_S3_URL_STYLE"
ENV_S3_USE_SSL = "PRECORO_S3_USE_SSL"
ENV_LEDGER_DIR = "PRECORO_LEDGER_DIR"
ENV_ALERT_URL = "PRECORO_ALERT_URL"
ENV_SETTLE_SECONDS = "PRECORO_LEDGER_SETTLE_SECONDS"
ENV_KEEP_BANK_DETAILS = "PRECORO_KEEP_BANK_DETAILS"
ENV_SEND = "PRECORO_WRITEBACK_SEND"
ENV_WEBHOOK_SECRET = "PRECORO_WEBHOOK_SECRET"

# a company's name in a project: its key prefix, the start of its definitions' names, a DuckDB catalog's name
COMPANY_NAME = re.compile(r"[a-z][a-z0-9_]*")

TRUE = ("1", "true", "yes", "on")
SWITCH_ON = ("1", "true", "yes")  # PRECORO_WRITEBACK_SEND, PRECORO_KEEP_BANK_DETAILS: as they always were
FALSE = ("", "0", "false", "no", "off")
SETTLE_SECONDS = 2.0  # a ledger file must have been left alone this long before it is read (= ledger.files')
OBJECT_STORAGE_SCHEMES = ("s3://", "s3a://", "gcs://", "r2://")


def _variable(name: str, description: str, default: Any = None, **extra: Any) -> Any:
    """A field read from the environment variable `name` (exactly that spelling)."""
    return Field(default, validation_alias=name, description=description, **extra)


def _flag(value: Any, accepts: str = "1, true, yes or on (or 0, false, no, off)", true: tuple[str, ...] = TRUE) -> bool:
    text = str(value).strip().lower()
    if text in true:
        return True
    if text in FALSE:
        return False
    raise ValueError(f"must be {accepts}, not {value!r}")


def _number(value: Any, fits: Callable[[float], bool], takes: str) -> float:
    """A number read from a variable's text, or the error saying what the setting takes (NaN fits nothing)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not fits(number):
        raise ValueError(f"must be {takes}, not {value!r}")
    return number


def _blank_is_unset(value: Any) -> Any:
    """An empty variable counts as unset, as `os.environ.get(name) or default` had it."""
    return None if isinstance(value, str) and not value.strip() else value


class StateSettings(BaseSettings):
    """Where the product's state lives and how to reach it: all a command that only reads the warehouse or the
    ledger needs (`precoro-assets sql` works with no token and whatever the account's settings say)."""

    model_config = SettingsConfigDict(case_sensitive=True, frozen=True, extra="ignore", populate_by_name=False)

    home: Path = _variable(ENV_HOME, "where local state lives (warehouse, request ledger, staged details, Dagster "
                           "home); default ./var of the directory the process starts in")
    warehouse: Path = _variable(ENV_WAREHOUSE, "directory of the warehouse; default <PRECORO_HOME>/warehouse")
    state_dir: Path = _variable(ENV_STATE_DIR, "the request ledger shared by every process, staged details, the "
                                "write-back outbox; default <PRECORO_HOME>/state")
    shared_budget: Path | None = _variable(
        ENV_SHARED_BUDGET, "a directory of one request budget for every company that names it (companies whose "
        "tokens are one Precoro user's, if Precoro counts that user's limits across them): their requests are paced "
        "as one; unset, each company has its own budget in <PRECORO_STATE_DIR>/quota")
    database_url: SecretStr | None = _variable(
        ENV_DATABASE_URL, "postgresql://user:password@host:5432/db: the shared state and the warehouse's catalog in "
        "PostgreSQL instead of files (several hosts)")
    warehouse_data_path: str | None = _variable(
        ENV_DATA_PATH, "s3://bucket/prefix/: the warehouse's Parquet files in S3-compatible object storage")
    s3_endpoint: str | None = _variable(ENV_S3_ENDPOINT, "the object storage server (host:port; empty for AWS)")
    s3_access_key_id: SecretStr | None = _variable(ENV_S3_KEY_ID, "the bucket's access key id")
    s3_secret_access_key: SecretStr | None = _variable(ENV_S3_SECRET, "the bucket's secret access key")
    s3_region: str | None = _variable(ENV_S3_REGION, "the object storage's region")
    s3_url_style: str | None = _variable(ENV_S3_URL_STYLE, "'path' for MinIO and most self-hosted servers")
    s3_use_ssl: bool | None = _variable(ENV_S3_USE_SSL, "0 for plain HTTP to the object storage server")
    ledger_dir: Path = _variable(ENV_LEDGER_DIR, "the accounting side's drop folder; default <PRECORO_HOME>/ledger")
    ledger_settle_seconds: float = _variable(
        ENV_SETTLE_SECONDS, "seconds a ledger file must have been left alone before it is read", SETTLE_SECONDS)
    keep_bank_details: bool = _variable(
        ENV_KEEP_BANK_DETAILS, "store suppliers' bank details as Precoro sends them (else masked)", False)
    writeback_send: bool = _variable(ENV_SEND, "the write-back runs send to Precoro (else dry runs)", False)
    webhook_secret: SecretStr = _variable(
        ENV_WEBHOOK_SECRET, "the secret path segment of the webhook URL (precoro-assets webhooks)", SecretStr(""))
    dagster_home: Path | None = _variable("DAGSTER_HOME", "Dagster's instance directory; the commands use "
                                          "<PRECORO_HOME>/dagster when unset")
    xdg_state_home: Path | None = _variable("XDG_STATE_HOME", "where a PrecoroResource configured without "
                                            "state_dir keeps the request budget; default ~/.local/state")

    @field_validator("home", "warehouse", "state_dir", "shared_budget", "ledger_dir", "dagster_home", "xdg_state_home",
                     "warehouse_data_path", "s3_endpoint", "s3_access_key_id", "s3_region", "s3_url_style",
                     "database_url", mode="before")
    @classmethod
    def _unset_when_blank(cls, value: Any) -> Any:
        return _blank_is_unset(value)

    @field_validator("database_url", mode="after")
    @classmethod
    def _postgres(cls, url: SecretStr | None) -> SecretStr | None:
        if url is None:
            return None
        text = url.get_secret_value().strip()
        scheme = urlsplit(text).scheme
        if scheme not in ("postgresql", "postgres"):
            raise ValueError(f"must be a postgresql://user:password@host:port/database URL (it starts with "
                             f"{scheme or 'no scheme'!r}); unset it to keep the shared state in SQLite files under "
                             "PRECORO_STATE_DIR")
        return SecretStr(text)

    @field_validator("warehouse_data_path", mode="after")
    @classmethod
    def _object_storage(cls, path: str | None) -> str | None:
        if path is None:
            return None
        path = path.strip()
        if not path.startswith(OBJECT_STORAGE_SCHEMES):
            shown = path.split("://")[0] + "://..." if "://" in path else "a local path"
            raise ValueError(f"must be an object-storage URL such as s3://bucket/precoro/ (got {shown}); for a "
                             "local directory set PRECORO_WAREHOUSE instead")
        return path if path.endswith("/") else path + "/"

    @field_validator("s3_endpoint", "s3_region", "s3_url_style", mode="after")
    @classmethod
    def _stripped(cls, value: str | None) -> str | None:
        return value.strip() if value is not None else None

    @field_validator("keep_bank_details", "writeback_send", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        # the two switches that send payments or keep bank details: only the spellings they always took turn them
        # on ("on" too would be a guess), and an unknown word is an error rather than quietly off
        return value if isinstance(value, bool) else _flag(value, "1, true or yes (or 0, false, no, off)",
                                                           true=SWITCH_ON)  # empty: off

    @field_validator("s3_use_ssl", mode="before")
    @classmethod
    def _ssl(cls, value: Any) -> Any:
        """Unset (or empty): DuckDB's default; else a switch."""
        value = _blank_is_unset(value)
        return value if value is None or isinstance(value, bool) else _flag(value)

    @field_validator("ledger_settle_seconds", mode="before")
    @classmethod
    def _settle(cls, value: Any) -> Any:
        value = _blank_is_unset(value)
        if value is None:
            return SETTLE_SECONDS
        return _number(value, lambda seconds: seconds >= 0, "a number of seconds, 0 or more (e.g. 2)")

    @model_validator(mode="before")
    @classmethod
    def _places(cls, data: Any) -> Any:
        """The directories that default to places under PRECORO_HOME, resolved now (relative to this process's
        working directory, as before)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        home = Path(_blank_is_unset(data.get(ENV_HOME)) or Path.cwd() / "var").expanduser().resolve()
        data[ENV_HOME] = home
        for name, default in ((ENV_WAREHOUSE, home / "warehouse"), (ENV_STATE_DIR, home / "state")):
            data[name] = Path(_blank_is_unset(data.get(name)) or default).expanduser().resolve()
        ledger = _blank_is_unset(data.get(ENV_LEDGER_DIR))
        data[ENV_LEDGER_DIR] = Path(ledger).expanduser().resolve() if ledger else home / "ledger"
        return data

    @property
    def database_url_value(self) -> str | None:
        """The shared-state database URL itself, for the code that connects (never for a message)."""
        return self.database_url.get_secret_value() if self.database_url is not None else None

    def object_storage(self) -> ObjectStorage | None:
        """The warehouse's object storage, when PRECORO_WAREHOUSE_DATA_PATH is set."""
        if self.warehouse_data_path is None:
            return None
        from .warehouse.remote import ObjectStorage

        def revealed(value: SecretStr | None) -> str | None:
            return value.get_secret_value().strip() if value is not None else None

        return ObjectStorage(self.warehouse_data_path, endpoint=self.s3_endpoint,
                             key_id=revealed(self.s3_access_key_id), secret=revealed(self.s3_secret_access_key),
                             region=self.s3_region, url_style=self.s3_url_style, use_ssl=self.s3_use_ssl)

    def warehouse_options(self) -> dict[str, Any]:
        """The keyword arguments of `Warehouse(config.warehouse, ...)`: where its catalog and files are."""
        return {"database_url": self.database_url_value, "object_storage": self.object_storage()}

    @property
    def budget_dir(self) -> Path:
        """Where the request budget's ledger is: the shared budget's directory, else <PRECORO_STATE_DIR>/quota."""
        return (self.shared_budget or self.state_dir / "quota").resolve()

    def quota_state_home(self) -> Path:
        """XDG_STATE_HOME, else ~/.local/state: where an unconfigured PrecoroResource keeps its request budget."""
        return self.xdg_state_home or Path.home() / ".local" / "state"


class Settings(StateSettings):
    """Every setting: the account, the schedule and where the state lives (see StateSettings)."""

    api_token: SecretStr = _variable("PRECORO_API_TOKEN", "the API token (Precoro → Settings → API)", SecretStr(""))
    email: SecretStr = _variable("PRECORO_EMAIL", "e-mail of the token's user", SecretStr(""))
    base_url: str | None = _variable("PRECORO_BASE_URL", "Precoro's API URL (overrides PRECORO_REGION)")
    region: str = _variable("PRECORO_REGION", "eu (api.precoro.com) or us (api.precoro.us)", "eu")
    start_date: date = _variable("PRECORO_START_DATE", "first daily partition (YYYY-MM-DD); default 365 days ago")
    time_scale: float = _variable("PRECORO_TIME_SCALE", "Precoro's rate-limit windows run this many times faster "
                                  "(only for the simulator)", 1.0)
    sensor_interval_seconds: int = _variable(
        "PRECORO_SENSOR_INTERVAL_SECONDS", "how often the change sensor polls; default 1800, 21600 with webhooks on")
    timezone: str = _variable("PRECORO_TIMEZONE", "the company's time zone (IANA name): the calendar of Precoro's "
                              "createDate filter and of the partitions", "UTC")
    owners: Annotated[tuple[str, ...], NoDecode] = _variable(
        "PRECORO_ASSET_OWNERS", "who answers for the assets (Dagster owners): e-mail addresses or team:names, "
        "comma-separated (empty: none)", ("team:finance_integration",))
    entities: Annotated[tuple[str, ...] | None, NoDecode] = _variable(
        "PRECORO_ENTITIES", "the entities to sync, comma-separated (e.g. invoices,payments,suppliers): the others "
        "have no asset and cost no request; default all")
    alert_url: SecretStr | None = _variable(
        ENV_ALERT_URL, "an incoming-webhook URL (Slack-compatible JSON) for failed runs and a low request quota")
    sweep_days: int = _variable(
        "PRECORO_SWEEP_DAYS", "how many recent days the daily deletion sweep lists again (0: no sweep)", 7)
    webhooks: bool = _variable("PRECORO_WEBHOOKS", "Precoro sends webhooks to `precoro-assets webhooks`: the "
                               "polling sensor is the safety net", False)
    webhook_quota_share: float = _variable(
        "PRECORO_WEBHOOK_QUOTA_SHARE", "the share (%) of the day's request quota that webhook events may spend", 0.30)

    @field_validator("base_url", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return _blank_is_unset(value)

    @field_validator("start_date", mode="before")
    @classmethod
    def _day(cls, value: Any) -> Any:
        value = _blank_is_unset(value)
        if value is None:
            return datetime.now(UTC).date() - timedelta(days=365)
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"must be YYYY-MM-DD, not {value!r}") from None

    @field_validator("timezone", mode="before")
    @classmethod
    def _zone(cls, value: Any) -> str:
        value = _blank_is_unset(value)
        name = "UTC" if value is None else str(value)
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"must be an IANA time zone name such as Europe/Warsaw or UTC, not {name!r}") from None
        return name

    @field_validator("time_scale", mode="before")
    @classmethod
    def _scale(cls, value: Any) -> Any:
        return _number(value, lambda scale: scale > 0, "a number above 0 (e.g. 10)")

    @field_validator("sensor_interval_seconds", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> Any:
        if isinstance(value, int):
            return value
        try:
            return int(str(value))
        except ValueError:
            raise ValueError(f"must be a whole number of seconds (e.g. 1800), not {value!r}") from None

    @field_validator("alert_url", mode="before")
    @classmethod
    def _alert_url(cls, value: Any) -> Any:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        text = _blank_is_unset(text)
        if text is None:
            return None
        if urlsplit(str(text).strip()).scheme not in ("http", "https"):
            raise ValueError("must be an http(s) URL (an incoming webhook, e.g. Slack's)")
        return SecretStr(str(text).strip())

    @field_validator("sweep_days", mode="before")
    @classmethod
    def _sweep_days(cls, value: Any) -> Any:
        value = _blank_is_unset(value)
        if value is None:
            return 7
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            return int(value)
        raise ValueError(f"must be a whole number of days (0: no sweep), not {value!r}")

    @field_validator("webhooks", mode="before")
    @classmethod
    def _webhooks(cls, value: Any) -> Any:
        return value if isinstance(value, bool) else _flag(value)

    @field_validator("owners", mode="before")
    @classmethod
    def _owners(cls, value: Any) -> Any:
        """E-mail addresses or team:names, comma-separated (empty: no owners)."""
        if not isinstance(value, str):
            return value
        owners = tuple(part.strip() for part in value.split(",") if part.strip())
        for owner in owners:
            if not (owner.startswith("team:") and owner[5:]) and "@" not in owner:
                raise ValueError(f"holds e-mail addresses or team:names, comma-separated; {owner!r} is neither")
        return owners

    @field_validator("entities", mode="before")
    @classmethod
    def _entities(cls, value: Any) -> Any:
        """Entity names, comma-separated; empty or unset: every entity."""
        value = _blank_is_unset(value)
        if not isinstance(value, str):
            return value
        names = tuple(part.strip() for part in value.split(",") if part.strip())
        unknown = [name for name in names if name not in BY_NAME]
        if unknown:
            raise ValueError(f"must name entities among {', '.join(BY_NAME)} (comma-separated), not "
                             f"{', '.join(map(repr, unknown))}")
        return names or None

    @field_validator("webhook_quota_share", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        """A percentage (`30` or `30%`), as a fraction."""
        if isinstance(value, float):
            return value
        text = (_blank_is_unset(value) or "30").strip().removesuffix("%").strip()
        return _number(text, lambda percent: 0 < percent <= 100, "a percentage above 0 and at most 100 (e.g. 30)") / 100

    @model_validator(mode="before")
    @classmethod
    def _polling(cls, data: Any) -> Any:
        """With webhooks on, polling is the safety net for lost deliveries: every 6 hours, else every 30 min."""
        if not isinstance(data, dict) or _blank_is_unset(data.get("PRECORO_SENSOR_INTERVAL_SECONDS")) is not None:
            return data
        try:
            webhooks = _flag(data.get("PRECORO_WEBHOOKS", ""))
        except ValueError:
            webhooks = False  # reported by the field's own check
        return {**data, "PRECORO_SENSOR_INTERVAL_SECONDS": 21600 if webhooks else 1800}


# Whose value is never quoted in an error.
_SECRET = {"PRECORO_API_TOKEN", "PRECORO_EMAIL", ENV_DATABASE_URL, ENV_S3_SECRET, ENV_S3_KEY_ID, ENV_WEBHOOK_SECRET,
           ENV_ALERT_URL}


def _problems(error: ValidationError) -> list[str]:
    """One line per bad variable: its name and what it accepts, from the field's own check (a secret's value is
    never shown). Pydantic's raw text appears only for a conversion no check of ours covers (a path, say)."""
    lines = []
    for problem in error.errors(include_input=False, include_url=False):
        variable = str(problem["loc"][0]) if problem["loc"] else "a setting"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] != "value_error":
            message = f"is not valid: {message}"
        elif variable in _SECRET:
            message = message.split(", not ")[0]
        lines.append(f"{variable} {message}")
    return lines


def _read(model: type[StateSettings], values: dict[str, Any] | None = None) -> Any:
    try:
        return model(**(values or {}))
    except ValidationError as error:
        lines = _problems(error)
        if len(lines) == 1:
            raise ValueError(lines[0]) from None
        raise ValueError(f"{len(lines)} settings are wrong:\n" + "\n".join(f"- {line}" for line in lines)) from None


MISSING_TOKEN = (
    "PRECORO_API_TOKEN is not set. For a Precoro account set PRECORO_API_TOKEN and PRECORO_EMAIL (and "
    "PRECORO_BASE_URL, or PRECORO_REGION=eu|us). To try precoro-assets without an account, `precoro-assets demo` "
    "runs the bundled Precoro simulator (and `precoro-assets sync` uses it when no token is set).")


class _Token(BaseSettings):
    """The token alone: its absence is reported first (MISSING_TOKEN says how to begin), as it always was."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore")
    api_token: SecretStr = _variable("PRECORO_API_TOKEN", "the API token", SecretStr(""))


def secret_variable(variable: str) -> str:
    """The secret in the variable `variable` (a company's token or e-mail, or PRECORO_API_TOKEN), read as every
    setting is."""
    model = create_model("_CompanyToken", __base__=_Token,
                         api_token=(SecretStr, _variable(variable, "the API token", SecretStr(""))))
    return model().api_token.get_secret_value()


def load(token_variable: str = "PRECORO_API_TOKEN", *, email_variable: str | None = None, **values: str) -> Settings:
    """Every setting, for the code location and the commands that talk to Precoro: no token is the error
    MISSING_TOKEN; any wrong value, one ValueError naming every wrong variable.

    For one company of several in a project (factory.build_definitions): `values`, by variable name
    (`PRECORO_HOME="/data/acme"`), override the environment (a home given so holds the company's warehouse, state
    and ledger folder unless they are given too), the company's token is in `token_variable` and, when given, its
    user's e-mail in `email_variable` (checked now, so a project that lacks it fails to load rather than at its first
    run). Secrets are not values: they stay in the environment."""
    known = {field.validation_alias for field in Settings.model_fields.values()}
    unknown = sorted(name for name in values if name not in known)
    if unknown:
        raise ValueError(f"no such setting: {', '.join(unknown)} (the settings: docs/configuration.md)")
    secret = sorted(name for name in values if name in _SECRET)
    if secret:
        raise ValueError(f"{', '.join(secret)}: a secret is read from the environment in each process, never "
                         "given as a value (a company's token: token_variable)")
    if ENV_HOME in values:  # a company's own home: its places are under it, whatever the environment says
        home = Path(values[ENV_HOME]).expanduser()
        values = {ENV_WAREHOUSE: str(home / "warehouse"), ENV_STATE_DIR: str(company_state_dir(home)),
                  ENV_LEDGER_DIR: str(home / "ledger"), **values}
    if not (values.get(token_variable) or secret_variable(token_variable)).strip():
        raise ValueError(MISSING_TOKEN if token_variable == "PRECORO_API_TOKEN" else (
            f"{token_variable} is not set: it holds the company's Precoro API token (Precoro → Settings → API; one "
            "token per company)"))
    if email_variable is not None and not secret_variable(email_variable).strip():
        raise ValueError(f"{email_variable} is not set: it holds the e-mail of the user whose Precoro API token is in "
                         f"{token_variable}")
    config: Settings = _read(Settings, values)
    return config


def company_state_dir(home: str | Path) -> Path:
    """A company's state directory (request budget, outbox, webhook inbox) under the home `load` is given."""
    return Path(home).expanduser().resolve() / "state"


def webhook_secret_variable(company: str) -> str:
    """The variable of a company's webhook secret, for `precoro-assets webhooks --company acme=HOME`."""
    return f"{company.upper()}_PRECORO_WEBHOOK_SECRET"


def load_state() -> StateSettings:
    """Where the state lives, for commands that need no account (e.g. `precoro-assets sql`)."""
    return _read(StateSettings)


def project_home() -> Path:
    return load_state().home


def warehouse_dir() -> Path:
    """PRECORO_WAREHOUSE, else <PRECORO_HOME>/warehouse: all a reader of the warehouse needs to know."""
    return load_state().warehouse


def ledger_dir() -> Path:
    """The drop folder: PRECORO_LEDGER_DIR, else <PRECORO_HOME>/ledger."""
    return load_state().ledger_dir


