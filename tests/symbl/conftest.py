"""Shared pieces of the Symbl client tests: a sandbox factory, clients for it, media bytes."""

from __future__ import annotations

import hashlib
import os
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from ingestd.sandbox import Sandbox
from ingestd_symbl.client import SymblClient
from ingestd_symbl.options import from_mapping

FAST = {
    "poll_initial_seconds": 0.05,
    "poll_max_seconds": 0.3,
    "backoff_initial_seconds": 0.05,
    "backoff_max_seconds": 2.0,
    "request_timeout_seconds": 10,
}
"""Client options that keep the suite quick."""


def wav_header(data_bytes: int) -> bytes:
    """A 16 kHz mono 16-bit PCM WAV header for `data_bytes` of samples."""
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    return (
        b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE" + b"fmt " + fmt
        + b"data" + struct.pack("<I", data_bytes)
    )  # fmt: skip


def write_wav(path: Path, data_bytes: int, chunk_bytes: int = 1 << 20) -> str:
    """Write a WAV of random samples in chunks (never whole in memory); its sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as file:
        header = wav_header(data_bytes)
        file.write(header)
        digest.update(header)
        left = data_bytes
        while left:
            chunk = os.urandom(min(chunk_bytes, left))
            file.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def write_mp4(path: Path, data_bytes: int = 4096) -> str:
    """Bytes that start like an MP4 (an ``ftyp`` box), which is what the sandbox checks."""
    data = struct.pack(">I", 24) + b"ftypisom" + b"\0\0\2\0isomiso2" + os.urandom(data_bytes)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def client_options(sb: Sandbox, **overrides: Any) -> dict[str, Any]:
    options = sb.options
    return {
        "base_url": sb.url,
        "app_id": options.app_id,
        "app_secret": options.app_secret,
        **FAST,
        **overrides,
    }


def make_client(sb: Sandbox, **overrides: Any) -> SymblClient:
    """A real client for `sb` with fast timings. Create it inside the test's event loop."""
    return SymblClient(from_mapping(client_options(sb, **overrides)))


@pytest.fixture
def sandbox_options() -> dict[str, Any]:
    """Jobs of 0.3 s for ingestd.testing's `make_sandbox` (``make_sandbox(job_seconds=...)``
    overrides them per sandbox)."""
    return {"job_seconds": 0.3, "schedule_seconds": 0.05}


@pytest.fixture
def sb(sandbox: Sandbox) -> Sandbox:
    """A sandbox with the default fast settings (ingestd.testing's `sandbox`)."""
    return sandbox


def settle(sb: Sandbox, quiet: float = 0.05, timeout: float = 2.0) -> None:
    """Wait out the sandbox's bookkeeping, which records an answer just *after* sending it."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        now = (sb.stats()["requests"], sb.submissions())
        if now == last or time.monotonic() > deadline:
            return
        last = now
        time.sleep(quiet)


def requests_of(sb: Sandbox, route: str) -> dict[str, int]:
    """Answers the sandbox gave on one route, by status: ``{"200": 3, "401": 1}``."""
    settle(sb)
    return sb.stats()["requests"].get(route, {})


def records(sb: Sandbox) -> list[dict[str, Any]]:
    """The sandbox's submission log, once every answer given has been recorded."""
    settle(sb)
    return sb.submissions()
