"""The job-status webhook (symbl-api.md §5): Symbl POSTs ``{"jobId", "status"}`` on every
change, so the daemon learns of a finished job at once instead of at its next poll.

A POST is a *hint*, never the truth: it carries no signature, so anyone who can reach the
listener could send one. A hint only wakes the poller of that job early, and the poller
confirms with ``GET /v1/job/{id}``; a forged POST costs one extra Job API read. Polling goes
on underneath at a slow pace, so a webhook that never arrives (a wrong ``public_url``, a
firewall) makes jobs slower, never lost.

HTTP is parsed by h11 (the sans-IO HTTP/1.1 state machine httpx is built on) rather than by
hand; the listener answers 200 to every well-formed update, as the contract requires, or
Symbl would resend it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from urllib.parse import urlsplit

import h11
import structlog

log = structlog.get_logger()

PATH = "/symbl/job-status"
"""Where the listener takes updates; ``public_url`` must end up here (a proxy may map it)."""

_MAX_BODY = 64 * 1024
_MAX_TRACKED = 10_000
_TERMINAL = frozenset({"completed", "failed"})
_READ_TIMEOUT = 10.0


class JobWebhook:
    """A small HTTP listener that turns job-status POSTs into wake-ups for `wait`.

    Args:
        listen: ``HOST:PORT`` to bind (port 0 picks a free one).
        public_url: the URL Symbl must POST to; None means ``http://HOST:PORT/symbl/job-status``
            of the bound address, which only an API on the same network can reach (the sandbox).
    """

    def __init__(self, listen: str, public_url: str | None = None) -> None:
        self.host, self.port = parse_listen(listen)
        self._public_url = public_url
        self._server: asyncio.Server | None = None
        self._waiters: dict[str, asyncio.Event] = {}
        self._seen: dict[str, str] = {}
        self.received = 0

    @property
    def url(self) -> str:
        if self._public_url:
            return self._public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{PATH}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("webhook_listening", listen=f"{self.host}:{self.port}", url=self.url)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    # -- for the poller ------------------------------------------------------------------

    async def wait(self, job_id: str, timeout: float) -> bool:
        """Sleep up to `timeout` seconds, less if an update for `job_id` arrives; True if one
        arrived (since the last call) and the job should be read now."""
        event = self._waiters.setdefault(job_id, asyncio.Event())
        if not event.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await event.wait()
        woken = event.is_set()
        event.clear()
        return woken

    def forget(self, job_id: str) -> str | None:
        """Stop tracking a job the poller is done with; return the last status POSTed for it."""
        self._waiters.pop(job_id, None)
        return self._seen.pop(job_id, None)

    def _hint(self, job_id: str, status: str) -> None:
        """Remember the update and wake the job's poller when it reports an end; the update
        may come before the poller starts waiting, so it is kept (boundedly) until then."""
        self.received += 1
        self._seen[job_id] = status
        if status in _TERMINAL:
            self._waiters.setdefault(job_id, asyncio.Event()).set()
        for table in (self._seen, self._waiters):
            while len(table) > _MAX_TRACKED:  # forged or forgotten ids must not pile up
                table.pop(next(iter(table)))

    # -- HTTP ----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
        try:
            while True:
                request, body = await self._read_request(conn, reader)
                if request is None:
                    return
                status, text = self._answer(request, body)
                await self._respond(conn, writer, status, text)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (
            h11.RemoteProtocolError,
            ConnectionError,
            TimeoutError,
            asyncio.IncompleteReadError,
        ):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                async with asyncio.timeout(_READ_TIMEOUT):
                    data = await reader.read(16 * 1024)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > _MAX_BODY:
                    raise h11.RemoteProtocolError("body too large")
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                return None, b""

    def _answer(self, request: h11.Request, body: bytes) -> tuple[int, str]:
        path = urlsplit(request.target.decode("ascii", "replace")).path
        if path.rstrip("/") != PATH:
            return 404, "not found"
        if request.method != b"POST":
            return 405, "POST job-status updates here"
        try:
            update = json.loads(body)
            job_id, status = update["jobId"], update["status"]
            if not isinstance(job_id, str) or not isinstance(status, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return 400, 'expected JSON {"jobId": "...", "status": "..."}'
        self._hint(job_id, status)
        return 200, "ok"

    async def _respond(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int, text: str
    ) -> None:
        payload = text.encode()
        headers = [
            ("content-type", "text/plain; charset=utf-8"),
            ("content-length", str(len(payload))),
        ]
        writer.write(conn.send(h11.Response(status_code=status, headers=headers)))
        writer.write(conn.send(h11.Data(data=payload)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT`` -> (host, port); port 0 picks a free one. The options
    were checked at start-up (`ingestd_symbl.options`), so a bad value here is a bug."""
    host, _, port = listen.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)
