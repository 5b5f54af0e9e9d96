"""Submissions, the job state machine, and per-conversation ordering (§4, §6, §7)."""

from __future__ import annotations

import itertools
import json
import re
import time
import uuid

import pytest

from tests.sandbox.conftest import flac, mp3, mp3_frame, mp4, noise, ogg, wait_for, wav


def test_post_201_shape(api):
    """POST answers 201 with a 16-digit numeric conversationId and a UUID4 jobId."""
    response = api.upload(wav())
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"conversationId", "jobId"}
    assert re.fullmatch(r"[1-9]\d{15}", body["conversationId"])
    assert uuid.UUID(body["jobId"]).version == 4


def test_put_keeps_conversation_and_issues_new_job(api):
    """PUT returns the same conversationId and a new jobId; each POST makes a new conversation."""
    first = api.upload(wav()).json()
    second = api.upload(wav(), conversation_id=first["conversationId"]).json()
    third = api.upload(wav()).json()
    assert second["conversationId"] == first["conversationId"]
    assert second["jobId"] != first["jobId"]
    assert third["conversationId"] != first["conversationId"]
    assert api.sandbox.conversations()[first["conversationId"]]["jobIds"] == [
        first["jobId"],
        second["jobId"],
    ]


def test_job_lifecycle_and_timing(make_sandbox, make_api):
    """A job goes scheduled -> in_progress -> completed after schedule_seconds and job_seconds."""
    api = make_api(make_sandbox(schedule_seconds=0.2, job_seconds=0.4))
    started = time.time()
    job_id = api.upload(wav()).json()["jobId"]
    assert api.get(f"/v1/job/{job_id}").json() == {"id": job_id, "status": "scheduled"}
    api.wait(job_id, "in_progress", timeout=2)
    api.wait(job_id, "completed", timeout=2)
    history = api.sandbox.jobs()[0]["history"]
    assert [h["status"] for h in history] == ["scheduled", "in_progress", "completed"]
    assert history[0]["at"] >= started - 0.01
    assert history[1]["at"] - history[0]["at"] == pytest.approx(0.2, abs=0.02)
    assert history[2]["at"] - history[1]["at"] == pytest.approx(0.4, abs=0.02)


@pytest.mark.parametrize(
    ("kind", "content_type", "make", "final"),
    [
        ("audio", "audio/wav", wav, "completed"),
        ("audio", "audio/wave", wav, "completed"),
        ("audio", "audio/mpeg", mp3, "completed"),
        ("audio", "audio/mp3", mp3_frame, "completed"),
        ("audio", "audio/wav", mp3, "failed"),
        ("audio", "audio/mpeg", wav, "failed"),
        ("audio", None, wav, "completed"),
        ("audio", None, mp3_frame, "completed"),
        ("audio", None, mp4, "completed"),
        ("audio", None, ogg, "completed"),
        ("audio", None, flac, "completed"),
        ("audio", None, noise, "failed"),
        ("video", "video/mp4", mp4, "completed"),
        ("video", "video/mp4", wav, "failed"),
    ],
)
def test_job_fails_when_bytes_are_not_the_declared_media(api, kind, content_type, make, final):
    """The magic bytes decide: the declared (or any detectable) format completes, else failed."""
    body = api.upload(make(), kind=kind, content_type=content_type).json()
    api.wait(body["jobId"], final)
    messages = api.get(f"/v1/conversations/{body['conversationId']}/messages").json()
    assert bool(messages["messages"]) == (final == "completed")


def test_failed_job_does_not_block_the_next_part(api):
    """A failed part appends nothing, and the conversation's next part still completes."""
    first = api.upload(noise(), content_type=None).json()
    cid = first["conversationId"]
    second = api.upload(wav(), conversation_id=cid).json()
    api.wait(second["jobId"], "completed")
    assert api.status(first["jobId"]) == "failed"
    transcript = api.sandbox.conversations()[cid]["transcript"]
    assert "sha256=" in transcript[0] and len(api.sandbox.conversations()[cid]["parts"]) == 1


def test_parts_of_one_conversation_run_strictly_in_order(make_sandbox, make_api):
    """Later parts stay scheduled until the earlier part completes; text appends in order."""
    api = make_api(make_sandbox(schedule_seconds=0.02, job_seconds=0.3))
    bodies = [wav(1000 + i) for i in range(3)]
    first = api.upload(bodies[0]).json()
    cid = first["conversationId"]
    jobs = [first["jobId"]]
    jobs += [api.upload(body, conversation_id=cid).json()["jobId"] for body in bodies[1:]]
    api.wait(jobs[0], "in_progress", timeout=2)
    while True:
        # Later parts are read first: if part 1 is still running afterwards, it was then too.
        later = [api.status(jobs[1]), api.status(jobs[2])]
        if api.status(jobs[0]) == "completed":
            break
        assert later == ["scheduled", "scheduled"]
        time.sleep(0.02)
    api.wait(jobs[2], "completed", timeout=3)
    history = {job["id"]: job["history"] for job in api.sandbox.jobs()}
    for earlier, later in itertools.pairwise(jobs):
        done = history[earlier][-1]
        started = history[later][1]
        assert (done["status"], started["status"]) == ("completed", "in_progress")
        assert started["at"] >= done["at"]
    markers = [m for m in api.sandbox.conversations()[cid]["transcript"] if "part sha256" in m]
    sizes = [int(m.rsplit("bytes=", 1)[1]) for m in markers]
    assert sizes == [len(body) for body in bodies]


def test_other_conversations_run_in_parallel(make_sandbox, make_api):
    """Jobs of different conversations do not wait for each other."""
    api = make_api(make_sandbox(schedule_seconds=0.02, job_seconds=1.0))
    jobs = [api.upload(wav()).json()["jobId"] for _ in range(3)]
    wait_for(lambda: all(api.status(j) == "in_progress" for j in jobs), timeout=1)


def test_data_is_partial_before_completion_and_summary_waits(make_sandbox, make_api):
    """Before the job completes messages are empty and /summary is 404; afterwards both exist."""
    api = make_api(make_sandbox(job_seconds=0.5))
    body = api.upload(wav()).json()
    cid, job_id = body["conversationId"], body["jobId"]
    assert api.get(f"/v1/conversations/{cid}/messages").json() == {"messages": []}
    assert api.get(f"/v1/conversations/{cid}/summary").status_code == 404
    assert api.get(f"/v1/conversations/{cid}").status_code == 200
    api.wait(job_id)
    assert api.get(f"/v1/conversations/{cid}/messages").json()["messages"]
    summary = api.get(f"/v1/conversations/{cid}/summary")
    assert summary.status_code == 200 and summary.json()["summary"]
    api.upload(wav(), conversation_id=cid)
    assert api.get(f"/v1/conversations/{cid}/summary").status_code == 404


def test_url_jobs_complete_with_the_url_named(api):
    """A URL submission completes and its part names the URL."""
    body = api.submit_url("https://example.com/rec.mp3").json()
    api.wait(body["jobId"])
    transcript = api.sandbox.conversations()[body["conversationId"]]["transcript"]
    assert "part url=https://example.com/rec.mp3" in transcript[0]


def test_delete_conversation(api):
    """DELETE answers the documented 200 body; the conversation is gone for reads and PUTs."""
    body = api.upload(wav()).json()
    cid = body["conversationId"]
    response = api.request("DELETE", f"/v1/conversations/{cid}")
    assert response.json() == {"message": "successfully deleted the conversation"}
    assert api.get(f"/v1/conversations/{cid}").status_code == 404
    assert api.upload(wav(), conversation_id=cid).status_code == 404
    api.wait(body["jobId"])  # the job itself still ends


def test_conversation_name_defaults_to_id_and_first_submission_wins(api):
    """The name is the first submission's `name`; without one it is the conversationId."""
    unnamed = api.upload(wav()).json()["conversationId"]
    named = api.upload(wav(), params={"name": "Q3 review"}).json()["conversationId"]
    api.upload(wav(), conversation_id=named, params={"name": "Other"})
    assert api.get(f"/v1/conversations/{unnamed}").json()["name"] == unnamed
    assert api.get(f"/v1/conversations/{named}").json()["name"] == "Q3 review"


def test_conversation_metadata_is_the_first_submissions(api):
    """A POST's `metadata` (query for files, body for URLs) is the conversation's `metadata`
    on reads and in the list; an append's is ignored; without one it is {}."""
    tag = {"ingestdUploadId": "abc", "salesStage": "qualification"}
    cid = api.upload(wav(), params={"metadata": json.dumps(tag)}).json()["conversationId"]
    api.upload(wav(), conversation_id=cid, params={"metadata": json.dumps({"other": "x"})})
    by_url = api.submit_url("https://example.com/a.mp3", metadata={"k": "v"}).json()
    plain = api.upload(wav()).json()["conversationId"]

    def metadata(conversation_id: str) -> dict:
        return api.get(f"/v1/conversations/{conversation_id}").json()["metadata"]

    assert metadata(cid) == tag
    assert metadata(by_url["conversationId"]) == {"k": "v"}
    assert metadata(plain) == {}
    listed = api.get("/v1/conversations").json()["conversations"]
    assert {c["id"]: c["metadata"] for c in listed}[cid] == tag


def test_list_conversations_filters_and_pages(api):
    """GET /v1/conversations filters by name and start time and pages with limit/offset."""
    ids = [
        api.upload(wav(), params={"name": f"n{i % 2}"}).json()["conversationId"] for i in range(5)
    ]
    listed = api.get("/v1/conversations").json()["conversations"]
    assert [c["id"] for c in listed] == ids[::-1]
    assert {"id", "type", "name", "startTime", "endTime", "members", "metadata"} == set(listed[0])
    named = api.get("/v1/conversations", params={"name": "n1"}).json()["conversations"]
    assert [c["id"] for c in named] == [ids[3], ids[1]]
    page = api.get("/v1/conversations", params={"limit": 2, "offset": 1, "order": "asc"}).json()
    assert [c["id"] for c in page["conversations"]] == ids[1:3]
    later = api.get("/v1/conversations", params={"startTime": listed[0]["startTime"]}).json()
    assert ids[-1] in [c["id"] for c in later["conversations"]]
    future = api.get("/v1/conversations", params={"startTime": "2999-01-01T00:00:00Z"}).json()
    assert future == {"conversations": []}
    assert api.get("/v1/conversations", params={"bogus": 1}).status_code == 400
    assert api.get("/v1/conversations", params={"limit": 0}).status_code == 400
