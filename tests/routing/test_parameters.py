"""The parameter schema of ingestd_routing: every §3.1 parameter, its values and its rules."""

from __future__ import annotations

from typing import Any

import pytest

from ingestd_routing.parameters import LANGUAGES, SCHEMA, problems, show

SPEC_PARAMETERS = (
    "name",
    "webhookUrl",
    "customVocabulary",
    "confidenceThreshold",
    "detectPhrases",
    "entities",
    "detectEntities",
    "languageCode",
    "mode",
    "enableSeparateRecognitionPerChannel",
    "channelMetadata",
    "trackers",
    "enableAllTrackers",
    "enableSummary",
    "enableSpeakerDiarization",
    "diarizationSpeakerCount",
    "features",
    "metadata",
)
"""symbl-api.md §3.1, in its order (features/metadata: the Python SDK's objects)."""

BOOLEANS = (
    "detectPhrases",
    "detectEntities",
    "enableSeparateRecognitionPerChannel",
    "enableAllTrackers",
    "enableSummary",
    "enableSpeakerDiarization",
)

SPEAKER = {"name": "Ann", "email": "ann@example.com"}

# (parameter, a valid value): accepted (with its COMPANIONS)
VALID = [
    ("name", "Weekly sync"),
    ("webhookUrl", "https://hooks.example.com/symbl"),
    ("webhookUrl", "http://10.0.0.1:8080/x"),
    ("customVocabulary", ["Symbl", "ingestd"]),
    ("confidenceThreshold", 0.5),
    ("confidenceThreshold", 0.75),
    ("confidenceThreshold", 1),
    ("entities", [{"customType": "Product", "text": "ingestd"}]),
    ("entities", [{"customType": "Product", "text": "ingestd", "value": {"id": 3}}]),
    ("languageCode", "es-ES"),
    ("mode", "phone"),
    ("mode", "default"),
    (
        "channelMetadata",
        [{"channel": 1, "speaker": SPEAKER}, {"channel": 2, "speaker": {"email": "b@x.io"}}],
    ),
    ("diarizationSpeakerCount", 3),
    ("trackers", [{"name": "Pricing", "vocabulary": ["price", "cost"]}]),
    ("features", {"featureList": ["insights", "callScore"]}),
    ("metadata", {"salesStage": "qualification", "prospectName": "Acme"}),
    *[(name, value) for name in BOOLEANS for value in (True, False)],
]

# (parameter, a bad value, the problem line)
INVALID = [
    ("name", "", "name: expected a non-empty string, got ''"),
    ("name", 42, "name: expected a non-empty string, got 42"),
    (
        "webhookUrl",
        "hooks.example.com",
        "webhookUrl: expected an http(s) URL, got 'hooks.example.com'",
    ),
    ("webhookUrl", "ftp://x/y", "webhookUrl: expected an http(s) URL, got 'ftp://x/y'"),
    (
        "customVocabulary",
        "Symbl",
        "customVocabulary: expected a non-empty list of strings, got 'Symbl'",
    ),
    ("customVocabulary", [], "customVocabulary: expected a non-empty list of strings, got []"),
    ("customVocabulary", ["a", 3], "customVocabulary[1]: expected a non-empty string, got 3"),
    ("confidenceThreshold", 0.2, "confidenceThreshold: expected a number from 0.5 to 1.0, got 0.2"),
    ("confidenceThreshold", 1.5, "confidenceThreshold: expected a number from 0.5 to 1.0, got 1.5"),
    (
        "confidenceThreshold",
        "0.7",
        "confidenceThreshold: expected a number from 0.5 to 1.0, got '0.7'",
    ),
    (
        "confidenceThreshold",
        True,
        "confidenceThreshold: expected a number from 0.5 to 1.0, got true",
    ),
    (
        "confidenceThreshold",
        float("nan"),
        "confidenceThreshold: expected a number from 0.5 to 1.0, got nan",
    ),
    (
        "entities",
        {"customType": "P", "text": "x"},
        "entities: expected a non-empty list of entities {customType, text}, "
        "got {'customType': 'P', 'text': 'x'}",
    ),
    ("entities", [{"text": "x"}], "entities[0].customType: missing; it is required"),
    (
        "entities",
        [{"customType": "P", "text": "x", "kind": 1}],
        "entities[0].kind: unknown key; expected customType, text, value",
    ),
    (
        "languageCode",
        "en-us",
        "languageCode: expected one of "
        + ", ".join(LANGUAGES)
        + ", got 'en-us'; did you mean 'en-US'?",
    ),
    (
        "languageCode",
        "xx-YY",
        "languageCode: expected one of " + ", ".join(LANGUAGES) + ", got 'xx-YY'",
    ),
    ("mode", "phon", "mode: expected one of phone, default, got 'phon'; did you mean 'phone'?"),
    (
        "channelMetadata",
        [{"channel": 0, "speaker": SPEAKER}],
        "channelMetadata[0].channel: expected a channel number >= 1, got 0",
    ),
    ("channelMetadata", [{"channel": 1}], "channelMetadata[0].speaker: missing; it is required"),
    (
        "channelMetadata",
        [{"channel": 1, "speaker": "Ann"}],
        "channelMetadata[0].speaker: expected an object with a name and/or an email, got 'Ann'",
    ),
    (
        "channelMetadata",
        [{"channel": 1, "speaker": {"name": "A", "phone": "1"}}],
        "channelMetadata[0].speaker.phone: unknown key; expected name, email, userId",
    ),
    (
        "channelMetadata",
        [{"channel": 1, "speaker": SPEAKER}, {"channel": 1, "speaker": SPEAKER}],
        "channelMetadata: channel 1 is mapped more than once",
    ),
    (
        "trackers",
        [{"name": "Pricing", "vocabulary": []}],
        "trackers[0].vocabulary: expected a non-empty list of strings, got []",
    ),
    ("trackers", [{"vocabulary": ["a"]}], "trackers[0].name: missing; it is required"),
    ("diarizationSpeakerCount", 0, "diarizationSpeakerCount: expected a whole number >= 1, got 0"),
    (
        "diarizationSpeakerCount",
        2.5,
        "diarizationSpeakerCount: expected a whole number >= 1, got 2.5",
    ),
    (
        "diarizationSpeakerCount",
        "2",
        "diarizationSpeakerCount: expected a whole number >= 1, got '2'",
    ),
    ("features", ["insights"], "features: expected an object (a mapping), got ['insights']"),
    ("metadata", {"when": float("inf")}, "metadata.when: expected a finite number, got inf"),
    *[(name, "true", f"{name}: expected true or false, got 'true'") for name in BOOLEANS],
    *[(name, 1, f"{name}: expected true or false, got 1") for name in BOOLEANS],
]

# parameters needed beside the one tested, so that the combination is allowed
COMPANIONS: dict[str, dict[str, Any]] = {
    "channelMetadata": {"enableSeparateRecognitionPerChannel": True},
    "diarizationSpeakerCount": {"enableSpeakerDiarization": True},
}


class TestSchema:
    def test_every_documented_parameter_and_no_other(self) -> None:
        """The schema holds exactly the §3.1 parameters, each with a wire note."""
        assert tuple(SCHEMA) == SPEC_PARAMETERS
        assert all(p.wire and p.kind for p in SCHEMA.values())

    def test_every_parameter_has_valid_and_invalid_cases(self) -> None:
        """The tables below exercise each parameter both ways."""
        assert {name for name, _ in VALID} == set(SCHEMA)
        assert {name for name, _, _ in INVALID} == set(SCHEMA)


class TestValues:
    @pytest.mark.parametrize(("name", "value"), VALID)
    def test_valid(self, name: str, value: Any) -> None:
        """A documented value is accepted."""
        assert problems({name: value, **COMPANIONS.get(name, {})}) == []

    @pytest.mark.parametrize(("name", "value", "line"), INVALID)
    def test_invalid(self, name: str, value: Any, line: str) -> None:
        """A bad value gives one line naming the key, what was expected and what was found."""
        assert problems({name: value, **COMPANIONS.get(name, {})}) == [line]

    def test_prefix_and_every_problem_at_once(self) -> None:
        """All problems are reported together, each after the caller's prefix."""
        found = problems(
            {"confidenceThreshold": 0.2, "custumVocabulary": ["x"], "url": "https://x/y"},
            prefix="watch[sales].parameters.",
        )
        assert found == [
            "watch[sales].parameters.confidenceThreshold: expected a number from 0.5 to 1.0, "
            "got 0.2",
            "watch[sales].parameters.custumVocabulary: unknown parameter; "
            "did you mean 'customVocabulary'?",
            "watch[sales].parameters.url: not a parameter: URL routes get it from "
            "endpoint.public_base_url",
        ]

    def test_yaml_date_inside_an_object_is_caught(self) -> None:
        """A value JSON cannot carry (an unquoted YAML date) is reported, not sent."""
        import datetime

        found = problems({"metadata": {"meetingDate": datetime.date(2024, 5, 1)}})
        assert found == [
            "metadata.meetingDate: expected a JSON value, got a date (2024-05-01); "
            "quote it in the YAML"
        ]

    def test_show_spells_values_as_yaml(self) -> None:
        """Values in messages read like YAML: true, null, quoted text."""
        assert [show(True), show(None), show("x"), show(0.2)] == ["true", "null", "'x'", "0.2"]


class TestCombinations:
    @pytest.mark.parametrize(
        ("params", "line"),
        [
            (
                {
                    "channelMetadata": [{"channel": 1, "speaker": SPEAKER}],
                    "enableSeparateRecognitionPerChannel": False,
                },
                "channelMetadata: only used with enableSeparateRecognitionPerChannel: true",
            ),
            (
                {"enableSpeakerDiarization": True, "enableSeparateRecognitionPerChannel": True},
                "enableSpeakerDiarization: both it and enableSeparateRecognitionPerChannel are "
                "true, and the API then ignores the channels; set one of them to false",
            ),
            (
                {"diarizationSpeakerCount": 2},
                "diarizationSpeakerCount: only used with enableSpeakerDiarization: true",
            ),
            (
                {"enableSpeakerDiarization": True, "languageCode": "de-DE"},
                "enableSpeakerDiarization: speaker diarization works for English and Spanish "
                "only, but languageCode is 'de-DE'",
            ),
        ],
    )
    def test_contradictions(self, params: dict[str, Any], line: str) -> None:
        """Values fine alone but contradicting each other are one clear line."""
        assert problems(params) == [line]

    def test_channel_metadata_implies_per_channel(self) -> None:
        """channelMetadata alone is fine: it switches per-channel recognition on."""
        assert problems({"channelMetadata": [{"channel": 1, "speaker": SPEAKER}]}) == []

    def test_spanish_diarization_is_fine(self) -> None:
        """Diarization works for Spanish."""
        assert problems({"enableSpeakerDiarization": True, "languageCode": "es-US"}) == []
