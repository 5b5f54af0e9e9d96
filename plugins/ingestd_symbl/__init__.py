"""ingestd_symbl: the Symbl.ai Async API backends.

Registers two `ingestd.registry.Backend` types through ``ingestd_register_backends``, exactly
as a third-party plugin would (entry point ``symbl`` in the ``ingestd`` group):

- ``symbl`` (the default ``backend:``): `SymblClient`, an httpx client for the real API
  (``symbl.base_url: https://...``) with token caching, streamed uploads, bounded retries
  and adaptive job polling; ``symbl.base_url: sandbox`` starts the embedded emulator;
- ``sandbox`` (``backend: sandbox``): the same client pointed at the embedded emulator.

Options are the top-level section named like the backend (``symbl:``, ``sandbox:``),
validated by `options.from_mapping`. Besides the required `Backend` methods the client
implements its optional parts: ``max_concurrent_jobs``, ``check``, and the lost-answer
reconciliation of `reconcile` (``prepare_upload``, ``find_upload``, ``wait_for_messages``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ingestd import hookimpl
from ingestd_symbl.client import SymblClient
from ingestd_symbl.options import SymblOptions, from_mapping
from ingestd_symbl.sandbox_backend import make_sandbox_backend, start_sandbox_backend

__all__ = [
    "SymblClient",
    "SymblOptions",
    "from_mapping",
    "ingestd_register_backends",
    "make_sandbox_backend",
    "make_symbl_backend",
]


def make_symbl_backend(options: Mapping[str, Any], state_dir: Path) -> SymblClient:
    """`BackendFactory` for an API host; ``base_url: sandbox`` starts the emulator instead."""
    validated = from_mapping(options)
    if validated.is_sandbox:
        return start_sandbox_backend(validated)
    return SymblClient(validated)


@hookimpl
def ingestd_register_backends(register: Callable[..., None]) -> None:
    """Register the "symbl" and "sandbox" backend types."""
    register("symbl", make_symbl_backend)
    register("sandbox", make_sandbox_backend)
