"""How one company's definitions are named: asset keys, groups, jobs, schedules, sensors, pools, resource keys.

Every factory of defs/ takes a PrecoroTranslator and names what it builds through it, so one Dagster project can
hold several companies (each with its own prefixes) next to its own assets and resources: our resource keys
`precoro`, `warehouse`, `ledger`, `outbox` and `alerts` collide with a project's own `warehouse` unless given a
prefix. The defaults are the names the bundled code location has always used (`precoro/invoices`, group
`precoro_documents`, job `precoro_documents`, resource `warehouse`).

As dagster-dlt's and dagster-fivetran's translators, `get_asset_spec(entity)` is the one place to override an
entity asset's key, group, tags, owners or automation condition; the other names follow the prefixes. `sensors`
says whether the sensors and schedules start running: each as documented (None), all (True) or none (False).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from ..catalogue import Entity

# What each flow's assets are grouped under, after the name prefix (`precoro_documents`, ...).
DOCUMENTS, REFERENCE, RECONCILIATION, CATALOGUE_SYNC, ANALYTICS, SOURCES = (
    "documents", "reference", "reconciliation", "catalogue_sync", "analytics", "sources")

DEFAULT_NAME_PREFIX = "precoro"


@dataclass(frozen=True)
class PrecoroTranslator:
    """The names of one company's definitions (the defaults: the bundled code location's).

    key_prefix: the first parts of every asset key (`("acme", "precoro")` gives `acme/precoro/invoices`).
    name_prefix: groups, jobs, schedules, sensors and the API pool are `<name_prefix>_<what>`.
    resource_prefix: resource keys are `<resource_prefix><what>` (`acme_` gives `acme_warehouse`).
    sensors: None: each sensor and schedule starts as documented (docs/embedding.md, the translator); True: all
    start running; False: all start stopped, for a team that launches the jobs itself (the UI may still start one)."""

    key_prefix: Sequence[str] = ("precoro",)
    name_prefix: str = DEFAULT_NAME_PREFIX
    resource_prefix: str = ""
    sensors: bool | None = None

    @property
    def bundled(self) -> bool:
        """Names as the bundled code location's (one company, the whole location)."""
        return (tuple(self.key_prefix) == ("precoro",) and self.name_prefix == DEFAULT_NAME_PREFIX
                and self.resource_prefix == "")

    def sensor_status(self, running: bool) -> dg.DefaultSensorStatus:
        """How a sensor starts: `running` as documented, unless `sensors` says for all."""
        on = running if self.sensors is None else self.sensors
        return dg.DefaultSensorStatus.RUNNING if on else dg.DefaultSensorStatus.STOPPED

    def schedule_status(self, running: bool) -> dg.DefaultScheduleStatus:
        """How a schedule starts: `running` as documented, unless `sensors` says for all."""
        on = running if self.sensors is None else self.sensors
        return dg.DefaultScheduleStatus.RUNNING if on else dg.DefaultScheduleStatus.STOPPED

    def key(self, name: str) -> dg.AssetKey:
        """The asset key of one of our assets that is not an entity's (`api`, `analyst_views`, ...)."""
        return dg.AssetKey([*self.key_prefix, name])

    def name(self, what: str) -> str:
        """A group's, job's, schedule's, sensor's or pool's name."""
        return f"{self.name_prefix}_{what}"

    def op_name(self, what: str) -> str:
        """An op's (or multi-asset's) name: Dagster wants them unique in a code location, and apart from job names
        (an asset job's graph takes the job's name), so another company's are `<name_prefix>__<what>`; the bundled
        location's keep their short names (run config `ops: {write_back: ...}`)."""
        return what if self.name_prefix == DEFAULT_NAME_PREFIX else f"{self.name_prefix}__{what}"

    def resource_key(self, what: str) -> str:
        return f"{self.resource_prefix}{what}"

    def resource_keys(self, *what: str) -> set[str]:
        return {self.resource_key(name) for name in what}

    def resource(self, context: Any, what: str) -> Any:
        """The resource `what` (precoro, warehouse, ledger, outbox, alerts) of a run, sensor or check context."""
        return getattr(context.resources, self.resource_key(what))

    def get_asset_spec(self, entity: Entity) -> dg.AssetSpec:
        """An entity asset's key, group and tags; override to rename or re-group, or to add automation."""
        return dg.AssetSpec(self.key(entity.name), group_name=self.name(DOCUMENTS if entity.partitioned else REFERENCE))

    def entity_key(self, entity: Entity) -> dg.AssetKey:
        return self.get_asset_spec(entity).key


DEFAULT = PrecoroTranslator()
