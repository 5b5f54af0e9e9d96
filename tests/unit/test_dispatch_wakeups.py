"""How often the dispatcher looks again at recordings that were due but could not start."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ingestd.configload import parse_config
from ingestd.daemon import DUE_RECHECK_SECONDS, Daemon


def _daemon(tmp_path: Path, state: str) -> Daemon:
    text = f"symbl: {{app_id: a, app_secret: b}}\nstate: {{url: '{state}'}}\n"
    return Daemon(parse_config(text + f"watch: [{{path: {tmp_path}}}]\n", base=tmp_path))


def _rounds(daemon: Daemon, seconds: float) -> list[float]:
    """Run the dispatch loop for `seconds` with a backlog always due (a job slot never
    frees by itself), nothing waking it. The moments of each round."""
    rounds: list[float] = []

    def dispatch_once() -> float | None:
        rounds.append(time.monotonic())
        return time.time() - 10  # due since 10 s: waiting for a slot

    daemon._dispatch_once = dispatch_once  # type: ignore[method-assign]

    async def run() -> None:
        loop = asyncio.create_task(daemon._dispatch_loop())
        await asyncio.sleep(seconds)
        daemon._stopping.set()
        daemon._kick.set()
        await loop

    asyncio.run(run())
    return rounds


class TestDueRecheck:
    def test_alone_on_its_store_it_does_not_poll_a_waiting_backlog(self, tmp_path: Path) -> None:
        """SQLite: every change that could start a recording wakes the dispatcher, so a
        backlog waiting for job slots is looked at every DUE_RECHECK_SECONDS, not every
        50 ms (two rounds per recording in the throughput bench)."""
        rounds = _rounds(_daemon(tmp_path, f"sqlite:///{tmp_path}/state.db"), 1.5)
        assert DUE_RECHECK_SECONDS >= 0.5
        assert 2 <= len(rounds) <= 1 + 1.5 / DUE_RECHECK_SECONDS + 1, rounds

    def test_a_wake_up_runs_a_round_at_once(self, tmp_path: Path) -> None:
        """A change that wakes the dispatcher gets its round on the loop's next turns, not
        after the recheck interval."""
        daemon = _daemon(tmp_path, f"sqlite:///{tmp_path}/state.db")
        rounds: list[float] = []

        def dispatch_once() -> float | None:
            rounds.append(time.monotonic())
            return time.time() - 10

        daemon._dispatch_once = dispatch_once  # type: ignore[method-assign]

        async def run() -> None:
            loop = asyncio.create_task(daemon._dispatch_loop())
            for _ in range(10):
                await asyncio.sleep(0)
            assert len(rounds) == 1
            for expected in (2, 3, 4):
                daemon._kick.set()
                for _ in range(10):
                    await asyncio.sleep(0)  # no time passes for a recheck
                assert len(rounds) == expected
            daemon._stopping.set()
            daemon._kick.set()
            await loop

        asyncio.run(run())

    def test_a_shared_store_is_asked_often(self, tmp_path: Path) -> None:
        """PostgreSQL: another node's finished job frees a slot of the shared limit without
        waking this node, so it looks again every 50 ms."""
        state = "postgresql://postgres@127.0.0.1:5432/ingestd_unused"
        rounds = _rounds(_daemon(tmp_path, state), 1.0)
        assert len(rounds) >= 10, rounds
