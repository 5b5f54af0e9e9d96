"""Which upload Content-Type a file has, and when an ISO media file counts as mp4.

The Symbl API names only four audio Content-Types (wav and mp3) and one video type, mp4
(symbl-api.md §3). ffprobe reports the same format name, ``mov,mp4,m4a,3gp,3g2,mj2``, for
mp4 video, m4a audio and QuickTime mov, so "is it mp4?" is decided by a real video stream
(cover art is not one) and the file's suffix, never by the format name alone.
"""

from __future__ import annotations

from pathlib import Path, PurePath

from ingestd import Media

MP4_SUFFIXES = frozenset({".mp4", ".m4v"})
"""Suffixes of the mp4 files the video routes take as they are (m4v is Apple's name for
the same format)."""


def suffix_of(path_or_suffix: str | Path) -> str:
    """``".mp4"`` from ``"a/b.MP4"``, ``".mp4"`` or ``"mp4"``."""
    text = str(path_or_suffix)
    suffix = PurePath(text).suffix
    if not suffix and "/" not in text:  # PurePath(".mp4").suffix is "" (a dot file)
        suffix = text if text.startswith(".") else f".{text}"
    return suffix.lower()


def is_mp4_video(path_or_suffix: str | Path, media: Media) -> bool:
    """True for an mp4 with a real video stream: what the video routes accept as is."""
    return (
        media.kind == "video"
        and "mp4" in media.container.split(",")
        and suffix_of(path_or_suffix) in MP4_SUFFIXES
    )


def content_type_for(path_or_suffix: str | Path, media: Media) -> str | None:
    """The Content-Type to upload a file with, or None to let the API detect the format.

    Args:
        path_or_suffix: the file that will be uploaded (after any transcode), or its suffix.
        media: what ffprobe found in that file.

    Returns:
        ``audio/wav``, ``audio/mpeg``, ``video/mp4``, or None for everything else (other
        audio formats have no Content-Type the API accepts; other video is not accepted).
    """
    if media.kind == "video":
        return "video/mp4" if is_mp4_video(path_or_suffix, media) else None
    formats = media.container.split(",")
    if "wav" in formats:
        return "audio/wav"
    if "mp3" in formats:
        return "audio/mpeg"
    return None
