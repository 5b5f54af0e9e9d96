"""Webhook delivery of job transitions, with retries (symbl-api.md §5)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.sandbox.conftest import wait_for, wav


class Receiver:
    """A local webhook endpoint answering the statuses in `script`, then 200."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.script: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.received.append({"path": self.path, **body})
                    status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def statuses(self, job_id: str) -> list[str]:
        with self.lock:
            return [r["status"] for r in self.received if r["jobId"] == job_id]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_every_transition_is_posted_in_order(api, receiver):
    """The webhook gets {jobId, status} for scheduled, in_progress and completed, in order."""
    job_id = api.upload(wav(), params={"webhookUrl": receiver.url + "?k=1"}).json()["jobId"]
    api.wait(job_id)
    expected = ["scheduled", "in_progress", "completed"]
    wait_for(lambda: receiver.statuses(job_id) == expected, timeout=3)
    assert receiver.received[0] == {"path": "/hook?k=1", "jobId": job_id, "status": "scheduled"}


def test_failed_jobs_report_failed(api, receiver):
    """A job that fails sends `failed` as its last update."""
    response = api.upload(b"junk", content_type=None, params={"webhookUrl": receiver.url})
    job_id = response.json()["jobId"]
    wait_for(lambda: receiver.statuses(job_id) == ["scheduled", "in_progress", "failed"])


def test_updates_are_resent_until_200(api, receiver):
    """A receiver that fails twice gets the same update again, and later ones stay in order."""
    receiver.script = [500, 503]
    job_id = api.upload(wav(), params={"webhookUrl": receiver.url}).json()["jobId"]
    expected = ["scheduled"] * 3 + ["in_progress", "completed"]
    wait_for(lambda: receiver.statuses(job_id) == expected, timeout=5)
    attempts = api.sandbox.webhooks.attempts()
    assert [a["result"] for a in attempts[:3]] == [500, 503, 200]
    assert [a["attempt"] for a in attempts[:3]] == [1, 2, 3]


def test_retries_are_bounded(make_sandbox, make_api, receiver):
    """With webhook_retries=2 an update is sent three times at most, then given up."""
    api = make_api(make_sandbox(webhook_retries=2, job_seconds=0.05))
    receiver.script = [500] * 100
    job_id = api.upload(wav(), params={"webhookUrl": receiver.url}).json()["jobId"]
    wait_for(lambda: api.sandbox.stats()["webhook_given_up"] == 3, timeout=5)
    assert receiver.statuses(job_id) == ["scheduled"] * 3 + ["in_progress"] * 3 + ["completed"] * 3


def test_unreachable_webhook_does_not_block_the_api(make_sandbox, make_api):
    """A webhook nobody listens on costs the API nothing: the job still completes on time."""
    api = make_api(make_sandbox(webhook_retries=1))
    job_id = api.upload(wav(), params={"webhookUrl": "http://127.0.0.1:9/none"}).json()["jobId"]
    api.wait(job_id, timeout=1)
    wait_for(lambda: api.sandbox.stats()["webhook_given_up"] == 3, timeout=3)
    assert all(isinstance(a["result"], str) for a in api.sandbox.webhooks.attempts())


def test_url_routes_take_webhook_from_body_or_query(api, receiver):
    """URL submissions deliver to a webhookUrl given in the JSON body or in the query."""
    in_body = api.submit_url("https://example.com/a.mp3", webhookUrl=receiver.url).json()
    in_query = api.request(
        "POST",
        "/v1/process/audio/url",
        params={"webhookUrl": receiver.url},
        json={"url": "https://example.com/b.mp3"},
    ).json()
    for body in (in_body, in_query):
        wait_for(lambda b=body: receiver.statuses(b["jobId"])[-1:] == ["completed"])


def test_no_webhook_no_delivery(api):
    """Without webhookUrl nothing is sent."""
    api.wait(api.upload(wav()).json()["jobId"])
    assert api.sandbox.webhooks.attempts() == []
