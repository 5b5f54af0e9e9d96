"""The slack sink's options: both modes, defaults, and one clear line per problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ingestd.config import Secret
from ingestd.errors import ConfigError
from ingestd.registry import SinkContext
from ingestd_slack.blocks import SECTIONS
from ingestd_slack.options import SlackOptions
from ingestd_slack.sink import make_slack_sink

WEBHOOK = "https://hooks.slack.com/services/T0001/B0001/secretPart123"
TOKEN = "xoxb-1111-2222-secretToken"


def problems(options: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        SlackOptions.parse(options, key_path="sinks[2]")
    return caught.value.problems


class TestGoodOptions:
    def test_webhook_defaults(self) -> None:
        """A webhook URL alone is enough: every section, ten items each, 30 s timeout."""
        options = SlackOptions.parse({"type": "slack", "webhook_url": WEBHOOK}, key_path="s")
        assert options == SlackOptions(webhook_url=Secret(WEBHOOK))
        assert (options.mode, options.sections, options.timeout_seconds) == (
            "webhook",
            SECTIONS,
            30.0,
        )
        assert options.max_items == dict.fromkeys(SECTIONS, 10)
        assert isinstance(options.webhook_url, Secret)

    def test_bot_with_everything_set(self) -> None:
        """Token, channel, base URL (slash added), sections, per-section max and timeout."""
        options = SlackOptions.parse(
            {
                "name": "sales",
                "token": TOKEN,
                "channel": "#sales-calls",
                "api_base_url": "http://127.0.0.1:8080/api",
                "sections": ["action_items", "topics"],
                "max_items": {"topics": 3, "action_items": 50},
                "timeout_seconds": 5,
            },
            key_path="s",
        )
        assert options == SlackOptions(
            token=Secret(TOKEN),
            channel="#sales-calls",
            api_base_url="http://127.0.0.1:8080/api/",
            sections=("action_items", "topics"),
            max_items={**dict.fromkeys(SECTIONS, 10), "topics": 3, "action_items": 50},
            timeout_seconds=5.0,
        )
        assert options.mode == "bot" and isinstance(options.token, Secret)

    def test_credentials_are_masked_in_repr(self) -> None:
        """Printing the options shows neither the token nor the webhook URL."""
        bot = SlackOptions.parse({"token": TOKEN, "channel": "C1"}, key_path="s")
        hook = SlackOptions.parse({"webhook_url": WEBHOOK}, key_path="s")
        assert "secret" not in repr(bot) + repr(hook)

    def test_factory_names_errors_by_key_path(self, tmp_path: Path) -> None:
        """The factory's errors start with the key path the core hands it."""
        context = SinkContext(name="s", key_path="sinks[4]", config_path=None, state_dir=tmp_path)
        with pytest.raises(ConfigError, match=r"^sinks\[4\]: expected webhook_url"):
            make_slack_sink({}, context)


class TestBadOptions:
    def test_neither_mode(self) -> None:
        """An empty block says what the two ways of posting are."""
        assert problems({}) == [
            "sinks[2]: expected webhook_url (an incoming webhook) or token and channel (a bot)"
        ]

    def test_both_modes(self) -> None:
        """A webhook and a bot in one sink is refused rather than silently picking one."""
        assert problems({"webhook_url": WEBHOOK, "token": TOKEN, "channel": "C1"}) == [
            "sinks[2]: use either webhook_url or token and channel, not both"
        ]

    def test_half_a_bot(self) -> None:
        """A token needs a channel and a channel needs a token."""
        assert problems({"token": TOKEN}) == [
            "sinks[2].channel: required with token (a channel ID like C0123456789 or a name "
            "like #sales-calls)"
        ]
        assert problems({"channel": "C1"}) == [
            "sinks[2].token: required with channel (a bot token like xoxb-…)"
        ]

    def test_bad_credentials_are_not_echoed(self) -> None:
        """A malformed token or webhook URL is reported without showing its value."""
        bad_token = problems({"token": "secret-value", "channel": "C1"})
        assert bad_token == [
            "sinks[2].token: expected a bot token starting with xoxb- (value not shown)"
        ]
        for url, expected in [
            (
                "hooks.slack.com/secretPart",
                "expected a URL like https://hooks.slack.com/services/T…/B…/…",
            ),
            (
                "http://hooks.slack.com/services/secretPart",
                "expected https:// (plain http only to localhost)",
            ),
            (
                "https://hooks.slack.com/",
                "expected the full webhook URL, with its /services/… path",
            ),
        ]:
            assert problems({"webhook_url": url}) == [f"sinks[2].webhook_url: {expected}"]
        assert "secret" not in str(problems({"token": "secret value", "channel": "C1"}))

    def test_every_problem_at_once(self) -> None:
        """Unknown keys get a did-you-mean; sections, max_items, timeout, channel and base URL
        are each checked, all reported together."""
        assert problems(
            {
                "token": TOKEN,
                "chanel": "x",
                "channel": "sales calls",
                "api_base_url": "ftp://example.com",
                "sections": ["topics", "topic", "topics", "weather"],
                "max_items": {"topics": 0, "questons": 5, "summary": True},
                "timeout_seconds": "30",
            }
        ) == [
            "sinks[2].chanel: unknown key; did you mean 'channel'?",
            "sinks[2].channel: expected a channel ID like C0123456789 or a name like "
            '#sales-calls, got "sales calls"',
            "sinks[2].api_base_url: expected a URL like https://slack.com/api/, got "
            '"ftp://example.com"',
            "sinks[2].sections[1]: expected one of summary, speakers, topics, action_items, "
            "questions, follow_ups, got \"topic\"; did you mean 'topics'?",
            'sinks[2].sections[2]: "topics" is listed twice',
            "sinks[2].sections[3]: expected one of summary, speakers, topics, action_items, "
            'questions, follow_ups, got "weather"',
            "sinks[2].max_items.topics: expected a whole number from 1 to 50, got 0",
            "sinks[2].max_items.questons: unknown section; did you mean 'questions'?",
            "sinks[2].max_items.summary: expected a whole number from 1 to 50, got True",
            'sinks[2].timeout_seconds: expected a number of seconds in (0, 300], got "30"',
        ]

    def test_webhook_only_keys(self) -> None:
        """api_base_url means nothing to a webhook; an empty section list shows nothing."""
        assert problems(
            {"webhook_url": WEBHOOK, "api_base_url": "x", "sections": [], "max_items": 51}
        ) == [
            "sinks[2].api_base_url: only used with token (the webhook URL is used as given)",
            "sinks[2].sections: expected a list of summary, speakers, topics, action_items, "
            "questions, follow_ups, got []",
            "sinks[2].max_items: expected a whole number from 1 to 50 (or a mapping of section "
            "to number), got 51",
        ]
