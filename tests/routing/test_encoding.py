"""What the routing plugin puts in `params` reaches the API spelt as the contract says (§3.3).

The plugin keeps native types; the Symbl client encodes them. These tests run the client's
encoders and the sandbox's parser on every parameter, so a value the plugin accepts is one
the API accepts, in the query string of the file routes and in the body of the URL routes.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from ingestd.sandbox.params import parse_file_query, parse_url_request
from ingestd_routing.parameters import SCHEMA, problems
from ingestd_symbl.params import encode_query, url_request

COMMON: dict[str, Any] = {
    "name": "Weekly sync – Zürich",
    "webhookUrl": "https://hooks.example.com/symbl?team=a&b=1",
    "customVocabulary": ["Symbl", "ingestd", "a,b"],
    "confidenceThreshold": 0.7,
    "detectPhrases": True,
    "entities": [{"customType": "Product", "text": "ingestd", "value": "ingestd"}],
    "detectEntities": False,
    "languageCode": "en-GB",
    "mode": "phone",
    "trackers": [{"name": "Pricing", "vocabulary": ["price", "cost"]}],
    "enableAllTrackers": True,
    "enableSummary": True,
    "features": {"featureList": ["insights"]},
    "metadata": {"salesStage": "demo", "prospectName": "Acme"},
}
PER_CHANNEL = {
    **COMMON,
    "enableSeparateRecognitionPerChannel": True,
    "channelMetadata": [
        {"channel": 1, "speaker": {"name": "Agent", "email": "agent@example.com"}},
        {"channel": 2, "speaker": {"name": "Customer"}},
    ],
}
DIARIZED = {**COMMON, "enableSpeakerDiarization": True, "diarizationSpeakerCount": 2}


def query_string(params: dict[str, Any]) -> str:
    """The query string the client sends (httpx encodes the pairs)."""
    return str(httpx.QueryParams(encode_query(params)))


class TestFileRoutes:
    def test_the_sets_cover_every_parameter(self) -> None:
        """Between them the two sets hold every parameter, and both are valid."""
        assert set(PER_CHANNEL) | set(DIARIZED) == set(SCHEMA)
        assert problems(PER_CHANNEL) == [] and problems(DIARIZED) == []

    @pytest.mark.parametrize("params", [PER_CHANNEL, DIARIZED], ids=["per-channel", "diarized"])
    def test_query_round_trip(self, params: dict[str, Any]) -> None:
        """Every parameter survives the client's query encoding and the API's parsing."""
        assert parse_file_query(query_string(params)) == params

    def test_spelling_on_the_wire(self) -> None:
        """Booleans are true/false, lists and objects one JSON key, numbers decimal."""
        pairs = parse_qsl(query_string(PER_CHANNEL))
        keys = [k for k, _ in pairs]
        raw = dict(pairs)
        assert keys.count("customVocabulary") == 1
        assert json.loads(raw["customVocabulary"]) == ["Symbl", "ingestd", "a,b"]
        assert raw["detectPhrases"] == "true" and raw["detectEntities"] == "false"
        assert raw["confidenceThreshold"] == "0.7"
        assert json.loads(raw["channelMetadata"]) == PER_CHANNEL["channelMetadata"]
        assert json.loads(raw["metadata"]) == PER_CHANNEL["metadata"]


class TestUrlRoutes:
    @pytest.mark.parametrize("params", [PER_CHANNEL, DIARIZED], ids=["per-channel", "diarized"])
    def test_body_round_trip(self, params: dict[str, Any]) -> None:
        """URL routes carry the same parameters JSON-typed; the API reads them back whole."""
        url = "https://media.example.com/calls/call%201.wav"
        query, body = url_request(url, params)
        parsed = parse_url_request(str(httpx.QueryParams(query)), json.loads(body))
        assert parsed == {**params, "url": url}

    def test_diarization_travels_in_the_query(self) -> None:
        """The two diarization keys go in the query, the rest in the body, JSON-typed."""
        query, body = url_request("https://m.example.com/a.wav", DIARIZED)
        assert dict(query) == {"enableSpeakerDiarization": "true", "diarizationSpeakerCount": "2"}
        data = json.loads(body)
        assert data["detectPhrases"] is True and data["customVocabulary"][0] == "Symbl"
