"""What is in a file, by ffprobe (a plain PCM wav by its header); and every reason to
reject it, said so the user can act.

Rejections (`Rejected`, "replace the file to retry"): not a regular file, unreadable
(permission denied), empty, not media ffprobe can read (its first error line is quoted),
no audio stream, no or zero duration where the format always has one, truncated (see
`truncation`). An ffprobe that hangs past its timeout is `Retryable`: a stalled mount is
not the file's fault.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from ingestd import Media, Rejected

from .runner import first_error_line, run_ffprobe
from .truncation import check_complete
from .wavheader import plain_pcm_media, read_wav_header

MAY_LACK_DURATION = frozenset({"matroska", "webm", "ogg", "aac", "amr", "mpegts", "flv"})
"""Formats that are valid without a stored duration (a browser's MediaRecorder webm, a
live capture); a transcode gives them one. Every other format must have one."""

_HINTS = {
    "moov atom not found": "no mp4/mov index: truncated, still being written, or not mp4 at all",
    "Invalid data found when processing input": "not a media format ffprobe knows",
    "End of file": "it ends inside its own headers: truncated?",
    "no 'data' tag found": "a wav header with no audio after it: truncated?",
}


def probe_file(path: Path, relpath: str) -> Media:
    """Probe `path` (shown to the user as `relpath`) and check it is complete, usable media.

    Blocks for up to two ffprobe runs of at most 30 s each; call it from a worker thread.
    A plain PCM wav is described from its header, with no ffprobe run (`wavheader`).
    """
    size = _check_readable(path, relpath)
    try:
        header = read_wav_header(path)
    except OSError:
        header = None  # ffprobe's run below says what is wrong with the file
    media = plain_pcm_media(header, size) if header else None
    if media is not None:
        check_complete(path, relpath, media)
        return media
    completed = run_ffprobe(
        ["-v", "error", "-show_format", "-show_streams", "-of", "json"], path, relpath
    )
    if completed.returncode != 0:
        raise _unreadable(path, relpath, completed.stderr)
    try:
        info = json.loads(completed.stdout or "{}")
    except json.JSONDecodeError:
        raise Rejected(
            f"{relpath} could not be probed: ffprobe printed no readable report; "
            f"replace the file to retry"
        ) from None
    media = media_from_ffprobe(info, relpath)
    check_complete(path, relpath, media)
    return media


def media_from_ffprobe(info: dict[str, Any], relpath: str) -> Media:
    """Map ffprobe's ``-show_format -show_streams`` JSON to `Media`, or raise `Rejected`.

    The first audio stream and the first real video stream count; cover art (the
    ``attached_pic`` disposition), thumbnails, subtitles and data streams do not.
    """
    fmt = info.get("format") or {}
    streams = info.get("streams") or []
    container = str(fmt.get("format_name") or "")
    if not container or not streams:
        raise Rejected(
            f"{relpath} is not media: ffprobe found no streams in it; replace the file to retry"
        )
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    video = next((s for s in streams if _is_real_video(s)), None)
    if audio is None:
        what = "a video without sound" if video else "no sound"
        raise Rejected(
            f"{relpath} has nothing to transcribe ({what}): ffprobe found no audio stream; "
            f"replace the file to retry"
        )
    channels, sample_rate_hz = _int(audio.get("channels")), _int(audio.get("sample_rate"))
    if not channels or not sample_rate_hz:
        raise Rejected(
            f"{relpath} is corrupt: ffprobe could not read its audio stream's channels and "
            f"sample rate; replace the file to retry"
        )
    duration = _float(fmt.get("duration"))
    if duration is None:
        duration = _float(audio.get("duration"))
    if duration is None and not MAY_LACK_DURATION.intersection(container.split(",")):
        raise Rejected(
            f"{relpath} looks truncated or corrupt: ffprobe could not tell its duration, "
            f"which a {container} file always has; replace the file to retry"
        )
    if duration is not None and duration <= 0:
        raise Rejected(f"{relpath} has a duration of zero; replace the file to retry")
    return Media(
        container=container,
        duration_seconds=duration,
        audio_codec=audio.get("codec_name"),
        channels=channels,
        sample_rate_hz=sample_rate_hz,
        video_codec=video.get("codec_name") if video else None,
        bit_rate=_int(fmt.get("bit_rate")),
    )


def _is_real_video(stream: dict[str, Any]) -> bool:
    disposition = stream.get("disposition") or {}
    return (
        stream.get("codec_type") == "video"
        and not disposition.get("attached_pic")
        and not disposition.get("timed_thumbnails")
    )


def _check_readable(path: Path, relpath: str) -> int:
    """Fail fast and clearly before ffprobe: missing, not a file, unreadable, empty.
    Returns the file's size.

    A fifo or device in a watched folder would block ffprobe (and a worker) forever.
    """
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise Rejected(f"{relpath} is not a regular file; only files can be processed")
        with open(path, "rb") as file:
            file.read(1)
    except PermissionError:
        raise _permission_denied(relpath) from None
    except FileNotFoundError:
        raise Rejected(f"{relpath} disappeared before it could be probed") from None
    except OSError as exc:
        raise Rejected(f"cannot read {relpath}: {os.strerror(exc.errno or 0)}") from None
    if info.st_size == 0:
        raise Rejected(f"{relpath} is empty (0 bytes); replace the file to retry")
    return info.st_size


def _unreadable(path: Path, relpath: str, stderr: str) -> Rejected:
    error = first_error_line(stderr, path)
    if "Permission denied" in stderr:
        return _permission_denied(relpath)
    hint = next((f"; {hint}" for text, hint in _HINTS.items() if text in error), "")
    return Rejected(
        f"{relpath} is not media ffprobe can read (ffprobe: {error}{hint}); "
        f"replace the file to retry"
    )


def _permission_denied(relpath: str) -> Rejected:
    return Rejected(f"cannot read {relpath}: permission denied; fix its permissions to retry")


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN is unknown too
