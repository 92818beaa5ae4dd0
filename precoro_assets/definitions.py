"""The code location: every asset, check, job, schedule, sensor and resource of precoro-assets, for the company
its settings (the PRECORO_* variables, settings.py) describe.

Read this file first; `build_definitions` (factory.py) builds each piece from the entity catalogue
(precoro_assets/catalogue.py), named by the translator (defs/naming.py).
"""

from __future__ import annotations

import warnings

import dagster as dg

from . import settings
from .factory import build_definitions

__all__ = ["build_definitions", "defs"]

# BackfillPolicy is "beta" in Dagster 1.12/1.13 but is the documented way to backfill a range in one run.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
# Dagster 1.13 calls the partition freshness checks "superseded" by FreshnessPolicy, but a policy ignores
# partitions (a backfill of an old day makes it green): the checks are what say whether yesterday was listed
# (defs/maintenance.py).
warnings.filterwarnings("ignore", category=dg.SupersessionWarning, message=r".*freshness_checks` is superseded")



defs = build_definitions(settings.load())
