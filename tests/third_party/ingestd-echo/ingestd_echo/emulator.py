"""The echo transcription service, emulated: real HTTP on a loopback port, in a thread.

Its API (JSON, ``Authorization: Bearer <api key>`` on every request):

- ``GET /v1/ping``: 200 when the key is accepted.
- ``POST /v1/jobs?name=N[&conversation=ID]`` with the media as the body: a job that makes a
  new conversation, or adds a part to ``ID``; answers ``{"job": J, "conversation": C}``.
- ``GET /v1/jobs/J``: ``{"status": "running" | "done"}``, done `job_seconds` after upload.
- ``GET /v1/conversations/C``: ``{"id", "name", "parts": ["heard N bytes, sha256 H"]}``.
- ``DELETE /v1/conversations/C``: 204, or 404 when there is no such conversation.

What it "hears" is the size and hash of each upload, so a test knows which bytes arrived.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class Emulator:
    """The service's state and its HTTP server; `start()` returns its URL."""

    def __init__(self, api_key: str, job_seconds: float = 0.2) -> None:
        self.api_key = api_key
        self.job_seconds = job_seconds
        self.conversations: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, float] = {}
        self.uploads = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        emulator = self

        class Handler(_Handler):
            state = emulator

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://{host}:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def upload(self, name: str, conversation: str | None, body: bytes) -> dict[str, str] | None:
        heard = f"heard {len(body)} bytes, sha256 {hashlib.sha256(body).hexdigest()}"
        with self._lock:
            if conversation is None:
                conversation = f"c{next(self._ids)}"
                self.conversations[conversation] = {"id": conversation, "name": name, "parts": []}
            elif conversation not in self.conversations:
                return None
            self.conversations[conversation]["parts"].append(heard)
            job = f"j{next(self._ids)}"
            self.jobs[job] = time.monotonic() + self.job_seconds
            self.uploads += 1
        return {"job": job, "conversation": conversation}


class _Handler(BaseHTTPRequestHandler):
    state: Emulator

    def log_message(self, *args: Any) -> None:  # quiet: the daemon's log is the test's
        pass

    def _answer(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.state.api_key}":
            return True
        self._answer(401, {"error": "unknown api key"})
        return False

    def do_GET(self) -> None:
        if not self._authorized():
            return
        path = urlsplit(self.path).path
        if path == "/v1/ping":
            self._answer(200, {"ok": True})
        elif path.startswith("/v1/jobs/") and path[9:] in self.state.jobs:
            done = time.monotonic() >= self.state.jobs[path[9:]]
            self._answer(200, {"status": "done" if done else "running"})
        elif path.startswith("/v1/conversations/") and path[18:] in self.state.conversations:
            self._answer(200, self.state.conversations[path[18:]])
        else:
            self._answer(404, {"error": "not found"})

    def do_POST(self) -> None:
        if not self._authorized():
            return
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = self.headers.get("Content-Length")
        if url.path != "/v1/jobs" or length is None:
            self._answer(411 if length is None else 404, {"error": "POST /v1/jobs with a body"})
            return
        body = self.rfile.read(int(length))
        answer = self.state.upload(query.get("name", ""), query.get("conversation"), body)
        self._answer(404 if answer is None else 201, answer or {"error": "no conversation"})

    def do_DELETE(self) -> None:
        if not self._authorized():
            return
        path = urlsplit(self.path).path
        with self.state._lock:
            gone = self.state.conversations.pop(path.removeprefix("/v1/conversations/"), None)
        self._answer(404 if gone is None else 204)
