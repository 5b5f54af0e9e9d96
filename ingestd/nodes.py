"""This daemon as a node of its state store (``node: {name: NAME}``, default: the host name).

On PostgreSQL several daemons may share one database (issue 12); each records itself in the
store's ``nodes`` table and heartbeats there, so a second live daemon with the same name is
refused at start with one line naming the other. On SQLite the file lock already admits one
daemon, and the store records nothing. The daemon renews its claims (`Store.renew_claims`)
at the same pace.

`Membership.draining` is the operator's ``ingestd drain``/``undrain`` flag, read from the
store at join and at every heartbeat: while it is set the dispatcher claims nothing new.
`node_rows` and `holders` are what ``ingestd status``, the dashboard and the metrics show
of the nodes and their claims.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from ingestd.errors import StoreError
from ingestd.store import Store
from ingestd.store.base import NodeInfo
from ingestd.store.claims import RELEASED

log = structlog.get_logger()

HEARTBEAT_SECONDS = 5.0
LEASE_SECONDS = 30.0
"""Defaults of ``node.heartbeat_seconds`` and ``node.lease_seconds``. A node silent for a
lease is gone: its name is free and its claims are taken over."""


def default_node_name() -> str:
    return socket.gethostname() or "ingestd"


class Membership:
    """Join at start, heartbeat while running, leave at a clean stop."""

    def __init__(
        self,
        store: Store,
        name: str,
        *,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.store = store
        self.heartbeat_seconds = heartbeat_seconds
        self.lease_seconds = lease_seconds
        self.node = NodeInfo(
            name=name, instance=secrets.token_hex(8), host=socket.gethostname(), pid=os.getpid()
        )
        self.draining = False
        """Claim nothing new: the operator drained this node (``ingestd drain``), now or
        before this start. Refreshed from the store at every heartbeat."""

    def join(self) -> None:
        """Take this node's name (refused while another live daemon has it)."""
        self.store.join_node(self.node, self.lease_seconds)
        self._note_draining(self.store.nodes())

    async def run(self) -> None:
        taken = False
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
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
            self.refresh_draining()

    def refresh_draining(self) -> None:
        """Read this node's drain flag from the store (each heartbeat); a store that cannot
        be read leaves the flag as it was."""
        try:
            known = self.store.nodes()
        except StoreError as exc:
            log.warning("node_drain_flag_unread", node=self.node.name, error=str(exc))
            return
        self._note_draining(known)

    def _note_draining(self, known: Sequence[Mapping[str, Any]]) -> None:
        row = next((n for n in known if n["name"] == self.node.name), None)
        draining = bool(row and row["draining"])
        if draining == self.draining:
            return
        self.draining = draining
        if draining:
            log.warning(
                "node_draining",
                node=self.node.name,
                action="finishing the recordings it holds and claiming nothing new, also "
                f"after a restart, until `ingestd undrain {self.node.name}`",
            )
        else:
            log.info("node_undrained", node=self.node.name, action="claiming new work again")

    def leave(self) -> None:
        try:
            self.store.leave_node(self.node)
        except StoreError as exc:
            log.warning("node_leave_failed", node=self.node.name, error=str(exc))


def claim_state(claim: Mapping[str, Any]) -> str:
    """``held`` (its node drives the recording now), ``released`` (its node let go: the
    recording waits, e.g. for a job slot or a retry) or ``expired`` (its node's lease ran out:
    the next node to claim the recording takes it over)."""
    if claim["expires_at"] == RELEASED:
        return "released"
    return "held" if claim["expires_in_seconds"] > 0 else "expired"


def node_rows(
    nodes: Sequence[Mapping[str, Any]],
    claims: Mapping[int, Mapping[str, Any]],
    now: float,
    stale_after: float = LEASE_SECONDS,
) -> list[dict[str, Any]]:
    """Each known node with its heartbeat age, whether it is ``live``, ``stale`` (silent
    longer than `stale_after`, ``node.lease_seconds``: dead or cut off; other nodes take its
    claims over) or ``stopped`` (stopped cleanly while drained), and how many recordings it
    holds a claim on now."""
    held: dict[str, int] = {}
    for claim in claims.values():
        if claim_state(claim) == "held":
            held[claim["node"]] = held.get(claim["node"], 0) + 1
    rows = []
    for node in nodes:
        age = max(0.0, now - node["heartbeat_at"])
        state = "live" if age < stale_after else "stale"
        if node["pid"] is None:
            state = "stopped"
        rows.append(
            {
                "name": node["name"],
                "host": node["host"],
                "pid": node["pid"],
                "started_at": node["started_at"],
                "heartbeat_at": node["heartbeat_at"],
                "heartbeat_age_seconds": round(age, 1),
                "state": state,
                "draining": bool(node["draining"]),
                "claims": held.get(node["name"], 0),
            }
        )
    return rows


def holders(claims: Mapping[int, Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """recording id -> {node, epoch, expires_at, expires_in_seconds, state}: who drives each
    claimed recording (`claim_state`)."""
    return {rid: {**c, "state": claim_state(c)} for rid, c in sorted(claims.items())}
