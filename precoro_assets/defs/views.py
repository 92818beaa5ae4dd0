"""The analyst views asset: (re)creates the views over the Precoro tables."""


import dagster as dg

from ..catalogue import ENTITIES
from ..warehouse.views import VIEWS
from .ingest import ANALYST_VIEWS, asset_key, create_analyst_views
from .resources import WarehouseResource


@dg.asset(
    key=ANALYST_VIEWS,
    deps=[asset_key(entity) for entity in ENTITIES],
    group_name="precoro_analytics",
    kinds={"duckdb"},
    description="Views for analysts: " + "; ".join(f"`precoro.{v.name}`: {v.description}" for v in VIEWS),
    metadata={f"view precoro.{v.name}": dg.MetadataValue.table_schema(
        dg.TableSchema(columns=[dg.TableColumn(c, description=d) for c, d in v.columns.items()])) for v in VIEWS},
)
def analyst_views(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    names = warehouse.open().write(create_analyst_views)
    context.log.info(f"created views {', '.join(names)}")
    return dg.MaterializeResult(metadata={"views": ", ".join(f"precoro.{n}" for n in names)})
