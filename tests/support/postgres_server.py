"""A real PostgreSQL server for the tests, and a fresh database per test.

The server is PostgreSQL 16 from the `pgserver` wheel (a dev dependency): `make test` installs it with pip like
everything else, so CI needs no system package and no root, and the tests start and stop the server themselves.
One server per pytest session; each test that asks gets a database of its own, so no state crosses tests.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from urllib.parse import quote

_server = None
_directory: str | None = None
_names = itertools.count()


def _start():
    global _server, _directory
    if _server is None:
        import pgserver

        # a short path: PostgreSQL's unix socket lives in it, and socket paths are limited to ~100 characters
        _directory = tempfile.mkdtemp(prefix="pg-", dir="/tmp")
        _server = pgserver.get_server(_directory, cleanup_mode="stop")
    return _server


def fresh_database_url() -> str:
    """A new empty database on the session's server, as a postgresql:// URL (over its unix socket)."""
    server = _start()
    name = f"precoro_test_{os.getpid()}_{next(_names)}"
    server.psql(f"CREATE DATABASE {name};")
    return f"postgresql://postgres:@/{name}?host={quote(_directory or '', safe='/')}"


def stop() -> None:
    """Stop the server and remove its files (end of the test session)."""
    global _server
    if _server is not None:
        _server.cleanup()
        _server = None
        shutil.rmtree(_directory or "", ignore_errors=True)


def dump(url: str) -> str:
    """Every row of every table of the database at `url`, as text: what a test greps for secrets."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        tables = [name for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")]
        return "\n".join(str(row) for table in tables
                         for row in con.execute(f'SELECT * FROM "{table}"'))  # noqa: S608 - names from the catalog
