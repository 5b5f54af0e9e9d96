"""The Conversation API as `Insights` wants it: one route and one answer shape per kind.

symbl-api.md §9: most kinds answer ``{"<key>": [...]}``; analytics is an object kept whole;
``/trackers-detected`` is a bare JSON array; ``/summary`` is 404 until processing completes
(read as "no summary yet"). An answer of another shape is `Retryable`: a proxy page or a
half-deployed API is transient far more often than the contract changes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ingestd import Retryable

KINDS: dict[str, tuple[str, dict[str, str], str | None]] = {
    # kind: (path under the conversation, query, key of the list in the answer)
    "messages": ("/messages", {"verbose": "true", "sentiment": "true"}, "messages"),
    "topics": ("/topics", {"sentiment": "true", "parentRefs": "true"}, "topics"),
    "questions": ("/questions", {}, "questions"),
    "action_items": ("/action-items", {}, "actionItems"),
    "follow_ups": ("/follow-ups", {}, "followUps"),
    "members": ("/members", {}, "members"),
    "summary": ("/summary", {}, "summary"),
    "analytics": ("/analytics", {}, None),  # the whole object
    "entities": ("/entities", {}, "entities"),
    "trackers": ("/trackers-detected", {}, None),  # a bare JSON array
}
"""Every kind of `ingestd.model.INSIGHT_KINDS`, and where the API keeps it."""

NOT_READY = {"summary": 404}
"""Statuses that mean "nothing yet" for a kind rather than an error."""


def insight_value(kind: str, data: Any, path: str) -> Any:
    """The value `Insights` stores for `kind`, from the decoded answer (None = not ready)."""
    if data is None and kind in NOT_READY:
        return []
    if kind == "analytics":
        if not isinstance(data, dict):
            raise Retryable(f"GET {path}: expected an object")
        return data
    key = KINDS[kind][2]
    value = data
    if key is not None:
        value = data.get(key, []) if isinstance(data, dict) else None
    if not isinstance(value, list):
        raise Retryable(f"GET {path}: expected a list{f' under {key!r}' if key else ''}")
    return value


def timestamp(value: Any) -> float | None:
    """UNIX seconds from an API time like ``2020-07-10T11:16:21.024Z``; None if unreadable."""
    if not isinstance(value, str):
        return None
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()
