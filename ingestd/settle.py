"""Settling: a file is handed on only once its size and mtime stayed unchanged for the
watch's ``settle_seconds`` — a quiet window, never a fixed hold.

Watcher events and rescans only *nominate* paths; the settler stats them on a short tick,
on the event loop, without ever sleeping inside a watchdog callback, so one slow copy
cannot delay the other files.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from ingestd.config import WatchConfig

log = structlog.get_logger()


@dataclass
class _Candidate:
    watch: WatchConfig
    size: int
    mtime_ns: int
    stable_since: float


class Settler:
    """Tracks nominated files until they are quiet, then calls `on_settled(watch, path)`."""

    def __init__(
        self,
        on_settled: Callable[[WatchConfig, Path], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_settled = on_settled
        self._clock = clock
        self._candidates: dict[Path, _Candidate] = {}
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._candidates)

    def nominate(self, watch: WatchConfig, path: Path) -> None:
        """A file appeared or changed. Restarts its quiet window if it changed."""
        try:
            stat = path.stat()
        except OSError:
            self._candidates.pop(path, None)
            return
        candidate = self._candidates.get(path)
        if candidate and (candidate.size, candidate.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            return
        self._candidates[path] = _Candidate(watch, stat.st_size, stat.st_mtime_ns, self._clock())
        self._wake.set()

    def settling(self, watch_name: str) -> list[Path]:
        """The files of one watch that are not quiet yet. (Their mtimes are not final: a
        copy that keeps its source's mtime sets it only once it is complete.)"""
        return [path for path, c in self._candidates.items() if c.watch.name == watch_name]

    def forget_watch(self, name: str) -> None:
        """Drop the candidates of a watch that was removed from the configuration."""
        for path, candidate in list(self._candidates.items()):
            if candidate.watch.name == name:
                del self._candidates[path]

    def tick(self) -> None:
        """Stat every candidate once; hand on the ones that have been quiet long enough."""
        now = self._clock()
        for path, candidate in list(self._candidates.items()):
            try:
                stat = os.stat(path)
            except OSError:  # moved away or deleted while settling: nothing to do
                del self._candidates[path]
                continue
            if (stat.st_size, stat.st_mtime_ns) != (candidate.size, candidate.mtime_ns):
                candidate.size, candidate.mtime_ns = stat.st_size, stat.st_mtime_ns
                candidate.stable_since = now
            elif now - candidate.stable_since >= candidate.watch.settle_seconds:
                del self._candidates[path]
                self._on_settled(candidate.watch, path)

    def _interval(self) -> float:
        shortest = min((c.watch.settle_seconds for c in self._candidates.values()), default=1.0)
        return min(1.0, max(0.05, shortest / 4))

    async def run(self) -> None:
        """Tick while there are candidates; sleep until nominated otherwise (idle = no CPU)."""
        while True:
            if not self._candidates:
                self._wake.clear()
                await self._wake.wait()
            await asyncio.sleep(self._interval())
            self.tick()
