"""Reading upload bodies without holding them, and recognising what the bytes are.

Tests push hundreds of megabytes through the sandbox, so a body is only ever seen one chunk
at a time: hashed, counted, and its first bytes kept for the format check that decides
whether the job will fail (a body that is not the declared media fails, as on the real API).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import BinaryIO

from ingestd.sandbox.duration import Window, media_seconds

CHUNK_BYTES = 1 << 20
HEAD_BYTES = 64

AUDIO_TYPES = {
    "audio/wav": ("wav",),
    "audio/wave": ("wav",),
    "audio/mpeg": ("mp3",),
    "audio/mp3": ("mp3",),
}
"""The four audio Content-Types the API validates, and the formats each one admits."""
DETECTED_AUDIO = ("wav", "mp3", "mp4", "ogg", "flac", "aac", "amr", "asf", "aiff", "ac3")
"""What audio routes accept when no Content-Type says what to expect (auto-detection): the
formats of symbl-api.md §8 (m4a is mp4, opus is ogg, wma is asf). Matroska and WebM are
recognised but not listed there, so a job for one fails."""


@dataclass(frozen=True)
class Digest:
    """What is kept of an upload: never the bytes themselves."""

    size: int
    sha256: str
    head: bytes
    seconds: float | None = None
    """How long the media plays, from its header (`ingestd.sandbox.duration`), if known."""


class Truncated(Exception):
    """The client stopped sending before Content-Length bytes arrived."""


def read_streaming(stream: BinaryIO, length: int, chunk_bytes: int = CHUNK_BYTES) -> Digest:
    """Consume exactly `length` bytes from `stream`, hashing as it goes.

    Raises Truncated on end of stream or a socket error before `length` bytes.
    """
    digest = hashlib.sha256()
    head = b""
    window = Window()
    got = 0
    while got < length:
        try:
            chunk = stream.read(min(chunk_bytes, length - got))
        except OSError as exc:  # timeouts and resets alike
            raise Truncated(f"read failed after {got} bytes: {exc}") from exc
        if not chunk:
            raise Truncated(f"body ended after {got} of {length} bytes")
        if len(head) < HEAD_BYTES:
            head += chunk[: HEAD_BYTES - len(head)]
        digest.update(chunk)
        window.feed(chunk)
        got += len(chunk)
    seconds = media_seconds(window, got)
    return Digest(size=got, sha256=digest.hexdigest(), head=head, seconds=seconds)


def discard(stream: BinaryIO, length: int) -> bool:
    """Read and drop `length` bytes so the connection can serve its next request."""
    left = length
    try:
        while left > 0:
            chunk = stream.read(min(CHUNK_BYTES, left))
            if not chunk:
                return False
            left -= len(chunk)
    except OSError:
        return False
    return True


ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
"""The ASF header object's GUID, first in every wma (and wmv) file."""
EBML_MAGIC = b"\x1a\x45\xdf\xa3"
"""The EBML header that starts Matroska and WebM files; its DocType tells them apart."""


def detect_format(head: bytes) -> str | None:
    """The container named by the magic bytes at the start of a file, or None.

    A raw AAC stream (ADTS) and an MPEG audio frame share their 12-bit sync word; the
    layer bits, always 00 in ADTS, tell them apart.
    """
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        if head[1] & 0xF6 == 0xF0:
            return "aac"
        if head[1] & 0x06:
            return "mp3"
        return None
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:5] == b"#!AMR":  # AMR-NB "#!AMR\n", AMR-WB "#!AMR-WB\n"
        return "amr"
    if head[:16] == ASF_GUID:
        return "asf"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:2] == b"\x0b\x77":
        return "ac3"
    if head[:4] == EBML_MAGIC:
        return "webm" if b"webm" in head else "matroska"
    return None


def expected_formats(route: str, content_type: str | None) -> tuple[str, ...]:
    """Formats a file route accepts for the Content-Type it was sent with."""
    if route == "video":
        return ("mp4",)
    if content_type:
        return AUDIO_TYPES.get(content_type, ())
    return DETECTED_AUDIO


def media_problem(route: str, content_type: str | None, head: bytes) -> str | None:
    """Why the job for this upload must fail, or None when the bytes look right."""
    found = detect_format(head)
    allowed = expected_formats(route, content_type)
    if found in allowed:
        return None
    declared = content_type or "audio (auto-detected)"
    return f"body is {found or 'not recognisable media'}, expected {declared}"
