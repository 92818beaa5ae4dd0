"""The analyst views asset: (re)creates the views over the Precoro tables."""


import dagster as dg

from ..catalogue import Entity
from ..warehouse.views import VIEWS
from .ingest import create_analyst_views
from .naming import ANALYTICS, PrecoroTranslator
from .resources import WarehouseResource


def build_analyst_views(t: PrecoroTranslator, entities: tuple[Entity, ...]) -> dg.AssetsDefinition:
    """`<prefix>/analyst_views`, after the selected entities' assets (a deselected entity's table is read as an
    empty one: the views create it so)."""

    @dg.asset(
        key=t.key("analyst_views"),
        deps=[t.entity_key(entity) for entity in entities],
        group_name=t.name(ANALYTICS),
        kinds={"duckdb"},
        description="Views for analysts: " + "; ".join(f"`precoro.{v.name}`: {v.description}" for v in VIEWS),
        metadata={f"view precoro.{v.name}": dg.MetadataValue.table_schema(
            dg.TableSchema(columns=[dg.TableColumn(c, description=d) for c, d in v.columns.items()])) for v in VIEWS},
        required_resource_keys=t.resource_keys("warehouse"),
    )
    def analyst_views(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        warehouse: WarehouseResource = t.resource(context, "warehouse")
        names = warehouse.open().write(create_analyst_views)
        context.log.info(f"created views {', '.join(names)}")
        return dg.MaterializeResult(metadata={"views": ", ".join(f"precoro.{n}" for n in names)})

    return analyst_views
