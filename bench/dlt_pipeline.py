"""The comparison: dlt's `rest_api` source configured for Precoro the way dlt's documentation recommends.

- `PageNumberPaginator` on `meta.pagination.total_pages` (base_page 1), 200 rows a page, `data` selector;
- an incremental cursor on `updateDate`, sent as `modifiedSince` in Precoro's `YYYY-MM-DDTHH:MM:SS` format;
- `write_disposition="merge"` on primary key `id`;
- line items through a dependent resource `{resource}/{idn}` (one detail GET per listed document);
- the same document types as precoro-assets, credit notes listed apart with `logicType[]` (Precoro's unfiltered
  invoice list leaves them out) into the same `invoices` table.

dlt has no rate limiter. Its REST client retries 429 and 5xx with exponential back-off (5 attempts, factor
1 s) and honours a `Retry-After` *header*; Precoro puts its retry time in the JSON body, which dlt does not
read. Against a time-scaled simulator the back-off is divided by the same factor, so dlt waits what it
would wait against the real API.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .sim import DOCUMENT_RESOURCES, LISTS, LISTS_WITH_DETAILS, PER_PAGE, list_request

if TYPE_CHECKING:
    from dlt.sources.rest_api import RESTAPIConfig


def modified_since(value: Any) -> str:
    """A cursor value (ISO text with an offset, or a datetime) as Precoro's modifiedSince wants it."""
    if isinstance(value, datetime):
        value = value.isoformat()
    return str(value).replace(" ", "T")[:19]


def source_config(url: str, token: str, email: str, initial_value: str, time_scale: float = 1.0) -> RESTAPIConfig:
    """The `rest_api_source` configuration (a plain dict, as in dlt's docs)."""
    from dlt.sources.helpers.requests.retry import Client

    # dlt's defaults (request_backoff_factor=1, request_max_retry_delay=300), divided by the time scale.
    session = Client(raise_for_status=False, request_backoff_factor=1.0 / time_scale,
                     request_max_retry_delay=300.0 / time_scale).session
    resources: list[Any] = []  # EndpointResource dicts, as in dlt's docs
    for name in LISTS:
        path, extra = list_request(name)
        params: dict[str, Any] = {"per_page": PER_PAGE}
        for param, value in extra:  # requests sends a list as the parameter repeated: logicType[]=1&logicType[]=5
            params.setdefault(param, []).append(value)
        resources.append({
            "name": name,
            "table_name": path,  # credit notes are invoices: one table, merged on id
            "endpoint": {
                "path": path,
                "data_selector": "data",
                "params": params,
                "incremental": {
                    "start_param": "modifiedSince",
                    "cursor_path": "updateDate",
                    "initial_value": initial_value,
                    "convert": modified_since,
                },
            },
        })
        if name in LISTS_WITH_DETAILS:
            resources.append({
                "name": f"{name}_details",
                "table_name": f"{path}_details",
                "endpoint": {
                    "path": f"{path}/{{resources.{name}.idn}}",
                    "data_selector": "$",
                    "paginator": "single_page",
                },
            })
    return {
        "client": {
            "base_url": url,
            "headers": {"X-AUTH-TOKEN": token, "email": email},
            "paginator": {"type": "page_number", "base_page": 1, "page_param": "page",
                          "total_path": "meta.pagination.total_pages"},
            "session": session,
        },
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
        "resources": resources,
    }


def run(url: str, token: str, email: str, initial_value: str, workdir: Path, time_scale: float = 1.0) -> dict:
    """One `pipeline.run` into DuckDB; state (the cursor) persists in `workdir` between calls."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    import dlt
    from dlt.sources.rest_api import rest_api_source

    pipeline = dlt.pipeline(pipeline_name="precoro_bench", pipelines_dir=str(workdir / "pipelines"),
                            destination=dlt.destinations.duckdb(str(workdir / "dlt.duckdb")), dataset_name="precoro")
    source = rest_api_source(source_config(url, token, email, initial_value, time_scale))
    try:
        pipeline.run(source)
    except Exception as error:  # noqa: BLE001 - the failure itself is a result of the benchmark
        return {"ok": False, "error": _first_line(error)}
    return {"ok": True, "error": None}


def loaded_documents(workdir: Path) -> int:
    """Documents (list rows) that reached DuckDB: what an analyst can query."""
    import duckdb

    path = workdir / "dlt.duckdb"
    if not path.exists():
        return 0
    with duckdb.connect(str(path), read_only=True) as con:
        present = {row[0] for row in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'precoro'").fetchall()}
        return sum(con.execute(f'SELECT count(*) FROM precoro."{name}"').fetchall()[0][0]  # noqa: S608
                   for name in DOCUMENT_RESOURCES if name in present)


def _first_line(error: BaseException) -> str:
    """The root cause, in one line (dlt wraps a failed request in two exceptions)."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = f"{type(error).__name__}: {error}"
    return text.splitlines()[0][:300]
