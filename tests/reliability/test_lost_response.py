"""Lost responses: the sandbox accepts an upload and the answer never reaches the daemon.

The promise (README, "Lost responses"): before uploading again, the daemon looks for the
conversation its first attempt created and adopts it; for an append, which cannot be looked
up, it sends the part again and logs ``append_reconcile_unknown``.
"""

from __future__ import annotations

import time

import pytest

from ingestd.testing import drop, wait_for

from .support import all_events, created, created_by_sha, results, sha256, transcript


def test_lost_post_answer_is_adopted_not_resubmitted(ingestd_env, sandbox, make_media) -> None:
    """An upload whose 201 was lost is found by name and adopted; nothing is sent twice."""
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    sandbox.faults.arm({"kind": "drop_after_upload", "times": 1})
    source = make_media("lost.wav", seconds=0.5)
    digest = sha256(source)
    drop(source, ingestd_env.inbox)
    ingestd_env.wait_states({"lost.wav": "done"})
    uploads = [s for s in sandbox.submissions() if s.get("sha256") == digest]
    assert [s["outcome"] for s in uploads] == ["dropped"], "one upload, its answer lost"
    assert len(sandbox.conversations()) == 1
    row = ingestd_env.rows()[0]
    assert row["conversation_id"] == uploads[0]["conversationId"], "the lost one was adopted"
    assert daemon.has_event("submission_reconciling", candidates=1)
    assert f"part sha256={digest}" in transcript(results(ingestd_env)[row["conversation_id"]])
    assert daemon.stop() == 0


def test_lost_answer_then_crash_is_reconciled_after_restart(
    ingestd_env, sandbox, make_media
) -> None:
    """A daemon killed after an upload whose answer was lost adopts it after the restart."""
    daemon = ingestd_env.daemon(pipeline={"retry_initial_seconds": 6, "retry_max_seconds": 6})
    daemon.start().wait_ready()
    sandbox.faults.arm({"kind": "drop_after_upload", "times": 1})
    source = make_media("crash.wav", seconds=0.5)
    digest = sha256(source)
    drop(source, ingestd_env.inbox)
    wait_for(lambda: created_by_sha(sandbox)[digest] == 1, 30, "the upload to arrive")
    daemon.kill()
    assert ingestd_env.states()["crash.wav"] == "submitting"
    restarted = ingestd_env.daemon().start()
    ingestd_env.wait_states({"crash.wav": "done"}, timeout=60)
    assert created_by_sha(sandbox)[digest] == 1, "not uploaded a second time"
    assert len(sandbox.conversations()) == 1
    assert restarted.has_event("submission_reconciling", candidates=1)
    assert restarted.stop() == 0


def test_same_named_files_with_lost_answers_each_keep_their_own_conversation(
    ingestd_env, sandbox, make_media
) -> None:
    """Two files named alike whose answers were lost before a crash never adopt each other's
    upload after the restart."""
    daemon = ingestd_env.daemon(pipeline={"retry_initial_seconds": 2, "retry_max_seconds": 2})
    daemon.start().wait_ready()
    sandbox.faults.arm({"kind": "drop_after_upload", "times": 2})
    first, second = make_media("first.wav"), make_media("second.wav")
    hashes = {"sales/call.wav": sha256(first), "support/call.wav": sha256(second)}
    drop(first, ingestd_env.inbox / "sales", "call.wav")
    drop(second, ingestd_env.inbox / "support", "call.wav")
    wait_for(lambda: len(created(sandbox)) == 2, 30, "both uploads to arrive")
    daemon.kill()  # both answers lost, neither reconciled yet
    time.sleep(2.2)  # both retries are due when the daemon comes back
    restarted = ingestd_env.daemon().start()
    ingestd_env.wait_states(dict.fromkeys(hashes, "done"))
    conversations = sandbox.conversations()
    assert len(conversations) == 2
    owners = {row["relpath"]: row["conversation_id"] for row in ingestd_env.rows()}
    for relpath, conversation_id in owners.items():
        parts = conversations[conversation_id]["parts"]
        assert [p["sha256"] for p in parts] == [hashes[relpath]], (
            f"{relpath} adopted the conversation of another file named 'call': {owners}"
        )
    assert restarted.stop() == 0


def test_lost_append_answer_is_resent_and_logged(ingestd_env, sandbox, make_media) -> None:
    """An append whose answer was lost follows the documented rule: resent once, and logged."""
    daemon = ingestd_env.daemon(watch={"conversation": {"by": "folder"}}).start()
    daemon.wait_ready()
    drop(make_media("part1.wav"), ingestd_env.inbox / "meeting")
    ingestd_env.wait_states({"meeting/part1.wav": "done"})
    assert [s["method"] for s in sandbox.submissions()] == ["POST"]
    # part1 is done, so the next upload to the audio route is part2's PUT
    fault = sandbox.faults.arm({"kind": "drop_after_upload", "times": 1, "route": "audio"})
    part2 = make_media("part2.wav")
    digest = sha256(part2)
    drop(part2, ingestd_env.inbox / "meeting")
    ingestd_env.wait_states({"meeting/part2.wav": "done"})
    assert [(f["id"], f["kind"]) for f in sandbox.faults.fired()] == [
        (fault.id, "drop_after_upload")
    ]
    assert len(sandbox.conversations()) == 1, "an append never starts a new conversation"
    puts = [s for s in created(sandbox) if s["sha256"] == digest]
    assert [(s["method"], s["outcome"]) for s in puts] == [("PUT", "dropped"), ("PUT", "created")]
    conversation_id = ingestd_env.rows()[0]["conversation_id"]
    assert {s["conversationId"] for s in puts} == {conversation_id}
    resent = [e for e in daemon.events() if e.get("event") == "append_reconcile_unknown"]
    assert [e.get("conversation_id") for e in resent] == [conversation_id], resent
    assert daemon.stop() == 0


@pytest.mark.slow(seconds=22)
def test_connection_cut_during_upload_is_retried_once(ingestd_env, sandbox, make_media) -> None:
    """A connection cut before the server took the upload leads to exactly one conversation."""
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    sandbox.faults.arm({"kind": "drop_before_upload", "times": 2})
    source = make_media("cut.wav")
    digest = sha256(source)
    drop(source, ingestd_env.inbox)
    ingestd_env.wait_states({"cut.wav": "done"})
    assert created_by_sha(sandbox)[digest] == 1
    assert len(sandbox.conversations()) == 1
    assert daemon.stop() == 0


def test_upload_the_server_finishes_after_the_client_gave_up_is_not_doubled(
    ingestd_env, sandbox, make_media
) -> None:
    """A slow server that creates the conversation after the client timed out is not sent a
    second copy: the daemon must look again before uploading again."""
    daemon = ingestd_env.daemon(symbl={"upload_timeout_seconds": 1})
    daemon.start().wait_ready()
    sandbox.faults.arm({"kind": "latency", "seconds": 3, "times": 1, "route": "submit"})
    source = make_media("slow-server.wav")
    digest = sha256(source)
    drop(source, ingestd_env.inbox)
    ingestd_env.wait_states({"slow-server.wav": "done"}, timeout=120)
    first = sandbox.submissions()[0]
    time.sleep(max(0.0, first["received_at"] + 3.5 - time.time()))
    wait_for(
        lambda: all(s["outcome"] != "receiving" for s in sandbox.submissions()),
        10,
        "the slow upload to be answered",
    )
    counts = created_by_sha(sandbox)[digest]
    names = [e for e in all_events(ingestd_env) if e.get("event") == "submission_reconciling"]
    assert counts == 1, (
        f"the file was created {counts} times at the sandbox; reconciliation ran at "
        f"{[e['timestamp'] for e in names]}, before the slow upload landed"
    )
    assert daemon.stop() == 0
