"""`precoro-assets demo --companies 2` as a user meets it: the simulator's two companies, each declared with the
component as a team declares it in its own project, side by side in one Dagster UI; each company's jobs fill its
own warehouse with its own data, and one query reads both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from precoro_assets.catalogue import DOCUMENTS
from tests.demo.test_demo import (
    ASSETS,
    LAUNCH,
    LAUNCH_JOB,
    REPOSITORY,
    RUN_STATUS,
    STATUS,
    graphql,
    running_demo,
    wait_until_done,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

COMPANIES = ("acme", "globex")


@pytest.fixture
def demo(tmp_path: Path):
    yield from running_demo(tmp_path, "--companies", "2")


def test_two_companies_side_by_side_each_in_its_own_warehouse_and_one_query_reads_both(demo):
    graphql_url, simulator_url, home = demo
    paths = {tuple(node["assetKey"]["path"]) for node in graphql(graphql_url, ASSETS)["assetNodes"]}
    for company in COMPANIES:
        assert {(company, "precoro", e.name) for e in DOCUMENTS} <= paths
    assert not any(path[0] == "precoro" for path in paths)  # no bundled company beside them

    [repository] = graphql(graphql_url, REPOSITORY)["repositoriesOrError"]["nodes"]
    runs = []
    for company in COMPANIES:  # Jobs -> <company>_reference -> Materialize all
        launched = graphql(graphql_url, LAUNCH_JOB, p={"selector": {
            "repositoryLocationName": repository["location"]["name"], "repositoryName": repository["name"],
            "pipelineName": f"{company}_reference"}, "mode": "default"})["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        runs.append(launched["run"]["runId"])
    for run in runs:
        wait_until_done(lambda run=run: graphql(graphql_url, RUN_STATUS, id=run)["runOrError"]["status"],
                        ("QUEUED", "NOT_STARTED", "STARTING", "STARTED"), "SUCCESS")

    # one backfill of yesterday, both companies' documents
    day = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    launched = graphql(graphql_url, LAUNCH, p={"partitionNames": [day], "assetSelection": [
        {"path": [company, "precoro", e.name]} for company in COMPANIES for e in DOCUMENTS]})
    backfill_id = launched["launchPartitionBackfill"].get("backfillId")
    assert backfill_id, launched
    wait_until_done(lambda: graphql(graphql_url, STATUS, id=backfill_id)["partitionBackfillOrError"]["status"],
                    ("REQUESTED", "IN_PROGRESS"), "COMPLETED_SUCCESS")

    # the guide's query: every company's rows, each company's exactly as its Precoro holds them
    query = subprocess.run(
        [sys.executable, "-m", "precoro_sim.cli", "sql", "--format", "json",
         *(option for company in COMPANIES for option in ("--company", f"{company}={home / 'companies' / company}")),
         "SELECT company, 'suppliers' AS what, count(*) AS n FROM companies.suppliers GROUP BY 1 UNION ALL "
         f"SELECT company, 'invoices', count(*) FROM companies.invoices WHERE partition_day = '{day}' GROUP BY 1 "
         "ORDER BY 1, 2"], capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("PRECORO_")})
    assert query.returncode == 0, query.stderr
    found = {(row["company"], row["what"]): row["n"] for row in json.loads(query.stdout)}
    truth = {}
    for number, company in enumerate(COMPANIES, start=1):
        def export(resource: str, number: int = number) -> list[dict]:
            response = httpx.get(f"{simulator_url}/_sim/export/{resource}", params={"company": number}, timeout=30)
            return response.json()["data"]
        truth[(company, "suppliers")] = len(export("suppliers"))
        invoices = sum(1 for r in export("invoices") if r["createDate"][:10] == day)
        if invoices:
            truth[(company, "invoices")] = invoices
    assert found == truth
    assert truth[("acme", "suppliers")] > 0 and truth[("globex", "suppliers")] > 0
