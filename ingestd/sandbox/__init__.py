"""A faithful local emulator of the Symbl.ai Async API (symbl-api.md §12).

``ingestd sandbox --port N`` serves it on its own; ``symbl.base_url: sandbox`` embeds it in
the daemon; the test suite runs against it. See `Sandbox` and `SandboxOptions`.
"""

from __future__ import annotations

from ingestd.sandbox.app import Sandbox
from ingestd.sandbox.options import SandboxOptions

__all__ = ["Sandbox", "SandboxOptions"]
