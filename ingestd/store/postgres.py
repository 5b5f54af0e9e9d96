"""The PostgreSQL state store (`PostgresStore`, the `ingestd.store.Store` protocol), selected
by ``state.url: postgresql://USER@HOST[:PORT]/DB``: the first step towards several nodes on
one database (issue 12, DESIGN.md "Several nodes").

Same semantics as SQLite by construction: `SqliteStore`'s SQL is kept portable, and this
store runs those very methods over a connection (`_PgConnection`) that turns the few
SQLite-isms into PostgreSQL (``?`` placeholders, ``INSERT OR IGNORE``, case-insensitive
``LIKE``). The contract suite (tests/unit/test_store*.py) runs every store
test against both. What differs is the plumbing:

- **Writers are serialized** as SQLite's ``BEGIN IMMEDIATE`` serializes them: each write
  transaction takes one transaction-scoped advisory lock first, so every daemon and command
  on the database sees the same one-writer-at-a-time order (events' ids are commit order).
  Several nodes share the database: each claims a recording before driving it, with a
  lease and a fencing token every write for it checks (`ingestd.store.claims`).
- **Round trips are few**: a write transaction's BEGIN and lock go out with its first
  statement, and the writes read only once committed (``defer``: a state change's UPDATE
  ... RETURNING, its event row, the outbox entries) with its COMMIT, each as one query
  string (`_PgConnection._send_queued`). A state change is two round trips, where one per
  statement made it seven.
- **Schema**: versioned in ``ingestd_schema``, created and migrated at start under a
  transaction-scoped advisory lock, so nodes starting together migrate once.
- **The server going away is waited for, not fatal** (daemon only, ``wait=True``): a lost
  connection is logged once, retried with back-off until the server answers, and the store
  call that hit it runs again. A COMMIT whose answer was lost is looked up by its
  transaction id (``pg_xact_status``), so a write is neither lost nor applied twice.
  Commands (``wait=False``) fail at once with one line instead.
- **Access problems are configuration problems**: a wrong password, unknown user or missing
  database at open is a `ConfigError` (exit 78) naming the URL without its password.
"""

from __future__ import annotations

import contextlib
import functools
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from typing import Any

import psycopg
import structlog
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from ingestd import systemd
from ingestd.errors import ConfigError, StoreError
from ingestd.store.claims import PostgresClaims
from ingestd.store.nodes import PostgresNodes
from ingestd.store.sqlite import SqliteStore, _Result
from ingestd.store.urls import display_url, is_postgres_url, url_problem  # noqa: F401

log = structlog.get_logger()

SCHEMA_VERSION = 2  # 1: the tables of SQLite schema 2, plus nodes and claims; 2: job_limits
CONNECT_TIMEOUT_SECONDS = 10
LOCK_TIMEOUT_SECONDS = 30
"""How long a write waits for another writer (SQLite's busy timeout)."""

RECONNECT_MAX_SECONDS = 5.0
"""Longest pause between two attempts to reach a server that went away."""

REMIND_SECONDS = 60.0
"""While the server stays away, the log says so again this often."""

NOTIFY_SECONDS = 1.0
"""While waiting, systemd hears this often that the daemon is alive and why it waits (the
event loop, which sends WATCHDOG=1 otherwise, is blocked on the store): a long outage is
not a watchdog kill and restart loop, and EXTEND_TIMEOUT_USEC covers a wait at start."""

_WRITE_LOCK = 0x696E6765  # "inge": one writer at a time, like SQLite's BEGIN IMMEDIATE
_MIGRATE_LOCK = 0x696E6766

_ACCESS_TROUBLE = re.compile(
    r'database "[^"]*" does not exist|role "[^"]*" does not exist|password authentication '
    r"failed|no password supplied|no pg_hba\.conf entry|permission denied",
    re.IGNORECASE,
)
"""PostgreSQL's words for what only the operator can fix: waiting will not change them."""


class ConnectionLost(Exception):
    """The server went away mid-call (internal: the store call waits and runs again)."""


class PostgresStore(PostgresClaims, PostgresNodes, SqliteStore):
    """The `ingestd.store.Store` protocol on a PostgreSQL database, shared by nodes."""

    def __init__(
        self,
        url: str,
        *,
        password: str | None = None,
        wait: bool = False,
        read_only: bool = False,
    ) -> None:
        self.url = url
        self.where = display_url(url)
        self.path = None  # type: ignore[assignment]  # no file: see `where`
        self._password = password
        self._wait = wait
        self._read_only = read_only
        self._conn = _PgConnection(self)  # type: ignore[assignment]
        self._conn.connect(first=True)
        while True:
            try:
                if read_only:
                    self._conn.execute("SELECT version FROM ingestd_schema")  # exists, readable
                else:
                    self._migrate()
                break
            except ConnectionLost:
                self._conn.reconnect()

    # -- plumbing ------------------------------------------------------------------------

    def _migrate(self) -> None:
        """Create or upgrade the schema once, whichever node gets there first."""
        script = resources.files("ingestd.store").joinpath("schema_postgres.sql").read_text()
        with self._conn.transaction(lock=_MIGRATE_LOCK):
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS ingestd_schema (version INTEGER NOT NULL)"
            )
            row = self._conn.execute("SELECT version FROM ingestd_schema").fetchone()
            version = row[0] if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.where} was written by a newer ingestd (schema {version}); "
                    f"upgrade ingestd on every node"
                )
            if version < SCHEMA_VERSION:
                self._conn.execute_script(script)
                self._conn.execute("DELETE FROM ingestd_schema")
                self._conn.execute(
                    "INSERT INTO ingestd_schema (version) VALUES (?)", (SCHEMA_VERSION,)
                )

    def check(self) -> None:
        """The schema is the one this ingestd knows (PostgreSQL checks its own pages)."""
        row = self._conn.execute("SELECT version FROM ingestd_schema").fetchone()
        if row is None or row[0] != SCHEMA_VERSION:
            raise StoreError(
                f"{self.where}: schema version {row and row[0]}, expected {SCHEMA_VERSION}"
            )

    def close(self) -> None:
        self._conn.close()

    @classmethod
    def read_only(cls, url: str, password: str | None = None) -> PostgresStore:  # type: ignore[override]
        """A store that reads only, on a connection of its own (any write through it fails)."""
        return cls(url, password=password, read_only=True)

    def reader(self) -> PostgresStore:
        return PostgresStore(self.url, password=self._password, read_only=True)

    @contextlib.contextmanager
    def _read(self) -> Iterator[None]:
        """One consistent read across several queries (a snapshot)."""
        with self._conn.transaction(read=True):
            yield


def _rerun_when_reconnected(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a store call; if the server went away, wait for it and run the call again.

    A call reruns only if it began outside a transaction (one is never resumed halfway: an
    inner call made inside another's transaction leaves the rerun to that one), and never
    once it has committed a write: a method's reads after its commit (``transition``
    returning ``get``) are calls of their own, which rerun by themselves."""

    @functools.wraps(method)
    def call(self: PostgresStore, *args: Any, **kwargs: Any) -> Any:
        conn = self._conn
        if conn.in_transaction:
            return method(self, *args, **kwargs)
        while True:
            commits = conn.commits
            try:
                return method(self, *args, **kwargs)
            except ConnectionLost:
                if conn.commits != commits:  # not to be repeated: say so, never apply twice
                    raise StoreError(
                        f"lost the connection to the state database {self.where} after a "
                        f"write was committed",
                        transient=True,
                    ) from None
                conn.reconnect()

    return call


def _protocol_methods() -> list[str]:
    from ingestd.store.base import Store

    return [n for n, m in vars(Store).items() if callable(m) and not n.startswith("_")]


for _name in _protocol_methods():
    if _name not in ("close", "reader"):
        setattr(PostgresStore, _name, _rerun_when_reconnected(getattr(PostgresStore, _name)))


class _Row(tuple):  # type: ignore[type-arg]
    """A row read by position or by column name, as `sqlite3.Row`."""

    _names: tuple[str, ...]

    def __new__(cls, values: Sequence[Any], names: tuple[str, ...]) -> _Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def keys(self) -> tuple[str, ...]:
        return self._names

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names.index(key))
        return tuple.__getitem__(self, key)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], _Row]:
    names = tuple(c.name for c in cursor.description or ())
    return lambda values: _Row(values, names)


@functools.lru_cache(maxsize=512)
def _translate(sql: str) -> str:
    """`SqliteStore`'s SQL in PostgreSQL's words."""
    ignore = sql.startswith("INSERT OR IGNORE INTO")
    if ignore:
        sql = "INSERT INTO" + sql.removeprefix("INSERT OR IGNORE INTO") + " ON CONFLICT DO NOTHING"
    return sql.replace(" LIKE ", " ILIKE ")  # SQLite's LIKE ignores case


def _placeholders(sql: str) -> str:
    """``?`` -> ``%s`` (and a literal ``%`` doubled), for a statement with parameters."""
    return sql.replace("%", "%%").replace("?", "%s")


class _PgConnection:
    """One psycopg connection (autocommit, so a read outside a transaction sees the latest
    commit) with every psycopg error turned into a `StoreError` or `ConnectionLost`."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._conn: psycopg.Connection[Any] | None = None
        self._xid: str | None = None  # the open write transaction's id, for a lost COMMIT
        # statements of the open write transaction not sent yet (`_begin`, `defer`)
        self._queued: list[tuple[str, list[Any] | None, _Result | None]] = []
        self._opening = False  # its BEGIN is among them: nothing was sent yet
        self._stop_waiting = False
        self._stopped: str | None = None  # why the wait was given up (a stop signal)
        self.in_transaction = False
        self.commits = 0  # write transactions committed on this store, ever

    @property
    def where(self) -> str:
        return self._store.where

    # -- connecting ----------------------------------------------------------------------

    def _open(self) -> psycopg.Connection[Any]:
        options = f"-c lock_timeout={LOCK_TIMEOUT_SECONDS * 1000}"
        if self._store._read_only:
            options += " -c default_transaction_read_only=on"
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "application_name": "ingestd",
            "options": options,
            # a server that vanished without a word (cut cable) is noticed within ~20 s
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 2,
        }
        if self._store._password is not None:
            kwargs["password"] = str.__str__(self._store._password)
        return psycopg.connect(self._store.url, row_factory=_row_factory, **kwargs)

    def connect(self, *, first: bool = False) -> None:
        try:
            self._conn = self._open()
            return
        except psycopg.Error as exc:
            reason = _reason(exc)
            if _ACCESS_TROUBLE.search(reason):
                raise ConfigError(
                    f"state.url: {self.where}: {reason}; check the user, its password and "
                    f"the database name (create the database first: CREATE DATABASE ...)"
                ) from None
            if not self._store._wait:
                raise StoreError(
                    f"cannot reach the state database {self.where}: {reason}; is PostgreSQL "
                    f"running and reachable from here?",
                    transient=True,
                ) from None
        self.reconnect()

    def reconnect(self) -> None:
        """Wait until the server answers again (daemon), saying so in the log."""
        self.close()
        if not self._store._wait or self._stop_waiting:
            raise StoreError(
                self._stopped or f"lost the connection to the state database {self.where}",
                transient=True,
            )
        started = time.monotonic()
        reminded = started
        noticed = 0.0
        pause = 0.2
        reason = None
        with _stop_signals() as stopped:
            while True:
                try:
                    self._conn = self._open()
                    break
                except psycopg.Error as exc:
                    if reason is None:
                        log.warning(
                            "state_database_unreachable",
                            database=self.where,
                            error=_reason(exc),
                            action="waiting for it; nothing is lost",
                        )
                    elif time.monotonic() - reminded >= REMIND_SECONDS:
                        reminded = time.monotonic()
                        log.warning(
                            "state_database_still_unreachable",
                            database=self.where,
                            error=_reason(exc),
                            seconds=round(reminded - started),
                        )
                    reason = _reason(exc)
                deadline = time.monotonic() + pause
                while time.monotonic() < deadline:
                    if time.monotonic() - noticed >= NOTIFY_SECONDS:
                        noticed = time.monotonic()
                        _tell_systemd(self.where, reason)
                    if stopped():
                        self._stop_waiting = True
                        self._stopped = (
                            f"stopped while waiting for the state database {self.where} "
                            f"({reason}); the work is recorded and resumes at the next start"
                        )
                        raise StoreError(self._stopped, transient=True)
                    time.sleep(0.05)
                pause = min(pause * 2, RECONNECT_MAX_SECONDS)
        if reason is not None:
            log.info(
                "state_database_reconnected",
                database=self.where,
                seconds=round(time.monotonic() - started, 1),
            )

    def close(self) -> None:
        self.in_transaction = False
        self._queued, self._opening = [], False
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    # -- statements ----------------------------------------------------------------------

    def execute(self, sql: str, args: Sequence[Any] = ()) -> _Result:
        if sql == "BEGIN IMMEDIATE":  # `SqliteStore`'s write transaction
            self._begin(_WRITE_LOCK)
            return _Result([], 0)
        if sql == "BEGIN":  # `SqliteStore`'s consistent read
            self._run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", ())
            self.in_transaction = True
            return _Result([], 0)
        if sql == "COMMIT":
            self._commit()
            return _Result([], 0)
        sql = _translate(sql)
        return self._run(_placeholders(sql) if args else sql, args)

    def execute_script(self, script: str) -> None:
        if self._queued:
            self._send_queued()
        self._run(script, ())

    def defer(self, sql: str, args: Sequence[Any] = ()) -> _Result:
        """A write whose answer is not needed before the transaction ends: inside a write
        transaction it goes out with the next statement or the COMMIT (an error in it fails
        that one: the transaction is rolled back as if it had failed here). Its result (a
        RETURNING clause's rows) is filled in once sent: read it after the transaction."""
        if not (self._opening or self._xid is not None):  # no write transaction open: now
            return self.execute(sql, args)
        sql = _translate(sql)
        result = _Result([], 0)
        self._queued.append(
            (_placeholders(sql) if args else sql, list(args) if args else None, result)
        )
        return result

    def _run(self, sql: str, args: Sequence[Any]) -> _Result:
        if self._conn is None:  # lost earlier: the daemon's store reconnects, others fail
            raise self._lost(None)
        if self._queued:
            return self._send_queued(sql, list(args) if args else None)
        try:
            cursor = self._conn.execute(sql, list(args) if args else None)  # type: ignore[arg-type]
            rows = cursor.fetchall() if cursor.description is not None else []
        except psycopg.Error as exc:
            raise self._failure(exc) from None
        return _Result(rows, cursor.rowcount)

    def _begin(self, lock: int) -> None:
        """BEGIN, the writers' lock and the transaction's id: sent with the transaction's
        first statement (`_send_queued`)."""
        if self._conn is None:
            raise self._lost(None)
        self._queued = [
            ("BEGIN", None, None),
            (f"SELECT pg_advisory_xact_lock({int(lock)}), pg_current_xact_id()::text", None, None),
        ]
        self._opening = True
        self.in_transaction = True

    def _send_queued(self, sql: str | None = None, args: list[Any] | None = None) -> _Result:
        """The queued statements, then `sql` (if any), as one query string: one round trip,
        one packet. Their parameters are bound client-side (psycopg quotes them), since the
        server takes one statement per parameterized query. `sql`'s result, or the last
        queued one's; an error in any fails the lot (the transaction is rolled back)."""
        assert self._conn is not None
        statements = [*self._queued, *([(sql, args, None)] if sql else [])]
        self._queued = []
        opening, self._opening = self._opening, False
        # a statement that came without parameters has its own % signs yet: doubled here
        text = "; ".join(s if a else s.replace("%", "%%") for s, a, _ in statements)
        values = [v for _, a, _ in statements for v in (a or ())]
        try:
            cursor = psycopg.ClientCursor(self._conn)
            cursor.execute(text, values)
            last = _Result([], 0)
            for i, (_, _, deferred) in enumerate(statements):  # one result per statement
                if i:
                    cursor.nextset()
                rows = cursor.fetchall() if cursor.description is not None else []
                if opening and i == 1:  # BEGIN's, then the lock's: the transaction's id
                    self._xid = str(rows[0][1])
                last = deferred if deferred is not None else _Result([], 0)
                last._rows, last.rowcount = rows, cursor.rowcount
        except psycopg.Error as exc:
            raise self._failure(exc) from None
        return last

    def _commit(self) -> None:
        if self._opening:  # nothing sent yet: learn the transaction's id before its COMMIT
            self._send_queued()
        xid, self._xid = self._xid, None
        self.in_transaction = False
        try:
            self._run("COMMIT", ())  # with the deferred writes, if any
        except ConnectionLost:
            if xid is None:
                raise
            self.reconnect()  # the answer was lost: did the server commit it?
            status = self._run("SELECT pg_xact_status(%s::xid8)", (xid,)).fetchone()[0]
            if status != "committed":
                raise
            log.info("state_database_commit_confirmed", database=self.where, xid=xid)
        self.commits += 1

    @contextlib.contextmanager
    def transaction(self, *, lock: int | None = None, read: bool = False) -> Iterator[None]:
        if read:
            self.execute("BEGIN")
        else:
            self._begin(lock if lock is not None else _WRITE_LOCK)
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        if read:
            self.rollback()
        else:
            self._commit()

    def rollback(self) -> None:
        self._xid = None
        self.in_transaction = False
        self._queued, self._opening = [], False
        if self._conn is None or self._conn.info.transaction_status == TransactionStatus.IDLE:
            return
        with contextlib.suppress(psycopg.Error):
            self._conn.execute("ROLLBACK")

    def _failure(self, exc: psycopg.Error) -> Exception:
        """The error to raise for `exc`: ConnectionLost if the connection is gone."""
        if self._conn is None or self._conn.broken or self._conn.closed:
            return self._lost(exc)
        self.rollback()
        reason = _reason(exc)
        if isinstance(exc, pg_errors.LockNotAvailable | pg_errors.QueryCanceled):
            return StoreError(
                f"the state database {self.where} is locked by another writer for more than "
                f"{LOCK_TIMEOUT_SECONDS} s ({reason})",
                transient=True,
            )
        if isinstance(exc, pg_errors.DiskFull | pg_errors.OutOfMemory):
            return StoreError(
                f"the state database {self.where} cannot be written ({reason}); free space "
                f"on the PostgreSQL server",
                transient=True,
            )
        if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
            return StoreError(f"{self.where}: this store only reads ({reason})")
        return StoreError(f"state database {self.where}: {reason}")

    def _lost(self, exc: psycopg.Error | None) -> Exception:
        self.close()
        if self._store._wait and not self._stop_waiting:
            return ConnectionLost(str(exc))
        if self._stopped is not None:
            return StoreError(self._stopped, transient=True)
        reason = _reason(exc) if exc is not None else "not connected"
        return StoreError(
            f"lost the connection to the state database {self.where} ({reason})",
            transient=True,
        )


def _tell_systemd(where: str, reason: str | None) -> None:
    lines = [
        f"STATUS=waiting for the state database {where}: {reason}",
        f"EXTEND_TIMEOUT_USEC={int(4 * NOTIFY_SECONDS * 1_000_000)}",
    ]
    if systemd.watchdog_interval_seconds() is not None:
        lines.append("WATCHDOG=1")
    systemd.notify(*lines)


def _reason(exc: BaseException) -> str:
    """The first line of a psycopg error: the server's or libpq's own words."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line.removeprefix("connection failed: ").strip()


@contextlib.contextmanager
def _stop_signals() -> Iterator[Callable[[], bool]]:
    """While the event loop is blocked waiting for the database, SIGTERM/SIGINT still stop
    the daemon: noted here, handed back to the loop's own handlers afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    caught: list[int] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda signum, _frame: caught.append(signum))
    try:
        yield lambda: bool(caught)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        wakeup = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(wakeup)
        if wakeup == -1:  # no event loop heard it through its wakeup fd: hand it on
            for signum in caught:
                signal.raise_signal(signum)
