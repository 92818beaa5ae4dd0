"""docs/configuration.md's settings table names every environment variable precoro-assets reads (the fields of
precoro_assets.settings.Settings, and the harness's few) and nothing else; the README's short table and click path
agree with it and with the jobs."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The harness's own variables (precoro_sim reads them by hand): os.environ["X"], os.environ.get("X"), getenv("X"),
# setdefault("X"), and NAME = "PRECORO_X"
READ = re.compile(r"""(?:environ(?:\.get|\.setdefault)?\(?\[?|getenv\(|EnvVar\(|^[A-Z_]+ = )\s*["'](PRECORO_[A-Z_]+)["']""",
                  re.MULTILINE)


def product_variables() -> set[str]:
    """The variables the product reads: one per field of its settings."""
    from precoro_assets.settings import Settings

    return {str(field.validation_alias) for field in Settings.model_fields.values()}


def harness_variables() -> set[str]:
    # the embedded default reads PRECORO_SIMULATOR_PORT, the demo PRECORO_WEBHOOK_PORT
    return {name for path in (REPO / "precoro_sim").rglob("*.py") for name in READ.findall(path.read_text())}


def settings_rows(page: str) -> list[str]:
    return [line for line in (REPO / page).read_text().splitlines() if line.startswith("| `PRECORO_")]


def every_setting_rows() -> list[str]:
    """The rows of docs/configuration.md's table of every setting (environment variables, PRECORO_ or not)."""
    text = (REPO / "docs/configuration.md").read_text()
    section = text.split("## Every setting", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def test_every_variable_the_product_or_the_harness_reads_is_in_the_settings_table_of_docs_configuration():
    read = product_variables() | harness_variables()
    assert {"PRECORO_API_TOKEN", "PRECORO_TIME_SCALE", "PRECORO_LEDGER_DIR", "DAGSTER_HOME"} <= read
    assert "PRECORO_SIMULATOR_PORT" in read  # the scan of the harness finds its variables
    table = every_setting_rows()
    undocumented = {name for name in read if not any(f"`{name}`" in line for line in table)}
    assert undocumented == set()


def test_the_settings_table_names_only_variables_that_are_read():
    named = {name for line in every_setting_rows() for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])}
    assert len(named) > 25
    assert named - (product_variables() | harness_variables()) == set()


def test_the_readme_names_only_settings_of_the_full_table():
    full = "\n".join(settings_rows("docs/configuration.md"))
    named = {name for line in settings_rows("README.md") for name in re.findall(r"`(PRECORO_[A-Z0-9_]+)`", line)}
    assert {"PRECORO_API_TOKEN", "PRECORO_EMAIL"} <= named
    assert {name for name in named if f"`{name}`" not in full} == set()


def test_the_click_path_names_jobs_that_materialize_each_whole_group_in_the_readme_and_the_demo_banner():
    """A group link in Dagster's catalog opens the lineage with one asset selected ("Materialize selected" then
    syncs that one alone); a job's page offers "Materialize all" for exactly the job's assets."""
    import dagster as dg

    from precoro_assets.definitions import defs
    from precoro_sim.cli import DEMO_GUIDE

    graph = defs.resolve_asset_graph()
    for where, text in (("README.md", (REPO / "README.md").read_text()), ("demo banner", DEMO_GUIDE)):
        named = re.findall(r"Jobs\W+(precoro_\w+)\W+Materialize all", text)
        assert named[:2] == ["precoro_reference", "precoro_documents"], where  # steps 1 and 2
        assert "precoro_reconcile" in named, where
        assert not re.search(r"group\W+precoro_\w+\W*(→|->)\s*\**Materialize", text), where
        for job in named:
            group = {"precoro_reconcile": "precoro_reconciliation"}.get(job, job)
            selected = defs.resolve_job_def(job).asset_layer.selected_asset_keys
            assert selected == dg.AssetSelection.groups(group).resolve(graph), job
