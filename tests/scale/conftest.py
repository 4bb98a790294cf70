"""Shared studies for the scale-out tests: a real PostgreSQL server (started here) and a SQLite file.

The server is started once per session on a free loopback port in a temporary folder and
stopped at the end; every test gets its own database. Without PostgreSQL's binaries the
PostgreSQL half is skipped with the reason (``.ci/run`` installs them).
"""

from __future__ import annotations

import itertools

import pytest

from trainopt.tools.local_postgres import LocalPostgres, find_binaries

_numbers = itertools.count()


@pytest.fixture(scope="session")
def postgres_server():
    if find_binaries() is None:
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[postgres]')")
    with LocalPostgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path) -> str:
    """A fresh, empty shared store: a SQLite file, then a database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'trials.db'}"
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"test_{next(_numbers)}")
