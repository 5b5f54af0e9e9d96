"""Helpers for the ffmpeg plugin's tests: recordings, running plans, stream hashes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from ingestd import executables
from ingestd.config import WatchConfig
from ingestd.model import Recording, TranscodePlan


def recording(
    path: Path, *, transcode: dict[str, Any] | None = None, **parameters: Any
) -> Recording:
    """A Recording of `path` in a watch named "w" with the given options and parameters."""
    watch = WatchConfig(
        name="w", path=path.parent, transcode=transcode or {}, parameters=parameters
    )
    info = path.stat()
    return Recording(
        id=1,
        path=path,
        relpath=path.name,
        watch=watch,
        size_bytes=info.st_size,
        mtime=info.st_mtime,
        sha256="x",
        state="discovered",
    )


def execute(plan: TranscodePlan, source: Path, output: Path) -> Path:
    """Run a plan as the core does: placeholders substituted, argv run without a shell."""
    argv = [
        str(source) if a == "{input}" else str(output) if a == "{output}" else a for a in plan.argv
    ]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return output


def stream_hashes(path: Path) -> dict[str, str]:
    """MD5 of every packet of the first real video and first audio stream, by kind.

    Equal hashes before and after a remux prove the streams were copied, not re-encoded.
    """
    argv = [executables.ffmpeg(), "-v", "error", "-i", str(path), "-map", "0:V:0?", "-map", "0:a:0"]
    argv += ["-c", "copy", "-f", "streamhash", "-hash", "md5", "-"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    hashes = {}
    for line in out.split():  # "0,v,MD5=..."
        _, kind, digest = line.split(",")
        hashes[kind] = digest
    return hashes


def ffprobe_json(path: Path) -> dict[str, Any]:
    """ffprobe's own report, to check files independently of the plugin's mapping."""
    argv = [executables.ffprobe(), "-v", "error", "-show_format", "-show_streams", "-of", "json"]
    out = subprocess.run([*argv, str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)
