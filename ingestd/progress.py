"""Progress of work in flight that the store does not hold: bytes of each upload sent so far,
and how far into its media each running transcode is (as ffmpeg reports it).

Written on the event loop, read by the dashboard's threads (a plain dict swapped item by item
is safe to copy under the GIL). Gone with the process, as the upload or the ffmpeg run is.
"""

from __future__ import annotations

from pathlib import Path

_uploads: dict[str, tuple[int, int]] = {}


def upload_sent(path: Path | str, sent_bytes: int, size_bytes: int) -> None:
    _uploads[str(path)] = (sent_bytes, size_bytes)


def upload_ended(path: Path | str) -> None:
    _uploads.pop(str(path), None)


def uploads() -> dict[str, tuple[int, int]]:
    """upload file path -> (bytes sent, size), for the uploads running now."""
    return dict(_uploads)


_transcodes: dict[str, float] = {}


def transcode_at(source: Path | str, media_seconds: float) -> None:
    _transcodes[str(source)] = media_seconds


def transcode_ended(source: Path | str) -> None:
    _transcodes.pop(str(source), None)


def transcodes() -> dict[str, float]:
    """source file path -> seconds of its media transcoded so far, for the runs going now."""
    return dict(_transcodes)
