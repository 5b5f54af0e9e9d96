"""API faults: 429 bursts, 5xx, timeouts, token expiry, failed jobs, retries used up.

Every fault is injected at the sandbox, over real HTTP on loopback, against the real daemon.
"""

from __future__ import annotations

import itertools
import json
import time

from ingestd.testing import drop, wait_for

from .support import (
    cli,
    created,
    created_by_sha,
    results,
    sha256,
    transcript,
    wait_terminal,
)


def test_429_with_retry_after_is_honoured(ingestd_env, sandbox, make_media) -> None:
    """After a 429 with Retry-After: 1, the daemon waits at least 1 s before trying again."""
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    sandbox.faults.arm(
        {"kind": "status", "status": 429, "times": 3, "retry_after": 1, "route": "submit"}
    )
    source = make_media("busy.wav")
    digest = sha256(source)
    drop(source, ingestd_env.inbox)
    ingestd_env.wait_states({"busy.wav": "done"})
    attempts = [s for s in sandbox.submissions() if s["method"] == "POST"]
    assert [s["outcome"] for s in attempts] == ["fault", "fault", "fault", "created"]
    gaps = [b["received_at"] - a["received_at"] for a, b in itertools.pairwise(attempts)]
    assert all(gap >= 0.98 for gap in gaps), f"Retry-After: 1 not honoured: gaps {gaps}"
    assert created_by_sha(sandbox)[digest] == 1
    assert daemon.stop() == 0


def test_429_bursts_never_push_past_the_job_limit(ingestd_env, sandbox, make_media) -> None:
    """Under 429 bursts a batch completes once each and never exceeds the account's job limit."""
    sandbox.set_options({"concurrency_limit": 2, "job_seconds": 0.4})
    daemon = ingestd_env.daemon(symbl={"max_concurrent_jobs": 2}).start()
    daemon.wait_ready()
    sandbox.faults.arm({"kind": "status", "status": 429, "times": 4, "retry_after": 0.5})
    files = [make_media(f"burst-{i}.wav", seconds=0.3) for i in range(8)]
    hashes = [sha256(f) for f in files]
    for f in files:
        drop(f, ingestd_env.inbox)
    wait_for(lambda: sandbox.stats()["jobs_created"] >= 2, 30, "the first jobs")
    # a second burst while at least five files still wait for their turn
    sandbox.faults.arm({"kind": "status", "status": 429, "times": 4, "retry_after": 0.5})
    ingestd_env.wait_states({f.name: "done" for f in files}, timeout=90)
    counts = created_by_sha(sandbox)
    assert all(counts[h] == 1 for h in hashes), counts
    stats = sandbox.stats()
    assert stats["max_concurrent_jobs_seen"] <= 2
    limit_refusals = [
        s for s in sandbox.submissions() if s["outcome"] == "rejected" and s["status_code"] == 429
    ]
    assert not limit_refusals, "the daemon itself never submits past max_concurrent_jobs"
    assert stats["faults_fired"].get("status") == 8
    assert daemon.stop() == 0


def test_a_429_while_slots_look_free_lowers_the_limit_and_spends_no_attempt(
    ingestd_env, sandbox, make_media
) -> None:
    """429s on uploads while ingestd has fewer jobs in flight than the limit (another
    client uses the account): the refused recordings go back to the queue without spending
    an attempt (two attempts per stage here, four refusals: none fails), the limit is
    lowered for a while, the client never retries a 429 at the limit by itself."""
    sandbox.set_options({"concurrency_limit": 3, "job_seconds": 0.5})
    daemon = ingestd_env.daemon(
        symbl={"max_concurrent_jobs": 3}, pipeline={"max_attempts": 2}
    ).start()
    daemon.wait_ready()
    sandbox.faults.arm({"kind": "status", "status": 429, "times": 4, "route": "submit"})
    files = [make_media(f"shared-{i}.wav", seconds=0.3) for i in range(6)]
    hashes = [sha256(f) for f in files]
    for f in files:
        drop(f, ingestd_env.inbox)
    ingestd_env.wait_states({f.name: "done" for f in files}, timeout=90)
    assert all(created_by_sha(sandbox)[h] == 1 for h in hashes)
    assert sandbox.stats()["faults_fired"].get("status") == 4
    events = daemon.events()
    lowered = [e for e in events if e["event"] == "job_limit_lowered"]
    assert lowered and all(e["to"] < 3 and e["configured"] == 3 for e in lowered), lowered
    assert not [e for e in events if e["event"] == "api_retry" and e.get("status") == 429]
    requeued = [e for e in events if e["event"] == "state_changed" and "rate_limited" in e]
    assert len(requeued) == 4
    assert {(e["old"], e["new"]) for e in requeued} == {("submitting", "queued")}
    assert sandbox.stats()["max_concurrent_jobs_seen"] <= 3
    assert daemon.stop() == 0


def test_server_errors_on_every_route_are_retried(ingestd_env, sandbox, make_media) -> None:
    """500/502/503/504 on token, upload, job and conversation routes are outlived."""
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    for status, route in ((500, "token"), (502, "submit"), (503, "job"), (504, "conversation")):
        sandbox.faults.arm({"kind": "status", "status": status, "times": 2, "route": route})
    files = [make_media(f"err-{i}.wav") for i in range(3)]
    hashes = [sha256(f) for f in files]
    for f in files:
        drop(f, ingestd_env.inbox)
    ingestd_env.wait_states({f.name: "done" for f in files})
    assert sandbox.faults.armed() == [], "every fault fired"
    counts = created_by_sha(sandbox)
    assert all(counts[h] == 1 for h in hashes), counts
    assert len(sandbox.conversations()) == 3
    assert daemon.stop() == 0


def test_request_timeouts_are_retried(ingestd_env, sandbox, make_media) -> None:
    """Answers slower than request_timeout_seconds (token, job, conversation) are retried."""
    daemon = ingestd_env.daemon(symbl={"request_timeout_seconds": 0.5}).start()
    daemon.wait_ready()
    for route in ("token", "job", "conversation"):
        sandbox.faults.arm({"kind": "latency", "seconds": 1.5, "times": 2, "route": route})
    source = make_media("slow.wav")
    digest = sha256(source)
    drop(source, ingestd_env.inbox)
    ingestd_env.wait_states({"slow.wav": "done"}, timeout=90)
    assert sandbox.faults.armed() == []
    assert created_by_sha(sandbox)[digest] == 1
    assert any(e["event"] == "api_retry" and "Timeout" in e["error"] for e in daemon.events())
    assert daemon.stop() == 0


def test_token_revoked_mid_run_is_replaced(ingestd_env, sandbox, make_media) -> None:
    """A token revoked while jobs are in flight is noticed (401), replaced, and nothing fails."""
    sandbox.set_options({"job_seconds": 0.5})
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    files = [make_media(f"rev-{i}.wav") for i in range(6)]
    hashes = [sha256(f) for f in files]
    for f in files:
        drop(f, ingestd_env.inbox)
    wait_for(lambda: sandbox.stats()["jobs_created"] >= 2, 30, "jobs in flight")
    sandbox.faults.arm({"kind": "expire_tokens"})
    states = wait_terminal(ingestd_env, [f.name for f in files], timeout=60)
    assert set(states.values()) == {"done"}, states
    counts = created_by_sha(sandbox)
    assert all(counts[h] == 1 for h in hashes), counts
    assert sandbox.stats()["token_generations"] == 2, "one token, then one after the revocation"
    assert daemon.has_event("token_rejected"), "the revoked token was noticed and replaced"
    assert daemon.stop() == 0


def test_tokens_that_expire_during_a_run_are_renewed(ingestd_env, sandbox, make_media) -> None:
    """With a 2 s token lifetime a run of several seconds renews its token and nothing fails."""
    sandbox.set_options({"job_seconds": 0.5, "token_lifetime_seconds": 2})
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    files = [make_media(f"tok-{i}.wav") for i in range(6)]
    hashes = [sha256(f) for f in files]
    for f in files[:3]:
        drop(f, ingestd_env.inbox)
    time.sleep(2.5)  # the first token has run out by now
    for f in files[3:]:
        drop(f, ingestd_env.inbox)
    states = wait_terminal(ingestd_env, [f.name for f in files], timeout=60)
    assert set(states.values()) == {"done"}, states
    counts = created_by_sha(sandbox)
    assert all(counts[h] == 1 for h in hashes), counts
    assert sandbox.stats()["token_generations"] >= 2, "a fresh token after the first ran out"
    assert daemon.stop() == 0


def test_failed_job_is_submitted_again_by_itself(ingestd_env, sandbox, make_media) -> None:
    """A job the API fails once: the file goes back to the queue and is submitted again
    after a back-off, as a new conversation; the failed one is not the result."""
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    sandbox.faults.arm({"kind": "fail_job", "times": 1})
    source = make_media("flaky.wav")
    digest = sha256(source)
    drop(source, ingestd_env.inbox)
    ingestd_env.wait_states({"flaky.wav": "done"})
    row = ingestd_env.rows()[0]
    posts = [s for s in created(sandbox) if s["method"] == "POST"]
    assert [s["sha256"] for s in posts] == [digest, digest], (
        "the failed job's upload, then one more"
    )
    failed_cid = posts[0]["conversationId"]
    assert row["conversation_id"] == posts[1]["conversationId"] != failed_cid
    assert list(results(ingestd_env)) == [row["conversation_id"]]
    log = daemon.events()
    [again] = [
        e for e in log if e.get("event") == "state_changed" and e.get("job_failed") is not None
    ]
    assert (again["old"], again["new"], again["failed_jobs"]) == ("submitted", "queued", 1)
    assert daemon.stop() == 0


def test_failed_first_part_is_posted_again_and_later_parts_follow_it(
    ingestd_env, sandbox, make_media
) -> None:
    """In a folder conversation whose first part's job fails, the first part is POSTed
    again and the second is appended to that new conversation, never to the failed one."""
    daemon = ingestd_env.daemon(watch={"conversation": {"by": "folder"}}).start()
    daemon.wait_ready()
    sandbox.faults.arm({"kind": "fail_job", "times": 1})
    meeting = ingestd_env.inbox / "meeting"
    meeting.mkdir()
    first = make_media("part1.wav", seconds=0.4)
    drop(first, meeting)
    wait_for(lambda: len(created(sandbox)) >= 1, 30, "the first upload")
    drop(make_media("part2.wav", seconds=0.4), meeting)
    ingestd_env.wait_states({"meeting/part1.wav": "done", "meeting/part2.wav": "done"})
    uploads = created(sandbox)
    assert [s["method"] for s in uploads] == ["POST", "POST", "PUT"]
    failed_cid, kept_cid = uploads[0]["conversationId"], uploads[1]["conversationId"]
    assert failed_cid != kept_cid and uploads[2]["conversationId"] == kept_cid
    assert {r["conversation_id"] for r in ingestd_env.rows()} == {kept_cid}
    mapping = cli(ingestd_env, "map", "list")
    assert kept_cid in mapping.stdout and failed_cid not in mapping.stdout
    assert daemon.stop() == 0


def test_jobs_failing_again_and_again_end_failed_then_retry(
    ingestd_env, sandbox, make_media
) -> None:
    """Jobs failing every time: after pipeline.resubmit_failed_jobs more tries the recording
    is failed with the reason; `ingestd retry` submits it again and it finishes."""
    daemon = ingestd_env.daemon(pipeline={"resubmit_failed_jobs": 1}).start()
    daemon.wait_ready()
    sandbox.faults.arm({"kind": "fail_job", "times": 2})
    source = make_media("doomed.wav")
    digest = sha256(source)
    drop(source, ingestd_env.inbox)
    ingestd_env.wait_states({"doomed.wav": "failed"})
    row = ingestd_env.rows()[0]
    assert row["job_id"] in row["error"] and "2 jobs failed" in row["error"]
    assert created_by_sha(sandbox)[digest] == 2, "the first job and one resubmission"
    status = cli(ingestd_env, "status", "--json")
    assert status.returncode == 0, status.stderr
    failures = json.loads(status.stdout)["failures"]
    assert [f["path"] for f in failures] == ["doomed.wav"]
    assert failures[0]["error"] == row["error"]
    retried = cli(ingestd_env, "retry")
    assert retried.returncode == 0, retried.stderr
    assert "1 recording re-queued" in retried.stdout
    ingestd_env.wait_states({"doomed.wav": "done"})
    done = ingestd_env.rows()[0]
    assert done["conversation_id"] != row["conversation_id"], "a new conversation after retry"
    assert created_by_sha(sandbox)[digest] == 3, "two failed jobs' uploads and the retry"
    assert f"part sha256={digest}" in transcript(results(ingestd_env)[done["conversation_id"]])
    assert daemon.stop() == 0


def test_retry_after_a_first_part_failed_for_good_posts_a_new_conversation(
    ingestd_env, sandbox, make_media
) -> None:
    """A folder conversation's first part whose jobs all failed: giving up forgets its
    mapping as an automatic resubmission does, so `ingestd retry` POSTs afresh rather than
    PUTting into the failed conversation, and a later part is appended to the new one."""
    daemon = ingestd_env.daemon(
        watch={"conversation": {"by": "folder"}}, pipeline={"resubmit_failed_jobs": 0}
    ).start()
    daemon.wait_ready()
    sandbox.faults.arm({"kind": "fail_job", "times": 1})
    meeting = ingestd_env.inbox / "meeting"
    drop(make_media("part1.wav", seconds=0.4), meeting)
    ingestd_env.wait_states({"meeting/part1.wav": "failed"})
    [failed_upload] = created(sandbox)
    failed_cid = failed_upload["conversationId"]
    assert failed_cid not in cli(ingestd_env, "map", "list").stdout
    retried = cli(ingestd_env, "retry")
    assert retried.returncode == 0, retried.stderr
    ingestd_env.wait_states({"meeting/part1.wav": "done"})
    drop(make_media("part2.wav", seconds=0.4), meeting)
    ingestd_env.wait_states({"meeting/part2.wav": "done"})
    uploads = created(sandbox)
    assert [s["method"] for s in uploads] == ["POST", "POST", "PUT"]
    kept_cid = uploads[1]["conversationId"]
    assert kept_cid != failed_cid and uploads[2]["conversationId"] == kept_cid
    assert {r["conversation_id"] for r in ingestd_env.rows()} == {kept_cid}
    assert daemon.stop() == 0


def test_retries_used_up_end_failed_with_reason_then_retry(
    ingestd_env, sandbox, make_media
) -> None:
    """Endless 503s end in `failed` naming the error; after the outage `ingestd retry` works."""
    daemon = ingestd_env.daemon(
        symbl={"max_retries": 1, "backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.1},
        pipeline={"max_attempts": 3, "retry_initial_seconds": 0.1, "retry_max_seconds": 0.2},
    ).start()
    daemon.wait_ready()
    sandbox.faults.arm({"kind": "status", "status": 503, "times": 1000, "route": "submit"})
    source = make_media("outage.wav")
    digest = sha256(source)
    drop(source, ingestd_env.inbox)
    ingestd_env.wait_states({"outage.wav": "failed"}, timeout=60)
    row = ingestd_env.rows()[0]
    assert "503" in row["error"] and "gave up after 3 attempts" in row["error"], row["error"]
    assert not created(sandbox)
    status = cli(ingestd_env, "status")
    assert "outage.wav" in status.stdout and "503" in status.stdout
    sandbox.faults.clear()
    assert cli(ingestd_env, "retry").returncode == 0
    ingestd_env.wait_states({"outage.wav": "done"})
    assert created_by_sha(sandbox)[digest] == 1
    wait_for(lambda: daemon.has_event("recording_finished", outcome="done"), 10, "done logged")
    assert daemon.stop() == 0


def test_failed_delivery_is_redelivered_by_retry(ingestd_env, sandbox, make_media) -> None:
    """A sink that keeps failing leaves the recording failed with the reason; once the cause
    is gone `ingestd retry` delivers it without uploading it again."""
    blocker = ingestd_env.root / "share-not-mounted"
    blocker.write_text("the results share is not mounted\n")
    results_path = blocker / "results"  # under a file: every write fails
    daemon = ingestd_env.daemon(
        sinks=[{"type": "files", "path": str(results_path)}],
        pipeline={
            "delivery_max_attempts": 2,
            "retry_initial_seconds": 0.1,
            "retry_max_seconds": 0.2,
        },
    ).start()
    daemon.wait_ready()
    source = make_media("undelivered.wav")
    digest = sha256(source)
    drop(source, ingestd_env.inbox)
    ingestd_env.wait_states({"undelivered.wav": "failed"})
    row = ingestd_env.rows()[0]
    assert "delivery failed" in row["error"] and "files" in row["error"], row["error"]
    blocker.unlink()
    retried = cli(ingestd_env, "retry")
    assert retried.returncode == 0 and "1 recording re-queued" in retried.stdout
    states = wait_terminal(ingestd_env, ["undelivered.wav"], 30)
    assert states["undelivered.wav"] == "done", f"retry did not redeliver: {ingestd_env.rows()}"
    assert list(results_path.rglob("insights.json")), "the results were written"
    assert created_by_sha(sandbox)[digest] == 1, "redelivered, not uploaded again"
    assert daemon.stop() == 0
