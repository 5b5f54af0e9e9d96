"""Upload bodies: Content-Type rules, Content-Length rules, truncation, streaming."""

from __future__ import annotations

import hashlib
import os
import resource
import socket
import threading
import time

import httpx
import pytest

from ingestd import mediagen
from ingestd.sandbox.uploads import detect_format
from tests.sandbox.conftest import SSL, mp3, mp4, wav

REAL_AUDIO = {
    "tone.amr": "amr",
    "tone.wma": "asf",
    "tone.aiff": "aiff",
    "tone.ac3": "ac3",
    "tone.aac": "aac",
    "tone.mka": "matroska",
    "tone.webm": "webm",
    "tone.mp3": "mp3",
    "tone.m4a": "mp4",
    "tone.opus": "ogg",
}
"""Files ffmpeg writes, by the format their first bytes name."""
NOT_IN_THE_API_LIST = {"matroska", "webm"}
"""Recognised, but not among the audio formats of symbl-api.md §8: their jobs fail."""


@pytest.fixture(scope="module")
def real_audio(tmp_path_factory) -> dict[str, bytes]:
    """The first bytes of each file in REAL_AUDIO, as ffmpeg wrote it."""
    folder = tmp_path_factory.mktemp("real-audio")
    return {
        name: mediagen.make_audio(folder / name, seconds=0.5).read_bytes() for name in REAL_AUDIO
    }


@pytest.mark.parametrize(
    "content_type", [None, "audio/wav", "audio/wave", "audio/mpeg", "audio/mp3", "audio/wav; x=1"]
)
def test_audio_content_types_accepted(api, content_type):
    """Audio takes no Content-Type or one of the four documented values (parameters allowed)."""
    body = mp3() if content_type and "mp" in content_type else wav()
    response = api.upload(body, content_type=content_type)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("content_type", ["audio/ogg", "audio/x-wav", "video/mp4", "text/plain"])
def test_audio_other_content_types_rejected(api, content_type):
    """Any other audio Content-Type is a 400 and creates nothing."""
    for conversation_id in (None, _existing(api)):
        response = api.upload(wav(), content_type=content_type, conversation_id=conversation_id)
        assert response.status_code == 400
        assert "Content-Type" in response.json()["message"]
    assert len(api.sandbox.jobs()) == 1


@pytest.mark.parametrize("name", REAL_AUDIO)
def test_detect_format_names_every_audio_format_ffmpeg_writes(real_audio, name):
    """amr, wma (ASF), aiff, ac3, raw aac (ADTS, not mp3), Matroska and WebM are recognised."""
    assert detect_format(real_audio[name][:64]) == REAL_AUDIO[name]


@pytest.mark.parametrize("name", REAL_AUDIO)
def test_auto_detected_audio_follows_the_api_list(api, real_audio, name):
    """Without a Content-Type, the §8 formats complete; Matroska/WebM fail, named."""
    body = api.upload(real_audio[name], content_type=None).json()
    fails = REAL_AUDIO[name] in NOT_IN_THE_API_LIST
    api.wait(body["jobId"], "failed" if fails else "completed")
    job = next(j for j in api.sandbox.jobs() if j["id"] == body["jobId"])
    expected = f"body is {REAL_AUDIO[name]}, expected audio (auto-detected)" if fails else None
    assert job["failReason"] == expected


def test_adts_aac_is_not_mp3(api, real_audio):
    """A raw aac stream shares mp3's frame sync but is no mp3: audio/mpeg fails for it."""
    body = api.upload(real_audio["tone.aac"], content_type="audio/mpeg").json()
    api.wait(body["jobId"], "failed")


def test_empty_content_type_counts_as_absent(api):
    """The Python SDK sends an empty Content-Type on audio; that means auto-detect."""
    response = api.request("POST", "/v1/process/audio", content=wav(), headers={"Content-Type": ""})
    assert response.status_code == 201


@pytest.mark.parametrize("content_type", [None, "audio/wav", "video/quicktime", "video/mp4x"])
def test_video_requires_video_mp4(api, content_type):
    """POST and PUT video answer 400 unless Content-Type is video/mp4."""
    conversation_id = _existing(api)
    for cid in (None, conversation_id):
        response = api.upload(mp4(), kind="video", content_type=content_type, conversation_id=cid)
        assert response.status_code == 400


def test_video_mp4_with_parameters_accepted(api):
    """`video/mp4; codecs=...` is still video/mp4, on POST and on PUT."""
    first = api.upload(mp4(), kind="video", content_type="video/mp4; codecs=avc1")
    assert first.status_code == 201
    cid = first.json()["conversationId"]
    second = api.upload(mp4(), kind="video", content_type="VIDEO/MP4", conversation_id=cid)
    assert second.status_code == 201
    assert second.json()["conversationId"] == cid


def test_chunked_upload_gets_411_and_close(api):
    """A chunked (no Content-Length) upload gets 411, Connection: close, and creates nothing."""

    def body():
        yield wav()[:100]
        yield b"x" * 1000

    for route in ("audio", "video"):
        content_type = "video/mp4" if route == "video" else "audio/wav"
        response = api.request(
            "POST", f"/v1/process/{route}", content=body(), headers={"Content-Type": content_type}
        )
        assert response.status_code == 411
        assert response.headers["Connection"] == "close"
        assert "Content-Length" in response.json()["message"]
    assert api.sandbox.jobs() == []
    outcomes = [(s["status_code"], s["outcome"]) for s in api.sandbox.submissions()]
    assert outcomes == [(411, "rejected"), (411, "rejected")]


def test_missing_content_length_status_is_configurable(make_sandbox, make_api):
    """`missing_content_length_status` picks the answer to an upload without Content-Length."""
    api = make_api(make_sandbox(missing_content_length_status=400))
    response = api.request("POST", "/v1/process/audio", content=iter([wav()]))
    assert response.status_code == 400


def test_no_body_at_all_is_411(sandbox, api):
    """A POST with neither Content-Length nor Transfer-Encoding is also missing its length."""
    host, port = sandbox.url.removeprefix("http://").split(":")
    request = (
        f"POST /v1/process/audio HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api.token}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request.encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 411")


def test_empty_body_is_400(api):
    """Content-Length: 0 is a 400 on audio and video, and creates nothing."""
    assert api.upload(b"").status_code == 400
    assert api.upload(b"", kind="video", content_type="video/mp4").status_code == 400
    assert api.sandbox.jobs() == []


def test_body_over_cap_is_413(make_sandbox, make_api):
    """With max_body_bytes set, a larger declared body gets 413 and nothing is created."""
    sandbox = make_sandbox(max_body_bytes=10_000)
    api = make_api(sandbox)
    assert api.upload(wav(9_000)).status_code == 201
    response = api.upload(wav(200_000))
    assert response.status_code == 413
    assert len(sandbox.jobs()) == 1


def test_truncated_body_creates_nothing(sandbox, api):
    """A client that sends fewer bytes than Content-Length and leaves creates nothing."""
    host, port = sandbox.url.removeprefix("http://").split(":")
    head = (
        "POST /v1/process/audio HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
        f"Authorization: Bearer {api.token}\r\nContent-Length: 100000\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head.encode() + wav(5000))
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(65536) == b""  # closed without an answer
    submission = sandbox.submissions()[-1]
    assert submission["outcome"] == "aborted"
    assert submission["conversationId"] is None and not submission["created"]
    assert sandbox.jobs() == [] and sandbox.conversations() == {}


def test_url_routes_need_json_with_url(api):
    """URL routes answer 400 without application/json, without JSON, or without a string url."""
    path = "/v1/process/audio/url"
    assert api.request("POST", path, content=b'{"url": "https://a/b"}').status_code == 400
    json_type = {"Content-Type": "application/json"}
    assert api.request("POST", path, content=b"{nope", headers=json_type).status_code == 400
    assert api.request("POST", path, json=["https://a/b"]).status_code == 400
    assert api.request("POST", path, json={"name": "x"}).json() == {"message": '"url" is required'}
    assert api.request("POST", path, json={"url": 5}).status_code == 400
    assert api.request("POST", path, json={"url": "ftp://a/b"}).status_code == 400
    assert api.sandbox.jobs() == []


def test_url_routes_accept_json_and_chunked_json(api):
    """URL POST and PUT answer 201 for JSON bodies, even when the JSON is sent chunked."""
    first = api.submit_url("https://example.com/call.mp3")
    assert first.status_code == 201
    cid = first.json()["conversationId"]
    response = api.request(
        "PUT",
        f"/v1/process/video/url/{cid}",
        content=iter([b'{"url": "https://example.com/', b'v.mp4"}']),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201
    assert response.json()["conversationId"] == cid
    urls = [s["url"] for s in api.sandbox.submissions()]
    assert urls == ["https://example.com/call.mp3", "https://example.com/v.mp4"]


def _existing(api) -> str:
    response = api.upload(wav())
    assert response.status_code == 201
    return response.json()["conversationId"]


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def test_200mb_upload_is_streamed(tmp_path, sandbox, api):
    """A 200 MB upload is hashed correctly while the process's peak RSS grows < 50 MB."""
    path = tmp_path / "big.wav"
    digest = hashlib.sha256()
    header = wav(0)
    size = 200 * 1024 * 1024
    with path.open("wb") as f:
        f.write(header)
        digest.update(header)
        left = size - len(header)
        while left:
            chunk = os.urandom(min(1 << 20, left))
            f.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Otherwise an earlier peak could hide the growth this test is about.
    assert peak_before < _rss_kib() + 100 * 1024
    with path.open("rb") as f:
        response = api.request(
            "POST",
            "/v1/process/audio",
            content=f,
            headers={"Content-Length": str(size), "Content-Type": "audio/wav"},
        )
    assert response.status_code == 201, response.text
    growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert growth_mib < 50
    submission = api.sandbox.submissions()[-1]
    assert (submission["size"], submission["sha256"]) == (size, digest.hexdigest())


def test_concurrent_uploads_are_all_counted(make_sandbox, make_api):
    """Parallel uploads on separate connections each create exactly one job."""
    sandbox = make_sandbox(concurrency_limit=50)
    api = make_api(sandbox)
    results: list[int] = []

    def one() -> None:
        with httpx.Client(base_url=sandbox.url, verify=SSL) as client:
            response = client.post("/v1/process/audio", content=wav(50_000), headers={**api.auth})
            results.append(response.status_code)

    threads = [threading.Thread(target=one) for _ in range(20)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started < 10
    assert results == [201] * 20
    assert len(sandbox.jobs()) == 20
    assert len({s["conversationId"] for s in sandbox.submissions()}) == 20
