"""Builders for the database sink tests: a two-speaker conversation in §9 shapes, and the
same conversation after an append (more messages, a second part, changed insights)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ingestd.model import Insights, Recording, Result
from ingestd.testing import (
    SAMPLE_CONVERSATION_ID,
    SAMPLE_MESSAGES,
    sample_insights,
    sample_message,
    sample_recording,
    sample_result,
)

CID = SAMPLE_CONVERSATION_ID
OTHER_CID = "6144418234466304"


def recording(relpath: str = "a.wav", *, id: int = 1) -> Recording:
    """A delivered recording under the watch ``w``; size and hash differ per `id`."""
    return sample_recording(relpath, id=id, size_bytes=10 * id, sha256=f"{id:02x}" * 32)


def message(n: int, text: str, speaker: str, offset: float, duration: float) -> dict[str, Any]:
    """Message ``m<n>`` said by `speaker` from `offset` for `duration` seconds, on 5 March,
    with the speaker's email, and a sentiment that grows with `n`."""
    return sample_message(
        n,
        text,
        speaker,
        offset,
        duration,
        conversation_id=CID,
        id_format=ID_FORMAT,
        email=True,
        phrases=[],
        sentiment={"polarity": {"score": 0.25 * n}, "suggested": "positive"},
    )


ID_FORMAT = "u-{}"
"""People's ids here: ``u-Alice``."""
MESSAGES = [message(n, *said) for n, said in enumerate(SAMPLE_MESSAGES, start=1)]
APPENDED = [
    message(3, "Great, and the budget?", "Alice", 7.0, 1.5),
    message(4, "Carol owns the budget.", "Bob", 9.0, 2.5),
]


def insights(cid: str = CID, messages: list[dict[str, Any]] | None = None) -> Insights:
    """The sample conversation as the database stores it: with its times, a topic with
    sentiment and parents, a dated action item and a summary."""
    base = sample_insights(conversation_id=cid, id_format=ID_FORMAT)
    entities = [{"type": "date", "text": "tomorrow", "offset": 20}]
    return replace(
        base,
        conversation={
            **base.conversation,
            "startTime": "2024-03-05T10:00:00.000Z",
            "endTime": "2024-03-05T10:05:00.000Z",
            "members": [],
            "metadata": {},
        },
        messages=list(MESSAGES if messages is None else messages),
        topics=[
            {
                **base.topics[0],
                "sentiment": {"polarity": {"score": 0.5}, "suggested": "positive"},
                "parentRefs": [{"type": "topic", "text": "sales"}],
            }
        ],
        action_items=[{**base.action_items[0], "entities": entities}],
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
    recordings = [recording(f"part{i}.wav", id=i + 1) for i in range(parts)]
    return sample_result(data or insights(), name=name, recordings=recordings)


def at(day: int, hour: int, minute: int = 0, second: float = 0.0) -> datetime:
    """A UTC time in March 2024, for comparing with what the database returns."""
    whole = int(second)
    micro = round((second - whole) * 1_000_000)
    return datetime(2024, 3, day, hour, minute, whole, micro, tzinfo=UTC)
