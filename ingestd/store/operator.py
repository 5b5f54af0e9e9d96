"""What the operator features keep beside the recordings: the fate of each finished file
(``dispositions``) and the conversations to delete at the API (``api_deletions``), plus the
reads `ingestd show` needs.

A mixin of `ingestd.store.sqlite.SqliteStore` (it uses the store's connection and
transactions), kept in its own module so the recording tables and these stay apart. Every
state change is checked against its table in `ingestd.lifecycle` and committed before the
caller's next side effect.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from ingestd.lifecycle import (
    DELETION_TRANSITIONS,
    DISPOSAL_TRANSITIONS,
    PIPELINE,
    Deletion,
    Disposal,
    State,
    check_aftermath,
)


class OperatorTables:
    """Mixed into `SqliteStore`: ``self._conn`` and ``self._tx()`` are the store's."""

    _conn: Any
    _tx: Any

    def versions_of(self, watch: str, relpath: str) -> list[int]:
        """Ids of every recording of this path (each settled version of the file), oldest first."""
        rows = self._conn.execute(
            "SELECT id FROM recordings WHERE watch = ? AND relpath = ? ORDER BY id",
            (watch, relpath),
        )
        return [int(r[0]) for r in rows]

    def events_since(self, after_id: int, states: Iterable[State]) -> list[dict[str, Any]]:
        """Events newer than `after_id` into one of `states`, oldest first (with their id)."""
        wanted = [str(s) for s in states]
        marks = ",".join("?" * len(wanted))
        rows = self._conn.execute(
            "SELECT id, recording_id, at, old, new, facts FROM events"
            f" WHERE id > ? AND new IN ({marks}) ORDER BY id LIMIT 1000",
            [after_id, *wanted],
        )
        return [
            {
                "id": r[0],
                "recording_id": r[1],
                "at": r[2],
                "old": r[3],
                "new": r[4],
                "facts": json.loads(r[5] or "{}"),
            }
            for r in rows
        ]

    # -- conversations at the API ---------------------------------------------------------

    def request_deletion(
        self, conversation_id: str, reason: str, recording_id: int | None = None
    ) -> bool:
        """Ask for `conversation_id` to be deleted at the API; False if already asked."""
        now = time.time()
        with self._tx():
            cursor = self._conn.execute(
                "INSERT OR IGNORE INTO api_deletions (conversation_id, reason, recording_id,"
                " state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (conversation_id, reason, recording_id, str(Deletion.PENDING), now, now),
            )
        return cursor.rowcount > 0

    def deletion(self, conversation_id: str) -> dict[str, Any] | None:
        rows = self._conn.execute(
            "SELECT * FROM api_deletions WHERE conversation_id = ?", (conversation_id,)
        ).fetchall()
        return dict(rows[0]) if rows else None

    def deletions_due(self, now: float) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT * FROM api_deletions WHERE state = ? AND next_attempt_at <= ?"
            " ORDER BY created_at LIMIT 100",
            (str(Deletion.PENDING), now),
        )
        return [dict(r) for r in rows]

    def mark_deletion(self, conversation_id: str, new: Deletion, **columns: Any) -> None:
        """Move a deletion to `new` (checked against `DELETION_TRANSITIONS`)."""
        with self._tx():
            row = self._conn.execute(
                "SELECT state FROM api_deletions WHERE conversation_id = ?", (conversation_id,)
            ).fetchone()
            check_aftermath(DELETION_TRANSITIONS, Deletion(row[0]), new)
            sets = ", ".join(f"{c} = ?" for c in ("state", "updated_at", *columns))
            self._conn.execute(
                f"UPDATE api_deletions SET {sets} WHERE conversation_id = ?",
                [str(new), time.time(), *columns.values(), conversation_id],
            )

    def deletions_of(self, conversation_ids: Iterable[str]) -> list[dict[str, Any]]:
        ids = list(dict.fromkeys(c for c in conversation_ids if c))
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self._conn.execute(
            f"SELECT * FROM api_deletions WHERE conversation_id IN ({marks}) ORDER BY created_at",
            ids,
        )
        return [dict(r) for r in rows]

    def deletion_counts(self) -> dict[str, int]:
        rows = self._conn.execute("SELECT state, COUNT(*) FROM api_deletions GROUP BY state")
        return {state: count for state, count in rows}

    def part_states(self, conversation_id: str) -> list[State]:
        """The states of every recording that carries `conversation_id`."""
        rows = self._conn.execute(
            "SELECT state FROM recordings WHERE conversation_id = ?", (conversation_id,)
        )
        return [State(r[0]) for r in rows]

    def conversation_in_use(self, conversation_id: str) -> bool:
        """True while a recording carries it or a key maps to it (it may get more parts)."""
        found = self._conn.execute(
            "SELECT 1 FROM recordings WHERE conversation_id = ?"
            " UNION SELECT 1 FROM conversations WHERE conversation_id = ? LIMIT 1",
            (conversation_id, conversation_id),
        ).fetchone()
        return found is not None

    def unmap_conversation(self, conversation_id: str) -> list[str]:
        """Forget every key that maps to `conversation_id`; the keys it had."""
        with self._tx():
            keys = [
                r[0]
                for r in self._conn.execute(
                    "SELECT key FROM conversations WHERE conversation_id = ?", (conversation_id,)
                )
            ]
            self._conn.execute(
                "DELETE FROM conversations WHERE conversation_id = ?", (conversation_id,)
            )
        return keys

    def mapped_keys(self) -> list[dict[str, Any]]:
        """Each mapped key with its conversation, watch, newest recording time and whether a
        recording of it has still to be submitted (for ``close_after_minutes``)."""
        waiting = [str(s) for s in PIPELINE[: PIPELINE.index(State.SUBMITTING) + 1]]
        marks = ",".join("?" * len(waiting))
        rows = self._conn.execute(
            "SELECT c.key, c.conversation_id, MAX(r.watch), MAX(r.created_at),"
            f" SUM(CASE WHEN r.state IN ({marks}) THEN 1 ELSE 0 END)"
            " FROM conversations c JOIN recordings r ON r.conversation_key = c.key"
            " GROUP BY c.key, c.conversation_id",
            waiting,
        )
        return [
            {"key": k, "conversation_id": c, "watch": w, "latest": t, "unsubmitted": n}
            for k, c, w, t, n in rows
        ]

    def close_key(self, key: str, conversation_id: str | None = None) -> str | None:
        """Unmap `key` (only from `conversation_id` when given); the id it mapped to."""
        with self._tx():
            row = self._conn.execute(
                "SELECT conversation_id FROM conversations WHERE key = ?", (key,)
            ).fetchone()
            if row is None or (conversation_id is not None and row[0] != conversation_id):
                return None
            self._conn.execute("DELETE FROM conversations WHERE key = ?", (key,))
        return str(row[0])

    # -- the file after the recording -----------------------------------------------------

    def plan_disposal(self, recording_id: int, action: str, target: str | None) -> bool:
        """Record what will be done with a finished recording's file; False if already."""
        now = time.time()
        with self._tx():
            cursor = self._conn.execute(
                "INSERT OR IGNORE INTO dispositions (recording_id, action, state, target,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (recording_id, action, str(Disposal.PLANNED), target, now, now),
            )
        return cursor.rowcount > 0

    def disposal(self, recording_id: int) -> dict[str, Any] | None:
        rows = self._conn.execute(
            "SELECT * FROM dispositions WHERE recording_id = ?", (recording_id,)
        ).fetchall()
        return dict(rows[0]) if rows else None

    def disposals_due(self, now: float) -> list[dict[str, Any]]:
        """Dispositions to work on now: planned or half-moved, oldest first."""
        rows = self._conn.execute(
            "SELECT * FROM dispositions WHERE state IN (?, ?) AND next_attempt_at <= ?"
            " ORDER BY recording_id LIMIT 100",
            (str(Disposal.PLANNED), str(Disposal.COPIED), now),
        )
        return [dict(r) for r in rows]

    def mark_disposal(self, recording_id: int, new: Disposal, **columns: Any) -> None:
        """Move a disposition to `new` (checked against `DISPOSAL_TRANSITIONS`)."""
        with self._tx():
            row = self._conn.execute(
                "SELECT state FROM dispositions WHERE recording_id = ?", (recording_id,)
            ).fetchone()
            check_aftermath(DISPOSAL_TRANSITIONS, Disposal(row[0]), new)
            sets = ", ".join(f"{c} = ?" for c in ("state", "updated_at", *columns))
            self._conn.execute(
                f"UPDATE dispositions SET {sets} WHERE recording_id = ?",
                [str(new), time.time(), *columns.values(), recording_id],
            )

    def replan_failed_disposals(self) -> int:
        """Failed dispositions start over (`Disposal.FAILED` -> ``planned``): at each start."""
        with self._tx():
            cursor = self._conn.execute(
                "UPDATE dispositions SET state = ?, attempts = 0, next_attempt_at = 0,"
                " updated_at = ? WHERE state = ?",
                (str(Disposal.PLANNED), time.time(), str(Disposal.FAILED)),
            )
        return cursor.rowcount

    def disposal_counts(self) -> dict[str, dict[str, int]]:
        """action -> {state: count}, for status."""
        counts: dict[str, dict[str, int]] = {}
        for action, state, count in self._conn.execute(
            "SELECT action, state, COUNT(*) FROM dispositions GROUP BY action, state"
        ):
            counts.setdefault(action, {})[state] = count
        return counts
