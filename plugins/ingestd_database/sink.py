"""The database sink: each conversation mirrored into tables, one transaction per delivery.

A delivery (run in a worker thread, never on the event loop):

1. On the sink's first delivery, create or migrate the tables (`migrations.migrate`).
2. Begin a transaction and lock the conversation's row (``SELECT … FOR UPDATE``; on SQLite
   the transaction already holds the write lock). If its stored ``content_sha256`` equals
   the digest of the new rows, stop: an identical redelivery writes nothing at all.
3. Upsert the conversation, then for the parts and each insight kind upsert every row by
   its key and delete the conversation's rows whose key is no longer delivered.
4. Commit. A crash or error before this leaves the previous delivery untouched.

So after any sequence of deliveries, complete or interrupted, the tables hold exactly one
copy of each item of the latest completed delivery: nothing duplicated, nothing stale.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Table, delete, func, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from ingestd import ConfigError, DeliveryReceipt, Permanent, RecordingError, Result, SinkContext
from ingestd_database.connection import failure, make_engine, sqlite_folder
from ingestd_database.migrations import migrate
from ingestd_database.options import DatabaseOptions
from ingestd_database.rows import Row, Rows, build_rows
from ingestd_database.schema import ITEM_KINDS, Tables, build_tables

log = structlog.get_logger("ingestd_database")

DELETE_BATCH = 500
"""Keys per ``DELETE … IN (…)``, well under every dialect's limit on bound parameters."""


def make_database_sink(options: Mapping[str, Any], context: SinkContext) -> DatabaseSink:
    """The ``database`` sink factory; a relative SQLite path is relative to the config file."""
    base = context.config_path.parent if context.config_path else None
    parsed = DatabaseOptions.parse(
        options, key_path=context.key_path, state_dir=context.state_dir, base=base
    )
    try:
        engine = make_engine(parsed)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"{context.key_path}.url: {exc}") from None
    return DatabaseSink(context.name, parsed, engine)


class DatabaseSink:
    """Upserts each delivered conversation into the tables of `ingestd_database.schema`."""

    def __init__(self, name: str, options: DatabaseOptions, engine: Engine | None = None) -> None:
        self.name = name
        self.options = options
        self.engine = engine if engine is not None else make_engine(options)
        self.tables: Tables = build_tables(options.table_prefix)
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    async def deliver(self, result: Result) -> DeliveryReceipt:
        """Mirror `result` into the tables; `Retryable` when the database is unreachable."""
        return await asyncio.to_thread(self.write, result)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await asyncio.to_thread(self.engine.dispose)

    async def check(self) -> str:
        """``ingestd check``: connect, create or migrate the tables as the first delivery
        would, and (PostgreSQL) make sure this user may read and write each of them."""
        return await asyncio.to_thread(self._check)

    def _check(self) -> str:
        try:
            self.ensure_schema()
            with self.engine.connect() as connection:
                count = connection.execute(
                    select(func.count()).select_from(self.tables.conversations)
                ).scalar()
                missing = _missing_privileges(connection, self.tables)
        except RecordingError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise failure(exc, sink=self.name, options=self.options) from exc
        if missing:
            raise Permanent(
                f"database sink {self.name!r} ({self.options.display_url}): this user lacks "
                f"{'; '.join(missing)}; grant them, then run `ingestd check` again"
            )
        return f"{self.options.display_url}: connected, tables ready ({count} conversations)"

    def write(self, result: Result) -> DeliveryReceipt:
        """The blocking part of `deliver`."""
        rows = build_rows(result)
        try:
            self.ensure_schema()
            with self.engine.begin() as connection:
                changed, removed = self._apply(connection, rows)
        except RecordingError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise failure(exc, sink=self.name, options=self.options) from exc
        detail: dict[str, Any] = {
            "conversation_id": result.conversation_id,
            "database": self.options.display_url,
            "changed": changed,
            "parts": len(rows.parts),
            **{kind: len(rows.items[kind]) for kind in ITEM_KINDS},
            "removed": removed,
        }
        return DeliveryReceipt(sink=self.name, detail=detail)

    def ensure_schema(self) -> None:
        """Create or migrate the tables, once per sink (and per process)."""
        with self._schema_lock:
            if self._schema_ready:
                return
            folder = sqlite_folder(self.options)
            if folder:
                os.makedirs(folder, exist_ok=True)
            version = migrate(self.engine, self.options.table_prefix)
            log.debug("database_schema_ready", sink=self.name, version=version)
            self._schema_ready = True

    def _apply(self, connection: Connection, rows: Rows) -> tuple[bool, int]:
        """Steps 2–3 of the module docstring; returns (changed, rows removed)."""
        conversations = self.tables.conversations
        cid = rows.conversation["id"]
        stored = connection.execute(
            select(conversations.c.content_sha256)
            .where(conversations.c.id == cid)
            .with_for_update()
        ).scalar()
        if stored == rows.digest:
            return False, 0
        now = datetime.now(UTC)
        conversation = {
            **rows.conversation,
            "content_sha256": rows.digest,
            "created_at": now,
            "updated_at": now,
        }
        upsert(connection, conversations, [conversation], keep=("created_at",))
        removed = replace_children(connection, self.tables.parts, cid, rows.parts, "position")
        for kind, table in self.tables.items.items():
            removed += replace_children(connection, table, cid, rows.items[kind], "id")
        return True, removed


_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")


def _missing_privileges(connection: Connection, tables: Tables) -> list[str]:
    """``INSERT, DELETE on parts``... for each table the user may not fully use (PostgreSQL;
    elsewhere the tables' creation and a read are the proof)."""
    if connection.dialect.name != "postgresql":
        return []
    missing = []
    for table in (tables.conversations, tables.parts, *tables.items.values()):
        lacking = [
            privilege
            for privilege in _PRIVILEGES
            if not connection.exec_driver_sql(
                "SELECT has_table_privilege(current_user, %(t)s, %(p)s)",
                {"t": table.name, "p": privilege},
            ).scalar()
        ]
        if lacking:
            missing.append(f"{', '.join(lacking)} on {table.name}")
    return missing


def upsert(
    connection: Connection, table: Table, rows: list[Row], *, keep: Iterable[str] = ()
) -> None:
    """Insert `rows`, or update the row already holding each one's primary key.

    Columns in `keep` are written on insert only. All rows must have the same keys.
    """
    if not rows:
        return
    key = {column.name for column in table.primary_key.columns}
    updated = [name for name in rows[0] if name not in key and name not in set(keep)]
    dialect = connection.dialect.name
    if dialect in ("mysql", "mariadb"):
        statement = mysql.insert(table)
        statement = statement.on_duplicate_key_update(
            {name: statement.inserted[name] for name in updated}
        )
    else:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        pg_or_sqlite = insert(table)
        statement = pg_or_sqlite.on_conflict_do_update(
            index_elements=sorted(key),
            set_={name: pg_or_sqlite.excluded[name] for name in updated},
        )
    connection.execute(statement, rows)


def replace_children(
    connection: Connection, table: Table, cid: str, rows: list[Row], key: str
) -> int:
    """Make `table`'s rows of conversation `cid` exactly `rows`; return how many were deleted."""
    upsert(connection, table, rows)
    delivered = {row[key] for row in rows}
    existing = connection.execute(
        select(table.c[key]).where(table.c.conversation_id == cid)
    ).scalars()
    stale = [value for value in existing if value not in delivered]
    for start in range(0, len(stale), DELETE_BATCH):
        batch = stale[start : start + DELETE_BATCH]
        connection.execute(
            delete(table).where(table.c.conversation_id == cid, table.c[key].in_(batch))
        )
    return len(stale)
