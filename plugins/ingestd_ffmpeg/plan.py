"""The transcode decision: upload as is, remux, or re-encode; never runs ffmpeg itself.

As is (`AS_IS`): a wav of 16-bit PCM with at most the allowed channels (1, or 2 with
per-channel recognition) at 8–48 kHz; any mp3; an mp4 (real video stream, .mp4/.m4v
suffix) whose codecs are in `COPY_VIDEO` and `COPY_AUDIO`.

Video in another container (mov, mkv, webm, avi, ...) or with other codecs becomes an mp4,
copying every stream whose codec mp4 players (and the API) take and re-encoding only the
rest: video to H.264, audio to AAC. ffmpeg 6 would also mux opus, flac or alac into mp4,
but older builds (the system one on PATH wins) need ``-strict`` for some, and decoders
often lack them, while re-encoding sound costs little. Everything else that is audio (or
video with ``video_as_audio``) becomes the watch's audio target, wav or mp3.
"""

from __future__ import annotations

from pathlib import Path

from ingestd import AS_IS, Media, TranscodePlan, executables

from .content_types import is_mp4_video, suffix_of
from .options import MP3_SAMPLE_RATES_HZ, TranscodeOptions

COPY_VIDEO = frozenset({"h264", "hevc", "mpeg4", "av1"})
"""Video codecs an mp4 may carry as they are."""
COPY_AUDIO = frozenset({"aac", "mp3"})
"""Audio codecs an mp4 may carry as they are."""
WAV_AS_IS = frozenset({"pcm_s16le"})
"""Wav sample formats uploaded as they are; other PCM (8-bit, 24-bit, float, µ-law) is
converted, cheaply, to the one every speech service reads."""

BASE_TIMEOUT_SECONDS = 60.0
SECONDS_PER_SECOND = {"video": 2.0, "audio": 0.5, "copy": 0.2}
"""Time allowed per second of media: re-encoding video, re-encoding only sound, copying."""
MAX_DURATION_SECONDS = 4 * 3600.0
"""The API's longest file (symbl-api.md §8): the timeout basis when the duration is unknown."""

_VIDEO_ENCODE = [
    "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
    "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2",  # 4:2:0 H.264 needs even dimensions
]  # fmt: skip
_AUDIO_ENCODE = ["-c:a", "aac", "-b:a", "128k"]


def plan_for(path: Path, media: Media, options: TranscodeOptions) -> TranscodePlan:
    """Decide what to do with the file at `path`, which ffprobe described as `media`."""
    if media.kind == "video" and not options.video_as_audio:
        return _video_plan(path, media, options)
    if media.kind == "audio" and _audio_as_is(media, options):
        return AS_IS
    return _audio_plan(path, media, options)


def _audio_as_is(media: Media, options: TranscodeOptions) -> bool:
    formats = media.container.split(",")
    if formats == ["mp3"] and media.audio_codec == "mp3":
        return True
    return (
        formats == ["wav"]
        and media.audio_codec in WAV_AS_IS
        and media.channels <= options.channels
        and 8000 <= media.sample_rate_hz <= 48000
    )


def _audio_plan(path: Path, media: Media, options: TranscodeOptions) -> TranscodePlan:
    channels = max(1, min(media.channels, options.channels))
    rate = options.sample_rate_hz or min(max(media.sample_rate_hz, 8000), 48000)
    if options.audio_format == "mp3":
        rate = min(MP3_SAMPLE_RATES_HZ, key=lambda allowed: (abs(allowed - rate), -allowed))
        encode = ["-c:a", "libmp3lame", "-b:a", options.mp3_bitrate, "-f", "mp3"]
        target = f"mp3 {options.mp3_bitrate}"
    else:
        encode = ["-c:a", "pcm_s16le", "-f", "wav"]
        target = "wav"
    argv = [
        *_head(),
        "-map", "0:a:0", "-map_metadata", "-1",
        "-ac", str(channels), "-ar", str(rate), *encode,
        "{output}",
    ]  # fmt: skip
    verb = "extract the sound of" if media.kind == "video" else "transcode"
    layout = {1: "mono", 2: "stereo"}[channels]
    return TranscodePlan(
        argv=tuple(argv),
        suffix=f".{options.audio_format}",
        description=f"{verb} {_source(path, media)} to {target} {rate} Hz {layout}",
        reencodes=True,
        timeout_seconds=_timeout(media, "audio", options),
    )


def _video_plan(path: Path, media: Media, options: TranscodeOptions) -> TranscodePlan:
    copy_video = media.video_codec in COPY_VIDEO
    copy_audio = media.audio_codec in COPY_AUDIO
    if copy_video and copy_audio and is_mp4_video(path, media):
        return AS_IS
    video = ["-c:v", "copy"] if copy_video else list(_VIDEO_ENCODE)
    if copy_video and media.video_codec == "hevc":
        video += ["-tag:v", "hvc1"]  # the tag Apple players require; others accept both
    if copy_video and media.video_codec == "mpeg4":
        video += ["-bsf:v", "mpeg4_unpack_bframes"]  # AVI's packed B-frames are not mp4's
    audio = ["-c:a", "copy"] if copy_audio else list(_AUDIO_ENCODE)
    argv = [
        *_head(),
        "-map", "0:V:0", "-map", "0:a:0",  # V: real video, never cover art
        *video, *audio,
        "-movflags", "+faststart", "-f", "mp4",
        "{output}",
    ]  # fmt: skip
    if copy_video and copy_audio:
        description = f"remux {_source(path, media)} to mp4 (stream copy)"
        work = "copy"
    elif copy_video:
        description = f"remux {_source(path, media)} to mp4, re-encoding the sound to aac"
        work = "audio"
    else:
        what = "video to h264" if copy_audio else "video to h264 and sound to aac"
        description = f"convert {_source(path, media)} to mp4, re-encoding the {what}"
        work = "video"
    return TranscodePlan(
        argv=tuple(argv),
        suffix=".mp4",
        description=description,
        reencodes=work != "copy",
        timeout_seconds=_timeout(media, work, options),
    )


INPUT_QUEUE_PACKETS = "64"
"""ffmpeg 6 demuxes on a thread of its own; with its input queue left unset, handing packets
over costs futex storms (589,000 calls for a 1-hour stream copy), and an explicit queue of a
few dozen packets removes them at no memory cost (see the commit that set it)."""


def _head() -> list[str]:
    return [
        executables.ffmpeg(),
        "-nostdin",
        "-hide_banner",
        "-y",
        "-thread_queue_size",
        INPUT_QUEUE_PACKETS,
        "-i",
        "{input}",
    ]


def _source(path: Path, media: Media) -> str:
    """``"mkv (h264/opus)"``: what the user would call the file, and its codecs."""
    name = suffix_of(path).lstrip(".") or media.container.split(",")[0]
    codecs = "/".join(c for c in (media.video_codec, media.audio_codec) if c)
    return f"{name} ({codecs})"


def _timeout(media: Media, work: str, options: TranscodeOptions) -> float:
    """Time allowed for the run: a fixed start-up allowance plus a rate per media second."""
    if options.timeout_seconds is not None:
        return options.timeout_seconds
    duration = media.duration_seconds or MAX_DURATION_SECONDS
    return round(BASE_TIMEOUT_SECONDS + SECONDS_PER_SECOND[work] * duration, 1)
