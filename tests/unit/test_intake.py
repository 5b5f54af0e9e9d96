"""Intake when the state database fails: loud, paused, and nothing lost."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ingestd import hookimpl
from ingestd import intake as intake_module
from ingestd.config import WatchConfig
from ingestd.errors import StoreError
from ingestd.intake import Intake
from ingestd.lifecycle import State
from ingestd.plugins import load_plugins
from ingestd.store import SqliteStore, Store
from ingestd.store.sqlite import store_error


class FullDisk:
    """Makes `store.insert` fail as on a full disk (SQLITE_FULL) while `full` is set."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = True
        real = store.insert

        def insert(**kwargs: Any):
            if self.full:
                exc = sqlite3.OperationalError("database or disk is full")
                exc.sqlite_errorcode = 13
                raise store_error(store.path, exc)
            return real(**kwargs)

        monkeypatch.setattr(store, "insert", insert)


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(intake_module, "STORE_RETRY_INITIAL_SECONDS", 0.1)
    store = SqliteStore(tmp_path / "state.db")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    watch = WatchConfig(name="inbox", path=inbox)
    renominated: list[Path] = []
    intake = Intake(
        store,
        load_plugins(entry_points_enabled=False),  # none: no conversation keys
        lambda row: row,
        on_new=lambda: None,
        renominate=lambda w, p: renominated.append(p),
    )
    return store, intake, watch, renominated


def drop(watch: WatchConfig, name: str, data: bytes) -> Path:
    path = watch.path / name
    path.write_bytes(data)
    return path


class TestStoreFailures:
    def test_full_store_pauses_intake_loudly_then_records_the_file(
        self, setup, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failed insert logs one error, holds the file (not known), and hands it back to
        settling after the back-off; once the store can write, it is recorded once."""
        store, intake, watch, renominated = setup
        path = drop(watch, "a.wav", b"a" * 100)

        async def scenario() -> list[dict[str, Any]]:
            disk = FullDisk(store, monkeypatch)
            with capture_logs() as logs:
                await intake.settled(watch, path)  # must not raise
                assert intake.paused
                assert not intake.is_known(watch, path, 100, path.stat().st_mtime)
                await intake.settled(watch, path)  # while paused: held, not tried
                disk.full = False
                await asyncio.sleep(0.3)
                assert renominated == [path]
                await intake.settled(watch, path)
            return logs

        logs = asyncio.run(scenario())
        errors = [e for e in logs if e["log_level"] == "error"]
        assert [e["event"] for e in errors] == ["intake_paused"]
        assert "disk is full" in errors[0]["error"]
        assert any(e["event"] == "intake_resumed" for e in logs)
        rows = [r for r in store.all() if r.relpath == "a.wav"]
        assert [r.state for r in rows] == [State.DISCOVERED]
        assert intake.is_known(watch, path, 100, path.stat().st_mtime)

    def test_a_bug_is_logged_and_the_file_stays_unknown(
        self, setup, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An unexpected exception never escapes the fire-and-forget task; a rescan retries."""
        store, intake, watch, _ = setup
        path = drop(watch, "b.wav", b"b" * 50)

        def broken(**_: Any) -> None:
            raise RuntimeError("boom")

        monkeypatch.setattr(store, "insert", broken)
        with capture_logs() as logs:
            asyncio.run(intake.settled(watch, path))
        assert [e["event"] for e in logs if e["log_level"] == "error"] == ["intake_crashed"]
        assert not intake.is_known(watch, path, 50, path.stat().st_mtime)
        assert not intake.paused

    def test_unreadable_file_retried_after_a_failed_commit_is_recorded_once(
        self, setup, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Inserted, then the rejection could not be committed: the retry finishes the same
        row instead of adding a second one."""
        store, intake, watch, _ = setup
        path = drop(watch, "locked.wav", b"c" * 30)
        stat = path.stat()
        real_transition = store.transition
        calls = {"n": 0}

        def flaky_transition(*args: Any, **kwargs: Any):
            calls["n"] += 1
            if calls["n"] == 1:
                raise StoreError("disk full", transient=True)
            return real_transition(*args, **kwargs)

        monkeypatch.setattr(store, "transition", flaky_transition)
        with pytest.raises(StoreError, match="disk full"):
            intake._record_unreadable(watch, "locked.wav", stat)
        intake._record_unreadable(watch, "locked.wav", stat)
        rows = [r for r in store.all() if r.relpath == "locked.wav"]
        assert [r.state for r in rows] == [State.REJECTED]


class KeyByFolder:
    """A mapping plugin: every file of a folder is one conversation. Notes what the store
    held when it was asked, to show that the row is not written before its key."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.rows_when_asked: list[int] = []

    @hookimpl
    def ingestd_conversation_key(self, recording: Any, history: Any) -> str:
        self.rows_when_asked.append(len(self.store.all()))
        return f"folder:{Path(recording.relpath).parent}"


class TestRecordedWithItsKey:
    """Issue 17.3: the recording and its conversation key are one commit."""

    def keyed(self, tmp_path: Path, store: Store) -> tuple[Intake, WatchConfig, KeyByFolder]:
        inbox = tmp_path / "inbox"
        (inbox / "call").mkdir(parents=True)
        plugins = load_plugins(entry_points_enabled=False)
        mapping = KeyByFolder(store)
        plugins.manager.register(mapping, name="mapping")
        intake = Intake(
            store, plugins, lambda row: row, on_new=lambda: None, renominate=lambda w, p: None
        )
        return intake, WatchConfig(name="inbox", path=inbox), mapping

    def test_a_row_is_never_stored_without_its_key(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A store that fails after the insert (a full disk) cannot leave a keyless row: no
        write follows the insert, and the hook is asked before anything is written."""
        store = SqliteStore(tmp_path / "state.db")
        intake, watch, mapping = self.keyed(tmp_path, store)

        def no_more_writes(*_: Any, **__: Any) -> None:
            raise StoreError("disk full", transient=True)

        monkeypatch.setattr(store, "update", no_more_writes)
        monkeypatch.setattr(store, "transition", no_more_writes)
        path = drop(watch, "call/part1.wav", b"a" * 100)
        asyncio.run(intake.settled(watch, path))
        assert [(r.relpath, r.conversation_key) for r in store.all()] == [
            ("call/part1.wav", "folder:call")
        ]
        assert mapping.rows_when_asked == [0]

    def test_the_ordering_gate_sees_the_earlier_part_once_recorded(self, tmp_path: Path) -> None:
        """A later part already queued waits for an earlier part from the moment its row
        exists."""
        store = SqliteStore(tmp_path / "state.db")
        intake, watch, _ = self.keyed(tmp_path, store)
        later = drop(watch, "call/part2.wav", b"b" * 100)
        asyncio.run(intake.settled(watch, later))
        (row,) = store.all()
        for state in (State.PROBED, State.TRANSCODED, State.QUEUED):
            row = store.transition(row.id, state)
        assert not store.earlier_part_pending(row)
        earlier = drop(watch, "call/part1.wav", b"a" * 100)
        asyncio.run(intake.settled(watch, earlier))
        assert store.earlier_part_pending(store.get(row.id))


class TestRecordingOrder:
    def test_a_mapped_watchs_files_are_recorded_in_append_order_whatever_hashes_first(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Two files handed over together: the earlier one (by mtime) hashes slowly, yet is
        recorded first, so a key decided from the files before it (ttl) sees it. A watch
        without mapping records each file as soon as it is fingerprinted."""
        real = intake_module.sha256_file

        def slow_for_early(path: Path) -> str:
            if path.name == "c.wav":
                time.sleep(0.5)
            return real(path)

        monkeypatch.setattr(intake_module, "sha256_file", slow_for_early)

        def recorded_order(conversation: dict[str, Any], folder: str) -> list[str]:
            store = SqliteStore(tmp_path / f"{folder}.db")
            inbox = tmp_path / folder
            inbox.mkdir()
            watch = WatchConfig(name=folder, path=inbox, conversation=conversation)
            intake = Intake(
                store,
                load_plugins(entry_points_enabled=False),
                lambda row: row,
                on_new=lambda: None,
                renominate=lambda w, p: None,
            )
            early = drop(watch, "c.wav", b"c" * 100)
            late = drop(watch, "b.wav", b"b" * 100)
            os.utime(early, (1000.0, 1000.0))
            os.utime(late, (1400.0, 1400.0))

            async def both() -> None:
                await asyncio.gather(intake.settled(watch, late), intake.settled(watch, early))

            asyncio.run(both())
            rows = sorted(store.all(), key=lambda row: row.id)
            store.close()
            return [row.relpath for row in rows]

        assert recorded_order({"by": "ttl", "order": "mtime"}, "mapped") == ["c.wav", "b.wav"]
        assert recorded_order({}, "plain") == ["b.wav", "c.wav"]
