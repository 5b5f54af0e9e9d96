"""Running the plans for real: outputs are what the API accepts, and copies are copies."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ingestd import AS_IS, Media, mediagen
from ingestd.transcode import run_plan
from ingestd_ffmpeg import content_type_for, ingestd_probe, ingestd_transcode_plan

from .support import execute, recording, stream_hashes
from .test_plan import TO_MP4, TO_WAV


def _transcode(
    source: Path, tmp_path: Path, transcode: dict[str, Any] | None = None, **parameters: Any
) -> tuple[Media, Path, Media]:
    """Probe, plan and run; return the source's media, the output and the output's media."""
    rec = recording(source, transcode=transcode, **parameters)
    before = ingestd_probe(rec)
    plan = ingestd_transcode_plan(rec, before)
    assert plan is not AS_IS
    output = execute(plan, source, tmp_path / f"out{plan.suffix}")
    after = ingestd_probe(recording(output, transcode=transcode, **parameters))
    assert (
        ingestd_transcode_plan(recording(output, transcode=transcode, **parameters), after) is AS_IS
    )
    return before, output, after


class TestOutputsAreAccepted:
    @pytest.mark.parametrize("name", sorted(TO_WAV) + sorted(TO_MP4))
    def test_output_needs_no_further_work(
        self, media: dict[str, Path], tmp_path: Path, name: str
    ) -> None:
        """Each output re-probes as a file the API takes as is, with a Content-Type, same length."""
        before, output, after = _transcode(media[name], tmp_path)
        assert after.kind == before.kind
        assert content_type_for(output, after) in ("audio/wav", "video/mp4")
        assert after.duration_seconds == pytest.approx(before.duration_seconds, abs=0.15)

    def test_mp3_target(self, media: dict[str, Path], tmp_path: Path) -> None:
        """The mp3 target is an mp3 at the asked rate, sent as audio/mpeg."""
        _, output, after = _transcode(media["tone.ogg"], tmp_path, {"audio_format": "mp3"})
        assert (after.container, after.sample_rate_hz, after.channels) == ("mp3", 16000, 1)
        assert content_type_for(output, after) == "audio/mpeg"

    def test_per_channel_stays_stereo(self, media: dict[str, Path], tmp_path: Path) -> None:
        """With per-channel recognition the two channels survive the transcode."""
        _, _, after = _transcode(
            media["stereo.flac"], tmp_path, enableSeparateRecognitionPerChannel=True
        )
        assert (after.container, after.channels) == ("wav", 2)

    @pytest.mark.parametrize("name", ["clip.mp4", "clip.webm"])
    def test_video_as_audio_yields_a_wav(
        self, media: dict[str, Path], tmp_path: Path, name: str
    ) -> None:
        """video_as_audio turns any video into a mono wav of its sound, far smaller."""
        _, _, after = _transcode(media[name], tmp_path, {"video_as_audio": True})
        assert (after.kind, after.container, after.audio_codec, after.channels) == (
            "audio",
            "wav",
            "pcm_s16le",
            1,
        )
        assert after.duration_seconds == pytest.approx(2.0, abs=0.15)

    def test_cut_ogg_is_transcoded_as_a_shorter_recording(self, tmp_path: Path) -> None:
        """A format that promises no length, cut short, becomes a valid shorter wav (policy)."""
        # Long enough that half of it still holds the vorbis headers (about 4 KB).
        long = mediagen.make_audio(tmp_path / "long.ogg", seconds=20)
        cut = mediagen.truncate_copy(long, tmp_path / "cut.ogg", 0.5)
        _, _, after = _transcode(cut, tmp_path)
        assert 5.0 < (after.duration_seconds or 0) < 15.0


class TestRemuxCopies:
    """Equal per-stream packet hashes prove a stream was copied bit for bit."""

    @pytest.mark.parametrize("name", ["clip.mov", "hevc.mkv", "clip.avi"])
    def test_remux_reencodes_nothing(
        self, media: dict[str, Path], tmp_path: Path, name: str
    ) -> None:
        """mov, mkv (hevc/aac) and avi (mpeg4/mp3) become mp4 with both streams untouched."""
        _, output, after = _transcode(media[name], tmp_path)
        assert after.container.startswith("mov,mp4")
        assert stream_hashes(output) == stream_hashes(media[name])

    def test_only_the_sound_is_reencoded(self, media: dict[str, Path], tmp_path: Path) -> None:
        """An mkv of h264 and opus keeps its video packets and gets aac sound."""
        _, output, after = _transcode(media["clip.mkv"], tmp_path)
        source, result = stream_hashes(media["clip.mkv"]), stream_hashes(output)
        assert result["v"] == source["v"]
        assert result["a"] != source["a"]
        assert (after.video_codec, after.audio_codec) == ("h264", "aac")

    def test_webm_is_fully_reencoded(self, media: dict[str, Path], tmp_path: Path) -> None:
        """vp9 and opus cannot be copied: both streams are re-encoded to h264 and aac."""
        _, _, after = _transcode(media["clip.webm"], tmp_path)
        assert (after.video_codec, after.audio_codec) == ("h264", "aac")


class TestThroughTheCoreRunner:
    def test_core_runner_runs_a_plan(self, media: dict[str, Path], tmp_path: Path) -> None:
        """The core's runner substitutes the placeholders and produces the planned file."""
        rec = recording(media["clip.mov"])
        plan = ingestd_transcode_plan(rec, ingestd_probe(rec))
        output = asyncio.run(run_plan(plan, media["clip.mov"], tmp_path / "work" / "1.mp4"))
        assert content_type_for(output, ingestd_probe(recording(output))) == "video/mp4"
