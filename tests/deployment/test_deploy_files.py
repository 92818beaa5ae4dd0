"""deploy/ is consistent: every run container gets the settings the code location has, each one is documented,
and what the Dockerfile copies exists. (Docker itself is not available to the tests; see docs/deployment.md.)"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_every_run_container_receives_every_setting_the_code_location_has():
    code_env = compose()["services"]["code"]["environment"]
    launched = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["run_launcher"]["config"]["env_vars"]
    missing = {name for name in code_env if name.startswith(("PRECORO_", "POSTGRES_"))} - set(launched)
    assert missing == set()
    assert "PRECORO_DATABASE_URL" in code_env and code_env["PRECORO_WAREHOUSE_DATA_PATH"].startswith("s3://")


def test_every_precoro_setting_of_the_deployment_is_documented_in_docs_configuration():
    settings_table = "\n".join(line for line in (REPO / "docs" / "configuration.md").read_text().splitlines()
                             if line.startswith("| `PRECORO_"))
    names = set(re.findall(r"PRECORO_[A-Z0-9_]+", (DEPLOY / "docker-compose.yml").read_text()
                           + (DEPLOY / "dagster.yaml").read_text()))
    assert names and {name for name in names if f"`{name}`" not in settings_table} == set()


def test_dagster_runs_on_postgres_and_each_run_in_its_own_container():
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert set(instance["storage"]["postgres"]["postgres_db"]) >= {"hostname", "db_name", "username", "password"}
    assert instance["run_launcher"]["class"] == "DockerRunLauncher"
    services = compose()["services"]
    assert {"postgres", "minio", "code", "webserver", "daemon"} <= set(services)
    network = instance["run_launcher"]["config"]["network"]
    assert all(network in service["networks"] for service in services.values())


def test_what_the_dockerfile_copies_exists():
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            *sources, _ = line.split()[1:]
            for source in sources:
                assert (REPO / source).exists(), source


def test_no_instance_file_of_ours_caps_every_pool_of_the_instance():
    """A host's own pools are its business: our dagster.yaml files set no `pools: default_limit`; the precoro_api
    pool gets its limit alone (the CLI sets it on its instances; deploy/ when the daemon starts)."""
    for path in (REPO / "dagster.yaml", REPO / "precoro_assets" / "dagster.yaml", DEPLOY / "dagster.yaml"):
        pools = (yaml.safe_load(path.read_text()).get("concurrency") or {}).get("pools") or {}
        assert "default_limit" not in pools, path
    daemon = " ".join(compose()["services"]["daemon"]["command"])
    assert "dagster instance concurrency set precoro_api 1 &&" in daemon and "dagster-daemon run" in daemon
