"""The sd_notify protocol: READY, STATUS, WATCHDOG and STOPPING datagrams to systemd.

A no-op when NOTIFY_SOCKET is unset (not started by systemd), so the daemon needs no
special mode for development or tests.
"""

from __future__ import annotations

import os
import socket


def notify_socket() -> str | None:
    """$NOTIFY_SOCKET: where systemd listens, None when not started by systemd."""
    return os.environ.get("NOTIFY_SOCKET") or None


def notify(*lines: str) -> bool:
    """Send ``KEY=VALUE`` lines to $NOTIFY_SOCKET; False when there is none."""
    address = notify_socket()
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(address)
            sock.sendall("\n".join(lines).encode())
        except OSError:
            return False
    return True


def watchdog_interval_seconds() -> float | None:
    """Half of systemd's WatchdogSec, when the watchdog applies to this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000 / 2
