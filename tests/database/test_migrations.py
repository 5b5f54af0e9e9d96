"""Schema versions on every dialect: fresh, half-made, older and newer databases, races, a
failed step and a lost connection."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, Table, event, inspect, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from ingestd.errors import Permanent
from ingestd.testing import wait_for
from ingestd_database.connection import make_engine
from ingestd_database.migrations import (
    LATEST,
    MIGRATIONS,
    Migration,
    current_version,
    migrate,
    version_table,
)
from ingestd_database.schema import ITEM_KINDS, Id, build_tables
from tests.database.conftest import Database
from tests.database.fixtures import CID, result

TABLES = ["conversations", "parts", *ITEM_KINDS, "ingestd_schema"]


def table_names(db: Database) -> list[str]:
    sink = db.sinks[0] if db.sinks else db.sink()
    names = inspect(sink.engine).get_table_names()
    return sorted(name.removeprefix(db.prefix) for name in names if name.startswith(db.prefix))


def logged_versions(db: Database) -> list[int]:
    with db.sinks[0].engine.connect() as connection:
        table = version_table(db.prefix)
        return list(connection.execute(select(table.c.version).order_by(table.c.version)).scalars())


def _add_notes(connection: Connection, prefix: str) -> None:
    """A plausible version 2: a new nullable column, backfilled."""
    columns = inspect(connection).get_columns(f"{prefix}conversations")
    if "notes" not in {c["name"] for c in columns}:  # safe to run twice, as steps must be
        connection.execute(text(f"ALTER TABLE {prefix}conversations ADD notes VARCHAR(100)"))
    connection.execute(text(f"UPDATE {prefix}conversations SET notes = 'migrated'"))


V2 = Migration(2, "conversations.notes", _add_notes)


class TestMigrate:
    def test_a_fresh_database_gets_every_table_and_the_latest_version(self, db: Database) -> None:
        """The first migration creates all tables and logs version 1 exactly once."""
        sink = db.sink()
        assert migrate(sink.engine, db.prefix) == LATEST == 1
        assert migrate(sink.engine, db.prefix) == LATEST  # a second run does nothing
        assert table_names(db) == sorted(TABLES)
        assert logged_versions(db) == [1]

    def test_a_half_made_v0_database_is_completed(self, db: Database) -> None:
        """An empty version log beside a hand-made partial table set (what a crash in
        MySQL's non-transactional DDL leaves) is migrated, keeping the existing rows."""
        sink = db.sink()
        v0 = MetaData()
        Table(f"{db.prefix}conversations", v0, Column("id", Id, primary_key=True))
        version_table(db.prefix).to_metadata(v0)
        v0.create_all(sink.engine)
        with sink.engine.begin() as connection:
            connection.execute(text(f"INSERT INTO {db.prefix}conversations (id) VALUES ('old')"))
            assert current_version(connection, db.prefix) == 0
        assert migrate(sink.engine, db.prefix) == 1
        assert table_names(db) == sorted(TABLES)
        with sink.engine.connect() as connection:
            kept = connection.execute(text(f"SELECT id FROM {db.prefix}conversations")).scalars()
            assert list(kept) == ["old"]

    def test_an_older_database_runs_only_the_newer_steps(self, db: Database) -> None:
        """A database at version 1 with data gets step 2 alone, and keeps its rows."""
        sink = db.sink()
        asyncio.run(sink.deliver(result()))
        calls: list[int] = []

        def counted(step: Migration) -> Migration:
            def apply(connection: Connection, prefix: str) -> None:
                calls.append(step.version)
                step.apply(connection, prefix)

            return Migration(step.version, step.description, apply)

        steps = [counted(step) for step in (*MIGRATIONS, V2)]
        assert migrate(sink.engine, db.prefix, steps) == 2
        assert migrate(sink.engine, db.prefix, steps) == 2
        assert calls == [2]
        assert logged_versions(db) == [1, 2]
        with sink.engine.connect() as connection:
            rows = connection.execute(text(f"SELECT id, notes FROM {db.prefix}conversations"))
            assert [tuple(row) for row in rows] == [(CID, "migrated")]
        assert len(db.rows("messages")) == 2

    def test_target_stops_early(self, db: Database) -> None:
        """``target`` migrates only that far: how the tests build an older database."""
        sink = db.sink()
        assert migrate(sink.engine, db.prefix, (*MIGRATIONS, V2), target=1) == 1
        assert logged_versions(db) == [1]

    def test_a_database_from_a_newer_ingestd_is_refused(self, db: Database) -> None:
        """Version 2 tables are never written by a sink that only knows version 1."""
        sink = db.sink()
        migrate(sink.engine, db.prefix, (*MIGRATIONS, V2))
        with pytest.raises(Permanent, match="schema version 2, written by a newer ingestd"):
            asyncio.run(sink.deliver(result()))

    def test_steps_must_be_numbered_in_order(self, db: Database) -> None:
        """A gap in the step list is a programming error caught before touching the database."""
        with pytest.raises(ValueError, match="1, 2, 3"):
            migrate(db.sink().engine, db.prefix, (MIGRATIONS[0], Migration(3, "x", _add_notes)))

    def test_daemons_starting_together_migrate_once(self, db: Database) -> None:
        """Four engines (four daemons) migrating at once: the lock runs each step once and
        every one of them ends at the latest version without an error.

        The first to migrate commits only once the other three wait on the lock, as the
        server shows them (or have run the step too, or finished): a lock released before
        the COMMIT (MySQL's was) then hands them the old version every time, not once in a
        while. SQLite shows no waiters; its lock is the transaction itself."""
        sink = db.sink()
        engines = [make_engine(sink.options) for _ in range(4)]
        calls: list[int] = []
        stepped: set[int] = set()  # the threads that ran a step
        finished: set[int] = set()

        def counted_v1(connection: Connection, prefix: str) -> None:
            calls.append(1)
            stepped.add(threading.get_ident())
            MIGRATIONS[0].apply(connection, prefix)

        def others_queued(observer: Connection) -> bool:
            waiting = lock_waiters(observer)
            observer.rollback()  # a fresh look each time
            return waiting + len(stepped) - 1 + len(finished) >= len(engines) - 1

        held: list[int] = []

        def hold_the_commit(_connection: Connection) -> None:
            """Before the COMMIT of the migration (not the one after GET_LOCK), once."""
            if threading.get_ident() not in stepped or held or db.dialect == "sqlite":
                return
            held.append(threading.get_ident())
            with sink.engine.connect() as observer:
                wait_for(
                    lambda: others_queued(observer), 30, "three daemons waiting on the lock", 0.01
                )

        for engine in engines:
            event.listen(engine, "commit", hold_the_commit)
        steps = (Migration(1, MIGRATIONS[0].description, counted_v1),)
        results: list[Any] = []
        barrier = threading.Barrier(len(engines))

        def run(engine: Any) -> None:
            barrier.wait()
            try:
                results.append(migrate(engine, db.prefix, steps))
            except Exception as exc:  # collected: an assertion below shows it
                results.append(exc)
            finished.add(threading.get_ident())

        threads = [threading.Thread(target=run, args=(engine,)) for engine in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for engine in engines:
            engine.dispose()
        assert results == [1, 1, 1, 1]
        assert calls == [1]
        assert logged_versions(db) == [1]
        assert len(held) == (0 if db.dialect == "sqlite" else 1)

    def test_a_failed_step_leaves_the_lock_to_the_next_daemon(self, db: Database) -> None:
        """A step that raises: its error comes out unchanged, and another daemon then takes
        the lock at once and migrates (a lock left held would make it wait, then give up)."""
        sink = db.sink()

        def broken_v1(connection: Connection, prefix: str) -> None:
            MIGRATIONS[0].apply(connection, prefix)
            raise RuntimeError("step 1 broke")

        with pytest.raises(RuntimeError, match="step 1 broke"):
            migrate(sink.engine, db.prefix, (Migration(1, "broken", broken_v1),))
        other = make_engine(sink.options)
        try:
            assert migrate(other, db.prefix) == 1
        finally:
            other.dispose()
        assert logged_versions(db) == [1]

    def test_a_connection_lost_while_migrating_leaves_no_lock(self, server_db: Database) -> None:
        """The server drops the migrating connection in the middle of a step: that migration
        fails with the lost connection (no later error hides it), and the next one takes the
        lock and runs the step again."""
        db = server_db
        sink = db.sink()
        killer = make_engine(sink.options)
        calls: list[int] = []

        def dropped_v1(connection: Connection, prefix: str) -> None:
            calls.append(1)
            if len(calls) == 1:
                drop_connection(connection, killer)
                connection.execute(text("SELECT 1"))  # raises: the server has closed it
            MIGRATIONS[0].apply(connection, prefix)

        steps = (Migration(1, MIGRATIONS[0].description, dropped_v1),)
        try:
            with pytest.raises(OperationalError) as lost:
                migrate(sink.engine, db.prefix, steps)
            assert lost.value.connection_invalidated
            assert migrate(sink.engine, db.prefix, steps) == 1
        finally:
            killer.dispose()
        assert calls == [1, 1]
        assert logged_versions(db) == [1]


def lock_waiters(connection: Connection) -> int:
    """How many sessions on this database wait for a schema lock, as the server says."""
    if connection.dialect.name == "postgresql":
        query = (
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    else:  # MariaDB: the state of a session in GET_LOCK
        query = (
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
            "WHERE DB = DATABASE() AND STATE = 'User lock'"
        )
    return int(connection.execute(text(query)).scalar() or 0)


def drop_connection(connection: Connection, killer: Engine) -> None:
    """Have the server end `connection`'s session, from another one: it fails from now on."""
    with killer.connect() as other:
        if connection.dialect.name == "postgresql":
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar()
            # With a timeout, pg_terminate_backend waits until the backend has exited.
            stopped = other.execute(text("SELECT pg_terminate_backend(:pid, 30000)"), {"pid": pid})
            assert stopped.scalar() is True
        else:
            session = int(connection.execute(text("SELECT CONNECTION_ID()")).scalar() or 0)
            other.execute(text(f"KILL CONNECTION {session}"))


class TestTablePrefix:
    def test_two_prefixes_share_a_database_without_meeting(self, db: Database) -> None:
        """Sinks with different prefixes keep separate tables and separate versions."""
        first = db.sink("a")
        second = db.sink("b", table_prefix=f"{db.prefix}other_")
        asyncio.run(first.deliver(result()))
        assert inspect(first.engine).has_table(f"{db.prefix}messages")
        assert not inspect(first.engine).has_table(f"{db.prefix}other_messages")
        asyncio.run(second.deliver(result()))
        assert db.rows("messages", first) == db.rows("messages", second)
        assert second.tables.items["messages"].name == f"{db.prefix}other_messages"
        assert build_tables("x_").conversations.name == "x_conversations"
