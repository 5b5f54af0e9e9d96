"""The Slack post of a transcript-only result: the words, and what the engine does not make,
instead of an empty card with an "Unknown speaker"."""

from __future__ import annotations

import json

from ingestd.testing import sample_result
from ingestd_openai.conversations import merge
from ingestd_slack.blocks import render_message


def transcript_only(speakers: tuple[str, ...] = ()) -> dict:
    segments = [
        {"text": "Hello there.", "start": 0.0, "end": 5.0},
        {"text": "Bye.", "start": 5.0, "end": 9.0},
    ]
    for segment, speaker in zip(segments, speakers, strict=False):
        segment["speaker"] = speaker
    part = {"tag": "t", "text": "Hello there. Bye.", "duration": 9.0, "segments": segments}
    return {"id": "openai-x", "parts": [part]}


def test_the_transcript_and_what_is_not_provided_are_shown() -> None:
    message = render_message(sample_result(insights=merge(transcript_only(), "whisper-1")))
    texts = json.dumps(message.blocks)
    assert "*Transcript*\\nHello there. Bye." in texts
    assert "Not provided by this engine: topics, questions, action items, follow-ups, members" in (
        texts
    )
    assert "Speakers" not in texts and "Unknown speaker" not in texts


def test_speakers_the_server_labelled_are_listed() -> None:
    insights = merge(transcript_only(("Ana", "Ben")), "whisper-1")
    texts = json.dumps(render_message(sample_result(insights=insights)).blocks)
    assert "Speakers" in texts and "Ana" in texts and "Ben" in texts
    assert "follow-ups, summary" in texts and "members" not in texts.split("Not provided")[1]
