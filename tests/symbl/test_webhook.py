"""The job-status webhook listener, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from ingestd.model import Endpoint, EndpointKind, JobStatus, Params, Submission, Upload
from ingestd.sandbox import Sandbox
from ingestd_symbl.client import SymblClient
from ingestd_symbl.webhook import PATH, JobWebhook
from tests.symbl.conftest import make_client, records, requests_of, write_wav


async def _started() -> JobWebhook:
    hook = JobWebhook("127.0.0.1:0")
    await hook.start()
    return hook


def test_url_is_the_bound_address_unless_a_public_url_is_given() -> None:
    async def scenario() -> None:
        hook = await _started()
        try:
            assert hook.port != 0
            assert hook.url == f"http://127.0.0.1:{hook.port}{PATH}"
        finally:
            await hook.aclose()
        public = JobWebhook("0.0.0.0:0", "https://ingest.example.com/hooks/symbl")
        assert public.url == "https://ingest.example.com/hooks/symbl"

    asyncio.run(scenario())


def test_a_completed_update_wakes_the_waiting_poller_at_once() -> None:
    async def scenario() -> None:
        hook = await _started()
        try:
            waiting = asyncio.create_task(hook.wait("job-1", timeout=30))
            await asyncio.sleep(0.05)
            started = time.monotonic()
            async with httpx.AsyncClient() as client:
                answer = await client.post(hook.url, json={"jobId": "job-1", "status": "completed"})
            assert answer.status_code == 200
            assert await waiting is True
            assert time.monotonic() - started < 5
            assert hook.forget("job-1") == "completed"
        finally:
            await hook.aclose()

    asyncio.run(scenario())


def test_an_update_that_arrives_before_the_poller_waits_is_kept() -> None:
    async def scenario() -> None:
        hook = await _started()
        try:
            async with httpx.AsyncClient() as client:
                await client.post(hook.url, json={"jobId": "early", "status": "failed"})
            assert await hook.wait("early", timeout=30) is True
            assert await hook.wait("early", timeout=0.05) is False, "a hint wakes only once"
        finally:
            await hook.aclose()

    asyncio.run(scenario())


def test_progress_updates_do_not_wake_the_poller() -> None:
    async def scenario() -> None:
        hook = await _started()
        try:
            async with httpx.AsyncClient() as client:
                for status in ("scheduled", "in_progress"):
                    await client.post(hook.url, json={"jobId": "j", "status": status})
            assert await hook.wait("j", timeout=0.1) is False
            assert hook.received == 2
        finally:
            await hook.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", PATH, b'{"jobId": "x", "status": "completed"}', 200),
        ("POST", "/elsewhere", b'{"jobId": "x", "status": "completed"}', 404),
        ("GET", PATH, b"", 405),
        ("POST", PATH, b"not json", 400),
        ("POST", PATH, b'{"id": "x", "status": "completed"}', 400),
        ("POST", PATH, b'{"jobId": 7, "status": "completed"}', 400),
    ],
)
def test_answers(method: str, path: str, body: bytes, status: int) -> None:
    async def scenario() -> None:
        hook = await _started()
        try:
            async with httpx.AsyncClient() as client:
                base = f"http://127.0.0.1:{hook.port}"
                answer = await client.request(method, base + path, content=body)
            assert answer.status_code == status, answer.text
        finally:
            await hook.aclose()

    asyncio.run(scenario())


def test_an_oversized_body_is_refused_and_the_listener_lives_on() -> None:
    async def scenario() -> None:
        hook = await _started()
        try:
            async with httpx.AsyncClient() as client:
                with pytest.raises(httpx.HTTPError):
                    await client.post(hook.url, content=b"x" * (1 << 20))
                answer = await client.post(hook.url, json={"jobId": "y", "status": "completed"})
            assert answer.status_code == 200
        finally:
            await hook.aclose()

    asyncio.run(scenario())


def test_ids_kept_for_pollers_are_bounded() -> None:
    async def scenario() -> None:
        hook = await _started()
        try:
            for i in range(10_050):
                hook._hint(f"forged-{i}", "completed")
            assert len(hook._waiters) <= 10_000 and len(hook._seen) <= 10_000
        finally:
            await hook.aclose()

    asyncio.run(scenario())


# -- the client with the webhook on, against the sandbox ---------------------------------

WAV = Endpoint(EndpointKind.AUDIO, content_type="audio/wav")


async def _submit(client: SymblClient, path: Path, params: Params | None = None) -> Submission:
    upload = Upload(path, path.stat().st_size, None)
    return await client.submit(WAV, upload, params or Params(), None)


def test_the_webhook_tells_the_client_of_a_finished_job_long_before_a_poll_would(
    sb: Sandbox, tmp_path: Path
) -> None:
    """With 30 s polling gaps, a 0.3 s job is still seen at once: one confirming read."""
    path = tmp_path / "a.wav"
    write_wav(path, 32000)

    async def scenario() -> tuple[float, list[str]]:
        client = make_client(
            sb, poll_initial_seconds=30, poll_max_seconds=30, webhook={"listen": "127.0.0.1:0"}
        )
        try:
            submission = await _submit(client, path)
            started = time.monotonic()
            with capture_logs() as logs:
                status = await client.wait_for_job(submission.job_id)
            assert status is JobStatus.COMPLETED
            return time.monotonic() - started, [e["event"] for e in logs]
        finally:
            await client.aclose()

    waited, events = asyncio.run(scenario())
    assert waited < 10, f"waited {waited:.1f} s: the webhook did not cut the 30 s gap short"
    assert requests_of(sb, "job") == {"200": 1}, "the POST is confirmed by exactly one read"
    assert "webhook_missed" not in events
    [record] = records(sb)
    assert record["params"]["webhookUrl"].endswith(PATH)


def test_a_webhook_url_set_by_the_user_is_left_alone(sb: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    write_wav(path, 32000)

    async def scenario() -> None:
        client = make_client(sb, webhook={"listen": "127.0.0.1:0"})
        try:
            await _submit(client, path, Params(webhookUrl="https://hooks.example.com/mine"))
        finally:
            await client.aclose()

    asyncio.run(scenario())
    [record] = records(sb)
    assert record["params"]["webhookUrl"] == "https://hooks.example.com/mine"


def test_an_unreachable_webhook_is_said_once_and_jobs_are_still_polled(
    sb: Sandbox, tmp_path: Path
) -> None:
    """A public_url Symbl cannot reach: jobs finish by polling, and the log says why slowly."""
    paths = [tmp_path / f"{n}.wav" for n in "ab"]
    for path in paths:
        write_wav(path, 32000)

    async def scenario() -> list[str]:
        client = make_client(
            sb,
            poll_initial_seconds=0.2,
            poll_max_seconds=0.5,
            webhook={"listen": "127.0.0.1:0", "public_url": "http://127.0.0.1:9/nowhere"},
        )
        try:
            with capture_logs() as logs:
                for path in paths:
                    submission = await _submit(client, path)
                    assert await client.wait_for_job(submission.job_id) is JobStatus.COMPLETED
            return [e["event"] for e in logs]
        finally:
            await client.aclose()

    events = asyncio.run(scenario())
    assert events.count("webhook_missed") == 1
    assert events.count("job_finished") == 2


def test_a_port_in_use_means_polling_only(sb: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    write_wav(path, 32000)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def scenario() -> list[str]:
            client = make_client(sb, webhook={"listen": f"127.0.0.1:{port}"})
            try:
                with capture_logs() as logs:
                    submission = await _submit(client, path)
                    await client.wait_for_job(submission.job_id)
                return [e["event"] for e in logs]
            finally:
                await client.aclose()

        events = asyncio.run(scenario())
    assert "webhook_unavailable" in events and "job_finished" in events
    [record] = records(sb)
    assert "webhookUrl" not in record["params"]
