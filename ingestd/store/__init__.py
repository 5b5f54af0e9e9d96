"""The durable state of every recording, its conversation mapping and sink deliveries.

`Store` is the protocol the rest of ingestd types against (`ingestd.store.base`);
`SqliteStore` (one machine, the default) and `PostgresStore` (``state.url:
postgresql://...``, issue 12) implement it. Outside this package nothing opens the database
itself: `open_store`/`open_configured` for the daemon and the commands, `Store.reader` for
other threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ingestd.store.base import RecordingRow, Store, StoreSnapshot
from ingestd.store.sqlite import SqliteStore
from ingestd.store.urls import is_postgres_url

if TYPE_CHECKING:
    from ingestd.config import Config

__all__ = [
    "RecordingRow",
    "SqliteStore",
    "Store",
    "StoreSnapshot",
    "open_configured",
    "open_read_only",
    "open_store",
]


def open_store(target: Path | str, *, password: str | None = None, wait: bool = False) -> Store:
    """The state store at `target` (a SQLite path, or a ``postgresql://`` URL from
    ``state.url``), created and migrated if needed.

    `wait`: the daemon's store waits for a PostgreSQL server that is down or restarting
    (and says so in the log) instead of failing; a command's fails at once."""
    if is_postgres_url(target):
        from ingestd.store.postgres import PostgresStore  # psycopg only when it is used

        return PostgresStore(str(target), password=password, wait=wait)
    return SqliteStore(Path(target))


def open_configured(config: Config, *, wait: bool = False) -> Store:
    """The store `config`'s ``state.url`` names."""
    if config.state_path is not None:
        return open_store(config.state_path)
    return open_store(config.state_url, password=config.state_password, wait=wait)


def open_read_only(target: Path | str, *, password: str | None = None) -> Store:
    """The state store at `target`, read-only, creating nothing (for tools and tests that read
    while a daemon may be writing); raises `StoreError` when it cannot be read."""
    if is_postgres_url(target):
        from ingestd.store.postgres import PostgresStore

        return PostgresStore.read_only(str(target), password)
    return SqliteStore.read_only(Path(target))
