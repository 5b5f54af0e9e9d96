"""Fault injection: in-process (`sb.faults`) and over the control API."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.sandbox.conftest import wav


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_status_fault_answers_instead_and_creates_nothing(api, status):
    """A status fault answers that status `times` times, creating nothing, then stops."""
    api.sandbox.faults.arm("status", status=status, times=2, route="submit")
    assert api.upload(wav()).status_code == status
    assert api.upload(wav()).status_code == status
    assert api.sandbox.jobs() == []
    assert api.upload(wav()).status_code == 201
    outcomes = [(s["status_code"], s["outcome"]) for s in api.sandbox.submissions()]
    assert outcomes == [(status, "fault"), (status, "fault"), (201, "created")]


def test_429_fault_uses_contract_body_and_optional_retry_after(api):
    """A 429 fault answers the concurrency body; `retry_after` adds a Retry-After header."""
    api.sandbox.faults.arm({"kind": "status", "status": 429, "retry_after": 7})
    api.sandbox.faults.arm("status", status=429, retry_after=0.5)
    first, second = api.upload(wav()), api.upload(wav())
    assert first.status_code == 429 and first.json()["statusCode"] == 429
    assert "`5` number of concurrent jobs" in first.json()["message"]
    assert first.headers["Retry-After"] == "7"
    assert second.headers["Retry-After"] == "0.5"


def test_route_filter_limits_the_fault(api):
    """A fault for the job route leaves submissions and conversations alone."""
    job_id = api.upload(wav()).json()["jobId"]
    api.sandbox.faults.arm("status", status=503, route="job")
    assert api.get("/v1/conversations").status_code == 200
    assert api.get(f"/v1/job/{job_id}").status_code == 503
    assert api.get(f"/v1/job/{job_id}").status_code == 200


def test_fault_on_token_route(sandbox, http):
    """Token generation can be faulted too."""
    sandbox.faults.arm("status", status=502, route="token")
    body = {"type": "application", "appId": "sandbox", "appSecret": "sandbox"}
    assert http.post(f"{sandbox.url}/oauth2/token:generate", json=body).status_code == 502
    assert http.post(f"{sandbox.url}/oauth2/token:generate", json=body).status_code == 200


def test_drop_after_upload_creates_but_loses_the_answer(api):
    """drop_after_upload reads the body, creates the job, then closes without a response."""
    api.sandbox.faults.arm("drop_after_upload", times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        api.upload(wav(), params={"name": "lost"})
    (submission,) = api.sandbox.submissions()
    assert submission["outcome"] == "dropped" and submission["created"]
    assert submission["status_code"] is None
    cid = submission["conversationId"]
    api.wait(submission["jobId"])
    listed = api.get("/v1/conversations", params={"name": "lost"}).json()["conversations"]
    assert [c["id"] for c in listed] == [cid]
    assert api.upload(wav()).status_code == 201


def test_drop_before_upload_creates_nothing(api):
    """drop_before_upload closes the connection before the body; nothing is created."""
    api.sandbox.faults.arm("drop_before_upload", route="audio")
    with pytest.raises(httpx.TransportError):
        api.upload(wav(2_000_000))
    assert api.sandbox.jobs() == []
    assert api.sandbox.submissions()[0]["outcome"] == "dropped"
    assert not api.sandbox.submissions()[0]["created"]
    assert api.upload(wav()).status_code == 201


def test_latency_fault_delays_the_answer(api):
    """A latency fault delays the next matching request by `seconds`."""
    api.sandbox.faults.arm("latency", seconds=0.3, route="conversation")
    started = time.monotonic()
    assert api.get("/v1/conversations").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    api.get("/v1/conversations")
    assert time.monotonic() - started < 0.2


def test_fail_job_fault(api):
    """fail_job makes the next created jobs fail even though their bytes are fine."""
    api.sandbox.faults.arm("fail_job", times=1)
    failing = api.upload(wav()).json()["jobId"]
    fine = api.upload(wav()).json()["jobId"]
    api.wait(failing, "failed")
    api.wait(fine, "completed")
    failed = next(j for j in api.sandbox.jobs() if j["id"] == failing)
    assert failed["failReason"] == "fail_job fault"


def test_fail_job_not_consumed_by_rejected_submissions(make_sandbox, make_api):
    """A 429 does not use up a fail_job fault: it applies to the next *created* job."""
    sandbox = make_sandbox(concurrency_limit=1, job_seconds=0.5)
    api = make_api(sandbox)
    first = api.upload(wav()).json()["jobId"]
    sandbox.faults.arm("fail_job")
    assert api.upload(wav()).status_code == 429
    api.wait(first)
    second = api.upload(wav()).json()["jobId"]
    api.wait(second, "failed")


def test_invalid_fault_specs_raise(sandbox):
    """Unknown kinds, statuses, fields and routes are refused."""
    for spec in (
        {"kind": "explode"},
        {"kind": "status", "status": 404},
        {"kind": "status"},
        {"kind": "latency"},
        {"kind": "latency", "seconds": 1, "status": 500},
        {"kind": "status", "status": 500, "times": 0},
        {"kind": "status", "status": 500, "route": "elsewhere"},
        {"kind": "fail_job", "route": "job"},
        {"kind": "status", "status": 500, "colour": "red"},
    ):
        with pytest.raises(ValueError):
            sandbox.faults.arm(spec)
    assert sandbox.faults.armed() == []


def test_control_api_arms_lists_and_clears_faults(sandbox, api, http):
    """POST/GET/DELETE /_sandbox/faults drive the same plan as `sb.faults`."""
    url = f"{sandbox.url}/_sandbox/faults"
    response = http.post(url, json=[{"kind": "status", "status": 500, "times": 3}])
    assert response.status_code == 200
    assert response.json()["armed"][0]["kind"] == "status"
    assert sandbox.faults.armed()[0]["times"] == 3
    assert api.get("/v1/conversations").status_code == 500
    assert http.get(url).json()["faults"][0]["times"] == 2
    assert http.delete(url).status_code == 200
    assert api.get("/v1/conversations").status_code == 200
    fired = http.get(url).json()["fired"]
    assert [f["kind"] for f in fired] == ["status"]


def test_control_api_rejects_bad_faults_atomically(sandbox, http):
    """One invalid fault in a list arms none of them."""
    url = f"{sandbox.url}/_sandbox/faults"
    specs = {"faults": [{"kind": "fail_job"}, {"kind": "nope"}]}
    assert http.post(url, json=specs).status_code == 400
    assert sandbox.faults.armed() == []


def test_control_api_expire_tokens(sandbox, api, http):
    """Arming expire_tokens over HTTP invalidates the current token at once."""
    response = http.post(f"{sandbox.url}/_sandbox/faults", json={"kind": "expire_tokens"})
    assert response.status_code == 200
    assert api.get("/v1/conversations").status_code == 401
    assert sandbox.faults.armed() == []
