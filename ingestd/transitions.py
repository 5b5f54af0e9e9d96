"""The one way a recording's state changes: check, commit, log, notify.

Every state change goes through `Transitions`: intake recording a file (``discovered``,
``duplicate``, a rejection), each pipeline stage, recovery after a restart (a stage like any
other), ``ingestd retry`` and ``ingestd redeliver``. The store checks the change against
`ingestd.lifecycle.TRANSITIONS` and commits it with its event; then the change is logged
(``state_changed``) and the event hooks are called: ``ingestd_state_changed`` for every
change, and at each end ``ingestd_recording_done`` (done) or ``ingestd_recording_failed``
(failed, rejected). So each end is notified exactly once, and again when a retried or
redelivered recording ends again. An event hook that raises is logged with its plugin's
name and never fails the recording (`ingestd.hookcall`).

Event hooks run in the process that made the change: the daemon's changes in the daemon;
``ingestd retry`` and ``ingestd redeliver`` load the configured plugins and notify from
their own process, at once, whether a daemon runs or not. A plugin that counts in memory
therefore sees its own process's changes; totals are in the store (``ingestd status``, the
``ingestd_recordings`` gauge).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from ingestd.config import WatchConfig
from ingestd.lifecycle import State
from ingestd.model import Media, Recording, Result
from ingestd.plugins import Plugins
from ingestd.store import RecordingRow, Store

log = structlog.get_logger()

FAILURE_ENDS = frozenset({State.FAILED, State.REJECTED})
"""Ends notified through ``ingestd_recording_failed``; ``done`` has its own hook."""

QUIET_STEPS = frozenset(
    {
        (State.DISCOVERED, State.PROBED),
        (State.PROBED, State.TRANSCODED),
        (State.QUEUED, State.SUBMITTING),
        (State.FETCHING, State.DELIVERING),
    }
)
"""Changes that let no other recording start (no job slot, no probe or transcode slot, no
conversation turn is freed) and that the recording's own driver follows with its next
stage at once: the dispatcher is not woken for them (`on_change`), only for the rest."""


def recording_of(row: RecordingRow, watches: Mapping[str, WatchConfig]) -> Recording:
    """The plugin-facing view of a row (with a stand-in watch if it left the config)."""
    watch = watches.get(row.watch) or WatchConfig(name=row.watch, path=Path(row.watch_root))
    return Recording(
        id=row.id,
        path=row.path,
        relpath=row.relpath,
        watch=watch,
        size_bytes=row.size_bytes,
        mtime=row.mtime,
        sha256=row.sha256,
        state=str(row.state),
        conversation_key=row.conversation_key,
        conversation_id=row.conversation_id,
        job_id=row.job_id,
        attempts=row.attempts,
        error=row.error,
        media=Media.from_dict(row.media) if row.media else None,
    )


class Transitions:
    """Commits state changes and tells the log and the plugins, in that order.

    Args:
        store: where the change is checked and committed.
        plugins: whose event hooks hear of it.
        recording: the plugin-facing view of a row (`recording_of` with the watches).
        on_change: called after every change but the `QUIET_STEPS` (the daemon wakes its
            dispatcher).
    """

    def __init__(
        self,
        store: Store,
        plugins: Plugins,
        recording: Callable[[RecordingRow], Recording],
        *,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.plugins = plugins
        self.recording = recording
        self.on_change = on_change

    def record(self, **columns: Any) -> RecordingRow:
        """Store a settled file (`Store.insert`): a change from nothing to its first state."""
        row = self.store.insert(**columns)
        facts = {"duplicate_of": row.duplicate_of} if row.duplicate_of is not None else {}
        self._told(row, None, facts)
        return row

    def change(
        self,
        row: RecordingRow,
        new: State,
        *,
        facts: dict[str, Any] | None = None,
        result: Result | None = None,
        **columns: Any,
    ) -> RecordingRow:
        """Move `row` (as the caller last read it) to `new`; the store refuses a change the
        lifecycle table does not allow, or a row that moved meanwhile, writing nothing.

        Args:
            facts: recorded with the event, logged and given to ``ingestd_state_changed``.
            result: what was delivered; required to end ``done``.
            columns: passed to `Store.transition` (columns, mapping, unmap, deliveries).
        """
        if new is State.DONE and result is None:
            raise ValueError("a recording ends done with the Result its sinks delivered")
        facts = dict(facts or {})
        updated = self.store.transition(row.id, new, facts=facts, expected=row.state, **columns)
        self._told(updated, row.state, facts, result)
        return updated

    def _told(
        self,
        row: RecordingRow,
        old: State | None,
        facts: dict[str, Any],
        result: Result | None = None,
    ) -> None:
        """Log the committed change, then call the event hooks (which never raise)."""
        old_name = str(old) if old is not None else None
        log.info("state_changed", recording_id=row.id, old=old_name, new=str(row.state), **facts)
        recording = self.recording(row)
        self.plugins.notify(
            "ingestd_state_changed",
            recording=recording,
            old=old_name,
            new=str(row.state),
            facts=facts,
        )
        if row.state is State.DONE:
            self.plugins.notify("ingestd_recording_done", recording=recording, result=result)
        elif row.state in FAILURE_ENDS:
            error = row.error or str(facts.get("error") or row.state)
            self.plugins.notify("ingestd_recording_failed", recording=recording, error=error)
        if (old, row.state) not in QUIET_STEPS:
            self.on_change()
