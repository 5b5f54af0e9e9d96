"""The "sandbox" backend: the embedded Symbl emulator on a loopback port, driven by the real
client over real HTTP.

``symbl.base_url: sandbox`` lets someone try ingestd end to end without an account: the same
`SymblClient` code paths run (tokens, streaming uploads, retries, polling), only the host is
local. The emulator lives as long as the backend: `aclose()` stops it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from ingestd import ConfigError
from ingestd_symbl.client import SymblClient
from ingestd_symbl.options import SymblOptions, from_mapping

log = structlog.get_logger()

INSIGHTS_NOTICE = (
    "the ingestd sandbox, an emulator of the Symbl API, made these insights up: sentences "
    "derived from the upload's bytes, not a transcript of what was said"
)
"""Shown with results made from the sandbox (`Result.notice`), in `check` and at start."""

HOST = "127.0.0.1"
"""Loopback only: the sandbox accepts the well-known "sandbox" credentials."""


def sandbox_options(options: SymblOptions) -> Any:
    """The emulator's settings: our credentials, its job timing and our concurrency limit."""
    from ingestd.sandbox import SandboxOptions  # imported late: only this backend needs it

    settings = options.sandbox
    extra: dict[str, Any] = {}
    if settings.token_lifetime_seconds is not None:
        extra["token_lifetime_seconds"] = settings.token_lifetime_seconds
    return SandboxOptions(
        app_id=options.app_id.reveal(),
        app_secret=options.app_secret.reveal(),
        job_seconds=settings.job_seconds,
        concurrency_limit=settings.concurrency_limit or options.max_concurrent_jobs,
        **extra,
    )


class SandboxClient(SymblClient):
    """A `SymblClient` that owns the emulator it talks to (`sandbox`, for tests and status)."""

    def __init__(self, options: SymblOptions, sandbox: Any, url: str) -> None:
        async def stop() -> None:
            await asyncio.to_thread(sandbox.stop)
            log.info("sandbox_stopped", url=url)

        super().__init__(options, base_url=url, name="sandbox", on_close=stop)
        self.sandbox = sandbox
        self.insights_notice = INSIGHTS_NOTICE

    async def check(self) -> str:
        """What `SymblClient.check` proves, and that what this emulator returns is made up."""
        await super().check()
        return (
            f"sandbox (embedded emulator at {self.base_url}): credentials accepted; its "
            f"insights are made up (sentences derived from each upload's bytes), not transcripts"
        )


def start_sandbox_backend(options: SymblOptions) -> SandboxClient:
    """Start an emulator and return a client for it whose `aclose()` also stops it."""
    from ingestd.sandbox import Sandbox

    sandbox = Sandbox(sandbox_options(options))
    try:
        url = sandbox.start(host=HOST, port=options.sandbox.port)
    except OSError as exc:
        raise ConfigError(
            f"symbl.sandbox.port: cannot listen on {HOST}:{options.sandbox.port}: "
            f"{exc.strerror or exc}; choose another port or 0 for any free one"
        ) from None
    log.info(
        "sandbox_started",
        url=url,
        job_seconds=options.sandbox.job_seconds,
        note=INSIGHTS_NOTICE,
    )
    return SandboxClient(options, sandbox, url)


def make_sandbox_backend(options: Mapping[str, Any], state_dir: Path) -> SandboxClient:
    """`BackendFactory` for ``backend: sandbox`` (options from a ``sandbox:`` section, if
    any; ``symbl.base_url: sandbox`` reaches the same emulator through the "symbl" type).
    The state directory is unused: the emulator keeps everything in memory and forgets it
    when the daemon stops."""
    return start_sandbox_backend(from_mapping({"base_url": "sandbox", **options}, "sandbox"))
