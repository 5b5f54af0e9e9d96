"""Messages as a timeline: who spoke, what, and when, from whatever times the API gave.

Symbl messages carry ``timeOffset``/``duration`` (seconds from the start of the recording)
and ``startTime``/``endTime`` (ISO instants), depending on the API version and the route;
any of them, and ``from``, may be missing. `transcript` reads what is there; `cues`
fills the gaps for subtitle formats, which need a start and an end for every line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

READING_CHARS_PER_SECOND = 15.0
"""How long an untimed subtitle stays up: a comfortable reading speed..."""
MIN_CUE_SECONDS, MAX_CUE_SECONDS = 1.0, 7.0
"""...within the usual subtitle bounds."""


@dataclass(frozen=True)
class Line:
    """One message: its speaker (None when unknown), clean text and times in seconds from the
    start of the recording (None when the API did not say)."""

    speaker: str | None
    text: str
    start: float | None = None
    end: float | None = None


_CONTROLS_NOT_SPACE = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")
"""The control characters (Unicode category Cc) that are not whitespace to `str.split`:
one regular-expression pass instead of a look-up of each character's category, which made
the Markdown report the files sink's costliest part (tests/unit/test_timeline.py checks
every Cc character)."""


def plain(value: Any) -> str:
    """User text on one line: every run of whitespace (line breaks included) becomes one space
    and other control characters are dropped, so no message can start a new line."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    return " ".join(_CONTROLS_NOT_SPACE.sub("", text).split())


def person(value: Any) -> str | None:
    """A display name from a ``from``/``assignee`` object (name, else email, else id) or a
    bare string; None when there is nothing to show."""
    if isinstance(value, Mapping):
        for key in ("name", "email", "id", "userId"):
            name = plain(value.get(key))
            if name:
                return name
        return None
    if isinstance(value, str):
        return plain(value) or None
    return None


def seconds(value: Any) -> float | None:
    """A finite number of seconds from a JSON number or numeric string, else None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def instant(value: Any) -> float | None:
    """A UNIX time from an ISO-8601 string (``Z`` or offset; naive means UTC), else None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def transcript(messages: Iterable[Mapping[str, Any]]) -> list[Line]:
    """The messages with text, in order, timed as well as the data allows.

    ``timeOffset`` is preferred (it is relative to the recording, so subtitles line up with
    it); otherwise ``startTime`` is taken relative to the first message that has one. The
    duration is ``duration``, else ``endTime - startTime``.
    """
    messages = [m for m in messages if isinstance(m, Mapping)]
    base = next((t for m in messages if (t := instant(m.get("startTime"))) is not None), None)
    lines: list[Line] = []
    for message in messages:
        text = plain(message.get("text"))
        if not text:
            continue
        start_at, end_at = instant(message.get("startTime")), instant(message.get("endTime"))
        start = seconds(message.get("timeOffset"))
        if start is None and start_at is not None and base is not None:
            start = start_at - base
        duration = seconds(message.get("duration"))
        if duration is None and start_at is not None and end_at is not None:
            duration = end_at - start_at
        start = None if start is None else max(0.0, start)
        end = start + duration if start is not None and duration and duration > 0 else None
        lines.append(Line(person(message.get("from")), text, start, end))
    return lines


def duration_seconds(lines: list[Line]) -> float | None:
    """How far into the recording the last timed speech ends; None when nothing is timed."""
    ends = [t for line in lines for t in (line.start, line.end) if t is not None]
    return max(ends) if ends else None


def cues(lines: list[Line]) -> list[tuple[float, float, Line]]:
    """``(start, end, line)`` for every line, with ``end > start`` always.

    A missing start follows the previous cue; a missing (or non-positive) duration becomes
    the time it takes to read the text (1 to 7 s), cut short where the next line starts.
    """
    out: list[tuple[float, float, Line]] = []
    clock = 0.0
    for i, line in enumerate(lines):
        start = line.start if line.start is not None else clock
        end = line.end
        if end is None or end <= start:
            reading = len(line.text) / READING_CHARS_PER_SECOND
            end = start + min(MAX_CUE_SECONDS, max(MIN_CUE_SECONDS, reading))
            following = lines[i + 1].start if i + 1 < len(lines) else None
            if following is not None and start < following < end:
                end = following
        out.append((start, end, line))
        clock = end
    return out


def subtitle_timestamp(value: float, separator: str) -> str:
    """``HH:MM:SS<sep>mmm``, rounded to the millisecond (``,`` for SRT, ``.`` for WebVTT)."""
    total_ms = round(max(0.0, value) * 1000)
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def clock(value: float) -> str:
    """Elapsed time as a wall clock shows it: ``mm:ss``, or ``h:mm:ss`` from one hour on."""
    total = int(max(0.0, value))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
