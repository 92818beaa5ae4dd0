"""The demo's code location with several simulated companies (`precoro-assets demo --companies N`).

Each company is declared as a team declares it in its own project's YAML (docs/embedding.md): a
`PrecoroComponent` with its token and e-mail by variable name and a home of its own. The demo says which companies
in PRECORO_DEMO_COMPANIES (their names and homes) and sets each one's variables for the Dagster processes.
"""

from __future__ import annotations

import json
import os
import textwrap

import dagster as dg

from precoro_assets import PrecoroComponent
from precoro_assets.factory import quiet_dagster_warnings

DEMO_COMPANIES = "PRECORO_DEMO_COMPANIES"

# one company's attributes, as its defs.yaml holds them
ATTRIBUTES = """\
company: {company}
api_token: "{{{{ env.{upper}_PRECORO_TOKEN }}}}"
email: "{{{{ env.{upper}_PRECORO_EMAIL }}}}"
home: {home}
webhooks: {webhooks}
"""


def attributes(company: str, home: str, webhooks: bool) -> str:
    return ATTRIBUTES.format(company=company, upper=company.upper(), home=json.dumps(home),
                             webhooks=str(webhooks).lower())


def company_yaml(company: str, home: str, webhooks: bool) -> str:
    """The company's whole defs.yaml in a `dg` project (the demo's guide shows it)."""
    return "type: precoro_assets.PrecoroComponent\nattributes:\n" + textwrap.indent(
        attributes(company, home, webhooks), "  ")


@dg.definitions
def defs() -> dg.Definitions:
    if DEMO_COMPANIES not in os.environ:
        raise RuntimeError(f"{DEMO_COMPANIES} is not set: this is the code location of `precoro-assets demo "
                           "--companies N`, which sets it; run that")
    quiet_dagster_warnings()
    companies = json.loads(os.environ[DEMO_COMPANIES])
    return dg.Definitions.merge(
        *(PrecoroComponent.resolve_from_yaml(attributes(c["company"], c["home"], c["webhooks"])).definitions()
          for c in companies),
        # the project's own choice (a company's jobs run in one process anyway): its checks' runs too
        dg.Definitions(executor=dg.in_process_executor))
