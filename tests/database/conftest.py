"""Databases for the database sink tests: a SQLite file per test, and one throw-away
database per test run on the local PostgreSQL and MariaDB servers (each test uses its own
table prefix there). A server that is down fails the tests that need it, loudly."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.exc import SQLAlchemyError

from ingestd.registry import SinkContext
from ingestd_database.sink import DatabaseSink, make_database_sink

POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306/"
START = {
    "postgresql": "pg_ctlcluster --skip-systemctl-redirect 15 main start",
    "mariadb": "service mariadb start",
}

DIALECTS = ["sqlite", "postgresql", "mariadb"]
SERVERS = ["postgresql", "mariadb"]


def _server_database(dialect: str, admin_url: str, url_template: str) -> Iterator[str]:
    """Create ``ingestd_test_<random>`` on the server, yield its URL, drop it afterwards."""
    name = f"ingestd_test_{secrets.token_hex(4)}"
    admin = create_engine(
        admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    create = f'CREATE DATABASE "{name}"' if dialect == "postgresql" else f"CREATE DATABASE {name}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(create)
    except SQLAlchemyError as exc:
        admin.dispose()
        pytest.fail(
            f"{dialect} test server at {admin.url.host}:{admin.url.port} is unusable "
            f"({type(exc.orig or exc).__name__}: {str(exc.orig or exc).strip()}); "
            f"start it with: {START[dialect]}",
            pytrace=False,
        )
    try:
        yield url_template.format(name=name)
    finally:
        drop = (
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            if dialect == "postgresql"
            else f"DROP DATABASE IF EXISTS {name}"
        )
        with admin.connect() as connection:
            connection.exec_driver_sql(drop)
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    yield from _server_database(
        "postgresql", POSTGRES_ADMIN, "postgresql://postgres@127.0.0.1:5432/{name}"
    )


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    yield from _server_database("mariadb", MARIADB_ADMIN, "mysql://root@127.0.0.1:3306/{name}")


@dataclass
class Database:
    """One test's database: its URL and table prefix, and the sinks opened on it."""

    dialect: str
    url: str
    prefix: str
    state_dir: Path
    sinks: list[DatabaseSink] = field(default_factory=list)

    def sink(self, name: str = "db", **options: Any) -> DatabaseSink:
        """A sink built by the real factory, closed when the test ends."""
        options = {"url": self.url, "table_prefix": self.prefix, **options}
        context = SinkContext(name, "sinks[1]", None, self.state_dir)
        sink = make_database_sink(options, context)
        self.sinks.append(sink)
        return sink

    def rows(self, kind: str, sink: DatabaseSink | None = None) -> list[dict[str, Any]]:
        """Every row of a table (``conversations``, ``parts`` or an insight kind), by key."""
        sink = sink or self.sinks[0]
        tables = sink.tables
        table = {"conversations": tables.conversations, "parts": tables.parts}.get(kind)
        table = table if table is not None else tables.items[kind]
        order = list(table.primary_key.columns)
        with sink.engine.connect() as connection:
            return [
                dict(row._mapping) for row in connection.execute(select(table).order_by(*order))
            ]

    def snapshot(self, sink: DatabaseSink | None = None) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table, for comparing whole states."""
        kinds = ["conversations", "parts", *(sink or self.sinks[0]).tables.items]
        return {kind: self.rows(kind, sink) for kind in kinds}

    def close(self) -> None:
        for sink in self.sinks:
            asyncio.run(sink.aclose())


@pytest.fixture(params=DIALECTS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh place to deliver to, on each dialect in turn."""
    yield from _database(request, tmp_path)


@pytest.fixture(params=SERVERS)
def server_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """Like `db`, for what only a server checks (column lengths, network errors)."""
    yield from _database(request, tmp_path)


def _database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    dialect = request.param
    if dialect == "sqlite":
        database = Database(dialect, f"sqlite:///{tmp_path / 'results.db'}", "", tmp_path)
    else:
        url = request.getfixturevalue("postgres_url" if dialect == "postgresql" else "mariadb_url")
        database = Database(dialect, url, f"t{secrets.token_hex(4)}_", tmp_path)
    try:
        yield database
    finally:
        database.close()
