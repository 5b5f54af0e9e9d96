"""Is the whole file there? Truncated files are rejected, not transcoded.

A file counts as truncated when its own header or index promises more media than its bytes
hold: a wav whose ``data`` chunk is longer than the file, an mp3 whose Xing/Info frame count
or a flac whose STREAMINFO reaches past the last packet, an mp4 whose index points past the
end (or whose index, written last, is missing entirely: ffprobe then fails with "moov atom
not found", handled in `probe`).

Why reject rather than transcode what is there: the folder has settled, so waiting will not
complete the file; uploading it would bill for and deliver a transcript silently missing its
end; and the complete file, arriving later with another content hash, would become a
second conversation. Rejection says so and tells the user to replace the file. Formats that
promise no length (ogg, adts aac, amr, mp3 without an Info frame, where ffprobe says it is
"estimating duration from bitrate") cut short are indistinguishable from a shorter
recording, and are processed as such: their transcoded output is a valid, shorter file.

Only positive evidence rejects: packets that stop short of the promised end. ffprobe listing
no packets at all proves nothing (the bundled static ffprobe 6.0 printed nothing for
open-ended ``-read_intervals`` from some install paths), so the check reads again another
way, and accepts the file when that finds nothing either.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from ingestd import Media, Rejected, Retryable

from .runner import run_ffprobe
from .wavheader import read_wav_header

log = structlog.get_logger()

TAIL_SECONDS = 5.0
"""How far before the promised end the packet check starts reading."""

ALL_PACKETS_TIMEOUT_SECONDS = 120.0
"""For the fallback that lists every packet of the file: a few seconds per hour of media."""


def check_complete(path: Path, relpath: str, media: Media) -> None:
    """Raise `Rejected` when `path` holds less media than its header promises.

    A wav whose header promises a length and whose file holds it needs no packet read: its
    data chunk is all there, which is what the packets would show (one ffprobe fewer per
    file, the most common kind).
    """
    if "wav" in media.container.split(",") and _check_wav(path, relpath):
        return
    if media.duration_seconds:
        _check_tail(path, relpath, media.duration_seconds)


def wav_promise(path: Path) -> tuple[int, int, int] | None:
    """``(data_offset, data_bytes, byte_rate)`` from a RIFF/WAVE header, or None when the
    header promises no length (RF64, placeholder sizes) or cannot be read."""
    header = read_wav_header(path)
    if header is None or header.data_bytes is None or not header.byte_rate:
        return None
    return header.data_offset, header.data_bytes, header.byte_rate


def _check_wav(path: Path, relpath: str) -> bool:
    """True when the header promises a length and the file holds it; `Rejected` when it
    holds less; False when the header promises nothing (the packets must tell)."""
    promise = wav_promise(path)
    if promise is None:
        return False
    data_offset, data_bytes, byte_rate = promise
    present = max(0, path.stat().st_size - data_offset)
    if present + byte_rate // 10 < data_bytes:  # more than 0.1 s missing
        raise Rejected(
            f"{relpath} looks truncated: its wav header promises {data_bytes / byte_rate:.1f} s "
            f"of audio but the file holds {present / byte_rate:.1f} s (an interrupted copy?); "
            f"replace it with the complete file to retry"
        )
    return True


def _check_tail(path: Path, relpath: str, duration: float) -> None:
    """Read (without decoding) the packets of the last seconds; they must reach the end.

    Only packets that stop short of the promised end reject the file. An empty answer is
    no evidence: the bounded tail read is followed by a read of the whole file, and if that
    is empty too the file is accepted (and the inconclusive check logged).
    """
    end = None
    for read in (_read_tail, _read_all):
        end, estimated = read(path, relpath, duration)
        if estimated:
            return  # the duration is a guess, not a promise
        if end is not None:
            break
    if end is None:
        log.warning(
            "truncation_check_inconclusive",
            path=relpath,
            reason="ffprobe listed no packets; the file is taken as complete",
        )
        return
    tolerance = min(5.0, 0.5 + 0.02 * duration)
    if end < duration - tolerance:
        raise Rejected(
            f"{relpath} looks truncated: it promises {duration:.1f} s but its media stops "
            f"at {end:.1f} s (an interrupted copy?); "
            f"replace it with the complete file to retry"
        )


def _read_tail(path: Path, relpath: str, duration: float) -> tuple[float | None, bool]:
    """The end of the last packet from `TAIL_SECONDS` before the promised end onwards.

    The interval has an explicit end, past the promised one: ffprobe 6.0's open-ended
    intervals (``START%``) list nothing or everything depending on where its binary lies.
    The end is absolute, not ``+span``: ffprobe measures a span from the first packet it
    reads, and its seek lands on the keyframe before the start, which in a video with
    sparse keyframes (a 50 s GOP, a screen recording) is far earlier, so a span ended the
    read long before the end of a complete file and rejected it as truncated.
    """
    start = max(0.0, duration - TAIL_SECONDS)
    end = duration + TAIL_SECONDS
    return _packets_end(path, relpath, ["-read_intervals", f"{start:.3f}%{end:.3f}"])


def _read_all(path: Path, relpath: str, duration: float) -> tuple[float | None, bool]:
    """The end of the last packet of the whole file, read without any interval.

    The second try: a tail read that finds nothing happens when the seek lands past a
    truncated file's data, and demuxing every packet (no decoding) is quick. A read that
    times out proves nothing, so it counts as empty.
    """
    try:
        return _packets_end(path, relpath, [], timeout=ALL_PACKETS_TIMEOUT_SECONDS)
    except Retryable:
        return None, False


def _packets_end(
    path: Path, relpath: str, interval: list[str], *, timeout: float | None = None
) -> tuple[float | None, bool]:
    """(end of the last packet listed or None, whether ffprobe estimated the duration)."""
    completed = run_ffprobe(
        [
            "-v", "info",  # info level: the "Estimating duration from bitrate" note
            *interval,
            "-show_entries", "packet=pts_time,dts_time,duration_time",
            "-of", "csv=p=0",
        ],
        path,
        relpath,
        timeout=timeout,
    )  # fmt: skip
    estimated = "Estimating duration from bitrate" in completed.stderr
    return _last_packet_end(completed.stdout), estimated


def _last_packet_end(csv: str) -> float | None:
    end: float | None = None
    for line in csv.splitlines():
        pts, dts, length = ([*line.split(","), "", "", ""])[:3]
        stamp = _number(pts) if _number(pts) is not None else _number(dts)
        if stamp is not None:
            packet_end = stamp + (_number(length) or 0.0)
            end = packet_end if end is None else max(end, packet_end)
    return end


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
