"""How long the uploaded media plays, read from its own header bytes, so the made-up
conversation lasts as long as the recording (a 3 s file gives a 3 s conversation).

The sandbox never keeps an upload, so it reads the length from the first and last bytes
that passed by (`Window`): a wav's byte rate and data size, an mp3's Xing/Info frame count
or its constant bit rate, an mp4's ``mvhd`` box (at the start after ``+faststart``, else
near the end). Anything else is None, and the conversation keeps its natural pace.
"""

from __future__ import annotations

import struct

HEAD_KEEP = 64 * 1024
TAIL_KEEP = 256 * 1024

_MP3_BITRATES = {  # kbit/s by bitrate index: MPEG-1 layer III, MPEG-2/2.5 layer III
    1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


class Window:
    """The first `HEAD_KEEP` and the last `TAIL_KEEP` bytes of a stream, seen chunk by chunk."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()

    def feed(self, chunk: bytes) -> None:
        if len(self.head) < HEAD_KEEP:
            self.head += chunk[: HEAD_KEEP - len(self.head)]
        self.tail += chunk
        if len(self.tail) > TAIL_KEEP:
            del self.tail[: len(self.tail) - TAIL_KEEP]


def media_seconds(window: Window, size: int) -> float | None:
    """Playing time of the upload, or None when its format or header is not understood."""
    head, tail = bytes(window.head), bytes(window.tail)
    try:
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            return _wav(head, size)
        if head[4:8] == b"ftyp":
            return _mvhd(head) or _mvhd(tail)
        return _mp3(head, size)
    except (struct.error, IndexError, ZeroDivisionError):
        return None


def _wav(head: bytes, size: int) -> float | None:
    byte_rate = None
    at = 12
    while at + 8 <= len(head):
        kind, length = head[at : at + 4], struct.unpack_from("<I", head, at + 4)[0]
        if kind == b"fmt ":
            byte_rate = struct.unpack_from("<I", head, at + 16)[0]
        elif kind == b"data":
            if not byte_rate:
                return None
            body = size - (at + 8)
            if length not in (0, 0xFFFFFFFF):
                body = min(body, length)
            return max(0.0, body / byte_rate)
        at += 8 + length + (length & 1)
    return None


def _mvhd(data: bytes) -> float | None:
    at = data.find(b"mvhd")
    if at < 4:
        return None
    version = data[at + 4]
    if version == 1:
        timescale, duration = struct.unpack_from(">IQ", data, at + 4 + 4 + 16)
    else:
        timescale, duration = struct.unpack_from(">II", data, at + 4 + 4 + 8)
    return duration / timescale if timescale else None


def _mp3(head: bytes, size: int) -> float | None:
    start = 0
    if head[:3] == b"ID3":
        sizes = head[6:10]
        start = 10 + ((sizes[0] << 21) | (sizes[1] << 14) | (sizes[2] << 7) | sizes[3])
    if start + 4 > len(head) or head[start] != 0xFF or head[start + 1] & 0xE0 != 0xE0:
        return None
    version_bits = (head[start + 1] >> 3) & 3  # 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    if (head[start + 1] >> 1) & 3 != 1 or version_bits == 1:  # layer III only
        return None
    bitrate_index = head[start + 2] >> 4
    rate_index = (head[start + 2] >> 2) & 3
    if rate_index == 3 or bitrate_index in (0, 15):
        return None
    sample_rate = _MP3_RATES[version_bits][rate_index]
    samples_per_frame = 1152 if version_bits == 3 else 576
    for marker in (b"Xing", b"Info"):
        found = head.find(marker, start, start + 200)
        if found > 0 and head[found + 7] & 1:  # the frame count is present
            frames = struct.unpack_from(">I", head, found + 8)[0]
            return frames * samples_per_frame / sample_rate
    bitrate = _MP3_BITRATES[1 if version_bits == 3 else 2][bitrate_index] * 1000
    return (size - start) * 8 / bitrate
