"""Async parameter validation and recording (symbl-api.md §3.1–§3.3)."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from tests.sandbox.conftest import wav


def _query(**params: str) -> str:
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


def _post(api, query: str):
    return api.request(
        "POST", f"/v1/process/audio?{query}", content=wav(), headers={"Content-Type": "audio/wav"}
    )


GOOD = {
    "name": "Weekly sync",
    "webhookUrl": "https://example.com/hook?x=1",
    "confidenceThreshold": "0.5",
    "detectPhrases": "true",
    "detectEntities": "false",
    "languageCode": "en-GB",
    "mode": "phone",
    "enableSeparateRecognitionPerChannel": "true",
    "channelMetadata": json.dumps([{"channel": 1, "speaker": {"name": "Ann", "email": "a@x"}}]),
    "entities": json.dumps([{"customType": "Product", "text": "Widget", "value": "widget"}]),
    "trackers": json.dumps([{"name": "Price", "vocabulary": ["price", "cost"]}]),
    "enableAllTrackers": "false",
    "enableSummary": "true",
    "enableSpeakerDiarization": "true",
    "diarizationSpeakerCount": "3",
    "features": json.dumps({"featureList": ["insights"]}),
    "metadata": json.dumps({"salesStage": "qualification"}),
}


def test_every_documented_parameter_is_accepted_and_parsed(api):
    """All §3.1 keys validate, and the submission records the raw query and parsed values."""
    query = _query(**GOOD, customVocabulary='["Platform","Discussion"]')
    response = _post(api, query)
    assert response.status_code == 201, response.text
    submission = api.sandbox.submissions()[-1]
    assert submission["query_string"] == query
    params = submission["params"]
    assert params["confidenceThreshold"] == 0.5
    assert params["detectPhrases"] is True and params["detectEntities"] is False
    assert params["diarizationSpeakerCount"] == 3
    assert params["customVocabulary"] == ["Platform", "Discussion"]
    assert params["channelMetadata"][0]["speaker"]["name"] == "Ann"
    assert params["trackers"] == [{"name": "Price", "vocabulary": ["price", "cost"]}]
    assert params["features"] == {"featureList": ["insights"]}


@pytest.mark.parametrize(
    "query",
    [
        "customVocabulary=%5B%22Platform%22%2C%22Discussion%22%5D",
        "customVocabulary=Platform&customVocabulary=Discussion",
    ],
)
def test_custom_vocabulary_both_encodings(api, query):
    """customVocabulary is accepted as one JSON array and as repeated keys, parsed the same."""
    assert _post(api, query).status_code == 201
    assert api.sandbox.submissions()[-1]["params"]["customVocabulary"] == [
        "Platform",
        "Discussion",
    ]


def test_single_plain_custom_vocabulary_value(api):
    """A single non-JSON customVocabulary value is a one-word list."""
    assert _post(api, "customVocabulary=Platform").status_code == 201
    assert api.sandbox.submissions()[-1]["params"]["customVocabulary"] == ["Platform"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("foo=1", '"foo" is not allowed'),
        ("confidenceThreshold=0.49", '"confidenceThreshold" must be greater than or equal to 0.5'),
        ("confidenceThreshold=1.01", '"confidenceThreshold" must be less than or equal to 1'),
        ("confidenceThreshold=high", '"confidenceThreshold" must be a number'),
        ("confidenceThreshold=nan", '"confidenceThreshold" must be a number'),
        ("detectPhrases=yes", '"detectPhrases" must be a boolean'),
        ("detectEntities=1", '"detectEntities" must be a boolean'),
        ("enableSummary=True", '"enableSummary" must be a boolean'),
        ("mode=stereo", '"mode" must be one of [phone, default]'),
        ("diarizationSpeakerCount=0",
         '"diarizationSpeakerCount" must be greater than or equal to 1'),
        ("diarizationSpeakerCount=2.5", '"diarizationSpeakerCount" must be an integer'),
        ("name=", '"name" is not allowed to be empty'),
        ("name=a&name=b", '"name" must be a single value'),
        ("webhookUrl=not-a-url", '"webhookUrl" must be a valid uri'),
        ("customVocabulary=%5B1%2C2%5D", '"customVocabulary[0]" must be a string'),
        ("customVocabulary=%5Bbroken", '"customVocabulary" must be valid JSON'),
        ("entities=%7B%7D", '"entities" must be an array'),
        ("entities=%5B%7B%22text%22%3A%22a%22%7D%5D", '"entities[0].customType" is required'),
        ("channelMetadata=%5B%7B%22channel%22%3A1%7D%5D",
         '"channelMetadata[0].speaker" is required'),
        ("trackers=%5B%7B%22name%22%3A%22x%22%2C%22vocabulary%22%3A%5B%5D%7D%5D",
         '"trackers[0].vocabulary" must be a non-empty array of strings'),
    ],
)  # fmt: skip
def test_invalid_parameters_are_400(api, query, message):
    """Each invalid value answers 400 with a Joi-style message and creates nothing."""
    response = _post(api, query)
    assert response.status_code == 400
    assert response.json() == {"message": message}
    assert api.sandbox.jobs() == []
    assert api.sandbox.submissions()[-1]["outcome"] == "rejected"


@pytest.mark.parametrize("code", ["en-US", "es-ES", "fa-IR", "ja-JP"])
def test_supported_language_codes(api, code):
    """Every §8 language code is accepted."""
    assert _post(api, f"languageCode={code}").status_code == 201


def test_unsupported_language_code(api):
    """A language outside §8 is a 400."""
    assert _post(api, "languageCode=en-NZ").status_code == 400


def test_put_validates_like_post(api):
    """PUT appends take (and reject) the same parameters as POST."""
    cid = _post(api, "name=x").json()["conversationId"]
    path = f"/v1/process/audio/{cid}"
    headers = {"Content-Type": "audio/wav"}
    bad = api.request("PUT", f"{path}?confidenceThreshold=2", content=wav(), headers=headers)
    assert bad.status_code == 400
    good = api.request("PUT", f"{path}?detectPhrases=true", content=wav(), headers=headers)
    assert good.status_code == 201


def test_url_body_is_json_typed(api):
    """URL routes take the parameters JSON-typed in the body and record them parsed."""
    response = api.submit_url(
        "https://example.com/a.mp3",
        name="From URL",
        confidenceThreshold=0.7,
        detectPhrases=True,
        customVocabulary=["a", "b"],
        languageCode="en-US",
        trackers=[{"name": "T", "vocabulary": ["x"]}],
        timezoneOffset=-300,
    )
    assert response.status_code == 201, response.text
    submission = api.sandbox.submissions()[-1]
    assert submission["url"] == "https://example.com/a.mp3"
    assert submission["params"]["customVocabulary"] == ["a", "b"]
    assert submission["params"]["confidenceThreshold"] == 0.7


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"confidenceThreshold": 0.2},
            '"confidenceThreshold" must be greater than or equal to 0.5',
        ),
        ({"detectPhrases": "maybe"}, '"detectPhrases" must be a boolean'),
        ({"customVocabulary": "a,b"}, '"customVocabulary" must be an array'),
        ({"trackers": '[{"name": "x"}]'}, '"trackers" must be an array'),
        ({"bogus": 1}, '"bogus" is not allowed'),
    ],
)
def test_url_body_validation(api, body, message):
    """Wrongly typed or unknown body keys on URL routes are 400."""
    response = api.submit_url("https://example.com/a.mp3", **body)
    assert (response.status_code, response.json()) == (400, {"message": message})


def test_url_routes_take_three_keys_from_the_query(api):
    """Diarization keys and webhookUrl are accepted in the query of URL routes; others are not."""
    query = "enableSpeakerDiarization=true&diarizationSpeakerCount=4&webhookUrl=http%3A%2F%2Fh%2Fw"
    response = api.request(
        "POST", f"/v1/process/video/url?{query}", json={"url": "https://example.com/v.mp4"}
    )
    assert response.status_code == 201
    params = api.sandbox.submissions()[-1]["params"]
    assert params["diarizationSpeakerCount"] == 4
    assert params["webhookUrl"] == "http://h/w"
    response = api.request(
        "POST", "/v1/process/video/url?name=x", json={"url": "https://example.com/v.mp4"}
    )
    assert response.json() == {"message": '"name" is not allowed'}
