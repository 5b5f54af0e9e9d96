"""Which conversations ``ingestd redeliver --all`` delivers again: every conversation whose
latest part is done (a later part still on its way delivers by itself when it is done)."""

from __future__ import annotations

from ingestd.lifecycle import State
from ingestd.store import RecordingRow, Store


def done_conversations(store: Store, since: float | None = None) -> list[RecordingRow]:
    """The latest part of each conversation that is done, oldest first; with `since`, only
    those that became done at or after that UNIX time."""
    seen: set[str] = set()
    latest_parts: list[RecordingRow] = []
    for row in store.latest([State.DONE], limit=10**9):
        cid = row.conversation_id
        if cid is None or cid in seen:
            continue
        seen.add(cid)
        parts = store.parts_of(cid)
        latest = parts[-1] if parts else row
        if latest.state is not State.DONE or latest.insights_path is None:
            continue
        if since is not None and latest.updated_at < since:
            continue
        latest_parts.append(latest)
    return sorted(latest_parts, key=lambda r: r.updated_at)
