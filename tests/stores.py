"""The store contract fixtures: every store test runs against SQLite (a file in a temp dir)
and PostgreSQL (a random-named database on 127.0.0.1:5432, dropped after the run; emptied
before each test). A PostgreSQL server that is down fails those tests loudly, never skips."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ingestd.store import Store, open_store

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
START = "pg_ctlcluster --skip-systemctl-redirect 15 main start (or scripts/services)"
STORES = ["sqlite", "postgresql"]
TABLES = (
    "recordings, conversations, events, deliveries, dispositions, api_deletions, nodes, claims,"
    " job_limits"
)


def admin() -> psycopg.Connection:
    try:
        return psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        pytest.fail(
            f"PostgreSQL test server at 127.0.0.1:5432 is unusable ({exc}); start it: {START}",
            pytrace=False,
        )


def create_database() -> str:
    """A new empty database; its URL."""
    name = f"ingestd_store_{secrets.token_hex(5)}"
    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh database of its own for one test (migrations, several connections)."""
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def shared_postgres_store() -> Iterator[str]:
    """One database for the session's contract tests (created once: CREATE DATABASE costs
    more than the tests themselves), migrated."""
    url = create_database()
    try:
        open_store(url).close()
        yield url
    finally:
        drop_database(url)


@pytest.fixture(params=STORES)
def store_place(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's store lives: a SQLite path, or an emptied PostgreSQL database's URL."""
    if request.param == "sqlite":
        return tmp_path / "state.db"
    url = request.getfixturevalue("shared_postgres_store")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY")
    return url


@pytest.fixture
def store(store_place: Path | str) -> Iterator[Store]:
    """The store under test, on both implementations."""
    opened = open_store(store_place)
    try:
        yield opened
    finally:
        opened.close()
