"""Retry and redeliver from the dashboard: the CLI's own commands, called in-process.

`ingestd retry ID` and `ingestd redeliver CONVERSATION [--sink NAME]` run exactly as an
operator would run them (their own store connection, the config file read again), so the
dashboard never grows a second copy of what a retry means. What they print becomes the
message shown; their one-line errors become 4xx answers. One action at a time.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Callable
from pathlib import Path

from ingestd.errors import ConfigError, IngestdError
from ingestd.logging import redact


class ActionFailed(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Actions:
    """Args:
    config_path: the daemon's config file, which the commands read as the CLI does.
    on_change: called after a change, to wake the daemon's dispatcher (thread-safe).
    """

    def __init__(self, config_path: Path | None, on_change: Callable[[], None]) -> None:
        self.config_path = config_path
        self.on_change = on_change
        self._lock = threading.Lock()

    def retry(self, recording_id: int) -> str:
        return self._run("retry", [], [str(recording_id)])

    def redeliver(self, conversation_id: str, sink: str | None) -> str:
        return self._run("redeliver", ["--sink", sink] if sink else [], [conversation_id])

    def _run(self, command: str, options: list[str], positionals: list[str]) -> str:
        """``ingestd COMMAND --config CONFIG OPTIONS -- POSITIONALS``, parsed by the CLI's own
        parser (so every option gets its default) and run in this thread; not
        `commands.main`, which sets signal handlers (the daemon's, and main-thread only)."""
        from ingestd.commands import UsageError, build_parser

        if self.config_path is None:
            raise ActionFailed(503, "actions need the daemon started with --config")
        argv = [command, "--config", str(self.config_path), *options, "--", *positionals]
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:  # argparse refused it (and printed why to stderr)
            raise ActionFailed(400, f"ingestd {command} refused these arguments") from None
        out = io.StringIO()
        with self._lock:
            try:
                with contextlib.redirect_stdout(out):
                    code = args.func(args)
            except UsageError as exc:
                raise ActionFailed(400, redact(str(exc))) from None
            except ConfigError as exc:
                raise ActionFailed(400, redact("; ".join(exc.problems))) from None
            except IngestdError as exc:
                raise ActionFailed(409, redact(str(exc))) from None
        if code != 0:
            raise ActionFailed(409, redact(out.getvalue().strip() or f"exit code {code}"))
        self.on_change()
        return redact(out.getvalue().strip())
