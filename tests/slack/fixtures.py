"""Builders for the slack sink tests: a small two-speaker conversation in the §9 shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingestd.config import WatchConfig
from ingestd.model import Insights, Recording, Result

CONVERSATION_ID = "5093288386543616"

HOSTILE = [
    "<!channel>",
    "<!here|here> <!everyone>",
    "<@U1>",
    "<@U1|boss> & <#C1>",
    "<http://evil|click>",
    "<https://evil.example/login|https://slack.com>",
    "@channel @here @everyone",
    "line\nbreak\r\n<!channel>\u2028x",
    "*bold* _it_ ~strike~ `code` > quote",
    "\u202eexe.txt\u202c",
    "x\x00y\x1b[31m",
    "\ud800 lone surrogate",
    "日本語 🎙️ émoji",
    "<" * 500,
    "a" * 500,
]
"""Names and texts meant to notify, mention, disguise links or break the layout."""

LIMITS = {"blocks": 50, "header": 150, "section": 3000, "fields": 10, "field": 2000}
"""Slack's Block Kit limits, as the fake Slack enforces them."""


def check_blocks(blocks: Any) -> str | None:
    """Slack's Block Kit limits; the error code Slack would answer, or None when valid."""
    if not isinstance(blocks, list) or len(blocks) > LIMITS["blocks"]:
        return "invalid_blocks"
    for block in blocks:
        kind = block.get("type")
        text = (block.get("text") or {}).get("text", "")
        if kind == "header" and (block["text"]["type"] != "plain_text" or len(text) > 150):
            return "invalid_blocks"
        if kind == "section":
            fields = block.get("fields", [])
            if len(text) > LIMITS["section"] or len(fields) > LIMITS["fields"]:
                return "invalid_blocks"
            if not text and not fields:
                return "invalid_blocks"
            if any(len(f["text"]) > LIMITS["field"] for f in fields):
                return "invalid_blocks"
        if kind == "context" and (
            not 1 <= len(block["elements"]) <= 10
            or any(len(e["text"]) > 3000 for e in block["elements"])
        ):
            return "invalid_blocks"
        if kind not in ("header", "section", "context", "divider"):
            return "invalid_blocks"
    return None


def recording(relpath: str = "a.wav", *, id: int = 1) -> Recording:
    """A delivered recording under the watch ``w``."""
    return Recording(
        id=id,
        path=Path("/in") / relpath,
        relpath=relpath,
        watch=WatchConfig(name="w", path=Path("/in")),
        size_bytes=10,
        mtime=0.0,
        sha256="ab" * 32,
        state="delivering",
    )


def message(text: str, speaker: str, offset: float, duration: float, n: int) -> dict[str, Any]:
    """One §9 message from `speaker` at `offset` seconds."""
    return {
        "id": f"m{n}",
        "text": text,
        "from": {"id": f"u{speaker}", "name": speaker},
        "startTime": f"2024-03-05T10:00:{offset:06.3f}Z",
        "endTime": f"2024-03-05T10:00:{offset + duration:06.3f}Z",
        "timeOffset": offset,
        "duration": duration,
        "conversationId": CONVERSATION_ID,
    }


def insights(**overrides: Any) -> Insights:
    """Alice and Bob agree on a deck; two topics and one of each other kind of insight."""
    data: dict[str, Any] = {
        "conversation_id": CONVERSATION_ID,
        "conversation": {
            "id": CONVERSATION_ID,
            "type": "meeting",
            "name": "Weekly sync",
            "startTime": "2024-03-05T10:00:00.000Z",
            "endTime": "2024-03-05T10:00:07.000Z",
            "members": [],
            "metadata": {},
        },
        "messages": [
            message("Hi Bob, can we ship the deck by Friday?", "Alice", 0.5, 3.0, 1),
            message("Yes. I will send it tomorrow, then let's review.", "Bob", 4.0, 5.5, 2),
        ],
        "topics": [
            {"id": "t1", "text": "review", "type": "topic", "score": 0.4, "messageIds": ["m2"]},
            {"id": "t2", "text": "deck", "type": "topic", "score": 0.9, "messageIds": ["m1"]},
        ],
        "questions": [
            {
                "id": "q1",
                "text": "Can we ship the deck by Friday?",
                "type": "question",
                "score": 0.8,
                "messageIds": ["m1"],
                "from": {"id": "uAlice", "name": "Alice", "userId": "alice@example.com"},
            }
        ],
        "action_items": [
            {
                "id": "a1",
                "text": "Bob will send the deck tomorrow.",
                "type": "action_item",
                "score": 1,
                "messageIds": ["m2"],
                "entities": [],
                "phrases": [],
                "from": {"id": "uBob", "name": "Bob", "userId": "bob@example.com"},
                "definitive": True,
                "assignee": {"id": "uBob", "name": "Bob", "email": "bob@example.com"},
                "dueBy": "2024-03-06T17:00:00-05:00",
            }
        ],
        "follow_ups": [
            {
                "id": "f1",
                "text": "Check in on the deck review.",
                "type": "follow_up",
                "score": 1,
                "messageIds": ["m2"],
                "entities": [],
                "from": {},
                "assignee": {"name": "Alice"},
            }
        ],
        "members": [
            {"id": "uAlice", "name": "Alice", "email": "alice@example.com"},
            {"id": "uBob", "name": "Bob", "email": "bob@example.com"},
        ],
    }
    data.update(overrides)
    return Insights(**data)


def result(data: Insights | None = None, *, name: str = "Weekly sync", parts: int = 1) -> Result:
    """A result for `data` (the default conversation) with `parts` recordings."""
    paths = ["a.wav"] if parts == 1 else [f"sales/part{i + 1}.wav" for i in range(parts)]
    recs = tuple(recording(path, id=i + 1) for i, path in enumerate(paths))
    return Result(name=name, recording=recs[-1], parts=recs, insights=data or insights())
