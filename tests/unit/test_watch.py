"""Watching: names, ignore patterns, and what the native observer would lose silently."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, InotifyFD

from ingestd.config import WatchConfig
from ingestd.configload import DEFAULT_IGNORE
from ingestd.store import SqliteStore
from ingestd.watch import Watcher, _Forwarder, escape_fs, matches, relpath, scan, unescape_fs


def watch_of(root: Path, ignore: tuple[str, ...] = (), **options: Any) -> WatchConfig:
    """A watch as the config loader builds it: the default ignores, then `ignore`."""
    return WatchConfig(name="w", path=root, ignore=DEFAULT_IGNORE + ignore, **options)


class TestNames:
    def test_valid_names_are_kept_as_they_are(self) -> None:
        """Unicode, spaces and backslashes in a valid name are neither escaped nor unescaped."""
        for name in ("café – réunion 会议.wav", "a\\b.wav", "a\\x41.wav", "100%.wav"):
            assert escape_fs(name) == name
            assert unescape_fs(name) == name

    def test_non_utf8_bytes_are_shown_and_restored(self) -> None:
        """Bytes that are not UTF-8 read ``\\xNN`` (valid Unicode) and come back exactly."""
        for raw in (b"r\xe9union-\xff.wav", b"a\\b\xe9.wav", b"\\xe9\xff", b"sub/\x80/x.wav"):
            name = os.fsdecode(raw)
            shown = escape_fs(name)
            shown.encode("utf-8")  # storable in SQLite, JSON and HTTP
            assert unescape_fs(shown) == name
        assert escape_fs(os.fsdecode(b"r\xe9union-\xff.wav")) == "r\\xe9union-\\xff.wav"

    def test_relpath_of_a_non_utf8_file_leads_back_to_it(self, tmp_path: Path) -> None:
        """The stored relative path of an oddly named file opens that file again."""
        watch = watch_of(tmp_path)
        raw = os.fsencode(tmp_path) + b"/sub/r\xe9union.wav"
        os.makedirs(os.path.dirname(raw))
        with open(raw, "wb") as handle:
            handle.write(b"x")
        path = Path(os.fsdecode(raw))
        rel = relpath(watch, path)
        assert rel == "sub/r\\xe9union.wav"
        assert (tmp_path / unescape_fs(rel)).read_bytes() == b"x"

    def test_store_keeps_a_non_utf8_name_and_its_upload_path(self, tmp_path: Path) -> None:
        """The state database takes the escaped name; rows lead back to the real file."""
        watch = watch_of(tmp_path)
        path = Path(os.fsdecode(os.fsencode(tmp_path) + b"/r\xe9union-\xff.wav"))
        store = SqliteStore(tmp_path / "state.db")
        try:
            row = store.insert(
                watch="w",
                watch_root=str(tmp_path),
                relpath=relpath(watch, path),
                size_bytes=1,
                mtime=1.0,
                sha256="x",
            )
            row = store.update(row.id, upload_path=str(path))
            assert store.known_files("w") == {"r\\xe9union-\\xff.wav": (1, 1.0)}
        finally:
            store.close()
        assert row.path == path
        assert row.upload_path == str(path)


class TestIgnore:
    @pytest.mark.parametrize(
        "rel",
        [
            ".hidden.wav",
            "call.wav.part",
            ".stversions/call~20240101-120000.wav",
            ".sync/archive.mp3",
            "team/.Trash-1000/files/old.wav",
            "downloads.tmp/call.wav",
        ],
    )
    def test_temporary_and_hidden_paths_are_ignored(self, tmp_path: Path, rel: str) -> None:
        """A pattern matching the name or any folder on the way ignores the file."""
        assert not matches(watch_of(tmp_path), rel)

    @pytest.mark.parametrize("rel", ["call.wav", "team/2024/call.WAV", "a.b/call.mp3"])
    def test_ordinary_paths_match(self, tmp_path: Path, rel: str) -> None:
        """Media names in ordinary folders are included, the patterns ignoring case."""
        assert matches(watch_of(tmp_path), rel)

    def test_pattern_with_a_slash_matches_the_relative_path(self, tmp_path: Path) -> None:
        """``archive/*`` ignores what is inside ``archive`` at the root, nothing else."""
        watch = watch_of(tmp_path, ignore=("archive/*",))
        assert not matches(watch, "archive/old.wav")
        assert matches(watch, "team/archive/old.wav")

    def test_scan_skips_ignored_folders(self, tmp_path: Path) -> None:
        """A rescan never enters hidden or sync-tool folders, nor reports a tree below one."""
        for rel in ("a.wav", "team/b.wav", ".stversions/c~1.wav", ".sync/d.mp3", "e.wav.part"):
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_bytes(b"x")
        watch = watch_of(tmp_path)
        found = sorted(relpath(watch, path) for path, _, _ in scan(watch))
        assert found == ["a.wav", "team/b.wav"]
        assert list(scan(watch, below=tmp_path / ".stversions")) == []
        assert [p.name for p, _, _ in scan(watch, below=tmp_path / "team")] == ["b.wav"]


def run_watcher(
    root: Path, body: Callable[[Watcher, list[str]], Any], **options: Any
) -> tuple[Watcher, list[str], list[dict[str, Any]]]:
    """Start a native Watcher on `root` in a fresh loop, run `body(watcher, rescans)` (a
    coroutine function), stop it; return it, the watches it asked to rescan, and the log
    events."""
    rescans: list[str] = []

    async def main() -> Watcher:
        watch = watch_of(root, **options)
        watcher = Watcher(watch, lambda w, p: None, lambda w: rescans.append(w.name))
        watcher.start(asyncio.get_running_loop())
        try:
            await body(watcher, rescans)
        finally:
            watcher.stop()
        return watcher

    with capture_logs() as events:
        watcher = asyncio.run(main())
    return watcher, rescans, events


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def no_watch_for(predicate: Callable[[bytes], bool], monkeypatch: pytest.MonkeyPatch) -> None:
    """Make inotify_add_watch fail with ENOSPC (the watch limit) for matching folders."""
    original = InotifyFD.add_callback

    def add_callback(self: InotifyFD, path: bytes, *args: Any) -> Any:
        if predicate(path):
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        return original(self, path, *args)

    monkeypatch.setattr(InotifyFD, "add_callback", add_callback)


class TestNativeObserver:
    def test_events_name_new_files_at_the_root_and_in_new_folders(self, tmp_path: Path) -> None:
        """A file written at the root, and one in a folder made after the start, are
        nominated through inotify events (no rescan involved); watchdog's bookkeeping of its
        watches stays its own (7.1.1 changed it and an override lost every event)."""
        nominated: list[str] = []

        async def main() -> str:
            watch = watch_of(tmp_path)
            watcher = Watcher(watch, lambda w, p: nominated.append(relpath(w, p)), lambda w: None)
            watcher.start(asyncio.get_running_loop())
            try:
                (tmp_path / "top.wav").write_bytes(b"x")
                await until(lambda: "top.wav" in nominated)
                (tmp_path / "team" / "deep").mkdir(parents=True)
                (tmp_path / "team" / "deep" / "part1.wav").write_bytes(b"x")
                await until(lambda: "team/deep/part1.wav" in nominated)
                return watcher.mode
            finally:
                watcher.stop()

        assert asyncio.run(main()) == "native"

    def test_reading_a_recording_sends_no_events(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The daemon reads every recording (hash, header, upload): inotify is not asked for
        "opened" and "closed without writing", so those reads cost no watchdog traffic."""
        seen: list[tuple[str, str]] = []
        forward = _Forwarder.on_any_event

        def on_any_event(self: _Forwarder, event: Any) -> None:
            seen.append((event.event_type, Path(os.fsdecode(event.src_path)).name))
            forward(self, event)

        monkeypatch.setattr(_Forwarder, "on_any_event", on_any_event)
        (tmp_path / "call.wav").write_bytes(b"x" * 100)

        async def body(watcher: Watcher, rescans: list[str]) -> None:
            for _ in range(5):
                (tmp_path / "call.wav").read_bytes()
            (tmp_path / "marker.wav").write_bytes(b"x")  # its events come after the reads'
            await until(lambda: ("closed", "marker.wav") in seen)

        run_watcher(tmp_path, body)
        assert [e for e in seen if e[1] == "call.wav"] == []
        assert ("created", "marker.wav") in seen

    def test_queue_overflow_asks_for_one_rescan_and_says_so(self, tmp_path: Path) -> None:
        """Overflows in a burst lead to one logged rescan of the watch."""
        overflow = InotifyEvent(-1, InotifyConstants.IN_Q_OVERFLOW, 0, b"")

        async def body(watcher: Watcher, rescans: list[str]) -> None:
            for _ in range(3):
                watcher.observer._inotify_fd.handle_event(overflow)  # type: ignore[union-attr]
            await until(lambda: bool(rescans))
            await asyncio.sleep(0.7)  # no second rescan for the same burst

        watcher, rescans, events = run_watcher(tmp_path, body)
        assert rescans == ["w"]
        [said] = [e for e in events if e["event"] == "watch_events_overflowed"]
        assert said["overflows"] == 3 and "max_queued_events" in said["action"]
        assert watcher.mode == "native"

    def test_watch_limit_at_start_switches_to_polling(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Sub-folders left unwatched at start make the watch poll, and it is said."""
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
        no_watch_for(lambda path: path.endswith(b"/b"), monkeypatch)

        async def body(watcher: Watcher, rescans: list[str]) -> None:
            assert watcher.mode == "polling" and watcher.alive()

        _, rescans, events = run_watcher(tmp_path, body)
        assert rescans == [], "the daemon's startup rescan covers it"
        [said] = [e for e in events if e["event"] == "watch_limit_reached"]
        assert said["folder"] == "b" and "max_user_watches" in said["action"]
        started = [e for e in events if e["event"] == "watch_started"]
        assert [e["mode"] for e in started] == ["polling"]

    def test_no_watch_for_the_root_polls_from_the_start(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No watch even for the watch's own folder: it polls, said once, and leaks nothing."""
        no_watch_for(lambda path: True, monkeypatch)
        threads = threading.active_count()

        async def body(watcher: Watcher, rescans: list[str]) -> None:
            await asyncio.sleep(0.1)  # the limit is reported from the loop too: no effect
            assert watcher.mode == "polling" and watcher.alive()

        _, rescans, events = run_watcher(tmp_path, body)
        assert rescans == []
        [failed] = [e for e in events if e["event"] == "watch_native_failed"]
        assert "max_user_watches" in failed["action"]
        assert not [e for e in events if e["event"] == "watch_limit_reached"]
        assert threading.active_count() == threads, "the failed observer's threads are gone"

    def test_watch_limit_on_a_new_folder_switches_to_polling_and_rescans(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A folder created later that cannot be watched: poll from then on, rescan now."""
        no_watch_for(lambda path: path.endswith(b"/late"), monkeypatch)

        async def body(watcher: Watcher, rescans: list[str]) -> None:
            assert watcher.mode == "native"
            (tmp_path / "late").mkdir()
            await until(lambda: watcher.mode == "polling")
            assert watcher.alive()

        _, rescans, events = run_watcher(tmp_path, body, poll_interval_seconds=0.2)
        assert rescans == ["w"]
        assert [e["folder"] for e in events if e["event"] == "watch_limit_reached"] == ["late"]
