"""The code location: every asset, check, job, schedule, sensor and resource of precoro-assets, for the company
its settings (the PRECORO_* variables, settings.py) describe.

Read this file first; `build_definitions` (factory.py) builds each piece from the entity catalogue
(precoro_assets/catalogue.py), named by the translator (defs/naming.py).
"""

from __future__ import annotations

import dagster as dg

from . import settings
from .factory import build_definitions, quiet_dagster_warnings

__all__ = ["build_definitions", "defs"]

quiet_dagster_warnings()

# the location's own runs too (an asset materialized from the UI outside a job): one process, as each job's
defs = dg.Definitions.merge(build_definitions(settings.load()), dg.Definitions(executor=dg.in_process_executor))
