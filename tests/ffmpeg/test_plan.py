"""ingestd_ffmpeg's transcode decisions, options and Content-Types (no ffmpeg is run here)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ingestd import AS_IS, ConfigError, Media, TranscodePlan, executables
from ingestd.config import WatchConfig
from ingestd_ffmpeg import content_type_for, ingestd_probe, ingestd_transcode_plan, parse_options
from ingestd_ffmpeg.options import TranscodeOptions
from ingestd_ffmpeg.plan import plan_for

from .support import recording


def _plan(path: Path, transcode: dict[str, Any] | None = None, **parameters: Any) -> TranscodePlan:
    rec = recording(path, transcode=transcode, **parameters)
    return ingestd_transcode_plan(rec, ingestd_probe(rec))


def _after(argv: tuple[str, ...], option: str) -> str:
    """The value that follows `option` in an ffmpeg argv."""
    return argv[argv.index(option) + 1]


AS_IS_INPUTS = ["mono.wav", "phone.wav", "tone.mp3", "cover.mp3", "clip.mp4", "faststart.mp4"]

# name -> (channels, sample rate) of the wav target it becomes
TO_WAV = {
    "stereo.wav": (1, 16000),
    "studio.wav": (1, 48000),
    "eight_bit.wav": (1, 16000),
    "tone.m4a": (1, 16000),
    "cover.m4a": (1, 16000),
    "tone.aac": (1, 16000),
    "tone.flac": (1, 16000),
    "tone.ogg": (1, 16000),
    "tone.opus": (1, 48000),
    "tone.webm": (1, 48000),
    "tone.wma": (1, 16000),
    "tone.amr": (1, 8000),
}

# name -> (video codec option, audio codec option, reencodes)
TO_MP4 = {
    "clip.mov": ("copy", "copy", False),
    "hevc.mkv": ("copy", "copy", False),
    "clip.avi": ("copy", "copy", False),
    "clip.mkv": ("copy", "aac", True),
    "clip.webm": ("libx264", "aac", True),
    "vp9.mp4": ("libx264", "aac", True),
}


class TestDecisions:
    @pytest.mark.parametrize("name", AS_IS_INPUTS)
    def test_accepted_formats_go_as_they_are(self, media: dict[str, Path], name: str) -> None:
        """Mono 16-bit wav (8–48 kHz), any mp3 and an h264/aac mp4 are uploaded untouched."""
        assert _plan(media[name]) is AS_IS

    @pytest.mark.parametrize("name", sorted(TO_WAV))
    def test_other_audio_becomes_the_wav_target(self, media: dict[str, Path], name: str) -> None:
        """Everything else that is sound becomes 16-bit mono wav at the source's rate."""
        plan = _plan(media[name])
        channels, rate = TO_WAV[name]
        assert (plan.suffix, plan.reencodes) == (".wav", True)
        assert _after(plan.argv, "-c:a") == "pcm_s16le"
        assert (_after(plan.argv, "-ac"), _after(plan.argv, "-ar")) == (str(channels), str(rate))
        assert _after(plan.argv, "-map") == "0:a:0"  # the first audio stream, never cover art

    @pytest.mark.parametrize("name", sorted(TO_MP4))
    def test_other_video_becomes_mp4(self, media: dict[str, Path], name: str) -> None:
        """Other video is remuxed, re-encoding only the streams mp4 cannot carry as they are."""
        plan = _plan(media[name])
        video, audio, reencodes = TO_MP4[name]
        assert (plan.suffix, plan.reencodes) == (".mp4", reencodes)
        assert (_after(plan.argv, "-c:v"), _after(plan.argv, "-c:a")) == (video, audio)
        assert "+faststart" in plan.argv
        assert ("remux" in plan.description) == (video == "copy")

    @pytest.mark.parametrize("name", ["stereo.wav", "clip.mkv", "tone.m4a"])
    def test_argv_shape(self, media: dict[str, Path], name: str) -> None:
        """Every plan is one ffmpeg run with literal {input} and {output} placeholders."""
        argv = _plan(media[name]).argv
        assert argv[:8] == (
            executables.ffmpeg(),
            "-nostdin",
            "-hide_banner",
            "-y",
            "-thread_queue_size",
            "64",
            "-i",
            "{input}",
        )
        assert argv[-1] == "{output}"
        assert argv.count("{input}") == argv.count("{output}") == 1


class TestMp4OrNot:
    """ffprobe says "mov,mp4,m4a,..." for all of them: a real video and the suffix decide."""

    def test_m4v_is_mp4(self, copy_of: Callable[..., Path]) -> None:
        """Apple's .m4v is mp4 video and goes as it is."""
        assert _plan(copy_of("clip.mp4", "clip.m4v")) is AS_IS

    def test_mov_is_remuxed(self, media: dict[str, Path]) -> None:
        """A .mov with mp4 codecs is rewritten as mp4 by copying its streams."""
        plan = _plan(media["clip.mov"])
        assert (plan.suffix, plan.reencodes) == (".mp4", False)

    def test_audio_only_mp4_is_audio(self, copy_of: Callable[..., Path]) -> None:
        """An .mp4 with only sound in it is audio and becomes the audio target."""
        assert _plan(copy_of("tone.m4a", "tone.mp4")).suffix == ".wav"

    def test_video_called_m4a_is_video(self, copy_of: Callable[..., Path]) -> None:
        """A real video stream makes a file video whatever it is called; it is remuxed."""
        plan = _plan(copy_of("clip.mp4", "clip.m4a"))
        assert (plan.suffix, plan.reencodes) == (".mp4", False)


class TestOptions:
    def test_per_channel_keeps_stereo(self, media: dict[str, Path]) -> None:
        """With per-channel recognition, stereo wav goes as is and stereo sources stay stereo."""
        per_channel = {"enableSeparateRecognitionPerChannel": True}
        assert _plan(media["stereo.wav"], **per_channel) is AS_IS
        assert _after(_plan(media["stereo.flac"], **per_channel).argv, "-ac") == "2"
        assert _after(_plan(media["tone.flac"], **per_channel).argv, "-ac") == "1"  # no up-mix

    def test_per_channel_as_a_string(self, media: dict[str, Path]) -> None:
        """The parameter may be the string "true", as Symbl query values are."""
        per_channel = {"enableSeparateRecognitionPerChannel": "true"}
        assert _plan(media["stereo.wav"], **per_channel) is AS_IS

    def test_mp3_target(self, media: dict[str, Path]) -> None:
        """audio_format mp3 gives an mp3 at the configured bitrate and rate."""
        options = {"audio_format": "mp3", "mp3_bitrate": "32k", "sample_rate_hz": 22050}
        plan = _plan(media["tone.flac"], options)
        assert plan.suffix == ".mp3"
        assert (_after(plan.argv, "-c:a"), _after(plan.argv, "-b:a")) == ("libmp3lame", "32k")
        assert _after(plan.argv, "-ar") == "22050"

    def test_mp3_rate_snaps_to_one_mp3_allows(self) -> None:
        """A source rate mp3 cannot hold becomes the nearest one it can."""
        odd = Media("flac", 10.0, "flac", 1, 37800)
        plan = plan_for(Path("x.flac"), odd, TranscodeOptions(audio_format="mp3"))
        assert _after(plan.argv, "-ar") == "32000"

    def test_sample_rate_and_channels(self, media: dict[str, Path]) -> None:
        """sample_rate_hz and channels shape transcoded audio."""
        plan = _plan(media["stereo.flac"], {"sample_rate_hz": 8000, "channels": 2})
        assert (_after(plan.argv, "-ar"), _after(plan.argv, "-ac")) == ("8000", "2")

    def test_files_the_api_takes_are_not_touched_by_options(self, media: dict[str, Path]) -> None:
        """Target options shape transcodes only: a mono wav still goes as it is."""
        assert _plan(media["mono.wav"], {"audio_format": "mp3", "sample_rate_hz": 8000}) is AS_IS

    @pytest.mark.parametrize("name", ["clip.mp4", "clip.mkv"])
    def test_video_as_audio(self, media: dict[str, Path], name: str) -> None:
        """video_as_audio sends only the sound of any video, even an mp4."""
        plan = _plan(media[name], {"video_as_audio": True})
        assert (plan.suffix, _after(plan.argv, "-map")) == (".wav", "0:a:0")
        assert plan.description.startswith("extract the sound of")


class TestTimeouts:
    HOUR = Media("matroska,webm", 3600.0, "opus", 1, 48000, video_codec="vp9")

    @pytest.mark.parametrize(
        ("media_", "options", "seconds"),
        [
            (HOUR, TranscodeOptions(), 60 + 2.0 * 3600),  # video re-encode
            (HOUR, TranscodeOptions(video_as_audio=True), 60 + 0.5 * 3600),  # sound only
            (Media("matroska,webm", 3600.0, "aac", 1, 48000, "h264"), TranscodeOptions(), 780),
            (Media("ogg", None, "opus", 1, 48000), TranscodeOptions(), 60 + 0.5 * 4 * 3600),
            (HOUR, TranscodeOptions(timeout_seconds=99.0), 99),
        ],
        ids=["reencode", "audio", "copy", "unknown-duration", "override"],
    )
    def test_scale_with_duration_and_work(
        self, media_: Media, options: TranscodeOptions, seconds: float
    ) -> None:
        """The time allowed grows with the duration and with how much has to be encoded."""
        assert plan_for(Path("x.mkv"), media_, options).timeout_seconds == seconds

    def test_longer_media_gets_longer(self) -> None:
        """Ten times the duration gets ten times the allowance beyond the fixed minute."""
        short = Media("flac", 60.0, "flac", 1, 16000)
        long = Media("flac", 600.0, "flac", 1, 16000)
        timeouts = [
            plan_for(Path("x.flac"), m, TranscodeOptions()).timeout_seconds for m in (short, long)
        ]
        assert timeouts == [90.0, 360.0]


class TestOptionValidation:
    def _problems(self, **transcode: Any) -> list[str]:
        with pytest.raises(ConfigError) as caught:
            parse_options(WatchConfig(name="calls", path=Path("."), transcode=transcode))
        return caught.value.problems

    def test_unknown_key_gets_a_suggestion(self) -> None:
        """A misspelt key is named with its full path and the key it probably meant."""
        assert self._problems(sample_rate=16000) == [
            "watch[calls].transcode.sample_rate: unknown key; did you mean 'sample_rate_hz'?"
        ]

    @pytest.mark.parametrize(
        ("key", "value", "expected"),
        [
            ("audio_format", "ogg", "expected 'wav' or 'mp3'"),
            ("sample_rate_hz", 96000, "from 8000 to 48000"),
            ("sample_rate_hz", "16k", "from 8000 to 48000"),
            ("channels", 6, "expected 1 or 2"),
            ("channels", True, "expected 1 or 2"),
            ("mp3_bitrate", 64, "such as '64k'"),
            ("mp3_bitrate", "999k", "such as '64k'"),
            ("video_as_audio", "yes", "expected true or false"),
            ("timeout_seconds", 0, "> 0"),
        ],
    )
    def test_bad_values(self, key: str, value: Any, expected: str) -> None:
        """Each bad value is named by its key path and says what was expected."""
        [problem] = self._problems(**{key: value})
        assert problem.startswith(f"watch[calls].transcode.{key}: ")
        assert expected in problem

    def test_every_problem_at_once(self) -> None:
        """All problems are reported together, and mp3 rates are checked against mp3."""
        problems = self._problems(audio_format="mp3", sample_rate_hz=37800, chanels=1)
        assert [p.split(":")[0] for p in problems] == [
            "watch[calls].transcode.chanels",
            "watch[calls].transcode.sample_rate_hz",
        ]

    def test_bad_options_fail_the_plan_hook(self, media: dict[str, Path]) -> None:
        """The hook raises ConfigError rather than guessing what the user meant."""
        with pytest.raises(ConfigError, match=r"transcode\.audio_format"):
            _plan(media["tone.flac"], {"audio_format": "flac"})


class TestContentType:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("mono.wav", "audio/wav"),
            ("tone.mp3", "audio/mpeg"),
            ("cover.mp3", "audio/mpeg"),
            ("clip.mp4", "video/mp4"),
            ("tone.m4a", None),
            ("tone.flac", None),
            ("clip.mov", None),
            ("clip.mkv", None),
        ],
    )
    def test_by_file(self, media: dict[str, Path], name: str, expected: str | None) -> None:
        """wav, mp3 and mp4 video have a Content-Type the API takes; nothing else does."""
        found = ingestd_probe(recording(media[name]))
        assert content_type_for(media[name], found) == expected

    def test_by_suffix(self) -> None:
        """A bare suffix (with or without its dot) decides mp4 as a path would."""
        clip = Media("mov,mp4,m4a,3gp,3g2,mj2", 2.0, "aac", 1, 48000, "h264")
        assert [content_type_for(s, clip) for s in (".mp4", "mp4", ".MOV", "a/b.m4v")] == [
            "video/mp4",
            "video/mp4",
            None,
            "video/mp4",
        ]


def test_bad_transcode_options_stop_the_start(tmp_path) -> None:
    """`ingestd_validate_watch` reports bad transcode options, naming each key."""
    from ingestd.config import WatchConfig
    from ingestd_ffmpeg import ingestd_validate_watch

    watch = WatchConfig(
        name="calls", path=tmp_path, transcode={"audio_format": "ogg", "chanels": 2}
    )
    problems = ingestd_validate_watch(watch)
    assert any("watch[calls].transcode.audio_format" in p for p in problems), problems
    assert any("watch[calls].transcode.chanels" in p and "channels" in p for p in problems)
    assert ingestd_validate_watch(WatchConfig(name="ok", path=tmp_path)) == []
