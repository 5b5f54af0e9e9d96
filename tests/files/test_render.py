"""The five output formats, compared as whole strings, and their handling of hostile text."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ingestd.model import Insights
from ingestd.timeline import clock, subtitle_timestamp
from ingestd_files.render import (
    md_escape,
    pretty_json,
    to_json,
    to_markdown,
    to_srt,
    to_txt,
    to_vtt,
)
from tests.files.fixtures import CONVERSATION_ID, insights, message, result

MARKDOWN = """\
# Weekly sync

- Conversation: 5093288386543616
- Date: 2024-03-05
- Duration: 00:06
- Speakers: Alice, Bob

## Transcript

**Alice** [00:00]
Hi Bob, can we ship the deck by Friday?

**Bob** [00:04]
Yes. I will send it tomorrow.

## Topics

- deck

## Questions

- Can we ship the deck by Friday? — asked by Alice

## Action items

- Bob will send the deck tomorrow. — assignee: Bob; due: 2024-03-06

## Follow-ups

- Check in on the deck review. — assignee: Alice
"""

SRT = """\
1
00:00:00,500 --> 00:00:03,750
Alice: Hi Bob, can we ship the deck by
Friday?

2
00:00:04,000 --> 00:00:06,000
Bob: Yes. I will send it tomorrow.
"""

VTT = """\
WEBVTT

00:00:00.500 --> 00:00:03.750
Alice: Hi Bob, can we ship the deck by
Friday?

00:00:04.000 --> 00:00:06.000
Bob: Yes. I will send it tomorrow.
"""

TXT = """\
Alice: Hi Bob, can we ship the deck by Friday?
Bob: Yes. I will send it tomorrow.
"""


class TestWholeDocuments:
    def test_markdown(self) -> None:
        """The report has facts, transcript and every insight section, in order."""
        assert to_markdown(result()) == MARKDOWN

    def test_srt(self) -> None:
        """SRT cues are numbered, use comma milliseconds and wrap at 42 characters."""
        assert to_srt(result()) == SRT

    def test_vtt(self) -> None:
        """WebVTT starts with its header and uses dot milliseconds, without cue numbers."""
        assert to_vtt(result()) == VTT

    def test_txt(self) -> None:
        """The plain transcript is one ``Speaker: text`` line per message."""
        assert to_txt(result()) == TXT

    def test_json_holds_everything_plus_its_sources(self) -> None:
        """JSON is the insights unchanged after an ``ingestd`` block of the source parts."""
        moment = datetime(2024, 3, 5, 11, 0, tzinfo=UTC)
        data = json.loads(to_json(result(parts=2), generated_at=moment))
        part = {"sha256": "ab" * 32, "size_bytes": 10}
        assert data == {
            "ingestd": {
                "name": "Weekly sync",
                "conversation_id": CONVERSATION_ID,
                "parts": [{"relpath": "part0.wav", **part}, {"relpath": "part1.wav", **part}],
                "generated_at": "2024-03-05T11:00:00Z",
            },
            **insights().to_dict(),
        }

    def test_json_keeps_unicode_readable(self) -> None:
        """Non-ASCII text is written as itself, not as ``\\u`` escapes."""
        text = to_json(result(name="Zoë's call"))
        assert '"name": "Zoë\'s call"' in text and text.endswith("}\n")

    def test_json_is_indented_as_the_standard_library_writes_it(self) -> None:
        """orjson (C) writes the same text as ``json.dumps(indent=2)`` would, byte for byte."""
        moment = datetime(2024, 3, 5, 11, 0, tzinfo=UTC)
        text = to_json(result(parts=2), generated_at=moment)
        assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"

    def test_json_writes_what_orjson_refuses(self) -> None:
        """A lone surrogate (the sink turns it into "?") and an integer beyond 64 bits are
        written the standard library's way instead of failing the delivery."""
        assert pretty_json({"text": "a\ud800b"}) == '{\n  "text": "a\ud800b"\n}'
        assert json.loads(pretty_json({"n": 2**70})) == {"n": 2**70}


class TestMissingFields:
    def test_empty_conversation(self) -> None:
        """With no messages or insights, sections are omitted and subtitles are empty."""
        empty = result(Insights(conversation_id="c1"), name="")
        assert to_markdown(empty) == "# c1\n\n- Conversation: c1\n- Date: 2024-03-05\n"
        assert (to_srt(empty), to_vtt(empty), to_txt(empty)) == ("", "WEBVTT\n", "")

    def test_no_speaker_and_no_times(self) -> None:
        """Untimed messages get back-to-back cues lasting their reading time, no prefix."""
        data = Insights(
            conversation_id="c1",
            messages=[
                {"text": "Hello."},
                {"text": "A rather longer second line, read in three s."},
                {"text": "   "},
                {"from": {}, "text": "Last."},
            ],
        )
        assert to_srt(result(data)) == (
            "1\n00:00:00,000 --> 00:00:01,000\nHello.\n\n"
            "2\n00:00:01,000 --> 00:00:04,000\nA rather longer second line, read in three\ns.\n\n"
            "3\n00:00:04,000 --> 00:00:05,000\nLast.\n"
        )
        assert to_txt(result(data)) == (
            "Hello.\nA rather longer second line, read in three s.\nLast.\n"
        )
        assert to_markdown(result(data)).endswith(
            "## Transcript\n\n**Unknown speaker**\nHello.\n\n"
            "**Unknown speaker**\nA rather longer second line, read in three s.\n\n"
            "**Unknown speaker**\nLast.\n"
        )

    def test_iso_times_are_relative_to_the_first_message(self) -> None:
        """Without timeOffset, startTime/endTime count from the first message's start."""
        data = Insights(
            conversation_id="c1",
            messages=[
                {
                    "text": "One.",
                    "startTime": "2024-03-05T10:00:03Z",
                    "endTime": "2024-03-05T10:00:04.5Z",
                },
                {"text": "Two.", "startTime": "2024-03-05T10:00:05.250+00:00"},
                {"text": "Three.", "startTime": "2024-03-05T10:00:05.750Z"},
            ],
        )
        assert to_vtt(result(data)) == (
            "WEBVTT\n\n"
            "00:00:00.000 --> 00:00:01.500\nOne.\n\n"
            "00:00:02.250 --> 00:00:02.750\nTwo.\n\n"
            "00:00:02.750 --> 00:00:03.750\nThree.\n"
        )

    def test_speakers_fall_back_to_who_spoke(self) -> None:
        """Without a member list, the speakers are the message authors in order of first word."""
        data = Insights(
            conversation_id="c1",
            messages=[
                message("a", "Speaker 2", 0, 1, 1),
                message("b", "Speaker 1", 1, 1, 2),
                message("c", "Speaker 2", 2, 1, 3),
            ],
        )
        assert "- Speakers: Speaker 2, Speaker 1\n" in to_markdown(result(data))


class TestTimestamps:
    @pytest.mark.parametrize(
        ("seconds", "srt", "md"),
        [
            (0, "00:00:00,000", "00:00"),
            (59.999, "00:00:59,999", "00:59"),
            (59.9996, "00:01:00,000", "00:59"),
            (61.5, "00:01:01,500", "01:01"),
            (3599.9994, "00:59:59,999", "59:59"),
            (3723.456, "01:02:03,456", "1:02:03"),
            (360000.0, "100:00:00,000", "100:00:00"),
            (-2.0, "00:00:00,000", "00:00"),
        ],
    )
    def test_formats(self, seconds: float, srt: str, md: str) -> None:
        """SRT/VTT round to the millisecond; the Markdown clock floors to whole seconds."""
        assert subtitle_timestamp(seconds, ",") == srt
        assert subtitle_timestamp(seconds, ".") == srt.replace(",", ".")
        assert clock(seconds) == md

    def test_cues_past_one_hour(self) -> None:
        """Hours appear in cue times and in the Markdown clock of long recordings."""
        data = insights([message("Late remark.", "Bob", 3723.456, 1.5, 1)])
        assert to_srt(result(data)) == "1\n01:02:03,456 --> 01:02:04,956\nBob: Late remark.\n"
        assert "**Bob** [1:02:03]\nLate remark." in to_markdown(result(data))


class TestHostileText:
    @pytest.mark.parametrize(
        ("text", "escaped"),
        [
            ("plain text, 100% fine.", "plain text, 100% fine."),
            ("# Heading", "\\# Heading"),
            ("---", "\\---"),
            ("===", "\\==="),
            ("> quote", "\\> quote"),
            ("- item", "\\- item"),
            ("+ item", "\\+ item"),
            ("1. first", "1\\. first"),
            ("12) twelfth", "12\\) twelfth"),
            ("*bold* _it_ `code` ~~x~~", "\\*bold\\* \\_it\\_ \\`code\\` \\~\\~x\\~\\~"),
            ("[link](http://x) ![img](y)", "\\[link\\](http://x) !\\[img\\](y)"),
            ("<script>alert(1)</script>", "\\<script\\>alert(1)\\</script\\>"),
            ("| a | b |", "\\| a \\| b \\|"),
            ("back\\slash", "back\\\\slash"),
            ("two\nlines\r\n## more", "two lines ## more"),
            ("ctrl\x00\x1b[31m", "ctrl\\[31m"),
        ],
    )
    def test_md_escape(self, text: str, escaped: str) -> None:
        """Markup and line-start syntax are escaped and line breaks flattened."""
        assert md_escape(text) == escaped

    def test_a_message_cannot_add_headings_or_lists(self) -> None:
        """Whatever the messages and names say, the only block-level lines are our own."""
        evil = "x\n# Owned\n\n---\n- item\n```\n<div>"
        data = insights([message(evil, evil, 0, 1, 1), message("===", "Bob", 1, 1, 2)])
        data.action_items[0]["assignee"] = {"name": evil}
        data.topics[0]["text"] = evil
        lines = to_markdown(result(data, name=evil)).splitlines()
        structural = [ln for ln in lines if ln[:1] in ("#", "-", "=", "`", "<", ">")]
        assert structural == [
            "# x # Owned --- - item \\`\\`\\` \\<div\\>",
            "- Conversation: 5093288386543616",
            "- Date: 2024-03-05",
            "- Duration: 00:02",
            "- Speakers: Alice, Bob",
            "## Transcript",
            "## Topics",
            "- x # Owned --- - item \\`\\`\\` \\<div\\>",
            "## Questions",
            "- Can we ship the deck by Friday? — asked by Alice",
            "## Action items",
            "- Bob will send the deck tomorrow. — assignee: x # Owned --- - item"
            " \\`\\`\\` \\<div\\>; due: 2024-03-06",
            "## Follow-ups",
            "- Check in on the deck review. — assignee: Alice",
        ]

    def test_vtt_and_srt_escape_their_own_syntax(self) -> None:
        """WebVTT text escapes tags and entities; SRT text never contains a cue arrow."""
        data = insights([message("a <b>bold</b> & c --> d", "<Eve>", 0, 1, 1)])
        assert to_vtt(result(data)).endswith(
            "\n&lt;Eve&gt;: a &lt;b&gt;bold&lt;/b&gt; &amp; c --&gt; d\n"
        )
        assert to_srt(result(data)).endswith("\n<Eve>: a <b>bold</b> & c -> d\n")

    def test_long_text_wraps_at_42(self) -> None:
        """Subtitle lines never exceed 42 characters, even for one very long word."""
        text = "word " * 30 + "x" * 100
        srt = to_srt(result(insights([message(text, "Alice", 0, 9, 1)])))
        rows = srt.splitlines()[2:]
        assert max(len(row) for row in rows) == 42
        assert "".join(rows).replace(" ", "") == ("Alice:" + text).replace(" ", "")
