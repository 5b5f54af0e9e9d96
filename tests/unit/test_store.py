"""The store contract (SQLite and PostgreSQL, tests/stores.py): transitions, mapping, outbox."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ingestd.errors import StoreError
from ingestd.lifecycle import State, TransitionError
from ingestd.store import SqliteStore, Store, open_store
from ingestd.store.base import Outlook


def add(store: Store, rel: str, key: str | None = None, sha: str | None = None):
    row = store.insert(
        watch="w",
        watch_root="/in",
        relpath=rel,
        size_bytes=10,
        mtime=1.0,
        sha256=sha or rel,
        sort_key=rel,
    )
    if key:
        row = store.update(row.id, conversation_key=key)
    return row


class TestTransitions:
    def test_transition_is_durable_across_connections(self, store_place, store: Store) -> None:
        """A committed transition is visible to a fresh connection (another process)."""
        row = add(store, "a.wav")
        store.transition(row.id, State.PROBED, media={"container": "wav"})
        other = open_store(store_place)
        assert other.get(row.id).state is State.PROBED
        assert other.get(row.id).media == {"container": "wav"}

    def test_illegal_transition_changes_nothing(self, store: Store) -> None:
        """A refused transition leaves the row and its history untouched."""
        row = add(store, "a.wav")
        with pytest.raises(TransitionError):
            store.transition(row.id, State.DONE)
        assert store.get(row.id).state is State.DISCOVERED
        assert [e["new"] for e in store.events(row.id)] == ["discovered"]

    def test_history_records_every_change(self, store: Store) -> None:
        """Each transition appends an event with its facts."""
        row = add(store, "a.wav")
        store.transition(row.id, State.PROBED, facts={"kind": "audio"})
        store.transition(row.id, State.REJECTED, error="bad", facts={"error": "bad"})
        events = store.events(row.id)
        assert [(e["old"], e["new"]) for e in events] == [
            (None, "discovered"),
            ("discovered", "probed"),
            ("probed", "rejected"),
        ]
        assert events[1]["facts"] == {"kind": "audio"}

    def test_mapping_and_deliveries_commit_with_the_transition(self, store: Store) -> None:
        """The conversation mapping and outbox rows are written in the same commit."""
        row = add(store, "a.wav", key="k")
        for state in (State.PROBED, State.TRANSCODED, State.QUEUED, State.SUBMITTING):
            store.transition(row.id, state)
        store.transition(
            row.id, State.SUBMITTED, conversation_id="c1", job_id="j1", mapping=("k", "c1", "a")
        )
        assert store.conversation_for("k") == "c1"
        store.transition(row.id, State.FETCHING)
        store.transition(row.id, State.DELIVERING, deliveries=["files", "db"])
        assert [(d["sink"], d["state"]) for d in store.deliveries(row.id)] == [
            ("db", "pending"),
            ("files", "pending"),
        ]


class TestOrderingGate:
    def test_later_part_waits_for_earlier_part(self, store: Store) -> None:
        """Part 2 may not be submitted while part 1 of the same key is not yet submitted."""
        first = add(store, "part1.wav", key="k")
        second = add(store, "part2.wav", key="k")
        assert store.earlier_part_pending(store.get(second.id))
        assert not store.earlier_part_pending(store.get(first.id))
        for state in (State.PROBED, State.TRANSCODED, State.QUEUED, State.SUBMITTING):
            store.transition(first.id, state)
        assert store.earlier_part_pending(store.get(second.id)), "one at a time while submitting"
        store.transition(first.id, State.SUBMITTED, conversation_id="c", job_id="j")
        assert not store.earlier_part_pending(store.get(second.id))

    def test_failed_earlier_part_does_not_block(self, store: Store) -> None:
        """A part that failed does not hold the rest of its conversation hostage."""
        first = add(store, "part1.wav", key="k")
        second = add(store, "part2.wav", key="k")
        store.transition(first.id, State.REJECTED, error="not media")
        assert not store.earlier_part_pending(store.get(second.id))

    def test_other_keys_do_not_block(self, store: Store) -> None:
        """Recordings of different conversations never wait for each other."""
        add(store, "a1.wav", key="a")
        other = add(store, "b2.wav", key="b")
        assert not store.earlier_part_pending(store.get(other.id))


class TestQueries:
    def test_runnable_respects_backoff(self, store: Store) -> None:
        """A recording in back-off is not runnable before its time."""
        row = add(store, "a.wav")
        store.update(row.id, next_attempt_at=1000.0)
        assert store.runnable(999.0) == []
        assert store.runnable(1000.0) == [(row.id, State.DISCOVERED)]

    def test_runnable_lists_ids_and_states_oldest_first(self, store: Store) -> None:
        """Only what the dispatcher needs to decide: id and state, in arrival order."""
        first, second = add(store, "a.wav"), add(store, "b.wav")
        store.transition(second.id, State.PROBED)
        store.update(first.id, next_attempt_at=time.time() + 60)
        third = add(store, "c.wav")
        assert store.runnable(time.time()) == [
            (second.id, State.PROBED),
            (third.id, State.DISCOVERED),
        ]

    def test_runnable_lists_only_the_states_asked_for(self, store: Store) -> None:
        """The dispatcher leaves out what it cannot start now (queued, with every job slot
        taken), so a backlog of queued rows is not read again on every state change."""
        queued, probed = add(store, "a.wav"), add(store, "b.wav")
        store.transition(probed.id, State.PROBED)
        for state in (State.PROBED, State.TRANSCODED, State.QUEUED):
            store.transition(queued.id, state)
        now = time.time()
        assert store.runnable(now) == [(queued.id, State.QUEUED), (probed.id, State.PROBED)]
        assert store.runnable(now, states=[State.PROBED]) == [(probed.id, State.PROBED)]
        assert store.runnable(now, states=[State.DONE]) == []
        assert store.runnable(now, states=[]) == []

    def test_outlook_counts_jobs_in_flight_and_the_next_wakeup(self, store: Store) -> None:
        """The dispatcher's one read per round: submitting and submitted recordings count
        as jobs in flight; the wakeup is the earliest back-off of an unfinished one."""
        assert store.outlook() == Outlook(in_flight=0, next_wakeup=None)
        submitted, submitting, waiting, done = (add(store, f"{n}.wav") for n in "abcd")
        path = (State.PROBED, State.TRANSCODED, State.QUEUED, State.SUBMITTING)
        for state in path:
            store.transition(submitting.id, state)
        for state in (*path, State.SUBMITTED):
            store.transition(submitted.id, state)
        store.update(waiting.id, next_attempt_at=500.0)
        store.transition(done.id, State.REJECTED, error="not media")
        store.update(done.id, next_attempt_at=100.0)  # finished: not waited for
        outlook = store.outlook()
        assert outlook.in_flight == 2
        assert outlook.next_wakeup == 0  # the two in flight may run now
        store.update(submitted.id, next_attempt_at=700.0)
        store.update(submitting.id, next_attempt_at=600.0)
        assert store.outlook() == Outlook(in_flight=2, next_wakeup=500.0)

    def test_writes_return_the_row_as_committed(self, store: Store) -> None:
        """`transition` and `update` hand back what they wrote (no second read): the same
        row a `get` reads afterwards."""
        row = add(store, "a.wav")
        moved = store.transition(row.id, State.PROBED, media={"kind": "audio"}, facts={"x": 1})
        assert moved == store.get(row.id)
        assert moved.state is State.PROBED and moved.media == {"kind": "audio"}
        updated = store.update(row.id, next_attempt_at=42.0, error="later")
        assert updated == store.get(row.id)
        assert (updated.next_attempt_at, updated.error) == (42.0, "later")
        with pytest.raises(KeyError):
            store.update(row.id + 1000, next_attempt_at=1.0)

    def test_fingerprint_lookup_ignores_duplicates(self, store: Store) -> None:
        """The original of a fingerprint is the first non-duplicate recording."""
        original = add(store, "a.wav", sha="same")
        store.insert(
            watch="w",
            watch_root="/in",
            relpath="b.wav",
            size_bytes=10,
            mtime=1,
            sha256="same",
            state=State.DUPLICATE,
            duplicate_of=original.id,
        )
        assert store.original_of(10, "same").id == original.id
        assert store.original_of(11, "same") is None


def test_unusable_database_is_a_clear_error(tmp_path: Path) -> None:
    """A corrupt state file fails with a StoreError naming it, not a traceback."""
    bad = tmp_path / "state.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"state\.db"):
        SqliteStore(bad)
