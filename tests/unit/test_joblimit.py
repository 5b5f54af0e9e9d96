"""The account's job limit after a 429 (`ingestd.joblimit`): lowered to what the API took,
kept in the store for every node, and grown back one job per recovery period (AIMD)."""

from __future__ import annotations

from ingestd.joblimit import effective_job_limit, note_rate_limited
from ingestd.store import Store, open_store

RECOVERY = 60.0
T0 = 1_000_000.0


def test_without_a_429_the_configured_limit_holds(store: Store) -> None:
    assert effective_job_limit(store, "symbl", 5, T0, RECOVERY) == 5


def test_a_429_lowers_the_limit_to_the_jobs_the_api_took(store: Store) -> None:
    assert note_rate_limited(store, "symbl", 5, 2, T0, RECOVERY) == 2
    assert effective_job_limit(store, "symbl", 5, T0, RECOVERY) == 2
    assert effective_job_limit(store, "symbl", 5, T0 + RECOVERY - 1, RECOVERY) == 2
    assert effective_job_limit(store, "symbl", 5, T0 + RECOVERY, RECOVERY) == 3
    assert effective_job_limit(store, "symbl", 5, T0 + 2.5 * RECOVERY, RECOVERY) == 4
    assert effective_job_limit(store, "symbl", 5, T0 + 50 * RECOVERY, RECOVERY) == 5
    assert effective_job_limit(store, "openai", 5, T0, RECOVERY) == 5, "per backend"


def test_never_below_one_job(store: Store) -> None:
    assert note_rate_limited(store, "symbl", 5, 0, T0, RECOVERY) == 1
    assert effective_job_limit(store, "symbl", 5, T0, RECOVERY) == 1


def test_a_429_at_or_above_the_limit_changes_nothing(store: Store) -> None:
    """The API refusing what the limit already allows says nothing new."""
    note_rate_limited(store, "symbl", 5, 2, T0, RECOVERY)
    assert note_rate_limited(store, "symbl", 5, 3, T0 + 1, RECOVERY) is None
    assert effective_job_limit(store, "symbl", 5, T0 + 1, RECOVERY) == 2
    assert note_rate_limited(store, "symbl", 5, 1, T0 + 2, RECOVERY) == 1, "lower still"


def test_every_node_on_the_store_sees_the_lowered_limit(store_place, store: Store) -> None:
    other = open_store(store_place)
    try:
        note_rate_limited(store, "symbl", 10, 4, T0, RECOVERY)
        assert effective_job_limit(other, "symbl", 10, T0, RECOVERY) == 4
    finally:
        other.close()
