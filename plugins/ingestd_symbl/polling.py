"""When to ask the Job API whether a job has finished: the polling schedule.

Without history, the gaps start small (``poll_initial_seconds``, or a tenth of the media's
duration) and grow ×1.5 up to ``poll_max_seconds``: a short job is seen soon, a long one
costs few reads. A fixed schedule is always late by part of a gap, though, and at the
account's job limit that lateness is a slot left idle.

So the client learns how long jobs take (`JobDurations`): per second of media when the
duration is known, else per job. Once it has an estimate, it polls every
``poll_max_seconds`` at most until the estimate (so a wrong estimate is never later than a
plain schedule would be), lands one poll on the estimate, and then polls densely, gaps
growing from a twentieth of the estimate. A job found finished at the first poll pulls the
estimate down a little, one still running pulls it up, so the estimate settles just around
the real duration: about one read per job, seen within a few hundredths of its length.
"""

from __future__ import annotations

from collections.abc import Iterator

POLL_GROWTH = 1.5
"""Each gap is this much longer than the one before it."""

MIN_GAP_SECONDS = 0.05
"""The shortest gap after the estimate: a floor on reads for very short jobs."""

SMOOTHING = 0.3
"""Weight of the newest job in the estimate (an exponentially weighted mean)."""

FINISHED_AT_FIRST_POLL = 0.9
"""A job already finished at the first poll took at most that long; learn a bit less, so
the next first poll comes a little earlier and the estimate cannot only ever grow."""


def poll_delays(first: float, maximum: float) -> Iterator[float]:
    """Waits between polls: `first`, then ×1.5 each time, capped at `maximum`."""
    delay = min(first, maximum)
    while True:
        yield delay
        delay = min(maximum, delay * POLL_GROWTH)


def delays_around(estimate: float, maximum: float) -> Iterator[float]:
    """Waits between polls for a job expected to take `estimate` seconds: gaps of at most
    `maximum` up to the estimate, one poll landing on it, then gaps growing ×1.5 from a
    twentieth of it (at least `MIN_GAP_SECONDS`), capped at `maximum`."""
    remaining = estimate
    while remaining > maximum:
        yield maximum
        remaining -= maximum
    yield remaining
    yield from poll_delays(max(MIN_GAP_SECONDS, estimate / 20), maximum)


class JobDurations:
    """What the client has seen of how long jobs take, to place its polls.

    Two running estimates: seconds of job per second of media (used when a job's media
    duration is known) and seconds per job (when it is not). Only waits that started as the
    job was submitted teach anything; a job resumed after a restart had been running for an
    unknown time.
    """

    def __init__(self) -> None:
        self._per_media_second: float | None = None
        self._per_job: float | None = None

    def estimate(self, media_seconds: float | None) -> float | None:
        """Expected seconds from submission to completion; None until a job was seen."""
        if media_seconds and media_seconds > 0 and self._per_media_second is not None:
            return self._per_media_second * media_seconds
        return self._per_job

    def learn(self, media_seconds: float | None, last_running: float, finished: float) -> None:
        """One job, seen still running at `last_running` seconds after it was submitted (0
        if never) and finished at `finished`: the job ended somewhere in between."""
        if finished <= 0:
            return
        took = FINISHED_AT_FIRST_POLL * finished if last_running <= 0 else (
            (last_running + finished) / 2
        )  # fmt: skip
        self._per_job = _smooth(self._per_job, took)
        if media_seconds and media_seconds > 0:
            self._per_media_second = _smooth(self._per_media_second, took / media_seconds)


def _smooth(old: float | None, new: float) -> float:
    return new if old is None else old + SMOOTHING * (new - old)
