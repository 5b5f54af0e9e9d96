"""The after-recording loop outlives a store that is locked when it starts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from structlog.testing import capture_logs

from ingestd.aftermath import Aftermath
from ingestd.errors import StoreError
from ingestd.store import SqliteStore
from ingestd.testing import bare_config


class LockedAtFirst(SqliteStore):
    """The state database held by another process for the first replan."""

    replans = 0

    def replan_failed_disposals(self) -> int:
        self.replans += 1
        if self.replans == 1:
            raise StoreError("the state database is locked by another process for more than 30 s")
        return super().replan_failed_disposals()


def test_a_store_locked_at_start_is_retried_not_fatal(tmp_path: Path) -> None:
    """The start-up replan used to run before the loop's error handling: a locked database
    then ended the task for good ("Task exception was never retrieved", and no after-success
    actions until a restart). Now it is logged and tried again next round."""
    store = LockedAtFirst(tmp_path / "state.db")
    config = bare_config(tmp_path)
    aftermath = Aftermath(lambda: config, store, backend=None)  # type: ignore[arg-type]

    async def for_a_while() -> bool:
        task = asyncio.create_task(aftermath.run())
        await asyncio.sleep(1.2)  # two rounds and more (ROUND_SECONDS 0.5)
        alive = not task.done()
        task.cancel()
        return alive

    with capture_logs() as logs:
        assert asyncio.run(for_a_while())
    assert store.replans == 2
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["aftermath_failed"]
