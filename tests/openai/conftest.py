"""Fixtures for the OpenAI-compatible backend: its emulator on a loopback port, in the test
process (so its record of requests survives daemon kills), and an installation whose daemon
is pointed at it (``backend: openai``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingestd.testing import DaemonProcess, IngestdEnv
from ingestd_openai.emulator import EmulatorOptions, OpenAIEmulator

API_KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def emulator() -> Iterator[OpenAIEmulator]:
    em = OpenAIEmulator(EmulatorOptions(api_key=API_KEY))
    em.start()
    try:
        yield em
    finally:
        em.stop()


class OpenAIEnv(IngestdEnv):
    """An `IngestdEnv` whose daemon uses the openai backend, its key read from a file."""

    def __init__(self, root: Path, emulator: OpenAIEmulator) -> None:
        super().__init__(root, "sandbox")
        self.emulator = emulator
        self.key_file = root / "openai.key"
        self.key_file.write_text(API_KEY + "\n")

    def openai_daemon(
        self, openai: dict[str, Any] | None = None, **overrides: Any
    ) -> DaemonProcess:
        section = {
            "base_url": self.emulator.url,
            "model": "whisper-1",
            "api_key_file": str(self.key_file),
            "max_concurrent_jobs": 2,
            "backoff_initial_seconds": 0.05,
            "backoff_max_seconds": 0.5,
            **(openai or {}),
        }
        return self.daemon(backend="openai", openai=section, **overrides)

    def results_json(self) -> list[dict[str, Any]]:
        """Every JSON result the files sink wrote."""
        return [json.loads(p.read_text()) for p in sorted(self.results.rglob("*.json"))]


@pytest.fixture
def openai_env(tmp_path: Path, emulator: OpenAIEmulator) -> Iterator[OpenAIEnv]:
    env = OpenAIEnv(tmp_path, emulator)
    try:
        yield env
    finally:
        env.stop_all()
