"""The entry point: stop signals exit 0 until the daemon takes over, and it imports nothing
heavy before setting them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from ingestd import commands


@pytest.fixture
def restore_signals() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


class TestEntryPoint:
    def test_output_to_a_closed_pipe_is_no_traceback(self, tmp_path) -> None:
        """`ingestd install-unit --dry-run | head -3`: the reader leaves early; ingestd ends
        quietly with 141 (128 + SIGPIPE), as a shell reports it."""
        read_end, write_end = os.pipe()
        os.close(read_end)  # nobody will ever read
        try:
            command = [sys.executable, "-m", "ingestd.cli", "install-unit", "--dry-run"]
            result = subprocess.run(
                [*command, "--prefix", str(tmp_path), "--executable", "/opt/ingestd/bin/ingestd"],
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
            )
        finally:
            os.close(write_end)
        assert (result.returncode, result.stderr) == (141, "")

    def test_importing_the_entry_point_is_cheap(self) -> None:
        """`ingestd.cli` imports only the standard library (and the `ingestd` package)."""
        code = (
            "import sys, ingestd.cli; "
            "print(sorted(m for m in ('ingestd.commands', 'asyncio', 'structlog', 'yaml') "
            "if m in sys.modules))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert result.stdout.strip() == "[]"

    def test_sigterm_before_the_daemon_handles_it_exits_zero(self) -> None:
        """A SIGTERM once the entry point's handler is set ends the process with exit 0."""
        code = (
            "import os, signal, time, ingestd.cli as cli; "
            "cli._stop_signals_exit_quietly(); "
            "os.kill(os.getpid(), signal.SIGTERM); time.sleep(10)"
        )
        result = subprocess.run([sys.executable, "-c", code], timeout=30)
        assert result.returncode == 0

    def test_one_shot_commands_get_the_default_stop_actions(
        self, monkeypatch: pytest.MonkeyPatch, restore_signals: None
    ) -> None:
        """Commands other than `run` change the store as they go: a stop ends them as usual."""
        seen = {}

        def fake_plugins(args: object) -> int:
            seen["term"] = signal.getsignal(signal.SIGTERM)
            seen["int"] = signal.getsignal(signal.SIGINT)
            return 0

        monkeypatch.setattr(commands, "cmd_plugins", fake_plugins)
        signal.signal(signal.SIGTERM, lambda *_: None)
        assert commands.main(["plugins"]) == 0
        assert seen == {"term": signal.SIG_DFL, "int": signal.default_int_handler}
