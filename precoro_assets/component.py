"""`PrecoroComponent`: one Precoro company in a `dg` project, declared in a `defs.yaml`
(`dg scaffold defs precoro_assets.PrecoroComponent acme`), once per company:

    type: precoro_assets.PrecoroComponent
    attributes:
      company: acme
      api_token: "{{ env.ACME_PRECORO_TOKEN }}"
      email: "{{ env.ACME_PRECORO_EMAIL }}"
      home: /srv/precoro/acme
      entities: [invoices, payments, suppliers]

It builds what `build_definitions` builds (factory.py), named after the company (docs/embedding.md). The token and
the e-mail are written as `{{ env.NAME }}`, and the component keeps the variable's name, never its value: Dagster
reads the variable in each process and shows only its name (a value rendered into the YAML would show in the UI).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

import dagster as dg
from pydantic import Field, field_validator

from .defs.naming import PrecoroTranslator
from .factory import build_definitions
from .settings import COMPANY_NAME, load

# `{{ env.NAME }}` or `{{ env('NAME') }}`, the whole value
_ENV_TEMPLATE = re.compile(
    r"^\{\{\s*env(?:\.([A-Za-z_][A-Za-z0-9_]*)|\(\s*['\"]([A-Za-z_][A-Za-z0-9_]*)['\"]\s*\))\s*\}\}$")


NOT_A_VARIABLE = ""  # what a secret written out resolves to: build_defs refuses it


def variable_name(context: dg.ResolutionContext, raw: Any) -> str:
    """The environment variable a secret attribute names, from its unrendered template. Anything else resolves to
    NOT_A_VARIABLE and build_defs says what to write: an error raised here would quote the YAML, the secret too."""
    match = _ENV_TEMPLATE.match(raw.strip()) if isinstance(raw, str) else None
    return (match.group(1) or match.group(2)) if match else NOT_A_VARIABLE


def _secret(what: str) -> dg.Resolver:
    return dg.Resolver(variable_name, inject_before_resolve=False, model_field_type=str,
                       description=f'{what}, as "{{{{ env.NAME }}}}": the variable is read in each process, never shown',
                       examples=["{{ env.ACME_PRECORO_TOKEN }}"])


class PrecoroScaffolder(dg.Scaffolder):
    """`dg scaffold defs precoro_assets.PrecoroComponent acme`: a defs.yaml for the company named after the folder,
    its secrets read from ACME_PRECORO_TOKEN and ACME_PRECORO_EMAIL."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        company = re.sub(r"[^a-z0-9_]", "_", request.target_path.name.lower()).lstrip("_0123456789") or "company"
        upper = company.upper()
        dg.scaffold_component(request, {
            "company": company,
            "api_token": f"{{{{ env.{upper}_PRECORO_TOKEN }}}}",
            "email": f"{{{{ env.{upper}_PRECORO_EMAIL }}}}",
            "region": "eu",
            "timezone": "UTC",
            "home": f"var/precoro/{company}",
        })


@dg.scaffold_with(PrecoroScaffolder)
class PrecoroComponent(dg.Component, dg.Model, dg.Resolvable):
    """One Precoro company: its documents and reference data synced into its warehouse, reconciled with its ledger
    and written back, under keys, groups, jobs, sensors and resource keys named after `company`."""

    company: str = Field(pattern=rf"^{COMPANY_NAME.pattern}$", description=(
        "A short name (lowercase letters, digits, _): asset keys are <company>/precoro/<entity>, groups, jobs, "
        "schedules and sensors <company>_..., resource keys <company>_precoro, <company>_warehouse, ... (not "
        "'precoro', the bundled code location's names)"))
    api_token: Annotated[str, _secret("The company's Precoro API token (one per company)")]
    email: Annotated[str, _secret("The e-mail of the token's user")]
    base_url: str | None = Field(None, description="Precoro's API URL (overrides region), e.g. a simulator's")
    region: str | None = Field(None, description="eu (api.precoro.com, the default) or us (api.precoro.us)")
    timezone: str | None = Field(None, description="The company's time zone (IANA name); default UTC")
    start_date: str | None = Field(None, description="The first daily partition (YYYY-MM-DD); default 365 days ago")
    entities: list[str] | None = Field(None, description="The entities to sync; default all")
    home: str | None = Field(None, description=(
        "Where the company's state lives (warehouse, request budget, outbox, ledger folder): one per company; "
        "default var/precoro/<company>"))
    warehouse: str | None = Field(None, description="The warehouse's directory; default <home>/warehouse")
    ledger_dir: str | None = Field(None, description="The ledger's drop folder; default <home>/ledger")
    shared_budget: str | None = Field(None, description=(
        "A directory of one request budget for the companies that name it: for companies whose tokens belong to "
        "one Precoro user, if Precoro counts that user's limits across them (default: the company's own budget)"))
    owners: list[str] | None = Field(None, description="Who answers for the assets (e-mails or team:names)")
    key_prefix: list[str] | None = Field(None, description="The asset keys' prefix; default [<company>, precoro]")
    webhooks: bool | None = Field(None, description=(
        "true: Precoro sends this company's webhooks to `precoro-assets webhooks --company <company>=<home>` (its "
        "secret in <COMPANY>_PRECORO_WEBHOOK_SECRET), and the webhook sensor turns them into runs"))
    sensors: bool | None = Field(None, description=(
        "true: every sensor and schedule starts running; false: all start stopped (the project launches the jobs "
        "itself); default: each as documented (docs/embedding.md, the translator)"))

    @field_validator("company")
    @classmethod
    def _not_the_bundled_name(cls, company: str) -> str:
        if company == "precoro":
            raise ValueError("'precoro' names the bundled code location's definitions: choose the company's name")
        return company

    # each attribute and the setting (settings.py) it gives
    ATTRIBUTES: ClassVar[dict[str, str]] = {
        "base_url": "PRECORO_BASE_URL", "region": "PRECORO_REGION", "timezone": "PRECORO_TIMEZONE",
        "start_date": "PRECORO_START_DATE", "home": "PRECORO_HOME", "warehouse": "PRECORO_WAREHOUSE",
        "ledger_dir": "PRECORO_LEDGER_DIR", "shared_budget": "PRECORO_SHARED_BUDGET", "entities": "PRECORO_ENTITIES",
        "owners": "PRECORO_ASSET_OWNERS", "webhooks": "PRECORO_WEBHOOKS"}

    def settings_values(self) -> dict[str, str]:
        """The attributes given, as the settings' variables (settings.py): the YAML overrides the environment."""
        values: dict[str, str] = {"PRECORO_HOME": f"var/precoro/{self.company}"}
        for attribute, variable in self.ATTRIBUTES.items():
            value = getattr(self, attribute)
            if value is not None:
                values[variable] = (",".join(value) if isinstance(value, list)
                                    else ("1" if value else "0") if isinstance(value, bool) else value)
        return values

    def translator(self) -> PrecoroTranslator:
        return PrecoroTranslator(key_prefix=tuple(self.key_prefix or (self.company, "precoro")),
                                 name_prefix=self.company, resource_prefix=f"{self.company}_", sensors=self.sensors)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return self.definitions()

    def definitions(self) -> dg.Definitions:
        """The company's definitions (what `build_defs` returns; it needs nothing of the project's context)."""
        written_out = [name for name in ("api_token", "email") if getattr(self, name) == NOT_A_VARIABLE]
        if written_out:
            raise ValueError(f"{' and '.join(written_out)} of company {self.company}: write it as "
                             '"{{ env.NAME }}", NAME the environment variable that holds it. A value written or '
                             "rendered into the YAML would show in Dagster's UI.")
        try:
            config = load(self.api_token, email_variable=self.email, **self.settings_values())
        except ValueError as error:  # name the YAML's attributes, not the variables they stand for
            message = str(error)
            for attribute, variable in self.ATTRIBUTES.items():
                if getattr(self, attribute) is not None:  # the whole name only (not PRECORO_WAREHOUSE_DATA_PATH's)
                    message = re.sub(rf"\b{re.escape(variable)}\b", attribute, message)
            raise ValueError(f"company {self.company}: {message}") from None
        return build_definitions(config, self.translator(), token_variable=self.api_token,
                                 email_variable=self.email)
