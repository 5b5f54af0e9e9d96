"""A Slack post whose answer was lost: logged, and in bot mode looked for in the channel's
history (our own message metadata) before posting again, so it is not posted twice; and the
fake Slack's conversations.history, checked against Slack's contract."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from structlog.testing import capture_logs

from ingestd.errors import Retryable
from ingestd.model import DeliveryReceipt
from ingestd_slack.options import SlackOptions
from ingestd_slack.sink import SlackSink
from tests.slack.fake import POST_ONLY_TOKEN, TOKEN, FakeSlack
from tests.slack.fixtures import result

CHANNEL = "C0123456789"


def bot_sink(slack: FakeSlack, token: str = TOKEN, channel: str = CHANNEL) -> SlackSink:
    options = {"token": token, "channel": channel, "api_base_url": slack.api_url}
    return SlackSink("bot", SlackOptions.parse(options, key_path="s"))


def webhook_sink(slack: FakeSlack) -> SlackSink:
    return SlackSink("hook", SlackOptions.parse({"webhook_url": slack.webhook_url}, key_path="s"))


def deliver(sink: SlackSink) -> DeliveryReceipt:
    return asyncio.run(sink.deliver(result()))


def lost(sink: SlackSink) -> list[dict[str, Any]]:
    """Deliver once with the answer lost after Slack acted; the log events of it."""
    with capture_logs() as logs, pytest.raises(Retryable):
        deliver(sink)
    return logs


def event(logs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    [found] = [e for e in logs if e["event"] == name]
    return found


class TestBot:
    def test_a_lost_answer_does_not_double_the_post(self, slack: FakeSlack) -> None:
        """Posted, answer lost: the retry finds the message by its metadata in the channel's
        history and updates it instead of posting a second one."""
        sink = bot_sink(slack)
        slack.lose_answer()
        logs = lost(sink)
        unknown = event(logs, "slack_post_outcome_unknown")
        assert unknown["can_look"] is True and "history" in unknown["action"]
        assert len(slack.messages) == 1, "Slack did post it"
        with capture_logs() as logs:
            receipt = deliver(sink)
        [stored] = slack.messages
        assert receipt.detail == {
            "channel": CHANNEL,
            "ts": stored["message"]["ts"],
            "updated": True,
        }
        assert [r.path for r in slack.requests] == [
            "/api/chat.postMessage",
            "/api/conversations.history",
            "/api/chat.update",
        ]
        assert event(logs, "slack_post_found")["ts"] == stored["message"]["ts"]
        history = slack.requests[1].body
        assert history["channel"] == CHANNEL and history["include_all_metadata"] in ("1", "true")

    def test_a_post_that_never_arrived_is_posted_after_looking(self, slack: FakeSlack) -> None:
        """Hung up on before Slack acted: nothing in the history, so it is posted, once;
        the look happens only after a doubtful post, and only once."""
        sink = bot_sink(slack)
        slack.drop()
        with pytest.raises(Retryable):
            deliver(sink)
        with capture_logs() as logs:
            deliver(sink)
        assert any(e["event"] == "slack_post_not_found" for e in logs)
        deliver(sink)
        assert [r.path for r in slack.requests] == [
            "/api/chat.postMessage",
            "/api/conversations.history",
            "/api/chat.postMessage",
            "/api/chat.postMessage",
        ]

    def test_another_conversations_message_is_not_taken(self, slack: FakeSlack) -> None:
        """Only this sink's message of this conversation counts: another's is left alone."""
        other = SlackSink("other", bot_sink(slack).options)
        deliver(other)
        sink = bot_sink(slack)
        slack.lose_answer()
        lost(sink)
        deliver(sink)
        assert len(slack.messages) == 2 and len(slack.updated) == 1
        assert slack.updated[0]["ts"] == slack.messages[1]["message"]["ts"]

    def test_trouble_reading_the_history_is_retried_not_posted(self, slack: FakeSlack) -> None:
        """Slack failing the lookup: Retryable, nothing posted; the next try looks again."""
        sink = bot_sink(slack)
        slack.lose_answer()
        lost(sink)
        slack.fail(503)
        with pytest.raises(Retryable, match=r"conversations\.history answered HTTP 503"):
            deliver(sink)
        deliver(sink)
        assert len(slack.messages) == 1
        assert [r.path for r in slack.requests][-2:] == [
            "/api/conversations.history",
            "/api/chat.update",
        ]

    def test_without_the_history_scope_it_says_so_and_posts_again(self, slack: FakeSlack) -> None:
        """A token without channels:history cannot look: logged, then posted again."""
        sink = bot_sink(slack, token=POST_ONLY_TOKEN)
        slack.lose_answer()
        lost(sink)
        with capture_logs() as logs:
            deliver(sink)
        failed = event(logs, "slack_lookup_failed")
        assert "missing_scope" in failed["error"] and "twice" in failed["action"]
        assert len(slack.messages) == 2

    def test_a_channel_name_cannot_be_looked_up_before_slack_named_its_id(
        self, slack: FakeSlack
    ) -> None:
        """conversations.history takes IDs only: with a #name and no answer yet, the log
        says the retry may post twice and how to avoid it."""
        sink = bot_sink(slack, channel="#sales-calls")
        slack.lose_answer()
        unknown = event(lost(sink), "slack_post_outcome_unknown")
        assert unknown["can_look"] is False and "channel's ID" in unknown["action"]


class TestWebhook:
    def test_a_webhook_cannot_look_and_says_so(self, slack: FakeSlack) -> None:
        """A webhook cannot read the channel: the lost answer is logged as a possible double
        post, and the retry posts again."""
        sink = webhook_sink(slack)
        slack.lose_answer()
        unknown = event(lost(sink), "slack_post_outcome_unknown")
        assert unknown["can_look"] is False and "webhook cannot read" in unknown["action"]
        assert unknown["conversation_id"] == result().insights.conversation_id
        deliver(sink)
        assert len(slack.posted) == 2

    def test_a_refused_connection_is_no_doubt(self) -> None:
        """Nothing reached Slack: no outcome_unknown warning."""
        options = {"webhook_url": "http://127.0.0.1:9/services/T/B/x", "timeout_seconds": 2}
        sink = SlackSink("hook", SlackOptions.parse(options, key_path="s"))
        with capture_logs() as logs, pytest.raises(Retryable):
            deliver(sink)
        assert not [e for e in logs if e["event"] == "slack_post_outcome_unknown"]


class TestFakeHistoryContract:
    """conversations.history as Slack documents it, so the tests above test something real."""

    @staticmethod
    def client(slack: FakeSlack, token: str = TOKEN) -> WebClient:
        client = WebClient(token=token, base_url=slack.api_url, retry_handlers=[])
        client.proxy = None
        return client

    def post(self, slack: FakeSlack, n: int, metadata: dict | None = None) -> str:
        return self.client(slack).chat_postMessage(
            channel=CHANNEL, text=f"m{n}", metadata=metadata
        )["ts"]

    def test_newest_first_oldest_exclusive_metadata_only_when_asked(self, slack: FakeSlack) -> None:
        meta = {"event_type": "x", "event_payload": {"k": "v"}}
        first, second, third = (self.post(slack, n, meta) for n in range(3))
        web = self.client(slack)
        plain = web.conversations_history(channel=CHANNEL, oldest=first)["messages"]
        assert [m["ts"] for m in plain] == [third, second]
        assert all("metadata" not in m for m in plain)
        full = web.conversations_history(
            channel=CHANNEL, oldest=first, inclusive=True, include_all_metadata=True
        )["messages"]
        assert [m["ts"] for m in full] == [third, second, first]
        assert full[0]["metadata"] == meta

    def test_pages_with_a_cursor(self, slack: FakeSlack) -> None:
        stamps = [self.post(slack, n) for n in range(5)]
        web = self.client(slack)
        page = web.conversations_history(channel=CHANNEL, limit=2)
        assert page["has_more"] and [m["ts"] for m in page["messages"]] == stamps[:2:-1][:2]
        cursor = page["response_metadata"]["next_cursor"]
        rest = web.conversations_history(channel=CHANNEL, limit=10, cursor=cursor)
        assert not rest["has_more"] and len(rest["messages"]) == 3

    @pytest.mark.parametrize(
        ("token", "channel", "error"),
        [
            (POST_ONLY_TOKEN, CHANNEL, "missing_scope"),
            (TOKEN, "#sales-calls", "channel_not_found"),
            (TOKEN, "C0000000002", "not_in_channel"),
            ("xoxb-unknown-token", CHANNEL, "invalid_auth"),
        ],
    )
    def test_errors(self, slack: FakeSlack, token: str, channel: str, error: str) -> None:
        with pytest.raises(SlackApiError) as caught:
            self.client(slack, token).conversations_history(channel=channel)
        assert caught.value.response["error"] == error

    def test_malformed_metadata_is_refused(self, slack: FakeSlack) -> None:
        with pytest.raises(SlackApiError) as caught:
            self.post(slack, 0, {"event_type": "x"})
        assert caught.value.response["error"] == "invalid_metadata_schema"
