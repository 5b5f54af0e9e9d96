"""Crash points: named places where a test can have the process killed (SIGKILL) on purpose.

A step that must survive a crash between two of its actions says so with
``crash_point("name")``; the reliability tests start the daemon with
``INGESTD_CRASH_AT=name`` and check what the next start makes of the state left behind. Unset
(always, outside tests) it costs one comparison.
"""

from __future__ import annotations

import os
import signal

ENVIRONMENT = "INGESTD_CRASH_AT"
_ARMED = os.environ.get(ENVIRONMENT) or None


def crash_point(name: str) -> None:
    """Kill this process at once, as a power cut or OOM kill would, if `name` is armed."""
    if name == _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
