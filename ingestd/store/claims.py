"""Claims, leases and fencing tokens on the PostgreSQL store: several nodes, one recording
driven by one node at a time (issue 12; DESIGN.md "Several nodes").

A node claims a recording before it runs the recording's stages (`claim`) and lets go when
they wait or end (`release`). The ``claims`` row says who drives it, until when (the lease,
renewed by the node's `renew_claims` every heartbeat) and with which epoch. A claim whose
lease ran out (its node died, was paused or lost the database) is taken over by the next
node that claims it, with the epoch bumped: the fencing token. Every write this store makes
for a recording it claimed checks its epoch in the same transaction (`_fenced`), so the node
that lost the lease cannot overwrite what the new holder did: its write raises `LeaseLost`
and changes nothing.

Times are the database server's clock (``clock_timestamp()``), never a node's: nodes whose
clocks disagree still agree on when a lease ran out. A server restart aged every lease at
once while no node could renew, so no claim is taken over within a lease of the server's
start: the nodes that held them come back first (an outage without a restart, a network cut,
still moves work to whichever node comes back first; nothing is lost or doubled either way).

A released claim keeps its row (with ``expires_at = 0``) so the next node knows who drove
the recording last; rows of finished recordings are removed as nodes renew their leases.
"""

from __future__ import annotations

from typing import Any

from ingestd.errors import LeaseLost
from ingestd.lifecycle import PIPELINE, State
from ingestd.store.base import Claim, NodeInfo

_NOW = (
    "SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8 AS now,"
    " EXTRACT(EPOCH FROM pg_postmaster_start_time())::float8 AS started"
)
RELEASED = 0.0
"""``expires_at`` of a claim its node let go of: free, and not a failover when taken."""


class PostgresClaims:
    """Mixed into `PostgresStore`: ``self._conn`` and ``self._tx()`` are the store's."""

    _conn: Any
    _tx: Any

    def join_node(self, node: NodeInfo, stale_after: float) -> None:
        self.__dict__["_node_name"] = node.name
        super().join_node(node, stale_after)  # type: ignore[misc]

    def _unclaimed(self) -> tuple[str, list[Any]]:
        """`runnable` leaves out what another node drives now (a live lease): no claim to
        try. This node's own claims stay in: those of an earlier run of it are taken over."""
        return (
            " AND NOT EXISTS (SELECT 1 FROM claims WHERE claims.recording_id = recordings.id"
            " AND claims.expires_at > EXTRACT(EPOCH FROM clock_timestamp())"
            " AND claims.node <> ?)",
            [self.__dict__.get("_node_name", "")],
        )

    @property
    def _fences(self) -> dict[int, tuple[str, int]]:
        """recording id -> (node, epoch) of each claim this store object holds."""
        fences = self.__dict__.get("_claim_fences")
        if fences is None:
            fences = self.__dict__["_claim_fences"] = {}
        return fences

    def _now(self) -> float:
        return float(self._conn.execute(_NOW).fetchone()[0])

    def claim(self, recording_id: int, node: str, lease_seconds: float) -> Claim | None:
        with self._tx():
            clock_and_claim = self._conn.execute(  # one round trip: the clock and the row
                f"SELECT clock.*, c.node, c.epoch, c.expires_at FROM ({_NOW}) AS clock"
                " LEFT JOIN claims c ON c.recording_id = ?",
                (recording_id,),
            ).fetchone()
            now, server_started = float(clock_and_claim[0]), float(clock_and_claim[1])
            row = clock_and_claim if clock_and_claim["node"] is not None else None
            held = self._fences.get(recording_id)
            adopted_from = previous = None
            before = None if row is None else (row["node"], row["expires_at"])
            if row is None:
                epoch = 1
                self._conn.defer(  # sent with the COMMIT
                    "INSERT INTO claims (recording_id, node, epoch, expires_at)"
                    " VALUES (?, ?, ?, ?)",
                    (recording_id, node, epoch, now + lease_seconds),
                )
            else:
                previous = row["node"]
                mine = held == (row["node"], row["epoch"])
                # A live lease of another node stands; this node's own name with another
                # epoch is an earlier run of it (a new run is admitted only once that one is
                # dead or silent for a lease: `join_node`), so its work is taken over now.
                # A restart of the server aged every lease at once while no node could
                # renew: each holder gets a whole lease after it to come back first.
                lives_until = row["expires_at"]
                if lives_until != RELEASED:
                    lives_until = max(lives_until, server_started + lease_seconds)
                if not mine and row["node"] != node and lives_until > now:
                    self._fences.pop(recording_id, None)  # one this store lost, if any
                    return None
                epoch = row["epoch"] if mine else row["epoch"] + 1
                if not mine and row["expires_at"] != RELEASED:
                    adopted_from = row["node"]
                self._conn.defer(  # sent with the COMMIT
                    "UPDATE claims SET node = ?, epoch = ?, expires_at = ? WHERE recording_id = ?",
                    (node, epoch, now + lease_seconds, recording_id),
                )
        self._fences[recording_id] = (node, epoch)
        self._before[recording_id] = before
        return Claim(
            recording_id=recording_id,
            node=node,
            epoch=epoch,
            adopted_from=adopted_from,
            previous_node=previous,
        )

    @property
    def _before(self) -> dict[int, tuple[str, float] | None]:
        """recording id -> (node, expires_at) of its claim row before this store claimed it."""
        before = self.__dict__.get("_claims_before")
        if before is None:
            before = self.__dict__["_claims_before"] = {}
        return before

    def unclaim(self, recording_id: int) -> None:
        fence = self._fences.pop(recording_id, None)
        before = self._before.pop(recording_id, None)
        if fence is None:
            return
        with self._tx():
            if before is None:
                self._conn.execute(
                    "DELETE FROM claims WHERE recording_id = ? AND node = ? AND epoch = ?",
                    (recording_id, *fence),
                )
            else:
                self._conn.execute(
                    "UPDATE claims SET node = ?, expires_at = ?"
                    " WHERE recording_id = ? AND node = ? AND epoch = ?",
                    (*before, recording_id, *fence),
                )

    def release(self, recording_id: int) -> None:
        """Let go; a claim taken over meanwhile is the new holder's and stays as it is."""
        fence = self._fences.pop(recording_id, None)
        self._before.pop(recording_id, None)
        if fence is None:
            return
        # One statement on its own (autocommit), without the writers' lock: it touches only
        # this claim's row, fenced by its epoch, and running it twice changes nothing.
        self._conn.execute(
            "UPDATE claims SET expires_at = ? WHERE recording_id = ? AND node = ? AND epoch = ?",
            (RELEASED, recording_id, *fence),
        )

    def renew_claims(self, node: str, lease_seconds: float) -> list[int]:
        lost = []
        with self._tx():
            now = self._now()
            for recording_id, (holder, epoch) in list(self._fences.items()):
                cursor = self._conn.execute(
                    "UPDATE claims SET expires_at = ?"
                    " WHERE recording_id = ? AND node = ? AND epoch = ?",
                    (now + lease_seconds, recording_id, holder, epoch),
                )
                if cursor.rowcount == 0:  # kept: its writes stay refused until released
                    lost.append(recording_id)
            marks = ",".join("?" * len(PIPELINE))
            self._conn.execute(  # finished recordings need no record of who drove them
                "DELETE FROM claims USING recordings WHERE recordings.id = claims.recording_id"
                f" AND claims.expires_at = ? AND recordings.state NOT IN ({marks})",
                (RELEASED, *(str(s) for s in PIPELINE)),
            )
        return lost

    def _fenced_state(self, recording_id: int) -> State:
        """`_fenced` and the recording's state, read in one round trip."""
        fence = self._fences.get(recording_id)
        if fence is None:  # not claimed by this store: nothing to check
            return super()._fenced_state(recording_id)  # type: ignore[misc, no-any-return]
        row = self._conn.execute(
            "SELECT r.state, c.node, c.epoch FROM recordings r"
            " LEFT JOIN claims c ON c.recording_id = r.id WHERE r.id = ?",
            (recording_id,),
        ).fetchone()
        if row is None:
            raise KeyError(recording_id)
        self._refuse_unless_current(recording_id, fence, row)
        return State(row[0])

    def _fenced(self, recording_id: int) -> None:
        """Inside a write transaction: `LeaseLost` unless this store's claim on the
        recording (if it holds one) is still the current one."""
        fence = self._fences.get(recording_id)
        if fence is None:
            return
        row = self._conn.execute(
            "SELECT node, epoch FROM claims WHERE recording_id = ?", (recording_id,)
        ).fetchone()
        self._refuse_unless_current(recording_id, fence, row)

    @staticmethod
    def _refuse_unless_current(recording_id: int, fence: tuple[str, int], row: Any) -> None:
        """`LeaseLost` unless `row` (its ``node`` and ``epoch``; None: no claim row) is the
        claim this store holds."""
        node = None if row is None else row["node"]
        if node is None or (node, row["epoch"]) != fence:
            holder = f"node {node!r}" if node is not None else "nobody"
            raise LeaseLost(
                recording_id,
                f"recording {recording_id}: this node's lease ran out and {holder} took it "
                f"over (epoch {row['epoch'] if node is not None else '?'}, ours {fence[1]}); "
                f"the write was refused and the work dropped",
            )
