"""`Sandbox`: the emulator assembled — state, tokens, faults, webhooks and the HTTP server.

Runs on a daemon thread (`start`) for tests and the embedded daemon backend, or in the
foreground (`serve_forever`) for ``ingestd sandbox --port N``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ingestd.sandbox import control, reads, submit, views
from ingestd.sandbox.faults import FaultPlan
from ingestd.sandbox.options import SandboxOptions
from ingestd.sandbox.server import Route, SandboxServer
from ingestd.sandbox.state import State
from ingestd.sandbox.tokens import TokenStore
from ingestd.sandbox.webhooks import WebhookSender

CONVERSATION_PARTS = (
    "messages", "topics", "questions", "action-items", "follow-ups", "members", "summary",
    "analytics", "entities", "trackers-detected", "trackers",
)  # fmt: skip


def build_routes() -> list[Route]:
    """Every route, most specific first (``/audio/url`` before ``/audio/{conversationId}``)."""

    def route(pattern: str, name: str, group: str, **methods: Any) -> Route:
        return Route(re.compile(pattern), methods, name, group)

    routes = [route(r"/oauth2/token:generate", "token", "token", POST=submit.token_generate)]
    for kind in ("audio", "video"):
        base = rf"/v1/process/(?P<kind>{kind})"
        routes += [
            route(base + "/url", f"{kind}_url", "submit", POST=submit.submit_url),
            route(base + r"/url/(?P<cid>[^/]+)", f"{kind}_url", "submit", PUT=submit.submit_url),
            route(base, kind, "submit", POST=submit.submit_file),
            route(base + r"/(?P<cid>[^/]+)", kind, "submit", PUT=submit.submit_file),
        ]
    routes += [
        route(r"/v1/job/(?P<job>[^/]+)", "job", "job", GET=reads.job),
        route(
            r"/v1/conversations", "conversation_list", "conversation", GET=reads.list_conversations
        ),
        route(
            r"/v1/conversations/(?P<cid>[^/]+)",
            "conversation",
            "conversation",
            GET=reads.conversation,
            DELETE=reads.delete_conversation,
        ),
    ]
    for part in CONVERSATION_PARTS:
        pattern = rf"/v1/conversations/(?P<cid>[^/]+)/(?P<what>{re.escape(part)})"
        routes.append(
            route(pattern, f"conversation_{part}", "conversation", GET=reads.conversation)
        )
    for name, fn, methods in (
        ("submissions", control.submissions, ("GET",)),
        ("jobs", control.jobs, ("GET",)),
        ("conversations", control.conversations, ("GET",)),
        ("stats", control.stats, ("GET",)),
        ("webhooks", control.webhooks, ("GET",)),
        ("faults", control.faults, ("GET", "POST", "DELETE")),
        ("options", control.options, ("GET", "POST")),
        ("reset", control.reset, ("POST",)),
    ):
        routes.append(
            route(rf"/_sandbox/{name}", "control", "control", **dict.fromkeys(methods, fn))
        )
    return routes


class Sandbox:
    """A local emulator of the Symbl.ai Async API (see symbl-api.md §12).

    ``with Sandbox(SandboxOptions(job_seconds=0.2)) as sb:`` starts it on a free loopback
    port; `sb.url` is the base URL for the client.
    """

    def __init__(self, options: SandboxOptions | None = None) -> None:
        self._options = options or SandboxOptions()
        self.tokens = TokenStore()
        self.faults = FaultPlan(on_expire_tokens=self.tokens.expire_all)
        """The fault plan: ``sb.faults.arm("status", status=503, times=2)``."""
        self.webhooks = WebhookSender(lambda: self._options)
        self.state = State(self._options, self.faults, self.webhooks)
        self.stopping = threading.Event()
        self._lifecycle = threading.Lock()
        self._server: SandboxServer | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def options(self) -> SandboxOptions:
        return self._options

    def set_options(self, changes: Mapping[str, Any]) -> SandboxOptions:
        """Change options while running (jobs already timed keep their times)."""
        with self._lifecycle:
            self._options = self._options.replace(changes)
            self.state.set_options(self._options)
            return self._options

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234``; RuntimeError before `start`."""
        if self._url is None:
            raise RuntimeError("the sandbox is not running")
        return self._url

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on `host`:`port` (0 = a free port) from a daemon thread; the base URL."""
        with self._lifecycle:
            if self._server is not None or self.stopping.is_set():
                raise RuntimeError("a Sandbox can be started once")
            server = SandboxServer((host, port), self, build_routes())
            self._server = server
            bound_port = server.server_address[1]
            shown = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
            shown = f"[{shown}]" if ":" in shown else shown
            self._url = f"http://{shown}:{bound_port}"
            self.state.start()
            self.webhooks.start()
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="sandbox-http",
                daemon=True,
            )
            self._thread.start()
            return self._url

    def stop(self) -> None:
        """Stop serving, close every connection, stop the threads. Idempotent."""
        with self._lifecycle:
            self.stopping.set()
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()
        self.state.stop()
        self.webhooks.stop()
        if self._thread is not None:
            self._thread.join(5)

    def serve_forever(
        self, host: str = "127.0.0.1", port: int = 0, *, ready: Callable[[str], None] | None = None
    ) -> None:
        """Serve in the foreground until `stop()` or Ctrl-C; `ready(url)` once listening."""
        url = self.start(host, port)
        try:
            if ready is not None:
                ready(url)
            while not self.stopping.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> Sandbox:
        if self._server is None:
            self.start("127.0.0.1", 0)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- introspection ---------------------------------------------------------------------

    def submissions(self) -> list[dict[str, Any]]:
        """One entry per submission request, rejected ones included, oldest first."""
        return self.state.submissions()

    def jobs(self) -> list[dict[str, Any]]:
        """Every job with its status history ``[{status, at}]``."""
        return self.state.jobs()

    def conversations(self) -> dict[str, dict[str, Any]]:
        """conversationId -> the bare conversation plus jobIds, parts and transcript."""
        job_ids = self.state.conversation_jobs()
        out = {}
        for snap in self.state.snapshots():
            out[snap.id] = {
                **views.conversation(snap),
                "complete": snap.complete,
                "jobIds": job_ids.get(snap.id, []),
                "parts": [
                    {
                        "jobId": part.source.job_id,
                        "sha256": part.source.sha256,
                        "size": part.source.size,
                        "url": part.source.url,
                        "messageIds": [m.id for m in part.messages],
                    }
                    for part in snap.parts
                ],
                "transcript": [m.text for m in snap.messages],
            }
        return out

    def stats(self) -> dict[str, Any]:
        """Counters: requests by route and status, jobs, concurrency peak, tokens, webhooks."""
        fired: dict[str, int] = {}
        for entry in self.faults.fired():
            fired[entry["kind"]] = fired.get(entry["kind"], 0) + 1
        return {
            **self.state.counters(),
            "submissions": len(self.state.submissions()),
            "token_generations": self.tokens.generations,
            "tokens_issued": self.tokens.issued,
            **self.webhooks.counts(),
            "faults_fired": fired,
        }

    def reset(self) -> None:
        """Forget everything: data, logs, statistics, faults and tokens (options stay)."""
        self.faults.reset()
        self.tokens.reset()
        self.webhooks.reset()
        self.state.reset()
