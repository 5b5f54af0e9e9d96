"""What the daemon does after a recording's pipeline: beside the dispatcher, never in its way.

It follows the event history (a watermark over the ``events`` table, so nothing is missed
across restarts: the first round after a start reads it from the beginning) and hands each
``done``, ``rejected`` and ``submitted`` event to the features that act on them, then runs
their due work. Each feature records its own intent in the store before acting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog

from ingestd.config import Config
from ingestd.deletions import Deletions
from ingestd.disposal import Disposals
from ingestd.errors import StoreError
from ingestd.lifecycle import State
from ingestd.registry import Backend
from ingestd.store import Store

log = structlog.get_logger()

ROUND_SECONDS = 0.5
CLOSE_CHECK_SECONDS = 30.0
CRASH_PAUSE_SECONDS = 10.0
"""After an unexpected error, the next round waits this long (no traceback storm)."""


AFTERMATH_LEADER = -1
"""The claim (as a recording id no recording has) of the node that sends API deletions."""


class SharedWork:
    """With several nodes on one database, which node does an after-recording item: a
    file's action the node that claims its recording (and watches its folder), the API
    deletions the one node that holds the aftermath lease; each only once."""

    def __init__(self, store: Store, node: str, lease_seconds: float) -> None:
        self.store = store
        self.node = node
        self.lease_seconds = lease_seconds
        self._leader_checked = -float("inf")
        self._leading = False

    def take(self, recording_id: int) -> bool:
        return self.store.claim(recording_id, self.node, self.lease_seconds) is not None

    def done(self, recording_id: int) -> None:
        self.store.release(recording_id)

    def leading(self, now: float) -> bool:
        """Whether this node sends the deletions; asked again a few times per lease (the
        claim is renewed with the others at each heartbeat while it is held)."""
        if now - self._leader_checked >= self.lease_seconds / 3:
            self._leader_checked = now
            claim = self.store.claim(AFTERMATH_LEADER, self.node, self.lease_seconds)
            self._leading = claim is not None
        return self._leading


class Aftermath:
    """One background task of the daemon (`run`). `shared`: the node's share of the work
    when several nodes use one database (None: one daemon does all)."""

    def __init__(
        self,
        config: Callable[[], Config],
        store: Store,
        backend: Backend,
        shared: SharedWork | None = None,
    ) -> None:
        self._config = config
        self.store = store
        self.shared = shared
        self.deletions = Deletions(config, store, backend)
        self.disposals = Disposals(config, store, shared)
        self._watermark = 0
        self._closes_checked = 0.0
        self._kick = asyncio.Event()

    def kick(self) -> None:
        self._kick.set()

    async def run(self) -> None:
        replanned = False  # failed dispositions start over once per start, when the store lets
        while True:
            try:
                if not replanned:
                    failed_before = self.store.replan_failed_disposals()
                    replanned = True
                    if failed_before:
                        log.info("after_replanned", failed_before=failed_before)
                await self.round()
            except StoreError as exc:  # locked or full for now: the next round tries again
                log.error("aftermath_failed", error=str(exc))
            except Exception:  # a bug must not end what runs after every recording
                log.exception("aftermath_crashed")
                await asyncio.sleep(CRASH_PAUSE_SECONDS)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ROUND_SECONDS):
                    await self._kick.wait()
            self._kick.clear()

    def _close_check_seconds(self) -> float:
        """Often enough for the shortest ``close_after_minutes``, at most every 30 s."""
        minutes = [
            float(w.conversation.get("close_after_minutes") or 0)
            for w in self._config().watches
            if w.conversation
        ]
        shortest = min((m for m in minutes if m > 0), default=None)
        if shortest is None:
            return float("inf")
        return min(CLOSE_CHECK_SECONDS, shortest * 60 / 4)

    async def round(self) -> None:
        """Follow the new events, then do whatever is due."""
        now = time.time()
        deleting, disposing = self.deletions.wanted, self.disposals.wanted
        # Nothing asked for (the default): the history is not read at all. Something turned
        # on by a reload reads it from where it stopped (from the start if nothing was on).
        while deleting or disposing:
            events = self.store.events_since(
                self._watermark, (State.DONE, State.REJECTED, State.SUBMITTED)
            )
            if not events:
                break
            for event in events:
                if deleting:
                    self.deletions.on_event(event)
                if disposing:
                    self.disposals.on_event(event)
                self._watermark = event["id"]
            await asyncio.sleep(0)  # a long history at start must not starve the loop
        if now - self._closes_checked >= self._close_check_seconds():
            self._closes_checked = now
            self.deletions.close_quiet_keys(now)
        if self.shared is None or self.shared.leading(now):
            await self.deletions.send_due(now)
        await self.disposals.run_due(now)


def status(store: Store) -> dict[str, object]:
    """For `ingestd status --json`: counts of what was done after recordings."""
    return {"after": store.disposal_counts(), "api_deletions": store.deletion_counts()}


def status_lines(store: Store) -> list[str]:
    """For `ingestd status`: the same as text; nothing when nothing was ever asked."""
    lines: list[str] = []
    for action, states in sorted(store.disposal_counts().items()):
        counts = ", ".join(f"{state} {n}" for state, n in sorted(states.items()))
        lines.append(f"after: {action:<8} {counts}")
    deletions = store.deletion_counts()
    if deletions:
        counts = ", ".join(f"{state} {n}" for state, n in sorted(deletions.items()))
        lines.append(f"api deletions:  {counts}")
    return ["", *lines] if lines else []
