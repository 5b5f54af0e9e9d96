"""HTTP plumbing: a threaded HTTP/1.1 server whose connections survive every answer.

Keep-alive only works if each request's body is consumed exactly: an answer given before the
body was read (401, 404, faults...) first drains a body of known length, and a body of
unknown length (chunked) gets the answer with ``Connection: close`` followed by a lingering
close, so the client reads the status instead of a reset. Every response is JSON with a
Content-Length. Stopping closes idle keep-alive connections too.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import re
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ingestd.sandbox import uploads

if TYPE_CHECKING:
    from ingestd.sandbox.app import Sandbox

log = logging.getLogger("ingestd.sandbox")

RouteFn = Callable[["Sandbox", "Handler", "re.Match[str]"], None]


@dataclass(frozen=True)
class Route:
    """A path pattern, the function per method, and names for faults and statistics."""

    pattern: re.Pattern[str]
    methods: dict[str, RouteFn]
    name: str
    group: str


class BodyError(Exception):
    """A JSON body could not be read; `status` says why (400, 411, 413)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Handler(BaseHTTPRequestHandler):
    """One connection; `_dispatch` serves each request on it."""

    server: SandboxServer
    protocol_version = "HTTP/1.1"
    server_version = "symbl-sandbox/1.0"
    sys_version = ""
    timeout = 60

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle + delayed ACK add
        # 40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    # -- framing ---------------------------------------------------------------------------

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        self.route_path = split.path.rstrip("/") or "/"
        self.query = split.query
        self.route_name = "unknown"
        self.status_sent: int | None = None
        self.dropped = False
        encoding = self.headers.get("Transfer-Encoding")
        self.chunked = encoding is not None and encoding.strip().lower() != "identity"
        self.length: int | None = None
        self.bad_length = False
        declared = {v.strip() for v in self.headers.get_all("Content-Length") or ()}
        if declared and not self.chunked:
            value = declared.pop()
            if declared or not value.isdigit():
                self.bad_length = True
            else:
                self.length = int(value)
        self.body_pending = self.chunked or self.bad_length or bool(self.length)
        try:
            self._route()
            if self.status_sent is None and not self.dropped:
                raise RuntimeError("route gave no answer")
        except OSError:
            self.close_connection = True  # the client went away mid-request
        except Exception:
            log.exception("sandbox: unhandled error on %s %s", self.command, self.path)
            if self.status_sent is None and not self.dropped:
                self.send_json(500, {"message": "Internal Server Error"}, close=True)

    def _route(self) -> None:
        sandbox = self.server.sandbox
        for route in self.server.routes:
            match = route.pattern.fullmatch(self.route_path)
            if match is None:
                continue
            self.route_name = route.name
            if route.group == "control" and not (
                sandbox.options.control_api and self.from_loopback()
            ):
                break
            handler = route.methods.get(self.command)
            if handler is None:
                allow = ", ".join(sorted(route.methods))
                self.send_json(405, {"message": "Method Not Allowed"}, headers={"Allow": allow})
            else:
                handler(sandbox, self, match)
            return
        self.send_json(404, {"message": f"Cannot {self.command} {self.route_path}"})

    def from_loopback(self) -> bool:
        try:
            address = ipaddress.ip_address(self.client_address[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return address.is_loopback

    # -- bodies ----------------------------------------------------------------------------

    def read_upload(self) -> uploads.Digest:
        """Stream the declared Content-Length bytes; raises uploads.Truncated."""
        assert self.length is not None
        self.body_pending = False
        try:
            return uploads.read_streaming(self.rfile, self.length)
        except uploads.Truncated:
            self.close_connection = True
            raise

    def read_body(self, limit: int) -> bytes:
        """A small body (JSON), Content-Length or chunked; raises BodyError."""
        if self.bad_length:
            raise BodyError(400, "invalid Content-Length")
        if self.chunked:
            self.body_pending = False
            self.close_connection = True  # until the chunked body was read completely
            body = self._read_chunked(limit)
            self.close_connection = False
            return body
        if not self.length:
            return b""
        if self.length > limit:
            raise BodyError(413, f"body larger than {limit} bytes")
        self.body_pending = False
        data = self.rfile.read(self.length)
        if len(data) < self.length:
            self.close_connection = True
            raise BodyError(400, "body shorter than Content-Length")
        return data

    def _read_chunked(self, limit: int) -> bytes:
        body = bytearray()
        while True:
            line = self.rfile.readline(1026)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise BodyError(400, "malformed chunked body") from None
            if size == 0:
                while self.rfile.readline(1026) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(body)
            if len(body) + size > limit:
                raise BodyError(413, f"body larger than {limit} bytes")
            data = self.rfile.read(size)
            if len(data) < size:
                raise BodyError(400, "chunked body ended early")
            body += data
            self.rfile.readline(3)

    def read_json(self, limit: int = 1 << 20) -> Any:
        """The JSON body; raises BodyError(400) when it is not JSON."""
        raw = self.read_body(limit)
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise BodyError(400, "body is not valid JSON") from None

    def _settle_body(self) -> bool:
        """Consume an unread body before answering; False when only closing can settle it."""
        if not self.body_pending:
            return True
        self.body_pending = False
        if self.length and not self.bad_length and uploads.discard(self.rfile, self.length):
            return True
        self.close_connection = True
        return False

    # -- answers ---------------------------------------------------------------------------

    def send_json(
        self,
        status: int,
        payload: Any,
        *,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        """Answer once: JSON body, Content-Length, and a body consumed or a closed connection."""
        if self.status_sent is not None or self.dropped:
            return
        linger = self.body_pending and (close or not self._settle_body())
        close = close or linger or self.close_connection
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        # Count before the client can see the answer, so stats never lag behind it.
        self.status_sent = status
        self.server.sandbox.state.count_request(self.route_name, status)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        if linger:
            self._linger()

    def drop(self, reason: str = "dropped") -> None:
        """Close the connection without any answer (a lost response, an aborted upload)."""
        self.dropped = True
        self.close_connection = True
        self.server.sandbox.state.count_request(self.route_name, reason)

    def _linger(self, seconds: float = 2.0) -> None:
        """Half-close and swallow what the client still sends, so it can read our answer."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                if not self.connection.recv(1 << 16):
                    break
        except OSError:
            pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors from BaseHTTPRequestHandler, as JSON like everything else."""
        self.route_name = getattr(self, "route_name", "unknown")
        self.status_sent = getattr(self, "status_sent", None)
        self.dropped = False
        self.body_pending = False
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.1"  # answer garbage with a real status line
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        body = json.dumps({"message": message or phrase}).encode("utf-8")
        self.send_response(code, message)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sandbox %s - %s", self.address_string(), format % args)


class SandboxServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its connections, so `close_connections()` can end them."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: Sandbox, routes: Iterable[Route]):
        self.sandbox = sandbox
        self.routes = tuple(routes)
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup (there may be no resolver)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="sandbox-connection",
            daemon=True,
        )
        with self._connections_lock:
            self._connections[request] = thread
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (killed, timed out) is normal here; anything else is not."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def close_connections(self, timeout: float = 5.0) -> None:
        """End every open connection (idle keep-alive ones included) and wait for threads."""
        with self._connections_lock:
            connections = list(self._connections.items())
        for sock, _ in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for _, thread in connections:
            thread.join(max(0.0, deadline - time.monotonic()))
