"""The five output formats, as pure functions from a `Result` to text.

Nothing here touches the disk, so every format is tested as a whole string. User text
(messages, names, insights) is treated as hostile: each format escapes what its own syntax
would interpret (Markdown markup, WebVTT tags, the SRT cue arrow) and keeps every message
on its own line(s).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from ingestd import Recording, Result, jsontext
from ingestd.timeline import (
    Line,
    clock,
    cues,
    duration_seconds,
    person,
    plain,
    subtitle_timestamp,
    transcript,
)

SUBTITLE_WIDTH = 42
"""Characters per subtitle line: the common broadcast guideline."""

_MD_INLINE = re.compile(r"([\\`*_\[\]<>|~])")
_MD_ORDERED = re.compile(r"^(\d+)([.)])")


def first_part(result: Result) -> Recording:
    """The conversation's first recording: it names and dates the whole conversation."""
    return result.parts[0] if result.parts else result.recording


def part_date(result: Result) -> str | None:
    """``YYYY-MM-DD`` (UTC) of the first part's modification time, None if out of range."""
    try:
        return datetime.fromtimestamp(first_part(result).mtime, UTC).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------
# JSON: everything, plus where it came from
# ---------------------------------------------------------------------------------------


def to_json(result: Result, *, generated_at: datetime | None = None) -> str:
    """The insights exactly as fetched, after an ``ingestd`` block naming their source files."""
    moment = (generated_at or datetime.now(UTC)).astimezone(UTC)
    data = {
        "ingestd": {
            "name": result.name,
            **({"notice": result.notice} if result.notice else {}),
            "conversation_id": result.conversation_id,
            "parts": [
                {"relpath": p.relpath, "sha256": p.sha256, "size_bytes": p.size_bytes}
                for p in result.parts
            ],
            "generated_at": moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
        },
        **result.insights.to_dict(),
    }
    return pretty_json(data) + "\n"


def pretty_json(data: Any) -> str:
    """`data` as indented JSON, non-ASCII as itself (orjson, in C: the standard library's
    encoder is pure Python as soon as it indents, a sixth of the daemon's CPU per recording
    in the throughput bench)."""
    return jsontext.pretty(data)


# ---------------------------------------------------------------------------------------
# Markdown: a readable report
# ---------------------------------------------------------------------------------------


def md_escape(value: Any) -> str:
    """User text as one Markdown line that renders literally.

    Inline markup (emphasis, code, links, HTML, tables, strikethrough) is backslash-escaped
    everywhere; a leading ``#``, ``>``, ``-``, ``+``, ``=`` or ``1.`` is escaped too, since
    it would start a heading, quote or list, or turn the line above into a heading.
    """
    text = _MD_INLINE.sub(r"\\\1", plain(value))
    if text[:1] in ("#", ">", "-", "+", "="):
        text = "\\" + text
    return _MD_ORDERED.sub(r"\1\\\2", text)


def to_markdown(result: Result) -> str:
    """Title, facts, summary, transcript, then one section per kind of insight.

    Sections with nothing in them are left out; times are ``[mm:ss]`` from the start.
    """
    insights = result.insights
    lines = transcript(insights.messages)
    blocks = [f"# {md_escape(result.name) or md_escape(result.conversation_id) or 'Conversation'}"]
    if result.notice:
        blocks.append(f"> **Note:** {md_escape(result.notice)}.")
    facts = [f"- Conversation: {md_escape(result.conversation_id)}"]
    if date := part_date(result):
        facts.append(f"- Date: {date}")
    if (duration := duration_seconds(lines)) is not None:
        facts.append(f"- Duration: {clock(duration)}")
    if speakers := _speakers(result, lines):
        facts.append(f"- Speakers: {', '.join(md_escape(s) for s in speakers)}")
    if missing := not_provided(insights):
        facts.append(f"- Not provided by this engine: {', '.join(missing)}")
    blocks.append("\n".join(facts))
    summary = [md_escape(item.get("text")) for item in _objects(insights.summary)]
    _section(blocks, "Summary", [s for s in summary if s], separator="\n\n")
    unlabelled = "members" in (insights.conversation.get("notProvided") or [])
    transcript_lines = [_md_line(line, unlabelled) for line in lines]
    _section(blocks, "Transcript", transcript_lines, separator="\n\n")
    _section(blocks, "Topics", _bullets(insights.topics, lambda _: ""))
    _section(blocks, "Questions", _bullets(insights.questions, _asked_by))
    _section(blocks, "Action items", _bullets(insights.action_items, _assigned))
    _section(blocks, "Follow-ups", _bullets(insights.follow_ups, _assigned))
    return "\n\n".join(blocks) + "\n"


def not_provided(insights: Any) -> list[str]:
    """The kinds the engine says it does not produce (``conversation.notProvided``), as
    words: an empty section then means "not looked for", not "none found"."""
    kinds = insights.conversation.get("notProvided")
    if not isinstance(kinds, list):
        return []
    return [str(kind).replace("_", " ").replace("follow ups", "follow-ups") for kind in kinds]


def _objects(items: Iterable[Any]) -> list[Mapping[str, Any]]:
    return [item for item in items if isinstance(item, Mapping)]


def _speakers(result: Result, lines: list[Line]) -> list[str]:
    """Members as the API lists them, else everyone who spoke, in order of first words."""
    members = result.insights.members or result.insights.conversation.get("members") or []
    names = [name for member in _objects(members) if (name := person(member))]
    if not names:
        names = [line.speaker for line in lines if line.speaker]
    return list(dict.fromkeys(names))


def _md_line(line: Line, unlabelled: bool = False) -> str:
    """``**Alice** [01:05]`` and the text; an engine that labels no speaker gets the time
    alone rather than "Unknown speaker" on every line."""
    when = f"[{clock(line.start)}]" if line.start is not None else ""
    if unlabelled and not line.speaker:
        return f"**{when}**\n{md_escape(line.text)}" if when else md_escape(line.text)
    speaker = md_escape(line.speaker) if line.speaker else "Unknown speaker"
    return f"**{speaker}**{' ' + when if when else ''}\n{md_escape(line.text)}"


def _bullets(items: Iterable[Any], details: Callable[[Mapping[str, Any]], str]) -> list[str]:
    out = []
    for item in _objects(items):
        text = md_escape(item.get("text"))
        if text:
            extra = details(item)
            out.append(f"- {text}{f' — {extra}' if extra else ''}")
    return out


def _asked_by(item: Mapping[str, Any]) -> str:
    name = person(item.get("from"))
    return f"asked by {md_escape(name)}" if name else ""


def _assigned(item: Mapping[str, Any]) -> str:
    parts = []
    if name := person(item.get("assignee")):
        parts.append(f"assignee: {md_escape(name)}")
    if due := _due_date(item.get("dueBy")):
        parts.append(f"due: {md_escape(due)}")
    return "; ".join(parts)


def _due_date(value: Any) -> str | None:
    """The date of an ISO due time as written (its own time zone), or the text as given."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return datetime.fromisoformat(value.strip()).date().isoformat()
    except ValueError:
        return value


def _section(blocks: list[str], title: str, items: list[str], separator: str = "\n") -> None:
    if items:
        blocks.append(f"## {title}\n\n{separator.join(items)}")


# ---------------------------------------------------------------------------------------
# Subtitles and plain text
# ---------------------------------------------------------------------------------------


def _speaking(line: Line) -> str:
    return f"{line.speaker}: {line.text}" if line.speaker else line.text


def _caption(line: Line) -> list[str]:
    text = _speaking(line)
    return textwrap.wrap(text, SUBTITLE_WIDTH, break_on_hyphens=False) or [text]


def to_srt(result: Result) -> str:
    """SubRip: numbered cues, ``00:01:02,345`` times, ``Speaker: text`` wrapped at 42."""
    blocks = []
    for n, (start, end, line) in enumerate(cues(transcript(result.insights.messages)), 1):
        # "-->" inside text would read as a timing line to lenient parsers.
        text = "\n".join(row.replace("-->", "->") for row in _caption(line))
        times = f"{subtitle_timestamp(start, ',')} --> {subtitle_timestamp(end, ',')}"
        blocks.append(f"{n}\n{times}\n{text}\n")
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(result: Result) -> str:
    """WebVTT: the header, then cues with ``00:01:02.345`` times and escaped text.

    The speaker is a visible ``Speaker:`` prefix rather than a ``<v>`` voice tag, which
    browsers do not display.
    """
    blocks = ["WEBVTT\n"]
    for start, end, line in cues(transcript(result.insights.messages)):
        text = "\n".join(_vtt_escape(row) for row in _caption(line))
        times = f"{subtitle_timestamp(start, '.')} --> {subtitle_timestamp(end, '.')}"
        blocks.append(f"{times}\n{text}\n")
    return "\n".join(blocks)


def to_txt(result: Result) -> str:
    """One line per message, ``Speaker: text``, for grep and plain readers."""
    return "".join(f"{_speaking(line)}\n" for line in transcript(result.insights.messages))


RENDERERS: dict[str, Callable[[Result], str]] = {
    "json": to_json,
    "markdown": to_markdown,
    "srt": to_srt,
    "vtt": to_vtt,
    "txt": to_txt,
}
"""Format name (as in the ``formats`` option) -> renderer."""
