"""Deterministic conversation content, derived only from what a job was given.

There is no speech recognition here: each completed job appends a *part* whose first
message names the exact bytes (``part sha256=<hex> bytes=<n>``) or URL (``part url=<url>``)
that reached the sandbox, followed by business-meeting sentences drawn from a PRNG seeded
with that digest. Tests can therefore check that the right upload landed in the right
conversation in the right order, and repeated runs produce identical text. Submitted
custom vocabulary, tracker vocabulary and custom entities are spoken back, so tests can also
see those parameters arrive.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PEOPLE = ("Alice", "Bob", "Carmen", "Deepak", "Erin", "Farid", "Grace", "Hiro")
ORGS = ("Acme Corp", "Globex", "Initech", "Umbrella Health", "Stark Logistics")
TOPICS = {
    "pricing": "sales",
    "onboarding": "customer success",
    "renewal": "sales",
    "roadmap": "product",
    "budget": "finance",
    "integration": "engineering",
    "security review": "engineering",
    "hiring plan": "people",
    "quarterly forecast": "finance",
    "customer churn": "customer success",
}
THINGS = ("proposal", "contract draft", "demo recording", "pricing sheet", "project plan")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
GOOD = ("promising", "strong", "solid", "encouraging")
BAD = ("risky", "delayed", "uncertain", "disappointing")

STATEMENTS = (
    "The {topic} numbers from {org} look {adj} this quarter.",
    "We spent most of the week on the {topic} for {org}.",
    "{person} thinks the {topic} timeline is {adj}.",
    "Our {topic} target is {number} percent higher than last year.",
)
QUESTIONS = (
    "Can we close the {topic} discussion with {org} before {day}?",
    "What is the status of the {topic} work for {org}?",
    "Who owns the {topic} follow through at {org}?",
)
ACTION = "{person} will send the {thing} to {org} by {day}."
FOLLOW_UP = "Let's follow up with {person} about the {topic} on {day}."
WORD_GAP_SECONDS = 0.05
MESSAGE_GAP_SECONDS = 0.5


@dataclass(frozen=True)
class PartSource:
    """What one job processes: the upload's digest or the URL, and its parameters."""

    job_id: str
    sha256: str | None = None
    size: int | None = None
    url: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    seconds: float | None = None
    """How long the upload plays (None: unknown); the part's messages then span exactly that."""

    @property
    def marker(self) -> str:
        if self.url is not None:
            return f"Recording part url={self.url}"
        return f"Recording part sha256={self.sha256} bytes={self.size}"

    @property
    def seed(self) -> int:
        text = self.sha256 if self.url is None else hashlib.sha256(self.url.encode()).hexdigest()
        return int(str(text), 16)


@dataclass(frozen=True)
class Speaker:
    """A member; `style` decides the shape of a message's ``from``."""

    id: str
    name: str
    email: str | None
    style: str  # "diarized" | "channel" | "default"


@dataclass(frozen=True)
class Mention:
    """Something the Entities API reports: where it sits in its message."""

    type: str
    text: str
    offset: int
    custom_type: str | None = None
    value: Any = None


@dataclass
class Message:
    id: str
    text: str
    speaker: Speaker
    time_offset: float
    duration: float
    words: list[tuple[str, float, float, float]]
    """(word, offset seconds, duration seconds, confidence)."""
    polarity: float
    kind: str  # "marker" | "statement" | "question" | "action_item" | "follow_up" | "extra"
    facts: dict[str, str]
    phrases: list[dict[str, str]] | None
    """None unless the submission asked for detectPhrases."""
    mentions: list[Mention] | None
    """None unless the submission asked for detectEntities."""
    english: bool
    part: int


@dataclass
class Part:
    """One completed job's contribution to its conversation."""

    index: int
    source: PartSource
    messages: list[Message]
    speakers: list[Speaker]

    @property
    def end_offset(self) -> float:
        last = self.messages[-1]
        return round(last.time_offset + last.duration, 2)


def numeric_id(*parts: object) -> str:
    """A 16-digit numeric string determined by `parts` (message and insight ids)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return str(10**15 + int.from_bytes(digest[:8], "big") % (9 * 10**15))


def stable_uuid(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "symbl-sandbox:" + ":".join(map(str, parts))))


def speakers_for(conversation_id: str, params: Mapping[str, Any]) -> list[Speaker]:
    """Diarization wins over per-channel names; otherwise one default member."""
    if params.get("enableSpeakerDiarization"):
        count = int(params.get("diarizationSpeakerCount") or 2)
        return [
            Speaker(stable_uuid(conversation_id, f"Speaker {i}"), f"Speaker {i}", None, "diarized")
            for i in range(1, count + 1)
        ]
    channels = params.get("channelMetadata") or []
    if params.get("enableSeparateRecognitionPerChannel") and channels:
        speakers = []
        for entry in sorted(channels, key=lambda c: c["channel"]):
            name = entry["speaker"].get("name") or f"Channel {entry['channel']}"
            email = entry["speaker"].get("email")
            speakers.append(
                Speaker(stable_uuid(conversation_id, name, email), name, email, "channel")
            )
        return speakers
    return [Speaker(stable_uuid(conversation_id, "default"), "Unknown Speaker", None, "default")]


def build_part(
    source: PartSource, *, conversation_id: str, index: int, first_message: int, start: float
) -> Part:
    """The messages of one job, numbered from `first_message`, timed from `start` seconds."""
    rng = random.Random(source.seed)
    sentences = _sentences(rng, source)
    speakers = speakers_for(conversation_id, source.params)
    english = str(source.params.get("languageCode", "en-US")).startswith("en-")
    messages = []
    offset = start
    for n, (kind, text, facts, polarity) in enumerate(sentences):
        words = []
        cursor = 0.0
        for word in text.split():
            length = round(0.3 + 0.02 * len(word), 2)
            words.append((word, round(cursor, 2), length, round(0.8 + rng.random() * 0.2, 3)))
            cursor += length + WORD_GAP_SECONDS
        duration = round(cursor - WORD_GAP_SECONDS, 2)
        messages.append(
            Message(
                id=numeric_id(conversation_id, "message", first_message + n),
                text=text,
                speaker=speakers[n % len(speakers)],
                time_offset=round(offset, 2),
                duration=duration,
                words=words,
                polarity=polarity,
                kind=kind,
                facts=facts,
                phrases=_phrases(kind, facts) if source.params.get("detectPhrases") else None,
                mentions=_mentions(text, facts, source.params)
                if source.params.get("detectEntities")
                else None,
                english=english,
                part=index,
            )
        )
        offset += duration + MESSAGE_GAP_SECONDS
    if source.seconds:
        _fit(messages, start, source.seconds)
    return Part(index=index, source=source, messages=messages, speakers=speakers)


def _fit(messages: list[Message], start: float, seconds: float) -> None:
    """Stretch or squeeze the messages' timing so the part lasts `seconds`, like its media."""
    natural = messages[-1].time_offset + messages[-1].duration - start
    if natural <= 0:
        return
    factor = seconds / natural
    for m in messages:
        m.time_offset = round(start + (m.time_offset - start) * factor, 6)
        m.duration = round(m.duration * factor, 6)
        m.words = [(w, round(o * factor, 6), round(d * factor, 6), c) for w, o, d, c in m.words]
    last = messages[-1]
    last.duration = round(start + seconds - last.time_offset, 6)  # ends exactly on time


def _sentences(
    rng: random.Random, source: PartSource
) -> list[tuple[str, str, dict[str, str], float]]:
    """(kind, text, template slots, polarity) for every message of a part, marker first."""

    def slots() -> dict[str, str]:
        adjective_pool = rng.choice((GOOD, BAD))
        return {
            "topic": rng.choice(list(TOPICS)),
            "org": rng.choice(ORGS),
            "person": rng.choice(PEOPLE),
            "thing": rng.choice(THINGS),
            "day": rng.choice(DAYS),
            "adj": rng.choice(adjective_pool),
            "number": str(rng.randint(3, 40)),
        }

    body = []
    for _ in range(rng.randint(2, 4)):
        facts = slots()
        polarity = 0.6 if facts["adj"] in GOOD else -0.5
        body.append(("statement", rng.choice(STATEMENTS).format(**facts), facts, polarity))
    for kind, template in (
        ("question", rng.choice(QUESTIONS)),
        ("action_item", ACTION),
        ("follow_up", FOLLOW_UP),
    ):
        facts = slots()
        body.append((kind, template.format(**facts), facts, round(rng.uniform(-0.2, 0.3), 6)))
    rng.shuffle(body)
    # Jitter every polarity a little so scores are not all equal.
    body = [(k, t, f, round(p + rng.uniform(-0.1, 0.1), 6)) for k, t, f, p in body]
    marker = ("marker", source.marker, {}, 0.0)
    return [marker, *body, *_extras(source.params)]


def _extras(params: Mapping[str, Any]) -> list[tuple[str, str, dict[str, str], float]]:
    """Sentences that speak back submitted vocabulary, trackers and custom entities."""
    out = []
    vocabulary = [v for v in params.get("customVocabulary") or [] if v.strip()][:3]
    if vocabulary:
        out.append(("extra", f"We should keep {', '.join(vocabulary)} in mind.", {}, 0.1))
    for tracker in (params.get("trackers") or [])[:5]:
        out.append(("extra", f"Someone mentioned {tracker['vocabulary'][0]} again.", {}, 0.0))
    for entity in (params.get("entities") or [])[:5]:
        out.append(("extra", f"The notes reference {entity['text']}.", {}, 0.0))
    return out


def _phrases(kind: str, facts: Mapping[str, str]) -> list[dict[str, str]]:
    if kind == "action_item":
        return [{"type": "action_phrase", "text": f"send the {facts['thing']} to {facts['org']}"}]
    if kind == "follow_up":
        return [{"type": "action_phrase", "text": f"follow up with {facts['person']}"}]
    return []


def _mentions(text: str, facts: Mapping[str, str], params: Mapping[str, Any]) -> list[Mention]:
    found = []
    for key, kind in (("person", "person"), ("org", "organization"), ("day", "date")):
        value = facts.get(key)
        if value and value in text:
            found.append(Mention(kind, value, text.index(value)))
    number = facts.get("number")
    if number and f" {number} " in text:
        found.append(Mention("number", number, text.index(f" {number} ") + 1, value=number))
    for entity in params.get("entities") or []:
        if entity["text"] in text:
            value = entity.get("value", entity["text"])
            found.append(
                Mention(
                    "custom",
                    entity["text"],
                    text.index(entity["text"]),
                    entity["customType"],
                    value,
                )
            )
    return sorted(found, key=lambda m: m.offset)
