"""Bundled plugin: the ``slack`` sink, which posts each conversation's insights to Slack.

Registered through the ``ingestd`` entry-point group like any third-party plugin. Either an
incoming webhook or a bot token and channel::

    sinks:
      - type: slack
        webhook_url: ${SLACK_WEBHOOK_URL}
      - type: slack
        name: sales-channel
        token: ${SLACK_BOT_TOKEN}             # xoxb-…, with the chat:write scope
        channel: C0123456789
        sections: [summary, action_items, questions]
        max_items: {action_items: 20}

Each delivery posts one Block Kit message: the conversation's name, a context line,
speakers, topics, action items, questions and follow-ups (`ingestd_slack.blocks`), with all
user text escaped (`ingestd_slack.mrkdwn`). On redelivery a bot updates its earlier message
(`chat.update`, from the receipt the outbox keeps); a webhook cannot, so it posts again. A
message whose answer was lost is posted again: at least once (see `ingestd_slack.sink`).
"""

from __future__ import annotations

from collections.abc import Callable

from ingestd import hookimpl
from ingestd_slack.options import SlackOptions
from ingestd_slack.sink import SlackSink, make_slack_sink

__all__ = ["SlackOptions", "SlackSink", "make_slack_sink"]


@hookimpl
def ingestd_register_sinks(register: Callable[..., None]) -> None:
    register("slack", make_slack_sink)
