"""Finding our own message after a post whose answer was lost, so a retry does not post it
twice.

A post whose connection dropped or timed out after the request went out may have been
made. Each bot post carries message metadata naming the sink and the Symbl conversation
(``event_type: ingestd_delivery``); before posting that conversation again, the sink reads
the channel's recent history (``conversations.history`` with ``include_all_metadata``,
from a minute before the doubtful post on) and adopts the message it finds. That needs the
channel's ID (a ``#name`` is learnt from Slack's first answer) and the ``channels:history``
scope (``groups:history`` for a private channel); without them, and always with a webhook,
which cannot read the channel, the retry may post a second message, and the log says so.
"""

from __future__ import annotations

import http.client
import re
import socket
from typing import Any

from slack_sdk import WebClient

EVENT_TYPE = "ingestd_delivery"
LOOK_BACK_SECONDS = 60.0
"""How far before the doubtful post the history is read (clock differences, slow answers)."""
MAX_PAGES = 5
PAGE_SIZE = 200
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{6,}")


def metadata(sink: str, conversation_id: str) -> dict[str, Any]:
    """The metadata that marks a message as this sink's post of this conversation."""
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {"sink": sink, "conversation_id": conversation_id},
    }


def channel_id(channel: str | None) -> str | None:
    """`channel` if it is an ID (conversations.history takes no names), else None."""
    return channel if channel and _CHANNEL_ID.fullmatch(channel) else None


def may_have_arrived(exc: BaseException) -> bool:
    """False only for failures that surely came before Slack saw the request (the
    connection refused, the name not resolved); a timeout or a dropped connection may
    come after Slack acted on it."""
    reason = getattr(exc, "reason", None)  # urllib.error.URLError wraps the real one
    inner = reason if isinstance(reason, BaseException) else exc
    if isinstance(inner, ConnectionRefusedError | socket.gaierror):
        return False
    return isinstance(inner, OSError | http.client.HTTPException)


def find_posted(
    web: WebClient, channel: str, sink: str, conversation_id: str, since: float
) -> str | None:
    """The ts of this sink's message for `conversation_id` posted after UNIX time `since`
    in `channel`, or None. Raises what slack_sdk raises (SlackApiError, network errors)."""
    wanted = metadata(sink, conversation_id)["event_payload"]
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        response = web.conversations_history(
            channel=channel,
            oldest=f"{since - LOOK_BACK_SECONDS:.6f}",
            include_all_metadata=True,
            limit=PAGE_SIZE,
            cursor=cursor,
        )
        for message in response.get("messages") or []:
            found = message.get("metadata") or {}
            payload = found.get("event_payload") or {}
            if found.get("event_type") == EVENT_TYPE and all(
                payload.get(k) == v for k, v in wanted.items()
            ):
                return str(message["ts"])
        cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
        if not response.get("has_more") or cursor is None:
            return None
    return None
