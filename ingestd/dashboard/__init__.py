"""The web dashboard and JSON status API, served by the daemon itself (``dashboard.listen``).

Pages: overview ``/``, ``/queue``, history ``/recordings``, a recording's page, a
conversation's page. JSON: ``/api/status``, ``/api/queue``, ``/api/recordings[?state=…]``,
``/api/recordings/ID``; ``POST /api/recordings/ID/retry`` and ``/redeliver`` with the token.

It reads the durable store (never a second bookkeeping in memory), so it tells the truth
after a restart. See `server` for the threads, `reads` for what is shown, `auth` for who
may act, `actions` for how retry and redeliver reuse the CLI's commands.
"""

from __future__ import annotations

import asyncio
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from ingestd import progress
from ingestd.backends import job_limit
from ingestd.dashboard.actions import Actions
from ingestd.dashboard.auth import Guard
from ingestd.dashboard.reads import Live, WatchHealth
from ingestd.dashboard.server import DashboardServer
from ingestd.metrics import API_REQUESTS, RETRIES, counter_total

if TYPE_CHECKING:
    from ingestd.daemon import Daemon

__all__ = ["DashboardServer", "Live", "start_dashboard"]


def _version() -> str:
    try:
        return metadata.version("ingestd")
    except metadata.PackageNotFoundError:
        return "unknown"


def _counters() -> tuple[float, float]:
    return counter_total(API_REQUESTS, status="429"), counter_total(RETRIES)


def start_dashboard(daemon: Daemon, loop: asyncio.AbstractEventLoop) -> DashboardServer:
    """Start the dashboard for a running daemon; its `Live` view reads the daemon's
    attributes from the server's threads (plain reads and copies, nothing awaited)."""
    config = daemon.config
    assert config.dashboard is not None
    started_at = time.time()
    version = _version()

    def live() -> Live:
        watchers = list(daemon.watchers)
        return Live(
            started_at=started_at,
            version=version,
            job_limit=job_limit(daemon.backend),
            watches=tuple(
                WatchHealth(
                    name=w.watch.name,
                    path=str(w.watch.path),
                    mode=w.mode,
                    alive=w.alive(),
                    folder_exists=Path(w.watch.path).is_dir(),
                )
                for w in watchers
            ),
            sinks=tuple(daemon.sinks),
            running=frozenset(list(daemon._active)),
            settling=len(daemon.settler),
            uploads=progress.uploads(),
            transcodes=progress.transcodes(),
            node=config.node_name,
            lease_seconds=config.node_lease_seconds,
        )

    def wake() -> None:
        loop.call_soon_threadsafe(daemon._kick.set)

    server = DashboardServer(
        config.dashboard.listen,
        daemon.store.reader,
        live=live,
        actions=Actions(config.path, wake),
        guard=Guard(config.dashboard.token, config.dashboard.allowed_hosts),
        counters=_counters,
    )
    server.start()
    return server
