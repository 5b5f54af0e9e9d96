"""ingestd: a plugin-based media ingestion daemon.

The public API for plugin authors: the `hookimpl` marker, the value types hooks receive and
return, the protocols of registered objects, and the errors to raise.
"""

from __future__ import annotations

import pluggy

from ingestd.errors import (
    ApiError,
    ConfigError,
    IngestdError,
    Permanent,
    PluginError,
    RecordingError,
    Rejected,
    Retryable,
)
from ingestd.model import (
    AS_IS,
    EXISTING_CONVERSATION,
    NEW_CONVERSATION,
    DeliveryReceipt,
    Endpoint,
    EndpointKind,
    Insights,
    JobStatus,
    Media,
    Params,
    Recording,
    Result,
    Submission,
    TranscodePlan,
    Upload,
)
from ingestd.registry import Backend, MappingHistory, Sink, SinkContext

hookimpl = pluggy.HookimplMarker("ingestd")
"""Marks a plugin function as an implementation of an `ingestd.hookspecs` hook."""

__all__ = [
    "AS_IS",
    "EXISTING_CONVERSATION",
    "NEW_CONVERSATION",
    "ApiError",
    "Backend",
    "ConfigError",
    "DeliveryReceipt",
    "Endpoint",
    "EndpointKind",
    "IngestdError",
    "Insights",
    "JobStatus",
    "MappingHistory",
    "Media",
    "Params",
    "Permanent",
    "PluginError",
    "Recording",
    "RecordingError",
    "Rejected",
    "Result",
    "Retryable",
    "Sink",
    "SinkContext",
    "Submission",
    "TranscodePlan",
    "Upload",
    "hookimpl",
]
