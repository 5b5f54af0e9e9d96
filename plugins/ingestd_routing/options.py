"""The per-watch ``endpoint`` options: where a watch's files can be fetched from, and who
speaks on which channel.

::

    watch:
      - path: /srv/calls
        endpoint:
          public_base_url: https://media.example.com/calls/   # use the URL routes
          speakers:                      # channel 1, channel 2, ...
            - Agent                      # a name, or
            - {name: Customer, email: customer@example.com}

``public_base_url``: where the watch's folder is published; a file's address is this URL
plus its path under the watch, percent-encoded. The API then downloads each file itself.
``speakers``: one per channel, in channel order; they become ``channelMetadata`` with
per-channel recognition for every recording with that many channels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from ingestd import ConfigError, WatchConfig, unknown_keys

from .parameters import PER_CHANNEL, SPEAKER_KEYS, show

KEYS = ("public_base_url", "speakers")


@dataclass(frozen=True)
class EndpointOptions:
    """A watch's validated ``endpoint`` section.

    `speakers` holds one ``{name, email, userId}`` mapping (or None: channel left unnamed)
    per channel, channel 1 first.
    """

    public_base_url: str | None = None
    speakers: tuple[Mapping[str, str] | None, ...] = ()

    def url_for(self, relpath: str) -> str:
        """The public address of the file at `relpath` under the watch."""
        assert self.public_base_url is not None
        return self.public_base_url.rstrip("/") + "/" + quote(relpath, safe="/")

    def channel_metadata(self, channels: int) -> list[dict[str, Any]]:
        """``channelMetadata`` for a recording with `channels` channels."""
        return [
            {"channel": number, "speaker": dict(speaker)}
            for number, speaker in enumerate(self.speakers[:channels], start=1)
            if speaker is not None
        ]


def parse_options(watch: WatchConfig) -> EndpointOptions:
    """Validate ``watch.endpoint``; raise `ConfigError` listing every bad key.

    Each problem names its key as ``watch[<name>].endpoint.<key>``.
    """
    data: Mapping[str, Any] = watch.endpoint or {}
    prefix = f"watch[{watch.name}].endpoint"
    problems: list[str] = []

    problems.extend(unknown_keys(data, KEYS, prefix))

    base = data.get("public_base_url")
    if base is not None:
        parts = urlsplit(base) if isinstance(base, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(
                f"{prefix}.public_base_url: expected an http(s) URL such as "
                f"'https://media.example.com/calls/', got {show(base)}"
            )
            base = None
        elif parts.query or parts.fragment:
            problems.append(
                f"{prefix}.public_base_url: expected a URL that file paths can be appended to "
                f"(no ?query or #fragment), got {show(base)}"
            )
            base = None

    speakers: list[Mapping[str, str] | None] = []
    raw = data.get("speakers", [])
    if not isinstance(raw, list) or (not raw and "speakers" in data):
        problems.append(
            f"{prefix}.speakers: expected a list with one speaker per channel, got {show(raw)}"
        )
        raw = []
    for i, item in enumerate(raw):
        speaker, problem = _speaker(item)
        if problem:
            problems.append(f"{prefix}.speakers[{i}]: {problem}")
        speakers.append(speaker)
    if raw and all(item is None for item in raw):
        problems.append(f"{prefix}.speakers: expected at least one named speaker")
    if speakers:
        problems.extend(_conflicts(watch, prefix))

    if problems:
        raise ConfigError(problems)
    return EndpointOptions(public_base_url=base, speakers=tuple(speakers))


def _speaker(item: Any) -> tuple[Mapping[str, str] | None, str | None]:
    """One entry of ``speakers``: a name, a mapping, or null for an unnamed channel."""
    if item is None:
        return None, None
    if isinstance(item, str) and item.strip():
        return {"name": item.strip()}, None
    if isinstance(item, Mapping) and any(k in item for k in ("name", "email")):
        for key, value in item.items():
            if key not in SPEAKER_KEYS:
                return None, f"unknown key {key!r}; expected {', '.join(SPEAKER_KEYS)}"
            if not isinstance(value, str) or not value.strip():
                return None, f"{key}: expected a non-empty string, got {show(value)}"
        return {str(k): str(v).strip() for k, v in item.items()}, None
    return None, (
        f"expected a name, {{name, email}} or null (channel left unnamed), got {show(item)}"
    )


def _conflicts(watch: WatchConfig, prefix: str) -> list[str]:
    """Speakers need per-channel recognition, and both channels kept by the transcoder."""
    params = watch.parameters
    out = []
    if "channelMetadata" in params:
        out.append(f"{prefix}.speakers: parameters.channelMetadata maps the channels too; keep one")
    if params.get(PER_CHANNEL) is False:
        out.append(f"{prefix}.speakers: needs {PER_CHANNEL}, which the parameters set to false")
    if params.get("enableSpeakerDiarization") is True:
        out.append(
            f"{prefix}.speakers: the parameters enable speaker diarization, which makes the "
            "API ignore the channels; remove one of the two"
        )
    if _transcoder_channels(watch) < 2:
        out.append(
            f"{prefix}.speakers: the transcoder would mix the channels into one; "
            "set transcode.channels: 2"
        )
    return out


def _transcoder_channels(watch: WatchConfig) -> int:
    """How many channels a converted file of this watch keeps: ``transcode.channels`` as
    the README documents it (default 2 when per-channel recognition is asked for, else 1).

    Read from the watch's YAML, not from the ffmpeg plugin, so that disabling or replacing
    that plugin never breaks this one; a bad value is the transcoder's to report.
    """
    channels = (watch.transcode or {}).get("channels")
    if channels in (1, 2) and not isinstance(channels, bool):
        return int(channels)
    if channels is not None:
        return 2
    flag = watch.parameters.get(PER_CHANNEL)  # YAML may hold "true" for the flag, too
    spelt_true = isinstance(flag, str) and flag.strip().lower() == "true"
    return 2 if per_channel_requested(watch) or spelt_true else 1


def channel_problems(watch: WatchConfig) -> list[str]:
    """Per-channel recognition asked for in the parameters while the transcoder would mix
    the channels into one (``endpoint.speakers`` is checked by `parse_options`)."""
    if (watch.endpoint or {}).get("speakers") or _transcoder_channels(watch) >= 2:
        return []
    prefix = f"watch[{watch.name}].parameters"
    return [
        f"{prefix}.{key}: the transcoder would mix the channels into one; set transcode.channels: 2"
        for key in ("channelMetadata", PER_CHANNEL)
        if key in watch.parameters and watch.parameters[key] not in (False, None)
    ][:1]


def per_channel_requested(watch: WatchConfig) -> bool:
    """Whether the watch's recordings should keep their channels apart: per-channel
    recognition on, channelMetadata given, or speakers mapped. For the transcoder."""
    params = watch.parameters
    return (
        params.get(PER_CHANNEL) is True
        or bool(params.get("channelMetadata"))
        or bool((watch.endpoint or {}).get("speakers"))
    )
