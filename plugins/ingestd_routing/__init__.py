"""Bundled plugin: which Symbl route a recording goes to, and with which parameters.

Decides two things, each a default that an installed plugin overrides:

- endpoint (``trylast``): video to the video routes as ``video/mp4``, sound to the audio
  routes with the Content-Type of wav or mp3 (others are detected by the API); the URL
  routes instead when the watch publishes its files (``endpoint.public_base_url``) and the
  original can be downloaded as it is (see `endpoint`).
- parameters (``tryfirst``, so other plugins edit after it): the config's, the watch's and
  the sidecar's parameters, then smart defaults (``name``, ``mode: phone`` at 8 kHz,
  speakers per channel), all checked against the contract (see `defaults`, `parameters`,
  `sidecar`); and (``trylast``) the same check once more after every other plugin edited
  them, so a plugin's bad value fails before the upload, with the key named.

At start-up it checks every watch's ``parameters`` and ``endpoint`` (see `options`).
"""

from __future__ import annotations

from ingestd import (
    ConfigError,
    Endpoint,
    Media,
    Params,
    Permanent,
    Recording,
    WatchConfig,
    hookimpl,
)

from .defaults import fill
from .endpoint import choose
from .options import EndpointOptions, channel_problems, parse_options, per_channel_requested
from .parameters import SCHEMA, Parameter, problems

__all__ = [
    "SCHEMA",
    "EndpointOptions",
    "Parameter",
    "check_final_parameters",
    "ingestd_choose_endpoint",
    "ingestd_set_parameters",
    "ingestd_validate_watch",
    "parse_options",
    "per_channel_requested",
    "problems",
]


@hookimpl
def ingestd_validate_watch(watch: WatchConfig) -> list[str]:
    """Check ``watch.parameters`` against the contract and ``watch.endpoint``."""
    lines = problems(watch.parameters, prefix=f"watch[{watch.name}].parameters.")
    try:
        parse_options(watch)
    except ConfigError as exc:
        lines.extend(exc.problems)
    return lines + channel_problems(watch)


@hookimpl(trylast=True)
def ingestd_choose_endpoint(recording: Recording, media: Media) -> Endpoint:
    """The route family, and the Content-Type (file routes) or the URL (URL routes)."""
    return choose(recording, media, parse_options(recording.watch))


@hookimpl(tryfirst=True)
def ingestd_set_parameters(
    recording: Recording, media: Media, endpoint: Endpoint, params: Params
) -> None:
    """Configured and sidecar parameters, then the defaults nobody set; all checked."""
    fill(recording, media, parse_options(recording.watch), params)


@hookimpl(trylast=True, specname="ingestd_set_parameters")
def check_final_parameters(recording: Recording, params: Params) -> None:
    """After every plugin edited `params`: check them again, so a value a plugin set
    fails here with its key named (and the plugin to look at), not as an API 400."""
    lines = problems(params, prefix="parameters.")
    if lines:
        raise Permanent(
            f"{recording.relpath}: invalid parameters after the ingestd_set_parameters "
            f"plugins ran: {'; '.join(lines)}; fix the plugin that sets them, then "
            f"`ingestd retry` the recording"
        )
