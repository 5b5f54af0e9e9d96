"""ingestd: a plugin-based media ingestion daemon.

The public API for plugin authors: the `hookimpl` marker, the value types hooks receive and
return, the configuration types, the protocols of registered objects, the options helpers,
the metrics a backend records and the errors to raise. Import them from here
(``from ingestd import Recording, hookimpl``); the modules behind them are private and may
move. Besides these names, the public modules are `PUBLIC_MODULES`: the hook
specifications, the pytest fixtures, the Symbl emulator, generated test media, where
ffmpeg lives, upload progress, the backends' HTTP transport and JSON files.
"""

from __future__ import annotations

import pluggy

from ingestd.config import Secret, WatchConfig
from ingestd.errors import (
    ApiError,
    ConfigError,
    IngestdError,
    Permanent,
    PluginError,
    RecordingError,
    Rejected,
    Retryable,
    UnknownJob,
)
from ingestd.model import (
    AS_IS,
    EXISTING_CONVERSATION,
    INSIGHT_KINDS,
    NEW_CONVERSATION,
    DeliveryReceipt,
    Endpoint,
    EndpointKind,
    Insights,
    JobStatus,
    Media,
    Params,
    Piece,
    Recording,
    Result,
    Submission,
    TranscodePlan,
    Upload,
)
from ingestd.naming import conversation_name
from ingestd.options import OptionProblems, unknown_keys
from ingestd.registry import (
    Backend,
    BackendFactory,
    MappingHistory,
    Sink,
    SinkContext,
    SinkFactory,
)
from ingestd.sidecar import Sidecar, read_sidecar

hookimpl = pluggy.HookimplMarker("ingestd")
"""Marks a plugin function as an implementation of an `ingestd.hookspecs` hook."""


def record_api_request(route: str, status: int, seconds: float) -> None:
    """Count one HTTP attempt of an API backend in the daemon's metrics.

    Args:
        route: ``METHOD /path``; ids in the path are replaced by ``{id}``.
        status: the HTTP status, or 0 when no answer came (connection error, timeout).
        seconds: how long the attempt took.
    """
    from ingestd import metrics  # imported on first use: the CLI starts without it

    metrics.record_api_request(route, status, seconds)


def record_upload(size_bytes: int, seconds: float) -> None:
    """Count one upload the API accepted, its size and how long it took, in the metrics."""
    from ingestd import metrics

    metrics.record_upload(size_bytes, seconds)


PUBLIC_MODULES = (
    "ingestd.hookspecs",
    "ingestd.testing",
    "ingestd.sandbox",
    "ingestd.mediagen",
    "ingestd.executables",
    "ingestd.progress",
    "ingestd.timeline",
    "ingestd.retrypolicy",
    "ingestd.bodies",
    "ingestd.reach",
    "ingestd.httpnet",
    "ingestd.jsontext",
)
"""Modules a plugin may import besides the names in ``__all__`` (`ingestd.progress`: the
bytes of an upload sent so far, which a backend reports for the dashboard; `ingestd.timeline`:
a transcript's messages as timed, attributed lines, for sinks and the dashboard;
`retrypolicy`, `bodies`, `reach`, `httpnet`: the retries, streamed upload bodies,
reachability probe and httpx transport every HTTP backend shares)."""

__all__ = [
    "AS_IS",
    "EXISTING_CONVERSATION",
    "INSIGHT_KINDS",
    "NEW_CONVERSATION",
    "PUBLIC_MODULES",
    "ApiError",
    "Backend",
    "BackendFactory",
    "ConfigError",
    "DeliveryReceipt",
    "Endpoint",
    "EndpointKind",
    "IngestdError",
    "Insights",
    "JobStatus",
    "MappingHistory",
    "Media",
    "OptionProblems",
    "Params",
    "Permanent",
    "Piece",
    "PluginError",
    "Recording",
    "RecordingError",
    "Rejected",
    "Result",
    "Retryable",
    "Secret",
    "Sidecar",
    "Sink",
    "SinkContext",
    "SinkFactory",
    "Submission",
    "TranscodePlan",
    "UnknownJob",
    "Upload",
    "WatchConfig",
    "conversation_name",
    "hookimpl",
    "read_sidecar",
    "record_api_request",
    "record_upload",
    "unknown_keys",
]
