"""The ``nodes`` table of the PostgreSQL store: each daemon's heartbeat under its
``node.name``, so a second live daemon with the same name is refused (issue 12), and the
operator's drain flag (``ingestd drain``); and the read side of the ``claims`` table.

A mixin of `ingestd.store.postgres.PostgresStore` (its connection and transactions). A name is
free when its row is gone (a clean stop), marked stopped (``pid`` NULL: a drained node that
stopped cleanly, kept for its flag), its heartbeat is older than ``stale_after``, or its
process is known dead (same host, pid gone: a SIGKILLed daemon restarted at once).

``draining`` belongs to the name, not to one run of it: an operator drained that node on
purpose, so a restart keeps it drained until ``ingestd undrain``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ingestd.errors import StoreError
from ingestd.store.base import NodeInfo


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


class PostgresNodes:
    """Mixed into `PostgresStore`: ``self._conn`` and ``self._tx()`` are the store's."""

    _conn: Any
    _tx: Any

    def join_node(self, node: NodeInfo, stale_after: float) -> None:
        now = time.time()
        with self._tx():
            row = self._conn.execute(
                "SELECT instance, host, pid, heartbeat_at FROM nodes WHERE name = ?",
                (node.name,),
            ).fetchone()
            if row is not None and row["instance"] != node.instance and row["pid"] is not None:
                age = now - row["heartbeat_at"]
                dead_here = row["host"] == node.host and _process_gone(row["pid"])
                if age < stale_after and not dead_here:
                    raise StoreError(
                        f"another ingestd runs as node {node.name!r} on this database (host "
                        f"{row['host']}, pid {row['pid']}, heartbeat {age:.0f} s ago); give this "
                        f"one another node.name, or stop that one (its name is free "
                        f"{stale_after:.0f} s after its last heartbeat)"
                    )
            self._conn.execute(
                "INSERT INTO nodes (name, instance, host, pid, started_at, heartbeat_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " instance = excluded.instance, host = excluded.host, pid = excluded.pid,"
                " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
                (node.name, node.instance, node.host, node.pid, now, now),
            )

    def node_heartbeat(self, node: NodeInfo) -> bool:
        with self._tx():
            cursor = self._conn.execute(
                "UPDATE nodes SET heartbeat_at = ? WHERE name = ? AND instance = ?",
                (time.time(), node.name, node.instance),
            )
        return cursor.rowcount > 0

    def leave_node(self, node: NodeInfo) -> None:
        with self._tx():
            self._conn.execute(  # a drained node stays listed, stopped, so it stays drained
                "UPDATE nodes SET pid = NULL WHERE name = ? AND instance = ? AND draining",
                (node.name, node.instance),
            )
            self._conn.execute(
                "DELETE FROM nodes WHERE name = ? AND instance = ? AND NOT draining",
                (node.name, node.instance),
            )

    def nodes(self) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT name, host, pid, started_at, heartbeat_at, draining FROM nodes ORDER BY name"
        )
        return [{**dict(r), "draining": bool(r["draining"])} for r in rows]

    def set_draining(self, name: str, draining: bool) -> bool:
        with self._tx():
            cursor = self._conn.execute(
                "UPDATE nodes SET draining = ? WHERE name = ?", (draining, name)
            )
            if not draining:  # a stopped node was kept only for its flag: forget it now
                self._conn.execute("DELETE FROM nodes WHERE name = ? AND pid IS NULL", (name,))
        return cursor.rowcount > 0

    def claims(self) -> dict[int, dict[str, Any]]:
        rows = self._conn.execute(  # the lease runs on the server's clock (store/claims.py)
            "SELECT recording_id, node, epoch, expires_at,"
            " expires_at - EXTRACT(EPOCH FROM clock_timestamp())::float8 AS expires_in"
            " FROM claims WHERE recording_id > 0 ORDER BY recording_id"  # not the aftermath's
        )
        return {
            int(r["recording_id"]): {
                "node": r["node"],
                "epoch": int(r["epoch"]),
                "expires_at": float(r["expires_at"]),
                "expires_in_seconds": round(float(r["expires_in"]), 1),
            }
            for r in rows
        }
