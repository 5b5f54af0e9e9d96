"""The control API and the Sandbox object's lifecycle."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import httpx
import pytest

from ingestd.sandbox import Sandbox, SandboxOptions
from tests.sandbox.conftest import SSL, wav

SUBMISSION_KEYS = {
    "seq", "method", "route", "path", "query_string", "params", "content_type",
    "content_length", "size", "sha256", "url", "conversationId", "jobId", "status_code",
    "outcome", "created", "received_at", "error",
}  # fmt: skip


def test_submissions_log_every_request(sandbox, api, http):
    """/_sandbox/submissions has one entry per submission, accepted or not, with its details."""
    created = api.upload(wav(), params={"name": "a"}).json()
    api.upload(wav(), content_type="text/plain")
    api.submit_url("https://example.com/x.mp3", conversation_id=created["conversationId"])
    log = http.get(f"{sandbox.url}/_sandbox/submissions").json()["submissions"]
    assert log == sandbox.submissions()
    assert all(set(entry) == SUBMISSION_KEYS for entry in log)
    first, second, third = log
    assert [e["seq"] for e in log] == [1, 2, 3]
    assert (first["method"], first["route"], first["path"]) == (
        "POST",
        "audio",
        "/v1/process/audio",
    )
    assert (first["status_code"], first["outcome"], first["created"]) == (201, "created", True)
    assert first["query_string"] == "name=a" and first["params"] == {"name": "a"}
    assert first["content_length"] == first["size"] == len(wav())
    assert (first["conversationId"], first["jobId"]) == (
        created["conversationId"],
        created["jobId"],
    )
    assert (second["status_code"], second["outcome"], second["created"]) == (400, "rejected", False)
    assert "Content-Type" in second["error"]
    assert (third["route"], third["method"], third["url"]) == (
        "audio_url",
        "PUT",
        "https://example.com/x.mp3",
    )


def test_jobs_and_conversations_endpoints(sandbox, api, http):
    """/_sandbox/jobs shows status histories; /_sandbox/conversations the transcript."""
    body = api.upload(wav()).json()
    api.wait(body["jobId"])
    jobs = http.get(f"{sandbox.url}/_sandbox/jobs").json()["jobs"]
    assert [h["status"] for h in jobs[0]["history"]] == ["scheduled", "in_progress", "completed"]
    assert jobs[0]["conversationId"] == body["conversationId"]
    conversations = http.get(f"{sandbox.url}/_sandbox/conversations").json()["conversations"]
    entry = conversations[body["conversationId"]]
    assert entry["complete"] and entry["jobIds"] == [body["jobId"]]
    assert entry["parts"][0]["sha256"] in entry["transcript"][0]


def test_stats_count_requests_by_route_and_status(sandbox, api, http):
    """/_sandbox/stats counts requests per route and status, jobs, and the concurrency peak."""
    api.upload(wav())
    api.upload(wav())
    api.upload(wav(), content_type="x/y")
    api.get("/v1/job/none")
    stats = http.get(f"{sandbox.url}/_sandbox/stats").json()
    assert stats["requests"]["audio"] == {"201": 2, "400": 1}
    assert stats["requests"]["job"] == {"404": 1}
    assert stats["requests"]["token"] == {"200": 1}
    assert stats["jobs_created"] == 2 and stats["max_concurrent_jobs_seen"] == 2
    assert stats["token_generations"] == 1 and stats["submissions"] == 3
    assert stats["bytes_received"] == 2 * len(wav())


def test_reset_forgets_everything(sandbox, api, http):
    """POST /_sandbox/reset clears data, logs, stats, faults and tokens."""
    cid = api.upload(wav()).json()["conversationId"]
    sandbox.faults.arm("fail_job")
    assert http.post(f"{sandbox.url}/_sandbox/reset").status_code == 200
    assert sandbox.submissions() == [] and sandbox.jobs() == [] and sandbox.conversations() == {}
    assert sandbox.faults.armed() == []
    assert sandbox.stats()["jobs_created"] == 0
    assert api.get(f"/v1/conversations/{cid}").status_code == 401


def test_options_can_change_while_running(sandbox, api, http):
    """POST /_sandbox/options changes knobs (here the concurrency limit) on the fly."""
    url = f"{sandbox.url}/_sandbox/options"
    assert http.get(url).json()["concurrency_limit"] == 5
    assert http.post(url, json={"concurrency_limit": 1, "job_seconds": 5}).status_code == 200
    assert api.upload(wav()).status_code == 201
    assert api.upload(wav()).status_code == 429
    assert http.post(url, json={"concurrency_limit": -1}).status_code == 400
    assert http.post(url, json={"colour": "red"}).status_code == 400
    assert sandbox.options.concurrency_limit == 1


def test_control_api_can_be_disabled(make_sandbox, http):
    """With control_api=False the /_sandbox routes do not exist."""
    sandbox = make_sandbox(control_api=False)
    assert http.get(f"{sandbox.url}/_sandbox/stats").status_code == 404
    assert http.post(f"{sandbox.url}/_sandbox/reset").status_code == 404


def test_context_manager_and_idempotent_stop(http):
    """`with Sandbox()` serves on a free port and stops on exit; stop() twice is harmless."""
    with Sandbox(SandboxOptions()) as sandbox:
        url = sandbox.url
        assert url.startswith("http://127.0.0.1:")
        assert http.get(f"{url}/_sandbox/stats").status_code == 200
    sandbox.stop()
    with pytest.raises(httpx.TransportError):
        http.get(f"{url}/_sandbox/stats")
    with pytest.raises(RuntimeError):
        sandbox.start()


def test_url_before_start_raises():
    """Asking for the URL of a sandbox that is not running is an error."""
    with pytest.raises(RuntimeError):
        _ = Sandbox().url


def test_stop_closes_idle_keep_alive_connections():
    """stop() ends idle keep-alive connections instead of leaving them served, and its
    threads. (Other tests' sandboxes may share this worker process: only threads started
    here count.)"""
    before = set(threading.enumerate())
    sandbox = Sandbox(SandboxOptions())
    sandbox.start()
    host, port = sandbox.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    connection.request("GET", "/_sandbox/stats")
    connection.getresponse().read()
    started = time.monotonic()
    sandbox.stop()
    assert time.monotonic() - started < 2
    with pytest.raises((http.client.HTTPException, OSError)):
        connection.request("GET", "/_sandbox/stats")
        connection.getresponse()
    assert not [
        t for t in threading.enumerate() if t.name.startswith("sandbox-") and t not in before
    ]


def test_serve_forever_runs_until_stop():
    """serve_forever blocks, reports its URL to `ready`, and returns after stop()."""
    sandbox = Sandbox(SandboxOptions())
    urls: list[str] = []
    thread = threading.Thread(
        target=sandbox.serve_forever, args=("127.0.0.1", 0), kwargs={"ready": urls.append}
    )
    thread.start()
    deadline = time.monotonic() + 5
    while not urls and time.monotonic() < deadline:
        time.sleep(0.01)
    with httpx.Client(verify=SSL) as client:
        assert client.get(f"{urls[0]}/_sandbox/stats").status_code == 200
    sandbox.stop()
    thread.join(5)
    assert not thread.is_alive()


def test_invalid_options_are_refused():
    """SandboxOptions validates its values."""
    for bad in (
        {"job_seconds": -1},
        {"concurrency_limit": 1.5},
        {"missing_content_length_status": 200},
        {"max_body_bytes": 0},
        {"token_lifetime_seconds": 0},
    ):
        with pytest.raises(ValueError):
            SandboxOptions(**bad)


def _non_loopback_address() -> str | None:
    """This host's address on its default route, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_control_api_is_loopback_only(http):
    """Bound to all interfaces, the API answers a non-loopback client but /_sandbox/ does not."""
    address = _non_loopback_address()
    if address is None:
        pytest.skip("no non-loopback interface")
    sandbox = Sandbox(SandboxOptions())
    try:
        port = sandbox.start("0.0.0.0", 0).rsplit(":", 1)[1]
        outside = f"http://{address}:{port}"
        assert http.get(f"{outside}/_sandbox/stats").status_code == 404
        assert http.get(f"{outside}/v1/conversations").status_code == 401
        assert http.get(f"{sandbox.url}/_sandbox/stats").status_code == 200
    finally:
        sandbox.stop()
