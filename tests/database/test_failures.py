"""What goes wrong talking to a database, and what the core is told: retry or give up,
always naming the database and never its password."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import traceback
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

import ingestd_database.connection as connection_module
from ingestd.errors import Permanent, RecordingError, Retryable
from ingestd.registry import SinkContext
from ingestd_database.connection import failure
from ingestd_database.options import DatabaseOptions
from ingestd_database.sink import make_database_sink
from tests.database.conftest import Database
from tests.database.fixtures import appended, insights, message, result

PASSWORD = "s3cret-Passw0rd"


def options(url: str) -> DatabaseOptions:
    return DatabaseOptions.parse({"url": url}, key_path="sinks[1]", state_dir=Path("/"), base=None)


def everything_shown(exc: BaseException) -> str:
    """The message and the whole chained traceback, as a log would show them."""
    return str(exc) + "".join(traceback.format_exception(exc))


class TestUnreachable:
    @pytest.mark.parametrize(
        "url",
        [
            f"postgresql://ingestd:{PASSWORD}@127.0.0.1:1/calls",
            f"mysql://ingestd:{PASSWORD}@127.0.0.1:1/calls",
        ],
    )
    def test_connection_refused_is_retryable_and_hides_the_password(
        self, url: str, tmp_path: Path
    ) -> None:
        """Port 1 refuses: Retryable, naming host and port, password nowhere in the chain."""
        sink = make_database_sink({"url": url}, SinkContext("db", "sinks[1]", None, tmp_path))
        try:
            with pytest.raises(Retryable) as caught:
                asyncio.run(sink.deliver(result()))
        finally:
            asyncio.run(sink.aclose())
        message = str(caught.value)
        assert message.startswith("database sink 'db' (")
        assert "ingestd:***@127.0.0.1:1/calls" in message
        assert "refused" in message.lower()
        assert message.endswith("; will retry")
        assert PASSWORD not in everything_shown(caught.value)

    def test_sqlite_folder_that_cannot_be_created_is_retryable(self, tmp_path: Path) -> None:
        """A file where the database's folder should be: Retryable, naming the path."""
        (tmp_path / "blocker").write_text("")
        url = f"sqlite:///{tmp_path / 'blocker' / 'sub' / 'results.db'}"
        sink = make_database_sink({"url": url}, SinkContext("db", "sinks[1]", None, tmp_path))
        with pytest.raises(Retryable, match=r"blocker/sub\)?; will retry"):
            asyncio.run(sink.deliver(result()))

    def test_a_locked_sqlite_file_is_retryable(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Another writer holding the file past the busy timeout means: try again later."""
        monkeypatch.setattr(connection_module, "LOCK_TIMEOUT_SECONDS", 0.2)
        path = tmp_path / "results.db"
        sink = make_database_sink(
            {"url": f"sqlite:///{path}"}, SinkContext("db", "sinks[1]", None, tmp_path)
        )
        asyncio.run(sink.deliver(result()))
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(Retryable, match="database is locked; will retry"):
                asyncio.run(sink.deliver(result(appended())))
        finally:
            other.rollback()
            other.close()
        assert asyncio.run(sink.deliver(result(appended()))).detail["changed"] is True  # later
        asyncio.run(sink.aclose())


class TestRefused:
    def test_a_missing_table_is_permanent(self, db: Database) -> None:
        """A table dropped behind the sink's back will not come back by retrying."""
        sink = db.sink()
        asyncio.run(sink.deliver(result()))
        with sink.engine.begin() as connection:
            connection.execute(text(f"DROP TABLE {db.prefix}topics"))
        with pytest.raises(Permanent, match="refused the data") as caught:
            asyncio.run(sink.deliver(result(appended())))
        assert "topics" in str(caught.value)

    def test_a_value_the_schema_cannot_hold_is_permanent(self, server_db: Database) -> None:
        """An item id longer than the key column is refused, not retried (servers check
        lengths; SQLite does not)."""
        long_id = {**message(1, "hello", "Alice", 0.0, 1.0), "id": "m" * 300}
        with pytest.raises(Permanent):
            asyncio.run(server_db.sink().deliver(result(insights(messages=[long_id]))))
        assert server_db.rows("conversations") == []


class TestClassification:
    OPTIONS = options(f"postgresql://ingestd:{PASSWORD}@db.example.com/calls")

    def classify(self, exc: BaseException) -> RecordingError:
        return failure(exc, sink="db", options=self.OPTIONS)

    def test_deadlocks_and_pool_exhaustion_are_retryable(self) -> None:
        """Transient contention is retried, with the driver's reason in the message."""
        deadlock = OperationalError("UPDATE …", {}, Exception(1213, "Deadlock found"))
        assert isinstance(self.classify(deadlock), Retryable)
        assert "Deadlock found" in str(self.classify(deadlock))
        assert isinstance(self.classify(PoolTimeout("QueuePool limit reached")), Retryable)
        assert isinstance(self.classify(ConnectionResetError("reset")), Retryable)

    def test_constraint_and_schema_errors_are_permanent(self) -> None:
        """What the data or schema got wrong is not retried."""
        integrity = IntegrityError("INSERT …", {}, Exception("duplicate key"))
        assert isinstance(self.classify(integrity), Permanent)
        mysql_unknown_column = OperationalError("SELECT …", {}, Exception(1054, "Unknown column"))
        assert isinstance(self.classify(mysql_unknown_column), Permanent)
        sqlite_no_table = OperationalError("SELECT …", {}, Exception("no such table: x"))
        assert isinstance(self.classify(sqlite_no_table), Permanent)

    def test_a_password_echoed_by_a_driver_is_masked(self) -> None:
        """Even a driver message quoting the password shows ``***`` instead."""
        echoed = OperationalError("…", {}, Exception(f"bad conninfo password={PASSWORD}\nline 2"))
        shown = str(self.classify(echoed))
        assert PASSWORD not in shown
        assert "bad conninfo password=*** line 2; will retry" in shown
        assert "db.example.com" in shown


class TestAccess:
    """What only the operator can fix fails the delivery at once, with the server's words
    (issue 15, point 6); `check()` finds the same before any delivery."""

    @pytest.mark.parametrize(
        ("url", "said"),
        [
            (
                "postgresql://postgres@127.0.0.1:5432/ingestd_no_such_db",
                'database "ingestd_no_such_db" does not exist',
            ),
            ("postgresql://ingestd_no_such_role@127.0.0.1:5432/postgres", "role"),
            ("mysql://root@127.0.0.1:3306/ingestd_no_such_db", "Unknown database"),
            ("mysql://ingestd_no_such_user@127.0.0.1:3306/mysql", "Access denied"),
        ],
    )
    def test_wrong_database_or_user_is_permanent(self, url: str, said: str, tmp_path: Path):
        sink = make_database_sink({"url": url}, SinkContext("db", "sinks[1]", None, tmp_path))
        try:
            with pytest.raises(Permanent) as delivered:
                asyncio.run(sink.deliver(result()))
            with pytest.raises(Permanent) as checked:
                asyncio.run(sink.check())
        finally:
            asyncio.run(sink.aclose())
        for caught in (delivered, checked):
            assert said in str(caught.value)
            assert "fix the sink's url or the database's grants" in str(caught.value)

    def test_missing_privileges_are_permanent_and_named(self, tmp_path: Path) -> None:
        """A PostgreSQL user who may only read the tables: `check()` names what it lacks;
        a delivery fails at once with "permission denied"; without CREATE on the schema the
        first delivery cannot make the tables either."""
        from sqlalchemy import create_engine

        from tests.database.conftest import POSTGRES_ADMIN

        suffix = secrets.token_hex(4)
        name, role = f"ingestd_grants_{suffix}", f"ingestd_reader_{suffix}"
        admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
            connection.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
        owner_url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        reader_url = f"postgresql://{role}@127.0.0.1:5432/{name}"
        context = SinkContext("db", "sinks[1]", None, tmp_path)
        sinks = []
        try:
            reader = make_database_sink({"url": reader_url}, context)
            sinks.append(reader)
            with pytest.raises(Permanent, match="permission denied for schema public"):
                asyncio.run(reader.deliver(result()))
            owner = make_database_sink({"url": owner_url}, context)
            sinks.append(owner)
            asyncio.run(owner.check())  # creates the tables
            with owner.engine.begin() as connection:
                connection.exec_driver_sql(
                    f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"'
                )
            reader = make_database_sink({"url": reader_url}, context)
            sinks.append(reader)
            with pytest.raises(Permanent) as checked:
                asyncio.run(reader.check())
            assert "this user lacks INSERT, UPDATE, DELETE on conversations" in str(checked.value)
            with pytest.raises(Permanent, match="permission denied for table"):
                asyncio.run(reader.deliver(result()))
        finally:
            for sink in sinks:
                asyncio.run(sink.aclose())
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
            admin.dispose()
