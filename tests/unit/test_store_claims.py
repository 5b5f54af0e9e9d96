"""Claims, leases and fencing (issue 12), and the checks made in the transaction that
starts a job: the job limit and conversation order. The contract on both stores where it
applies (SQLite: one daemon per file, every claim granted); several nodes on PostgreSQL,
each node a store of its own, as each daemon has."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ingestd.errors import LeaseLost
from ingestd.lifecycle import State
from ingestd.store import Store, open_store
from ingestd.store.base import AlreadyRecorded, JobSlotTaken, NodeInfo
from ingestd.testing import wait_for
from tests.privatepg import PASSWORD, private_postgres  # noqa: F401 - a fixture
from tests.unit.test_store import add

LEASE = 30.0
EXPIRED = -1.0  # a lease that ran out at once: a node paused or cut off past its lease


def queued(store: Store, rel: str, key: str | None = None):
    row = add(store, rel, key=key)
    for state in (State.PROBED, State.TRANSCODED, State.QUEUED):
        row = store.transition(row.id, state)
    return row


class TestBothStores:
    def test_the_same_content_at_the_same_path_is_recorded_once(self, store: Store) -> None:
        """Nodes watching one shared folder each try to record the file: the first does."""
        first = add(store, "a.wav")
        with pytest.raises(AlreadyRecorded) as refused:
            add(store, "a.wav")
        assert refused.value.row.id == first.id
        assert [r.id for r in store.all()] == [first.id]

    def test_new_content_at_the_same_path_is_a_new_recording(self, store: Store) -> None:
        first = add(store, "a.wav", sha="one")
        second = add(store, "a.wav", sha="two")
        assert second.id != first.id

    def test_no_job_starts_past_the_limit(self, store: Store) -> None:
        """``queued -> submitting`` is refused in its own transaction once `job_limit`
        recordings are in flight; nothing is written and the recording stays queued."""
        one, two = queued(store, "1.wav"), queued(store, "2.wav")
        store.transition(one.id, State.SUBMITTING, job_limit=1)
        events = len(store.events(two.id))
        with pytest.raises(JobSlotTaken, match="1 jobs in flight, the limit is 1"):
            store.transition(two.id, State.SUBMITTING, job_limit=1)
        assert store.get(two.id).state is State.QUEUED
        assert len(store.events(two.id)) == events
        store.transition(two.id, State.SUBMITTING, job_limit=2)

    def test_a_later_part_never_starts_before_an_earlier_one(self, store: Store) -> None:
        first, second = queued(store, "p1.wav", key="k"), queued(store, "p2.wav", key="k")
        with pytest.raises(JobSlotTaken, match="earlier part"):
            store.transition(second.id, State.SUBMITTING, job_limit=5)
        store.transition(first.id, State.SUBMITTING, job_limit=5)
        store.transition(first.id, State.SUBMITTED, conversation_id="c", job_id="j")
        store.transition(second.id, State.SUBMITTING, job_limit=5)

    def test_a_claim_is_granted_released_and_renewed(self, store: Store) -> None:
        row = add(store, "a.wav")
        claim = store.claim(row.id, "n1", LEASE)
        assert claim is not None and claim.recording_id == row.id and claim.adopted_from is None
        assert store.renew_claims("n1", LEASE) == []
        store.transition(row.id, State.PROBED)  # its own claim: the write goes through
        store.release(row.id)


@pytest.fixture
def nodes(postgres_database: str) -> Iterator[tuple[Store, Store]]:
    """Two nodes ("a" and "b") on one PostgreSQL database: a store each, joined."""
    stores = []
    for name in ("a", "b"):
        store = open_store(postgres_database)
        store.join_node(NodeInfo(name=name, instance=name, host="h", pid=1), LEASE)
        stores.append(store)
    try:
        yield stores[0], stores[1]
    finally:
        for store in stores:
            store.close()


class TestSeveralNodes:
    def test_a_live_claim_keeps_other_nodes_out(self, nodes) -> None:
        a, b = nodes
        row = add(a, "a.wav")
        assert a.claim(row.id, "a", LEASE) is not None
        assert b.claim(row.id, "b", LEASE) is None
        assert row.id not in [i for i, _ in b.runnable(now=1e12)], "b is not offered it"
        assert row.id in [i for i, _ in a.runnable(now=1e12)], "a earlier run of a may be"

    def test_an_expired_claim_is_taken_over_and_fences_the_old_holder(self, nodes) -> None:
        """a's lease ran out (paused, cut off): b takes the recording over with a new epoch;
        every write a then tries for it is refused and changes nothing."""
        a, b = nodes
        row = add(a, "a.wav")
        old = a.claim(row.id, "a", EXPIRED)
        assert old is not None and old.epoch == 1
        new = b.claim(row.id, "b", LEASE)
        assert new is not None and new.epoch == 2
        assert new.adopted_from == "a" and new.previous_node == "a"
        b.transition(row.id, State.PROBED, facts={"by": "b"})
        with pytest.raises(LeaseLost, match="node 'b' took it over"):
            a.transition(row.id, State.PROBED, expected=State.DISCOVERED)
        with pytest.raises(LeaseLost):
            a.update(row.id, attempts=7)
        with pytest.raises(LeaseLost):
            a.mark_delivery(row.id, "files", state="done")
        assert a.renew_claims("a", LEASE) == [row.id]
        after = b.get(row.id)
        assert after.state is State.PROBED and after.attempts == 0
        assert [e["new"] for e in b.events(row.id)] == ["discovered", "probed"]

    def test_renewal_tells_the_old_holder_what_it_lost(self, nodes) -> None:
        a, b = nodes
        kept, lost = add(a, "kept.wav"), add(a, "lost.wav")
        a.claim(kept.id, "a", LEASE)
        a.claim(lost.id, "a", EXPIRED)
        assert b.claim(lost.id, "b", LEASE) is not None
        assert a.renew_claims("a", LEASE) == [lost.id]
        assert b.claim(kept.id, "b", LEASE) is None, "renewed: still a's"

    def test_a_released_claim_is_free_and_not_a_failover(self, nodes) -> None:
        a, b = nodes
        row = add(a, "a.wav")
        a.claim(row.id, "a", LEASE)
        a.release(row.id)
        claim = b.claim(row.id, "b", LEASE)
        assert claim is not None and claim.adopted_from is None and claim.previous_node == "a"
        a.release(row.id)  # a no longer holds it: its late release changes nothing
        assert a.claim(row.id, "a", LEASE) is None

    def test_a_restarted_node_takes_back_its_own_claims_at_once(
        self, nodes, postgres_database
    ) -> None:
        """A node SIGKILLed and started again under its name need not wait out its lease
        (a new run is admitted only when the old one is dead or silent for a lease)."""
        a, _ = nodes
        row = add(a, "a.wav")
        a.claim(row.id, "a", LEASE)
        again = open_store(postgres_database)
        try:
            # admitted as it is once the old run is silent for a lease (here: at once)
            again.join_node(NodeInfo(name="a", instance="a2", host="h", pid=2), 0)
            assert row.id in [i for i, _ in again.runnable(now=1e12)]
            claim = again.claim(row.id, "a", LEASE)
            assert claim is not None and claim.epoch == 2 and claim.adopted_from == "a"
            with pytest.raises(LeaseLost):
                a.update(row.id, attempts=1)
        finally:
            again.close()

    def test_two_nodes_never_start_more_jobs_than_the_limit(self, nodes) -> None:
        """Each node saw a free slot; the transaction that starts the job lets one in."""
        a, b = nodes
        one, two = queued(a, "1.wav"), queued(a, "2.wav")
        a.transition(one.id, State.SUBMITTING, job_limit=1)
        with pytest.raises(JobSlotTaken):
            b.transition(two.id, State.SUBMITTING, job_limit=1)
        assert a.count_states([State.SUBMITTING, State.SUBMITTED]) == 1

    def test_finished_recordings_lose_their_claim_rows(self, nodes) -> None:
        a, b = nodes
        row = add(a, "a.wav")
        a.claim(row.id, "a", LEASE)
        a.transition(row.id, State.REJECTED, error="not media")
        a.release(row.id)
        a.renew_claims("a", LEASE)
        assert b.claim(row.id, "b", LEASE).previous_node is None  # the row was removed

    def test_a_claim_given_back_leaves_the_row_as_it_was(self, nodes) -> None:
        """A node that claimed only to find it must not run the recording (draining, its
        file elsewhere) gives the claim back: the previous holder is still the previous
        one, an expired lease still counts as a failover for the next node, a recording
        nobody drove is still nobody's."""
        a, b = nodes
        fresh, dead = add(a, "fresh.wav"), add(a, "dead.wav")
        assert b.claim(fresh.id, "b", LEASE).previous_node is None
        b.unclaim(fresh.id)
        assert a.claim(fresh.id, "a", LEASE).previous_node is None
        a.claim(dead.id, "a", EXPIRED)
        assert b.claim(dead.id, "b", LEASE).adopted_from == "a"
        b.unclaim(dead.id)
        again = b.claim(dead.id, "b", LEASE)
        assert again.adopted_from == "a" and again.previous_node == "a"


def test_a_server_restart_takes_no_lease_over_before_its_holder_could_renew(
    private_postgres,  # noqa: F811
) -> None:
    """A lease that ran out while the server was down (no node could renew) is not taken
    over within a lease of the server's start: its holder comes back first."""
    server = private_postgres
    a = open_store(server.url(), password=PASSWORD)
    a.join_node(NodeInfo(name="a", instance="a", host="h", pid=1), LEASE)
    row = add(a, "a.wav")
    a.claim(row.id, "a", EXPIRED)
    a.close()
    server.stop()
    server.start()
    b = open_store(server.url(), password=PASSWORD)
    try:
        b.join_node(NodeInfo(name="b", instance="b", host="h", pid=2), 2.0)
        assert b.claim(row.id, "b", 2.0) is None, "a has a lease's time to come back"
        claim = wait_for(lambda: b.claim(row.id, "b", 2.0), 15, "the grace to end")
        assert claim.adopted_from == "a"
    finally:
        b.close()
