"""The outbox's bookkeeping: sink names, receipts kept across redeliveries, parts of a
conversation that failed after their job completed."""

from __future__ import annotations

from ingestd.daemon import sink_names
from ingestd.lifecycle import State
from ingestd.store import Store


def submitted(store: Store, rel: str, conversation_id: str = "c1") -> int:
    """A recording of `conversation_id` whose job the API accepted."""
    row = store.insert(
        watch="w",
        watch_root="/in",
        relpath=rel,
        size_bytes=10,
        mtime=1.0,
        sha256=rel,
        sort_key=rel,
    )
    for state in (State.PROBED, State.TRANSCODED, State.QUEUED, State.SUBMITTING):
        store.transition(row.id, state)
    store.transition(row.id, State.SUBMITTED, conversation_id=conversation_id, job_id="j")
    return row.id


def delivering(store: Store, rel: str, sinks: list[str]) -> int:
    row_id = submitted(store, rel)
    store.transition(row_id, State.FETCHING)
    store.transition(row_id, State.DELIVERING, insights_path="/x.json", deliveries=sinks)
    return row_id


class TestSinkNames:
    def test_name_else_type_and_repeats_numbered_by_position(self) -> None:
        """An explicit name wins, else the type; a taken name gets the sink's position."""
        sinks = [
            {"type": "files"},
            {"type": "slack"},
            {"type": "slack", "name": "team"},
            {"type": "slack"},
            {"type": "database", "name": "slack-3"},
        ]
        assert sink_names(sinks) == ["files", "slack", "team", "slack-3", "slack-3-4"]

    def test_names_are_unique(self) -> None:
        """However names collide, every sink gets its own (the outbox keys by it)."""
        sinks = [{"type": "slack"}] * 3 + [{"type": "x", "name": "slack-1"}] * 2
        names = sink_names(sinks)
        assert names[:3] == ["slack", "slack-1", "slack-2"]
        assert len(set(names)) == len(names)


class TestPreviousReceipts:
    def test_receipt_survives_a_requeued_delivery(self, store: Store) -> None:
        """Redelivering (the row back to pending) keeps the receipt the sink needs to update
        its earlier message; a sink that never succeeded has none."""
        row_id = delivering(store, "a.wav", ["bot", "db"])
        store.mark_delivery(row_id, "bot", state="done", detail='{"channel": "C1", "ts": "1.1"}')
        store.mark_delivery(row_id, "db", state="failed", error="down")
        store.transition(row_id, State.DONE)
        store.transition(row_id, State.DELIVERING, deliveries=["bot", "db"])
        assert [d["state"] for d in store.deliveries(row_id)] == ["pending", "pending"]
        assert store.previous_receipts("c1") == {"bot": {"channel": "C1", "ts": "1.1"}}

    def test_latest_receipt_wins(self, store: Store) -> None:
        """With several parts delivered, the most recent receipt of each sink is returned."""
        first = delivering(store, "a.wav", ["bot"])
        store.mark_delivery(first, "bot", state="done", detail='{"ts": "1.1"}')
        second = delivering(store, "b.wav", ["bot"])
        store.mark_delivery(second, "bot", state="done", detail='{"ts": "1.2"}')
        assert store.previous_receipts("c1") == {"bot": {"ts": "1.2"}}


class TestPartsOf:
    def test_parts_failed_after_their_job_are_included(self, store: Store) -> None:
        """Failed while fetching or delivering: still parts of the conversation; failed
        before the job completed: not."""
        done = delivering(store, "a.wav", ["bot"])
        store.transition(done, State.DONE)
        failed_delivering = delivering(store, "b.wav", ["bot"])
        store.transition(failed_delivering, State.FAILED, failed_from="delivering")
        failed_fetching = submitted(store, "c.wav")
        store.transition(failed_fetching, State.FETCHING)
        store.transition(failed_fetching, State.FAILED, failed_from="fetching")
        failed_submitted = submitted(store, "d.wav")
        store.transition(failed_submitted, State.FAILED, failed_from="submitted")
        parts = store.parts_of("c1")
        assert [p.relpath for p in parts] == ["a.wav", "b.wav", "c.wav"]
