"""Dagster assets for Precoro procurement data: ingest, reconcile, write back.

The public surface (docs/embedding.md): the resources, the translator that names a company's definitions, and
`build_definitions`, which builds every asset, check, job, schedule, sensor and resource of one company:

    import dagster as dg
    from precoro_assets import PrecoroTranslator, build_definitions, load_settings

    defs = dg.Definitions.merge(
        build_definitions(load_settings(), PrecoroTranslator(key_prefix=["acme"], name_prefix="acme",
                                                             resource_prefix="acme_")),
        dg.Definitions(assets=[...]),  # the project's own
    )

Importing the package loads nothing else (not even Dagster): each name is imported when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module that defines it
_EXPORTS = {
    "build_definitions": "precoro_assets.factory",
    "PrecoroComponent": "precoro_assets.component",
    "PrecoroTranslator": "precoro_assets.defs.naming",
    "PrecoroResource": "precoro_assets.defs.resources",
    "WarehouseResource": "precoro_assets.defs.resources",
    "LedgerResource": "precoro_assets.defs.resources",
    "OutboxResource": "precoro_assets.defs.resources",
    "AlertResource": "precoro_assets.defs.alerts",
    "Settings": "precoro_assets.settings",
    "load_settings": "precoro_assets.settings",
    "connect_companies": "precoro_assets.warehouse.companies",
    "ENTITIES": "precoro_assets.catalogue",
    "Entity": "precoro_assets.catalogue",
}
__all__ = ["ENTITIES", "AlertResource", "Entity", "LedgerResource", "OutboxResource", "PrecoroComponent",
           "PrecoroResource", "PrecoroTranslator", "Settings", "WarehouseResource", "build_definitions", "connect_companies",
           "load_settings"]

if TYPE_CHECKING:
    from .catalogue import ENTITIES, Entity
    from .component import PrecoroComponent
    from .defs.alerts import AlertResource
    from .defs.naming import PrecoroTranslator
    from .defs.resources import LedgerResource, OutboxResource, PrecoroResource, WarehouseResource
    from .factory import build_definitions
    from .settings import Settings
    from .settings import load as load_settings
    from .warehouse.companies import connect as connect_companies


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'precoro_assets' has no attribute {name!r}")
    attribute = {"load_settings": "load", "connect_companies": "connect"}.get(name, name)
    value = getattr(importlib.import_module(_EXPORTS[name]), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
