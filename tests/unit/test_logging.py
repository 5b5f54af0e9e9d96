"""Logging: JSON lines for journald, secrets masked wherever they appear."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from ingestd.logging import configure, register_secrets


@pytest.fixture(autouse=True)
def no_journald(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    yield
    structlog.reset_defaults()  # the loggers keep the captured stream: never leak it


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


class TestLogging:
    def test_one_json_object_per_line_without_colour(self, capsys) -> None:
        """Not on a TTY every event is one JSON line with no ANSI escapes."""
        configure("debug", "json")
        structlog.get_logger().info("recording_discovered", size_bytes=10)
        [line] = lines(capsys)
        assert "\x1b[" not in line
        event = json.loads(line)
        assert (event["event"], event["size_bytes"], event["level"]) == (
            "recording_discovered",
            10,
            "info",
        )

    def test_journald_lines_carry_their_priority(self, monkeypatch, capsys) -> None:
        """Under journald each JSON line starts with <N> for its level."""
        monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
        configure("debug", "json")
        structlog.get_logger().warning("disk_almost_full", free_bytes=1)
        structlog.get_logger().info("hello")
        first, second = lines(capsys)
        assert first.startswith("<4>") and json.loads(first[3:])["event"] == "disk_almost_full"
        assert second.startswith("<6>")

    def test_registered_secrets_are_masked_anywhere(self, capsys) -> None:
        """A registered secret is masked inside any string, list, dict or exception."""
        configure("debug", "json")
        register_secrets(["s3cr3t-value-123"])
        log = structlog.get_logger()
        log.error(
            "api_failed",
            error="token s3cr3t-value-123 rejected",
            nested={"list": ["x s3cr3t-value-123"]},
        )
        try:
            raise ValueError("bad s3cr3t-value-123")
        except ValueError:
            log.exception("crashed")
        output = "\n".join(lines(capsys))
        assert "s3cr3t-value-123" not in output
        assert output.count("***") >= 3

    def test_credential_keys_are_masked_whatever_their_value(self, capsys) -> None:
        """Keys named like credentials never show their value."""
        configure("debug", "json")
        structlog.get_logger().info(
            "configured",
            app_secret="abc",
            access_token="t",
            authorization="Bearer x",
            name="visible",
        )
        event = json.loads(lines(capsys)[0])
        assert event["app_secret"] == event["access_token"] == event["authorization"] == "***"
        assert event["name"] == "visible"
