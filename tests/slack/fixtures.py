"""Builders for the slack sink tests: ingestd.testing's sample conversation with Slack's
own variations, texts meant to notify or break the layout, and Block Kit's limits."""

from __future__ import annotations

from typing import Any

from ingestd.model import Insights, Recording, Result
from ingestd.testing import (
    SAMPLE_CONVERSATION_ID,
    sample_insights,
    sample_message,
    sample_person,
    sample_recording,
    sample_result,
)

CONVERSATION_ID = SAMPLE_CONVERSATION_ID

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
    """A delivered recording under the watch ``w``, its mtime the epoch."""
    return sample_recording(relpath, id=id, mtime=0.0)


def message(text: str, speaker: str, offset: float, duration: float, n: int) -> dict[str, Any]:
    """One §9 message from `speaker` at `offset` seconds (`sample_message`)."""
    return sample_message(n, text, speaker, offset, duration)


def insights(**overrides: Any) -> Insights:
    """The sample conversation with its times, Bob's answer longer and two topics."""
    action = sample_insights().action_items[0]
    defaults: dict[str, Any] = {
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
        "action_items": [{**action, "from": sample_person("Bob", userId="bob@example.com")}],
    }
    return sample_insights(**{**defaults, **overrides})


def result(data: Insights | None = None, *, name: str = "Weekly sync", parts: int = 1) -> Result:
    """A result for `data` (the default conversation) with `parts` recordings."""
    paths = ["a.wav"] if parts == 1 else [f"sales/part{i + 1}.wav" for i in range(parts)]
    recordings = [recording(path, id=i + 1) for i, path in enumerate(paths)]
    return sample_result(data or insights(), name=name, recordings=recordings)
