"""The store's failures: every sqlite3 error becomes a StoreError naming the file and cause."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from ingestd import logging as logging_module
from ingestd.errors import StoreError
from ingestd.lifecycle import State
from ingestd.store import SqliteStore, Store
from ingestd.store import sqlite as store_module


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Store:
    """SQLite's own failures (pages, busy timeout, corruption); PostgreSQL's are in
    tests/unit/test_store_postgres.py."""
    return SqliteStore(tmp_path / "state.db")


def add(store: Store, rel: str):
    return store.insert(
        watch="w", watch_root="/in", relpath=rel, size_bytes=10, mtime=1.0, sha256=rel
    )


def fill_up(store: Store) -> None:
    """Make every further page allocation fail with SQLITE_FULL, as on a full disk."""
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")


def make_room(store: Store) -> None:
    store._conn.execute("PRAGMA max_page_count = 1073741823")


class TestFullDisk:
    def test_a_failed_write_is_a_transient_store_error_naming_the_file(
        self, tmp_path: Path, sqlite_store: Store
    ) -> None:
        """SQLITE_FULL says the disk is full, names the database, and may pass."""
        store = sqlite_store
        fill_up(store)
        with pytest.raises(StoreError) as caught:
            for i in range(200):
                add(store, f"{i}.wav")
        assert "disk is full" in str(caught.value)
        assert str(tmp_path / "state.db") in str(caught.value)
        assert caught.value.transient

    def test_nothing_half_written_and_the_store_works_again(self, sqlite_store: Store) -> None:
        """A failed write is rolled back whole; once there is room the same write works."""
        store = sqlite_store
        kept = add(store, "kept.wav")
        fill_up(store)
        with pytest.raises(StoreError):
            for i in range(200):
                add(store, f"{i}.wav")
        written = len(store.all())
        make_room(store)
        store.transition(kept.id, State.PROBED)
        add(store, "after.wav")
        assert len(store.all()) == written + 1
        assert all(len(store.events(r.id)) >= 1 for r in store.all())


class TestLocked:
    def test_a_lock_held_past_the_busy_timeout_is_reported(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Another process's exclusive lock: a transient error saying the database is locked;
        reads still work (WAL), and writes work again once it is released."""
        monkeypatch.setattr(store_module, "BUSY_TIMEOUT_SECONDS", 0.2)
        store = SqliteStore(tmp_path / "state.db")
        row = add(store, "a.wav")
        other = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreError, match="locked") as caught:
                add(store, "b.wav")
            assert caught.value.transient
            assert store.get(row.id).relpath == "a.wav"
        finally:
            other.execute("ROLLBACK")
            other.close()
        add(store, "b.wav")
        assert [r.relpath for r in store.all()] == ["a.wav", "b.wav"]

    def test_a_lock_released_within_the_busy_timeout_is_waited_for(
        self, tmp_path: Path, store: Store
    ) -> None:
        """A short lock (a backup, an sqlite3 shell query) only delays the write."""
        other = sqlite3.connect(
            tmp_path / "state.db", isolation_level=None, check_same_thread=False
        )
        other.execute("BEGIN EXCLUSIVE")
        timer = threading.Timer(0.3, lambda: other.execute("ROLLBACK"))
        timer.start()
        try:
            add(store, "a.wav")
        finally:
            timer.join()
            other.close()
        assert [r.relpath for r in store.all()] == ["a.wav"]


class TestCorrupt:
    def test_healthy_database_passes_the_check(self, store: Store) -> None:  # both stores
        """The start-up check is silent on a sound file."""
        add(store, "a.wav")
        store.check()

    def test_damaged_pages_are_a_clear_permanent_error(self, tmp_path: Path) -> None:
        """Scribbled pages after the header: the start-up check says corrupt, names the
        file, even where the pages a first query reads happen to parse."""
        db = tmp_path / "state.db"
        store = SqliteStore(db)
        for i in range(50):
            add(store, f"{i}.wav")
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        data = bytearray(db.read_bytes())
        page = int.from_bytes(data[16:18], "big") or 65536
        data[page:] = b"\xa5" * (len(data) - page)
        db.write_bytes(bytes(data))
        with pytest.raises(StoreError) as caught:
            SqliteStore(db).check()
        message = str(caught.value)
        assert "corrupt" in message or "not a database" in message
        assert str(db) in message
        assert not caught.value.transient


class TestStoreError:
    @pytest.mark.parametrize(
        ("code", "words", "transient"),
        [
            (13, "disk is full", True),
            (5, "locked", True),
            (11, "corrupt", False),
            (26, "corrupt", False),
            (10, "cannot read or write", True),
            (1, "state database", False),
        ],
    )
    def test_message_by_sqlite_error_code(self, code: int, words: str, transient: bool) -> None:
        """Each family of sqlite errors gets its own cause and advice; extended codes too."""
        exc = sqlite3.OperationalError("some sqlite message")
        exc.sqlite_errorcode = code | (1 << 8)  # an extended code keeps its primary family
        error = store_module.store_error(Path("/var/lib/ingestd/state.db"), exc)
        assert words in str(error)
        assert "/var/lib/ingestd/state.db" in str(error) and "some sqlite message" in str(error)
        assert error.transient is transient


def stored_bytes(place: Path | str) -> bytes:
    """Everything the store wrote: the SQLite files, or every PostgreSQL row as text."""
    if isinstance(place, Path):
        return place.read_bytes() + Path(f"{place}-wal").read_bytes()
    with psycopg.connect(place) as conn:
        rows = conn.execute(
            "SELECT row_to_json(t)::text FROM recordings t UNION ALL SELECT row_to_json(t)::text"
            " FROM events t UNION ALL SELECT row_to_json(t)::text FROM deliveries t"
        ).fetchall()
    return "".join(r[0] for r in rows).encode()


def test_errors_and_facts_are_stored_with_secrets_masked(store_place, store: Store) -> None:
    """Whoever writes an error (intake, pipeline, sinks), a known secret never lands on disk."""
    secret = "s3cr3t-planted-for-the-store-test"
    logging_module.register_secrets([secret])
    row = add(store, "a.wav")
    store.transition(
        row.id, State.FAILED, error=f"sink said {secret}", facts={"error": f"x {secret}"}
    )
    assert store.get(row.id).error.startswith("sink said ")
    store.transition(row.id, State.DELIVERING, deliveries=["slack"])
    store.mark_delivery(row.id, "slack", state="failed", error=f"POST {secret} failed")
    assert secret.encode() not in stored_bytes(store_place)
    [delivery] = store.deliveries(row.id)
    assert delivery["error"].startswith("POST ") and secret not in delivery["error"]
