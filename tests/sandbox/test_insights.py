"""Deterministic conversation content in the §9 shapes."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from tests.sandbox.conftest import wav

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
ENDPOINTS = (
    "", "/messages?verbose=true&sentiment=true", "/topics?sentiment=true&parentRefs=true",
    "/questions", "/action-items", "/follow-ups", "/members", "/summary", "/analytics",
    "/entities", "/trackers-detected", "/trackers",
)  # fmt: skip
RICH = {
    "detectPhrases": "true",
    "detectEntities": "true",
    "customVocabulary": '["Kubernetes","Snowflake"]',
    "trackers": json.dumps([{"name": "Competition", "vocabulary": ["Contoso", "Fabrikam"]}]),
    "entities": json.dumps([{"customType": "Product", "text": "Widget Pro", "value": "wpro"}]),
}


def _complete(api, body: bytes, cid: str | None = None, **params) -> dict:
    response = api.upload(body, conversation_id=cid, params=params or None)
    assert response.status_code == 201, response.text
    api.wait(response.json()["jobId"])
    return response.json()


def _everything(api, cid: str) -> dict:
    return {e: api.get(f"/v1/conversations/{cid}{e}").json() for e in ENDPOINTS}


def test_first_message_names_the_uploaded_bytes(api):
    """Each part starts with `part sha256=<hex> bytes=<n>` of exactly the uploaded body."""
    body = wav(5000)
    cid = _complete(api, body)["conversationId"]
    first = api.get(f"/v1/conversations/{cid}/messages").json()["messages"][0]
    assert f"part sha256={hashlib.sha256(body).hexdigest()} bytes={len(body)}" in first["text"]


def test_parts_append_in_order_with_continuing_offsets(api):
    """A second part's messages follow the first's, with timeOffsets continuing after it."""
    one, two = wav(100), wav(200)
    cid = _complete(api, one)["conversationId"]
    count_one = len(api.get(f"/v1/conversations/{cid}/messages").json()["messages"])
    _complete(api, two, cid)
    messages = api.get(f"/v1/conversations/{cid}/messages").json()["messages"]
    assert hashlib.sha256(two).hexdigest() in messages[count_one]["text"]
    offsets = [m["timeOffset"] for m in messages]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    last_of_one = messages[count_one - 1]
    assert messages[count_one]["timeOffset"] > last_of_one["timeOffset"] + last_of_one["duration"]
    assert len({m["id"] for m in messages}) == len(messages)
    conversation = api.get(f"/v1/conversations/{cid}").json()
    assert conversation["endTime"] > conversation["startTime"]


def test_message_shape_and_toggles(api):
    """Messages carry §9 keys; words only with verbose, sentiment only with sentiment=true."""
    cid = _complete(api, wav())["conversationId"]
    base = {
        "id",
        "text",
        "from",
        "startTime",
        "endTime",
        "timeOffset",
        "duration",
        "conversationId",
    }
    plain = api.get(f"/v1/conversations/{cid}/messages").json()["messages"]
    assert all(set(m) == base for m in plain)
    full = api.get(f"/v1/conversations/{cid}/messages?verbose=true&sentiment=true").json()
    for m in full["messages"]:
        assert set(m) == base | {"words", "sentiment"}
        assert re.fullmatch(r"\d{16}", m["id"]) and m["conversationId"] == cid
        assert ISO.fullmatch(m["startTime"]) and ISO.fullmatch(m["endTime"])
        assert m["sentiment"]["suggested"] in ("positive", "negative", "neutral")
        assert -1 <= m["sentiment"]["polarity"]["score"] <= 1
        assert [w["word"] for w in m["words"]] == m["text"].split()
        word_keys = {"word", "startTime", "endTime", "score", "timeOffset", "duration"}
        assert all(set(w) == word_keys for w in m["words"])
    assert api.get(f"/v1/conversations/{cid}/messages?verbose=yes").status_code == 400


def test_phrases_only_with_detect_phrases(api):
    """`phrases` appears on messages only when the submission had detectPhrases=true."""
    without = _complete(api, wav())["conversationId"]
    with_ = _complete(api, wav(), detectPhrases="true")["conversationId"]
    plain = api.get(f"/v1/conversations/{without}/messages").json()["messages"]
    rich = api.get(f"/v1/conversations/{with_}/messages").json()["messages"]
    assert not any("phrases" in m for m in plain)
    assert all("phrases" in m for m in rich)
    assert any(p["type"] == "action_phrase" for m in rich for p in m["phrases"])


def test_entities_only_with_detect_entities(api):
    """The Entities API is empty without detectEntities and finds custom entities with it."""
    without = _complete(api, wav(), entities=RICH["entities"])["conversationId"]
    assert api.get(f"/v1/conversations/{without}/entities").json() == {"entities": []}
    cid = _complete(api, wav(), **RICH)["conversationId"]
    entities = api.get(f"/v1/conversations/{cid}/entities").json()["entities"]
    custom = [e for e in entities if e["type"] == "custom"]
    assert custom and custom[0]["customType"] == "Product" and custom[0]["value"] == "wpro"
    messages = {m["id"]: m["text"] for m in _messages(api, cid)}
    for entity in entities:
        assert {"type", "value", "text", "messageRefs"} <= set(entity)
        for ref in entity["messageRefs"]:
            assert messages[ref["id"]][ref["offset"] :].startswith(entity["text"])


def test_trackers_detected_is_a_bare_array_of_submitted_vocabulary(api):
    """Submitted tracker vocabulary that is spoken shows up in /trackers-detected and /trackers."""
    cid = _complete(api, wav(), trackers=RICH["trackers"])["conversationId"]
    detected = api.get(f"/v1/conversations/{cid}/trackers-detected").json()
    assert isinstance(detected, list) and len(detected) == 1
    tracker = detected[0]
    assert set(tracker) == {"id", "name", "matches"} and tracker["name"] == "Competition"
    match = tracker["matches"][0]
    assert set(match) == {"type", "value", "messageRefs", "insightRefs"}
    assert (match["type"], match["value"]) == ("vocabulary", "Contoso")
    messages = {m["id"]: m["text"] for m in _messages(api, cid)}
    ref = match["messageRefs"][0]
    assert messages[ref["id"]][ref["offset"] :].startswith("Contoso")
    assert api.get(f"/v1/conversations/{cid}/trackers").json() == detected
    plain = _complete(api, wav())["conversationId"]
    assert api.get(f"/v1/conversations/{plain}/trackers-detected").json() == []


def test_custom_vocabulary_is_spoken_back(api):
    """Submitted customVocabulary terms appear in the transcript (so tests can see them arrive)."""
    cid = _complete(api, wav(), customVocabulary=RICH["customVocabulary"])["conversationId"]
    text = " ".join(m["text"] for m in _messages(api, cid))
    assert "Kubernetes" in text and "Snowflake" in text


def test_insight_shapes_and_references(api):
    """Every §9 endpoint answers its documented keys, and ids point at real messages."""
    cid = _complete(api, wav(), **RICH)["conversationId"]
    data = _everything(api, cid)
    ids = {m["id"] for m in _messages(api, cid)}
    conversation = data[""]
    assert set(conversation) == {
        "id",
        "type",
        "name",
        "startTime",
        "endTime",
        "members",
        "metadata",
    }
    assert (conversation["type"], conversation["metadata"]) == ("meeting", {})
    topics = data["/topics?sentiment=true&parentRefs=true"]["topics"]
    assert topics and all(
        set(t) == {"id", "text", "type", "score", "messageIds", "sentiment", "parentRefs"}
        for t in topics
    )
    questions = data["/questions"]["questions"]
    assert questions and all(q["text"].endswith("?") and q["type"] == "question" for q in questions)
    actions = data["/action-items"]["actionItems"]
    task_keys = {"id", "text", "type", "score", "messageIds", "entities", "phrases", "from",
                 "definitive", "assignee", "dueBy"}  # fmt: skip
    assert actions and all(set(a) == task_keys and a["type"] == "action_item" for a in actions)
    assert all(a["assignee"]["name"] in a["text"] for a in actions)
    follow_ups = data["/follow-ups"]["followUps"]
    assert follow_ups and all(set(f) == task_keys and ISO.fullmatch(f["dueBy"]) for f in follow_ups)
    summary = data["/summary"]["summary"]
    assert summary and all(set(s) == {"id", "text", "messageRefs"} for s in summary)
    for item in topics + questions + actions + follow_ups:
        assert set(item["messageIds"]) <= ids and item["messageIds"]
    assert {ref["id"] for s in summary for ref in s["messageRefs"]} <= ids
    analytics = data["/analytics"]
    assert [m["type"] for m in analytics["metrics"]] == [
        "total_silence",
        "total_talk_time",
        "total_overlap",
    ]
    member = analytics["members"][0]
    assert {"id", "name", "pace", "talkTime", "listenTime", "overlap"} <= set(member)
    assert data["/members"]["members"] == conversation["members"]


def test_diarization_names_speakers(api):
    """With diarization the members are Speaker 1..N and messages come `from` {id, name}."""
    cid = _complete(api, wav(), enableSpeakerDiarization="true", diarizationSpeakerCount="3")[
        "conversationId"
    ]
    members = api.get(f"/v1/conversations/{cid}/members").json()["members"]
    assert [m["name"] for m in members] == ["Speaker 1", "Speaker 2", "Speaker 3"]
    senders = [m["from"] for m in _messages(api, cid)]
    assert all(set(s) == {"id", "name"} for s in senders)
    assert {s["id"] for s in senders} == {m["id"] for m in members}


def test_default_diarization_count_is_two(api):
    """Diarization without a count yields two speakers."""
    cid = _complete(api, wav(), enableSpeakerDiarization="true")["conversationId"]
    members = api.get(f"/v1/conversations/{cid}/members").json()["members"]
    assert [m["name"] for m in members] == ["Speaker 1", "Speaker 2"]


def test_channel_metadata_names_speakers(api):
    """Per-channel recognition takes names and emails from channelMetadata."""
    channels = [
        {"channel": 2, "speaker": {"name": "Bea", "email": "bea@example.com"}},
        {"channel": 1, "speaker": {"name": "Al", "email": "al@example.com"}},
    ]
    cid = _complete(
        api,
        wav(),
        enableSeparateRecognitionPerChannel="true",
        channelMetadata=json.dumps(channels),
    )["conversationId"]
    members = api.get(f"/v1/conversations/{cid}/members").json()["members"]
    assert [(m["name"], m["email"]) for m in members] == [
        ("Al", "al@example.com"),
        ("Bea", "bea@example.com"),
    ]
    assert _messages(api, cid)[0]["from"] == {"name": "Al", "email": "al@example.com"}
    questions = api.get(f"/v1/conversations/{cid}/questions").json()["questions"]
    assert questions[0]["from"]["userId"].endswith("@example.com")


def test_default_single_member(api):
    """Without diarization or channels there is one default member."""
    cid = _complete(api, wav())["conversationId"]
    assert len(api.get(f"/v1/conversations/{cid}/members").json()["members"]) == 1


def test_non_english_parts_have_no_insights(api):
    """Topics, questions, action items and follow-ups are English only."""
    cid = _complete(api, wav(), languageCode="de-DE")["conversationId"]
    assert _messages(api, cid)
    for what, key in (("topics", "topics"), ("questions", "questions"),
                      ("action-items", "actionItems"), ("follow-ups", "followUps")):  # fmt: skip
        assert api.get(f"/v1/conversations/{cid}/{what}").json() == {key: []}


def test_same_bytes_same_text_in_one_sandbox(api):
    """The same upload in two conversations produces the same texts (ids differ)."""
    body = wav(3000)
    first = _complete(api, body)["conversationId"]
    second = _complete(api, body)["conversationId"]
    texts = [[m["text"] for m in _messages(api, cid)] for cid in (first, second)]
    assert texts[0] == texts[1]
    other = _complete(api, wav(3000))["conversationId"]
    assert [m["text"] for m in _messages(api, other)] != texts[0]


def test_seeded_sandboxes_are_identical(make_sandbox, make_api):
    """Two sandboxes with the same seed and uploads give identical JSON apart from times."""
    bodies = [wav(4000, seed=b"abc"), wav(4000, seed=b"xyz")]
    results = []
    for _ in range(2):
        api = make_api(make_sandbox(seed=42))
        ids = _complete(api, bodies[0], **RICH)
        _complete(api, bodies[1], ids["conversationId"], enableSpeakerDiarization="true")
        results.append((ids, _without_times(_everything(api, ids["conversationId"]))))
    assert results[0] == results[1]


def test_unseeded_sandboxes_use_different_ids(make_sandbox, make_api):
    """Without a seed conversation ids differ between sandboxes (no collisions across runs)."""
    ids = [make_api(make_sandbox()).upload(wav()).json()["conversationId"] for _ in range(2)]
    assert ids[0] != ids[1]


def _messages(api, cid: str) -> list[dict]:
    return api.get(f"/v1/conversations/{cid}/messages").json()["messages"]


def _without_times(data):
    """Drop wall-clock dependent values (timestamps and dates derived from them)."""
    if isinstance(data, dict):
        dated = data.get("type") == "date"
        return {
            k: _without_times(v)
            for k, v in data.items()
            if k not in ("startTime", "endTime", "dueBy") and not (dated and k == "value")
        }
    if isinstance(data, list):
        return [_without_times(v) for v in data]
    return data


@pytest.mark.parametrize("what", ["summary", "topics"])
def test_url_parts_have_content(api, what):
    """URL parts produce insights like file parts."""
    response = api.submit_url("https://example.com/a.mp3")
    api.wait(response.json()["jobId"])
    cid = response.json()["conversationId"]
    assert api.get(f"/v1/conversations/{cid}/{what}").json()[what]
