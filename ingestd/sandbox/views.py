"""The Conversation API's JSON (symbl-api.md §9), rendered from a conversation's parts.

Every list is recomputed from the messages on each request, so ids cross-reference real
message ids and data grows as parts complete. Keys follow one rule where the sources leave
room: ``email`` (members) and ``userId`` (insight authors) appear only when known.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ingestd.sandbox.insights import (
    DAYS,
    TOPICS,
    Message,
    Part,
    Speaker,
    numeric_id,
    stable_uuid,
)


@dataclass(frozen=True)
class Snapshot:
    """A conversation as one request sees it (parts are immutable once appended)."""

    id: str
    name: str
    start: float
    """UNIX time the conversation was created."""
    parts: tuple[Part, ...]
    complete: bool
    """No job of the conversation is still scheduled or in progress."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """The ``metadata`` object its first POST carried (empty without one)."""

    @property
    def messages(self) -> list[Message]:
        return [m for part in self.parts for m in part.messages]

    @property
    def english(self) -> list[Message]:
        """Insights (topics, questions, action items, follow-ups) are English only."""
        return [m for m in self.messages if m.english]

    @property
    def duration(self) -> float:
        return self.parts[-1].end_offset if self.parts else 0.0


def iso(when: float) -> str:
    """ISO 8601 UTC with milliseconds, as every Symbl timestamp."""
    stamp = dt.datetime.fromtimestamp(round(when, 3), tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def due_date(snap: Snapshot, day: str) -> str:
    """The first `day` (weekday name) strictly after the conversation's start date."""
    start = dt.datetime.fromtimestamp(snap.start, tz=dt.UTC).date()
    ahead = (DAYS.index(day) - start.weekday()) % 7 or 7
    return (start + dt.timedelta(days=ahead)).isoformat()


def member(speaker: Speaker) -> dict[str, Any]:
    out = {"id": speaker.id, "name": speaker.name}
    if speaker.email:
        out["email"] = speaker.email
    return out


def author(speaker: Speaker) -> dict[str, Any]:
    """``from`` of an insight."""
    out = {"id": speaker.id, "name": speaker.name}
    if speaker.email:
        out["userId"] = speaker.email
    return out


def sender(speaker: Speaker) -> dict[str, Any]:
    """``from`` of a message: ``{id, name}`` normally, ``{name, email}`` for channel names."""
    if speaker.style == "channel":
        return {"name": speaker.name, **({"email": speaker.email} if speaker.email else {})}
    return {"id": speaker.id, "name": speaker.name}


def sentiment(polarity: float) -> dict[str, Any]:
    suggested = "positive" if polarity > 0.3 else "negative" if polarity < -0.3 else "neutral"
    return {"polarity": {"score": polarity}, "suggested": suggested}


def score(*parts: object) -> float:
    """A deterministic confidence in [0.7, 0.99]."""
    return round(0.7 + int(numeric_id(*parts)) % 30 / 100, 2)


def members(snap: Snapshot) -> list[dict[str, Any]]:
    seen: dict[str, Speaker] = {}
    for part in snap.parts:
        for speaker in part.speakers:
            seen.setdefault(speaker.id, speaker)
    return [member(s) for s in seen.values()]


def conversation(snap: Snapshot) -> dict[str, Any]:
    return {
        "id": snap.id,
        "type": "meeting",
        "name": snap.name,
        "startTime": iso(snap.start),
        "endTime": iso(snap.start + snap.duration),
        "members": members(snap),
        "metadata": dict(snap.metadata),
    }


def messages(snap: Snapshot, *, verbose: bool, with_sentiment: bool) -> list[dict[str, Any]]:
    out = []
    for m in snap.messages:
        item: dict[str, Any] = {
            "id": m.id,
            "text": m.text,
            "from": sender(m.speaker),
            "startTime": iso(snap.start + m.time_offset),
            "endTime": iso(snap.start + m.time_offset + m.duration),
            "timeOffset": m.time_offset,
            "duration": m.duration,
            "conversationId": snap.id,
        }
        if m.phrases is not None:
            item["phrases"] = [dict(p) for p in m.phrases]
        if with_sentiment:
            item["sentiment"] = sentiment(m.polarity)
        if verbose:
            item["words"] = [
                {
                    "word": word,
                    "startTime": iso(snap.start + m.time_offset + offset),
                    "endTime": iso(snap.start + m.time_offset + offset + length),
                    "score": confidence,
                    "timeOffset": round(m.time_offset + offset, 2),
                    "duration": length,
                }
                for word, offset, length, confidence in m.words
            ]
        out.append(item)
    return out


def topics(
    snap: Snapshot, *, with_sentiment: bool, parent_refs: bool, extra: Iterable[str] = ()
) -> list[dict[str, Any]]:
    found: dict[str, list[Message]] = {}
    for m in snap.english:
        if m.facts.get("topic") and m.facts["topic"] in m.text:
            found.setdefault(m.facts["topic"], []).append(m)
    for term in extra:
        hits = [m for m in snap.english if term.lower() in m.text.lower()]
        if hits:
            found.setdefault(term, hits)
    out = []
    for text, hits in found.items():
        item: dict[str, Any] = {
            "id": numeric_id(snap.id, "topic", text),
            "text": text,
            "type": "topic",
            "score": round(min(0.99, 0.55 + 0.15 * len(hits)), 2),
            "messageIds": [m.id for m in hits],
        }
        if with_sentiment:
            item["sentiment"] = sentiment(round(sum(m.polarity for m in hits) / len(hits), 3))
        if parent_refs:
            parent = TOPICS.get(text)
            item["parentRefs"] = [{"type": "topic", "text": parent}] if parent else []
        out.append(item)
    return out


def questions(snap: Snapshot) -> list[dict[str, Any]]:
    return [
        {
            "id": numeric_id(snap.id, "question", m.id),
            "text": m.text,
            "type": "question",
            "score": score(snap.id, "question", m.id),
            "messageIds": [m.id],
            "from": author(m.speaker),
        }
        for m in snap.english
        if m.kind == "question"
    ]


def _task(snap: Snapshot, m: Message, kind: str) -> dict[str, Any]:
    person, day = m.facts["person"], m.facts["day"]
    due = due_date(snap, day)
    phrase = (
        f"send the {m.facts['thing']} to {m.facts['org']}"
        if kind == "action_item"
        else f"follow up with {person}"
    )
    return {
        "id": numeric_id(snap.id, kind, m.id),
        "text": m.text,
        "type": kind,
        "score": score(snap.id, kind, m.id),
        "messageIds": [m.id],
        "entities": [
            {"type": "person", "text": person, "offset": m.text.index(person), "value": person},
            {"type": "date", "text": day, "offset": m.text.index(day), "value": due},
        ],
        "phrases": [{"type": "action_phrase", "text": phrase}],
        "from": author(m.speaker),
        "definitive": kind == "action_item",
        "assignee": {"id": stable_uuid(snap.id, "assignee", person), "name": person},
        "dueBy": f"{due}T00:00:00.000Z",
    }


def action_items(snap: Snapshot) -> list[dict[str, Any]]:
    return [_task(snap, m, "action_item") for m in snap.english if m.kind == "action_item"]


def follow_ups(snap: Snapshot) -> list[dict[str, Any]]:
    return [_task(snap, m, "follow_up") for m in snap.english if m.kind == "follow_up"]


def summary(snap: Snapshot) -> list[dict[str, Any]]:
    out = []
    for part in snap.parts:
        body = [m for m in part.messages if m.kind != "marker"]
        topics_seen = _said(body, "topic")
        orgs = _said(body, "org")
        text = (
            f"The team discussed {', '.join(topics_seen[:3]) or 'general updates'} "
            f"with {', '.join(orgs[:2]) or 'the customer'}."
        )
        out.append(
            {
                "id": numeric_id(snap.id, "summary", part.index),
                "text": text,
                "messageRefs": [{"id": m.id} for m in body],
            }
        )
    return out


def _said(body: list[Message], slot: str) -> list[str]:
    """Distinct values of a template slot that the messages actually contain, in order."""
    values = (m.facts.get(slot) for m in body)
    return list(dict.fromkeys(v for v, m in zip(values, body, strict=True) if v and v in m.text))


def analytics(snap: Snapshot) -> dict[str, Any]:
    total = snap.duration
    talk: dict[str, float] = {}
    words: dict[str, int] = {}
    speakers: dict[str, Speaker] = {}
    for m in snap.messages:
        speakers.setdefault(m.speaker.id, m.speaker)
        talk[m.speaker.id] = talk.get(m.speaker.id, 0.0) + m.duration
        words[m.speaker.id] = words.get(m.speaker.id, 0) + len(m.words)
    talked = sum(talk.values())

    def share(seconds: float) -> dict[str, float]:
        return {"percentage": _percent(seconds, total), "seconds": round(seconds, 2)}

    return {
        "metrics": [
            _metric("total_silence", total - talked, total),
            _metric("total_talk_time", talked, total),
            _metric("total_overlap", 0.0, total),
        ],
        "members": [
            {
                **author(s),
                "pace": {"wpm": round(words[s.id] * 60 / talk[s.id]) if talk[s.id] else 0},
                "talkTime": share(talk[s.id]),
                "listenTime": share(total - talk[s.id]),
                "overlap": {},
            }
            for s in speakers.values()
        ],
    }


def _percent(part: float, total: float) -> float:
    return round(100 * part / total, 2) if total else 0.0


def _metric(kind: str, seconds: float, total: float) -> dict[str, Any]:
    return {"type": kind, "percent": _percent(seconds, total), "seconds": round(seconds, 2)}


def entities(snap: Snapshot) -> list[dict[str, Any]]:
    grouped: dict[tuple[str, str | None, str], dict[str, Any]] = {}
    for m in snap.messages:
        for mention in m.mentions or ():
            value = due_date(snap, mention.text) if mention.type == "date" else mention.value
            value = mention.text if value is None else value
            key = (mention.type, mention.custom_type, repr(value))
            item = grouped.get(key)
            if item is None:
                item = {"type": mention.type, "value": value, "text": mention.text}
                if mention.custom_type is not None:
                    item["customType"] = mention.custom_type
                item["messageRefs"] = []
                grouped[key] = item
            item["messageRefs"].append({"id": m.id, "text": m.text, "offset": mention.offset})
    return list(grouped.values())


def trackers(snap: Snapshot) -> list[dict[str, Any]]:
    """Submitted trackers (union by name, first submission wins) whose vocabulary was said."""
    declared: dict[str, list[str]] = {}
    for part in snap.parts:
        for tracker in part.source.params.get("trackers") or ():
            declared.setdefault(tracker["name"], list(tracker["vocabulary"]))
    out = []
    for name, vocabulary in declared.items():
        matches = []
        for term in vocabulary:
            hits = [m for m in snap.messages if term.lower() in m.text.lower()]
            if not hits:
                continue
            matches.append(
                {
                    "type": "vocabulary",
                    "value": term,
                    "messageRefs": [
                        {"id": m.id, "text": m.text, "offset": m.text.lower().index(term.lower())}
                        for m in hits
                    ],
                    "insightRefs": [
                        {
                            "text": m.text,
                            "offset": m.text.lower().index(term.lower()),
                            "type": m.kind,
                            "id": numeric_id(snap.id, m.kind, m.id),
                        }
                        for m in hits
                        if m.english and m.kind in ("question", "action_item", "follow_up")
                    ],
                }
            )
        if matches:
            out.append({"id": stable_uuid("tracker", name), "name": name, "matches": matches})
    return out
