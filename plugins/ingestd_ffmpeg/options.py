"""The per-watch ``transcode`` options: what a transcoded file should look like.

::

    watch:
      - path: /srv/calls
        transcode:
          audio_format: mp3        # wav (default) or mp3
          sample_rate_hz: 16000    # default: the source's rate, kept within 8000..48000
          channels: 1              # default 1, or 2 when enableSeparateRecognitionPerChannel
          mp3_bitrate: 64k         # default 64k (8k..320k)
          video_as_audio: true     # upload only the sound of videos (much smaller)
          timeout_seconds: 900     # default: scaled with the duration and the work

They shape the files that have to be transcoded anyway; a file the API accepts as it is
(mono wav, mp3, mp4) is never touched, except that `video_as_audio` applies to every video.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ingestd import ConfigError, WatchConfig, unknown_keys

AUDIO_FORMATS = ("wav", "mp3")
MIN_SAMPLE_RATE_HZ = 8000
MAX_SAMPLE_RATE_HZ = 48000
MP3_SAMPLE_RATES_HZ = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
"""The rates an MPEG audio layer 3 stream can have; libmp3lame refuses any other."""

KEYS = (
    "audio_format",
    "sample_rate_hz",
    "channels",
    "mp3_bitrate",
    "video_as_audio",
    "timeout_seconds",
)
PER_CHANNEL_PARAMETER = "enableSeparateRecognitionPerChannel"
_BITRATE = re.compile(r"^(\d+)k$")


@dataclass(frozen=True)
class TranscodeOptions:
    """A watch's validated ``transcode`` section, with the per-channel flag folded in.

    `channels` is the most a transcoded file keeps (a mono source is never up-mixed);
    `sample_rate_hz` None means "the source's rate, within 8000..48000".
    """

    audio_format: str = "wav"
    sample_rate_hz: int | None = None
    channels: int = 1
    mp3_bitrate: str = "64k"
    video_as_audio: bool = False
    timeout_seconds: float | None = None
    per_channel: bool = False


def parse_options(watch: WatchConfig) -> TranscodeOptions:
    """Validate ``watch.transcode``; raise `ConfigError` listing every bad key.

    Each problem names its key as ``watch[<name>].transcode.<key>`` so the user finds it.
    """
    data: Mapping[str, Any] = watch.transcode or {}
    prefix = f"watch[{watch.name}].transcode"
    problems: list[str] = []

    def bad(key: str, message: str) -> None:
        problems.append(f"{prefix}.{key}: {message}")

    problems.extend(unknown_keys(data, KEYS, prefix))

    audio_format = data.get("audio_format", "wav")
    if audio_format not in AUDIO_FORMATS:
        bad("audio_format", f"expected 'wav' or 'mp3', got {audio_format!r}")
        audio_format = "wav"

    sample_rate_hz = data.get("sample_rate_hz")
    if sample_rate_hz is not None:
        if not _is_int(sample_rate_hz) or not (
            MIN_SAMPLE_RATE_HZ <= sample_rate_hz <= MAX_SAMPLE_RATE_HZ
        ):
            bad(
                "sample_rate_hz",
                f"expected a whole number of Hz from 8000 to 48000, got {sample_rate_hz!r}",
            )
            sample_rate_hz = None
        elif audio_format == "mp3" and sample_rate_hz not in MP3_SAMPLE_RATES_HZ:
            rates = ", ".join(map(str, MP3_SAMPLE_RATES_HZ))
            bad("sample_rate_hz", f"mp3 cannot have {sample_rate_hz} Hz; use one of {rates}")
            sample_rate_hz = None

    # Keep the channels apart whenever the watch asks for per-channel recognition in any
    # of its forms (the flag, channelMetadata, or speakers mapped to channels).
    per_channel = (
        _truthy(watch.parameters.get(PER_CHANNEL_PARAMETER))
        or bool(watch.parameters.get("channelMetadata"))
        or bool((watch.endpoint or {}).get("speakers"))
    )
    channels = data.get("channels", 2 if per_channel else 1)
    if not _is_int(channels) or channels not in (1, 2):
        bad("channels", f"expected 1 or 2, got {channels!r}")
        channels = 1

    mp3_bitrate = data.get("mp3_bitrate", "64k")
    match = _BITRATE.match(mp3_bitrate) if isinstance(mp3_bitrate, str) else None
    if not match or not 8 <= int(match.group(1)) <= 320:
        bad("mp3_bitrate", f"expected a bitrate such as '64k' (8k to 320k), got {mp3_bitrate!r}")
        mp3_bitrate = "64k"

    video_as_audio = data.get("video_as_audio", False)
    if not isinstance(video_as_audio, bool):
        bad("video_as_audio", f"expected true or false, got {video_as_audio!r}")
        video_as_audio = False

    timeout_seconds = data.get("timeout_seconds")
    if timeout_seconds is not None and (
        isinstance(timeout_seconds, bool)
        or not isinstance(timeout_seconds, int | float)
        or timeout_seconds <= 0
    ):
        bad("timeout_seconds", f"expected a number of seconds > 0, got {timeout_seconds!r}")
        timeout_seconds = None

    if problems:
        raise ConfigError(problems)
    return TranscodeOptions(
        audio_format=audio_format,
        sample_rate_hz=sample_rate_hz,
        channels=channels,
        mp3_bitrate=mp3_bitrate,
        video_as_audio=video_as_audio,
        timeout_seconds=float(timeout_seconds) if timeout_seconds is not None else None,
        per_channel=per_channel,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _truthy(value: object) -> bool:
    """A Symbl boolean parameter as YAML may hold it: true, "true" or "True"."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")
