"""The account's concurrent-job limit (symbl-api.md §4, §8, §12.6)."""

from __future__ import annotations

import pytest

from tests.sandbox.conftest import wav


def limit_message(limit: int) -> dict:
    return {
        "statusCode": 429,
        "message": f"This API has a limit of maximum of `{limit}` number of concurrent jobs per "
        "account. If you are looking to scale, and need more concurrent jobs than this limit, "
        "please contact us at support@symbl.ai",
    }


@pytest.mark.parametrize("limit", [2, 5])
def test_429_at_the_limit_creates_nothing(make_sandbox, make_api, limit):
    """At `concurrency_limit` non-terminal jobs every route answers 429 with the exact body."""
    sandbox = make_sandbox(concurrency_limit=limit, job_seconds=5)
    api = make_api(sandbox)
    first = api.upload(wav()).json()
    for _ in range(limit - 1):
        assert api.upload(wav()).status_code == 201
    before = sandbox.conversations()
    attempts = [
        api.upload(wav()),
        api.upload(wav(), conversation_id=first["conversationId"]),
        api.submit_url("https://example.com/a.mp3"),
        api.upload(b"\x00\x00\x00\x18ftypmp42", kind="video", content_type="video/mp4"),
    ]
    for response in attempts:
        assert response.status_code == 429
        assert response.json() == limit_message(limit)
        assert "Retry-After" not in response.headers
    assert sandbox.conversations().keys() == before.keys()
    assert len(sandbox.jobs()) == limit
    rejected = [s for s in sandbox.submissions() if s["status_code"] == 429]
    assert len(rejected) == 4
    assert all(s["outcome"] == "rejected" and s["jobId"] is None for s in rejected)
    assert sandbox.stats()["max_concurrent_jobs_seen"] == limit


def test_waiting_parts_count_toward_the_limit(make_sandbox, make_api):
    """A part queued behind another of its conversation is scheduled and still counts."""
    sandbox = make_sandbox(concurrency_limit=2, job_seconds=5)
    api = make_api(sandbox)
    cid = api.upload(wav()).json()["conversationId"]
    queued = api.upload(wav(), conversation_id=cid).json()["jobId"]
    assert api.status(queued) == "scheduled"
    assert api.upload(wav()).status_code == 429


def test_capacity_returns_when_jobs_end(make_sandbox, make_api):
    """Once a job completes (or fails) its slot is free again."""
    sandbox = make_sandbox(concurrency_limit=1, job_seconds=0.5, schedule_seconds=0.01)
    api = make_api(sandbox)
    job = api.upload(b"not media", content_type=None).json()["jobId"]
    assert api.upload(wav()).status_code == 429
    api.wait(job, "failed")
    second = api.upload(wav()).json()["jobId"]
    api.wait(second)
    assert api.upload(wav()).status_code == 201
    assert sandbox.stats()["max_concurrent_jobs_seen"] == 1


def test_limit_of_zero_rejects_everything(make_sandbox, make_api):
    """A limit of 0 makes every submission a 429 (an account with no capacity)."""
    api = make_api(make_sandbox(concurrency_limit=0))
    assert api.upload(wav()).json() == limit_message(0)
