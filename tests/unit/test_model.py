"""The model's dict forms: what callers serialise, rebuilt unchanged."""

from __future__ import annotations

from ingestd.model import Insights


def _insights() -> Insights:
    return Insights(
        conversation_id="c-1",
        conversation={"id": "c-1", "name": "call"},
        messages=[{"id": "m1", "text": "hello", "words": [{"word": "hello"}]}],
        topics=[{"text": "greeting", "parentRefs": []}],
        analytics={"metrics": [{"type": "total_silence", "seconds": 1.5}]},
    )


def test_insights_round_trip_through_their_dict() -> None:
    insights = _insights()
    assert Insights.from_dict(insights.to_dict()) == insights


def test_insights_dict_shares_the_api_objects_instead_of_copying_them() -> None:
    """Deep-copying every message of every conversation cost a tenth of the daemon's CPU
    per recording; callers only serialise these or build new objects from them."""
    insights = _insights()
    data = insights.to_dict()
    assert data["messages"] is insights.messages
    assert data["analytics"] is insights.analytics
    assert list(data) == ["conversation_id", "conversation", "messages", "topics",
                          "questions", "action_items", "follow_ups", "members", "summary",
                          "analytics", "entities", "trackers"]  # fmt: skip
