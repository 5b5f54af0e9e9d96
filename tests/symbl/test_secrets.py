"""Canary credentials through every path: never in a log event or an exception."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable
from pathlib import Path

import httpx
from structlog.testing import capture_logs

from ingestd.errors import IngestdError
from ingestd.model import Endpoint, EndpointKind, Params, Upload
from ingestd.sandbox import Sandbox
from tests.symbl.conftest import make_client, write_wav

CANARY = "canary-secret-7f3a91"


def test_secret_and_tokens_never_leak(make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    """Retries, 401s, lost responses, errors and bad credentials leak neither secret nor token."""
    sb = make_sandbox(app_id="canary-app", app_secret=CANARY, token_lifetime_seconds=1)
    path = tmp_path / "a.wav"
    write_wav(path, 4000)
    upload = Upload(path, path.stat().st_size, None)
    wav = Endpoint(EndpointKind.AUDIO, content_type="audio/wav")
    tokens: set[str] = set()
    errors: list[BaseException] = []

    async def record_token(request: httpx.Request) -> None:
        auth = request.headers.get("Authorization")
        if auth:
            tokens.add(auth.removeprefix("Bearer "))

    async def attempt(coro: object) -> None:
        try:
            await coro  # type: ignore[misc]
        except IngestdError as exc:
            errors.append(exc)

    async def scenario() -> None:
        client = make_client(sb, max_retries=2)
        client._http.event_hooks["request"].append(record_token)
        try:
            sub = await client.submit(wav, upload, Params(name="c"), None)
            sb.faults.arm({"kind": "status", "status": 503, "times": 3, "route": "job"})
            await attempt(client.job_status(sub.job_id))  # gives up: Retryable
            sb.faults.arm({"kind": "expire_tokens"})
            await client.wait_for_job(sub.job_id)
            await asyncio.sleep(1.1)  # the token expires; renewed ahead
            await client.fetch_insights(sub.conversation_id, ["messages", "summary"])
            sb.faults.arm({"kind": "drop_after_upload"})
            await attempt(client.submit(wav, upload, Params(name="d"), None))
            await attempt(client.submit(wav, upload, Params(confidenceThreshold=2), None))
        finally:
            await client.aclose()
        wrong = make_client(sb, app_secret=CANARY + "-wrong")
        try:
            await attempt(wrong.find_conversations("c", 0))
        finally:
            await wrong.aclose()

    with capture_logs() as logs:
        asyncio.run(scenario())

    assert len(tokens) >= 2 and len(errors) == 4
    assert any(e["event"] == "token_rejected" for e in logs)
    assert any(e["event"] == "api_retry" for e in logs)
    texts = [repr(logs)]
    for exc in errors:
        texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    haystack = "\n".join(texts)
    for needle in (CANARY, *tokens):
        assert needle not in haystack
