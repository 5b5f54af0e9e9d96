"""The store seam: the core types against the `Store` protocol, SQLite stays behind it."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from ingestd.errors import StoreError
from ingestd.lifecycle import State
from ingestd.store import SqliteStore, Store, open_read_only, open_store
from ingestd.store.base import StoreSnapshot

ROOT = Path(__file__).parents[2]
INGESTD = ROOT / "ingestd"


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if not name.startswith("_") and callable(member)
    }


def outside_the_store() -> list[Path]:
    return [p for p in INGESTD.rglob("*.py") if (INGESTD / "store") not in p.parents]


def test_no_module_outside_the_store_opens_sqlite() -> None:
    """Only ingestd/store knows the database is SQLite (a PostgreSQL store comes next)."""
    offenders = [
        str(p.relative_to(ROOT))
        for p in outside_the_store()
        if re.search(r"^\s*import sqlite3|sqlite3\.connect", p.read_text(), re.MULTILINE)
    ]
    assert offenders == []


def test_the_core_names_only_the_protocol() -> None:
    """Outside the store package, code opens a store through `open_store`/`open_read_only`
    and types against `Store`; `SqliteStore` is not named."""
    offenders = [
        str(p.relative_to(ROOT))
        for p in outside_the_store()
        if "SqliteStore" in p.read_text() or "ingestd.store.sqlite" in p.read_text()
    ]
    assert offenders == []


def test_sqlite_store_implements_every_method_of_the_protocol() -> None:
    protocol = public_methods(Store)
    sqlite = {**public_methods(SqliteStore)}
    for base in SqliteStore.__mro__[1:]:
        sqlite = {**public_methods(base), **sqlite}
    missing = sorted(set(protocol) - set(sqlite))
    assert missing == []
    differ = [
        name
        for name, signature in protocol.items()
        if list(signature.parameters) != list(sqlite[name].parameters)
    ]
    assert differ == []


def test_every_public_store_method_is_in_the_protocol() -> None:
    """A method the core may call must be part of the seam, or the next store lacks it."""
    sqlite: set[str] = set()
    for cls in SqliteStore.__mro__[:-1]:
        sqlite |= set(public_methods(cls))
    assert sorted(sqlite - set(public_methods(Store)) - {"read_only"}) == []


class TestReaders:
    def test_a_reader_reads_and_refuses_to_write(self, tmp_path: Path) -> None:
        store = open_store(tmp_path / "state.db")
        row = store.insert(
            watch="w", watch_root="/in", relpath="a.wav", size_bytes=1, mtime=1.0, sha256="a"
        )
        reader = store.reader()
        try:
            assert reader.get(row.id).state is State.DISCOVERED
            assert reader.snapshot() == StoreSnapshot(
                states={"discovered": 1}, deliveries={}, oldest_unfinished_at=row.created_at
            )
            with pytest.raises(StoreError):
                reader.update(row.id, attempts=3)
        finally:
            reader.close()
            store.close()

    def test_a_missing_database_is_a_store_error_and_creates_nothing(self, tmp_path: Path) -> None:
        with pytest.raises(StoreError):
            open_read_only(tmp_path / "state.db")
        assert list(tmp_path.iterdir()) == []
