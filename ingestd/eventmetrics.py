"""The core's own event plugin: counts state changes and ends from the event hooks.

Registered by `ingestd.plugins.load_plugins` like any other plugin (named ``metrics``,
listed by ``ingestd plugins``, switched off with ``disable_plugins: [metrics]``), so the
event hooks run for every recording of every installation, not only in third-party
plugins. `ingestd.metrics.MetricsServer` serves the counters at /metrics, beside the
gauges it reads from the store. They count what this process changed: the commands'
changes (``ingestd retry``, ``ingestd redeliver``) are counted in the command's process.
"""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter

from ingestd import hookimpl
from ingestd.model import Recording, Result

STATE_CHANGES = Counter(
    "ingestd_state_changes",
    "State changes committed by this process, by old and new state (old none: just stored)",
    ["old", "new"],
    registry=None,
)
RECORDINGS_FINISHED = Counter(
    "ingestd_recordings_finished",
    "Recordings this process ended, by outcome (done, failed, rejected); again after a "
    "retry or redelivery ends one again",
    ["outcome"],
    registry=None,
)
COUNTERS = (STATE_CHANGES, RECORDINGS_FINISHED)


@functools.lru_cache(maxsize=1024)
def labelled(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, looked up once: prometheus_client validates and locks on
    every call, and the label sets here are few (about 30 calls per recording)."""
    return metric.labels(*values)


@hookimpl
def ingestd_state_changed(
    recording: Recording, old: str | None, new: str, facts: dict[str, Any]
) -> None:
    labelled(STATE_CHANGES, old or "none", new).inc()


@hookimpl
def ingestd_recording_done(recording: Recording, result: Result) -> None:
    labelled(RECORDINGS_FINISHED, "done").inc()


@hookimpl
def ingestd_recording_failed(recording: Recording, error: str) -> None:
    labelled(RECORDINGS_FINISHED, recording.state).inc()
