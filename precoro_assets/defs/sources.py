"""What lies outside Dagster, as external assets, so that lineage starts where the data starts: the Precoro API
(which the ingest assets read and the write-back job writes to) and the accounting side's drop folder.

Dagster materializes neither. The Precoro API is observed instead: the change sensor's ticks (which make
requests anyway) and the write-back runs record what is left of the request quota, and what was written back,
as observations of `precoro/api`, so the quota is visible on its page without opening a materialization.
"""

from __future__ import annotations

import dagster as dg

from .resources import PrecoroResource

SOURCES_GROUP = "precoro_sources"

PRECORO_API = dg.AssetSpec(
    ["precoro", "api"], group_name=SOURCES_GROUP, kinds={"precoro"},
    description="The Precoro REST API of the configured account (PRECORO_BASE_URL / PRECORO_REGION): where every "
                "table of the warehouse comes from, and where the write-back job sends payments, externalId links "
                "and externalIntegrationLog texts. Its observations show what is left of the request quota "
                "(1/s, 300/min, 1,500/h, 3,000/day, shared by every process) and what was written back.")

LEDGER_FOLDER = dg.AssetSpec(
    ["precoro", "ledger_folder"], group_name=SOURCES_GROUP, kinds={"csv", "parquet"},
    description="The accounting side: the drop folder of payment and bill exports (PRECORO_LEDGER_DIR; CSV or "
                "Parquet), and its export/ folder, where the write-back job offers documents the ledger lacks.")

EXTERNAL_ASSETS = [PRECORO_API, LEDGER_FOLDER]


def quota_observation(precoro: PrecoroResource, **extra: int | str) -> dg.AssetObservation:
    """What is left of the quota in each window now (read from the shared request ledger: no request)."""
    metadata = {key.replace("precoro_", "").replace("_", " "): value
                for key, value in precoro.accounting_metadata().items()}
    return dg.AssetObservation(asset_key=PRECORO_API.key, metadata={**metadata, **extra})
