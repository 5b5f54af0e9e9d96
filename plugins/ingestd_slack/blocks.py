"""A conversation's insights as one Slack message: Block Kit blocks plus a plain fallback.

Pure: `render_message(result, ...)` reads a `Result` and returns a `Message`; nothing here
talks to Slack. The message is, top to bottom::

    header    the conversation's name (plain_text, ≤ 150)
    context   duration · parts · latest file · conversation id
    divider
    section   Summary       (if fetched)
    section   Speakers      one mrkdwn field each, by talk time (≤ 10 fields)
    section   Topics        by score
    section   Action items  "text — assignee, due date"
    section   Questions
    section   Follow-ups    "text — assignee, due date"

Sections with nothing to show are left out, and their order follows the ``sections``
option. Every block is built within Slack's limits (`LIMITS`): lists stop at ``max_items``
or when the next line would not fit, and end with "… and N more"; one block per section
keeps the message far below 50 blocks however big the conversation. All user text goes
through `ingestd_slack.mrkdwn`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ingestd import Result
from ingestd_slack.mrkdwn import bold, clean, code, fit_mrkdwn, fit_plain, units

LIMITS = {
    "blocks": 50,
    "header": 150,
    "section_text": 3000,
    "fields": 10,
    "field_text": 2000,
    "context_text": 3000,
    "text": 3000,  # Slack allows 40,000; the fallback only has to fill a notification
}
"""Slack's Block Kit limits (characters), as this module applies them."""

ITEM_LIMIT = 500
"""A single list item (a topic, question, action item) is cut at this many characters."""

NAME_LIMIT = 100
"""Speaker and assignee names are cut at this many characters."""

SECTIONS = ("summary", "speakers", "topics", "action_items", "questions", "follow_ups")
"""Every section the message can have, in the default order."""

TITLES = {
    "summary": "Summary",
    "speakers": "Speakers",
    "topics": "Topics",
    "action_items": "Action items",
    "questions": "Questions",
    "follow_ups": "Follow-ups",
}

UNTITLED = "Untitled conversation"
UNKNOWN_SPEAKER = "Unknown speaker"


@dataclass(frozen=True)
class Message:
    """What is posted: the blocks, and the plain `text` Slack shows in notifications."""

    text: str
    blocks: list[dict[str, Any]]


def render_message(
    result: Result,
    *,
    sections: Sequence[str] = SECTIONS,
    max_items: Mapping[str, int] | None = None,
) -> Message:
    """Build the message for `result`.

    Args:
        result: the conversation as the core hands it to sinks.
        sections: which sections to include, in this order (names from `SECTIONS`).
        max_items: most items listed per section (default 10); the rest are counted.
    """
    limits = max_items or {}
    insights = result.insights
    title = (
        clean(result.name, max_chars=200)
        or clean(insights.conversation.get("name"), max_chars=200)
        or UNTITLED
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": fit_plain(title, 150)}},
        _mrkdwn_context(_facts(result)),
        {"type": "divider"},
    ]
    builders = {
        "summary": lambda: _list_section(
            "summary", insights.summary, lambda s: _item(s, ITEM_LIMIT * 2), limits
        ),
        "speakers": lambda: _speakers_section(_speakers(insights), limits.get("speakers", 10)),
        "topics": lambda: _list_section("topics", _ranked(insights.topics), _item, limits),
        "action_items": lambda: _list_section(
            "action_items", insights.action_items, _task_line, limits
        ),
        "questions": lambda: _list_section("questions", insights.questions, _item, limits),
        "follow_ups": lambda: _list_section("follow_ups", insights.follow_ups, _task_line, limits),
    }
    missing = not_provided(insights)
    if missing:  # a transcript-only engine: show the words, and say what it does not make
        blocks.append(_transcript_excerpt(insights))
    for name in sections:
        if name == "speakers" and "members" in missing:
            continue  # no speaker labels: "Unknown speaker, 100 %" would say nothing
        block = builders[name]()
        if block is not None:
            blocks.append(block)
    if missing:
        blocks.append(_mrkdwn_context("Not provided by this engine: " + ", ".join(missing)))
    return Message(text=_fallback(title, result), blocks=blocks[: LIMITS["blocks"]])


# --- header and context ----------------------------------------------------------------


def _facts(result: Result) -> str:
    """The context line: duration, parts, latest file, conversation id (mrkdwn)."""
    facts = []
    seconds = duration_seconds(result.insights)
    if seconds is not None:
        facts.append(f"⏱ {format_duration(seconds)}")
    count = len(result.parts) or 1
    facts.append(f"{count} part" if count == 1 else f"{count} parts")
    latest = clean(result.recording.relpath, max_chars=300)
    if latest:
        facts.append(("latest " if count > 1 else "") + fit_mrkdwn(latest, 300))
    facts.append(f"conversation {code(clean(result.conversation_id), 120)}")
    return " · ".join(facts)


def not_provided(insights: Any) -> list[str]:
    """The kinds the engine says it does not produce (``conversation.notProvided``), as words."""
    kinds = insights.conversation.get("notProvided")
    if not isinstance(kinds, list):
        return []
    return [str(kind).replace("_", " ").replace("follow ups", "follow-ups") for kind in kinds]


def _transcript_excerpt(insights: Any) -> dict[str, Any]:
    """The start of the transcript's text, as a section (the engine's only insight)."""
    text = clean(insights.conversation.get("text")) or "(no speech found)"
    title = bold("Transcript", 50)
    body = fit_mrkdwn(text, LIMITS["section_text"] - units(title) - 1)
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": f"{title}\n{body}", "verbatim": True},
    }


def _mrkdwn_context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text, "verbatim": True}]}


def duration_seconds(insights: Any) -> float | None:
    """How long the conversation ran: the end of its last message, else its start/end times."""
    ends = [
        float(m["timeOffset"]) + float(m["duration"])
        for m in insights.messages
        if isinstance(m, dict) and _is_number(m.get("timeOffset")) and _is_number(m.get("duration"))
    ]
    if ends:
        return max(ends)
    start = _parse_time(insights.conversation.get("startTime"))
    end = _parse_time(insights.conversation.get("endTime"))
    if start and end and end >= start:
        return (end - start).total_seconds()
    return None


def format_duration(seconds: float) -> str:
    """``6s``, ``4m 05s``, ``1h 02m 03s``."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


# --- sections ---------------------------------------------------------------------------


def _list_section(
    name: str, items: Sequence[Any], render: Callable[[Any], str], limits: Mapping[str, int]
) -> dict[str, Any] | None:
    """A titled bullet list within the section limit, ending with "… and N more" when
    ``max_items`` or the limit cut it. Only items that are shown get rendered, so a
    conversation with thousands of topics costs no more than one with ten."""
    candidates = [item for item in items if _has_text(item)]
    budget = LIMITS["section_text"]
    text = bold(TITLES[name], 50)
    reserve = units(f"\n… and {len(candidates)} more")
    shown = skipped = 0
    for item in candidates[: limits.get(name, 10)]:
        line = render(item)
        if not line:  # nothing printable left after cleaning
            skipped += 1
            continue
        if units(text) + units("\n• " + line) + reserve > budget:
            break
        text += "\n• " + line
        shown += 1
    if not shown:
        return None
    more = len(candidates) - shown - skipped
    if more:
        text += f"\n… and {more} more"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}


def _has_text(item: Any) -> bool:
    return isinstance(item, dict) and bool(str(item.get("text") or "").strip())


def _speakers_section(speakers: list[tuple[str, float | None]], cap: int) -> dict[str, Any] | None:
    """One field per speaker (name, talk time); the tenth field counts the rest."""
    if not speakers:
        return None
    cap = max(1, min(cap, LIMITS["fields"]))
    shown = speakers if len(speakers) <= cap else speakers[: max(cap - 1, 1)]
    fields = [
        {
            "type": "mrkdwn",
            "text": bold(name, NAME_LIMIT + 2)
            + (f"\n{format_duration(seconds)}" if seconds is not None else ""),
            "verbatim": True,
        }
        for name, seconds in shown
    ]
    if len(shown) < len(speakers):
        fields.append(
            {"type": "mrkdwn", "text": f"… and {len(speakers) - len(shown)} more", "verbatim": True}
        )
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": bold(TITLES["speakers"], 50), "verbatim": True},
        "fields": fields[: LIMITS["fields"]],
    }


def _speakers(insights: Any) -> list[tuple[str, float | None]]:
    """Speakers by talk time (longest first), then in first-seen order (members, then
    message authors); names cleaned. Talk time is the sum of their messages' durations."""
    talk: dict[str, float] = {}
    seen: dict[str, None] = {}  # an ordered set
    for member in insights.members:
        if isinstance(member, dict):
            seen.setdefault(clean(member.get("name"), max_chars=NAME_LIMIT) or UNKNOWN_SPEAKER)
    for message in insights.messages:
        if not isinstance(message, dict):
            continue
        author = message.get("from")
        raw = author.get("name") if isinstance(author, dict) else None
        name = clean(raw, max_chars=NAME_LIMIT) or UNKNOWN_SPEAKER
        seen.setdefault(name)
        if _is_number(message.get("duration")):
            talk[name] = talk.get(name, 0.0) + float(message["duration"])
    # A stable sort: equal (or no) talk time keeps the first-seen order.
    ranked = sorted(seen, key=lambda name: -talk.get(name, -1.0))
    return [(name, talk.get(name)) for name in ranked]


def _item(item: dict[str, Any], limit: int = ITEM_LIMIT) -> str:
    """One list item's text: cleaned, flattened, escaped and cut at `limit`."""
    return fit_mrkdwn(clean(item.get("text"), max_chars=limit), limit)


def _ranked(topics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Topics by score, highest first (unscored last, in API order)."""
    scored = [t for t in topics if isinstance(t, dict)]
    return sorted(scored, key=lambda t: -float(t["score"]) if _is_number(t.get("score")) else 1.0)


def _task_line(item: dict[str, Any]) -> str:
    """``text — Assignee, due 2024-03-06`` for an action item or follow-up (escaped)."""
    text = clean(item.get("text"), max_chars=ITEM_LIMIT)
    if not text:
        return ""
    assignee = item.get("assignee")
    who = clean(assignee.get("name"), max_chars=NAME_LIMIT) if isinstance(assignee, dict) else ""
    due = _due_date(item.get("dueBy"))
    extra = ", ".join(
        part
        for part in (
            fit_mrkdwn(who, NAME_LIMIT) if who else "",
            f"due {fit_mrkdwn(due, 40)}" if due else "",
        )
        if part
    )
    line = fit_mrkdwn(text, ITEM_LIMIT)
    return f"{line} — {extra}" if extra else line


def _due_date(value: Any) -> str:
    """The date of an ISO ``dueBy`` (``2024-03-06``), else the value as given."""
    if not isinstance(value, str):
        return ""
    parsed = _parse_time(value.replace("Z", "+00:00"))
    return parsed.date().isoformat() if parsed else clean(value, max_chars=40)


def _fallback(title: str, result: Result) -> str:
    """The plain message text: name and counts, for notifications and old clients."""
    insights = result.insights
    counts = [
        (len(insights.action_items), "action item", "action items"),
        (len(insights.questions), "question", "questions"),
        (len(insights.follow_ups), "follow-up", "follow-ups"),
        (len(insights.topics), "topic", "topics"),
    ]
    summary = ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in counts if n)
    text = fit_mrkdwn(title, 200)
    if summary:
        text += f": {summary}"
    return text + f" (conversation {fit_mrkdwn(clean(result.conversation_id), 80)})"
