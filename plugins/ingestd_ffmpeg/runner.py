"""Running ffprobe: bounded in time, its complaints turned into one readable line."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ingestd import Retryable, executables

PROBE_TIMEOUT_SECONDS = 30.0
"""ffprobe reads headers and a few seconds of packets; longer means a stalled disk or
network mount, which is worth another try later rather than a rejection."""

_LOG_PREFIX = re.compile(r"^\[[^\]]* @ (0x)?[0-9a-fA-F]+\]\s*")


def run_ffprobe(
    args: list[str], path: Path, relpath: str, *, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``ffprobe -hide_banner ARGS PATH``; raise `Retryable` when it takes too long
    or cannot be started.

    Never raises for a non-zero exit: the caller decides what ffprobe's error means.
    `timeout` defaults to `PROBE_TIMEOUT_SECONDS`, read at call time.
    """
    timeout = PROBE_TIMEOUT_SECONDS if timeout is None else timeout
    argv = [executables.ffprobe(), "-hide_banner", *args, str(path)]
    try:
        return subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:  # subprocess.run has killed it already
        raise Retryable(
            f"ffprobe did not finish reading {relpath} within {timeout:.0f} s "
            f"(a stalled disk or network mount?); will try again"
        ) from None
    except OSError as exc:  # ffprobe missing or not executable
        raise executables.cannot_run(argv[0], exc) from None


def first_error_line(stderr: str, path: Path) -> str:
    """ffprobe's first complaint, without its ``[demuxer @ 0x...]`` tag or the file path."""
    for line in stderr.splitlines():
        line = _LOG_PREFIX.sub("", line.strip())
        line = line.removeprefix(f"{path}: ").strip()
        if line:
            return line
    return "no error message"
