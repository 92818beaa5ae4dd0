"""A team's own `dg` project, outside this repository, adds two Precoro companies in YAML.

precoro-assets is installed into the project's environment from a wheel built from the checkout, the way a
team installs it from PyPI; the project has an asset of its own and its own resource named `warehouse`. `dg
check defs` passes, each company's jobs fill its own warehouse exactly as its Precoro holds it, at one request per
page and per document, and neither company's token reaches the other's state, logs or tables. `dg scaffold
defs` writes a company's defs.yaml with its secrets by name.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from precoro_assets.catalogue import BY_NAME
from precoro_assets.warehouse.store import Warehouse
from precoro_sim import ground_truth
from precoro_sim.simulator import RunningSimulator, start_simulator
from tests.ingest.test_secrets import files_containing

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
DAYS = 4
DG = Path(sys.executable).parent / "dg"

PYPROJECT = """\
[project]
name = "procurement"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["precoro-assets"]

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "procurement"
"""

DEFINITIONS = """\
from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
"""

OWN = """\
import dagster as dg


@dg.asset(key=["finance", "budget_sheet"])
def budget_sheet(warehouse: dg.ResourceParam[str]) -> str:
    return warehouse


@dg.definitions
def own() -> dg.Definitions:
    return dg.Definitions(assets=[budget_sheet], resources={"warehouse": "snowflake"})
"""

COMPANY = """\
type: precoro_assets.PrecoroComponent

attributes:
  company: {name}
  api_token: "{{{{ env.{upper}_PRECORO_TOKEN }}}}"
  email: "{{{{ env.{upper}_PRECORO_EMAIL }}}}"
  base_url: {url}
  start_date: "{start}"
  home: {home}
  entities: [{entities}]
"""


@dataclass
class Company:
    """One of the simulator's companies (`GET /_sim/info`'s `companies`), as the project declares it."""

    name: str
    sim: RunningSimulator
    number: int
    token: str
    email: str
    entities: list[str]
    home: Path

    @property
    def variables(self) -> dict[str, str]:
        upper = self.name.upper()
        return {f"{upper}_PRECORO_TOKEN": self.token, f"{upper}_PRECORO_EMAIL": self.email}

    def control(self, path: str) -> dict:
        response = httpx.get(f"{self.sim.url}/_sim/{path}", params={"company": self.number}, timeout=30)
        response.raise_for_status()
        return response.json()

    # what ground_truth.differences reads: the company's Precoro and its warehouse
    def export(self, resource: str) -> list[dict]:
        return self.control(f"export/{resource}")["data"]

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        frame = Warehouse(self.home / "warehouse").query(sql, params)
        return [tuple(row) for row in frame.itertuples(index=False, name=None)]

    def requests(self) -> list[dict]:
        return self.control("requests")["requests"]


def build_wheel(into: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(into), str(REPO)], check=True, capture_output=True, timeout=300)
    return next(into.glob("precoro_assets-*.whl"))


def make_project(root: Path, wheel: Path, companies: list[Company]) -> Path:
    """The project's files, and its `.venv` (where `dg` looks) with precoro-assets installed from `wheel`. The
    other packages (Dagster, DuckDB, ...) come from this test's environment through a .pth file: installing them
    again would take minutes and the network; precoro-assets itself is only the wheel's."""
    package = root / "src" / "procurement"
    (package / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (package / "__init__.py").write_text("")
    (package / "definitions.py").write_text(DEFINITIONS)
    (package / "defs" / "__init__.py").write_text("")
    (package / "defs" / "own.py").write_text(OWN)
    start = (datetime.now(UTC).date() - timedelta(days=DAYS)).isoformat()
    for company in companies:
        (package / "defs" / company.name).mkdir()
        (package / "defs" / company.name / "defs.yaml").write_text(COMPANY.format(
            name=company.name, upper=company.name.upper(), url=company.sim.url, start=start, home=company.home,
            entities=", ".join(company.entities)))
    venv = root / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "procurement.pth").write_text(f"{root / 'src'}\n")
    (site / "zz_dependencies.pth").write_text(f"{sysconfig.get_paths()['purelib']}\n")  # after the venv's own
    # forced: pip would take the checkout for an installed precoro-assets when PYTHONPATH names it
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", "--force-reinstall", str(wheel)], check=True, capture_output=True, timeout=300)
    return python


def run(command: list[str], root: Path, companies: list[Company], log: Path) -> subprocess.CompletedProcess:
    env = {"PATH": f"{root / '.venv' / 'bin'}:/usr/bin:/bin", "HOME": str(root), "VIRTUAL_ENV": str(root / ".venv"),
           "DAGSTER_HOME": str(root / "dagster"), **{k: v for c in companies for k, v in c.variables.items()}}
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n{done.stdout}\n{done.stderr}\n")
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


@pytest.fixture
def companies(tmp_path: Path):
    """Two companies of one simulator, each with its own token and data."""
    sim = start_simulator(seed=21, days=DAYS, documents=30, companies=2)
    first, second = httpx.get(f"{sim.url}/_sim/info", timeout=30).json()["companies"]
    yield [Company("acme", sim, first["number"], first["token"], first["email"], ["invoices", "payments", "suppliers"],
                   tmp_path / "state" / "acme"),
           Company("globex", sim, second["number"], second["token"], second["email"],
                   ["purchase_orders", "invoices", "items"], tmp_path / "state" / "globex")]
    sim.stop()


def test_two_companies_declared_in_yaml_fill_their_own_warehouses_in_a_project_of_its_own(tmp_path, companies):
    root = tmp_path / "procurement"
    root.mkdir()
    python = make_project(root, build_wheel(tmp_path / "wheel"), companies)
    log = tmp_path / "commands.log"
    (root / "dagster").mkdir()
    (root / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    installed = run([str(python), "-c", "import precoro_assets; print(precoro_assets.__file__)"], root, companies, log)
    assert installed.stdout.strip().startswith(str(root / ".venv"))  # the wheel's copy, not the checkout's
    run([str(DG), "scaffold", "defs", "precoro_assets.PrecoroComponent", "initech"], root, companies, log)
    scaffolded = root / "src" / "procurement" / "defs" / "initech" / "defs.yaml"
    assert "type: precoro_assets.PrecoroComponent" in scaffolded.read_text()
    assert "{{ env.INITECH_PRECORO_TOKEN }}" in scaffolded.read_text()  # a secret by name, never by value
    shutil.rmtree(scaffolded.parent)  # (a third company would need its own simulator company)
    checked = run([str(DG), "check", "defs"], root, companies, log)
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = run([str(python), "-c", LIST_DEFS], root, companies, log)
    found = json.loads(listed.stdout.strip().splitlines()[-1])
    for company in companies:
        assert {f"{company.name}/precoro/{name}" for name in company.entities} <= set(found["assets"])
        assert {f"{company.name}_{what}" for what in ("precoro", "warehouse", "ledger", "outbox")} <= \
            set(found["resources"])
    assert "finance/budget_sheet" in found["assets"] and "warehouse" in found["resources"]

    today = datetime.now(UTC).date()
    days = json.dumps({"dagster/asset_partition_range_start": (today - timedelta(days=DAYS)).isoformat(),
                       "dagster/asset_partition_range_end": today.isoformat()})
    for company in companies:
        dagster = [str(python), "-m", "dagster", "job", "execute", "-m", "procurement.definitions"]
        run([*dagster, "-j", f"{company.name}_reference"], root, companies, log)
        run([*dagster, "-j", f"{company.name}_documents", "--tags", days], root, companies, log)

    for company in companies:
        for name in company.entities:
            assert ground_truth.differences(company, BY_NAME[name]) == [], (company.name, name)
        sent = company.requests()
        urls = [(r["method"], r["url"]) for r in sent]
        assert len(urls) == len(set(urls)), company.name  # no request twice
        details = [r for r in sent if r["path"].endswith(("/{idn}", "/{id}"))]
        documents = sum(len(company.export(BY_NAME[name].path)) for name in company.entities
                        if BY_NAME[name].fetch_detail)
        assert len(details) == documents, company.name  # one detail per document, nothing more
    acme, globex = companies
    # an analyst compares the companies: every company's invoices, by company, in one query
    queried = run([str(root / ".venv" / "bin" / "precoro-assets"), "sql", "--format", "json",
                   "--company", f"acme={acme.home}", "--company", f"globex={globex.home}",
                   "SELECT company, count(*) AS n FROM companies.invoices GROUP BY 1 ORDER BY 1"], root, companies, log)
    assert json.loads(queried.stdout) == [{"company": c.name, "n": len(c.export(BY_NAME["invoices"].path))}
                                          for c in companies]
    only_globex = run([str(root / ".venv" / "bin" / "precoro-assets"), "sql", "--format", "json",
                       "--company", f"acme={acme.home}", "--company", f"globex={globex.home}",
                       "SELECT DISTINCT company FROM companies.items"], root, companies, log)
    assert json.loads(only_globex.stdout) == [{"company": "globex"}]  # acme does not sync items
    assert companies[0].token != companies[1].token
    for company in companies:  # neither token in any state, log, table or Dagster's event log
        token = company.token
        assert token not in log.read_text(), company.name
        assert files_containing(root / "dagster", token.encode()) == [], company.name
        for other in companies:
            assert other is company or files_containing(other.home, token.encode()) == [], (company.name, other.name)


LIST_DEFS = """
import json
from procurement.definitions import defs
loaded = defs()
keys = [key.to_user_string() for key in loaded.resolve_asset_graph().get_all_asset_keys()]
print(json.dumps({"assets": keys, "resources": sorted(loaded.resources or {})}))
"""

