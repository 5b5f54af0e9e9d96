"""What intake tells the dispatcher about files it has not recorded yet, so later parts of
a conversation wait for them (`Intake.unrecorded`, `first_sort_key`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ingestd.config import WatchConfig
from ingestd.intake import Intake, first_sort_key, sort_key
from ingestd.store import Store


class NoPlugins:
    """No conversation-key answer: every recording starts a conversation of its own."""

    def call_first(self, hook_name: str, **kwargs: Any) -> tuple[None, None]:
        return None, None


@pytest.fixture
def setup(tmp_path: Path):
    store = Store(tmp_path / "state.db")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    watch = WatchConfig(name="inbox", path=inbox)
    wakeups: list[None] = []
    intake = Intake(
        store,
        NoPlugins(),  # type: ignore[arg-type]
        lambda row: row,
        on_new=lambda: wakeups.append(None),
        renominate=lambda w, p: None,
    )
    return store, intake, watch, wakeups


class TestFirstSortKey:
    def test_name_order_is_natural_and_matches_the_stored_key(self, tmp_path: Path) -> None:
        """part2 sorts before part10, and its key is the one a recorded part2 would get."""
        watch = WatchConfig(name="w", path=tmp_path)
        files = [(tmp_path / "m" / "part10.wav", 5.0), (tmp_path / "m" / "part2.wav", 9.0)]
        assert first_sort_key(watch, files) == sort_key(watch, "m/part2.wav", 9.0)

    def test_mtime_order_puts_a_file_not_looked_at_yet_first(self, tmp_path: Path) -> None:
        """Under ``order: mtime`` the lowest mtime wins, and an unknown one is lower still."""
        watch = WatchConfig(name="w", path=tmp_path, conversation={"order": "mtime"})
        a, b = tmp_path / "a.wav", tmp_path / "b.wav"
        assert first_sort_key(watch, [(a, 20.0), (b, 10.0)]) == sort_key(watch, "b.wav", 10.0)
        assert first_sort_key(watch, [(a, 20.0), (b, None)]) == ""
        assert first_sort_key(watch, []) is None


class TestUnrecorded:
    def test_a_settled_file_is_unrecorded_until_its_row_is_committed(self, setup) -> None:
        """Counted from the call on (before the task runs), released once recorded, and the
        dispatcher is woken."""
        store, intake, watch, wakeups = setup
        path = watch.path / "a.wav"
        path.write_bytes(b"a" * 100)
        recording = intake.settled(watch, path)
        assert intake.unrecorded("inbox") == [(path, None)]
        assert intake.unrecorded("other") == []
        asyncio.run(recording)
        assert intake.unrecorded("inbox") == []
        assert [r.relpath for r in store.all()] == ["a.wav"]
        assert wakeups

    def test_a_file_gone_before_it_was_hashed_is_released(self, setup) -> None:
        """Nothing recorded, nothing left to wait for, and the dispatcher is woken."""
        store, intake, watch, wakeups = setup
        path = watch.path / "gone.wav"
        path.write_bytes(b"g" * 10)
        recording = intake.settled(watch, path)
        path.unlink()
        asyncio.run(recording)
        assert intake.unrecorded("inbox") == []
        assert store.all() == []
        assert wakeups

    def test_a_known_file_settling_again_is_released(self, setup) -> None:
        """Touched without a change of size or mtime: not recorded twice, not held."""
        store, intake, watch, _ = setup
        path = watch.path / "same.wav"
        path.write_bytes(b"s" * 10)
        asyncio.run(intake.settled(watch, path))
        asyncio.run(intake.settled(watch, path))
        assert intake.unrecorded("inbox") == []
        assert len(store.all()) == 1
