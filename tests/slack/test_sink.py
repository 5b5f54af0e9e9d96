"""The slack sink against a fake Slack on loopback: both modes, failures, secrets."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ingestd.errors import Permanent, RecordingError, Retryable
from ingestd.model import DeliveryReceipt
from ingestd.plugins import load_plugins
from ingestd.registry import Sink, SinkContext
from ingestd_slack.blocks import Message, render_message
from ingestd_slack.options import SlackOptions
from ingestd_slack.sink import SlackSink, make_slack_sink
from tests.slack.fake import TOKEN, WEBHOOK_PATH, FakeSlack
from tests.slack.fixtures import insights, result

SECRETS = (TOKEN, WEBHOOK_PATH, WEBHOOK_PATH.rsplit("/", 1)[1])


def webhook_sink(url: str, **options: Any) -> SlackSink:
    return SlackSink("team", SlackOptions.parse({"webhook_url": url, **options}, key_path="s"))


def bot_sink(slack: FakeSlack, token: str = TOKEN, channel: str = "C0123456789") -> SlackSink:
    options = {"token": token, "channel": channel, "api_base_url": slack.api_url}
    return SlackSink("bot", SlackOptions.parse(options, key_path="s"))


def deliver(sink: SlackSink) -> DeliveryReceipt:
    return asyncio.run(sink.deliver(result()))


def failure(sink: SlackSink) -> RecordingError:
    with pytest.raises(RecordingError) as caught:
        deliver(sink)
    return caught.value


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TestWebhook:
    def test_posts_the_rendered_message_once(self, slack: FakeSlack) -> None:
        """One JSON POST to the webhook carrying the blocks and text, links not unfurled."""
        receipt = deliver(webhook_sink(slack.webhook_url))
        assert receipt == DeliveryReceipt(sink="team", detail={"status": 200})
        [request] = slack.requests
        expected = render_message(result())
        assert request.path == WEBHOOK_PATH
        assert request.headers["Content-Type"].startswith("application/json")
        assert request.body == {
            "text": expected.text,
            "blocks": expected.blocks,
            "unfurl_links": False,
            "unfurl_media": False,
        }

    def test_options_shape_the_message(self, slack: FakeSlack) -> None:
        """sections and max_items reach the message that is posted."""
        data = insights(topics=[{"text": f"t{i}", "score": -i} for i in range(4)])
        sink = webhook_sink(slack.webhook_url, sections=["topics"], max_items=2)
        asyncio.run(sink.deliver(result(data)))
        [request] = slack.requests
        assert request.body["blocks"][3:] == [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Topics*\n• t0\n• t1\n… and 2 more",
                    "verbatim": True,
                },
            }
        ]

    def test_unknown_webhook_is_permanent(self, slack: FakeSlack) -> None:
        """A revoked webhook (404 no_service) fails for good, naming the code and the fix."""
        error = failure(webhook_sink(slack.base_url + "/services/T0001/B0001/gone"))
        assert isinstance(error, Permanent)
        assert "HTTP 404 no_service" in str(error)
        assert "create a new one and update webhook_url" in str(error)

    def test_unfamiliar_client_error_is_permanent_and_points_to_the_docs(
        self, slack: FakeSlack
    ) -> None:
        """A 4xx code we have no advice for still fails for good, linking Slack's list."""
        slack.fail(403, body="some_new_error\nmore detail")
        error = failure(webhook_sink(slack.webhook_url))
        assert isinstance(error, Permanent)
        assert str(error) == (
            "slack sink 'team': webhook answered HTTP 403 some_new_error; see "
            "https://api.slack.com/messaging/webhooks#handling_errors for what "
            "'some_new_error' means, then `ingestd redeliver CONVERSATION_ID --sink team`"
        )

    def test_refused_blocks_are_permanent(self, slack: FakeSlack) -> None:
        """A 400 invalid_blocks is not retried: the same message would be refused again."""
        with pytest.raises(Permanent, match=r"HTTP 400 invalid_blocks"):
            webhook_sink(slack.webhook_url).post(Message(text="x", blocks=[{"type": "bogus"}]))


class TestBot:
    def test_posts_with_the_token_to_the_channel(self, slack: FakeSlack) -> None:
        """chat.postMessage with a Bearer token, the channel, blocks and text; the receipt
        holds Slack's channel ID and message ts."""
        receipt = deliver(bot_sink(slack))
        [stored] = slack.messages
        assert receipt == DeliveryReceipt(
            sink="bot", detail={"channel": "C0123456789", "ts": stored["message"]["ts"]}
        )
        [request] = slack.requests
        expected = render_message(result())
        assert (request.path, request.headers["Authorization"]) == (
            "/api/chat.postMessage",
            f"Bearer {TOKEN}",
        )
        assert request.body == {
            "channel": "C0123456789",
            "text": expected.text,
            "blocks": expected.blocks,
            "unfurl_links": False,
            "unfurl_media": False,
            "metadata": {
                "event_type": "ingestd_delivery",
                "event_payload": {
                    "sink": "bot",
                    "conversation_id": result().insights.conversation_id,
                },
            },
        }

    def test_redelivery_updates_the_earlier_message(self, slack: FakeSlack) -> None:
        """With the previous receipt, a redelivery edits the message: one per conversation."""
        sink = bot_sink(slack)
        first = deliver(sink)
        again = asyncio.run(sink.deliver(replace(result(), previous={"bot": first.detail})))
        assert [r.path for r in slack.requests] == ["/api/chat.postMessage", "/api/chat.update"]
        assert again.detail == {**first.detail, "updated": True}
        assert len(slack.posted) == 1 and slack.updated[0]["ts"] == first.detail["ts"]

    def test_vanished_message_is_posted_again(self, slack: FakeSlack) -> None:
        """If the earlier message was deleted, the redelivery posts a new one."""
        previous = {"bot": {"channel": "C0123456789", "ts": "1709632800.000099"}}
        receipt = asyncio.run(bot_sink(slack).deliver(replace(result(), previous=previous)))
        assert [r.path for r in slack.requests] == ["/api/chat.update", "/api/chat.postMessage"]
        assert "updated" not in receipt.detail

    def test_webhook_ignores_previous_receipts(self, slack: FakeSlack) -> None:
        """Webhooks cannot edit: a redelivery posts again."""
        sink = webhook_sink(slack.webhook_url)
        asyncio.run(sink.deliver(replace(result(), previous={"hook": {"status": 200}})))
        assert [r.path for r in slack.requests] == [WEBHOOK_PATH]

    def test_channel_by_name(self, slack: FakeSlack) -> None:
        """A ``#name`` channel works; the receipt records the ID Slack resolved it to."""
        receipt = deliver(bot_sink(slack, channel="#sales-calls"))
        assert receipt.detail["channel"] == "C0123456789"

    @pytest.mark.parametrize(
        ("token", "channel", "code", "hint"),
        [
            ("xoxb-wrong", "C0123456789", "invalid_auth", "check the sink's token"),
            (TOKEN, "C9999999999", "channel_not_found", "check channel"),
            (TOKEN, "C0000000002", "not_in_channel", "invite the bot to the channel"),
        ],
    )
    def test_configuration_errors_are_permanent(
        self, slack: FakeSlack, token: str, channel: str, code: str, hint: str
    ) -> None:
        """Slack's ok:false codes that retrying cannot fix fail for good, saying what to do."""
        error = failure(bot_sink(slack, token, channel))
        assert isinstance(error, Permanent)
        assert f"chat.postMessage answered HTTP 200 {code}; {hint}" in str(error)
        assert "ingestd redeliver CONVERSATION_ID --sink bot" in str(error)
        assert slack.posted == []


class TestSlackDown:
    @pytest.mark.parametrize("mode", ["webhook", "bot"])
    def test_errors_then_rate_limit_then_delivered(self, slack: FakeSlack, mode: str) -> None:
        """500s and a 429 with Retry-After: 1 raise Retryable (retry_after=1 for the 429)
        without retrying inside slack_sdk; the core's next attempt delivers exactly once."""
        sink = webhook_sink(slack.webhook_url) if mode == "webhook" else bot_sink(slack)
        slack.fail(500, times=2)
        slack.rate_limit(times=1, retry_after=1)
        outcomes = []
        for _ in range(3):
            error = failure(sink)
            assert isinstance(error, Retryable)
            outcomes.append(error.retry_after)
        assert outcomes == [None, None, 1.0]
        assert "HTTP 500" in str(error) or "rate limited, will retry after 1 s" in str(error)
        assert deliver(sink).sink == sink.name
        assert len(slack.requests) == 4
        assert len(slack.posted) == 1

    def test_server_error_message(self, slack: FakeSlack) -> None:
        """A 502 with an HTML body is transient and says so."""
        slack.fail(502, body="<html>Bad Gateway</html>")
        error = failure(bot_sink(slack))
        assert isinstance(error, Retryable)
        assert str(error).startswith("slack sink 'bot': chat.postMessage answered HTTP 502")
        assert str(error).endswith("Slack is having trouble, will retry")

    @pytest.mark.parametrize("mode", ["webhook", "bot"])
    def test_unreachable_is_retryable(self, mode: str) -> None:
        """A refused connection is transient, and the message names the socket error."""
        base = f"http://127.0.0.1:{closed_port()}"
        sink = (
            webhook_sink(base + WEBHOOK_PATH)
            if mode == "webhook"
            else SlackSink(
                "bot",
                SlackOptions.parse(
                    {"token": TOKEN, "channel": "C1", "api_base_url": base + "/api"},
                    key_path="s",
                ),
            )
        )
        error = failure(sink)
        assert isinstance(error, Retryable)
        assert "cannot reach Slack (ConnectionRefusedError" in str(error)

    @pytest.mark.parametrize("mode", ["webhook", "bot"])
    def test_lost_response_is_retried_by_the_core_only(self, slack: FakeSlack, mode: str) -> None:
        """A connection dropped before the answer raises Retryable after exactly one
        request: slack_sdk's own connection-error retry is off, the outbox decides."""
        sink = webhook_sink(slack.webhook_url) if mode == "webhook" else bot_sink(slack)
        slack.drop(times=2)
        error = failure(sink)
        assert isinstance(error, Retryable)
        assert "cannot reach Slack (RemoteDisconnected" in str(error)
        assert len(slack.requests) == 1

    def test_timeout_is_retryable(self, slack: FakeSlack) -> None:
        """A Slack that answers too slowly is abandoned after timeout_seconds and retried."""
        slack.delay_seconds = 1.0
        error = failure(webhook_sink(slack.webhook_url, timeout_seconds=0.2))
        assert isinstance(error, Retryable)
        assert "cannot reach Slack" in str(error) and "timed out" in str(error)


class TestSecrets:
    def test_credentials_never_reach_errors_logs_or_receipts(self, slack: FakeSlack) -> None:
        """Across every kind of failure, and a proxy page echoing the URL, neither the token
        nor any part of the webhook URL appears in an error, its chain, a log or a receipt."""
        seen: list[str] = []
        with capture_logs() as logs:
            for sink, echo in (
                (webhook_sink(slack.webhook_url), slack.webhook_url),
                (bot_sink(slack), f"Authorization: Bearer {TOKEN}"),
            ):
                slack.fail(404, body=f"no_service for {echo}")
                slack.fail(500)
                slack.rate_limit()
                for _ in range(3):
                    seen += chain(failure(sink))
                seen.append(repr(deliver(sink)))
                seen.append(repr(sink.options))
            seen += chain(failure(bot_sink(slack, token="xoxb-wrong-" + TOKEN)))
            dead = f"http://127.0.0.1:{closed_port()}{WEBHOOK_PATH}"
            seen += chain(failure(webhook_sink(dead)))
        seen += [repr(event) for event in logs]
        assert logs and len(seen) > 10
        assert any("no_service for" in text for text in seen)  # the echo was kept, scrubbed
        for secret in SECRETS:
            assert not [text for text in seen if secret in text]


def chain(error: BaseException) -> list[str]:
    """The text of an exception and of everything chained to it."""
    texts: list[str] = []
    current: BaseException | None = error
    while current is not None:
        texts += [str(current), repr(current), repr(vars(current))]
        # one level deeper: a SlackApiError's response holds the request and its headers
        texts += [repr(vars(v)) for v in vars(current).values() if hasattr(v, "__dict__")]
        current = current.__cause__ or current.__context__
    return texts


class TestRegistration:
    def test_registered_through_the_entry_point(self) -> None:
        """``slack`` is found through the ingestd entry-point group like a third-party sink."""
        plugins = load_plugins()
        assert plugins.sinks.get("slack", key_path="sinks[0].type") is make_slack_sink
        [row] = [p for p in plugins.info if p.name == "slack"]
        assert (row.source, row.status, row.hooks) == (
            "entry point",
            "loaded",
            ["ingestd_register_sinks"],
        )

    def test_factory_names_the_sink_from_the_context(
        self, slack: FakeSlack, tmp_path: Path
    ) -> None:
        """The factory takes the sink's name from the context and builds a Sink."""
        context = SinkContext(
            name="sales", key_path="sinks[2]", config_path=None, state_dir=tmp_path
        )
        sink = make_slack_sink({"webhook_url": slack.webhook_url}, context)
        assert isinstance(sink, Sink)
        assert (sink.name, deliver(sink).sink) == ("sales", "sales")
