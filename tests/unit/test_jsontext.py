"""`ingestd.jsontext`: the daemon's own JSON files, orjson with the standard library's way
for what orjson refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingestd import jsontext

INSIGHTS_LIKE = {
    "messages": [
        {"id": "1", "text": "Grüße aus Köln — 東京 🎙", "from": {"name": "Zoë"}},
        {"id": "2", "text": 'quotes " and \\ and \n newlines', "startTime": "2026-12-07T10:00:00Z"},
    ],
    "topics": [],
    "score": 0.25,
    "count": 3,
    "none": None,
}


class TestDumps:
    def test_the_same_data_as_the_standard_library(self) -> None:
        assert json.loads(jsontext.dumps(INSIGHTS_LIKE)) == INSIGHTS_LIKE
        assert jsontext.loads(jsontext.dumps(INSIGHTS_LIKE)) == INSIGHTS_LIKE

    def test_utf8_not_escapes(self) -> None:
        assert "Köln".encode() in jsontext.dumps(INSIGHTS_LIKE)

    def test_what_orjson_refuses_goes_the_standard_way(self) -> None:
        """A lone surrogate (an API can send one, escaped) and an integer beyond 64 bits."""
        data = {"text": "a\ud800b", "n": 2**70}
        written = jsontext.dumps(data)
        assert written.isascii()
        assert jsontext.loads(written) == data

    def test_keys_and_values_json_has_no_type_for(self) -> None:
        assert jsontext.loads(jsontext.dumps({1: Path("/x")})) == {"1": "/x"}

    def test_pretty_is_indented_and_readable(self) -> None:
        text = jsontext.pretty({"a": ["é"]})
        assert text == '{\n  "a": [\n    "é"\n  ]\n}'
        assert jsontext.pretty({"text": "a\ud800b"}) == '{\n  "text": "a\ud800b"\n}'


class TestLoads:
    def test_bytes_and_str(self) -> None:
        assert jsontext.loads(b'{"a": 1}') == jsontext.loads('{"a": 1}') == {"a": 1}

    def test_not_json_is_a_value_error(self) -> None:
        with pytest.raises(ValueError):
            jsontext.loads(b"<html>proxy error</html>")
        with pytest.raises(ValueError):
            jsontext.loads(b"")

    def test_read_a_file_as_utf8(self, tmp_path: Path) -> None:
        path = tmp_path / "insights.json"
        path.write_bytes(jsontext.dumps(INSIGHTS_LIKE))
        assert jsontext.read(path) == INSIGHTS_LIKE
        assert jsontext.read(str(path)) == INSIGHTS_LIKE
        with pytest.raises(FileNotFoundError):
            jsontext.read(tmp_path / "missing.json")
