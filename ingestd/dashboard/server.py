"""The dashboard's HTTP server: pages, the JSON API, static files; in its own threads.

It runs beside the event loop, like `ingestd.metrics.MetricsServer`, on its own port (the
metrics port is often opened to a Prometheus on another host; the dashboard stays on
loopback unless configured otherwise). Each connection gets a thread with a socket timeout,
so a slow or stuck client holds only its own thread; every read uses its own read-only
store connection (`ingestd.dashboard.reads`), so the pipeline never waits for a page.

Bad input (unknown id, bad filter, oversized query) gets a 4xx page or JSON error, never a
traceback; a bug gets a plain 500 and a log line.
"""

from __future__ import annotations

import json
import mimetypes
import re
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import jinja2
import structlog

from ingestd.dashboard.actions import ActionFailed, Actions
from ingestd.dashboard.auth import COOKIE, Denied, Guard
from ingestd.dashboard.reads import PAGE_SIZE, Live, Reads, duration, size, when
from ingestd.errors import IngestdError, StoreError
from ingestd.lifecycle import State
from ingestd.metrics import parse_listen
from ingestd.store import Store

log = structlog.get_logger()

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_QUERY = 2048
MAX_BODY = 16 * 1024
REQUEST_TIMEOUT_SECONDS = 15
_STATIC = {"dashboard.css", "dashboard.js"}
_CONVERSATION_ID = re.compile(r"^[\w.:-]{1,128}$")


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ingestd.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, duration=duration, size=size, tojson_pretty=_pretty, fact=_fact)
    env.globals["states"] = [str(s) for s in State]
    return env


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _fact(value: Any) -> str:
    """An event fact as a person reads it: lists joined, yes/no, mappings as key: value."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_fact(v) for v in value) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_fact(v)}" for k, v in value.items())
    return str(value)


def _parse_date(value: str, key: str) -> float:
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise BadRequest(400, f"{key}: expected a date as YYYY-MM-DD, got {value!r}") from None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # 5 by default: a burst of pollers would wait for SYN retries (1 s)
    app: DashboardServer

    def service_actions(self) -> None:  # called by serve_forever about twice a second
        self.app.sample_counters()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "ingestd"
    protocol_version = "HTTP/1.0"
    timeout = REQUEST_TIMEOUT_SECONDS  # a client that stops talking loses its thread only

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr: it would break journald's one-JSON-event-a-line."""

    def _handle(self, method: str) -> None:
        app = self.server.app
        parts = urlsplit(self.path)
        api = parts.path.startswith("/api/")
        try:
            if len(parts.query) > MAX_QUERY:
                raise BadRequest(414, f"the query is longer than {MAX_QUERY} characters")
            query = parse_qs(parts.query, keep_blank_values=True, max_num_fields=20)
            form: dict[str, list[str]] = {}
            if method == "POST":
                form = self._read_form()
            request_headers = dict(self.headers.items())
            app.check_host(request_headers.get("Host", ""))
            status, content_type, body, headers = app.route(
                method, parts.path, query, form, request_headers
            )
        except BadRequest as exc:
            status, content_type, body, headers = app.error(exc.status, exc.message, api)
        except Denied as exc:
            status, content_type, body, headers = app.error(exc.status, exc.message, api)
        except ActionFailed as exc:
            status, content_type, body, headers = app.error(exc.status, exc.message, api)
        except ValueError as exc:  # parse_qs: too many fields
            status, content_type, body, headers = app.error(400, f"bad query: {exc}", api)
        except StoreError as exc:
            status, content_type, body, headers = app.error(503, str(exc), api)
        except Exception as exc:  # a bug: a plain 500, the daemon goes on
            log.error("dashboard_request_failed", path=parts.path, error=repr(exc))
            status, content_type, body, headers = app.error(500, "internal error", api)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("X-Frame-Options", "DENY")
            self.send_header("Referrer-Policy", "same-origin")
            self.send_header(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            )
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the client went away

    def _read_form(self) -> dict[str, list[str]]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise BadRequest(400, "bad Content-Length") from None
        if length > MAX_BODY:
            raise BadRequest(413, f"the request body is larger than {MAX_BODY} bytes")
        raw = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
        if "json" in (self.headers.get("Content-Type") or ""):
            try:
                data = json.loads(raw or "{}")
            except ValueError:
                raise BadRequest(400, "the body is not valid JSON") from None
            if not isinstance(data, dict):
                raise BadRequest(400, "expected a JSON object")
            return {str(k): [str(v)] for k, v in data.items() if v is not None}
        return parse_qs(raw, keep_blank_values=True, max_num_fields=20)


Response = tuple[int, str, bytes, list[tuple[str, str]]]


class DashboardServer:
    """Serve the dashboard on `listen` from a background thread.

    Args:
        listen: ``HOST:PORT`` (``dashboard.listen``).
        open_reader: opens a read-only store (`Store.reader`), once per request.
        live: returns the daemon's `Live` snapshot; called from server threads.
        actions: retry/redeliver (`Actions`); their access is checked by `guard`.
        guard: the token, CSRF and Origin checks.
        counters: returns (API 429s, retries) totals so far, sampled for "last hour".
    """

    def __init__(
        self,
        listen: str,
        open_reader: Callable[[], Store],
        *,
        live: Callable[[], Live],
        actions: Actions,
        guard: Guard,
        counters: Callable[[], tuple[float, float]] = lambda: (0.0, 0.0),
    ) -> None:
        self.listen = listen
        self.host, self.port = parse_listen(listen)
        self.guard = guard
        self.actions = actions
        self._counters = counters
        self._samples: list[tuple[float, float, float]] = []  # (time, 429s, retries)
        self._live = live
        self.reads = Reads(open_reader, self._live_with_counts)
        self.templates = _environment()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- counters over the last hour -----------------------------------------------------

    def sample_counters(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self._samples and now - self._samples[-1][0] < 60:
            return
        self._samples.append((now, *self._counters()))
        self._samples = [s for s in self._samples if now - s[0] <= 3660]

    def last_hour(self) -> tuple[int, int]:
        """(429 answers, retries) since the oldest sample within the hour."""
        api_429, retries = self._counters()
        now = time.monotonic()
        base = next((s for s in self._samples if now - s[0] <= 3600), None)
        if base is None:
            return int(api_429), int(retries)
        return int(api_429 - base[1]), int(retries - base[2])

    def _live_with_counts(self) -> Live:
        live = self._live()
        api_429, retries = self.last_hour()
        return Live(
            **{
                **live.__dict__,
                "api_429_last_hour": api_429,
                "retries_last_hour": retries,
                "actions_enabled": self.guard.enabled,
            }
        )

    # -- routing ---------------------------------------------------------------------------

    def check_host(self, host: str) -> None:
        """On a loopback address, answer only requests made to a loopback name or one of
        ``dashboard.allowed_hosts`` (a reverse proxy's): a page whose DNS name was rebound to
        127.0.0.1 sends its own name as Host (DNS rebinding)."""
        if self.host not in _LOOPBACK:
            return  # reachable under names we cannot know; the Origin check guards actions
        name = (urlsplit(f"//{host}").hostname or "").lower()
        if name not in _LOOPBACK and name not in self.guard.allowed_hosts:
            raise Denied(403, f"refused: Host {host[:60]!r} is not this loopback dashboard")

    def route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        form: dict[str, list[str]],
        headers: dict[str, str],
    ) -> Response:
        path = path.rstrip("/") or "/"
        segments = path.strip("/").split("/") if path != "/" else []
        if method == "POST":
            return self._post(segments, form, headers)
        if segments[:1] == ["api"]:
            return self._api(segments[1:], query)
        signed_in = self.guard.signed_in(headers)
        page = {
            "signed_in": signed_in,
            "csrf": self.guard.csrf_value() if signed_in else "",
            "actions_enabled": self.guard.enabled,
            "nav": {"": "overview", "queue": "queue", "recordings": "history"}.get(
                (segments or [""])[0] if len(segments) < 2 else "-", ""
            ),
        }
        page["notice"] = _NOTICES.get(_one(query, "done") or "")  # fixed texts: no reflection
        match segments:
            case []:
                return self._html("overview.html", status=self.reads.status(), **page)
            case ["queue"]:
                return self._html("queue.html", queue=self.reads.queue(), **page)
            case ["recordings"]:
                filters = _filters(query)
                found = self.reads.recordings(**filters)
                if found["page"] > found["pages"] and found["total"]:
                    raise BadRequest(404, f"page {found['page']}: there are {found['pages']}")
                return self._html(
                    "recordings.html", found=found, query=_echo(query), page_size=PAGE_SIZE, **page
                )
            case ["recordings", rid]:
                detail = self.reads.recording(_id(rid))
                if detail is None:
                    raise BadRequest(404, f"no recording #{rid}")
                return self._html("recording.html", r=detail, **page)
            case ["recordings", rid, "files", index]:
                return self._file(_id(rid), _id(index, "file"))
            case ["conversations", cid]:
                if not _CONVERSATION_ID.match(cid):
                    raise BadRequest(400, "that is not a conversation id")
                conversation = self.reads.conversation(cid)
                if conversation is None:
                    raise BadRequest(404, f"no conversation {cid} in the store")
                return self._html("conversation.html", c=conversation, **page)
            case ["login"]:
                back = _one(query, "next") or "/"
                back = back if back.startswith("/") and not back.startswith("//") else "/"
                return self._html("login.html", next_page=back, **page)
            case ["static", name] if name in _STATIC:
                data = resources.files("ingestd.dashboard").joinpath("static", name).read_bytes()
                kind = "text/css" if name.endswith(".css") else "text/javascript"
                return 200, f"{kind}; charset=utf-8", data, [("Cache-Control", "max-age=300")]
        raise BadRequest(404, f"no page at {path}")

    def _api(self, segments: list[str], query: dict[str, list[str]]) -> Response:
        match segments:
            case ["status"]:
                return _json(200, self.reads.status())
            case ["queue"]:
                return _json(200, {"queue": self.reads.queue()})
            case ["recordings"]:
                return _json(200, self.reads.recordings(**_filters(query)))
            case ["recordings", rid]:
                detail = self.reads.recording(_id(rid))
                if detail is None:
                    raise BadRequest(404, f"no recording #{rid}")
                return _json(200, detail)
        raise BadRequest(404, "no such API endpoint; see GET /api/status")

    def _post(
        self, segments: list[str], form: dict[str, list[str]], headers: dict[str, str]
    ) -> Response:
        api = segments[:1] == ["api"]
        if api:
            segments = segments[1:]
        fields = {k: v[0] for k, v in form.items() if v}
        match segments:
            case ["login"]:
                self.guard.check_origin(headers)
                if not self.guard.enabled:
                    raise Denied(403, "the dashboard is read-only: no token is configured")
                if not self.guard.token_matches(fields.get("token", "")):
                    raise Denied(401, "wrong token")
                cookie = f"{COOKIE}={self.guard.session_value()}; Path=/; HttpOnly; SameSite=Strict"
                back = fields.get("next", "/")
                back = back if back.startswith("/") and not back.startswith("//") else "/"
                return 303, "text/plain", b"", [("Location", back), ("Set-Cookie", cookie)]
            case ["recordings", rid, "retry"]:
                recording_id = _id(rid)
                self.guard.check_action(headers, fields)
                detail = self.reads.recording(recording_id)
                if detail is None:
                    raise BadRequest(404, f"no recording #{recording_id}")
                if not detail["can_retry"]:
                    raise BadRequest(
                        409, f"#{recording_id} is {detail['state']}; only failed or rejected ones"
                    )
                message = self.actions.retry(recording_id)
                log.info("dashboard_retry", recording_id=recording_id)
                return self._after_action(api, recording_id, message, "retry")
            case ["recordings", rid, "redeliver"]:
                recording_id = _id(rid)
                self.guard.check_action(headers, fields)
                detail = self.reads.recording(recording_id)
                if detail is None:
                    raise BadRequest(404, f"no recording #{recording_id}")
                if not detail["conversation_id"]:
                    raise BadRequest(409, f"#{recording_id} has no conversation to redeliver")
                sink = fields.get("sink") or None
                if sink and sink not in detail["sinks"]:
                    raise BadRequest(400, f"no sink named {sink!r}")
                message = self.actions.redeliver(detail["conversation_id"], sink)
                log.info("dashboard_redeliver", recording_id=recording_id, sink=sink or "all")
                return self._after_action(api, recording_id, message, "redeliver")
        raise BadRequest(404, "nothing to POST here")

    def _after_action(self, api: bool, recording_id: int, message: str, done: str) -> Response:
        if api:
            return _json(200, {"ok": True, "message": message})
        location = f"/recordings/{recording_id}?{urlencode({'done': done})}"
        return 303, "text/plain", b"", [("Location", location)]

    def _file(self, recording_id: int, index: int) -> Response:
        path = self.reads.result_file(recording_id, index)
        if path is None:
            raise BadRequest(404, "no such result file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BadRequest(410, f"{path.name}: {exc.strerror or 'cannot be read'}") from None
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or path.suffix in (".json", ".md", ".srt", ".vtt", ".txt"):
            kind = "text/plain; charset=utf-8"  # shown, never run, whatever the file says
        disposition = f"inline; filename*=UTF-8''{quote(path.name)}"
        return 200, kind, data, [("Content-Disposition", disposition)]

    def _html(self, template: str, **context: Any) -> Response:
        body = self.templates.get_template(template).render(**context).encode()
        return 200, "text/html; charset=utf-8", body, []

    def error(self, status: int, message: str, api: bool) -> Response:
        if api:
            return _json(status, {"error": message, "status": status})
        body = (
            self.templates.get_template("error.html")
            .render(status=status, message=message, signed_in=False, notice=None, nav="")
            .encode()
        )
        return status, "text/html; charset=utf-8", body, []

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in a daemon thread; raise `IngestdError` if the port is taken."""
        try:
            family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0][0]
            server_class = type("_BoundServer", (_Server,), {"address_family": family})
            self._httpd = server_class((self.host, self.port), _Handler)
        except OSError as exc:
            raise IngestdError(
                f"dashboard.listen {self.listen}: cannot listen: {exc.strerror or exc}; "
                f"choose another address or stop what uses it"
            ) from None
        self._httpd.app = self
        self.port = self._httpd.server_address[1]
        self.sample_counters()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="ingestd-dashboard", daemon=True
        )
        self._thread.start()
        log.info(
            "dashboard_listening",
            url=self.url,
            actions="token" if self.guard.enabled else "off (read-only)",
        )
        if self.host not in _LOOPBACK and not self.guard.enabled:
            log.warning(
                "dashboard_open_to_the_network",
                url=self.url,
                action="anyone who reaches this address can read every recording's status and "
                "transcript; keep it behind a firewall or listen on 127.0.0.1",
            )

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None


def _json(status: int, data: Any) -> Response:
    body = json.dumps(data, indent=1, default=str).encode() + b"\n"
    return status, "application/json", body, []


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[-1].strip() if values and values[-1].strip() else None


def _id(text: str, what: str = "recording") -> int:
    if not text.isdigit() or len(text) > 12:
        raise BadRequest(400, f"that is not a {what} number: {text[:40]!r}")
    return int(text)


_FILTER_KEYS = {"state", "watch", "from", "to", "q", "page", "done"}
_NOTICES = {
    "retry": "Retry done: the recording is re-queued; the daemon picks it up at once.",
    "redeliver": "Redelivery queued: the daemon delivers it again at once.",
}


def _filters(query: dict[str, list[str]]) -> dict[str, Any]:
    """The history's filters from the query string; a bad one is a 400 naming it."""
    unknown = set(query) - _FILTER_KEYS
    if unknown:
        raise BadRequest(400, f"unknown filter {sorted(unknown)[0]!r}")
    states = [s for v in query.get("state", []) for s in v.split(",") if s]
    for state in states:
        if state not in State.__members__.values():
            raise BadRequest(400, f"state: expected one of {', '.join(State)}, got {state[:40]!r}")
    page_text = _one(query, "page") or "1"
    if not page_text.isdigit() or not 1 <= int(page_text) <= 100_000:
        raise BadRequest(400, f"page: expected a number from 1, got {page_text[:20]!r}")
    text = _one(query, "q")
    if text and len(text) > 200:
        raise BadRequest(400, "q: the search text is longer than 200 characters")
    since = _one(query, "from")
    until = _one(query, "to")
    return {
        "states": states,
        "watch": _one(query, "watch"),
        "since": _parse_date(since, "from") if since else None,
        "until": _parse_date(until, "to") + 86400 if until else None,
        "text": text,
        "page": int(page_text),
    }


def _echo(query: dict[str, list[str]]) -> dict[str, str]:
    """The filters as given, for the form and the paging links."""
    return {k: ",".join(v) for k, v in query.items() if k in _FILTER_KEYS - {"page", "done"}}
