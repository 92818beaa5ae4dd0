"""Configuration in one place (issue #29): precoro_assets/settings.py alone reads the environment; every other
module receives the values from its caller. A wrong setting is one error naming every wrong variable, and no
secret shows in a repr, a str or an error message."""

from __future__ import annotations

import ast
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from precoro_assets import settings
from precoro_assets.warehouse.remote import ObjectStorage

REPO = Path(__file__).resolve().parents[2]
PRODUCT = REPO / "precoro_assets"
# The one write: the CLI points Dagster's instance and the processes it starts at their home.
ALLOWED_WRITES = {("precoro_assets/cli.py", "DAGSTER_HOME")}


def _environment_uses(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, how, the variable written or None) for each use of os.environ / os.getenv / os.putenv in a module."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        name = (node.attr if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == "os" else node.id if isinstance(node, ast.Name) else None)
        if name not in ("environ", "getenv", "putenv", "environb"):
            continue
        parent = parents.get(node)
        written = None
        if (isinstance(parent, ast.Subscript) and isinstance(parent.ctx, ast.Store)
                and isinstance(parent.slice, ast.Constant)):
            written = str(parent.slice.value)
        found.append((node.lineno, name, written))
    for node in ast.walk(tree):  # `from os import environ, getenv`
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [(node.lineno, f"from os import {a.name}", None) for a in node.names
                      if a.name in ("environ", "getenv", "putenv", "environb")]
    return found


def test_no_product_module_but_settings_reads_the_environment():
    sources = sorted(PRODUCT.rglob("*.py"))
    assert len(sources) > 30  # the scan reads the product's tree
    uses = {str(path.relative_to(REPO)): _environment_uses(path) for path in sources}
    assert uses["precoro_assets/cli.py"]  # the scan finds os.environ (the CLI's one write)
    readers = {module: [use for use in found if (module, use[2]) not in ALLOWED_WRITES]
               for module, found in uses.items() if module != "precoro_assets/settings.py"}
    assert {module: found for module, found in readers.items() if found} == {}


def test_settings_py_itself_reads_through_pydantic_settings_not_by_hand():
    assert _environment_uses(PRODUCT / "settings.py") == []


def test_every_setting_is_a_typed_field_with_a_description_and_its_variable_name():
    fields = settings.Settings.model_fields
    assert len(fields) >= 25
    for name, field in fields.items():
        assert field.description, name
        assert isinstance(field.validation_alias, str), name
    names = {field.validation_alias for field in fields.values()}
    assert {"PRECORO_DATABASE_URL", "PRECORO_WAREHOUSE_DATA_PATH", "PRECORO_S3_SECRET_ACCESS_KEY",
            "PRECORO_KEEP_BANK_DETAILS", "PRECORO_LEDGER_DIR", "PRECORO_LEDGER_SETTLE_SECONDS",
            "PRECORO_WRITEBACK_SEND", "PRECORO_WEBHOOK_SECRET", "DAGSTER_HOME", "XDG_STATE_HOME"} <= names


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A real account's minimal settings, nothing else set (so no default is the shell's)."""
    import os

    for name in [k for k in os.environ if k.startswith("PRECORO_") or k in ("DAGSTER_HOME", "XDG_STATE_HOME")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PRECORO_API_TOKEN", "tok-0123456789-secret")
    monkeypatch.setenv("PRECORO_EMAIL", "buyer@example.com")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.usefixtures("account")
def test_defaults_are_the_documented_ones(tmp_path: Path):
    config = settings.load()
    assert config.home == (tmp_path / "var").resolve()  # ./var of the directory the process starts in
    assert config.warehouse == config.home / "warehouse"
    assert config.state_dir == config.home / "state"
    assert config.ledger_dir == config.home / "ledger"
    assert config.start_date == datetime.now(UTC).date() - timedelta(days=365)
    assert (config.region, config.timezone, config.time_scale) == ("eu", "UTC", 1.0)
    assert (config.sensor_interval_seconds, config.webhooks, config.webhook_quota_share) == (1800, False, 0.30)
    assert config.owners == ("team:finance_integration",)
    assert (config.entities, config.sweep_days) == (None, 7)  # every entity; a week swept for deletions
    assert config.database_url is None and config.object_storage() is None
    assert (config.ledger_settle_seconds, config.keep_bank_details, config.writeback_send) == (2.0, False, False)
    assert config.dagster_home is None and config.quota_state_home() == Path.home() / ".local" / "state"


def test_an_empty_variable_counts_as_unset(account: Path, monkeypatch: pytest.MonkeyPatch):
    """As `os.environ.get(name) or default` had it (a compose file's `PRECORO_X=` lines)."""
    unset = settings.load()
    for name in ("PRECORO_START_DATE", "PRECORO_TIMEZONE", "PRECORO_WEBHOOK_QUOTA_SHARE", "PRECORO_BASE_URL",
                 "PRECORO_SENSOR_INTERVAL_SECONDS", "PRECORO_WEBHOOKS", "PRECORO_HOME", "PRECORO_WAREHOUSE",
                 "PRECORO_STATE_DIR", "PRECORO_LEDGER_DIR", "PRECORO_LEDGER_SETTLE_SECONDS", "PRECORO_DATABASE_URL",
                 "PRECORO_WAREHOUSE_DATA_PATH", "PRECORO_S3_USE_SSL", "PRECORO_S3_ENDPOINT", "PRECORO_KEEP_BANK_DETAILS",
                 "PRECORO_WRITEBACK_SEND", "PRECORO_ENTITIES", "PRECORO_SWEEP_DAYS", "DAGSTER_HOME",
                 "XDG_STATE_HOME"):
        monkeypatch.setenv(name, "")
    assert settings.load() == unset


def test_the_accepted_spellings_are_kept(account: Path, monkeypatch: pytest.MonkeyPatch):
    for spelling in ("1", "true", "YES"):
        monkeypatch.setenv("PRECORO_WEBHOOKS", spelling)
        monkeypatch.setenv("PRECORO_KEEP_BANK_DETAILS", spelling)
        config = settings.load()
        assert config.webhooks and config.keep_bank_details, spelling
        assert config.sensor_interval_seconds == 21600  # polling is the safety net with webhooks on
    monkeypatch.setenv("PRECORO_WEBHOOKS", "on")
    assert settings.load().webhooks
    # the switches that send payments or keep bank details take only the spellings they always took
    for name in ("PRECORO_KEEP_BANK_DETAILS", "PRECORO_WRITEBACK_SEND"):
        monkeypatch.setenv(name, "on")
        with pytest.raises(ValueError, match=f"{name} must be 1, true or yes"):
            settings.load()
        monkeypatch.setenv(name, "1")
    for spelling in ("0", "false", "no", "off", ""):
        monkeypatch.setenv("PRECORO_WRITEBACK_SEND", spelling)
        assert not settings.load().writeback_send, spelling
    monkeypatch.setenv("PRECORO_WEBHOOK_QUOTA_SHARE", "25%")
    monkeypatch.setenv("PRECORO_ASSET_OWNERS", "ap@example.com, team:data")
    monkeypatch.setenv("PRECORO_START_DATE", "2025-01-01")
    monkeypatch.setenv("PRECORO_TIMEZONE", "Europe/Warsaw")
    monkeypatch.setenv("PRECORO_HOME", "relative/home")
    monkeypatch.setenv("PRECORO_LEDGER_DIR", "~/ledger")
    monkeypatch.setenv("PRECORO_WAREHOUSE_DATA_PATH", "s3://bucket/precoro")
    monkeypatch.setenv("PRECORO_S3_USE_SSL", "0")
    config = settings.load()
    assert config.webhook_quota_share == 0.25 and config.owners == ("ap@example.com", "team:data")
    assert config.start_date == date(2025, 1, 1) and config.timezone == "Europe/Warsaw"
    assert config.home == (account / "relative" / "home").resolve()  # resolved when loaded
    assert config.ledger_dir == (Path.home() / "ledger").resolve()
    storage = config.object_storage()
    assert storage is not None and storage.data_path == "s3://bucket/precoro/" and storage.use_ssl is False
    monkeypatch.setenv("PRECORO_ASSET_OWNERS", "")
    assert settings.load().owners == ()  # empty: no owners


@pytest.mark.usefixtures("account")
def test_no_token_is_the_error_that_says_how_to_begin(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PRECORO_API_TOKEN")
    monkeypatch.setenv("PRECORO_TIMEZONE", "Mars/Base")
    with pytest.raises(ValueError) as error:
        settings.load()
    assert str(error.value) == settings.MISSING_TOKEN


@pytest.mark.usefixtures("account")
def test_every_wrong_variable_is_named_in_one_error_with_what_it_accepts(monkeypatch: pytest.MonkeyPatch):
    wrong = {"PRECORO_START_DATE": "01/11/2026", "PRECORO_TIMEZONE": "Mars/Base", "PRECORO_TIME_SCALE": "fast",
             "PRECORO_WEBHOOK_QUOTA_SHARE": "150", "PRECORO_ASSET_OWNERS": "finance", "PRECORO_WEBHOOKS": "maybe",
             "PRECORO_SENSOR_INTERVAL_SECONDS": "often", "PRECORO_LEDGER_SETTLE_SECONDS": "-1",
             "PRECORO_KEEP_BANK_DETAILS": "2", "PRECORO_WAREHOUSE_DATA_PATH": "/tmp/files",
             "PRECORO_DATABASE_URL": "mysql://user:pw@host/db", "PRECORO_S3_USE_SSL": "perhaps",
             "PRECORO_SWEEP_DAYS": "-1", "PRECORO_ENTITIES": "invoices,bills"}
    for name, value in wrong.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as error:
        settings.load()
    message = str(error.value)
    lines = message.splitlines()
    assert lines[0] == f"{len(wrong)} settings are wrong:"
    assert sorted(line.split()[1] for line in lines[1:]) == sorted(wrong)  # each named once, at its line's start
    assert "- PRECORO_START_DATE must be YYYY-MM-DD, not '01/11/2026'" in lines
    assert "- PRECORO_WEBHOOKS must be 1, true, yes or on (or 0, false, no, off), not 'maybe'" in lines
    assert "validation error" not in message and "pydantic" not in message and "input_value" not in message


@pytest.mark.usefixtures("account")
def test_one_wrong_variable_is_one_line(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PRECORO_WEBHOOK_QUOTA_SHARE", "a third")
    with pytest.raises(ValueError) as error:
        settings.load()
    assert str(error.value) == ("PRECORO_WEBHOOK_QUOTA_SHARE must be a percentage above 0 and at most 100 (e.g. 30), "
                                "not 'a third'")


@pytest.mark.usefixtures("account")
def test_where_the_state_lives_loads_without_a_token_or_the_account_s_settings(monkeypatch: pytest.MonkeyPatch,
                                                                                tmp_path: Path):
    monkeypatch.delenv("PRECORO_API_TOKEN")
    monkeypatch.setenv("PRECORO_START_DATE", "not a date")  # the account's: `precoro-assets sql` needs none
    monkeypatch.setenv("PRECORO_WAREHOUSE", str(tmp_path / "wh"))
    assert settings.load_state().warehouse == settings.warehouse_dir() == (tmp_path / "wh").resolve()
    assert settings.project_home() == (tmp_path / "var").resolve()


SECRETS = {"PRECORO_API_TOKEN": "tok-0123456789-secret", "PRECORO_EMAIL": "buyer@example.com",
           "PRECORO_S3_SECRET_ACCESS_KEY": "s3-secret-key-value", "PRECORO_S3_ACCESS_KEY_ID": "AKIA-KEY-ID-VALUE",
           "PRECORO_WEBHOOK_SECRET": "webhook-secret-0123456789",
           "PRECORO_DATABASE_URL": "postgresql://user:db-password-value@db.example.com:5432/precoro"}
SECRET_VALUES = ("tok-0123456789-secret", "buyer@example.com", "s3-secret-key-value", "AKIA-KEY-ID-VALUE",
                 "webhook-secret-0123456789", "db-password-value")


@pytest.mark.usefixtures("account")
def test_no_secret_shows_in_a_repr_a_str_or_an_error(monkeypatch: pytest.MonkeyPatch):
    for name, value in {**SECRETS, "PRECORO_WAREHOUSE_DATA_PATH": "s3://bucket/"}.items():
        monkeypatch.setenv(name, value)
    config = settings.load()
    assert config.api_token.get_secret_value() == SECRETS["PRECORO_API_TOKEN"]  # kept, only not shown
    assert config.database_url_value == SECRETS["PRECORO_DATABASE_URL"]
    shown = " ".join([repr(config), str(config), repr(config.object_storage()), str(config.model_dump())])
    assert [value for value in SECRET_VALUES if value in shown] == []
    assert "db.example.com" not in repr(config)  # the whole URL is secret, not only its password

    # a wrong value of a secret setting is named, never quoted
    monkeypatch.setenv("PRECORO_DATABASE_URL", "mysql://user:db-password-value@db.example.com/precoro")
    monkeypatch.setenv("PRECORO_TIMEZONE", "Mars/Base")
    with pytest.raises(ValueError) as error:
        settings.load()
    assert "PRECORO_DATABASE_URL" in str(error.value) and "PRECORO_TIMEZONE" in str(error.value)
    assert [value for value in SECRET_VALUES if value in str(error.value)] == []


def test_the_object_storage_keys_stay_out_of_the_repr():
    storage = ObjectStorage("s3://bucket/", key_id="AKIA-KEY-ID-VALUE", secret="s3-secret-key-value")
    assert "AKIA" not in repr(storage) and "s3-secret" not in repr(storage)


def test_a_companys_settings_live_under_its_home_and_refuse_typos_and_secrets_given_as_values(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from precoro_assets import PrecoroTranslator, build_definitions

    monkeypatch.setenv("ACME_TOKEN", "tok-acme")
    monkeypatch.setenv("PRECORO_STATE_DIR", str(tmp_path / "shared"))  # the environment's, not the company's
    config = settings.load("ACME_TOKEN", PRECORO_HOME=str(tmp_path / "acme"))
    assert (config.warehouse, config.state_dir, config.ledger_dir) == (
        tmp_path / "acme" / "warehouse", tmp_path / "acme" / "state", tmp_path / "acme" / "ledger")

    with pytest.raises(ValueError, match="no such setting: PRECORO_HOM "):
        settings.load("ACME_TOKEN", PRECORO_HOM=str(tmp_path))
    with pytest.raises(ValueError, match="PRECORO_ALERT_URL: a secret is read from the environment") as refused:
        settings.load("ACME_TOKEN", PRECORO_ALERT_URL="https://hooks.example/very-secret-path")
    assert "very-secret-path" not in str(refused.value)

    monkeypatch.setenv("PRECORO_DATABASE_URL", "postgresql://u:Pw-never-shown@127.0.0.1:9/db")
    shared = settings.load("ACME_TOKEN", PRECORO_HOME=str(tmp_path / "acme"))
    with pytest.raises(ValueError, match="would share that database") as refused:
        build_definitions(shared, PrecoroTranslator(key_prefix=("acme",), name_prefix="acme", resource_prefix="acme_"))
    assert "Pw-never-shown" not in str(refused.value)
