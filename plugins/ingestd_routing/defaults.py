"""A recording's parameters: merged from the configuration and its sidecar, completed with
the defaults a user would expect, and checked before anything is sent.

Merge order, later wins: the config's top-level ``parameters`` (already folded into each
watch), the watch's ``parameters``, the sidecar's ``parameters``; then, for keys nobody set:

- ``name``: the conversation's name when the file is a part of one (``meeting-42`` for
  ``meeting-42/part1.wav`` with ``conversation.by: folder``; see
  `ingestd.conversation_name`), else the file name without its suffix (``call-0412`` for
  ``call-0412.m4a``);
- ``mode: phone`` when the original is sampled at 8 kHz or less (a telephone call), even
  when the transcoder resamples it (``transcode.sample_rate_hz: 16000``);
- ``channelMetadata`` from ``endpoint.speakers``, with per-channel recognition, when the
  recording has at least two channels and nothing asked for diarization or turned
  per-channel recognition off;
- ``enableSeparateRecognitionPerChannel: true`` whenever ``channelMetadata`` is given.

A sidecar asking for per-channel recognition of a recording that will be uploaded with one
channel is rejected, saying why and how to keep both channels.

Plugins that implement `ingestd_set_parameters` run after this and have the last word.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import structlog

from ingestd import (
    Media,
    Params,
    Permanent,
    Recording,
    Sidecar,
    conversation_name,
    read_sidecar,
)

from .options import EndpointOptions
from .parameters import PER_CHANNEL, implied, problems

log = structlog.get_logger()

PHONE_MAX_SAMPLE_RATE_HZ = 8000
"""Sound sampled at this rate or lower is a telephone call: ``mode: phone``."""
CHANNEL_KEYS = ("channelMetadata", PER_CHANNEL)
"""The parameters that ask for per-channel recognition."""


def fill(recording: Recording, media: Media, options: EndpointOptions, params: Params) -> list[str]:
    """Merge and complete `params` in place; return the keys set by default.

    `media` describes the upload; `recording.media`, when known, the original file.

    Raises:
        Rejected: the sidecar is unusable or its parameters are invalid (the user fixes it).
        Permanent: the merged parameters are invalid without a sidecar to blame.
    """
    sidecar = read_sidecar(recording.path, recording.relpath)
    explicit: dict[str, Any] = {**recording.watch.parameters, **sidecar.parameters}
    params.update(explicit)
    defaulted = _defaults(recording, media, options, params, explicit)
    lines = problems(params)
    if lines and sidecar.path is not None:
        raise sidecar.fail("; ".join(f"parameters.{line}" for line in lines))
    if lines:
        raise Permanent(f"{recording.relpath}: invalid parameters: {'; '.join(lines)}")
    _check_channels(recording, media, sidecar, params)
    log.debug("parameters_merged", sidecar=sidecar.display or None, defaulted=defaulted)
    return defaulted


def _defaults(
    recording: Recording,
    media: Media,
    options: EndpointOptions,
    params: Params,
    explicit: dict[str, Any],
) -> list[str]:
    defaulted = []

    def default(key: str, value: Any) -> None:
        if key not in explicit and key not in params:
            params[key] = value
            defaulted.append(key)

    named = conversation_name(recording.conversation_key)
    default("name", named or PurePosixPath(recording.relpath).stem)
    source = recording.media or media  # a call upsampled to 16 kHz is still a call
    if 0 < source.sample_rate_hz <= PHONE_MAX_SAMPLE_RATE_HZ:
        default("mode", "phone")
    wants_speakers = (
        options.speakers
        and media.channels >= 2
        and "channelMetadata" not in explicit
        and explicit.get(PER_CHANNEL) is not False
        and explicit.get("enableSpeakerDiarization") is not True
    )
    if wants_speakers:
        metadata = options.channel_metadata(media.channels)
        if metadata:
            default("channelMetadata", metadata)
    if "channelMetadata" in params:
        default(PER_CHANNEL, True)
    return defaulted


def _check_channels(recording: Recording, media: Media, sidecar: Sidecar, params: Params) -> None:
    """Reject a sidecar's per-channel recognition when the upload has a single channel.

    The API would be told to recognise channels the file does not have. (A watch's own
    per-channel parameters are checked at start-up against its ``transcode.channels``.)
    """
    if media.channels >= 2 or implied(params).get(PER_CHANNEL) is not True:
        return
    key = next((k for k in CHANNEL_KEYS if sidecar.parameters.get(k) not in (None, False)), None)
    if key is None:
        return
    source = recording.media or media
    problem = f"parameters.{key}: per-channel recognition needs two channels, but"
    if source.channels >= 2:
        raise sidecar.fail(
            f"{problem} the transcoder mixes the {source.channels} channels of "
            f"{recording.name} into one (the watch's transcode.channels is 1)",
            fix=f"set transcode.channels: 2 on watch[{recording.watch.name}]",
        )
    raise sidecar.fail(f"{problem} {recording.name} has only one")
