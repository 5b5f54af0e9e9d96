"""Submissions over real HTTP to the sandbox: routes, headers, encoding, retries, losses."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest
from structlog.testing import capture_logs

from ingestd.errors import Permanent, RateLimited, Retryable
from ingestd.model import Endpoint, EndpointKind, Params, Submission, Upload
from ingestd.sandbox import Sandbox
from ingestd_symbl.client import USER_AGENT, SymblClient
from ingestd_symbl.options import from_mapping
from tests.symbl.conftest import (
    client_options,
    make_client,
    records,
    requests_of,
    write_mp4,
    write_wav,
)

AUDIO = Endpoint(EndpointKind.AUDIO)
WAV = Endpoint(EndpointKind.AUDIO, content_type="audio/wav")
VIDEO = Endpoint(EndpointKind.VIDEO, content_type="video/mp4")


def upload(path: Path, content_type: str | None = None) -> Upload:
    return Upload(path, path.stat().st_size, content_type)


def submit_all(
    sb: Sandbox, calls: list[tuple[Endpoint, Upload | None, dict, str | None]], **options: object
) -> list[Submission]:
    """Submit in order; a None conversation id after the first means "the first one's"."""

    async def scenario() -> list[Submission]:
        client = make_client(sb, **options)
        try:
            out: list[Submission] = []
            for endpoint, up, params, cid in calls:
                out.append(await client.submit(endpoint, up, Params(params), cid))
            return out
        finally:
            await client.aclose()

    return asyncio.run(scenario())


class TestRoutes:
    def test_file_and_url_routes(
        self, make_sandbox: Callable[..., Sandbox], tmp_path: Path
    ) -> None:
        """Each file route and two URL routes arrive with the right path and headers."""
        sb = make_sandbox(concurrency_limit=10)
        a1, a2 = tmp_path / "a1.wav", tmp_path / "a2.wav"
        v1, v2 = tmp_path / "v1.mp4", tmp_path / "v2.mp4"
        sums = [write_wav(a1, 20_000), write_wav(a2, 30_000), write_mp4(v1), write_mp4(v2)]
        url = "https://media.example/call.mp3"

        async def scenario() -> list[Submission]:
            client = make_client(sb)
            try:
                first = await client.submit(AUDIO, upload(a1), Params(name="a"), None)
                cid = first.conversation_id
                second = await client.submit(WAV, upload(a2, "audio/wav"), Params(), cid)
                video = await client.submit(
                    Endpoint(EndpointKind.VIDEO), upload(v1), Params(), None
                )
                vput = await client.submit(VIDEO, upload(v2), Params(), video.conversation_id)
                u1 = await client.submit(
                    Endpoint(EndpointKind.AUDIO_URL, url=url), None, Params(name="u"), None
                )
                u2 = await client.submit(
                    Endpoint(EndpointKind.VIDEO_URL, url=url), None, Params(), None
                )
                return [first, second, video, vput, u1, u2]
            finally:
                await client.aclose()

        subs = asyncio.run(scenario())
        recs = records(sb)
        seen = [
            (r["method"], r["path"], r["content_type"], r["outcome"], r["conversationId"])
            for r in recs
        ]
        assert seen == [
            ("POST", "/v1/process/audio", None, "created", subs[0].conversation_id),
            ("PUT", f"/v1/process/audio/{subs[0].conversation_id}", "audio/wav", "created",
             subs[0].conversation_id),
            ("POST", "/v1/process/video", "video/mp4", "created", subs[2].conversation_id),
            ("PUT", f"/v1/process/video/{subs[2].conversation_id}", "video/mp4", "created",
             subs[2].conversation_id),
            ("POST", "/v1/process/audio/url", "application/json", "created",
             subs[4].conversation_id),
            ("POST", "/v1/process/video/url", "application/json", "created",
             subs[5].conversation_id),
        ]  # fmt: skip
        files = [a1, a2, v1, v2]
        for record, path, digest in zip(recs[:4], files, sums, strict=True):
            assert record["content_length"] == record["size"] == path.stat().st_size
            assert record["sha256"] == digest
        assert [r["url"] for r in recs[4:]] == [url, url]
        assert subs[1].conversation_id == subs[0].conversation_id
        assert len({s.job_id for s in subs}) == 6

    def test_headers_on_the_wire(self, tmp_path: Path) -> None:
        """Uploads send Content-Length, never chunked encoding, plus auth, Accept, User-Agent."""
        path = tmp_path / "big.wav"
        write_wav(path, 3 * (1 << 20) + 123)
        seen: list[httpx.Request] = []

        async def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path.startswith("/oauth2"):
                return httpx.Response(200, json={"accessToken": "tok", "expiresIn": 86400})
            body = b"".join([chunk async for chunk in request.stream])
            seen.append(request)
            assert hashlib.sha256(body).digest() == hashlib.sha256(path.read_bytes()).digest()
            return httpx.Response(201, json={"conversationId": "1", "jobId": "j"})

        async def scenario() -> None:
            options = from_mapping(
                {"base_url": "https://api.test", "app_id": "a", "app_secret": "b"}
            )
            client = SymblClient(options, transport=httpx.MockTransport(handler))
            try:
                await client.submit(AUDIO, upload(path), Params(), None)
            finally:
                await client.aclose()

        asyncio.run(scenario())
        headers = seen[0].headers
        assert headers["Content-Length"] == str(path.stat().st_size)
        assert "Transfer-Encoding" not in headers
        assert "Content-Type" not in headers
        assert headers["Authorization"] == "Bearer tok"
        assert headers["Accept"] == "application/json"
        assert headers["User-Agent"] == USER_AGENT and USER_AGENT.startswith("ingestd/")

    def test_sandbox_refuses_chunked_uploads(self, sb: Sandbox, tmp_path: Path) -> None:
        """Control: the sandbox answers 411 to a chunked body, so our 201s prove the length."""

        async def chunks() -> AsyncIterator[bytes]:
            yield b"RIFF"

        async def scenario() -> int:
            client = make_client(sb)
            try:
                token = await client.tokens.token()
                async with httpx.AsyncClient(base_url=sb.url) as raw:
                    response = await raw.post(
                        "/v1/process/audio",
                        content=chunks(),
                        headers={"Authorization": f"Bearer {token}"},
                    )
                return response.status_code
            finally:
                await client.aclose()

        assert asyncio.run(scenario()) == 411

    def test_query_encoding_accepted(self, sb: Sandbox, tmp_path: Path) -> None:
        """Typed parameters reach the API as §3.3 text and parse back to the same values."""
        path = tmp_path / "a.wav"
        write_wav(path, 1000)
        params = {
            "name": "Weekly sync",
            "customVocabulary": ["Platform", "Discussion"],
            "confidenceThreshold": 0.6,
            "detectPhrases": True,
            "detectEntities": False,
            "languageCode": "en-US",
            "enableSeparateRecognitionPerChannel": True,
            "channelMetadata": [{"channel": 1, "speaker": {"name": "Ann", "email": "a@x.org"}}],
            "entities": [{"customType": "Product", "text": "ingestd"}],
            "trackers": [{"name": "price", "vocabulary": ["cost", "budget"]}],
            "diarizationSpeakerCount": 2,
        }
        submit_all(sb, [(WAV, upload(path, "audio/wav"), params, None)])
        record = records(sb)[0]
        assert record["outcome"] == "created"
        assert record["params"] == params
        raw = parse_qsl(record["query_string"])
        assert raw.count(("customVocabulary", '["Platform","Discussion"]')) == 1
        assert ("detectPhrases", "true") in raw and ("confidenceThreshold", "0.6") in raw

    def test_url_route_placement(self, sb: Sandbox) -> None:
        """URL routes: diarization keys in the query, the rest JSON-typed in the body."""
        endpoint = Endpoint(EndpointKind.AUDIO_URL, url="https://media.example/a.mp3")
        params = {
            "name": "n",
            "webhookUrl": "https://hooks.example/x",
            "customVocabulary": ["a", "b"],
            "enableSpeakerDiarization": True,
            "diarizationSpeakerCount": 3,
        }
        submit_all(sb, [(endpoint, None, params, None)])
        record = records(sb)[0]
        assert record["outcome"] == "created"
        assert parse_qsl(record["query_string"]) == [
            ("enableSpeakerDiarization", "true"),
            ("diarizationSpeakerCount", "3"),
        ]
        assert record["params"] == params

    def test_appends_land_in_order(self, sb: Sandbox, tmp_path: Path) -> None:
        """A POST and two PUTs make one conversation whose parts are in submission order."""
        paths = [tmp_path / f"part{i}.wav" for i in range(3)]
        sums = [write_wav(p, 5000 + i) for i, p in enumerate(paths)]

        async def scenario() -> list[Submission]:
            client = make_client(sb)
            try:
                first = await client.submit(WAV, upload(paths[0]), Params(name="parts"), None)
                rest = [
                    await client.submit(WAV, upload(p), Params(), first.conversation_id)
                    for p in paths[1:]
                ]
                for sub in [first, *rest]:
                    await client.wait_for_job(sub.job_id)
                return [first, *rest]
            finally:
                await client.aclose()

        subs = asyncio.run(scenario())
        conversation = sb.conversations()[subs[0].conversation_id]
        assert conversation["jobIds"] == [s.job_id for s in subs]
        assert [part["sha256"] for part in conversation["parts"]] == sums
        assert len(sb.conversations()) == 1


class TestErrors:
    def test_bad_parameter_is_permanent(self, sb: Sandbox, tmp_path: Path) -> None:
        """A 400 ends the call at once with the API's own message."""
        path = tmp_path / "a.wav"
        write_wav(path, 1000)
        with pytest.raises(Permanent) as info:
            submit_all(sb, [(WAV, upload(path), {"confidenceThreshold": 0.3}, None)])
        assert str(info.value) == (
            "POST /v1/process/audio: HTTP 400: "
            '"confidenceThreshold" must be greater than or equal to 0.5'
        )
        assert len(records(sb)) == 1

    def test_503_retry_after_honoured(self, sb: Sandbox, tmp_path: Path) -> None:
        """A 503 with Retry-After: 1 is retried no sooner than a second later."""
        path = tmp_path / "a.wav"
        write_wav(path, 1000)
        sb.faults.arm(
            {"kind": "status", "status": 503, "times": 1, "retry_after": 1, "route": "submit"}
        )
        started = time.monotonic()
        with capture_logs() as logs:
            subs = submit_all(sb, [(WAV, upload(path), {}, None)])
        elapsed = time.monotonic() - started
        assert elapsed >= 1.0
        retries = [e for e in logs if e["event"] == "api_retry"]
        assert [(e["status"], e["attempt"], e["retry_after_s"]) for e in retries] == [(503, 1, 1.0)]
        assert requests_of(sb, "audio") == {"503": 1, "201": 1}
        assert subs[0].conversation_id in sb.conversations()

    def test_429_at_the_limit_ends_the_submission_for_the_core_to_queue(
        self, make_sandbox: Callable[..., Sandbox], tmp_path: Path
    ) -> None:
        """At the account's concurrency limit a submission is not retried against the
        limit (each retry would be another 429 until a job ends): it ends at once with
        `RateLimited`, nothing created, and the core queues the recording for a slot."""
        sb = make_sandbox(concurrency_limit=1, job_seconds=30)
        paths = [tmp_path / "a.wav", tmp_path / "b.wav"]
        for p in paths:
            write_wav(p, 1000)

        async def scenario() -> tuple[Submission, RateLimited]:
            client = make_client(sb, max_retries=20, backoff_max_seconds=0.3)
            try:
                first = await client.submit(WAV, upload(paths[0]), Params(), None)
                with pytest.raises(RateLimited) as refused:
                    await client.submit(WAV, upload(paths[1]), Params(), None)
                return first, refused.value
            finally:
                await client.aclose()

        with capture_logs() as logs:
            first, refused = asyncio.run(scenario())
        assert "HTTP 429" in str(refused)
        assert requests_of(sb, "audio") == {"201": 1, "429": 1}
        assert not any(e["event"] == "api_retry" for e in logs)
        assert list(sb.conversations()) == [first.conversation_id]

    def test_lost_response_is_retryable_and_reconciled(self, sb: Sandbox, tmp_path: Path) -> None:
        """A response lost after the upload raises Retryable, never a second POST, and the
        conversation is then found by name."""
        path = tmp_path / "a.wav"
        write_wav(path, 50_000)
        sb.faults.arm({"kind": "drop_after_upload", "times": 1})

        async def scenario() -> list[str]:
            client = make_client(sb)
            try:
                started = time.time()
                with pytest.raises(Retryable, match="may exist"):
                    await client.submit(WAV, upload(path), Params(name="lost-1"), None)
                return await client.find_conversations("lost-1", started)
            finally:
                await client.aclose()

        found = asyncio.run(scenario())
        recs = records(sb)
        assert [r["outcome"] for r in recs] == ["dropped"]
        assert found == [recs[0]["conversationId"]]

    def test_drop_before_upload_retried_from_a_reopened_file(
        self, sb: Sandbox, tmp_path: Path
    ) -> None:
        """A connection cut before the body was sent is retried, re-reading the file."""
        path = tmp_path / "a.wav"
        digest = write_wav(path, 16 * (1 << 20))
        sb.faults.arm({"kind": "drop_before_upload", "times": 1})
        subs = submit_all(sb, [(WAV, upload(path), {}, None)])
        recs = records(sb)
        assert [r["outcome"] for r in recs] == ["dropped", "created"]
        assert recs[1]["sha256"] == digest
        assert recs[1]["conversationId"] == subs[0].conversation_id

    def test_file_changed_before_upload(self, sb: Sandbox, tmp_path: Path) -> None:
        """A file whose size no longer matches is not uploaded with a wrong length."""
        path = tmp_path / "a.wav"
        write_wav(path, 1000)
        stale = Upload(path, path.stat().st_size - 10, None)
        with pytest.raises(Retryable, match="changed size"):
            submit_all(sb, [(AUDIO, stale, {}, None)])
        assert all(r["outcome"] != "created" for r in records(sb))

    def test_missing_pieces(self, sb: Sandbox) -> None:
        """A file route without a file, or a URL route without a URL, is Permanent."""
        with pytest.raises(Permanent, match="needs a file"):
            submit_all(sb, [(AUDIO, None, {}, None)])
        with pytest.raises(Permanent, match="no url"):
            submit_all(sb, [(Endpoint(EndpointKind.AUDIO_URL), None, {}, None)])

    def test_unknown_conversation_is_permanent(self, sb: Sandbox, tmp_path: Path) -> None:
        """A PUT into a conversation the API does not know is Permanent (404)."""
        path = tmp_path / "a.wav"
        write_wav(path, 1000)
        with pytest.raises(Permanent, match="HTTP 404"):
            submit_all(sb, [(WAV, upload(path), {}, "123")])


def test_client_options_helper_uses_sandbox_credentials(sb: Sandbox) -> None:
    """The test helper points at the sandbox with its credentials (guards the other tests)."""
    options = client_options(sb)
    assert options["base_url"] == sb.url
    assert json.dumps([options["app_id"], options["app_secret"]]) == '["sandbox", "sandbox"]'
