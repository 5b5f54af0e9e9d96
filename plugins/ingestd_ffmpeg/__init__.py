"""Bundled plugin: what is in a file (ffprobe) and what to make of it (an ffmpeg plan).

Decides three things, each a ``trylast`` default that an installed plugin overrides:

- accept: an empty file is rejected at once.
- probe: container, codecs, channels, sample rate and duration, by ffprobe; files that are
  not media, unreadable, soundless or truncated are rejected with a reason the user can act
  on (see `probe` and `truncation`).
- fit upload: a file larger than the backend takes is compacted, then cut at silences (`fit`).
- transcode plan: mono wav, mp3 and mp4 go as they are; other video is remuxed into mp4
  when its codecs allow, else re-encoded stream by stream; other audio becomes the watch's
  wav or mp3 target (see `plan`, and `options` for the ``transcode`` section).

`content_type_for` tells the routing plugin which Content-Type an upload has.
"""

from __future__ import annotations

from pathlib import Path

from ingestd import (
    ConfigError,
    Media,
    Piece,
    Recording,
    Rejected,
    TranscodePlan,
    Upload,
    WatchConfig,
    hookimpl,
)

from .content_types import content_type_for, is_mp4_video
from .fit import fit_to_size
from .options import TranscodeOptions, parse_options
from .plan import plan_for
from .probe import probe_file

__all__ = [
    "TranscodeOptions",
    "content_type_for",
    "ingestd_accept",
    "ingestd_fit_upload",
    "ingestd_probe",
    "ingestd_transcode_plan",
    "is_mp4_video",
    "parse_options",
]


@hookimpl
def ingestd_validate_watch(watch: WatchConfig) -> list[str]:
    """Bad ``transcode`` options stop the daemon at start-up, not at the first file."""
    try:
        parse_options(watch)
    except ConfigError as exc:
        return exc.problems
    return []


@hookimpl(trylast=True)
def ingestd_accept(recording: Recording) -> None:
    """Reject an empty file before anything runs on it."""
    if recording.size_bytes == 0:
        raise Rejected(f"{recording.relpath} is empty (0 bytes); replace the file to retry")


@hookimpl(trylast=True)
def ingestd_probe(recording: Recording) -> Media:
    """Run ffprobe (blocking; the core calls this in a worker thread)."""
    return probe_file(recording.path, recording.relpath)


@hookimpl(trylast=True)
def ingestd_fit_upload(upload: Upload, max_bytes: int, work_dir: Path) -> list[Piece]:
    """Compact, then cut at silences, under the backend's upload limit (blocking)."""
    return fit_to_size(upload.path, max_bytes, work_dir)


@hookimpl(trylast=True)
def ingestd_transcode_plan(recording: Recording, media: Media) -> TranscodePlan:
    """Decide, from the probe and the watch's ``transcode`` options, without running ffmpeg."""
    return plan_for(recording.path, media, parse_options(recording.watch))
