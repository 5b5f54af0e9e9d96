"""Fixtures: a fast sandbox on a free loopback port (ingestd.testing's `make_sandbox` with
these tests' options), an authenticated httpx client, media bytes."""

from __future__ import annotations

import os
import ssl
import struct
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from ingestd import testing
from ingestd.sandbox import Sandbox

SSL = ssl.create_default_context()
"""One TLS context for every client: building one per httpx.Client costs ~50 ms."""
FAST = {"job_seconds": 0.2, "schedule_seconds": 0.05, "webhook_retry_seconds": 0.05}


def wav(payload_bytes: int = 2000, seed: bytes | None = None) -> bytes:
    """A RIFF/WAVE header and `payload_bytes` of samples (random, or `seed` repeated)."""
    if seed is None:
        data = os.urandom(payload_bytes)
    else:
        data = (seed * (payload_bytes // len(seed) + 1))[:payload_bytes]
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 16000, 32000, 2, 16)
    body = b"WAVE" + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def mp3(payload_bytes: int = 2000) -> bytes:
    return b"ID3\x04\x00\x00\x00\x00\x00\x00" + os.urandom(payload_bytes)


def mp3_frame(payload_bytes: int = 2000) -> bytes:
    """An MP3 without ID3 tag: starts on a frame sync."""
    return b"\xff\xfb\x90\x64" + os.urandom(payload_bytes)


def mp4(payload_bytes: int = 2000) -> bytes:
    return b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + os.urandom(payload_bytes)


def ogg(payload_bytes: int = 2000) -> bytes:
    return b"OggS\x00\x02" + os.urandom(payload_bytes)


def flac(payload_bytes: int = 2000) -> bytes:
    return b"fLaC\x00\x00\x00\x22" + os.urandom(payload_bytes)


def noise(payload_bytes: int = 2000) -> bytes:
    """Bytes that are no known media (first byte is not 0xFF, no magic)."""
    return b"\x00NOTMEDIA" + os.urandom(payload_bytes)


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll until `predicate()` is truthy (ingestd.testing's `wait_for`, polled faster)."""
    return testing.wait_for(predicate, timeout, "the sandbox condition", interval)


class Api:
    """An httpx client bound to one sandbox, authenticated with a fresh token."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.http = httpx.Client(base_url=sandbox.url, timeout=30, verify=SSL, trust_env=False)
        response = self.http.post(
            "/oauth2/token:generate",
            json={"type": "application", "appId": "sandbox", "appSecret": "sandbox"},
        )
        assert response.status_code == 200, response.text
        self.token = response.json()["accessToken"]
        self.auth = {"Authorization": f"Bearer {self.token}"}

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**self.auth, **kw.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def upload(
        self,
        body: bytes,
        *,
        conversation_id: str | None = None,
        kind: str = "audio",
        content_type: str | None = "audio/wav",
        params: Any = None,
    ) -> httpx.Response:
        """POST (or PUT into `conversation_id`) a file route."""
        path = f"/v1/process/{kind}" + (f"/{conversation_id}" if conversation_id else "")
        headers = {"Content-Type": content_type} if content_type else {}
        method = "PUT" if conversation_id else "POST"
        return self.request(method, path, content=body, headers=headers, params=params)

    def submit_url(
        self, url: str, *, conversation_id: str | None = None, kind: str = "audio", **body: Any
    ) -> httpx.Response:
        path = f"/v1/process/{kind}/url" + (f"/{conversation_id}" if conversation_id else "")
        method = "PUT" if conversation_id else "POST"
        return self.request(method, path, json={"url": url, **body})

    def status(self, job_id: str) -> str:
        response = self.get(f"/v1/job/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()["status"]

    def wait(self, job_id: str, status: str = "completed", timeout: float = 5.0) -> None:
        wait_for(lambda: self.status(job_id) == status, timeout)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def sandbox_options() -> dict[str, Any]:
    """Faster jobs and webhook retries than ingestd.testing's default, for `make_sandbox`
    and `sandbox` (both from ingestd.testing)."""
    return dict(FAST)


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[Api]:
    client = Api(sandbox)
    yield client
    client.close()


@pytest.fixture
def make_api() -> Iterator[Callable[[Sandbox], Api]]:
    clients: list[Api] = []

    def make(sandbox: Sandbox) -> Api:
        clients.append(Api(sandbox))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    """A plain client for requests that must not carry the Api's token."""
    with httpx.Client(timeout=30, verify=SSL, trust_env=False) as client:
        yield client
