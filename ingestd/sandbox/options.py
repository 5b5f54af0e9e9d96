"""The sandbox's knobs, frozen so one Sandbox never changes behaviour under a running test.

The control API can swap the whole value for a modified copy (`POST /_sandbox/options`), which
is how a test drives an emulator that lives inside a daemon subprocess.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SandboxOptions:
    """How the emulated Symbl account behaves. Times are seconds of wall clock."""

    app_id: str = "sandbox"
    """The one account's appId accepted by ``POST /oauth2/token:generate``."""
    app_secret: str = "sandbox"
    token_lifetime_seconds: float = 86400
    """``expiresIn`` of a fresh token (the real default is 24 h)."""
    job_seconds: float = 2.0
    """How long a job stays ``in_progress``."""
    schedule_seconds: float = 0.2
    """How long an unblocked job stays ``scheduled`` before it starts."""
    concurrency_limit: int = 5
    """Non-terminal jobs per account before submissions get 429 (free plan: 5)."""
    missing_content_length_status: int = 411
    """Status for a file upload without Content-Length (the real one is UNKNOWN)."""
    max_body_bytes: int | None = None
    """Uploads declaring more bytes get 413; None = no cap (the real cap is UNKNOWN)."""
    webhook_retries: int = 5
    """Resends after a first webhook attempt that did not get a 200."""
    webhook_retry_seconds: float = 1.0
    webhook_timeout_seconds: float = 5.0
    control_api: bool = True
    """Serve ``/_sandbox/*`` (introspection, fault injection) to loopback clients."""
    seed: int | None = None
    """Seed for conversation and job ids; None = random ids, different on every run."""

    def __post_init__(self) -> None:
        for name in (
            "token_lifetime_seconds",
            "job_seconds",
            "schedule_seconds",
            "webhook_retry_seconds",
            "webhook_timeout_seconds",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"SandboxOptions.{name} must be a number >= 0, got {value!r}")
        if self.token_lifetime_seconds <= 0:
            raise ValueError("SandboxOptions.token_lifetime_seconds must be > 0")
        for name in ("concurrency_limit", "webhook_retries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"SandboxOptions.{name} must be an integer >= 0, got {value!r}")
        status = self.missing_content_length_status
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError("SandboxOptions.missing_content_length_status must be a 4xx/5xx")
        cap = self.max_body_bytes
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError("SandboxOptions.max_body_bytes must be None or an integer >= 1")

    def replace(self, changes: Mapping[str, Any]) -> SandboxOptions:
        """A validated copy with `changes` applied; unknown names raise ValueError."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown sandbox option(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **dict(changes))

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON (the secret included: it is a sandbox credential)."""
        return dataclasses.asdict(self)
