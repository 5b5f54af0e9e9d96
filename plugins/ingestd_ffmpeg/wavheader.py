"""What a RIFF/WAVE header says, read without running ffprobe.

A plain PCM wav (recorders, telephony exports, the most common small file) describes itself
completely in its first bytes: channels, sample rate, sample format and how many bytes of
audio follow, and any bytes are valid samples. Reading that takes microseconds, where an
ffprobe run is a process: about 3 ms of CPU per file, a tenth of the daemon's CPU for a
small recording (issue 18's profile). Every other wav (compressed, extensible, a header that
does not add up, a streamed one with placeholder sizes) still goes to ffprobe, which names
what is wrong with it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from ingestd import Media

HEADER_BYTES = 64 * 1024
"""How much of the file the chunk walk reads: fmt and data come first, after at most a few
metadata chunks."""

PLACEHOLDER_SIZES = (0, 0xFFFFFFFF)
"""A data size a streaming writer leaves when it never knew the length."""

PCM, IEEE_FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
"""WAVE_FORMAT_EXTENSIBLE's SubFormat is a GUID whose first two bytes are the format tag
and whose rest is this (KSDATAFORMAT_SUBTYPE_PCM and _IEEE_FLOAT share it)."""
_CODECS = {
    (PCM, 8): "pcm_u8",
    (PCM, 16): "pcm_s16le",
    (PCM, 24): "pcm_s24le",
    (PCM, 32): "pcm_s32le",
    (IEEE_FLOAT, 32): "pcm_f32le",
    (IEEE_FLOAT, 64): "pcm_f64le",
}
"""Plain sample formats, by ffprobe's codec names (what `Media` carries either way)."""


@dataclass(frozen=True)
class WavHeader:
    """The ``fmt `` chunk's fields and where the ``data`` chunk's bytes are."""

    format_tag: int
    channels: int
    sample_rate_hz: int
    byte_rate: int
    block_align: int
    bits_per_sample: int
    data_offset: int
    data_bytes: int | None
    """None when the header promises no length (placeholder sizes)."""


def read_wav_header(path: Path) -> WavHeader | None:
    """The header of a RIFF/WAVE file, or None when `path` is not one or its ``fmt ``
    chunk does not come before its ``data`` chunk within `HEADER_BYTES`."""
    with open(path, "rb") as file:
        header = file.read(HEADER_BYTES)
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        return None
    offset, fmt = 12, None
    while offset + 8 <= len(header):
        chunk_id = header[offset : offset + 4]
        (size,) = struct.unpack_from("<I", header, offset + 4)
        if chunk_id == b"fmt " and size >= 16 and offset + 24 <= len(header):
            fmt = list(struct.unpack_from("<HHIIHH", header, offset + 8))
            if fmt[0] == EXTENSIBLE:
                fmt[0] = _extensible_tag(header, offset + 8, size, bits=fmt[5])
        elif chunk_id == b"data":
            if fmt is None:
                return None
            tag, channels, rate, byte_rate, block_align, bits = fmt
            return WavHeader(
                tag,
                channels,
                rate,
                byte_rate,
                block_align,
                bits,
                data_offset=offset + 8,
                data_bytes=None if size in PLACEHOLDER_SIZES else size,
            )
        offset += 8 + size + (size & 1)  # chunks are padded to an even length
    return None


def _extensible_tag(header: bytes, start: int, size: int, bits: int) -> int:
    """The plain format tag inside a WAVE_FORMAT_EXTENSIBLE ``fmt `` chunk (what ffmpeg
    and most recorders write for 24- and 32-bit or multichannel audio), or EXTENSIBLE when
    it is something else or its valid bits are fewer than its container's."""
    if size < 40 or start + 40 > len(header):
        return EXTENSIBLE
    valid_bits = struct.unpack_from("<H", header, start + 18)[0]
    guid = header[start + 24 : start + 40]
    if guid[2:] != _GUID_TAIL or valid_bits != bits:
        return EXTENSIBLE
    return struct.unpack_from("<H", guid)[0]


def plain_pcm_media(header: WavHeader, file_size: int) -> Media | None:
    """`Media` for a plain PCM or float wav whose header adds up and promises a length,
    as ffprobe would report it; None for anything ffprobe should look at."""
    codec = _CODECS.get((header.format_tag, header.bits_per_sample))
    consistent = (
        codec is not None
        and header.channels > 0
        and header.sample_rate_hz > 0
        and header.block_align == header.channels * header.bits_per_sample // 8
        and header.byte_rate == header.sample_rate_hz * header.block_align
    )
    if not consistent or not header.data_bytes:
        return None
    present = min(header.data_bytes, max(0, file_size - header.data_offset))
    if present < header.block_align:
        return None
    duration = present / header.byte_rate
    return Media(
        container="wav",
        duration_seconds=duration,
        audio_codec=codec,
        channels=header.channels,
        sample_rate_hz=header.sample_rate_hz,
        bit_rate=int(file_size * 8 / duration),  # the whole file's, as ffprobe reports it
    )
