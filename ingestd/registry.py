"""Network-facing objects that plugins register by name: API backends and sinks.

Stage hooks only decide; the work that talks to the network lives in these objects, with
async methods and an `aclose()` (the shape of an httpx transport). Plugins stay declarative:
`ingestd_register_backends(register)` calls ``register("symbl", factory)`` once per type and
the core owns the table, the name conflicts and the configuration of each instance.
"""

from __future__ import annotations

import difflib
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
    """A speech-to-text API the daemon submits recordings to (Symbl.ai, the sandbox, ...).

    Chosen by ``backend: NAME`` in the YAML; built by the factory registered under that name
    from the top-level section of the same name. The core calls the required methods below
    in this order for each recording: `submit`, `wait_for_job`, `fetch_insights`; then
    `delete_conversation` where the site asks for it, and `aclose` at shutdown. Every
    method raises `ingestd.errors.Retryable` for transient trouble (429, 5xx, network,
    after the backend's own bounded retries; ``retry_after`` when the service said how long
    to wait) and `Permanent` for answers retrying cannot change (400, 413); `wait_for_job`
    raises `UnknownJob` for a job the service no longer knows. Secrets never appear in
    messages.

    Optional parts, looked up with ``getattr`` (implement only what the service can do):

    - ``max_upload_bytes: int | None``: the largest upload the service takes; a larger one
      reaches `submit` with ``upload.pieces`` (`ingestd.fitting`, the ``ingestd_fit_upload``
      hook): the sound compacted and cut at silences, each piece with its offset.
    - ``max_concurrent_jobs: int``: the most jobs in flight at once (default 5); the core
      holds recordings in ``queued`` beyond it.
    - ``prepare_upload(params, *, conversation_id, resend) -> Params``: called before
      each `submit`; what it returns is stored durably before any byte leaves, then
      submitted. Put a per-upload tag in it to find the upload again (`find_upload`);
      `resend` is True when an earlier attempt's answer was lost, whose params (and tag)
      `params` then are.
    - ``async find_upload(params, *, started_at, exclude) -> str | None``: after a crash
      or a lost answer during a `submit` of a new conversation, the id of the conversation
      that attempt created (`params` as `prepare_upload` returned them, `started_at` UNIX
      time of the attempt, `exclude` ids already taken by other recordings), or None. A
      backend without it has each such upload sent again (fine where submitting is
      idempotent). With it, ``async wait_for_messages(conversation_id, *,
      timeout_seconds) -> bool`` is required too: an adopted conversation has no job id, so
      the core waits until its transcript is there.
    - ``may_land_within_seconds`` on a `Retryable` raised by `submit`: the whole upload
      was sent but the answer was lost, and the service may still create the conversation
      within that many seconds; until then a `find_upload` that finds nothing is asked again
      rather than followed by a second upload.
    - ``async check() -> str``: ``ingestd check``'s probe of the service; returns what it
      verified (``"https://api.example.com: credentials accepted"``) or raises an
      `IngestdError` saying what is wrong in the service's terms (host unknown, credentials
      refused).
    - ``insights_notice: str``: what a reader of this backend's insights must be told
      (an emulator's are made up); sinks show it with the results (`Result.notice`).
    """

    name: str

    async def submit(
        self,
        endpoint: Endpoint,
        upload: Upload | None,
        params: Params,
        conversation_id: str | None,
    ) -> Submission:
        """Start a new conversation (conversation_id None) or append a part to one.

        File routes stream `upload` from disk with an explicit Content-Length; URL routes
        send `endpoint.url` and `upload` is None. Returns the conversation and job ids.
        """
        ...

    async def wait_for_job(
        self, job_id: str, *, expected_seconds: float | None = None
    ) -> JobStatus:
        """Wait until the job is terminal (completed or failed) and return its status.

        `expected_seconds` is the media's duration, for a polling schedule. A backend whose
        service answers synchronously returns COMPLETED at once.
        """
        ...

    async def fetch_insights(self, conversation_id: str, kinds: Iterable[str]) -> Insights:
        """The conversation and each requested kind of insight (model.INSIGHT_KINDS); kinds
        the service does not produce stay empty."""
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
        """Release connections (and stop an embedded emulator)."""
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
"""``factory(options, state_dir) -> Backend``: `options` is the backend's top-level section
(``name:``); raises ConfigError naming each bad key as ``name.key: ...``."""

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
            close = difflib.get_close_matches(str(name), list(self._factories), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{key_path}: unknown {self.kind} type {name!r} (known: {known}){hint}"
            )
        return self._factories[name][0]

    def names(self) -> list[str]:
        return sorted(self._factories)

    def origin(self, name: str) -> str:
        return self._factories[name][1]
