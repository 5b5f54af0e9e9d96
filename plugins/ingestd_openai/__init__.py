"""ingestd_openai: OpenAI-compatible transcription servers as a backend (``backend: openai``).

Registers the ``openai`` `ingestd.registry.Backend` type through
``ingestd_register_backends``, exactly as a third-party plugin would (entry point ``openai`` in
the ``ingestd`` group). It speaks ``POST /v1/audio/transcriptions`` as OpenAI's service and
self-hosted servers (faster-whisper-server/speaches, whisper.cpp's server, LocalAI, vLLM) do;
options are the top-level ``openai:`` section (`options.from_mapping`). ``base_url: emulator``
starts the embedded emulator (`ingestd_openai.emulator`) instead, for trying it without a
server. Besides the required methods the backend has ``max_concurrent_jobs``,
``max_upload_bytes``, ``prepare_upload`` and ``check``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from ingestd import ConfigError, hookimpl
from ingestd_openai.client import OpenAIBackend
from ingestd_openai.options import OpenAIOptions, from_mapping

__all__ = ["OpenAIBackend", "OpenAIOptions", "from_mapping", "make_openai_backend"]

log = structlog.get_logger()


def make_openai_backend(options: Mapping[str, Any], state_dir: Path) -> OpenAIBackend:
    """`BackendFactory`: a client for the server, or for an embedded emulator."""
    validated = from_mapping(options)
    if not validated.is_emulator:
        return OpenAIBackend(validated, state_dir)
    from ingestd_openai.emulator import EmulatorOptions, OpenAIEmulator

    emulator = OpenAIEmulator(
        EmulatorOptions(
            api_key=validated.api_key.reveal() if validated.api_key else None,
            models=(validated.model,),
            max_upload_bytes=validated.max_upload_bytes,
            answer_delay_seconds=validated.emulator_answer_delay_seconds,
        )
    )
    try:
        url = emulator.start("127.0.0.1", validated.emulator_port)
    except OSError as exc:
        raise ConfigError(
            f"openai.emulator.port: cannot listen on 127.0.0.1:{validated.emulator_port}: "
            f"{exc.strerror or exc}; choose another port or 0 for any free one"
        ) from None
    log.info("openai_emulator_started", url=url)

    async def stop() -> None:
        await asyncio.to_thread(emulator.stop)

    backend = OpenAIBackend(validated, state_dir, base_url=url, on_close=stop)
    backend.emulator = emulator  # type: ignore[attr-defined]
    return backend


@hookimpl
def ingestd_register_backends(register: Callable[..., None]) -> None:
    """Register the "openai" backend type."""
    register("openai", make_openai_backend)
