"""Shared builders for the files sink tests: a small two-speaker conversation (§9 shapes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingestd.config import WatchConfig
from ingestd.model import Insights, Recording, Result

CONVERSATION_ID = "5093288386543616"

# Names meant to break out of the output folder or confuse a file system.
HOSTILE = [
    "../../etc/x",
    "/etc/passwd",
    "a/../../b",
    "..",
    ".",
    "...",
    "",
    " ",
    "x\x00y",
    "line\nbreak\r\n",
    "<!channel>",
    "\u202eexe.txt\u202c",
    "a" * 500,
    "日本語" * 100,
    "CON",
    "nul.txt",
    "C:\\Windows\\System32",
    "\\\\server\\share\\..\\..",
    "~root",
    ".hidden",
    "..\\..\\x",
    "\ud800 lone surrogate",
    "\u2028\u2029",
]


def recording(relpath: str = "a.wav", *, id: int = 1, mtime: float = 1709632800.0) -> Recording:
    """A delivered recording under the watch ``w`` (mtime 2024-03-05 10:00 UTC)."""
    return Recording(
        id=id,
        path=Path("/in") / relpath,
        relpath=relpath,
        watch=WatchConfig(name="w", path=Path("/in")),
        size_bytes=10,
        mtime=mtime,
        sha256="ab" * 32,
        state="delivering",
    )


def message(
    text: str, speaker: str | None, offset: float | None, duration: float | None, n: int
) -> dict[str, Any]:
    """One §9 message; times from `offset`/`duration`, ISO times consistent with them."""
    out: dict[str, Any] = {"id": f"m{n}", "text": text, "conversationId": CONVERSATION_ID}
    if speaker is not None:
        out["from"] = {"id": f"u{speaker}", "name": speaker}
    if offset is not None:
        out["timeOffset"] = offset
        out["startTime"] = f"2024-03-05T10:00:{offset:06.3f}Z"
    if duration is not None and offset is not None:
        out["duration"] = duration
        out["endTime"] = f"2024-03-05T10:00:{offset + duration:06.3f}Z"
    return out


def insights(messages: list[dict[str, Any]] | None = None) -> Insights:
    """Alice and Bob agree on a deck and a call; one of each kind of insight."""
    if messages is None:
        messages = [
            message("Hi Bob, can we ship the deck by Friday?", "Alice", 0.5, 3.25, 1),
            message("Yes. I will send it tomorrow.", "Bob", 4.0, 2.0, 2),
        ]
    return Insights(
        conversation_id=CONVERSATION_ID,
        conversation={"id": CONVERSATION_ID, "type": "meeting", "name": "Weekly sync"},
        messages=messages,
        topics=[{"id": "t1", "text": "deck", "type": "topic", "score": 0.9, "messageIds": ["m1"]}],
        questions=[
            {
                "id": "q1",
                "text": "Can we ship the deck by Friday?",
                "type": "question",
                "score": 0.8,
                "messageIds": ["m1"],
                "from": {"id": "uAlice", "name": "Alice", "userId": "alice@example.com"},
            }
        ],
        action_items=[
            {
                "id": "a1",
                "text": "Bob will send the deck tomorrow.",
                "type": "action_item",
                "score": 1,
                "messageIds": ["m2"],
                "entities": [],
                "phrases": [],
                "from": {"id": "uBob", "name": "Bob"},
                "definitive": True,
                "assignee": {"id": "uBob", "name": "Bob", "email": "bob@example.com"},
                "dueBy": "2024-03-06T17:00:00-05:00",
            }
        ],
        follow_ups=[
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
        members=[
            {"id": "uAlice", "name": "Alice", "email": "alice@example.com"},
            {"id": "uBob", "name": "Bob", "email": "bob@example.com"},
        ],
    )


def result(data: Insights | None = None, *, name: str = "Weekly sync", parts: int = 1) -> Result:
    """A result for `data` (the default conversation) with `parts` recordings."""
    recs = tuple(recording(f"part{i}.wav", id=i + 1) for i in range(parts))
    return Result(name=name, recording=recs[-1], parts=recs, insights=data or insights())
