"""Noticing files: watchdog events as a hint, rescans as the source of truth.

The observer thread only forwards paths to the event loop (`call_soon_threadsafe`); all
decisions happen there. A startup rescan picks up files dropped while the daemon was down,
and a periodic one catches what events missed (network shares). Native events fail in
three ways, and each is said in the log and covered:

- no inotify instance, or no watch left for the watch's own folder: it polls from the start;
- no watch left for a sub-folder (``fs.inotify.max_user_watches``), at start or when one is
  created later: watchdog skips such a folder silently, so we notice, switch the whole
  watch to polling and rescan it;
- the kernel's event queue overflowed (``fs.inotify.max_queued_events``): events were lost,
  so the watch is rescanned at once.

Ignore patterns apply to every part of the path below the watch root, so everything inside
a hidden or sync-tool folder (``.stversions/``, ``.sync/``) is ignored like a hidden file.
A file left out is said once (`IgnoredFiles`: ``file_ignored`` at info, with the reason:
no pattern matches, a temporary or hidden name, a hidden or ignored folder), so a ``.webm``
dropped into a watch of ``*.wav`` files does not vanish without a word.
A name whose bytes are not UTF-8 is stored, logged and sent escaped (`escape_fs`); the store
turns it back into the real path (`unescape_fs`).
"""

from __future__ import annotations

import asyncio
import errno
import fnmatch
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver
from watchdog.utils import UnsupportedLibcError

from ingestd.config import WatchConfig

log = structlog.get_logger()

OVERFLOW_RESCAN_DELAY_SECONDS = 0.5
"""Overflows in a burst share one rescan, started this long after the first."""


# -- names ------------------------------------------------------------------------------

_BYTE_ESCAPE = re.compile(r"\\x[89a-f][0-9a-f]")
_ESCAPES = re.compile(r"\\(\\|x[89a-f][0-9a-f])")


def relpath(watch: WatchConfig, path: Path) -> str:
    """`path` relative to the watch root, as it is stored, logged and sent (`escape_fs`)."""
    return escape_fs(path.relative_to(watch.path).as_posix())


def escape_fs(text: str) -> str:
    """A file system path or name as valid Unicode, for SQLite, JSON and HTTP.

    A name whose bytes are not UTF-8 (an old Windows share) reaches Python with each such
    byte as a surrogate (PEP 383), which none of them accept. In such a text each of those
    bytes reads ``\\xNN`` and a backslash ``\\\\``; any other text is returned as it is.
    `unescape_fs` reverses it.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(_escaped(char) for char in text)
    return text


def _escaped(char: str) -> str:
    if "\udc80" <= char <= "\udcff":
        return f"\\x{ord(char) - 0xDC00:02x}"
    return "\\\\" if char == "\\" else char


def unescape_fs(text: str) -> str:
    """The path on disk behind an `escape_fs` text (a `relpath`, a stored path).

    Only a text holding a byte escape (``\\x80`` to ``\\xff``) is unescaped, so a valid
    name is never changed unless it literally contains such a sequence.
    """
    if not _BYTE_ESCAPE.search(text):
        return text
    return _ESCAPES.sub(
        lambda m: "\\" if m.group(1) == "\\" else chr(0xDC00 + int(m.group(1)[1:], 16)), text
    )


def ignored(watch: WatchConfig, rel: str) -> bool:
    """True when the file or folder `rel` (relative to the watch root, ``/``-separated) or
    any folder above it matches an ignore pattern; a pattern with a ``/`` is matched
    against the whole relative path instead."""
    parts = rel.split("/")
    for pattern in watch.ignore:
        if "/" in pattern:
            if fnmatch.fnmatch(rel, pattern):
                return True
        elif any(fnmatch.fnmatch(part, pattern) for part in parts):
            return True
    return False


def matches(watch: WatchConfig, rel: str) -> bool:
    """True for a file (path relative to the watch root) the watch includes and does not
    ignore (temporary files, dotfiles, anything in a hidden folder)."""
    return ignore_reason(watch, rel) is None


_SIDECAR_SUFFIXES = (".ingestd.yaml", ".ingestd.yml", ".ingestd.json")


def ignore_reason(watch: WatchConfig, rel: str) -> str | None:
    """Why the file `rel` (relative to the watch root) is not ingested, or None if it is."""
    parts = rel.split("/")
    for pattern in watch.ignore:
        if "/" in pattern:
            if fnmatch.fnmatch(rel, pattern):
                return f"its path matches the ignore pattern {pattern!r}"
            continue
        for depth, part in enumerate(parts):
            if not fnmatch.fnmatch(part, pattern):
                continue
            if depth < len(parts) - 1:
                folder = "/".join(parts[: depth + 1])
                kind = "hidden folder" if pattern == ".*" else "ignored folder"
                return f"inside the {kind} {folder!r} (ignore pattern {pattern!r})"
            if pattern == ".*":
                return "a hidden file (its name starts with a dot)"
            return f"a temporary name (ignore pattern {pattern!r})"
    name = parts[-1].lower()
    if any(fnmatch.fnmatch(name, pattern.lower()) for pattern in watch.patterns):
        return None
    return f"matches none of the watch's patterns ({', '.join(watch.patterns)})"


class IgnoredFiles:
    """Says once per file, at info, why it is left out (``file_ignored``); sidecar files,
    read with their recording, are not news. Remembers at most `LIMIT` files, then starts
    over (a file may then be told about once more)."""

    LIMIT = 100_000

    def __init__(self) -> None:
        self._told: set[tuple[str, str]] = set()

    def note(self, watch: WatchConfig, rel: str, reason: str) -> None:
        if rel.lower().endswith(_SIDECAR_SUFFIXES):
            return
        key = (watch.name, rel)
        if key in self._told:
            return
        if len(self._told) >= self.LIMIT:
            self._told.clear()
        self._told.add(key)
        log.info("file_ignored", watch=watch.name, path=escape_fs(rel), reason=reason)


def scan(
    watch: WatchConfig,
    below: Path | None = None,
    on_ignored: Callable[[str, str], None] | None = None,
) -> Iterator[tuple[Path, int, float]]:
    """Every matching regular file under the watch (or only `below`, a folder in it):
    (path, size, mtime). Ignored folders are not entered, and symlinked folders are never
    followed, so a symlink loop cannot trap it. `on_ignored(rel, reason)` hears of each file
    left out, and of each ignored folder (its path ending in ``/``)."""
    top = below or watch.path
    try:
        prefix = top.relative_to(watch.path).as_posix()
    except ValueError:
        return
    if prefix == ".":
        prefix = ""
    elif ignored(watch, prefix):
        return
    stack = [(top, prefix)]
    while stack:
        folder, rel_folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            log.warning(
                "scan_folder_unreadable",
                watch=watch.name,
                folder=relpath(watch, folder),
                error=exc.strerror,
            )
            continue
        for entry in entries:
            rel = f"{rel_folder}/{entry.name}" if rel_folder else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not watch.recursive:
                        continue
                    if not ignored(watch, rel):
                        stack.append((Path(entry.path), rel))
                    elif on_ignored is not None:
                        reason = ignore_reason(watch, f"{rel}/-") or "ignored"
                        on_ignored(f"{rel}/", reason)
                elif entry.is_file():
                    reason = ignore_reason(watch, rel)
                    if reason is None:
                        stat = entry.stat()
                        yield Path(entry.path), stat.st_size, stat.st_mtime
                    elif on_ignored is not None:
                        on_ignored(rel, reason)
            except OSError:
                continue


# -- native events, with what watchdog would absorb silently ----------------------------


def _nothing(*_: Any) -> None:
    return None


try:
    from watchdog.observers.inotify import InotifyEmitter, InotifyObserver, InotifyWatchGroup

    # The hooks below use these (watchdog 7.1). Older watchdogs lack the overflow hook: an
    # overflow is then dropped silently (only the periodic rescan covers it).
    _HOOKS = hasattr(InotifyWatchGroup, "on_queue_overflow")
except (ImportError, OSError, UnsupportedLibcError):  # not Linux: watchdog's observer as is
    _HOOKS = False

if _HOOKS:

    class _ReportingFD:
        """watchdog's shared inotify instance as one watch group sees it: a folder that
        cannot be watched is reported before watchdog handles the error its own way
        (raising for the watch's own folder, skipping a sub-folder with at most a log
        line). Wrapping the instance, not overriding watchdog's private `_add_callback`,
        keeps its bookkeeping of watches (which changed in 7.1.1) its own."""

        def __init__(self, fd: Any, on_unwatched: Callable[[bytes, OSError], None]) -> None:
            self._fd = fd
            self._on_unwatched = on_unwatched

        def add_callback(self, path: bytes, *args: Any) -> Any:
            try:
                return self._fd.add_callback(path, *args)
            except OSError as exc:
                self._on_unwatched(path, exc)
                raise

        def __getattr__(self, name: str) -> Any:
            return getattr(self._fd, name)

    @dataclass
    class _WatchGroup(InotifyWatchGroup):
        """watchdog's inotify watches for one tree, also telling about a kernel queue
        overflow (the inotify instance it is given tells about unwatched folders)."""

        on_overflow: Callable[[], None] = field(default=_nothing)

        def on_queue_overflow(self) -> None:
            super().on_queue_overflow()
            self.on_overflow()

    class _Emitter(InotifyEmitter):
        def __init__(
            self,
            *args: Any,
            on_unwatched: Callable[[bytes, OSError], None],
            on_overflow: Callable[[], None],
            **kwargs: Any,
        ) -> None:
            super().__init__(*args, **kwargs)
            self._on_unwatched = on_unwatched
            self._on_overflow = on_overflow

        def on_thread_start(self) -> None:  # watchdog's, with our watch group
            self._inotify = _WatchGroup(
                _ReportingFD(self._inotify_fd, self._on_unwatched),
                os.fsencode(self.watch.path),
                is_recursive=self.watch.is_recursive,
                event_mask=self.get_event_mask_from_filter(),
                follow_symlink=self.watch.follow_symlink,
                on_overflow=self._on_overflow,
            )

    class _NativeObserver(InotifyObserver):
        """The inotify observer, calling `on_unwatched(folder, error)` and `on_overflow()`
        from whichever thread notices."""

        def __init__(
            self,
            *,
            on_unwatched: Callable[[bytes, OSError], None],
            on_overflow: Callable[[], None],
        ) -> None:
            super().__init__()
            self._emitter_class = _Emitter
            self._emitter_kwargs = {
                **self._emitter_kwargs,
                "on_unwatched": on_unwatched,
                "on_overflow": on_overflow,
            }


def _limit_advice(exc: OSError) -> str:
    """What to raise, for an error of the native observer."""
    if exc.errno == errno.EMFILE:
        return "falling back to polling; raise fs.inotify.max_user_instances"
    return "falling back to polling; raise fs.inotify.max_user_watches"


# -- forwarding -------------------------------------------------------------------------


WATCHED_EVENTS = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirCreatedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]
"""The events an observer asks for: all but "opened" and "closed without writing". Those
two are what the daemon's own reads of a recording (hashing, its header, the upload) cause;
asked for, each read sends two events through watchdog's three threads to be dropped by
`_Forwarder`, at a handful of thread hand-offs each (inotify's mask leaves them out)."""


class _Forwarder(FileSystemEventHandler):
    """Runs in the observer thread: forwards candidate paths to the loop, nothing else."""

    def __init__(
        self,
        watch: WatchConfig,
        loop: asyncio.AbstractEventLoop,
        nominate: Callable[[WatchConfig, Path], None],
        on_ignored: Callable[[WatchConfig, str, str], None] | None = None,
    ) -> None:
        self.watch = watch
        self.loop = loop
        self.nominate = nominate
        self.on_ignored = on_ignored

    def _forward(self, raw: str | bytes) -> None:
        path = Path(os.fsdecode(raw))
        try:
            rel = path.relative_to(self.watch.path).as_posix()
        except ValueError:
            return
        reason = ignore_reason(self.watch, rel)
        if reason is None:
            self.loop.call_soon_threadsafe(self.nominate, self.watch, path)
        elif self.on_ignored is not None:
            self.loop.call_soon_threadsafe(self.on_ignored, self.watch, rel, reason)

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            if event.event_type in ("created", "moved"):  # a folder moved in: rescan it
                self.loop.call_soon_threadsafe(self.nominate_tree, event)
            return
        if event.event_type in ("created", "modified", "closed"):
            self._forward(event.src_path)
        elif event.event_type == "moved":
            self._forward(event.dest_path)

    def nominate_tree(self, event: FileSystemEvent) -> None:
        root = Path(os.fsdecode(event.dest_path or event.src_path))
        told = self.on_ignored
        for path, _, _ in scan(
            self.watch,
            below=root,
            on_ignored=(lambda rel, why: told(self.watch, rel, why)) if told else None,
        ):
            self.nominate(self.watch, path)


class Watcher:
    """One observer per watch; polling when configured or when native events fail.

    `rescan(watch)` is called, on the loop, when events were lost (a queue overflow, a
    switch to polling) and the watch must be scanned again now.
    """

    def __init__(
        self,
        watch: WatchConfig,
        nominate: Callable[[WatchConfig, Path], None],
        rescan: Callable[[WatchConfig], None],
        on_ignored: Callable[[WatchConfig, str, str], None] | None = None,
    ) -> None:
        self.watch = watch
        self.nominate = nominate
        self.rescan = rescan
        self.on_ignored = on_ignored
        self.observer: BaseObserver | None = None
        self.mode = "polling" if watch.polling else "native"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handler: _Forwarder | None = None
        self._unwatched: str | None = None  # the first folder the watch limit left out
        self._overflows = 0
        self._rescan_timer: asyncio.TimerHandle | None = None
        self.suspended = False  # its folder is gone; `start` again when it is back

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch the folder (which `ingestd.folders.prepare_folders` made sure exists); also
        after `suspend`, when the folder is back."""
        self._loop = loop
        self.suspended = False
        self._handler = _Forwarder(self.watch, loop, self.nominate, self.on_ignored)
        try:
            self.observer = self._start_observer()
        except OSError as exc:
            # A sub-folder left unwatched (watchdog ≥ 7.1.1 gives up on the whole watch
            # then) is told as such just below; anything else is the watch's own failure.
            if self._unwatched is None:
                log.warning(
                    "watch_native_failed",
                    watch=self.watch.name,
                    error=str(exc),
                    action=_limit_advice(exc),
                )
                self.mode = "polling"
                self.observer = self._start_observer()
        if self.mode == "native" and self._unwatched is not None:
            self._switch_to_polling()  # the startup rescan follows: no rescan of our own
        log.info("watch_started", watch=self.watch.name, path=str(self.watch.path), mode=self.mode)

    def _start_observer(self) -> BaseObserver:
        observer: BaseObserver
        if self.mode == "polling":
            observer = PollingObserver(timeout=self.watch.poll_interval_seconds)
        elif _HOOKS:
            observer = _NativeObserver(
                on_unwatched=self._on_unwatched, on_overflow=self._on_overflow
            )
        else:
            observer = Observer()
        try:
            observer.schedule(
                self._handler,
                str(self.watch.path),
                recursive=self.watch.recursive,
                event_filter=WATCHED_EVENTS,
            )
            observer.start()
        except BaseException:
            observer.stop()  # its inotify instance and reader thread, if it made them
            raise
        return observer

    # observer side: any thread, so only hand over to the loop

    def _on_unwatched(self, folder: bytes, exc: OSError) -> None:
        if exc.errno != errno.ENOSPC or self._unwatched is not None:
            return  # a folder gone while watches were added: nothing was missed
        if folder == os.fsencode(self.watch.path):
            return  # the watch's own folder: the observer fails to start, `start` says so
        self._unwatched = relpath(self.watch, Path(os.fsdecode(folder)))
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._watch_limit_reached)

    def _on_overflow(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._queue_overflowed)

    # loop side

    def _watch_limit_reached(self) -> None:
        """A folder created while running could not be watched: poll, and rescan now."""
        if self.mode == "native" and self.observer is not None:
            self._switch_to_polling()
            self.rescan(self.watch)

    def _switch_to_polling(self) -> None:
        log.warning(
            "watch_limit_reached",
            watch=self.watch.name,
            folder=self._unwatched,
            error="no inotify watch left for this folder (fs.inotify.max_user_watches)",
            action=(
                f"polling the whole watch every {self.watch.poll_interval_seconds:g} s "
                "instead; raise fs.inotify.max_user_watches to get events back"
            ),
        )
        native, self.observer = self.observer, None
        self.mode = "polling"
        if native is not None:
            native.stop()  # gives its inotify watches back
            native.join(timeout=5)
        self.observer = self._start_observer()

    def _queue_overflowed(self) -> None:
        """Events were dropped by the kernel: rescan soon (one rescan per burst)."""
        self._overflows += 1
        if self._rescan_timer is None and self._loop is not None:
            self._rescan_timer = self._loop.call_later(
                OVERFLOW_RESCAN_DELAY_SECONDS, self._rescan_after_overflow
            )

    def _rescan_after_overflow(self) -> None:
        self._rescan_timer = None
        log.warning(
            "watch_events_overflowed",
            watch=self.watch.name,
            overflows=self._overflows,
            error="the inotify event queue overflowed; events were lost",
            action="rescanning the watch now; raise fs.inotify.max_queued_events if it recurs",
        )
        self._overflows = 0
        self.rescan(self.watch)

    def suspend(self) -> None:
        """The folder is gone (`ingestd.folders.FolderGuard`): stop watching until `start`."""
        self.suspended = True
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=5)
            self.observer = None

    def alive(self) -> bool:
        return self.observer is not None and self.observer.is_alive()

    def stop(self) -> None:
        if self._rescan_timer is not None:
            self._rescan_timer.cancel()
            self._rescan_timer = None
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=5)
