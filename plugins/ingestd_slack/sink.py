"""The slack sink: one Block Kit message per conversation delivery, through slack_sdk.

Two modes (see `ingestd_slack.options`): an incoming webhook (`WebhookClient.send`) or a
bot token and channel (`WebClient.chat_postMessage`). The clients are slack_sdk's sync ones,
run in `asyncio.to_thread` (the async clients would need aiohttp).

Retrying belongs to the core's outbox, so slack_sdk's own retry handlers are switched off:
each `deliver` is exactly one HTTP request. What Slack answers decides the error::

    429 (ratelimited)                  Retryable, retry_after from Retry-After
    5xx, internal_error, timeouts,
    connection errors                  Retryable (the core backs off)
    anything else (invalid_auth,
    channel_not_found, not_in_channel,
    404 no_service, 400 invalid_blocks) Permanent, naming Slack's error code and what to fix

Delivery is **at least once**: a redelivery after an append or an ``ingestd redeliver``
updates the earlier message in place (bot mode, ``chat.update``, from the receipt the core
keeps); a webhook cannot edit, and a crash between posting and recording the receipt posts
a second message. A post whose answer was lost is logged (``slack_post_outcome_unknown``);
in bot mode the retry first looks for it in the channel's history (see `lookup`).
Credentials never leave this module: error texts are built from status codes and Slack's
short error codes, scrubbed of the webhook URL and the token, and raised without the
slack_sdk exception chained (its request arguments carry the Authorization header).
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import time
from collections.abc import Mapping
from typing import Any

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.webhook import WebhookClient

from ingestd import DeliveryReceipt, Permanent, RecordingError, Result, Retryable, SinkContext
from ingestd_slack import lookup
from ingestd_slack.blocks import Message, render_message
from ingestd_slack.options import SlackOptions

log = structlog.get_logger("ingestd_slack")

# slack_sdk logs whole request URLs at debug level (a webhook URL is a credential) and
# every connection error at error level; we report failures ourselves, scrubbed.
_SDK_LOGGER = logging.getLogger("ingestd_slack.slack_sdk")
_SDK_LOGGER.setLevel(logging.CRITICAL)
_SDK_LOGGER.propagate = False

TRANSIENT_CODES = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
    }
)
"""Slack error codes that mean "try again later" even when the status is not 429/5xx."""

HINTS = {
    "invalid_auth": "check the sink's token",
    "not_authed": "check the sink's token",
    "token_revoked": "the token was revoked; reinstall the app and update the token",
    "token_expired": "the token expired; update the token",
    "account_inactive": "the app's bot user was deactivated; reinstall the app",
    "missing_scope": "give the app the chat:write scope and reinstall it",
    "channel_not_found": "check channel (prefer the channel ID; a private channel needs the "
    "bot invited)",
    "not_in_channel": "invite the bot to the channel (/invite @your-app)",
    "is_archived": "the channel is archived; unarchive it or choose another channel",
    "channel_is_archived": "the channel is archived; create a webhook for another channel",
    "restricted_action": "a workspace admin restricted posting there",
    "action_prohibited": "a workspace admin restricted posting there",
    "no_service": "the webhook was removed or revoked; create a new one and update webhook_url",
    "no_team": "the webhook's workspace is gone; create a new webhook",
    "team_disabled": "the webhook's workspace is disabled",
    "invalid_token": "the webhook URL is invalid; copy it again from Slack",
    "invalid_blocks": "Slack refused the message layout; please report this as an ingestd bug",
    "invalid_payload": "Slack refused the message; please report this as an ingestd bug",
    "msg_too_long": "Slack refused the message as too long; please report this as an ingestd bug",
}
"""What the operator should do about a permanent Slack error code."""

DOCS = {
    "webhook": "https://api.slack.com/messaging/webhooks#handling_errors",
    "chat.postMessage": "https://api.slack.com/methods/chat.postMessage#errors",
    "chat.update": "https://api.slack.com/methods/chat.update#errors",
    "conversations.history": "https://api.slack.com/methods/conversations.history#errors",
    "auth.test": "https://api.slack.com/methods/auth.test#errors",
}

# chat.update answers these when the earlier message cannot be edited any more: post anew.
GONE_CODES = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


def make_slack_sink(options: Mapping[str, Any], context: SinkContext) -> SlackSink:
    """The ``slack`` sink factory; raises ConfigError naming the bad key."""
    return SlackSink(context.name, SlackOptions.parse(options, key_path=context.key_path))


class SlackSink:
    """Posts each delivered conversation to Slack as one message."""

    def __init__(self, name: str, options: SlackOptions) -> None:
        self.name = name
        self.options = options
        self._secrets = _secret_fragments(options)
        timeout = options.timeout_seconds
        self._webhook: WebhookClient | None = None
        self._web: WebClient | None = None
        if options.webhook_url is not None:
            self._webhook = WebhookClient(
                url=options.webhook_url.reveal(),
                timeout=timeout,  # type: ignore[arg-type]  # urllib takes float seconds
                retry_handlers=[],
                logger=_SDK_LOGGER,
            )
            client: WebhookClient | WebClient = self._webhook
        else:
            assert options.token is not None
            self._web = WebClient(
                token=options.token.reveal(),
                base_url=options.api_base_url,
                timeout=timeout,  # type: ignore[arg-type]
                retry_handlers=[],
                logger=_SDK_LOGGER,
            )
            client = self._web
        # slack_sdk reads HTTPS_PROXY itself but ignores NO_PROXY; with no explicit proxy,
        # urllib's default opener applies both.
        client.proxy = None
        # conversation id -> when a post of it went out whose answer was lost
        self._doubts: dict[str, float] = {}
        self._channel_id = lookup.channel_id(options.channel)  # a #name: from Slack's answer

    async def deliver(self, result: Result) -> DeliveryReceipt:
        """Post the conversation's message; one HTTP request, no retries of our own."""
        message = render_message(
            result, sections=self.options.sections, max_items=self.options.max_items
        )
        detail = await asyncio.to_thread(
            self.post, message, result.previous.get(self.name), result.insights.conversation_id
        )
        log.debug(
            "slack_posted", sink=self.name, mode=self.options.mode, blocks=len(message.blocks)
        )
        return DeliveryReceipt(sink=self.name, detail=detail)

    async def aclose(self) -> None:
        """Nothing is held open: slack_sdk opens a connection per request."""

    async def check(self) -> str:
        """``ingestd check``: a bot token is tried with ``auth.test``; a webhook is not (the
        only way to try one is to post a message)."""
        if self._web is None:
            return "webhook: not tried (trying it would post a message to the channel)"
        return await asyncio.to_thread(self._auth_test)

    def _auth_test(self) -> str:
        assert self._web is not None
        try:
            response = self._web.auth_test()
        except SlackApiError as exc:
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            code = self._scrub(_first_line(str(data.get("error") or "")) or "no error code")
            hint = HINTS.get(code) or f"see {DOCS['auth.test']}"
            error: RecordingError = Permanent(
                f"auth.test answered HTTP {exc.response.status_code} {code[:120]}; {hint}"
            )
        except (OSError, http.client.HTTPException) as exc:
            error = Retryable(
                f"cannot reach Slack at {self.options.api_base_url} ({self._scrub(_reason(exc))})"
            )
        else:
            return (
                f"token accepted by auth.test (team {response.get('team')!s}, "
                f"as {response.get('user')!s})"
            )
        raise error  # outside the handler: the SlackApiError holds the request

    def post(
        self,
        message: Message,
        previous: Mapping[str, Any] | None = None,
        conversation_id: str = "",
    ) -> dict[str, Any]:
        """The blocking part of `deliver`; returns the receipt detail.

        In bot mode a conversation posted before (`previous` has its channel and ts) is
        updated in place, so an append or a redelivery keeps one message per conversation,
        and so is a message found after a post whose answer was lost; webhooks cannot
        edit, so they post again.
        """
        try:
            if self._webhook is not None:
                return self._post_webhook(message, conversation_id)
            if not (previous and previous.get("ts") and previous.get("channel")):
                previous = self._posted_before(conversation_id)
            if previous:
                updated = self._update_bot(message, previous["channel"], previous["ts"])
                if updated is not None:
                    return updated
            return self._post_bot(message, conversation_id)
        except RecordingError:
            raise
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timeout, DNS
            reason = self._scrub(_reason(exc))
            error: RecordingError = Retryable(
                f"slack sink {self.name!r}: cannot reach Slack ({reason}); will retry"
            )
        except SlackClientError as exc:
            error = Permanent(f"slack sink {self.name!r}: {self._scrub(str(exc))[:300]}")
        # Raised outside the handlers: the slack_sdk exception must not ride along as
        # __context__, since it holds the request (the URL, the Authorization header).
        raise error

    def _outcome_unknown(self, conversation_id: str, started: float) -> None:
        """The post may have been made: remember it, and say what the retry will do."""
        can_look = self._web is not None and self._channel_id is not None
        if can_look:
            self._doubts.setdefault(conversation_id, started)
            action = "looking in the channel's history for the message before posting again"
        elif self._web is not None:
            action = (
                "the retry may post the message twice: give the channel's ID (not its "
                "name) and the channels:history scope to let the sink look for it first"
            )
        else:
            action = "the retry may post the message twice: a webhook cannot read the channel"
        log.warning(
            "slack_post_outcome_unknown",
            sink=self.name,
            mode=self.options.mode,
            conversation_id=conversation_id,
            can_look=can_look,
            action=action,
        )

    def _posted_before(self, conversation_id: str) -> dict[str, str] | None:
        """After a lost answer: our message for the conversation, if the post was made.

        A history Slack will not show (no channels:history scope, the bot not in the
        channel) is logged and the message posted again; trouble reaching Slack is
        Retryable, as posting then could make a second message.
        """
        since = self._doubts.get(conversation_id)
        if since is None or self._web is None or self._channel_id is None:
            return None
        try:
            ts = lookup.find_posted(self._web, self._channel_id, self.name, conversation_id, since)
        except SlackApiError as exc:
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            code = _first_line(str(data.get("error") or "")) or "no error code"
            error = self._error(
                "conversations.history", exc.response.status_code, code, exc.response.headers
            )
        else:
            del self._doubts[conversation_id]
            log.info("slack_post_found" if ts else "slack_post_not_found", sink=self.name, ts=ts)
            return {"channel": self._channel_id, "ts": ts} if ts else None
        if isinstance(error, Retryable):
            raise error  # outside the handler, so the SlackApiError is not kept as its context
        del self._doubts[conversation_id]
        log.warning(
            "slack_lookup_failed",
            sink=self.name,
            error=str(error),
            action="posting again; the message may show twice",
        )
        return None

    def _post_webhook(self, message: Message, conversation_id: str) -> dict[str, Any]:
        assert self._webhook is not None
        started = time.time()
        try:
            response = self._webhook.send(
                text=message.text, blocks=message.blocks, unfurl_links=False, unfurl_media=False
            )
        except (OSError, http.client.HTTPException) as exc:
            if lookup.may_have_arrived(exc):
                self._outcome_unknown(conversation_id, started)
            raise
        if response.status_code == 200:
            return {"status": 200}
        code = _first_line(response.body) or "no error code"
        raise self._error("webhook", response.status_code, code, response.headers)

    def _post_bot(self, message: Message, conversation_id: str) -> dict[str, Any]:
        assert self._web is not None and self.options.channel is not None
        started = time.time()
        try:
            response = self._web.chat_postMessage(
                channel=self.options.channel,
                text=message.text,
                blocks=message.blocks,
                unfurl_links=False,
                unfurl_media=False,
                metadata=lookup.metadata(self.name, conversation_id),
            )
        except (OSError, http.client.HTTPException) as exc:
            if lookup.may_have_arrived(exc):
                self._outcome_unknown(conversation_id, started)
            raise
        except SlackApiError as exc:
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            code = _first_line(str(data.get("error") or "")) or "no error code"
            error = self._error(
                "chat.postMessage", exc.response.status_code, code, exc.response.headers
            )
        else:
            self._doubts.pop(conversation_id, None)
            self._channel_id = self._channel_id or response.get("channel")
            return {"channel": response.get("channel"), "ts": response.get("ts")}
        raise error  # outside the handler, so the SlackApiError is not kept as its context

    def _update_bot(self, message: Message, channel: str, ts: str) -> dict[str, Any] | None:
        """chat.update the earlier message; None when it is gone (then post a new one)."""
        assert self._web is not None
        try:
            response = self._web.chat_update(
                channel=channel, ts=ts, text=message.text, blocks=message.blocks
            )
        except SlackApiError as exc:
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            code = _first_line(str(data.get("error") or "")) or "no error code"
            if code in GONE_CODES:
                return None
            error = self._error("chat.update", exc.response.status_code, code, exc.response.headers)
        else:
            return {"channel": response.get("channel"), "ts": response.get("ts"), "updated": True}
        raise error  # outside the handler, so the SlackApiError is not kept as its context

    def _error(
        self, method: str, status: int, code: str, headers: Mapping[str, Any] | None
    ) -> RecordingError:
        """Retryable or Permanent for Slack's answer, with a message safe to log."""
        code = self._scrub(code)[:120]
        what = f"slack sink {self.name!r}: {method} answered HTTP {status} {code}"
        if status == 429 or code in ("ratelimited", "rate_limited"):
            retry_after = _retry_after(headers)
            when = f"after {retry_after:g} s" if retry_after is not None else "later"
            return Retryable(f"{what}; rate limited, will retry {when}", retry_after=retry_after)
        if status >= 500 or code in TRANSIENT_CODES:
            return Retryable(f"{what}; Slack is having trouble, will retry")
        hint = HINTS.get(code) or f"see {DOCS[method]} for what {code!r} means"
        return Permanent(
            f"{what}; {hint}, then `ingestd redeliver CONVERSATION_ID --sink {self.name}`"
        )

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _secret_fragments(options: SlackOptions) -> list[str]:
    """The credential and the parts of it that could show up alone (a webhook URL's path
    and its last segment), longest first so the whole is replaced before its parts."""
    fragments: list[str] = []
    if options.token is not None:
        fragments.append(options.token.reveal())
    if options.webhook_url is not None:
        url = options.webhook_url.reveal()
        path = "/" + url.split("://", 1)[-1].partition("/")[2]
        fragments += [url, path, path.rstrip("/").rsplit("/", 1)[-1]]
    return sorted({f for f in fragments if len(f) >= 4}, key=len, reverse=True)


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    """Seconds from a Retry-After header (any case), or None when absent or not a number."""
    for key, value in (headers or {}).items():
        if str(key).lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
            try:
                return max(0.0, float(str(raw).strip()))
            except ValueError:
                return None
    return None


def _first_line(body: Any) -> str:
    """Slack's short error code from a response body (``no_service``), at most 120 chars."""
    text = str(body or "").strip().splitlines()
    return text[0][:120] if text else ""


def _reason(exc: BaseException) -> str:
    """A short description of a network error: the socket error, not the whole URL."""
    reason = getattr(exc, "reason", None)  # urllib.error.URLError wraps the real one
    inner = reason if isinstance(reason, BaseException) else exc
    return f"{type(inner).__name__}: {inner}" if str(inner) else type(inner).__name__
