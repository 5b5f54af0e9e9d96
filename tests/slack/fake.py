"""A fake Slack on loopback: the Web API's chat.postMessage, chat.update and
conversations.history, and webhooks.

It checks what Slack requires (a Bearer token, a channel, text or blocks, Block Kit limits,
message metadata's shape, the ``channels:history`` scope and a channel ID for reading) and
answers the way Slack does: the Web API with HTTP 200 and ``{"ok": false, "error": ...}``
for application errors, webhooks with a status and a short plain-text code. A message's
``ts`` is the time it was posted (unique, as Slack's), and conversations.history returns a
channel's messages newest first between ``oldest`` and ``latest`` (both exclusive unless
``inclusive``), ``limit`` at a time with a cursor, with their ``metadata`` only when asked
for with ``include_all_metadata``. Faults are scripted (``slack.fail(500, times=2)``,
``slack.rate_limit(times=1, retry_after=1)``, ``slack.drop()``: nothing is done;
``slack.lose_answer()``: done, then the connection is closed unanswered), answers can come
late (``delay_seconds``: the request is still acted on) or be held (``hold_seconds``: a
request whose client hangs up meanwhile is never acted on), and every request is recorded
with the time it arrived, so tests can count exactly how many reached the server and when.

`serve_fake_slack()` runs one in a thread; the ``slack`` fixture (tests/slack/conftest.py)
and the daemon-level tests use it.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from tests.slack.fixtures import check_blocks

TOKEN = "xoxb-1111-2222-fakeBotTokenValue"
POST_ONLY_TOKEN = "xoxb-1111-3333-fakePostOnlyTokenValue"
"""A bot token with chat:write but not channels:history: it cannot read a channel."""
SCOPES = {TOKEN: ("chat:write", "channels:history"), POST_ONLY_TOKEN: ("chat:write",)}
WEBHOOK_PATH = "/services/T0001/B0001/fakeWebhookSecretXYZ"
CHANNELS = {"C0123456789": "sales-calls", "C0000000002": "private-room"}
NOT_IN_CHANNEL = frozenset({"C0000000002"})
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
"""Removed from the environment by fixtures, so nothing stands between a client and us."""


@dataclass
class Request:
    """One request as the fake Slack received it; `at` is `time.monotonic()` on arrival."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class FakeSlack:
    """The server's state: known credentials, scripted faults, what it received."""

    base_url: str = ""
    requests: list[Request] = field(default_factory=list)
    posted: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    """What conversations.history serves: one message object per Web API post, oldest first."""
    updated: list[dict[str, Any]] = field(default_factory=list)
    abandoned: list[Request] = field(default_factory=list)
    faults: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    delay_seconds: float = 0.0
    hold_seconds: float = 0.0
    not_in_channel: set[str] = field(default_factory=lambda: set(NOT_IN_CHANNEL))
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}{WEBHOOK_PATH}"

    def next_ts(self) -> str:
        """A new message's ts: the time now, in microseconds, unique in the workspace."""
        last = float(self.messages[-1]["message"]["ts"]) if self.messages else 0.0
        return f"{max(time.time(), last + 1e-6):.6f}"

    def calls(self, method: str) -> list[Request]:
        """The Web API requests to `method` (``chat.postMessage``), in arrival order."""
        with self.lock:
            return [r for r in self.requests if r.path == f"/api/{method}"]

    def fail(self, status: int, *, times: int = 1, body: str = "Internal Server Error") -> None:
        """Answer the next `times` requests with `status` and a plain-text body."""
        self.faults += [(status, {}, body)] * times

    def drop(self, *, times: int = 1) -> None:
        """Read the next `times` requests, then hang up without answering."""
        self.faults += [(0, {}, "")] * times

    def lose_answer(self, *, times: int = 1) -> None:
        """Act on the next `times` requests, then hang up without answering: the post is
        made, but the client cannot know it."""
        self.faults += [(-1, {}, "")] * times

    def rate_limit(self, *, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` requests with 429 and ``Retry-After: retry_after``."""
        self.faults += [(429, {"Retry-After": str(retry_after)}, "ratelimited")] * times


def check_metadata(metadata: Any) -> str | None:
    """Slack's shape for message metadata: an ``event_type`` string and an ``event_payload``
    object; the error code Slack would answer, or None when valid."""
    if not isinstance(metadata, dict):
        return "invalid_metadata_format"
    event_type, payload = metadata.get("event_type"), metadata.get("event_payload")
    if not isinstance(event_type, str) or not event_type or not isinstance(payload, dict):
        return "invalid_metadata_schema"
    return None


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        """conversations.history as a GET with a query string."""
        path, _, query = self.path.partition("?")
        params = {k: v[0] for k, v in parse_qs(query).items()}
        request = Request("GET", path, dict(self.headers.items()), params)
        slack = self.server.slack
        with slack.lock:
            slack.requests.append(request)
            fault = slack.faults.pop(0) if slack.faults else None
        if fault is not None and fault[0] in (0, -1):
            self.close_connection = True
            return None
        if fault is not None:
            status, headers, text = fault
            if status == 429:
                text = json.dumps({"ok": False, "error": "ratelimited"})
            return self._answer(status, text, headers)
        if path == "/api/conversations.history":
            return self._history(params)
        return self._answer(404, "not found")

    def do_POST(self) -> None:
        slack = self.server.slack
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = Request("POST", self.path, dict(self.headers.items()), self._parse(raw))
        with slack.lock:
            slack.requests.append(request)
        if slack.hold_seconds and self._client_left_within(slack.hold_seconds):
            with slack.lock:  # the caller is gone before Slack acted: nothing happened
                slack.abandoned.append(request)
            self.close_connection = True
            return None
        with slack.lock:
            fault = slack.faults.pop(0) if slack.faults else None
        if slack.delay_seconds:
            time.sleep(slack.delay_seconds)
        body = request.body
        if fault is not None and fault[0] == -1:  # acted on, then the answer is lost
            self._dispatch(body, answer=False)
            self.close_connection = True
            return None
        if fault is not None:
            status, headers, text = fault
            if status == 0:  # the response is lost: the client cannot know what happened
                self.close_connection = True
                return None
            if self.path.startswith("/api/") and status == 429:
                text = json.dumps({"ok": False, "error": "ratelimited"})
            return self._answer(status, text, headers)
        return self._dispatch(body)

    def _dispatch(self, body: dict[str, Any], answer: bool = True) -> None:
        """Act on a POST; with `answer` False, act without sending anything back."""
        self._silent = not answer
        if self.path == "/api/chat.postMessage":
            return self._post_message(body)
        if self.path == "/api/chat.update":
            return self._update_message(body)
        if self.path == "/api/conversations.history":  # Slack takes reads as form POSTs too
            return self._history({k: str(v) for k, v in body.items()})
        if self.path == "/api/auth.test":
            return self._auth_test()
        if self.path.startswith("/services/"):
            return self._webhook(body)
        return self._answer(404, "not found")

    def _client_left_within(self, seconds: float) -> bool:
        """Wait up to `seconds`; True as soon as the client closes its end (killed, gave up)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.05))
            if readable:
                try:
                    if self.connection.recv(1, socket.MSG_PEEK) == b"":
                        return True
                except OSError:  # reset by a killed client
                    return True
                time.sleep(min(left, 0.05))  # pipelined bytes: still there
        return False

    def _parse(self, raw: bytes) -> dict[str, Any]:
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("application/json"):
            return json.loads(raw)
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            if "blocks" in form:
                form["blocks"] = json.loads(form["blocks"])
            return form
        return {}

    def _auth_test(self) -> None:
        """auth.test: who the token belongs to, or the same errors as chat.postMessage."""
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return self._json({"ok": False, "error": "not_authed"})
        if auth.removeprefix("Bearer ") != TOKEN:
            return self._json({"ok": False, "error": "invalid_auth"})
        self._json({"ok": True, "team": "Fake Team", "user": "ingestd", "team_id": "T0001"})

    def _post_message(self, body: dict[str, Any]) -> None:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return self._json({"ok": False, "error": "not_authed"})
        if auth.removeprefix("Bearer ") not in SCOPES:
            return self._json({"ok": False, "error": "invalid_auth"})
        channel = str(body.get("channel", "")).removeprefix("#")
        channel_id = next((i for i, n in CHANNELS.items() if channel in (i, n)), None)
        if channel_id is None:
            return self._json({"ok": False, "error": "channel_not_found"})
        slack = self.server.slack
        if channel_id in slack.not_in_channel:
            return self._json({"ok": False, "error": "not_in_channel"})
        if not body.get("text") and not body.get("blocks"):
            return self._json({"ok": False, "error": "no_text"})
        if len(body.get("text", "")) > 40000:
            return self._json({"ok": False, "error": "msg_too_long"})
        if "blocks" in body and (error := check_blocks(body["blocks"])):
            return self._json({"ok": False, "error": error})
        if "metadata" in body and (error := check_metadata(body["metadata"])):
            return self._json({"ok": False, "error": error})
        with slack.lock:
            slack.posted.append(body)
            ts = slack.next_ts()
            message = {"type": "message", "ts": ts, "text": body["text"], "bot_id": "B0001"}
            if "blocks" in body:
                message["blocks"] = body["blocks"]
            if "metadata" in body:
                message["metadata"] = body["metadata"]
            slack.messages.append({"channel": channel_id, "body": body, "message": message})
        self._json({"ok": True, "channel": channel_id, "ts": ts, "message": message})

    def _history(self, params: dict[str, str]) -> None:
        """conversations.history: a bot reads a channel it is in, with channels:history."""
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer "):
            return self._json({"ok": False, "error": "not_authed"})
        if token not in SCOPES:
            return self._json({"ok": False, "error": "invalid_auth"})
        if "channels:history" not in SCOPES[token]:
            provided = ",".join(SCOPES[token])
            answer = {"needed": "channels:history", "provided": provided}
            return self._json({"ok": False, "error": "missing_scope", **answer})
        channel = params.get("channel", "")
        if channel not in CHANNELS:  # an ID only: a name is not found
            return self._json({"ok": False, "error": "channel_not_found"})
        slack = self.server.slack
        if channel in slack.not_in_channel:
            return self._json({"ok": False, "error": "not_in_channel"})
        try:
            oldest = float(params.get("oldest", "0"))
            latest = float(params.get("latest") or time.time() + 1e6)
            limit = min(max(int(params.get("limit", "100")), 1), 999)
            start = int(params.get("cursor") or 0)
        except ValueError:
            return self._json({"ok": False, "error": "invalid_arguments"})
        inclusive = params.get("inclusive") in ("1", "true")
        with_metadata = params.get("include_all_metadata") in ("1", "true")

        def within(ts: str) -> bool:
            return oldest <= float(ts) <= latest if inclusive else oldest < float(ts) < latest

        with slack.lock:
            found = [
                dict(m["message"])
                for m in reversed(slack.messages)
                if m["channel"] == channel and within(m["message"]["ts"])
            ]
        if not with_metadata:
            found = [{k: v for k, v in m.items() if k != "metadata"} for m in found]
        page = found[start : start + limit]
        more = start + limit < len(found)
        self._json(
            {
                "ok": True,
                "messages": page,
                "has_more": more,
                "pin_count": 0,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""},
            }
        )

    def _update_message(self, body: dict[str, Any]) -> None:
        """chat.update: the same auth and block rules; the message must exist."""
        if self.headers.get("Authorization", "").removeprefix("Bearer ") not in SCOPES:
            return self._json({"ok": False, "error": "invalid_auth"})
        if "blocks" in body and (error := check_blocks(body["blocks"])):
            return self._json({"ok": False, "error": error})
        slack = self.server.slack
        with slack.lock:
            stored = next(
                (
                    m
                    for m in slack.messages
                    if (m["channel"], m["message"]["ts"]) == (body.get("channel"), body.get("ts"))
                ),
                None,
            )
            if stored is None:
                return self._json({"ok": False, "error": "message_not_found"})
            index = next(i for i, b in enumerate(slack.posted) if b is stored["body"])
            slack.posted[index] = stored["body"] = body
            stored["message"].update(text=body.get("text", ""), blocks=body.get("blocks"))
            slack.updated.append(body)
        self._json({"ok": True, "channel": body["channel"], "ts": body["ts"]})

    def _webhook(self, body: dict[str, Any]) -> None:
        if self.path != WEBHOOK_PATH:
            return self._answer(404, "no_service")
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            return self._answer(400, "invalid_payload")
        if not body.get("text") and not body.get("blocks"):
            return self._answer(400, "no_text")
        if "blocks" in body and check_blocks(body["blocks"]):
            return self._answer(400, "invalid_blocks")
        slack = self.server.slack
        with slack.lock:
            slack.posted.append(body)
        self._answer(200, "ok")

    def _json(self, data: dict[str, Any]) -> None:
        self._answer(200, json.dumps(data), {"Content-Type": "application/json; charset=utf-8"})

    def _answer(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        if getattr(self, "_silent", False):
            return
        payload = text.encode()
        self.send_response(status)
        for key, value in {"Content-Type": "text/plain", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client gave up (timeout tests)
            self.wfile.write(payload)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    slack: FakeSlack

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up is not a server bug


@contextlib.contextmanager
def serve_fake_slack() -> Iterator[FakeSlack]:
    """A running fake Slack on 127.0.0.1 (a free port); callers remove `PROXY_VARIABLES`."""
    server = Server(("127.0.0.1", 0), Handler)
    server.slack = FakeSlack(base_url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.slack
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
