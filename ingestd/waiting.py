"""Why a recording is where it is (what it waits for), in words, for `ingestd status`.

Counts say how much is in progress; an operator also needs to know what each recording is
waiting for: a back-off after an API error (until when, after what), an earlier part of its
conversation, a free job slot under the account's limit, the API's job, a sink. Everything
here is read from the state database, so it works whether or not the daemon runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingestd.backends import DEFAULT_JOB_LIMIT
from ingestd.lifecycle import IN_FLIGHT, State
from ingestd.logging import redact
from ingestd.replaced import UNREADABLE_FINGERPRINT, reads_source
from ingestd.store import RecordingRow, Store


def clock(ts: float) -> str:
    """``HH:MM:SSZ`` today, else the date too."""
    moment = datetime.fromtimestamp(ts, UTC)
    if moment.date() == datetime.now(UTC).date():
        return moment.strftime("%H:%M:%SZ")
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


class Explainer:
    """Explains in-progress rows against one snapshot of the store (job slots in use).

    `backend` is the chosen backend's config section: its ``max_concurrent_jobs`` is the
    limit the daemon's dispatcher keeps to.
    """

    def __init__(self, store: Store, backend: Mapping[str, Any], now: float | None = None) -> None:
        self.store = store
        self.now = time.time() if now is None else now
        self.job_limit = int(backend.get("max_concurrent_jobs") or DEFAULT_JOB_LIMIT)
        self.in_flight = store.count_states(IN_FLIGHT)

    def reason(self, row: RecordingRow) -> str:
        """One line: what the recording waits for, or what it is doing."""
        if row.next_attempt_at > self.now:
            after = f" after: {redact(row.error)}" if row.error else ""
            return f"backing off until {clock(row.next_attempt_at)} (attempt {row.attempts}){after}"
        state = row.state
        if state is State.QUEUED:
            if self.store.earlier_part_pending(row):
                return "waiting for an earlier part of its conversation to be submitted"
            if self.in_flight >= self.job_limit:
                return (
                    f"waiting for a job slot ({self.in_flight} of {self.job_limit} "
                    f"jobs in flight, max_concurrent_jobs)"
                )
            return "waiting for its turn to upload"
        if state is State.SUBMITTING:
            if row.upload_started_at is None:
                return "about to upload"
            return f"uploading since {clock(row.upload_started_at)} (or checking it arrived)"
        if state is State.SUBMITTED:
            job = f"job {row.job_id}" if row.job_id else "its job"
            where = f" (conversation {row.conversation_id})" if row.conversation_id else ""
            return f"waiting for {job} at the API{where}"
        if state is State.DELIVERING:
            pending = [d["sink"] for d in self.store.deliveries(row.id) if d["state"] == "pending"]
            return f"delivering to {', '.join(pending)}" if pending else "delivering"
        return {
            State.DISCOVERED: "waiting to be probed (transcodes and probes run a few at a time)",
            State.PROBED: "waiting for a transcode slot, or transcoding",
            State.TRANSCODED: "choosing the endpoint and parameters",
            State.FETCHING: "the job completed; fetching its insights",
        }.get(state, str(state))


def file_hint(row: RecordingRow) -> str | None:
    """For a failed or rejected row: a hint when its file was since deleted or replaced
    (then nobody needs to fix it: `ingestd retry` or `dismiss` resolves it)."""
    if not reads_source(row):
        return None
    try:
        stat = row.path.stat()
    except FileNotFoundError:
        if not Path(row.watch_root).is_dir():
            return None  # the whole watch folder is missing (an unmounted share?)
        return f"its file is gone: `ingestd dismiss {row.id}` (or `retry`) clears it"
    except OSError:
        return None
    if row.sha256.startswith(UNREADABLE_FINGERPRINT):
        return None
    if (stat.st_size, stat.st_mtime) != (row.size_bytes, row.mtime):
        return (
            f"its file changed since: its new content is recorded on its own; "
            f"`ingestd retry {row.id}` clears this one"
        )
    return None
