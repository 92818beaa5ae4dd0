"""Dagster resources: the warehouse (the Precoro API resource lives in precoro_assets.api.resource)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from ..warehouse.staging import DetailStaging
from ..warehouse.store import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """Where the Precoro tables live, and where fetched details wait until they are written."""

    location: str = Field(description="Directory of the warehouse (PRECORO_WAREHOUSE).")
    state_dir: str = Field(description="Directory for staged details (PRECORO_STATE_DIR).")

    def open(self) -> Warehouse:
        return Warehouse(self.location)

    def staging(self) -> DetailStaging:
        return DetailStaging(Path(self.state_dir))
