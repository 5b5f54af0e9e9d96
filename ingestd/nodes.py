"""This daemon as a node of its state store (``node: {name: NAME}``, default: the host name).

On PostgreSQL several daemons may share one database (issue 12); each records itself in the
store's ``nodes`` table and heartbeats there, so a second live daemon with the same name is
refused at start with one line naming the other. On SQLite the file lock already admits one
daemon, and the store records nothing. Leases and claims build on this.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time

import structlog

from ingestd.errors import StoreError
from ingestd.store import Store
from ingestd.store.base import NodeInfo

log = structlog.get_logger()

HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 30.0
"""A node whose heartbeat is older than this is gone: its name is free."""


def default_node_name() -> str:
    return socket.gethostname() or "ingestd"


class Membership:
    """Join at start, heartbeat while running, leave at a clean stop."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.node = NodeInfo(
            name=name, instance=secrets.token_hex(8), host=socket.gethostname(), pid=os.getpid()
        )

    def join(self) -> None:
        """Take this node's name; and, until claims and leases land (issue 12), refuse to
        run beside another live node: two daemons would drive the same recordings."""
        self.store.join_node(self.node, STALE_AFTER_SECONDS)
        now = time.time()
        others = [
            n
            for n in self.store.nodes()
            if n["name"] != self.node.name and now - n["heartbeat_at"] < STALE_AFTER_SECONDS
        ]
        if others:
            self.leave()
            other = others[0]
            raise StoreError(
                f"node {other['name']!r} (host {other['host']}, pid {other['pid']}) already "
                f"runs on this state database; several nodes on one database need the claims "
                f"still to come (issue 12): run one daemon per database for now"
            )

    async def run(self) -> None:
        taken = False
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                alive = self.store.node_heartbeat(self.node)
            except StoreError as exc:
                log.warning("node_heartbeat_failed", node=self.node.name, error=str(exc))
                continue
            if not alive and not taken:
                log.error(
                    "node_name_taken",
                    node=self.node.name,
                    action="another daemon took this node's name while it was silent; "
                    "give one of them another node.name",
                )
            taken = not alive

    def leave(self) -> None:
        try:
            self.store.leave_node(self.node)
        except StoreError as exc:
            log.warning("node_leave_failed", node=self.node.name, error=str(exc))
