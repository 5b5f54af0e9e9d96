"""When to ask the Job API whether a job has finished: the polling schedule.

Without history, the gaps start small (``poll_initial_seconds``, or a tenth of the media's
duration) and grow ×1.5 up to ``poll_max_seconds``: a short job is seen soon, a long one
costs few reads. A fixed schedule is always late by part of a gap, though, and at the
account's job limit that lateness is a slot left idle.

So the client learns how long jobs take (`JobDurations`): per second of media when the
duration is known, else per job, and how much that varies (the mean absolute deviation).
Once it has an estimate, it polls every ``poll_max_seconds`` at most until the estimate (so
a wrong estimate is never later than a plain schedule would be), lands one poll on the
estimate, and then polls densely: gaps growing ×1.5 from half the spread (at least a
hundredth of the estimate). Jobs that always take about as long are seen within a hundredth
of their length, jobs that vary are found with few reads.

A job found finished at the first poll ended at most then, and how much earlier is unknown:
it is counted as having ended one spread earlier, or a share of its length if that is
more: 1 %, doubled for each further such job once ten came in a row (at most 20 %), and
1 % again once a poll comes early. So an estimate too long is pulled down within a few
rounds (say ten jobs started together, all timed by the same first estimate), and one
just right moves by 1 % steps; without that share, identical jobs made the spread zero
and the estimate stuck wherever it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

POLL_GROWTH = 1.5
"""Each gap is this much longer than the one before it."""

MIN_GAP_SECONDS = 0.01
"""The shortest gap after the estimate, a floor on reads for very short jobs."""

MIN_GAP_FRACTION = 0.01
"""The shortest gap after the estimate, as a fraction of it (0.6 s for a 60 s job)."""

SPREAD_GAP = 0.5
"""The first gap after the estimate, as a fraction of how much jobs vary."""

SMOOTHING = 0.3
"""Weight of the newest job in the estimate and the spread (exponentially weighted)."""

FIRST_SPREAD = 0.1
"""The spread assumed after the first job: a tenth of its length."""

FIRST_PULL, PULL_GROWTH, MAX_PULL = 0.01, 2.0, 0.2
"""A job found finished at the first poll counts as having ended at least this share of its
length earlier: 1 %, doubled for each such job after `PULL_AFTER` in a row, at most 20 %."""

PULL_AFTER = 10
"""Jobs in a row found finished at their first poll before the share grows: a few in a row
are an estimate just right; a whole round of them is one too long."""


def poll_delays(first: float, maximum: float) -> Iterator[float]:
    """Waits between polls: `first`, then ×1.5 each time, capped at `maximum`."""
    delay = min(first, maximum)
    while True:
        yield delay
        delay = min(maximum, delay * POLL_GROWTH)


def delays_around(estimate: float, maximum: float, spread: float = 0.0) -> Iterator[float]:
    """Waits between polls for a job expected to take `estimate` seconds, give or take
    `spread`: gaps of at most `maximum` up to the estimate, one poll landing on it, then gaps
    growing ×1.5 from half the spread (at least a hundredth of the estimate and
    `MIN_GAP_SECONDS`), capped at `maximum`."""
    remaining = estimate
    while remaining > maximum:
        yield maximum
        remaining -= maximum
    yield remaining
    first_gap = max(MIN_GAP_SECONDS, MIN_GAP_FRACTION * estimate, SPREAD_GAP * spread)
    yield from poll_delays(first_gap, maximum)


@dataclass
class _Learned:
    """An exponentially weighted mean of durations and of their distance from it."""

    mean: float
    spread: float
    pull: float = FIRST_PULL
    """The share of a job's length that one found finished at the first poll is taken off."""
    finished_first: int = 0
    """Jobs in a row found finished at their first poll."""

    def add(self, took: float) -> None:
        distance = abs(took - self.mean)
        self.mean += SMOOTHING * (took - self.mean)
        self.spread += SMOOTHING * (distance - self.spread)


class JobDurations:
    """What the client has seen of how long jobs take, to place its polls.

    Two running estimates: seconds of job per second of media (used when a job's media
    duration is known) and seconds per job (when it is not). Only waits that started as the
    job was submitted teach anything; a job resumed after a restart had been running for an
    unknown time.
    """

    def __init__(self) -> None:
        self._per_media_second: _Learned | None = None
        self._per_job: _Learned | None = None

    def _learned(self, media_seconds: float | None) -> tuple[_Learned | None, float]:
        if media_seconds and media_seconds > 0 and self._per_media_second is not None:
            return self._per_media_second, media_seconds
        return self._per_job, 1.0

    def estimate(self, media_seconds: float | None) -> float | None:
        """Expected seconds from submission to completion; None until a job was seen."""
        learned, scale = self._learned(media_seconds)
        return None if learned is None else learned.mean * scale

    def spread(self, media_seconds: float | None) -> float:
        """How many seconds jobs like this one are off the estimate, typically (0 unknown)."""
        learned, scale = self._learned(media_seconds)
        return 0.0 if learned is None else learned.spread * scale

    def learn(self, media_seconds: float | None, last_running: float, finished: float) -> None:
        """One job, seen still running at `last_running` seconds after it was submitted (0
        if never) and finished at `finished`: the job ended somewhere in between."""
        if finished <= 0:
            return
        self._per_job = _learn(self._per_job, last_running, finished)
        if media_seconds and media_seconds > 0:
            self._per_media_second = _learn(
                self._per_media_second, last_running / media_seconds, finished / media_seconds
            )


def _learn(learned: _Learned | None, last_running: float, finished: float) -> _Learned:
    if learned is None:
        took = (last_running + finished) / 2 if last_running > 0 else finished * (1 - FIRST_SPREAD)
        return _Learned(took, FIRST_SPREAD * took)
    if last_running > 0:  # it ended between the last two polls
        took = (last_running + finished) / 2
        learned.pull, learned.finished_first = FIRST_PULL, 0
    else:  # finished at the first poll: it ended earlier, by how much is unknown
        took = max(finished / 2, finished - max(learned.spread, learned.pull * finished))
        learned.finished_first += 1
        if learned.finished_first >= PULL_AFTER:
            learned.pull = min(MAX_PULL, learned.pull * PULL_GROWTH)
    learned.add(took)
    return learned
