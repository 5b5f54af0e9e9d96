"""From a Result to rows, without a database: cleaning, parsing, keys and the digest."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ingestd_database.rows import build_rows, clean, item_rows, number, parse_time, person
from tests.database.fixtures import appended, insights, result


class TestClean:
    def test_nul_is_removed_and_lone_surrogates_replaced(self) -> None:
        """Every string, keys included, loses U+0000; a lone surrogate becomes U+FFFD."""
        dirty = {"k\x00ey": ["a\x00b", {"x": "lone \udc80"}], "n": 1.5, "b": True}
        assert clean(dirty) == {"key": ["ab", {"x": "lone \ufffd"}], "n": 1.5, "b": True}

    def test_a_split_surrogate_pair_is_rejoined(self) -> None:
        """Two halves of one emoji become the emoji, not two replacement characters."""
        assert clean("party \ud83c\udf89") == "party 🎉"

    def test_non_finite_numbers_become_null(self) -> None:
        """NaN and infinity have no JSON or MySQL form."""
        assert clean([float("nan"), float("inf"), 2.0]) == [None, None, 2.0]


class TestValues:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("2024-03-05T10:00:00.500Z", datetime(2024, 3, 5, 10, 0, 0, 500000, tzinfo=UTC)),
            ("2024-03-06T17:00:00-05:00", datetime(2024, 3, 6, 22, tzinfo=UTC)),
            ("2024-03-05T10:00:00", datetime(2024, 3, 5, 10, tzinfo=UTC)),
            ("next Friday", None),
            ("", None),
            (1709632800, None),
            (None, None),
        ],
    )
    def test_parse_time(self, value: object, expected: datetime | None) -> None:
        """ISO times become aware UTC (naive means UTC); anything else is NULL."""
        parsed = parse_time(value)
        assert parsed == expected
        if parsed is not None:
            assert parsed.utcoffset() == timedelta(0)
            assert parsed.tzinfo is UTC

    def test_number(self) -> None:
        """Numbers and numeric strings are kept; booleans and words are not numbers."""
        assert [number(v) for v in (1, 2.5, "0.75", True, "high", None, "nan")] == [
            1.0,
            2.5,
            0.75,
            None,
            None,
            None,
            None,
        ]

    def test_person_falls_back_to_user_id_for_the_email(self) -> None:
        """Questions carry ``userId`` (the email address) instead of ``email``."""
        assert person({"id": "u1", "name": "Al", "userId": "al@x.org"}, "speaker") == {
            "speaker_id": "u1",
            "speaker_name": "Al",
            "speaker_email": "al@x.org",
        }
        assert person(None, "assignee") == {
            "assignee_id": None,
            "assignee_name": None,
            "assignee_email": None,
        }


class TestKeys:
    def test_items_without_an_id_are_keyed_by_position(self) -> None:
        """A missing or empty id becomes ``#<position>``."""
        rows = item_rows("c", "members", [{"name": "A"}, {"id": "", "name": "B"}, {"id": 7}])
        assert [(r["id"], r["position"], r["name"]) for r in rows] == [
            ("#0", 0, "A"),
            ("#1", 1, "B"),
            ("7", 2, None),
        ]

    def test_duplicate_ids_keep_the_last(self) -> None:
        """Two items sharing an id would collide in the key; the later one wins."""
        rows = item_rows("c", "topics", [{"id": "t", "text": "old"}, {"id": "t", "text": "new"}])
        assert [(r["id"], r["position"], r["text"]) for r in rows] == [("t", 1, "new")]


class TestDigest:
    def test_equal_content_equal_digest(self) -> None:
        """Building the same result twice gives the same digest."""
        assert build_rows(result()).digest == build_rows(result()).digest

    def test_any_change_changes_the_digest(self) -> None:
        """A new message, a renamed conversation or another part each change it."""
        digests = {
            build_rows(result()).digest,
            build_rows(result(appended())).digest,
            build_rows(result(name="Renamed")).digest,
            build_rows(result(parts=2)).digest,
            build_rows(result(replace(insights(), summary=[]))).digest,
        }
        assert len(digests) == 5
