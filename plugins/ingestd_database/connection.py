"""How the sink connects to each dialect, and what connection trouble means for a recording.

Engines are synchronous (SQLAlchemy Core) and only ever used from `asyncio.to_thread`. The
pool is small and checks a connection before lending it, so a server restart between
deliveries costs one reconnect instead of a failed delivery. Timeouts are bounded
everywhere, so a stuck server turns into a retry rather than a hung delivery.

SQLite gets ``BEGIN IMMEDIATE`` for every transaction (SQLAlchemy's recipe for pysqlite):
a delivery takes the file's write lock before it reads, so two writers queue on the busy
timeout instead of failing to upgrade a read lock, and DDL becomes transactional.

Failures map to the core's errors (`failure`): what waiting can fix (refused connections,
timeouts, deadlocks, a locked file, any other ``OperationalError``) is `Retryable`; what it
cannot is `Permanent`, and fails the delivery at once: a missing column, a value the schema
refuses, and what only the operator can change (`_access_trouble`): a database that does not
exist, a user or password refused, a privilege missing. Messages name the database
by its display URL and never contain the password.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    InternalError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ingestd import Permanent, RecordingError, Retryable
from ingestd_database.options import DatabaseOptions

CONNECT_TIMEOUT_SECONDS = 10
POOL_TIMEOUT_SECONDS = 30
LOCK_TIMEOUT_SECONDS = 30
"""Waits for a row lock held by another writer (and SQLite's busy timeout)."""

WAL_RETRY_SECONDS = 0.01
"""Between attempts to put a new SQLite file in WAL mode (`_use_wal`)."""

POOL_RECYCLE_SECONDS = 1800
"""Below MySQL's usual ``wait_timeout``, after which the server drops idle connections."""

_SCHEMA_TROUBLE = ("no such table", "no such column", "has no column named")
"""SQLite reports these as OperationalError, though waiting will not fix them."""

_MYSQL_SCHEMA_CODES = {1054, 1146}
"""Unknown column, unknown table: PyMySQL raises OperationalError for the first."""

_ACCESS_TROUBLE = re.compile(
    r'database "[^"]*" does not exist|role "[^"]*" does not exist|password authentication '
    r"failed|no pg_hba\.conf entry|permission denied|must be owner of",
    re.IGNORECASE,
)
"""PostgreSQL's words for a wrong database name, user, password or missing privilege: its
driver raises them as OperationalError (at connect) or ProgrammingError (42501)."""

_MYSQL_ACCESS_CODES = {1044, 1045, 1049, 1142, 1143, 1227, 1370, 1698}
"""Access denied (to a database, for a user, for a command, column or routine), unknown
database, a privilege missing: waiting will not change any of them."""


def make_engine(options: DatabaseOptions) -> Engine:
    """A pooled engine for `options.url`; nothing connects until the first delivery."""
    dialect = options.dialect
    connect_args: dict[str, Any]
    if dialect == "sqlite":
        connect_args = {"timeout": LOCK_TIMEOUT_SECONDS}
    elif dialect == "postgresql":
        connect_args = {
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "application_name": "ingestd",
            "options": f"-c lock_timeout={LOCK_TIMEOUT_SECONDS * 1000}",
        }
    else:
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, "charset": "utf8mb4"}
    engine = create_engine(
        options.url,
        connect_args=connect_args,
        pool_size=options.pool_size,
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        pool_pre_ping=True,
        pool_recycle=POOL_RECYCLE_SECONDS,
    )
    if dialect == "sqlite":
        _sqlite_transactions(engine)
    elif dialect == "mysql":
        _mysql_session(engine)
    return engine


def _sqlite_transactions(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we say BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        _use_wal(cursor)  # readers never block the writer
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _use_wal(cursor: Any) -> None:
    """Put the file in WAL mode (a no-op once it is).

    Connections switching a new file at once may be told "database is locked" at once: SQLite
    skips the busy timeout where waiting could deadlock (see ``sqlite3_busy_handler``). The
    switch is tried again, as long as the busy timeout would wait, until one of them has done
    it; daemons starting together on a new file then all start.
    """
    deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(WAL_RETRY_SECONDS)


def _mysql_session(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {LOCK_TIMEOUT_SECONDS}")
        # Strict mode: a value that does not fit is an error, never silently truncated.
        cursor.execute(
            "SET SESSION sql_mode = TRIM(BOTH ',' FROM CONCAT(@@sql_mode, ',STRICT_TRANS_TABLES'))"
        )
        cursor.close()


def failure(exc: BaseException, *, sink: str, options: DatabaseOptions) -> RecordingError:
    """The core's error for `exc`, raised while sink `sink` talked to its database."""
    where = f"database sink {sink!r} ({options.display_url})"
    reason = _reason(exc, options)
    if isinstance(exc, DBAPIError) and _access_trouble(exc):
        return Permanent(
            f"{where}: {reason}; fix the sink's url or the database's grants (`ingestd check` "
            f"tries them), then `ingestd redeliver --all --sink {sink}`"
        )
    if isinstance(exc, OSError):
        return Retryable(f"{where}: {reason}; will retry")
    if isinstance(exc, PoolTimeout):
        return Retryable(f"{where}: every connection is busy ({reason}); will retry")
    if isinstance(exc, DisconnectionError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        return Retryable(f"{where}: the connection was lost ({reason}); will retry")
    if isinstance(exc, OperationalError) and not _schema_trouble(exc):
        return Retryable(f"{where} is unavailable or busy: {reason}; will retry")
    if isinstance(exc, InterfaceError | InternalError):
        return Retryable(f"{where}: {reason}; will retry")
    if isinstance(exc, SQLAlchemyError):
        return Permanent(f"{where} refused the data: {reason}")
    return Permanent(f"{where}: {reason}")


def _access_trouble(exc: DBAPIError) -> bool:
    """A database that does not exist, credentials refused, a privilege missing."""
    code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
    if isinstance(code, int):
        return code in _MYSQL_ACCESS_CODES
    if getattr(exc.orig, "sqlstate", None) in ("42501", "3D000", "28000", "28P01"):
        return True
    return bool(_ACCESS_TROUBLE.search(str(exc.orig)))


def _schema_trouble(exc: OperationalError) -> bool:
    code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
    if isinstance(code, int) and code in _MYSQL_SCHEMA_CODES:
        return True
    message = str(exc.orig).lower()
    return any(marker in message for marker in _SCHEMA_TROUBLE)


def _reason(exc: BaseException, options: DatabaseOptions) -> str:
    """The driver's own words in one line, without the SQL and without the password."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    if isinstance(cause, OSError) and cause.strerror:
        text = f"{cause.strerror} ({getattr(cause, 'filename', None) or ''})".replace(" ()", "")
    else:
        text = str(cause) or type(cause).__name__
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    password = options.url.password
    if password and len(str(password)) >= 4:
        text = text.replace(str(password), "***")
    return text[:500]


def sqlite_folder(options: DatabaseOptions) -> str | None:
    """The folder a SQLite database file lives in (created before first use)."""
    if options.dialect != "sqlite" or not options.url.database:
        return None
    return os.path.dirname(options.url.database)
