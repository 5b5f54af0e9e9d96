"""The emulator itself, spoken to with a plain HTTP client: it must behave like the servers
it stands for, or the backend's tests prove nothing."""

from __future__ import annotations

import httpx

from .conftest import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def post(emulator, path, **fields) -> httpx.Response:
    files = {"file": (path.name, path.read_bytes(), "audio/wav")}
    data = {"model": "whisper-1", "response_format": "verbose_json", **fields}
    return httpx.post(
        f"{emulator.url}/audio/transcriptions", files=files, data=data, headers=AUTH, timeout=30
    )


def test_verbose_json_follows_the_uploads_real_duration(emulator, make_media) -> None:
    audio = make_media("call.wav", seconds=12)
    answer = post(emulator, audio).json()
    assert answer["duration"] == 12.0 and answer["language"] == "english"
    assert [(s["start"], s["end"]) for s in answer["segments"]] == [(0, 5), (5, 10), (10, 12)]
    (record,) = emulator.answered()
    assert record.fields["model"] == "whisper-1" and record.size_bytes == audio.stat().st_size
    plain = post(emulator, audio, response_format="json").json()
    assert plain == {"text": answer["text"]}


def test_errors_in_openais_shape(emulator, make_media, tmp_path) -> None:
    audio = make_media("call.wav", seconds=1)
    refused = httpx.post(f"{emulator.url}/audio/transcriptions", files={"file": ("a.wav", b"x")})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    assert post(emulator, audio, model="nope").status_code == 404
    not_media = tmp_path / "notes.wav"
    not_media.write_text("not audio at all")
    assert post(emulator, not_media).status_code == 400
    emulator.options.max_upload_bytes = 1000
    too_big = post(emulator, audio)
    assert too_big.status_code == 413
    assert "Maximum content size limit (1000)" in too_big.json()["error"]["message"]


def test_faults_on_demand(emulator, make_media) -> None:
    audio = make_media("call.wav", seconds=1)
    emulator.fail_next(429, retry_after=3)
    emulator.drop_next()
    try:  # drops come first
        post(emulator, audio)
    except httpx.RemoteProtocolError:
        pass
    else:
        raise AssertionError("the connection was not dropped")
    limited = post(emulator, audio)
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "3")
    assert post(emulator, audio).status_code == 200
    assert [r.status for r in emulator.requests] == [0, 429, 200]
