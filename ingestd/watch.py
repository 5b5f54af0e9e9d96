"""Noticing files: watchdog events as a hint, rescans as the source of truth.

The observer thread only forwards paths to the event loop (`call_soon_threadsafe`); all
decisions happen there. A startup rescan picks up files dropped while the daemon was down,
and a periodic one catches what events missed (network shares, overflowed queues). When the
native observer cannot be started (inotify limits), the watch falls back to polling and
says so.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from ingestd.config import WatchConfig

log = structlog.get_logger()


def matches(watch: WatchConfig, name: str) -> bool:
    """True for a file name the watch includes and does not ignore (temp files, dotfiles)."""
    if any(fnmatch.fnmatch(name, pattern) for pattern in watch.ignore):
        return False
    lowered = name.lower()
    return any(fnmatch.fnmatch(lowered, pattern.lower()) for pattern in watch.patterns)


def relpath(watch: WatchConfig, path: Path) -> str:
    return path.relative_to(watch.path).as_posix()


def scan(watch: WatchConfig) -> Iterator[tuple[Path, int, float]]:
    """Every matching regular file under the watch: (path, size, mtime). Never follows
    symlinked directories, so a symlink loop cannot trap it."""
    stack = [watch.path]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            log.warning("scan_folder_unreadable", folder=str(folder), error=exc.strerror)
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if watch.recursive and not entry.name.startswith("."):
                        stack.append(Path(entry.path))
                elif entry.is_file() and matches(watch, entry.name):
                    stat = entry.stat()
                    yield Path(entry.path), stat.st_size, stat.st_mtime
            except OSError:
                continue


class _Forwarder(FileSystemEventHandler):
    """Runs in the observer thread: forwards candidate paths to the loop, nothing else."""

    def __init__(
        self,
        watch: WatchConfig,
        loop: asyncio.AbstractEventLoop,
        nominate: Callable[[WatchConfig, Path], None],
    ) -> None:
        self.watch = watch
        self.loop = loop
        self.nominate = nominate

    def _forward(self, raw: str | bytes) -> None:
        path = Path(os.fsdecode(raw))
        if matches(self.watch, path.name):
            self.loop.call_soon_threadsafe(self.nominate, self.watch, path)

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
        sub = WatchConfig(**{**self.watch.__dict__, "path": root})
        for path, _, _ in scan(sub):
            self.nominate(self.watch, path)


class Watcher:
    """One observer per watch; polling when configured or when native events fail."""

    def __init__(self, watch: WatchConfig, nominate: Callable[[WatchConfig, Path], None]) -> None:
        self.watch = watch
        self.nominate = nominate
        self.observer: BaseObserver | None = None
        self.mode = "polling" if watch.polling else "native"

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.watch.path.mkdir(parents=True, exist_ok=True)
        handler = _Forwarder(self.watch, loop, self.nominate)
        try:
            self.observer = self._observer()
            self.observer.schedule(handler, str(self.watch.path), recursive=self.watch.recursive)
            self.observer.start()
        except OSError as exc:
            log.warning(
                "watch_native_failed",
                watch=self.watch.name,
                error=str(exc),
                action="falling back to polling; raise fs.inotify.max_user_watches",
            )
            self.mode = "polling"
            self.observer = self._observer()
            self.observer.schedule(handler, str(self.watch.path), recursive=self.watch.recursive)
            self.observer.start()
        log.info("watch_started", watch=self.watch.name, path=str(self.watch.path), mode=self.mode)

    def _observer(self) -> BaseObserver:
        if self.mode == "polling":
            return PollingObserver(timeout=self.watch.poll_interval_seconds)
        return Observer()

    def alive(self) -> bool:
        return self.observer is not None and self.observer.is_alive()

    def stop(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=5)
