"""The state table, pinned: a change to `lifecycle.TRANSITIONS` must change this file too.

Issue 17.8: allowing ``done -> submitted`` passed every other test. Here the table is a
literal; every exit it forbids is refused by the store without writing an event; the
ordering gate is asserted at each state of the earlier part; and no module changes a
recording's state except through `ingestd.transitions`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ingestd.lifecycle import TRANSITIONS, State, TransitionError
from ingestd.store import RecordingRow, Store

ROOT = Path(__file__).parents[2]

ALLOWED: dict[str, set[str]] = {
    "discovered": {"probed", "duplicate", "rejected", "failed", "dismissed"},
    "probed": {"transcoded", "rejected", "failed", "dismissed"},
    "transcoded": {"queued", "probed", "rejected", "failed", "dismissed"},
    "queued": {"submitting", "probed", "rejected", "failed", "dismissed"},
    "submitting": {"submitted", "queued", "failed"},
    "submitted": {"fetching", "queued", "failed"},
    "fetching": {"delivering", "failed"},
    "delivering": {"done", "failed"},
    "done": {"delivering"},
    "failed": {
        "discovered",
        "probed",
        "transcoded",
        "queued",
        "submitting",
        "submitted",
        "fetching",
        "delivering",
        "dismissed",
    },
    "rejected": {"discovered", "dismissed"},
    "duplicate": set(),
    "dismissed": set(),
}
FORBIDDEN = [(old, new) for old in ALLOWED for new in ALLOWED if new not in ALLOWED[old]]
PERMITTED = [(old, new) for old in ALLOWED for new in sorted(ALLOWED[old])]

# The ordering gate: while the earlier part is in one of these, the later part waits.
EARLIER_PART_HOLDS = {
    "discovered": True,
    "probed": True,
    "transcoded": True,
    "queued": True,
    "submitting": True,
    "submitted": False,
    "fetching": False,
    "delivering": False,
    "done": False,
    "failed": False,
    "rejected": False,
    "duplicate": False,
    "dismissed": False,
}


def in_state(store: Store, state: str, rel: str = "a.wav", key: str | None = None) -> RecordingRow:
    """A recording stored straight into `state` (insert does not consult the table)."""
    return store.insert(
        watch="w",
        watch_root="/in",
        relpath=rel,
        size_bytes=10,
        mtime=1.0,
        sha256=rel,
        sort_key=rel,
        state=State(state),
        conversation_key=key,
    )


def test_the_table_is_exactly_the_pinned_one() -> None:
    assert {str(old): {str(n) for n in new} for old, new in TRANSITIONS.items()} == ALLOWED


@pytest.mark.parametrize(("old", "new"), FORBIDDEN, ids=[f"{o}->{n}" for o, n in FORBIDDEN])
def test_the_store_refuses_a_forbidden_exit_without_writing(
    store: Store, old: str, new: str
) -> None:
    row = in_state(store, old)
    with pytest.raises(TransitionError):
        store.transition(row.id, State(new), facts={"tried": True})
    assert store.get(row.id).state == old
    assert [(e["old"], e["new"]) for e in store.events(row.id)] == [(None, old)]


@pytest.mark.parametrize(("old", "new"), PERMITTED, ids=[f"{o}->{n}" for o, n in PERMITTED])
def test_the_store_takes_every_permitted_exit(store: Store, old: str, new: str) -> None:
    row = in_state(store, old)
    assert store.transition(row.id, State(new)).state == new
    assert store.events(row.id)[-1]["old"] == old


def test_a_row_that_moved_meanwhile_is_refused_without_writing(store: Store) -> None:
    """`expected` is the state the caller read: a change made since (another process's)
    is not overwritten."""
    row = in_state(store, "failed")
    store.transition(row.id, State.DISCOVERED)  # e.g. `ingestd retry` in another process
    with pytest.raises(TransitionError, match="changed meanwhile"):
        store.transition(row.id, State.QUEUED, expected=State.FAILED)
    assert store.get(row.id).state is State.DISCOVERED
    assert len(store.events(row.id)) == 2


@pytest.mark.parametrize("state", list(EARLIER_PART_HOLDS))
def test_the_ordering_gate_at_each_state_of_the_earlier_part(store: Store, state: str) -> None:
    later = in_state(store, "queued", "part2.wav", key="k")
    in_state(store, state, "part1.wav", key="k")
    in_state(store, "discovered", "other1.wav", key="other")  # another conversation
    assert store.earlier_part_pending(store.get(later.id)) is EARLIER_PART_HOLDS[state]


@pytest.mark.parametrize("state", list(EARLIER_PART_HOLDS))
def test_a_later_part_never_holds_an_earlier_one(store: Store, state: str) -> None:
    first = in_state(store, "queued", "part1.wav", key="k")
    in_state(store, state, "part2.wav", key="k")
    assert store.earlier_part_pending(store.get(first.id)) is False


def test_only_transitions_changes_states() -> None:
    """One transition path: outside the store, only `ingestd.transitions` calls
    ``Store.transition`` (so every change is logged and reaches the event hooks)."""
    allowed = {ROOT / "ingestd" / "transitions.py"}
    callers = [
        str(path.relative_to(ROOT))
        for folder in ("ingestd", "plugins")
        for path in (ROOT / folder).rglob("*.py")
        if "store" not in path.relative_to(ROOT).parts[:2]
        and path not in allowed
        and re.search(r"store\.transition\(", path.read_text())
    ]
    assert callers == []
