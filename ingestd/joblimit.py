"""The account's job limit as the daemon applies it: the configured limit, lowered for a
while when the API refuses a submission with a 429 although slots looked free.

Jobs in flight are counted in the store (``submitting`` and ``submitted`` recordings, of
every node), so ingestd itself never submits past the configured limit. A 429 then means
somebody else uses the account (another tool, a colleague's script): the API took only the
jobs in flight. Retrying at the old limit would earn a 429 per try until a job ends, so the
limit is lowered to what the API took (multiplicative decrease), recorded in the store so
every node sharing it slows down too, and climbs back by one job every
``pipeline.job_limit_recovery_seconds`` (60) without a new 429 (additive increase): AIMD,
as TCP does.
"""

from __future__ import annotations

import structlog

from ingestd.store import Store

log = structlog.get_logger()


def effective_job_limit(
    store: Store, backend: str, configured: int, now: float, recovery_seconds: float
) -> int:
    """The limit to submit within now: the configured one, or less after a recent 429."""
    lowered = store.lowered_job_limit(backend)
    if lowered is None:
        return configured
    to, at = lowered
    return max(1, min(configured, to + int(max(0.0, now - at) // recovery_seconds)))


def note_rate_limited(
    store: Store,
    backend: str,
    configured: int,
    in_flight_others: int,
    now: float,
    recovery_seconds: float,
) -> int | None:
    """A submission got a 429 while `in_flight_others` other jobs were in flight: lower
    the limit to that (at least 1) when it is below the effective limit; the new limit, or
    None when it stays (the API's refusal is what the limit already says)."""
    current = effective_job_limit(store, backend, configured, now, recovery_seconds)
    to = max(1, in_flight_others)
    if to >= current:
        return None
    store.lower_job_limit(backend, to, now)
    log.warning(
        "job_limit_lowered",
        backend=backend,
        to=to,
        configured=configured,
        recovers_one_per_s=recovery_seconds,
        reason="the API refused a submission (429) while slots looked free: another client "
        "uses the account",
    )
    return to
