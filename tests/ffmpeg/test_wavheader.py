"""Plain PCM wavs are described from their header, exactly as ffprobe would describe them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingestd import mediagen
from ingestd_ffmpeg.probe import media_from_ffprobe, probe_file
from ingestd_ffmpeg.runner import run_ffprobe
from ingestd_ffmpeg.wavheader import plain_pcm_media, read_wav_header


def by_ffprobe(path: Path):
    report = run_ffprobe(["-v", "error", "-show_format", "-show_streams", "-of", "json"], path, "")
    return media_from_ffprobe(json.loads(report.stdout), path.name)


def by_header(path: Path):
    header = read_wav_header(path)
    return None if header is None else plain_pcm_media(header, path.stat().st_size)


# Sample formats x layouts: ffmpeg writes WAVE_FORMAT_EXTENSIBLE for more than 16 bits or
# more than two channels, plain PCM/float tags otherwise.
PLAIN = [
    (codec, channels, rate)
    for codec in ("pcm_s16le", "pcm_u8", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_f64le")
    for channels, rate in ((1, 16000), (2, 44100), (6, 48000))
]


class TestSameAsFfprobe:
    @pytest.mark.parametrize(("codec", "channels", "rate"), PLAIN)
    def test_plain_wav(self, tmp_path: Path, codec: str, channels: int, rate: int) -> None:
        """Every field of `Media` equals ffprobe's report (duration, codec name, bit rate)."""
        path = mediagen.make_audio(
            tmp_path / "a.wav", codec=codec, channels=channels, sample_rate_hz=rate, seconds=2.3
        )
        described = by_header(path)
        assert described is not None
        assert described == by_ffprobe(path)

    @pytest.mark.parametrize("codec", ["pcm_mulaw", "pcm_alaw", "adpcm_ms", "adpcm_ima_wav"])
    def test_other_codecs_go_to_ffprobe(self, tmp_path: Path, codec: str) -> None:
        """Compressed or companded wavs are not described from the header."""
        path = mediagen.make_audio(tmp_path / "a.wav", codec=codec)
        assert read_wav_header(path) is not None
        assert by_header(path) is None
        assert probe_file(path, "a.wav") == by_ffprobe(path)


class TestHeadersThatDoNotAddUp:
    """Anything inconsistent is left to ffprobe, which names what is wrong."""

    def _patched(self, tmp_path: Path, offset_in_fmt: int, value: bytes) -> Path:
        data = bytearray(mediagen.make_audio(tmp_path / "src.wav").read_bytes())
        fmt = data.index(b"fmt ") + 8
        data[fmt + offset_in_fmt : fmt + offset_in_fmt + len(value)] = value
        path = tmp_path / "patched.wav"
        path.write_bytes(bytes(data))
        return path

    def test_byte_rate_that_contradicts_the_format(self, tmp_path: Path) -> None:
        path = self._patched(tmp_path, 8, (12345).to_bytes(4, "little"))
        assert by_header(path) is None

    def test_zero_channels(self, tmp_path: Path) -> None:
        path = self._patched(tmp_path, 2, (0).to_bytes(2, "little"))
        assert by_header(path) is None

    def test_streamed_wav_with_placeholder_sizes(self, tmp_path: Path) -> None:
        data = bytearray(mediagen.make_audio(tmp_path / "src.wav").read_bytes())
        sizes = data.index(b"data") + 4
        data[sizes : sizes + 4] = b"\xff" * 4
        (tmp_path / "s.wav").write_bytes(bytes(data))
        assert read_wav_header(tmp_path / "s.wav").data_bytes is None
        assert by_header(tmp_path / "s.wav") is None

    def test_garbage_after_the_riff_magic(self, tmp_path: Path) -> None:
        source = mediagen.make_audio(tmp_path / "src.wav")
        bad = mediagen.corrupt_copy(source, tmp_path / "bad.wav")
        assert by_header(bad) is None

    def test_not_a_wav(self, tmp_path: Path) -> None:
        mp3 = mediagen.make_audio(tmp_path / "a.mp3")
        assert read_wav_header(mp3) is None
