"""What intake tells the dispatcher about files it has not recorded yet, so later parts of
a conversation wait for them (`Intake.unrecorded`, `first_sort_key`), and which of those files
hold which part (`OrderingHold`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ingestd.config import WatchConfig
from ingestd.errors import PluginError
from ingestd.intake import Intake, first_sort_key, sort_key
from ingestd.ordering import OrderingHold
from ingestd.plugins import load_plugins
from ingestd.store import RecordingRow, Store


@pytest.fixture
def setup(tmp_path: Path, store: Store):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    watch = WatchConfig(name="inbox", path=inbox)
    wakeups: list[None] = []
    intake = Intake(
        store,
        load_plugins(entry_points_enabled=False),  # none: no conversation keys
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


class Answers:
    """A stand-in for the plugins: one fixed answer to the could-match hook, or a failure."""

    def __init__(self, answer: bool | Exception | None) -> None:
        self.answer = answer
        self.asked: list[str] = []

    def call_first(self, hook_name: str, **kwargs: Any) -> tuple[Any, str]:
        self.asked.append(kwargs["relpath"])
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer, "stand-in"


class TestOrderingHold:
    @staticmethod
    def queued(store: Store, watch: WatchConfig, rel: str, key: str, mtime: float) -> RecordingRow:
        row = store.insert(
            watch=watch.name,
            watch_root=str(watch.path),
            relpath=rel,
            size_bytes=1,
            mtime=mtime,
            sha256=rel,
            sort_key=sort_key(watch, rel, mtime),
        )
        return store.update(row.id, conversation_key=key)

    @staticmethod
    def hold(watch: WatchConfig, plugins: Any, settling: list[Path], unrecorded=()) -> OrderingHold:
        return OrderingHold(
            {watch.name: watch}, plugins, lambda name: settling, lambda name: list(unrecorded)
        )

    def test_folder_strategy_holds_only_behind_its_own_folder(
        self, tmp_path: Path, store: Store
    ) -> None:
        """With the bundled mapping plugin: a settling a/part1 holds a/part2, not b/part2."""
        watch = WatchConfig(name="w", path=tmp_path, conversation={"by": "folder"})
        plugins = load_plugins((), ())
        a2 = self.queued(store, watch, "a/part2.wav", "folder:w:a", 1.0)
        b2 = self.queued(store, watch, "b/part2.wav", "folder:w:b", 1.0)
        hold = self.hold(watch, plugins, [tmp_path / "a" / "part1.wav"])
        assert hold.holds(a2)
        assert not hold.holds(b2)

    def test_cannot_tell_holds_every_later_part_of_the_watch(
        self, tmp_path: Path, store: Store
    ) -> None:
        """No answer (None) keeps the watch-wide hold; only files sorting before are asked."""
        watch = WatchConfig(name="w", path=tmp_path)
        plugins = Answers(None)
        row = self.queued(store, watch, "m/part2.wav", "sidecar:w:x", 1.0)
        assert self.hold(watch, plugins, [tmp_path / "a.wav"]).holds(row)
        assert not self.hold(watch, plugins, [tmp_path / "z.wav"]).holds(row)
        assert plugins.asked == ["a.wav"]
        assert not self.hold(watch, Answers(False), [tmp_path / "a.wav"]).holds(row)

    def test_a_failing_hook_holds_and_is_reported_once(self, tmp_path: Path, store: Store) -> None:
        """A plugin that raises cannot vouch for anything: the part waits; one warning."""
        watch = WatchConfig(name="w", path=tmp_path)
        row = self.queued(store, watch, "m/part2.wav", "k", 1.0)
        plugins = Answers(PluginError("'buggy' raised in the hook"))
        reported: set[str] = set()
        for _ in range(2):
            hold = OrderingHold(
                {"w": watch}, plugins, lambda n: [tmp_path / "a.wav"], lambda n: [], reported
            )
            assert hold.holds(row)
        assert reported == {"'buggy' raised in the hook"}

    def test_mtime_order_holds_behind_a_settling_file_whatever_its_mtime(
        self, tmp_path: Path, store: Store
    ) -> None:
        """A file still settling has no final mtime yet (cp -p sets it last): it holds a
        part it could share a key with even if its current mtime is newer; a settled file
        being fingerprinted holds only if its mtime sorts before."""
        watch = WatchConfig(name="w", path=tmp_path, conversation={"order": "mtime"})
        row = self.queued(store, watch, "m/late.wav", "k", 100.0)
        copying = tmp_path / "m" / "early.wav"
        assert self.hold(watch, Answers(True), [copying]).holds(row)
        assert not self.hold(watch, Answers(True), [], [(copying, 200.0)]).holds(row)
        assert self.hold(watch, Answers(True), [], [(copying, 50.0)]).holds(row)
