"""Settling: a quiet window on size and mtime, on a fake clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ingestd.config import WatchConfig
from ingestd.settle import Settler


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, seconds: float = 5.0):
    async def build():
        settled: list[Path] = []
        clock = Clock()
        settler = Settler(lambda w, p: settled.append(p), clock=clock)
        return settler, settled, clock

    settler, settled, clock = asyncio.run(build())
    return settler, settled, clock, WatchConfig(name="w", path=tmp_path, settle_seconds=seconds)


class TestSettler:
    def test_quiet_file_settles_after_the_window(self, tmp_path: Path) -> None:
        """A file unchanged for settle_seconds is handed on exactly once."""
        settler, settled, clock, watch = make(tmp_path)
        path = tmp_path / "a.wav"
        path.write_bytes(b"x" * 10)
        settler.nominate(watch, path)
        clock.now += 4.9
        settler.tick()
        assert settled == []
        clock.now += 0.2
        settler.tick()
        settler.tick()
        assert settled == [path]

    def test_growing_file_restarts_the_window(self, tmp_path: Path) -> None:
        """Each change of size restarts the quiet window."""
        settler, settled, clock, watch = make(tmp_path)
        path = tmp_path / "a.wav"
        path.write_bytes(b"x")
        settler.nominate(watch, path)
        for _ in range(5):
            clock.now += 4
            with open(path, "ab") as handle:
                handle.write(b"more")
            settler.tick()
        assert settled == []
        clock.now += 5
        settler.tick()
        assert settled == [path]

    def test_vanished_file_is_dropped(self, tmp_path: Path) -> None:
        """A file moved away while settling is forgotten, not reported."""
        settler, settled, clock, watch = make(tmp_path)
        path = tmp_path / "a.wav"
        path.write_bytes(b"x")
        settler.nominate(watch, path)
        path.unlink()
        clock.now += 10
        settler.tick()
        assert settled == [] and len(settler) == 0

    def test_renomination_of_unchanged_file_keeps_its_window(self, tmp_path: Path) -> None:
        """Repeated events for an unchanged file do not postpone it forever."""
        settler, settled, clock, watch = make(tmp_path)
        path = tmp_path / "a.wav"
        path.write_bytes(b"x")
        settler.nominate(watch, path)
        for _ in range(6):
            clock.now += 1
            settler.nominate(watch, path)
        settler.tick()
        assert settled == [path]
