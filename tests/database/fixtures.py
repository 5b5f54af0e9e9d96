"""Builders for the database sink tests: a two-speaker conversation in §9 shapes, and the
same conversation after an append (more messages, a second part, changed insights)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingestd.config import WatchConfig
from ingestd.model import Insights, Recording, Result

CID = "5093288386543616"
OTHER_CID = "6144418234466304"


def recording(relpath: str = "a.wav", *, id: int = 1) -> Recording:
    """A delivered recording under the watch ``w``."""
    return Recording(
        id=id,
        path=Path("/in") / relpath,
        relpath=relpath,
        watch=WatchConfig(name="w", path=Path("/in")),
        size_bytes=10 * id,
        mtime=1709632800.0,
        sha256=f"{id:02x}" * 32,
        state="delivering",
    )


def message(n: int, text: str, speaker: str, offset: float, duration: float) -> dict[str, Any]:
    """Message ``m<n>`` said by `speaker` from `offset` for `duration` seconds, on 5 March."""
    return {
        "id": f"m{n}",
        "text": text,
        "from": {"id": f"u-{speaker}", "name": speaker, "email": f"{speaker.lower()}@example.com"},
        "startTime": f"2024-03-05T10:00:{offset:06.3f}Z",
        "endTime": f"2024-03-05T10:00:{offset + duration:06.3f}Z",
        "timeOffset": offset,
        "duration": duration,
        "conversationId": CID,
        "phrases": [],
        "sentiment": {"polarity": {"score": 0.25 * n}, "suggested": "positive"},
    }


MESSAGES = [
    message(1, "Hi Bob, can we ship the deck by Friday?", "Alice", 0.5, 3.25),
    message(2, "Yes. I will send it tomorrow.", "Bob", 4.0, 2.0),
]
APPENDED = [
    message(3, "Great, and the budget?", "Alice", 7.0, 1.5),
    message(4, "Carol owns the budget.", "Bob", 9.0, 2.5),
]


def insights(cid: str = CID, messages: list[dict[str, Any]] | None = None) -> Insights:
    """Alice and Bob agree on a deck; one of each kind of insight."""
    return Insights(
        conversation_id=cid,
        conversation={
            "id": cid,
            "type": "meeting",
            "name": "Weekly sync",
            "startTime": "2024-03-05T10:00:00.000Z",
            "endTime": "2024-03-05T10:05:00.000Z",
            "members": [],
            "metadata": {},
        },
        messages=list(MESSAGES if messages is None else messages),
        topics=[
            {
                "id": "t1",
                "text": "deck",
                "type": "topic",
                "score": 0.9,
                "messageIds": ["m1"],
                "sentiment": {"polarity": {"score": 0.5}, "suggested": "positive"},
                "parentRefs": [{"type": "topic", "text": "sales"}],
            }
        ],
        questions=[
            {
                "id": "q1",
                "text": "Can we ship the deck by Friday?",
                "type": "question",
                "score": 0.8,
                "messageIds": ["m1"],
                "from": {"id": "u-Alice", "name": "Alice", "userId": "alice@example.com"},
            }
        ],
        action_items=[
            {
                "id": "a1",
                "text": "Bob will send the deck tomorrow.",
                "type": "action_item",
                "score": 1,
                "messageIds": ["m2"],
                "entities": [{"type": "date", "text": "tomorrow", "offset": 20}],
                "phrases": [],
                "from": {"id": "u-Bob", "name": "Bob"},
                "definitive": True,
                "assignee": {"id": "u-Bob", "name": "Bob", "email": "bob@example.com"},
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
            {"id": "u-Alice", "name": "Alice", "email": "alice@example.com"},
            {"id": "u-Bob", "name": "Bob", "email": "bob@example.com"},
        ],
        summary=[{"id": "s1", "text": "They agreed on the deck.", "messageRefs": [{"id": "m2"}]}],
    )


def appended(cid: str = CID) -> Insights:
    """The conversation after a second part: two more messages, the topic replaced, the
    action item reassigned, Carol joined."""
    base = insights(cid, MESSAGES + APPENDED)
    action = {**base.action_items[0], "assignee": {"id": "u-Carol", "name": "Carol"}}
    return replace(
        base,
        topics=[{"id": "t2", "text": "budget", "type": "topic", "score": 0.7, "messageIds": []}],
        action_items=[action],
        members=[*base.members, {"id": "u-Carol", "name": "Carol", "email": None}],
    )


def result(data: Insights | None = None, *, parts: int = 1, name: str = "Weekly sync") -> Result:
    """A result for `data` (the default conversation) with `parts` recordings."""
    recs = tuple(recording(f"part{i}.wav", id=i + 1) for i in range(parts))
    return Result(name=name, recording=recs[-1], parts=recs, insights=data or insights())


def at(day: int, hour: int, minute: int = 0, second: float = 0.0) -> datetime:
    """A UTC time in March 2024, for comparing with what the database returns."""
    whole = int(second)
    micro = round((second - whole) * 1_000_000)
    return datetime(2024, 3, day, hour, minute, whole, micro, tzinfo=UTC)
