"""ingestd.mediagen: the generated files are what their arguments say, and distinct on demand."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestd import mediagen
from ingestd.testing import sha256_of as _sha

from .support import ffprobe_json


def _streams(path: Path) -> dict[str, dict]:
    """The first stream of each kind, as ffprobe reports it (cover art counts as video)."""
    found: dict[str, dict] = {}
    for stream in ffprobe_json(path)["streams"]:
        found.setdefault(stream["codec_type"], stream)
    return found


class TestMakeAudio:
    @pytest.mark.parametrize(
        ("name", "codec"),
        [
            ("mono.wav", "pcm_s16le"),
            ("tone.mp3", "mp3"),
            ("tone.m4a", "aac"),
            ("tone.aac", "aac"),
            ("tone.flac", "flac"),
            ("tone.ogg", "vorbis"),
            ("tone.opus", "opus"),
            ("tone.webm", "opus"),
            ("tone.wma", "wmav2"),
            ("tone.amr", "amr_nb"),
        ],
    )
    def test_codec_follows_the_suffix(self, media: dict[str, Path], name: str, codec: str) -> None:
        """Without a codec argument the suffix picks the encoder, audio only."""
        streams = _streams(media[name])
        assert streams["audio"]["codec_name"] == codec
        assert "video" not in streams

    def test_length_rate_and_channels_are_honoured(self, tmp_path: Path) -> None:
        """seconds, sample_rate_hz and channels end up in the file."""
        path = mediagen.make_audio(
            tmp_path / "a.flac", seconds=1.5, sample_rate_hz=22050, channels=2
        )
        info = ffprobe_json(path)
        stream = info["streams"][0]
        assert (stream["sample_rate"], stream["channels"]) == ("22050", 2)
        assert float(info["format"]["duration"]) == pytest.approx(1.5, abs=0.05)

    def test_amr_is_always_8_khz_mono(self, tmp_path: Path) -> None:
        """AMR-NB cannot be anything else, so the requested rate and channels give way."""
        path = mediagen.make_audio(tmp_path / "a.amr", sample_rate_hz=44100, channels=2)
        stream = _streams(path)["audio"]
        assert (stream["sample_rate"], stream["channels"]) == ("8000", 1)

    def test_cover_art_is_an_attached_picture(self, media: dict[str, Path]) -> None:
        """cover_art adds a picture stream marked attached_pic, and the sound keeps its length."""
        info = ffprobe_json(media["cover.mp3"])
        picture = _streams(media["cover.mp3"])["video"]
        assert picture["disposition"]["attached_pic"] == 1
        assert float(info["format"]["duration"]) == pytest.approx(2.0, abs=0.15)

    def test_seed_and_frequency_make_distinct_files(self, tmp_path: Path) -> None:
        """Same arguments give the same bytes; another seed or tone gives other bytes."""
        a = mediagen.make_audio(tmp_path / "a.wav", seed=1)
        b = mediagen.make_audio(tmp_path / "b.wav", seed=1)
        c = mediagen.make_audio(tmp_path / "c.wav", seed=2)
        d = mediagen.make_audio(tmp_path / "d.wav", frequency_hz=441)
        assert _sha(a) == _sha(b)
        assert len({_sha(a), _sha(c), _sha(d)}) == 3

    def test_unknown_suffix_says_which_are_known(self, tmp_path: Path) -> None:
        """A suffix without a default codec fails naming the ones that have one."""
        with pytest.raises(ValueError, match=r"\.wav"):
            mediagen.make_audio(tmp_path / "a.xyz")


class TestMakeVideo:
    @pytest.mark.parametrize(
        ("name", "video", "audio"),
        [
            ("clip.mp4", "h264", "aac"),
            ("clip.mov", "h264", "aac"),
            ("clip.mkv", "h264", "opus"),
            ("clip.webm", "vp9", "opus"),
            ("clip.avi", "mpeg4", "mp3"),
            ("hevc.mkv", "hevc", "aac"),
        ],
    )
    def test_codecs(self, media: dict[str, Path], name: str, video: str, audio: str) -> None:
        """Each container gets its customary codecs, or the ones asked for."""
        streams = _streams(media[name])
        assert (streams["video"]["codec_name"], streams["audio"]["codec_name"]) == (video, audio)
        assert (streams["video"]["width"], streams["video"]["height"]) == (320, 240)

    def test_without_audio(self, media: dict[str, Path]) -> None:
        """audio=False writes a video with no audio stream at all."""
        assert set(_streams(media["silent.mp4"])) == {"video"}

    def test_faststart_puts_the_index_first(self, media: dict[str, Path]) -> None:
        """faststart moves the moov atom before the media data; by default it comes last."""
        fast, slow = media["faststart.mp4"].read_bytes(), media["clip.mp4"].read_bytes()
        assert fast.index(b"moov") < fast.index(b"mdat")
        assert slow.index(b"moov") > slow.index(b"mdat")

    def test_seeds_make_distinct_files(self, tmp_path: Path) -> None:
        """Two seeds give two different videos, so they never share a content hash."""
        a = mediagen.make_video(tmp_path / "a.mp4", seconds=0.5, seed=1)
        b = mediagen.make_video(tmp_path / "b.mp4", seconds=0.5, seed=2)
        assert _sha(a) != _sha(b)


class TestBrokenCopies:
    def test_corrupt_copy_keeps_the_magic_and_the_size(
        self, media: dict[str, Path], tmp_path: Path
    ) -> None:
        """The copy starts like the original and is as long, but the rest is other bytes."""
        original = media["mono.wav"].read_bytes()
        garbled = mediagen.corrupt_copy(media["mono.wav"], tmp_path / "x.wav").read_bytes()
        assert garbled[:12] == original[:12]  # RIFF, size, WAVE
        assert len(garbled) == len(original)
        assert garbled[12:] != original[12:]

    def test_truncate_copy_keeps_the_first_fraction(
        self, media: dict[str, Path], tmp_path: Path
    ) -> None:
        """The copy is the first `fraction` of the bytes, like an interrupted copy."""
        original = media["tone.mp3"].read_bytes()
        cut = mediagen.truncate_copy(media["tone.mp3"], tmp_path / "x.mp3", 0.5).read_bytes()
        assert cut == original[: len(original) // 2]
        with pytest.raises(ValueError, match="between 0 and 1"):
            mediagen.truncate_copy(media["tone.mp3"], tmp_path / "y.mp3", 1.0)
