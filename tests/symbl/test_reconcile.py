"""Reconciling a POST whose answer was lost: the upload tag, the wait for a late landing.

The rule (README, "Lost responses"): each POST carries a random tag in ``metadata``, stored
before the upload; a lookup adopts only the conversation carrying that tag (or, where the
API shows no tags, the single candidate); and while the lost upload may still land, a lookup
that finds nothing is repeated rather than followed by a second upload.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ingestd import pipeline as pipeline_module
from ingestd.configload import parse_config
from ingestd.errors import Permanent, Retryable
from ingestd.lifecycle import State
from ingestd.model import Endpoint, EndpointKind, Insights, Params, Submission
from ingestd.pipeline import Pipeline, look_again_in
from ingestd.plugins import load_plugins
from ingestd.sandbox import Sandbox
from ingestd.store import RecordingRow, SqliteStore
from ingestd_symbl.client import (
    LOST_AFTER_CLOSE_SECONDS,
    LOST_AFTER_TIMEOUT_SECONDS,
    AnswerLost,
)
from ingestd_symbl.reconcile import (
    UPLOAD_TAG_KEY,
    TaggedUploads,
    match_upload,
    upload_tag,
    with_upload_tag,
)
from tests.symbl.conftest import make_client, write_wav
from tests.symbl.test_submit import WAV, upload

URL = Endpoint(EndpointKind.AUDIO_URL, url="https://example.com/call.mp3")


class TestMatchUpload:
    def test_the_tag_picks_ours_among_same_named(self) -> None:
        """Of conversations with the same name, the one carrying our tag is adopted."""
        assert match_upload("b", [("2", "a"), ("1", "b")]) == ("1", [])

    def test_another_tag_is_never_ours(self) -> None:
        """A conversation tagged by another recording is not adopted, even if alone."""
        assert match_upload("b", [("2", "a")]) == (None, [])

    def test_untagged_is_not_ours_once_the_api_shows_tags(self) -> None:
        """Where the API echoes tags, an untagged conversation is someone else's."""
        assert match_upload("b", [("2", "a"), ("1", None)]) == (None, [])

    def test_a_single_untagged_candidate_is_ours_where_no_tags_show(self) -> None:
        """An API that drops metadata falls back to the name rule: one candidate is ours."""
        assert match_upload("b", [("1", None)]) == ("1", [])
        assert match_upload(None, [("2", "a"), ("1", None)]) == ("1", [])

    def test_several_untagged_candidates_are_ambiguous(self) -> None:
        """Two untagged candidates cannot be told apart: none is adopted, both are named."""
        assert match_upload("b", [("2", None), ("1", None)]) == (None, ["2", "1"])
        assert match_upload(None, [("2", None), ("1", None)]) == (None, ["2", "1"])

    def test_no_candidate(self) -> None:
        """Nothing found, nothing adopted, nothing ambiguous."""
        assert match_upload("b", []) == (None, [])


class TestLookAgainIn:
    def test_an_upload_that_was_answered_is_not_awaited(self) -> None:
        """No doubt (the API answered): the lookup is believed at once."""
        assert look_again_in(None, 100.0) is None

    def test_gaps_grow_and_the_last_lookup_falls_at_the_deadline(self) -> None:
        """Lookups come 1 s apart at first, then double, and end exactly at the deadline."""
        doubt, now, times = (100.0, 130.0), 100.2, []
        while (wait := look_again_in(doubt, now)) is not None:
            now += wait
            times.append(round(now, 1))
        assert times == [101.2, 102.4, 104.8, 109.6, 119.2, 130.0]

    def test_past_the_deadline_nothing_is_awaited(self) -> None:
        """Once the upload can no longer land, an empty lookup is believed."""
        assert look_again_in((100.0, 110.0), 110.0) is None


class TestTag:
    def test_tag_is_added_to_the_users_metadata(self) -> None:
        """The tag joins metadata set by the user; the original params are left alone."""
        params = Params(name="call", metadata={"salesStage": "qualification"})
        tagged = with_upload_tag(params, "t1")
        assert tagged == {
            "name": "call",
            "metadata": {"salesStage": "qualification", UPLOAD_TAG_KEY: "t1"},
        }
        assert params["metadata"] == {"salesStage": "qualification"}
        assert upload_tag(tagged) == "t1" and upload_tag(params) is None

    def test_tag_round_trips_through_the_sandbox(self, sb: Sandbox, tmp_path: Path) -> None:
        """The tag sent with a POST comes back in the conversation's metadata."""
        path = tmp_path / "a.wav"
        write_wav(path, 10_000)

        async def scenario() -> dict[str, Any]:
            client = make_client(sb)
            try:
                params = with_upload_tag(Params(name="call"), "t1")
                sub = await client.submit(WAV, upload(path), params, None)
                return (await client.fetch_insights(sub.conversation_id, ())).conversation
            finally:
                await client.aclose()

        assert upload_tag(asyncio.run(scenario())) == "t1"


class TestAnswerLost:
    def _submit(self, sb: Sandbox, path: Path, **options: Any) -> Retryable:
        async def scenario() -> Retryable:
            client = make_client(sb, **options)
            try:
                with pytest.raises(Retryable) as caught:
                    await client.submit(WAV, upload(path), Params(name="x"), None)
                return caught.value
            finally:
                await client.aclose()

        return asyncio.run(scenario())

    def test_a_closed_connection_may_land_shortly(self, sb: Sandbox, tmp_path: Path) -> None:
        """An answer lost to a closed connection says the upload may land within 10 s."""
        path = tmp_path / "a.wav"
        write_wav(path, 10_000)
        sb.faults.arm({"kind": "drop_after_upload", "times": 1})
        error = self._submit(sb, path)
        assert isinstance(error, AnswerLost)
        assert error.may_land_within_seconds == LOST_AFTER_CLOSE_SECONDS

    def test_a_timed_out_answer_may_land_later(self, sb: Sandbox, tmp_path: Path) -> None:
        """An answer we stopped waiting for says the API may still be working for 30 s."""
        path = tmp_path / "a.wav"
        write_wav(path, 10_000)
        sb.faults.arm({"kind": "latency", "seconds": 1.5, "times": 1, "route": "submit"})
        error = self._submit(sb, path, upload_timeout_seconds=0.3)
        assert isinstance(error, AnswerLost)
        assert error.may_land_within_seconds == LOST_AFTER_TIMEOUT_SECONDS

    def test_refusals_leave_no_doubt(self, sb: Sandbox, tmp_path: Path) -> None:
        """Retries used up on 503s: nothing arrived, so nothing is said about landing."""
        path = tmp_path / "a.wav"
        write_wav(path, 10_000)
        sb.faults.arm({"kind": "status", "status": 503, "times": 5, "route": "submit"})
        error = self._submit(sb, path, max_retries=1)
        assert not isinstance(error, AnswerLost)
        assert getattr(error, "may_land_within_seconds", None) is None


class FakeBackend(TaggedUploads):
    """Conversations in a dict; `submit` creates one, or raises `fail` (creating nothing).
    Its lookups are the Symbl client's own (`TaggedUploads`)."""

    name = "fake"

    def __init__(self) -> None:
        self.conversations: dict[str, dict[str, Any]] = {}
        self.submitted: list[Params] = []
        self.fail: Retryable | None = None
        self.on_submit: Any = None

    def add(self, name: str, tag: str | None) -> str:
        cid = str(1000 + len(self.conversations))
        metadata = {UPLOAD_TAG_KEY: tag} if tag else {}
        self.conversations[cid] = {"id": cid, "name": name, "metadata": metadata}
        return cid

    async def find_conversations(self, name: str, created_after: float) -> list[str]:
        return [cid for cid, c in reversed(self.conversations.items()) if c["name"] == name]

    async def fetch_insights(self, conversation_id: str, kinds: Any) -> Insights:
        if conversation_id not in self.conversations:
            raise Permanent("gone", status=404)
        return Insights(conversation_id, dict(self.conversations[conversation_id]))

    async def submit(self, endpoint: Any, upload: Any, params: Params, cid: Any) -> Submission:
        self.submitted.append(params)
        if self.on_submit is not None:
            self.on_submit()
        if self.fail is not None:
            raise self.fail
        return Submission(self.add(params["name"], upload_tag(params)), "job-1")


@pytest.fixture
def world(tmp_path: Path) -> Any:
    """``(make_pipeline, backend, store, row)``: a recording in ``submitting``."""
    store = SqliteStore(tmp_path / "state.db")
    backend = FakeBackend()
    config = parse_config(f"symbl: {{base_url: sandbox}}\nwatch: [{{path: {tmp_path}}}]")
    row = store.insert(
        watch="inbox",
        watch_root=str(tmp_path),
        relpath="sales/call.wav",
        size_bytes=1,
        mtime=0.0,
        sha256="0" * 64,
        state=State.SUBMITTING,
    )
    store.update(row.id, name="call", params={"name": "call"}, endpoint=URL.to_dict())

    def make_pipeline() -> Pipeline:
        plugins = load_plugins(entry_points_enabled=False)
        return Pipeline(config, store, plugins, backend, {})  # type: ignore[arg-type]

    yield make_pipeline, backend, store, store.get(row.id)
    store.close()


def _run(pipeline: Pipeline, row: RecordingRow) -> RecordingRow:
    return asyncio.run(pipeline.run_stage(row))


class TestReconcile:
    def test_the_tag_is_stored_before_the_upload(self, world: Any) -> None:
        """A fresh POST's tag is durable when the bytes leave, and it is what is sent."""
        make_pipeline, backend, store, row = world
        stored: list[str | None] = []
        backend.on_submit = lambda: stored.append(upload_tag(store.get(row.id).params))
        after = _run(make_pipeline(), row)
        assert after.state is State.SUBMITTED
        assert stored == [upload_tag(backend.submitted[0])] and stored[0]

    def test_another_recordings_same_named_upload_is_not_adopted(self, world: Any) -> None:
        """After a restart, the candidate carrying our tag is adopted, not the newer one."""
        make_pipeline, backend, store, row = world
        store.update(
            row.id, upload_started_at=time.time(), params=with_upload_tag(row.params, "ours")
        )
        mine = backend.add("call", "ours")
        backend.add("call", "theirs")  # newer, same name, another recording's
        after = _run(make_pipeline(), store.get(row.id))
        assert (after.state, after.conversation_id) == (State.SUBMITTED, mine)
        assert backend.submitted == []

    def test_lost_answer_is_awaited_then_adopted(self, world: Any) -> None:
        """An upload whose answer was lost is looked for again, not sent again, until it lands."""
        make_pipeline, backend, _, row = world
        pipeline = make_pipeline()
        backend.fail = AnswerLost("lost", may_land_within_seconds=10)
        row = _run(pipeline, row)
        assert row.state is State.SUBMITTING and row.attempts == 1
        backend.fail = None
        with capture_logs() as logs:
            row = _run(pipeline, row)
        assert row.state is State.SUBMITTING and len(backend.submitted) == 1
        assert 0.5 < row.next_attempt_at - time.time() <= 1.0
        assert [e["event"] for e in logs if "reconcil" in e["event"]] == [
            "submission_reconciling",
            "submission_reconcile_waiting",
        ]
        landed = backend.add("call", upload_tag(backend.submitted[0]))  # late, at the API
        row = _run(pipeline, row)
        assert (row.state, row.conversation_id) == (State.SUBMITTED, landed)
        assert len(backend.submitted) == 1, "never sent twice"

    def test_refused_upload_is_sent_again_at_once_with_its_tag(self, world: Any) -> None:
        """An upload the API refused (no doubt) is sent again without waiting, same tag."""
        make_pipeline, backend, _, row = world
        pipeline = make_pipeline()
        backend.fail = Retryable("HTTP 503, retries used up")
        row = _run(pipeline, row)
        backend.fail = None
        row = _run(pipeline, row)
        assert row.state is State.SUBMITTED and len(backend.submitted) == 2
        assert upload_tag(backend.submitted[0]) == upload_tag(backend.submitted[1])

    def test_an_earlier_runs_upload_is_awaited_after_a_restart(self, world: Any) -> None:
        """An upload of an earlier run may still land: an empty lookup waits, no upload."""
        make_pipeline, backend, store, row = world
        store.update(row.id, upload_started_at=time.time(), params=with_upload_tag(row.params, "t"))
        row = _run(make_pipeline(), store.get(row.id))
        assert row.state is State.SUBMITTING and backend.submitted == []
        assert row.next_attempt_at > time.time()

    def test_ambiguous_candidates_are_left_and_the_file_sent_again(
        self, world: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Two untagged same-named candidates: neither adopted, logged, the file sent again."""
        monkeypatch.setattr(pipeline_module, "RESTART_GRACE_SECONDS", 0.0)
        make_pipeline, backend, store, row = world
        store.update(row.id, upload_started_at=time.time())  # an attempt from before tags
        first, second = backend.add("call", None), backend.add("call", None)
        with capture_logs() as logs:
            row = _run(make_pipeline(), store.get(row.id))
        assert row.state is State.SUBMITTED
        assert row.conversation_id not in (first, second) and len(backend.submitted) == 1
        ambiguous = [e for e in logs if e["event"] == "submission_reconcile_ambiguous"]
        assert [e["candidates"] for e in ambiguous] == [[second, first]]

    def test_a_candidate_deleted_meanwhile_is_skipped(self, world: Any) -> None:
        """A listed conversation gone by the time its metadata is read is not a candidate."""
        make_pipeline, backend, store, row = world
        store.update(row.id, upload_started_at=time.time(), params=with_upload_tag(row.params, "t"))
        mine = backend.add("call", "t")
        real_fetch = backend.fetch_insights
        gone = backend.add("call", None)

        async def fetch(cid: str, kinds: Any) -> Insights:
            if cid == gone:
                raise Permanent("gone", status=404)
            return await real_fetch(cid, kinds)

        backend.fetch_insights = fetch
        row = _run(make_pipeline(), store.get(row.id))
        assert (row.state, row.conversation_id) == (State.SUBMITTED, mine)
