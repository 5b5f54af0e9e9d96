"""The plugin as the core sees it: entry point, registered factories, the sandbox backend."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from ingestd.errors import ConfigError
from ingestd.model import Endpoint, EndpointKind, JobStatus, Params, Upload
from ingestd.plugins import load_plugins
from ingestd.registry import Backend
from ingestd_symbl import make_sandbox_backend, make_symbl_backend
from ingestd_symbl.client import SymblClient
from tests.symbl.conftest import write_wav


def test_loaded_through_the_entry_point() -> None:
    """The ``symbl`` entry point registers both backend types, like a third-party plugin."""
    plugins = load_plugins()
    row = next(p for p in plugins.info if p.name == "symbl")
    assert (row.source, row.module, row.status) == ("entry point", "ingestd_symbl", "loaded")
    assert "ingestd_register_backends" in row.hooks
    assert plugins.backends.get("symbl", key_path="symbl.base_url") is make_symbl_backend
    assert plugins.backends.get("sandbox", key_path="symbl.base_url") is make_sandbox_backend


def test_symbl_factory_builds_a_backend(tmp_path: Path) -> None:
    """The "symbl" factory validates its options and returns a Backend for the host."""
    backend = make_symbl_backend(
        {"base_url": "https://api.symbl.ai", "app_id": "a", "app_secret": "b"}, tmp_path
    )
    assert isinstance(backend, Backend) and isinstance(backend, SymblClient)
    assert (backend.name, backend.base_url) == ("symbl", "https://api.symbl.ai")
    asyncio.run(backend.aclose())
    with pytest.raises(ConfigError, match=r"symbl\.app_secret"):
        make_symbl_backend({"base_url": "https://api.symbl.ai", "app_id": "a"}, tmp_path)


def test_sandbox_backend_end_to_end(tmp_path: Path) -> None:
    """The "sandbox" backend serves real HTTP on loopback and stops with aclose()."""
    path = tmp_path / "a.wav"
    write_wav(path, 2000)
    options = {
        "base_url": "sandbox",
        "max_concurrent_jobs": 3,
        "poll_initial_seconds": 0.05,
        "poll_max_seconds": 0.2,
        "sandbox": {"job_seconds": 0.2, "token_lifetime_seconds": 600},
    }

    async def scenario() -> tuple[str, JobStatus]:
        backend = make_sandbox_backend(options, tmp_path)
        url = backend.base_url
        try:
            assert backend.name == "sandbox" and url.startswith("http://127.0.0.1:")
            sandbox = backend.sandbox
            assert sandbox.options.concurrency_limit == 3
            assert sandbox.options.token_lifetime_seconds == 600
            endpoint = Endpoint(EndpointKind.AUDIO, "audio/wav")
            sub = await backend.submit(
                endpoint, Upload(path, path.stat().st_size, None), Params(), None
            )
            status = await backend.wait_for_job(sub.job_id)
        finally:
            await backend.aclose()
        return url, status

    url, status = asyncio.run(scenario())
    assert status is JobStatus.COMPLETED
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/v1/job/x", timeout=2)


def test_symbl_factory_accepts_sandbox(tmp_path: Path) -> None:
    """base_url sandbox given to the "symbl" factory starts the emulator too."""
    backend = make_symbl_backend({"base_url": "sandbox"}, tmp_path)
    try:
        assert backend.name == "sandbox"
    finally:
        asyncio.run(backend.aclose())


def test_sandbox_port_in_use(tmp_path: Path) -> None:
    """A sandbox port already taken is a ConfigError naming the key, not a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=r"^symbl\.sandbox\.port: cannot listen on"):
            make_sandbox_backend({"base_url": "sandbox", "sandbox": {"port": port}}, tmp_path)
