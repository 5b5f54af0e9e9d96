"""The message itself: layout, Slack's limits, and escaping of everything users control."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import pytest

from ingestd_slack.blocks import LIMITS, SECTIONS, format_duration, render_message
from ingestd_slack.mrkdwn import escape, units
from tests.slack.fixtures import CONVERSATION_ID, HOSTILE, check_blocks, insights, message, result


def mrkdwn_texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Every mrkdwn string in `blocks` (section texts, fields, context elements)."""
    texts = []
    for block in blocks:
        objects = [block.get("text") or {}, *block.get("fields", []), *block.get("elements", [])]
        texts += [o["text"] for o in objects if o.get("type") == "mrkdwn"]
    return texts


def section(blocks: list[dict[str, Any]], title: str) -> dict[str, Any]:
    [found] = [b for b in blocks if b["type"] == "section" and b["text"]["text"] == title]
    return found


def section_text(blocks: list[dict[str, Any]], title: str) -> str:
    [found] = [
        b["text"]["text"]
        for b in blocks
        if b["type"] == "section" and b["text"]["text"].startswith(title + "\n")
    ]
    return found


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


class TestLayout:
    def test_whole_message_for_a_small_conversation(self) -> None:
        """Header, context, divider, then speakers by talk time, topics by score, action
        items with assignee and due date, questions and follow-ups; a short fallback text."""
        message_ = render_message(result())
        assert message_.blocks == [
            {"type": "header", "text": {"type": "plain_text", "text": "Weekly sync"}},
            {
                "type": "context",
                "elements": [mrkdwn(f"⏱ 10s · 1 part · a.wav · conversation `{CONVERSATION_ID}`")],
            },
            {"type": "divider"},
            {
                "type": "section",
                "text": mrkdwn("*Speakers*"),
                "fields": [mrkdwn("*Bob*\n6s"), mrkdwn("*Alice*\n3s")],
            },
            {"type": "section", "text": mrkdwn("*Topics*\n• deck\n• review")},
            {
                "type": "section",
                "text": mrkdwn(
                    "*Action items*\n• Bob will send the deck tomorrow. — Bob, due 2024-03-06"
                ),
            },
            {"type": "section", "text": mrkdwn("*Questions*\n• Can we ship the deck by Friday?")},
            {
                "type": "section",
                "text": mrkdwn("*Follow-ups*\n• Check in on the deck review. — Alice"),
            },
        ]
        assert message_.text == (
            "Weekly sync: 1 action item, 1 question, 1 follow-up, 2 topics "
            f"(conversation {CONVERSATION_ID})"
        )

    def test_empty_sections_are_left_out(self) -> None:
        """A conversation with messages only shows its speakers and no empty headings."""
        data = insights(topics=[], questions=[], action_items=[], follow_ups=[], members=[])
        message_ = render_message(result(data))
        assert [b["type"] for b in message_.blocks] == ["header", "context", "divider", "section"]
        assert message_.blocks[3]["text"]["text"] == "*Speakers*"
        assert message_.text == f"Weekly sync (conversation {CONVERSATION_ID})"

    def test_sections_option_chooses_and_orders(self) -> None:
        """Only the listed sections appear, in the listed order; the summary when fetched."""
        data = insights(summary=[{"id": "s1", "text": "Deck ships Friday."}])
        blocks = render_message(result(data), sections=["questions", "summary"]).blocks
        assert [b["text"]["text"] for b in blocks[3:]] == [
            "*Questions*\n• Can we ship the deck by Friday?",
            "*Summary*\n• Deck ships Friday.",
        ]

    def test_context_for_an_appended_conversation_without_message_timing(self) -> None:
        """With several parts the latest file is named; the duration falls back to the
        conversation's start and end times."""
        data = insights(messages=[{"id": "m1", "text": "hi", "from": {"name": "Alice"}}])
        [element] = render_message(result(data, parts=3)).blocks[1]["elements"]
        assert element["text"] == (
            f"⏱ 7s · 3 parts · latest sales/part3.wav · conversation `{CONVERSATION_ID}`"
        )

    def test_untitled_and_unknown_speakers(self) -> None:
        """A blank name falls back to the conversation's, then to a placeholder; nameless
        message authors are grouped as one unknown speaker."""
        data = insights(conversation={}, members=[])
        data.messages.append(message("hmm", "", 10.0, 2.0, 3))
        blocks = render_message(result(data, name=" \n ")).blocks
        assert blocks[0]["text"]["text"] == "Untitled conversation"
        assert [f["text"] for f in section(blocks, "*Speakers*")["fields"]] == [
            "*Bob*\n6s",
            "*Alice*\n3s",
            "*Unknown speaker*\n2s",
        ]

    @pytest.mark.parametrize(
        ("seconds", "shown"), [(0.4, "0s"), (6, "6s"), (245, "4m 05s"), (3723.2, "1h 02m 03s")]
    )
    def test_durations(self, seconds: float, shown: str) -> None:
        """Durations read as seconds, minutes and hours with padded units."""
        assert format_duration(seconds) == shown


class TestLimits:
    def test_huge_conversation_stays_within_slack_limits(self) -> None:
        """Thousands of long items are cut to fit every Block Kit limit, each list ending
        with how many were left out."""
        many = 3000
        long = "word " * 600
        data = insights(
            members=[{"id": f"u{i}", "name": f"Speaker {i} " + "x" * 300} for i in range(many)],
            messages=[message(long, f"Speaker {i} " + "x" * 300, i, 1.0, i) for i in range(many)],
            topics=[{"text": f"topic {i} {long}", "score": i} for i in range(many)],
            questions=[{"text": f"q{i}? {long}"} for i in range(many)],
            action_items=[
                {"text": f"do {i} {long}", "assignee": {"name": "A" * 900}, "dueBy": "x" * 900}
                for i in range(many)
            ],
            follow_ups=[{"text": f"f{i} {long}"} for i in range(many)],
            summary=[{"text": long * 10} for _ in range(many)],
        )
        message_ = render_message(
            result(data, name="N" * 500), max_items=dict.fromkeys(SECTIONS, 50)
        )
        assert check_blocks(message_.blocks) is None
        assert len(message_.blocks) == 3 + len(SECTIONS)
        assert units(message_.blocks[0]["text"]["text"]) == 150
        assert units(message_.text) <= LIMITS["text"]
        for block in message_.blocks[3:]:
            text = block["text"]["text"]
            assert units(text) <= 3000
            if "fields" in block:
                assert len(block["fields"]) == 10
                assert block["fields"][-1]["text"] == f"… and {many - 9} more"
                assert all(units(f["text"]) <= 2000 for f in block["fields"])
            else:
                shown = text.count("\n• ")
                assert 1 <= shown < 50
                assert text.endswith(f"\n… and {many - shown} more")

    def test_max_items_cuts_each_section_and_counts_the_rest(self) -> None:
        """Twelve topics with max_items 10 show the ten best and "… and 2 more"."""
        data = insights(topics=[{"text": f"t{i}", "score": i} for i in range(12)])
        text = section_text(render_message(result(data)).blocks, "*Topics*")
        assert text == "*Topics*\n" + "\n".join(f"• t{i}" for i in range(11, 1, -1)) + (
            "\n… and 2 more"
        )

    def test_speakers_beyond_max_items_share_one_field(self) -> None:
        """With max_items 3, two speakers are shown and the third field counts the rest."""
        data = insights(members=[{"name": f"S{i}"} for i in range(5)], messages=[])
        block = section(
            render_message(result(data), max_items={"speakers": 3}).blocks, "*Speakers*"
        )
        assert [f["text"] for f in block["fields"]] == ["*S0*", "*S1*", "… and 3 more"]

    def test_cuts_never_split_entities_or_wide_characters(self) -> None:
        """An item of ampersands is cut between whole ``&amp;`` entities, and a header of
        emoji counts each as two UTF-16 units."""
        data = insights(topics=[{"text": "&" * 2000}])
        line = section_text(render_message(result(data)).blocks, "*Topics*").split("\n• ")[1]
        assert re.fullmatch(r"(&amp;)+…", line)
        assert units(line) <= 500
        header = render_message(result(name="🎙" * 200)).blocks[0]["text"]["text"]
        assert header == "🎙" * 74 + "…"


class TestEscaping:
    def test_escape_uses_slacks_three_entities(self) -> None:
        """``&``, ``<`` and ``>`` become entities, so control sequences turn into text."""
        assert escape("<!channel> & <@U1|boss> <http://evil|click>") == (
            "&lt;!channel&gt; &amp; &lt;@U1|boss&gt; &lt;http://evil|click&gt;"
        )

    @pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
    def test_hostile_text_everywhere_is_neutralised(self, hostile: str) -> None:
        """A hostile name, file name, speaker, topic, item, assignee or summary can neither
        notify, mention nor link, nor break a line, and stays within the limits."""
        data = insights(
            conversation={"name": hostile},
            members=[{"name": hostile}],
            messages=[message(hostile, hostile, 0.0, 1.0, 1)],
            topics=[{"text": hostile}],
            questions=[{"text": hostile}],
            action_items=[{"text": hostile, "assignee": {"name": hostile}, "dueBy": hostile}],
            follow_ups=[{"text": hostile}],
            summary=[{"text": hostile}],
        )
        res = result(data, name=hostile)
        res = type(res)(
            name=res.name,
            recording=type(res.recording)(**{**vars(res.recording), "relpath": hostile}),
            parts=res.parts,
            insights=res.insights,
        )
        message_ = render_message(res)
        assert check_blocks(message_.blocks) is None
        texts = [*mrkdwn_texts(message_.blocks), message_.text]
        header = message_.blocks[0]["text"]["text"]
        for text in [*texts, header]:
            json.dumps(text, ensure_ascii=False).encode("utf-8")  # no lone surrogates
            assert not any(unicodedata.category(c) in ("Cc", "Cs") and c != "\n" for c in text)
            assert not any("\u202a" <= c <= "\u202e" for c in text)
        for text in texts:
            assert "<" not in text and ">" not in text
            assert re.sub(r"&(amp|lt|gt);", "", text).count("&") == 0
            assert not re.search(r"@(channel|here|everyone)", text)
        assert "\n" not in header
        speakers = section(message_.blocks, "*Speakers*")  # nothing broke a line:
        assert [f["text"].count("\n") for f in speakers["fields"]] == [1]  # name, talk time
        for block in message_.blocks[3:]:
            if block is speakers:
                continue
            lines = block["text"]["text"].split("\n")
            assert len(lines) == 2 and lines[1].startswith("• ")

    def test_names_keep_their_text_but_not_their_markup(self) -> None:
        """A speaker called ``*boss*`` stays readable inside the bold span without ending
        it, and the file name keeps its mention as visible text."""
        data = insights(members=[{"name": "*boss* <@U1>"}], messages=[])
        res = result(data, name="Line one\nline two <!here>")
        blocks = render_message(res).blocks
        assert blocks[0]["text"]["text"] == "Line one line two <!here>"  # plain_text: literal
        assert section(blocks, "*Speakers*")["fields"][0]["text"] == "*∗boss∗ &lt;@U1&gt;*"
