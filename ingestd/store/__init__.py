"""The durable state of every recording, its conversation mapping and sink deliveries.

`Store` is the protocol the rest of ingestd types against (`ingestd.store.base`);
`SqliteStore` implements it. Outside this package nothing opens the database itself:
`open_store` for the daemon and the commands, `Store.reader` for other threads.
"""

from pathlib import Path

from ingestd.store.base import RecordingRow, Store, StoreSnapshot
from ingestd.store.sqlite import SqliteStore

__all__ = ["RecordingRow", "SqliteStore", "Store", "StoreSnapshot", "open_read_only", "open_store"]


def open_store(path: Path) -> Store:
    """The state store at `path` (``state.url``), created and migrated if needed."""
    return SqliteStore(path)


def open_read_only(path: Path) -> Store:
    """The state store at `path`, read-only, creating nothing (for tools and tests that read
    while a daemon may be writing); raises `StoreError` when it cannot be read."""
    return SqliteStore.read_only(path)
