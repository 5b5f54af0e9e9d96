"""Watch folders: there at start, and watched again after they vanish.

A watch whose folder does not exist is a typo or a share that is not mounted: nothing would
ever be ingested from it, silently. So `run` (and `check`) refuse such a config with the
path named (exit 78), unless the watch says ``create: true``, and then the folder is made.

While the daemon runs, `FolderGuard` looks at every watch's folder every
`FOLDER_CHECK_SECONDS`, off the event loop (a hung network mount must not stall it). A
folder that is gone (deleted, renamed away, or a share that was mounted on it unmounted,
leaving the empty mount point) is logged as an error, ``watch_folder_missing``, its watcher
is stopped, and /health and ``ingestd status`` show it. When the folder is back, its watcher
starts again and the watch is rescanned, so what arrived meanwhile is found.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import structlog

from ingestd.config import Config, WatchConfig
from ingestd.errors import ConfigError

log = structlog.get_logger()

FOLDER_CHECK_SECONDS = float(os.environ.get("INGESTD_FOLDER_CHECK_SECONDS", "2"))
"""How often a running daemon looks at its watch folders (the environment variable is for
tests and for slow network mounts)."""


def folder_problem(path: Path, *, was_mount: bool = False) -> str | None:
    """What is wrong with the watch folder `path`, or None when it can be watched.

    `was_mount`: a share was mounted there when the daemon started; the bare mount point
    left after an unmount is no folder to watch either.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a folder"
    if was_mount and not os.path.ismount(path):
        return "is no longer a mount point (the share was unmounted)"
    return None


def missing_folder_problems(watches: Iterable[WatchConfig]) -> list[str]:
    """``watch[NAME].path: ...`` for each watch folder that is not there and not to be
    created (`ingestd.configload.locate` adds the file and line)."""
    problems = []
    for watch in watches:
        problem = folder_problem(watch.path)
        if problem is None or (watch.create and problem == "does not exist"):
            continue
        problems.append(
            f"watch[{watch.name}].path: the folder {watch.path} {problem}; fix the path or "
            "mount the share, or set create: true on this watch to have ingestd create it"
        )
    return problems


def prepare_folders(config: Config) -> None:
    """Refuse missing watch folders (every one at once), create those marked ``create``."""
    from ingestd.configload import locate

    problems = missing_folder_problems(config.watches)
    for watch in config.watches:
        if watch.create and not problems:
            try:
                watch.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                problems.append(
                    f"watch[{watch.name}].path: cannot create {watch.path}: {exc.strerror}"
                )
    if problems:
        raise ConfigError(locate(config, problems))


def missing_now(watches: Iterable[WatchConfig]) -> list[tuple[WatchConfig, str]]:
    """(watch, problem) for each watch whose folder cannot be watched right now."""
    found = []
    for watch in watches:
        problem = folder_problem(watch.path)
        if problem is not None:
            found.append((watch, problem))
    return found


class FolderGuard:
    """Notices watch folders that vanish and come back; calls `on_gone(name)` and
    `on_back(name)` on the event loop."""

    def __init__(self, on_gone: Callable[[str], None], on_back: Callable[[str], None]) -> None:
        self.on_gone = on_gone
        self.on_back = on_back
        self._watches: dict[str, tuple[WatchConfig, bool]] = {}
        self._identity: dict[str, tuple[int, int] | None] = {}  # (st_dev, st_ino) watched
        self.missing: dict[str, tuple[str, float]] = {}
        """Watch name -> (what is wrong, since when, UNIX time)."""

    def track(self, watch: WatchConfig) -> None:
        self._watches[watch.name] = (watch, os.path.ismount(watch.path))
        self._identity[watch.name] = _identity(watch.path)

    def forget(self, name: str) -> None:
        self._watches.pop(name, None)
        self._identity.pop(name, None)
        self.missing.pop(name, None)

    def _look(self) -> dict[str, tuple[str | None, tuple[int, int] | None]]:
        return {
            name: (folder_problem(watch.path, was_mount=was_mount), _identity(watch.path))
            for name, (watch, was_mount) in list(self._watches.items())
        }

    async def check(self) -> None:
        """Look at every folder once (in a thread); report and act on each change."""
        found = await asyncio.to_thread(self._look)
        for name, (problem, identity) in found.items():
            if name not in self._watches:
                continue  # forgotten (a reload) while we looked
            watch = self._watches[name][0]
            watched, self._identity[name] = self._identity.get(name), identity
            if problem is None and name not in self.missing and identity != watched:
                # gone and back between two looks (renamed away and made anew, remounted):
                # the events of the old folder are lost, so watch the new one and rescan
                log.warning(
                    "watch_folder_replaced",
                    watch=name,
                    path=str(watch.path),
                    action="watching the new folder and rescanning it",
                )
                self.on_gone(name)
                self.on_back(name)
            elif problem is not None and name not in self.missing:
                self.missing[name] = (problem, time.time())
                log.error(
                    "watch_folder_missing",
                    watch=name,
                    path=str(watch.path),
                    problem=problem,
                    action=f"nothing is ingested from this watch until the folder is back; "
                    f"ingestd looks again every {FOLDER_CHECK_SECONDS:g} s",
                )
                self.on_gone(name)
            elif problem is None and name in self.missing:
                _, since = self.missing.pop(name)
                log.warning(
                    "watch_folder_back",
                    watch=name,
                    path=str(watch.path),
                    missing_seconds=round(time.time() - since, 1),
                    action="watching it again and rescanning it",
                )
                self.on_back(name)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(FOLDER_CHECK_SECONDS)
            await self.check()


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the folder, None when it cannot be looked at."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino
