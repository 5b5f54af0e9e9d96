"""Schema versions: an ordered list of steps, each run once per database, under a lock.

The ``<prefix>ingestd_schema`` table logs every applied step (version, description, time);
the schema's version is the highest one logged, 0 when none is. On first use a sink runs
`migrate`, which takes a lock that another daemon starting at the same moment waits on:

    PostgreSQL   ``pg_advisory_xact_lock`` inside the transaction (released at its end)
    MySQL        ``GET_LOCK`` for the session, before the transaction begins; released
                 after it has committed
    SQLite       the transaction itself: ``BEGIN IMMEDIATE`` holds the file's write lock

then runs the steps above the current version in order, logging each one. PostgreSQL and
SQLite run all of it in one transaction, so a crash leaves the old version. MySQL commits
each DDL statement implicitly, so a crash may leave a step half done with its version not
logged: every step must therefore be safe to run again (``checkfirst``, ``IF NOT EXISTS``).

On every dialect the lock is held until the transaction has committed, so a daemon that
waited on it reads the version only once the steps and their log rows are visible to it,
and runs none of them again (MySQL's lock, once released before the COMMIT, let a waiting
daemon read the old version and migrate a second time). MySQL's lock and the migration
share a connection, so a lost connection loses both; a lock that cannot be released closes
its connection, and the server drops a closed session's locks.

To change the schema, append a step; never edit one that has shipped. Step 1 creates the
tables as `ingestd_database.schema` defines them today, so the change that adds step 2
must first copy today's definitions into step 1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy import Column, Integer, MetaData, Table, Text, func, insert, select, text
from sqlalchemy.engine import Connection, Engine

from ingestd import Permanent, Retryable
from ingestd_database.schema import UTCDateTime, build_tables

log = structlog.get_logger("ingestd_database")

LOCK_TIMEOUT_SECONDS = 60
"""How long MySQL waits for another daemon's migration before we give up and retry."""


@dataclass(frozen=True)
class Migration:
    """One step: bring the schema from ``version - 1`` to `version`.

    Attributes:
        apply: ``apply(connection, table_prefix)``; runs inside the migration transaction
            and must be safe to run twice (see the module docstring).
    """

    version: int
    description: str
    apply: Callable[[Connection, str], None]


def _create_v1(connection: Connection, prefix: str) -> None:
    build_tables(prefix).metadata.create_all(connection, checkfirst=True)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "conversations, parts and one table per insight kind", _create_v1),
)
"""Every step ever shipped, in order; the last one's version is the current schema's."""

LATEST = MIGRATIONS[-1].version


def version_table(prefix: str) -> Table:
    """The log of applied steps. Its shape never changes: every version must read it."""
    return Table(
        f"{prefix}ingestd_schema",
        MetaData(),
        Column("version", Integer, primary_key=True, autoincrement=False),
        Column("description", Text, nullable=False),
        Column("applied_at", UTCDateTime, nullable=False),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )


def current_version(connection: Connection, prefix: str) -> int:
    """The highest version logged; 0 for a database this prefix has never used."""
    table = version_table(prefix)
    if not connection.dialect.has_table(connection, table.name):
        return 0
    return int(connection.execute(select(func.max(table.c.version))).scalar() or 0)


def migrate(
    engine: Engine,
    prefix: str,
    steps: Sequence[Migration] = MIGRATIONS,
    *,
    target: int | None = None,
) -> int:
    """Run every step above the database's version, up to `target` (default: all).

    Returns:
        The version the database is at afterwards.

    Raises:
        Permanent: the database was migrated by a newer ingestd than this one.
        Retryable: another daemon's migration held the lock for too long (MySQL).
    """
    versions = [step.version for step in steps]
    if versions != list(range(1, len(steps) + 1)):
        raise ValueError(f"migration versions must be 1, 2, 3, … in order, got {versions}")
    known = versions[-1] if versions else 0
    target = known if target is None else target
    table = version_table(prefix)
    with engine.connect() as connection, schema_lock(connection, prefix):
        table.create(connection, checkfirst=True)
        current = current_version(connection, prefix)
        if current > known:
            raise Permanent(
                f"tables with prefix {prefix!r} are at schema version {current}, written by "
                f"a newer ingestd (this one knows up to {known}); upgrade ingestd or use "
                "another table_prefix"
            )
        for step in steps:
            if current < step.version <= target:
                step.apply(connection, prefix)
                connection.execute(
                    insert(table).values(
                        version=step.version,
                        description=step.description,
                        applied_at=datetime.now(UTC),
                    )
                )
                current = step.version
    return current


@contextmanager
def schema_lock(connection: Connection, prefix: str) -> Iterator[None]:
    """Hold the dialect's migration lock for `prefix` and a transaction on `connection` while
    the block runs; the transaction commits (or rolls back) before the lock is released."""
    name = connection.dialect.name
    if name in ("mysql", "mariadb"):
        with _session_lock(connection, prefix), connection.begin():
            yield
    else:
        with connection.begin():  # SQLite: BEGIN IMMEDIATE (see ingestd_database.connection)
            if name == "postgresql":
                key = {"key": _lock_key(prefix)}
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), key)
            yield


@contextmanager
def _session_lock(connection: Connection, prefix: str) -> Iterator[None]:
    """MySQL's ``GET_LOCK`` for `prefix`, taken outside any transaction the block begins."""
    # Lock names are server-wide: include the database so unrelated ones don't wait.
    database = connection.execute(text("SELECT DATABASE()")).scalar()
    digest = hashlib.sha256(f"{database}\0{prefix}".encode()).hexdigest()[:40]
    lock = f"ingestd_schema_{digest}"
    try:
        got = connection.execute(
            text("SELECT GET_LOCK(:lock, :timeout)"),
            {"lock": lock, "timeout": LOCK_TIMEOUT_SECONDS},
        ).scalar()
        # End the transaction GET_LOCK began: the block's own starts with the lock held, so
        # its first read sees what the previous holder committed.
        connection.commit()
    except BaseException:
        # An interrupted GET_LOCK may yet be granted: no pooled connection may keep it.
        connection.invalidate()
        raise
    if got != 1:
        raise Retryable(
            f"another ingestd has been migrating the database tables for over "
            f"{LOCK_TIMEOUT_SECONDS} s; will retry"
        )
    try:
        yield
    finally:
        _release(connection, lock)


def _release(connection: Connection, lock: str) -> None:
    """Release `lock`, or close the connection (the server then drops the session's locks).

    Failing to release does not fail the migration, which has committed or rolled back by
    now; an exception from the block is never masked by one from here.
    """
    if connection.invalidated:
        return  # the connection was lost, and the session's locks with it
    released = None
    try:
        released = connection.execute(text("SELECT RELEASE_LOCK(:lock)"), {"lock": lock}).scalar()
    except Exception as exc:
        log.warning("database_schema_unlock_failed", error=f"{type(exc).__name__}: {exc}")
    finally:
        if released != 1:
            connection.invalidate()


def _lock_key(prefix: str) -> int:
    """A stable signed 64-bit advisory lock key for `prefix` (PostgreSQL's bigint)."""
    digest = hashlib.sha256(f"ingestd_schema\0{prefix}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
