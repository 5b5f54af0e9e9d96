"""ingestd_ffmpeg's accept and probe hooks on real generated media, good and broken."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import pytest

import ingestd_ffmpeg
from ingestd import Media, Recording, Rejected, Retryable, hookimpl, mediagen
from ingestd.plugins import load_plugins
from ingestd_ffmpeg import runner
from ingestd_ffmpeg.probe import media_from_ffprobe, probe_file

from .support import recording

MOV = "mov,mp4,m4a,3gp,3g2,mj2"

# name -> (container, audio codec, channels, sample rate, real video codec)
EXPECTED = {
    "mono.wav": ("wav", "pcm_s16le", 1, 16000, None),
    "stereo.wav": ("wav", "pcm_s16le", 2, 16000, None),
    "phone.wav": ("wav", "pcm_s16le", 1, 8000, None),
    "tone.mp3": ("mp3", "mp3", 1, 16000, None),
    "cover.mp3": ("mp3", "mp3", 1, 16000, None),
    "tone.m4a": (MOV, "aac", 1, 16000, None),
    "cover.m4a": (MOV, "aac", 1, 16000, None),
    "tone.aac": ("aac", "aac", 1, 16000, None),
    "tone.flac": ("flac", "flac", 1, 16000, None),
    "tone.ogg": ("ogg", "vorbis", 1, 16000, None),
    "tone.opus": ("ogg", "opus", 1, 48000, None),
    "tone.webm": ("matroska,webm", "opus", 1, 48000, None),
    "tone.wma": ("asf", "wmav2", 1, 16000, None),
    "tone.amr": ("amr", "amr_nb", 1, 8000, None),
    "clip.mp4": (MOV, "aac", 1, 48000, "h264"),
    "clip.mov": (MOV, "aac", 1, 48000, "h264"),
    "clip.mkv": ("matroska,webm", "opus", 1, 48000, "h264"),
    "clip.webm": ("matroska,webm", "opus", 1, 48000, "vp9"),
    "clip.avi": ("avi", "mp3", 1, 48000, "mpeg4"),
}


class TestProbe:
    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_media_facts(self, media: dict[str, Path], name: str) -> None:
        """Container, first audio stream, first real video stream and duration are reported."""
        found = ingestd_ffmpeg.ingestd_probe(recording(media[name]))
        container, audio, channels, rate, video = EXPECTED[name]
        facts = (found.container, found.audio_codec, found.channels, found.sample_rate_hz)
        assert (*facts, found.video_codec) == (container, audio, channels, rate, video)
        assert found.duration_seconds == pytest.approx(2.0, abs=0.15)
        assert found.bit_rate and found.bit_rate > 0

    @pytest.mark.parametrize("name", ["cover.mp3", "cover.m4a"])
    def test_cover_art_is_not_video(self, media: dict[str, Path], name: str) -> None:
        """Music with an embedded picture is audio: the picture is not a video stream."""
        assert ingestd_ffmpeg.ingestd_probe(recording(media[name])).kind == "audio"

    def test_streamed_wav_without_a_length_is_fine(self, tmp_path: Path) -> None:
        """A wav written to a pipe has placeholder sizes: it promises nothing, so it passes."""
        source = mediagen.make_audio(tmp_path / "a.wav")
        streamed = tmp_path / "streamed.wav"
        data = bytearray(source.read_bytes())
        sizes = data.index(b"data") + 4
        data[4:8] = b"\xff" * 4  # RIFF size unknown
        data[sizes : sizes + 4] = b"\xff" * 4  # data size unknown
        streamed.write_bytes(data)
        assert probe_file(streamed, "streamed.wav").duration_seconds == pytest.approx(2.0, 0.01)


class TestAccept:
    def test_empty_file_is_rejected(self, tmp_path: Path) -> None:
        """A zero-byte file is rejected at accept, saying so and what to do."""
        (tmp_path / "call.wav").touch()
        with pytest.raises(Rejected, match=r"^call\.wav is empty \(0 bytes\); replace the file"):
            ingestd_ffmpeg.ingestd_accept(recording(tmp_path / "call.wav"))

    def test_anything_else_passes(self, media: dict[str, Path]) -> None:
        """accept has no opinion on a non-empty file (None lets it through)."""
        assert ingestd_ffmpeg.ingestd_accept(recording(media["mono.wav"])) is None


def _rejection(path: Path) -> str:
    with pytest.raises(Rejected) as caught:
        ingestd_ffmpeg.ingestd_probe(recording(path))
    message = str(caught.value)
    assert message.startswith(path.name) or message.startswith(f"cannot read {path.name}")
    return message


class TestRejections:
    def test_text_renamed_wav(self, tmp_path: Path) -> None:
        """A text file called .wav is not media, and ffprobe's complaint is quoted."""
        (tmp_path / "notes.wav").write_text("meeting notes, not a recording\n" * 20)
        message = _rejection(tmp_path / "notes.wav")
        assert "is not media ffprobe can read" in message
        assert "Invalid data found when processing input" in message

    def test_random_bytes_mp4(self, tmp_path: Path) -> None:
        """Random bytes called .mp4 are rejected naming the missing mp4 index."""
        (tmp_path / "x.mp4").write_bytes(os.urandom(50_000))
        assert "moov atom not found" in _rejection(tmp_path / "x.mp4")

    @pytest.mark.parametrize("name", ["mono.wav", "tone.mp3", "clip.mkv", "tone.ogg"])
    def test_garbage_behind_a_real_header(
        self, media: dict[str, Path], tmp_path: Path, name: str
    ) -> None:
        """A file that starts like media and then is garbage is rejected as unreadable."""
        bad = mediagen.corrupt_copy(media[name], tmp_path / name)
        assert "ffprobe" in _rejection(bad)

    def test_video_without_sound(self, media: dict[str, Path]) -> None:
        """A video with no audio stream has nothing to transcribe."""
        assert "ffprobe found no audio stream" in _rejection(media["silent.mp4"])

    def test_empty_file_at_probe_too(self, tmp_path: Path) -> None:
        """Even if another plugin's accept let it through, an empty file is rejected clearly."""
        (tmp_path / "e.mp3").touch()
        assert "is empty (0 bytes)" in _rejection(tmp_path / "e.mp3")

    def test_fifo_is_rejected_without_blocking(self, tmp_path: Path) -> None:
        """A named pipe would block ffprobe forever; it is refused at once."""
        os.mkfifo(tmp_path / "pipe.wav")
        started = time.monotonic()
        assert "is not a regular file" in _rejection(tmp_path / "pipe.wav")
        assert time.monotonic() - started < 2

    def test_directory_named_like_media(self, tmp_path: Path) -> None:
        """A folder called x.wav is not a file to process."""
        (tmp_path / "x.wav").mkdir()
        assert "is not a regular file" in _rejection(tmp_path / "x.wav")

    def test_permission_denied(self, media: dict[str, Path]) -> None:
        """An unreadable file is rejected with the permission fix to make.

        root reads through chmod 000, so as root the probe runs in a forked child that
        dropped to uid 65534 (nobody), on a file in a folder that user can enter.
        """
        with tempfile.TemporaryDirectory() as folder:
            os.chmod(folder, 0o755)
            locked = Path(folder) / "locked.wav"
            locked.write_bytes(media["mono.wav"].read_bytes())
            locked.chmod(0o000)
            message = _rejection(locked) if os.geteuid() else _probe_as_nobody(locked)
        assert message == "cannot read locked.wav: permission denied; fix its permissions to retry"


def _probe_as_nobody(path: Path) -> str:
    """Probe `path` in a forked child that dropped to uid/gid 65534; its rejection message."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            os.close(read)
            try:
                os.setgid(65534)
                os.setuid(65534)
                probe_file(path, path.name)
                message = "not rejected"
            except Rejected as exc:
                message = str(exc)
            except PermissionError as exc:
                message = f"skip: cannot switch to uid 65534: {exc}"
            os.write(write, message.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    if message.startswith("skip: "):
        pytest.skip(message.removeprefix("skip: "))
    return message


class TestTruncated:
    """Files whose header promises more than they hold are rejected (see truncation.py)."""

    @pytest.mark.parametrize("name", ["mono.wav", "tone.mp3", "tone.flac", "faststart.mp4"])
    def test_cut_in_half(self, media: dict[str, Path], tmp_path: Path, name: str) -> None:
        """Half a file is rejected as truncated, naming what was promised and found."""
        cut = mediagen.truncate_copy(media[name], tmp_path / name, 0.5)
        message = _rejection(cut)
        assert "looks truncated" in message
        assert "replace it with the complete file to retry" in message

    @pytest.mark.parametrize("name", ["clip.mp4", "tone.m4a", "clip.mov"])
    def test_index_written_last_is_missing(
        self, media: dict[str, Path], tmp_path: Path, name: str
    ) -> None:
        """An mp4-family file cut before its index is rejected with the reason in words."""
        cut = mediagen.truncate_copy(media[name], tmp_path / name, 0.5)
        assert "no mp4/mov index: truncated" in _rejection(cut)

    def test_a_few_bytes_short_of_a_whole_wav_is_tolerated(
        self, media: dict[str, Path], tmp_path: Path
    ) -> None:
        """Less than 0.1 s missing (a lost padding byte, a sloppy writer) is not truncation."""
        data = media["mono.wav"].read_bytes()
        (tmp_path / "short.wav").write_bytes(data[:-100])
        assert probe_file(tmp_path / "short.wav", "short.wav").kind == "audio"


class TestMediaFromFfprobe:
    """The JSON mapping, on reports no generated file produces."""

    AUDIO: ClassVar = {
        "codec_type": "audio",
        "codec_name": "opus",
        "channels": 2,
        "sample_rate": "48000",
    }

    def test_duration_may_be_missing_where_the_format_allows(self) -> None:
        """A browser-recorded webm has no stored duration; it is still media (transcoded later)."""
        report = {"format": {"format_name": "matroska,webm"}, "streams": [self.AUDIO]}
        assert media_from_ffprobe(report, "r.webm").duration_seconds is None

    def test_duration_missing_where_the_format_has_one(self) -> None:
        """A wav without a duration is broken."""
        report = {"format": {"format_name": "wav"}, "streams": [self.AUDIO]}
        with pytest.raises(Rejected, match="could not tell its duration"):
            media_from_ffprobe(report, "r.wav")

    def test_zero_duration(self) -> None:
        """A file whose duration is zero holds no media."""
        report = {"format": {"format_name": "mp3", "duration": "0.000000"}, "streams": [self.AUDIO]}
        with pytest.raises(Rejected, match="duration of zero"):
            media_from_ffprobe(report, "r.mp3")

    def test_thumbnails_and_data_streams_are_not_video(self) -> None:
        """Only a real picture stream makes a file video."""
        streams = [
            {"codec_type": "video", "codec_name": "mjpeg", "disposition": {"timed_thumbnails": 1}},
            {"codec_type": "data", "codec_name": "bin_data"},
            self.AUDIO,
        ]
        report = {"format": {"format_name": MOV, "duration": "5.0"}, "streams": streams}
        assert media_from_ffprobe(report, "r.m4a").kind == "audio"


class TestTimeout:
    def test_hung_ffprobe_is_retryable(
        self, media: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An ffprobe that never answers is killed at the timeout and the probe retried later."""
        hung = tmp_path / "ffprobe"
        hung.write_text("#!/bin/sh\nsleep 30\n")
        hung.chmod(0o755)
        monkeypatch.setattr(runner.executables, "ffprobe", lambda: str(hung))
        monkeypatch.setattr(runner, "PROBE_TIMEOUT_SECONDS", 0.3)
        started = time.monotonic()
        with pytest.raises(Retryable, match=r"did not finish reading tone\.mp3 within 0 s"):
            ingestd_ffmpeg.ingestd_probe(recording(media["tone.mp3"]))
        assert time.monotonic() - started < 5


class TestThroughTheCore:
    def test_loaded_by_the_core_and_overridable(self, media: dict[str, Path]) -> None:
        """The core loader registers the plugin's five hooks; an installed prober wins."""
        plugins = load_plugins(local=("ingestd_ffmpeg",), entry_points_enabled=False)
        (ffmpeg,) = [info for info in plugins.info if info.name == "ingestd_ffmpeg"]
        assert ffmpeg.hooks == [
            "ingestd_accept",
            "ingestd_fit_upload",
            "ingestd_probe",
            "ingestd_transcode_plan",
            "ingestd_validate_watch",
        ]
        rec = recording(media["tone.mp3"])
        found, by = plugins.call_first("ingestd_probe", recording=rec)
        assert (found.audio_codec, by) == ("mp3", "ingestd_ffmpeg")

        fixed = Media("wav", 1.0, "pcm_s16le", 1, 16000)

        class ThirdParty:
            @hookimpl
            def ingestd_probe(self, recording: Recording) -> Media:
                return fixed

        plugins.manager.register(ThirdParty(), name="third")
        assert plugins.call_first("ingestd_probe", recording=rec) == (fixed, "third")
