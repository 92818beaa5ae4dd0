"""What lies outside Dagster, as external assets, so that lineage starts where the data starts: the Precoro API
(which the ingest assets read and the write-back job writes to) and the accounting side's drop folder.

Dagster materializes neither. The Precoro API is observed instead: the change sensor's ticks (which make
requests anyway) and the write-back runs record what is left of the request quota, and what was written back,
as observations of `precoro/api`, so the quota is visible on its page without opening a materialization.
"""

from __future__ import annotations

import dagster as dg

from .naming import DEFAULT, SOURCES, PrecoroTranslator
from .resources import PrecoroResource


def external_assets(t: PrecoroTranslator) -> list[dg.AssetSpec]:
    """The Precoro API (`<prefix>/api`) and the ledger folder (`<prefix>/ledger_folder`)."""
    return [
        dg.AssetSpec(
            t.key("api"), group_name=t.name(SOURCES), kinds={"precoro"},
            description="The Precoro REST API of the configured account (its base URL or region): where every table "
                        "of the warehouse comes from, and where the write-back job sends payments, externalId links "
                        "and externalIntegrationLog texts. Its observations show what is left of the request quota "
                        "(1/s, 300/min, 1,500/h, 3,000/day, shared by every process) and what was written back."),
        dg.AssetSpec(
            t.key("ledger_folder"), group_name=t.name(SOURCES), kinds={"csv", "parquet"},
            description="The accounting side: the drop folder of payment and bill exports (CSV or Parquet), and its "
                        "export/ folder, where the write-back job offers documents the ledger lacks."),
    ]


PRECORO_API, LEDGER_FOLDER = external_assets(DEFAULT)


def quota_observation(precoro: PrecoroResource, api: dg.AssetKey = PRECORO_API.key,
                      **extra: int | str) -> dg.AssetObservation:
    """What is left of the quota in each window now (read from the shared request ledger: no request), observed
    on `api` (the company's `<prefix>/api`)."""
    metadata = {key.replace("precoro_", "").replace("_", " "): value
                for key, value in precoro.accounting_metadata().items()}
    return dg.AssetObservation(asset_key=api, metadata={**metadata, **extra})
