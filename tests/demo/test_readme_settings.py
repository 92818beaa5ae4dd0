"""The README's settings table names every environment variable precoro-assets reads."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# os.environ["X"], os.environ.get("X"), os.getenv("X"), EnvVar("X"), setdefault("X"), and NAME = "PRECORO_X"
READ = re.compile(r"""(?:environ(?:\.get|\.setdefault)?\(?\[?|getenv\(|EnvVar\(|^[A-Z_]+ = )\s*["'](PRECORO_[A-Z_]+)["']""",
                  re.MULTILINE)


def variables_read() -> set[str]:
    return {name for path in (REPO / "precoro_assets").rglob("*.py") for name in READ.findall(path.read_text())}


def test_every_precoro_variable_the_package_reads_is_in_the_readme_settings_table():
    read = variables_read()
    assert {"PRECORO_API_TOKEN", "PRECORO_TIME_SCALE", "PRECORO_LEDGER_DIR"} <= read  # the scan finds them
    table = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("| `PRECORO_")]
    undocumented = {name for name in read if not any(f"`{name}`" in line for line in table)}
    assert undocumented == set()
