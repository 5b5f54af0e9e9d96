"""Network-facing objects that plugins register by name: API backends and sinks.

Stage hooks only decide; the work that talks to the network lives in these objects, with
async methods and an `aclose()` (the shape of an httpx transport). Plugins stay declarative:
`ingestd_register_backends(register)` calls ``register("symbl", factory)`` once per type and
the core owns the table, the name conflicts and the configuration of each instance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from ingestd.errors import ConfigError, PluginError
from ingestd.model import (
    DeliveryReceipt,
    Endpoint,
    Insights,
    JobStatus,
    Params,
    Result,
    Submission,
    Upload,
)


class MappingHistory(Protocol):
    """What the conversation-key hook may know about earlier recordings (read-only)."""

    def recent_keys(self, prefix: str, since_mtime: float) -> list[tuple[str, float]]:
        """Keys starting with `prefix` used by a recording whose file mtime is at or after
        `since_mtime`, with the newest such mtime per key, newest first."""
        ...


@runtime_checkable
class Backend(Protocol):
    """An implementation of the Symbl Async API contract (the real service or the sandbox).

    All methods raise `ingestd.errors.Retryable` for transient trouble (429, 5xx, network,
    after the backend's own bounded retries), `Permanent` for answers that retrying cannot
    change (400, 404, 413), and never log secrets.
    """

    name: str

    async def submit(
        self,
        endpoint: Endpoint,
        upload: Upload | None,
        params: Params,
        conversation_id: str | None,
    ) -> Submission:
        """POST a new conversation (conversation_id None) or PUT an append into one.

        File routes stream `upload` from disk with an explicit Content-Length; URL routes
        send `endpoint.url` in the JSON body and `upload` is None.
        """
        ...

    async def job_status(self, job_id: str) -> JobStatus:
        """One Job API read."""
        ...

    async def wait_for_job(
        self, job_id: str, *, expected_seconds: float | None = None
    ) -> JobStatus:
        """Poll the Job API with adaptive back-off until the job is terminal; return it."""
        ...

    async def fetch_insights(self, conversation_id: str, kinds: Iterable[str]) -> Insights:
        """Fetch the conversation and each requested kind of insight (model.INSIGHT_KINDS)."""
        ...

    async def find_conversations(self, name: str, created_after: float) -> list[str]:
        """Ids of conversations called `name` created at or after UNIX time `created_after`.

        Used after a crash or a lost response during a POST: the core looks for the
        conversation the interrupted upload may have created before uploading again.
        Newest first. Raises `Retryable` when the API cannot be asked right now.
        """
        ...

    async def wait_for_messages(self, conversation_id: str, *, timeout_seconds: float) -> bool:
        """Poll until the conversation has messages (its job completed) or time runs out.

        For a conversation adopted by reconciliation, whose jobId was never received.
        """
        ...

    async def delete_conversation(self, conversation_id: str) -> bool:
        """Delete a conversation and everything the API keeps of it.

        True when it was deleted, False when the API no longer had it (already deleted: the
        goal is reached). Raises `Retryable` when it cannot be asked right now. Used when a
        site must not leave transcripts with the API (``symbl.delete_after_delivery``,
        ``ingestd forget``).
        """
        ...

    async def aclose(self) -> None:
        """Release connections (and stop an embedded sandbox)."""
        ...


@runtime_checkable
class Sink(Protocol):
    """Where results go. Each configured sink is delivered and tracked on its own.

    `deliver` must be idempotent: it is called again for the same conversation after an
    append and after a crash mid-delivery, and must leave exactly one copy of each item.
    """

    name: str

    async def deliver(self, result: Result) -> DeliveryReceipt:
        """Deliver one conversation's insights; raise Retryable for transient trouble."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class SinkContext:
    """What a sink factory may need besides its own options.

    Args:
        name: the sink's stable name (its ``name`` option, else its type); deliveries are
            tracked under it, so it should also be the Sink's ``name``.
        key_path: where its options sit in the YAML (``sinks[0]``), for error messages.
        config_path: the config file, for resolving relative paths.
        state_dir: where the sink may keep state of its own.
    """

    name: str
    key_path: str
    config_path: Path | None
    state_dir: Path


BackendFactory = Callable[[Mapping[str, Any], Path], Backend]
"""``factory(symbl_options, state_dir) -> Backend``; raises ConfigError on bad options."""

SinkFactory = Callable[[Mapping[str, Any], SinkContext], Sink]
"""``factory(sink_options, context) -> Sink``; raises ConfigError naming the bad key."""


F = TypeVar("F")


class Registry(Generic[F]):
    """Factories by type name, filled by a ``register(name, factory)`` hook call."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, tuple[F, str]] = {}

    def register(self, name: str, factory: F, *, plugin: str = "") -> None:
        """Called by plugins. A second registration of a name is a plugin bug."""
        if name in self._factories:
            other = self._factories[name][1]
            raise PluginError(
                f"{self.kind} type {name!r} registered twice (by {other or '?'} and "
                f"{plugin or '?'}); uninstall one of them"
            )
        self._factories[name] = (factory, plugin)

    def get(self, name: str, *, key_path: str) -> F:
        if name not in self._factories:
            known = ", ".join(sorted(self._factories)) or "none"
            raise ConfigError(f"{key_path}: unknown {self.kind} type {name!r} (known: {known})")
        return self._factories[name][0]

    def names(self) -> list[str]:
        return sorted(self._factories)

    def origin(self, name: str) -> str:
        return self._factories[name][1]
