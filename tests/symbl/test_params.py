"""Parameter placement and wire encoding (symbl-api.md §3.1–§3.3)."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode

import pytest

from ingestd.config import Secret
from ingestd.errors import Permanent
from ingestd.model import EndpointKind
from ingestd_symbl.params import encode_query, submit_path, url_request


class TestPaths:
    @pytest.mark.parametrize(
        ("kind", "post", "put"),
        [
            (EndpointKind.AUDIO, "/v1/process/audio", "/v1/process/audio/42"),
            (EndpointKind.VIDEO, "/v1/process/video", "/v1/process/video/42"),
            (EndpointKind.AUDIO_URL, "/v1/process/audio/url", "/v1/process/audio/url/42"),
            (EndpointKind.VIDEO_URL, "/v1/process/video/url", "/v1/process/video/url/42"),
        ],
    )
    def test_all_eight_routes(self, kind: EndpointKind, post: str, put: str) -> None:
        """POST without a conversation id, PUT with it in the path."""
        assert submit_path(kind, None) == post
        assert submit_path(kind, "42") == put

    def test_conversation_id_is_escaped(self) -> None:
        """A conversation id cannot change the path."""
        assert submit_path(EndpointKind.AUDIO, "../x") == "/v1/process/audio/..%2Fx"


class TestQuery:
    def test_encoding(self) -> None:
        """Booleans, numbers, objects and customVocabulary are spelt per §3.3."""
        pairs = encode_query(
            {
                "name": "call 1",
                "detectPhrases": True,
                "enableSummary": False,
                "confidenceThreshold": 0.6,
                "diarizationSpeakerCount": 2,
                "customVocabulary": ["Platform", "Discussion"],
                "entities": [{"customType": "Product", "text": "ingestd"}],
                "channelMetadata": [{"channel": 1, "speaker": {"name": "Ann"}}],
                "trackers": [{"name": "price", "vocabulary": ["cost"]}],
                "webhookUrl": None,
            }
        )
        assert pairs == [
            ("name", "call 1"),
            ("detectPhrases", "true"),
            ("enableSummary", "false"),
            ("confidenceThreshold", "0.6"),
            ("diarizationSpeakerCount", "2"),
            ("customVocabulary", '["Platform","Discussion"]'),
            ("entities", '[{"customType":"Product","text":"ingestd"}]'),
            ("channelMetadata", '[{"channel":1,"speaker":{"name":"Ann"}}]'),
            ("trackers", '[{"name":"price","vocabulary":["cost"]}]'),
        ]
        # One key for the vocabulary, surviving URL encoding intact.
        decoded = parse_qsl(urlencode(pairs))
        assert [k for k, _ in decoded].count("customVocabulary") == 1

    def test_secret_sent_as_text(self) -> None:
        """A Secret parameter (a webhook URL with a token) travels as its value."""
        assert encode_query({"webhookUrl": Secret("https://h/x?t=1")}) == [
            ("webhookUrl", "https://h/x?t=1")
        ]

    def test_unencodable_value(self) -> None:
        """A value the API cannot take is a Permanent error naming the parameter."""
        with pytest.raises(Permanent, match="parameter confidenceThreshold"):
            encode_query({"confidenceThreshold": float("nan")})
        with pytest.raises(Permanent, match="parameter name"):
            encode_query({"name": object()})


class TestUrlRoutes:
    def test_placement(self) -> None:
        """Diarization keys go in the query; everything else JSON-typed in the body."""
        query, body = url_request(
            "https://media.example/a.mp3",
            {
                "name": "n",
                "webhookUrl": Secret("https://hook.example/t"),
                "customVocabulary": ["a"],
                "detectPhrases": True,
                "confidenceThreshold": 0.7,
                "enableSpeakerDiarization": True,
                "diarizationSpeakerCount": 3,
                "url": "https://ignored.example",
            },
        )
        assert query == [("enableSpeakerDiarization", "true"), ("diarizationSpeakerCount", "3")]
        assert json.loads(body) == {
            "url": "https://media.example/a.mp3",
            "name": "n",
            "webhookUrl": "https://hook.example/t",
            "customVocabulary": ["a"],
            "detectPhrases": True,
            "confidenceThreshold": 0.7,
        }
