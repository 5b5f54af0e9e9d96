"""Helpers for the routing plugin's tests: recordings in a watch, and media facts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingestd.config import WatchConfig
from ingestd.model import Media, Recording

MONO_WAV = Media("wav", 2.0, "pcm_s16le", 1, 16000)
STEREO_WAV = Media("wav", 2.0, "pcm_s16le", 2, 16000)
PHONE_WAV = Media("wav", 2.0, "pcm_s16le", 1, 8000)
MP3 = Media("mp3", 2.0, "mp3", 1, 44100)
OGG = Media("ogg", 2.0, "vorbis", 1, 48000)
MP4 = Media("mov,mp4,m4a,3gp,3g2,mj2", 2.0, "aac", 1, 48000, video_codec="h264")
MKV = Media("matroska,webm", 2.0, "opus", 1, 48000, video_codec="h264")
PHONE_AMR = Media("amr", 2.0, "amr_nb", 1, 8000)
STEREO_FLAC = Media("flac", 2.0, "flac", 2, 16000)


def recording(
    root: Path,
    relpath: str = "call.wav",
    *,
    parameters: dict[str, Any] | None = None,
    endpoint: dict[str, Any] | None = None,
    transcode: dict[str, Any] | None = None,
    name: str = "sales",
    media: Media | None = None,
) -> Recording:
    """A Recording of `root/relpath` (the file need not exist) in a watch on `root`;
    `media`: what the probe found in the original (None: not probed)."""
    watch = WatchConfig(
        name=name,
        path=root,
        parameters=parameters or {},
        endpoint=endpoint or {},
        transcode=transcode or {},
    )
    return Recording(
        id=1,
        path=root / relpath,
        relpath=relpath,
        watch=watch,
        size_bytes=1000,
        mtime=1_700_000_000.0,
        sha256="x",
        state="transcoded",
        media=media,
    )
