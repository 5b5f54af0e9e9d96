"""Reads and deletes: the Job API and the Conversation API (symbl-api.md §6, §9).

Conversation data grows as each part's job completes, so reads before completion are
partial; ``/summary`` alone refuses (404) until no job of the conversation is pending.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from ingestd.sandbox import views
from ingestd.sandbox.access import NO_CONVERSATION, NO_JOB, guard
from ingestd.sandbox.server import Handler

if TYPE_CHECKING:
    from ingestd.sandbox.app import Sandbox


def job(sb: Sandbox, req: Handler, match: re.Match[str]) -> None:
    if guard(sb, req, "job", "job")[0] is None:
        return
    status = sb.state.job_status(match["job"])
    if status is None:
        req.send_json(404, NO_JOB)
    else:
        req.send_json(200, {"id": match["job"], "status": status})


def _flags(req: Handler, *names: str) -> dict[str, bool] | None:
    """Boolean query flags of a GET; answers 400 and returns None on a bad value."""
    values = dict(_query_pairs(req.query))
    flags = {}
    for name in names:
        value = values.get(name, "false")
        if value not in ("true", "false"):
            req.send_json(400, {"message": f'"{name}" must be a boolean'})
            return None
        flags[name] = value == "true"
    return flags


def _query_pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)


def conversation(sb: Sandbox, req: Handler, match: re.Match[str]) -> None:
    """``GET /v1/conversations/{id}[/<what>]``; data may be partial until jobs complete."""
    if guard(sb, req, "conversation", "conversation")[0] is None:
        return
    snap = sb.state.snapshot(match["cid"])
    if snap is None:
        req.send_json(404, NO_CONVERSATION)
        return
    what = match.groupdict().get("what")
    if what is None:
        req.send_json(200, views.conversation(snap))
    elif what == "messages":
        flags = _flags(req, "verbose", "sentiment")
        if flags is not None:
            items = views.messages(
                snap, verbose=flags["verbose"], with_sentiment=flags["sentiment"]
            )
            req.send_json(200, {"messages": items})
    elif what == "topics":
        flags = _flags(req, "sentiment", "parentRefs")
        if flags is not None:
            extra = _vocabulary(dict(_query_pairs(req.query)).get("customTopicVocabulary", ""))
            items = views.topics(
                snap,
                with_sentiment=flags["sentiment"],
                parent_refs=flags["parentRefs"],
                extra=extra,
            )
            req.send_json(200, {"topics": items})
    elif what == "summary":
        if not snap.complete:
            req.send_json(404, {"message": "Summary is not available until processing completes."})
        else:
            req.send_json(200, {"summary": views.summary(snap)})
    elif what in ("trackers-detected", "trackers"):
        req.send_json(200, views.trackers(snap))
    else:
        key, render = _SIMPLE[what]
        req.send_json(200, render(snap) if key is None else {key: render(snap)})


_SIMPLE = {
    "questions": ("questions", views.questions),
    "action-items": ("actionItems", views.action_items),
    "follow-ups": ("followUps", views.follow_ups),
    "members": ("members", views.members),
    "analytics": (None, views.analytics),
    "entities": ("entities", views.entities),
}


def _vocabulary(text: str) -> list[str]:
    """``customTopicVocabulary``: a JSON array or comma-separated terms."""
    try:
        value = json.loads(text)
    except ValueError:
        value = text.split(",")
    items = value if isinstance(value, list) else [value]
    return [str(term).strip() for term in items if str(term).strip()]


def delete_conversation(sb: Sandbox, req: Handler, match: re.Match[str]) -> None:
    if guard(sb, req, "conversation", "conversation_delete")[0] is None:
        return
    if sb.state.delete_conversation(match["cid"]):
        req.send_json(200, {"message": "successfully deleted the conversation"})
    else:
        req.send_json(404, NO_CONVERSATION)


LIST_PARAMS = ("limit", "offset", "order", "sort", "startTime", "endTime", "filter", "name")


def list_conversations(sb: Sandbox, req: Handler, match: re.Match[str]) -> None:
    """``GET /v1/conversations``: ``{"conversations": [<bare conversation>, ...]}``.

    The real response shape is not documented (symbl-api.md §9 only names the parameters);
    this one reuses the bare conversation object. ``name`` filters by exact name,
    ``startTime``/``endTime`` (ISO 8601 or epoch milliseconds) bound the creation time,
    ``order`` is ``desc`` (newest first, the default) or ``asc``; ``sort`` and ``filter``
    are accepted and ignored.
    """
    if guard(sb, req, "conversation", "conversation_list")[0] is None:
        return
    query = dict(_query_pairs(req.query))
    unknown = sorted(set(query) - set(LIST_PARAMS))
    try:
        if unknown:
            raise ValueError(f'"{unknown[0]}" is not allowed')
        limit = _integer(query, "limit", 100, minimum=1)
        offset = _integer(query, "offset", 0, minimum=0)
        after = _instant(query, "startTime")
        before = _instant(query, "endTime")
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ValueError('"order" must be one of [asc, desc]')
    except ValueError as exc:
        req.send_json(400, {"message": str(exc)})
        return
    snaps = [
        s
        for s in sb.state.snapshots()
        if ("name" not in query or s.name == query["name"])
        and (after is None or _ms(s.start) >= _ms(after))
        and (before is None or _ms(s.start) <= _ms(before))
    ]
    snaps.sort(key=lambda s: s.start)  # stable: creation order breaks ties
    if order == "desc":
        snaps.reverse()
    page = snaps[offset : offset + limit]
    req.send_json(200, {"conversations": [views.conversation(s) for s in page]})


def _ms(when: float) -> int:
    return round(when * 1000)


def _integer(query: dict[str, str], name: str, default: int, *, minimum: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < minimum:
        raise ValueError(f'"{name}" must be an integer >= {minimum}')
    return int(text)


def _instant(query: dict[str, str], name: str) -> float | None:
    """UNIX seconds from ISO 8601 (``...Z`` allowed) or epoch milliseconds."""
    text = query.get(name)
    if text is None:
        return None
    if text.isdigit():
        return int(text) / 1000
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f'"{name}" must be a valid ISO 8601 date') from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()
