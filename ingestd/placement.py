"""Which recordings this node runs when several nodes share one database (issue 12).

The store's claims decide that one node at a time drives a recording; this decides which
recordings this node should try to claim at all, without writing anything: those of the
folders it watches whose mount is here, no probe or transcode while it cannot run ffmpeg or
ffprobe, nothing new while it drains (``ingestd drain``), and not a recording whose
transcoded copy lies in the work directory of another node that is alive (that node uploads
it; a node gone, the copy is made again here: `Pipeline._work_file_gone`). A dispatch round
asks about many recordings, so what it needs from the store (the claims, the nodes) is read
at most once per round (`new_round`), and only when a question needs it.

With SQLite there is one daemon and every recording is its own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import structlog

from ingestd import executables
from ingestd.config import Config, WatchConfig
from ingestd.errors import IngestdError
from ingestd.lifecycle import PREPARING
from ingestd.store import RecordingRow, Store

log = structlog.get_logger()

TOOLS = ("ffmpeg", "ffprobe")


def _runnable(tool: str) -> bool:
    """Whether `tool` is where ingestd finds it, and executable."""
    try:
        return os.access(executables.find(tool), os.X_OK)
    except IngestdError:
        return False


class Placement:
    """This node's view, refreshed each dispatch round.

    Args:
        missing_folders: the names of the watches whose folder is gone here now.
        draining: whether the operator drained this node now.
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        watches: Mapping[str, WatchConfig],
        *,
        missing_folders: Callable[[], Collection[str]],
        draining: Callable[[], bool],
    ) -> None:
        self.shared = config.state_path is None  # PostgreSQL: nodes may share it
        self.node = config.node_name
        self.lease_seconds = config.node_lease_seconds
        self.store = store
        self.watches = watches
        self._missing_folders = missing_folders
        self._draining = draining
        self.missing_tools: list[str] = []
        self._claims: Mapping[int, Mapping[str, Any]] | None = None
        self._live: set[str] | None = None

    def new_round(self) -> None:
        self._claims = self._live = None

    def check_tools(self) -> None:
        """Look whether ffmpeg and ffprobe can run (each heartbeat); say so when that
        changes. With several nodes a node without them claims no probe or transcode."""
        missing = [tool for tool in TOOLS if not _runnable(tool)]
        if missing == self.missing_tools:
            return
        self.missing_tools = missing
        if missing:
            log.error(
                "node_cannot_transcode",
                missing=missing,
                action="claiming no probe or transcode until they are back (other nodes take "
                "them); install them or set INGESTD_FFMPEG / INGESTD_FFPROBE",
            )
        else:
            log.info("node_can_transcode", action="claiming probes and transcodes again")

    def may_claim(self, row: RecordingRow) -> bool:
        """Whether to try to claim `row` (`row` read under this node's mounts)."""
        if not self.shared:
            return True
        if row.watch not in self.watches or row.watch in self._missing_folders():
            return False  # another node has that folder; it waits for one, visibly
        if row.state in PREPARING and self.missing_tools:
            return False
        if self._draining() and self.last_node(row.id) != self.node:
            return False  # finish what it holds, start nothing new
        if row.state in PREPARING or not row.upload_path or Path(row.upload_path) == row.path:
            return True
        if os.access(row.upload_path, os.R_OK):
            return True
        maker = self.last_node(row.id)
        return maker in (None, self.node) or maker not in self._live_nodes()

    def last_node(self, recording_id: int) -> str | None:
        """The node that drove the recording last (holding it or not), from this round's
        read of the claims."""
        if self._claims is None:
            self._claims = self.store.claims()
        claim = self._claims.get(recording_id)
        return None if claim is None else str(claim["node"])

    def _live_nodes(self) -> set[str]:
        if self._live is None:
            now = time.time()
            self._live = {
                n["name"]
                for n in self.store.nodes()
                if now - n["heartbeat_at"] < self.lease_seconds
            }
        return self._live
