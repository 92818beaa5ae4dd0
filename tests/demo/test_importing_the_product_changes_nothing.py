"""The product library stands on its own: `precoro_assets` never imports the harness (`precoro_sim`: the simulator,
the embedded default, the soak), and importing any of its modules writes no environment variable, opens no socket
and starts no process. With no token, the code location says what to set instead of pointing at a simulator."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRODUCT = REPO / "precoro_assets"

# Runs in a fresh interpreter with no PRECORO_* variable: records what importing every module did.
IMPORT_EVERY_MODULE = r"""
import importlib, json, os, pkgutil, sys

before = dict(os.environ)
done = []

def audit(event, args):
    if event == "subprocess.Popen" and list(args[1])[:2] == ["file", "-b"]:
        return  # platform.architecture(), which a library calls at import: not ours, and it starts nothing lasting
    if event in ("os.putenv", "os.unsetenv") and args[0] == b"OPENBLAS_MAIN_FREE":
        return  # numpy sets it around loading OpenBLAS and removes it again (os.environ is compared too)
    if event == "open" and args[0] == "/dev/null":
        return  # the same platform.architecture() call's stdin
    if event in ("socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "subprocess.Popen",
                 "os.fork", "os.system", "os.posix_spawn", "os.mkdir", "os.putenv", "os.unsetenv"):
        done.append(f"{event} {args!r}"[:200])
    elif event == "open" and isinstance(args[0], str) and (
            any(c in str(args[1] or "") for c in "wax+") or (args[2] or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
        done.append(f"{event} {args!r}"[:200])  # a file written

sys.addaudithook(audit)
import precoro_assets

failed, modules = {}, ["precoro_assets"]
for info in pkgutil.walk_packages(precoro_assets.__path__, "precoro_assets.",
                                  onerror=lambda name: failed.setdefault(name, repr(sys.exc_info()[1]))):
    modules.append(info.name)
    try:
        importlib.import_module(info.name)
    except Exception as error:  # noqa: BLE001 - reported, not raised: the test says which module and why
        failed[info.name] = f"{type(error).__name__}: {error}"
after = dict(os.environ)
changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
print(json.dumps({"modules": modules, "failed": failed, "changed": changed, "done": done,
                  "harness": sorted(m for m in sys.modules if m.split(".")[0] == "precoro_sim")}))
"""


def _imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_no_product_module_imports_or_names_the_harness():
    sources = sorted(PRODUCT.rglob("*.py"))
    assert len(sources) > 30  # the scan reads the product's tree
    importing = [str(path.relative_to(REPO)) for path in sources
                 if any(name.split(".")[0] == "precoro_sim" for name in _imports(ast.parse(path.read_text())))]
    assert importing == []
    # not even by name (importlib.import_module("precoro_sim..."), a subprocess's "-m precoro_sim.cli")
    naming = [str(path.relative_to(REPO)) for path in PRODUCT.rglob("*") if path.is_file()
              and path.suffix in (".py", ".yaml", ".md") and "precoro_sim" in path.read_text()]
    assert naming == []


def _import_every_module(**settings: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRECORO_")}
    env.update(PYTHONDONTWRITEBYTECODE="1", **settings)  # a compiled module written is Python's, not ours
    done = subprocess.run([sys.executable, "-c", IMPORT_EVERY_MODULE], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.e2e
def test_importing_every_product_module_changes_no_variable_and_opens_no_socket():
    report = _import_every_module()
    assert "precoro_assets.definitions" in report["modules"] and "precoro_assets.cli" in report["modules"]
    assert len(report["modules"]) > 40
    assert report["changed"] == []
    assert report["done"] == [], report["done"]
    assert report["harness"] == []
    # the one module that needs an account is the code location; with no token it says what to set
    assert set(report["failed"]) == {"precoro_assets.definitions"}, report["failed"]
    message = report["failed"]["precoro_assets.definitions"]
    assert "PRECORO_API_TOKEN is not set" in message and "PRECORO_EMAIL" in message
    assert "`precoro-assets demo` runs the bundled Precoro simulator" in message


@pytest.mark.e2e
def test_with_an_account_configured_the_code_location_loads_and_still_touches_nothing(tmp_path: Path):
    """The definitions built (every asset, sensor and resource) for an account that does not answer: loading
    them writes no file, creates no directory, opens no socket (the warehouse and the state appear on first use)."""
    report = _import_every_module(PRECORO_API_TOKEN="not-a-token", PRECORO_EMAIL="nobody@example.com",
                                  PRECORO_BASE_URL="http://127.0.0.1:9", PRECORO_HOME=str(tmp_path / "var"))
    assert report["failed"] == {}
    assert report["changed"] == []
    assert report["done"] == [], report["done"]
    assert report["harness"] == []
    assert not (tmp_path / "var").exists()
