"""What the operator features keep beside the recordings: reads for `ingestd show`.

A mixin of `ingestd.store.Store` (it uses the store's connection and transactions), kept in
its own module so the recording tables and these stay apart.
"""

from __future__ import annotations

from typing import Any


class OperatorTables:
    """Mixed into `Store`: ``self._conn`` and ``self._tx()`` are the store's."""

    _conn: Any

    def versions_of(self, watch: str, relpath: str) -> list[int]:
        """Ids of every recording of this path (each settled version of the file), oldest first."""
        rows = self._conn.execute(
            "SELECT id FROM recordings WHERE watch = ? AND relpath = ? ORDER BY id",
            (watch, relpath),
        )
        return [int(r[0]) for r in rows]
