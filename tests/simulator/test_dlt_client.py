"""A client nobody here wrote reads the simulator correctly: dlt's REST client and its `rest_api` source,
configured only from the contract (headers, page-number pagination, `data` selector, 200 rows a page)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from precoro_sim.simulator import start_simulator
from tests.simulator.sim_harness import Api, in_plain_list

# dlt's clients speak HTTP through `requests` to a real URL: every test here needs the simulator on a socket.
pytestmark = pytest.mark.e2e

RESOURCES = {"invoices": "idn", "purchaseorders": "idn", "suppliers": "id", "expenses": "idn"}


@pytest.fixture(scope="module")
def big_api() -> Iterator[Api]:
    """Enough documents that every resource read here spans several pages."""
    with start_simulator(seed=11, days=120, documents=7000, limits="off", port=0) as running:
        client = Api.over_socket(running)
        yield client
        client.close()


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch) -> None:
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")


def _paginator():
    from dlt.sources.helpers.rest_client.paginators import PageNumberPaginator

    return PageNumberPaginator(base_page=1, page_param="page", total_path="meta.pagination.total_pages")


@pytest.mark.parametrize("per_page", [200, 20])
@pytest.mark.parametrize("resource", sorted(RESOURCES))
def test_dlt_rest_client_reads_every_record_exactly_once(big_api, resource, per_page):
    from dlt.sources.helpers.rest_client import RESTClient

    key = RESOURCES[resource]
    # an unfiltered /invoices leaves credit notes out
    expected = sorted(str(record[key]) for record in big_api.export(resource) if in_plain_list(resource, record))
    assert len(expected) > per_page, "the walk must span several pages"
    client = RESTClient(base_url=big_api.url, headers={"X-AUTH-TOKEN": big_api.token, "email": big_api.email},
                        paginator=_paginator(), data_selector="data")

    pages = list(client.paginate(f"/{resource}", params={"per_page": per_page}))
    keys = [str(row[key]) for page in pages for row in page]

    assert len(pages) == -(-len(expected) // per_page)
    assert len(keys) == len(set(keys))
    assert sorted(keys) == expected


def test_dlt_rest_api_source_loads_every_record_exactly_once_into_duckdb(api_over_socket, tmp_path):
    """dlt's declarative source, 20 rows a page (several pages each), into DuckDB through a pipeline."""
    api = api_over_socket
    import dlt
    import duckdb
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source({
        "client": {
            "base_url": api.url,
            "headers": {"X-AUTH-TOKEN": api.token, "email": api.email},
            "paginator": {"type": "page_number", "base_page": 1, "page_param": "page",
                          "total_path": "meta.pagination.total_pages"},
        },
        "resource_defaults": {"endpoint": {"params": {"per_page": 20}, "data_selector": "data"}},
        "resources": [{"name": name, "primary_key": key} for name, key in RESOURCES.items()],
    })
    database = tmp_path / "loaded.duckdb"
    pipeline = dlt.pipeline(pipeline_name="precoro_simulator", destination=dlt.destinations.duckdb(str(database)),
                            pipelines_dir=str(tmp_path / "pipelines"), dataset_name="precoro")

    pipeline.run(source)

    with duckdb.connect(str(database), read_only=True) as connection:
        for name, key in RESOURCES.items():
            loaded = sorted(str(row[0]) for row in connection.sql(f"select {key} from precoro.{name}").fetchall())
            assert loaded == sorted(str(record[key]) for record in api.export(name) if in_plain_list(name, record)), name
        # a nested collection of a list row arrives whole too (invoices' document custom field values)
        values = connection.sql("select count(*) from precoro.invoices__data_document_custom_fields__data").fetchone()[0]
    assert values == sum(len(i["dataDocumentCustomFields"]["data"]) for i in api.export("invoices")
                         if in_plain_list("invoices", i))


def test_dlt_rest_client_reads_credit_notes_by_logic_type_expense_and_supplier_details(api_over_socket):
    """As Precoro's own connector does: credit notes by `logicType[]=1&logicType[]=5`, expenses with their
    `expensePayments` in the detail, suppliers' payment terms and contacts from their detail."""
    api = api_over_socket
    from dlt.sources.helpers.rest_client import RESTClient

    client = RESTClient(base_url=api.url, headers={"X-AUTH-TOKEN": api.token, "email": api.email},
                        paginator=_paginator(), data_selector="data")

    notes = [row for page in client.paginate("/invoices", params={"per_page": 20, "logicType[]": ["1", "5"]})
             for row in page]
    expense = api.export("expenses")[0]
    detail = client.get(f"/expenses/{expense['idn']}").json()

    assert sorted(str(n["idn"]) for n in notes) == sorted(
        str(i["idn"]) for i in api.export("invoices") if i["logicType"] in (1, 5))
    assert notes and all(n["logicType"] in (1, 5) for n in notes)
    assert detail["expenseNumber"] == expense["expenseNumber"] and "expensePayments" in detail
    # a supplier's list row is partial; its detail has the payment terms and contacts
    supplier = api.export("suppliers")[0]
    row = next(r for page in client.paginate("/suppliers", params={"per_page": 200}) for r in page
               if r["id"] == supplier["id"])
    full = client.get(f"/suppliers/{supplier['id']}").json()
    assert "paymentTerms" not in row and full["paymentTerms"] == supplier["paymentTerms"]
    assert full["contacts"] == supplier["contacts"]
