"""Conversations of ours: the engine has none, so the parts of one are kept and merged here.

Each transcribed part is stored under the backend's state directory, one JSON file per
conversation (``openai/conversations/<id>.json``), written atomically. A part is keyed by its
upload tag: sending the same part again (a lost answer, a crash mid-request) replaces it in
place instead of adding a copy, and a new part is added after the others, the order the core
appends parts in. `merge` lays the parts end to end: each part's segment times are shifted by
the durations of the parts before it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ingestd import Insights, Retryable

NOT_PROVIDED = (
    "topics",
    "questions",
    "action_items",
    "follow_ups",
    "members",
    "summary",
    "analytics",
    "entities",
    "trackers",
)
"""Kinds of insight a transcription server does not produce: left empty, and said so in
``conversation["notProvided"]`` so sinks can tell "none found" from "not looked for"."""
_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


class ConversationStore:
    """The parts of every conversation this backend transcribed, on disk."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, conversation_id: str) -> Path:
        if not _SAFE.match(conversation_id):
            raise ValueError(f"not a conversation id of this backend: {conversation_id!r}")
        return self.folder / f"{conversation_id}.json"

    def load(self, conversation_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._path(conversation_id).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def save_part(self, conversation_id: str, part: dict[str, Any]) -> int:
        """Store `part` (its ``tag`` says which); returns its position, from 1."""
        data = self.load(conversation_id) or {"id": conversation_id, "parts": []}
        parts = data["parts"]
        for i, existing in enumerate(parts):
            if existing.get("tag") == part["tag"]:
                parts[i] = part
                break
        else:
            parts.append(part)
        self._write(conversation_id, data)
        return next(i for i, p in enumerate(parts, 1) if p.get("tag") == part["tag"])

    def has_part(self, conversation_id: str, tag: str) -> bool:
        data = self.load(conversation_id) or {}
        return any(p.get("tag") == tag for p in data.get("parts", []))

    def delete(self, conversation_id: str) -> bool:
        try:
            self._path(conversation_id).unlink()
        except FileNotFoundError:
            return False
        return True

    def _write(self, conversation_id: str, data: dict[str, Any]) -> None:
        path = self._path(conversation_id)
        temporary = path.with_name(f".{path.name}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise Retryable(f"cannot save a transcript in {path.parent}: {exc.strerror}") from None


def part_from_answers(tag: str, name: str, answers: list[tuple[float, dict[str, Any]]]) -> dict:
    """One part from the server's answers for its pieces, ``(offset seconds, answer)`` in
    order: the segments on the part's own time line, its text, language and duration."""
    segments: list[dict[str, Any]] = []
    texts, language, duration = [], None, 0.0
    for offset, answer in answers:
        text = str(answer.get("text") or "").strip()
        items = answer.get("segments") if isinstance(answer.get("segments"), list) else []
        if not items and text:  # a plain `json` answer: one untimed segment per piece
            items = [{"text": text}]
        for item in items:
            if not isinstance(item, dict) or not str(item.get("text") or "").strip():
                continue
            segment: dict[str, Any] = {"text": str(item["text"]).strip()}
            start, end = _number(item.get("start")), _number(item.get("end"))
            if start is not None:
                segment["start"] = round(offset + start, 3)
            if end is not None:
                segment["end"] = round(offset + end, 3)
            speaker = item.get("speaker")
            if isinstance(speaker, str | int) and str(speaker):
                segment["speaker"] = str(speaker)
            segments.append(segment)
        if text:
            texts.append(text)
        language = language or (answer.get("language") if answer.get("language") else None)
        piece_duration = _number(answer.get("duration"))
        if piece_duration is None:
            piece_duration = max((s.get("end", 0.0) for s in segments), default=offset) - offset
        duration = max(duration, offset + piece_duration)
    return {
        "tag": tag,
        "name": name,
        "text": " ".join(texts),
        "language": language,
        "duration": round(duration, 3),
        "pieces": len(answers),
        "segments": segments,
    }


def merge(data: dict[str, Any], model: str) -> Insights:
    """A conversation's parts as one `Insights`: messages in order, times shifted by the
    durations of the parts before each; the kinds the engine does not produce left empty."""
    conversation_id = data["id"]
    messages: list[dict[str, Any]] = []
    offset = 0.0
    speakers: list[str] = []
    for n, part in enumerate(data.get("parts", []), start=1):
        for i, segment in enumerate(part.get("segments", []), start=1):
            message: dict[str, Any] = {
                "id": f"{conversation_id}-{n}-{i}",
                "conversationId": conversation_id,
                "text": segment["text"],
            }
            if "speaker" in segment:
                message["from"] = {"id": segment["speaker"], "name": segment["speaker"]}
                speakers.append(segment["speaker"])
            if "start" in segment:
                message["timeOffset"] = round(offset + segment["start"], 3)
                if "end" in segment and segment["end"] >= segment["start"]:
                    message["duration"] = round(segment["end"] - segment["start"], 3)
            messages.append(message)
        offset += float(part.get("duration") or 0.0)
    parts = data.get("parts", [])
    languages = [p["language"] for p in parts if p.get("language")]
    conversation = {
        "id": conversation_id,
        "engine": "openai-compatible",
        "model": model,
        "text": " ".join(p["text"] for p in parts if p.get("text")),
        "language": languages[0] if languages else None,
        "duration": round(offset, 3),
        "parts": len(parts),
    }
    members = [{"id": s, "name": s} for s in dict.fromkeys(speakers)]
    conversation["notProvided"] = [k for k in NOT_PROVIDED if not (k == "members" and members)]
    return Insights(conversation_id, conversation, messages=messages, members=members)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
