"""Bundled plugin: which Symbl route a recording goes to, and with which parameters.

Decides two things, each a default that an installed plugin overrides:

- endpoint (``trylast``): video to the video routes as ``video/mp4``, sound to the audio
  routes with the Content-Type of wav or mp3 (others are detected by the API); the URL
  routes instead when the watch publishes its files (``endpoint.public_base_url``) and the
  original can be downloaded as it is (see `endpoint`).
- parameters (``tryfirst``, so other plugins edit after it): the config's, the watch's and
  the sidecar's parameters, then smart defaults (``name``, ``mode: phone`` at 8 kHz,
  speakers per channel), all checked against the contract (see `defaults`, `parameters`,
  `sidecar`).

At start-up it checks every watch's ``parameters`` and ``endpoint`` (see `options`).
"""

from __future__ import annotations

from ingestd import ConfigError, Endpoint, Media, Params, Recording, hookimpl
from ingestd.config import WatchConfig

from . import sidecar
from .defaults import fill
from .endpoint import choose
from .options import EndpointOptions, channel_problems, parse_options, per_channel_requested
from .parameters import SCHEMA, Parameter, problems

__all__ = [
    "SCHEMA",
    "EndpointOptions",
    "Parameter",
    "ingestd_choose_endpoint",
    "ingestd_set_parameters",
    "ingestd_validate_watch",
    "parse_options",
    "per_channel_requested",
    "problems",
    "sidecar",
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
