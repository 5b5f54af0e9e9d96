"""From a `Result` to the rows of every table: pure functions, no database in sight.

Values are taken from the API's objects (symbl-api.md §9) without trusting their types:
times that do not parse and numbers that are not numbers become NULL (the item's ``raw``
column still holds what was sent). Two rules keep every dialect storing the same thing:

- Text is cleaned once, here: U+0000 is removed (PostgreSQL refuses it in text and JSONB)
  and a lone UTF-16 surrogate becomes U+FFFD (no database encoding can hold it).
- An item without an id gets ``#<position>``; of two items sharing an id, the last wins.

The digest of all rows tells a redelivery of identical content, which then writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ingestd import Result
from ingestd_database.schema import ITEM_KINDS

Row = dict[str, Any]

_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass(frozen=True)
class Rows:
    """Everything one delivery writes.

    Attributes:
        conversation: the conversations row, without ``created_at``/``updated_at``.
        items: insight kind -> rows, each with ``conversation_id``, ``id`` and ``position``.
        digest: SHA-256 of all of the above; equal digests mean identical content.
    """

    conversation: Row
    parts: list[Row]
    items: dict[str, list[Row]]
    digest: str


def build_rows(result: Result) -> Rows:
    """The rows for `result`, cleaned (see the module docstring)."""
    data = clean(result.insights.to_dict())
    cid = data["conversation_id"]
    conv = data["conversation"] if isinstance(data["conversation"], dict) else {}
    conversation = {
        "id": cid,
        "name": clean(result.name) or as_text(conv.get("name")),
        "start_time": parse_time(conv.get("startTime")),
        "end_time": parse_time(conv.get("endTime")),
        "parts": len(result.parts),
        "raw": conv,
        "summary": data["summary"],
        "analytics": data["analytics"],
        "entities": data["entities"],
        "trackers": data["trackers"],
    }
    parts = [
        {
            "conversation_id": cid,
            "position": position,
            "recording_id": part.id,
            "watch": clean(part.watch.name),
            "relpath": clean(part.relpath),
            "sha256": part.sha256,
            "size_bytes": part.size_bytes,
            "mtime": datetime.fromtimestamp(part.mtime, UTC),
        }
        for position, part in enumerate(result.parts)
    ]
    items = {kind: item_rows(cid, kind, data[kind]) for kind in ITEM_KINDS}
    canonical = json.dumps(
        [conversation, parts, items], sort_keys=True, default=str, ensure_ascii=False
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return Rows(conversation, parts, items, digest)


def item_rows(cid: str, kind: str, items: list[Any]) -> list[Row]:
    """One row per distinct item id, keyed and ordered; `kind` picks the columns."""
    columns = COLUMNS[kind]
    rows: dict[str, Row] = {}
    for position, item in enumerate(items):
        obj = item if isinstance(item, dict) else {}
        key = obj.get("id")
        item_id = str(key) if isinstance(key, str | int) and str(key) else f"#{position}"
        rows[item_id] = {
            "conversation_id": cid,
            "id": item_id,
            "position": position,
            **columns(obj),
            "raw": item,
        }
    return list(rows.values())


def clean(value: Any) -> Any:
    """`value` with every string (keys too) made storable everywhere; see module docstring."""
    if isinstance(value, str):
        value = value.replace("\x00", "")
        if _SURROGATE.search(value):
            # Pairs split into two code points are rejoined; lone halves become U+FFFD.
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, Mapping):
        return {clean(str(k)): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON and MySQL have no NaN or infinity
    return value


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time as aware UTC (naive means UTC); None when absent or unparseable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def number(value: Any) -> float | None:
    """A finite number, from a JSON number or a numeric string; None otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        result = float(value)
    except ValueError:
        return None
    return result if math.isfinite(result) else None


def as_text(value: Any) -> str | None:
    """Strings as they are, None as NULL, anything else as its JSON text."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def person(value: Any, role: str) -> Row:
    """``{id, name, email}`` flattened to ``<role>_id`` etc.; Symbl's ``userId`` is the
    email address where ``email`` is missing (questions, action items)."""
    obj = value if isinstance(value, dict) else {}
    return {
        f"{role}_id": as_text(obj.get("id")),
        f"{role}_name": as_text(obj.get("name")),
        f"{role}_email": as_text(obj.get("email") or obj.get("userId")),
    }


def sentiment(value: Any) -> Row:
    """``{"polarity": {"score"}, "suggested"}`` as a score and a label."""
    obj = value if isinstance(value, dict) else {}
    polarity = obj.get("polarity")
    score = polarity.get("score") if isinstance(polarity, dict) else None
    return {"sentiment_score": number(score), "sentiment": as_text(obj.get("suggested"))}


def _message(m: dict[str, Any]) -> Row:
    return {
        "text": as_text(m.get("text")),
        **person(m.get("from"), "speaker"),
        "start_time": parse_time(m.get("startTime")),
        "end_time": parse_time(m.get("endTime")),
        "time_offset": number(m.get("timeOffset")),
        "duration": number(m.get("duration")),
        **sentiment(m.get("sentiment")),
        "phrases": m.get("phrases"),
    }


def _topic(t: dict[str, Any]) -> Row:
    return {
        "text": as_text(t.get("text")),
        "score": number(t.get("score")),
        **sentiment(t.get("sentiment")),
        "message_ids": t.get("messageIds"),
        "parent_refs": t.get("parentRefs"),
    }


def _question(q: dict[str, Any]) -> Row:
    return {
        "text": as_text(q.get("text")),
        "score": number(q.get("score")),
        **person(q.get("from"), "speaker"),
        "message_ids": q.get("messageIds"),
    }


def _task(a: dict[str, Any]) -> Row:
    """Action items and follow-ups."""
    definitive = a.get("definitive")
    return {
        "text": as_text(a.get("text")),
        "score": number(a.get("score")),
        "definitive": definitive if isinstance(definitive, bool) else None,
        "due_by": parse_time(a.get("dueBy")),
        **person(a.get("assignee"), "assignee"),
        **person(a.get("from"), "speaker"),
        "message_ids": a.get("messageIds"),
        "entities": a.get("entities"),
    }


def _member(m: dict[str, Any]) -> Row:
    return {"name": as_text(m.get("name")), "email": as_text(m.get("email"))}


COLUMNS: dict[str, Callable[[dict[str, Any]], Row]] = {
    "messages": _message,
    "topics": _topic,
    "questions": _question,
    "action_items": _task,
    "follow_ups": _task,
    "members": _member,
}
"""Insight kind -> the columns of its table taken from one API object."""
