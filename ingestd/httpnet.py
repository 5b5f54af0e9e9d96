"""The API backends' HTTP/1.1 transport for httpx: h11 on plain asyncio streams.

httpx stays the backends' client (requests, timeouts, errors, auth headers are all httpx's);
this module is only what carries a request to the server and its answer back, an
``httpx.AsyncBaseTransport``. httpx's own transport goes through httpcore, whose pool and
connections take locks and cancellation shields from anyio on every request and whose pool
compares every connection with every other before each one: about 560 µs of CPU per GET on
loopback, where the same request through this transport costs about 260 µs (issue 18: the
nine requests of each recording were a third of the daemon's CPU). h11 -- the HTTP/1.1
parser httpcore itself uses -- does the protocol; this module does the connections:

- one keep-alive connection per request in flight, per origin (scheme, host, port); a
  finished one waits idle for the next request, for `Limits.keepalive_expiry` seconds at
  most, and at most `Limits.max_keepalive_connections` of them wait;
- a request waits for a free connection once `Limits.max_connections` are busy (the
  client's ``pool`` timeout, then `httpx.PoolTimeout`);
- an idle connection the server has closed (end of file already read by asyncio) or sent
  anything on is dropped before it is used;
- a connection whose answer was not read to its end, or that was cancelled mid-request,
  is closed, never reused;
- errors are httpx's: `ConnectError`/`ConnectTimeout`, `WriteError`/`WriteTimeout`,
  `ReadError`/`ReadTimeout`, `RemoteProtocolError` (a cut or malformed answer),
  `LocalProtocolError`, `PoolTimeout` -- all `httpx.TransportError`, which the retry
  policy retries;
- https with httpx's own certificate defaults (``httpx.create_ssl_context``), verified on
  the same stream.

Not supported, as before it: HTTP/2, proxies, Unix sockets (the backends use none).

`CookielessClient` is the ``httpx.AsyncClient`` the backends use: their APIs authenticate
with a header and set no cookies, yet httpx would run every answer through a cookie jar
(building urllib request and response stand-ins): about 7 % of a GET's CPU.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import h11
import httpx

_READ_SIZE = 64 * 1024
_MAX_HEAD_BYTES = 100 * 1024  # as httpcore allows (h11 alone: 16 KiB)
_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)

Origin = tuple[str, str, int]


class _Connection:
    """One HTTP/1.1 connection: h11's state machine on an asyncio stream pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD_BYTES)
        self.idle_since = 0.0

    def reusable(self, now: float, expiry: float) -> bool:
        """Idle, not expired, and nothing arrived meanwhile (the server's close included)."""
        return (
            self.h11.our_state is h11.IDLE
            and now - self.idle_since < expiry
            and not self.reader.at_eof()
            and not getattr(self.reader, "_buffer", b"")
            and not self.writer.is_closing()
        )

    def close(self) -> None:
        # Not waiting for the close: a TLS peer that never answers close_notify would hold
        # the caller.
        self.writer.close()

    async def send_request(self, request: httpx.Request, timeouts: dict[str, Any]) -> None:
        write_timeout = timeouts.get("write")
        head = self._bytes(
            h11.Request(
                method=request.method,
                target=request.url.raw_path,
                headers=request.headers.raw,
            ),
            request,
        )
        stream = request.stream
        if type(stream) is httpx.ByteStream:  # the whole body at hand: one write
            body = b"".join(stream)
            data = self._bytes(h11.Data(data=body), request) if body else b""
            await self._write(head + data + self._end(request), write_timeout, request)
            return
        await self._write(head, write_timeout, request)
        async for chunk in stream:  # type: ignore[union-attr]
            if chunk:
                data = self._bytes(h11.Data(data=chunk), request)
                await self._write(data, write_timeout, request)
        await self._write(self._end(request), write_timeout, request)

    def _end(self, request: httpx.Request) -> bytes:
        return self._bytes(h11.EndOfMessage(), request)

    def _bytes(self, event: h11.Event, request: httpx.Request) -> bytes:
        try:
            return self.h11.send(event) or b""
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc), request=request) from exc

    async def _write(self, data: bytes, timeout: float | None, request: httpx.Request) -> None:
        if not data:
            return
        if self.writer.is_closing():  # asyncio would drop the bytes without a word
            raise httpx.WriteError("the connection is closed", request=request)
        try:
            self.writer.write(data)
            if self.writer.transport.get_write_buffer_size() > 0:
                async with asyncio.timeout(timeout):
                    await self.writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout(
                f"could not send within {timeout} s", request=request
            ) from None
        except (OSError, RuntimeError) as exc:  # RuntimeError: written after close
            raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from exc

    async def next_event(self, timeout: float | None, request: httpx.Request) -> Any:
        """The next h11 event from the server, reading as needed."""
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc), request=request) from exc
            if event is not h11.NEED_DATA:
                if isinstance(event, h11.ConnectionClosed):
                    raise httpx.RemoteProtocolError(
                        "Server disconnected without sending a response.", request=request
                    )
                return event
            try:
                async with asyncio.timeout(timeout):
                    data = await self.reader.read(_READ_SIZE)
            except TimeoutError:
                raise httpx.ReadTimeout(f"no data within {timeout} s", request=request) from None
            except OSError as exc:
                raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
            if not data and self.h11.their_state is h11.SEND_RESPONSE:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                )
            self.h11.receive_data(data)

    def take_buffered(self) -> None:
        """Hand h11 what asyncio has read but not given out: once the connection is reset,
        the stream reader raises the reset before the bytes it holds (an early answer)."""
        buffered = getattr(self.reader, "_buffer", None)
        if buffered:
            self.h11.receive_data(bytes(buffered))
            buffered.clear()

    async def response_head(self, timeout: float | None, request: httpx.Request) -> h11.Response:
        while True:
            event = await self.next_event(timeout, request)
            if isinstance(event, h11.Response):
                return event
            # an InformationalResponse (100 Continue, 103 Early Hints): the answer follows


class _ResponseBody(httpx.AsyncByteStream):
    """The answer's body as it arrives; closing it frees its connection (for reuse once
    read to its end, closed otherwise)."""

    def __init__(
        self,
        transport: Transport,
        origin: Origin,
        connection: _Connection,
        request: httpx.Request,
        read_timeout: float | None,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._connection: _Connection | None = connection
        self._request = request
        self._read_timeout = read_timeout
        self._complete = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            raise httpx.StreamClosed()
        try:
            while True:
                event = await connection.next_event(self._read_timeout, self._request)
                if isinstance(event, h11.Data):
                    yield bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    self._complete = True
                    return
        except BaseException:
            self._free()
            raise

    async def aclose(self) -> None:
        self._free()

    def _free(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._transport._release(self._origin, connection, reuse=self._complete)


class Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive over asyncio streams, for an ``httpx.AsyncClient``."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        limits: httpx.Limits = _DEFAULT_LIMITS,
    ) -> None:
        self._verify = verify
        self._cert = cert
        self._trust_env = trust_env
        self._ssl_context: ssl.SSLContext | None = None  # made on the first https request
        self._max_connections = limits.max_connections or 1_000_000
        self._max_idle = (
            limits.max_keepalive_connections
            if limits.max_keepalive_connections is not None
            else self._max_connections
        )
        self._keepalive_expiry = (
            limits.keepalive_expiry if limits.keepalive_expiry is not None else float("inf")
        )
        self._idle: dict[Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._slots = asyncio.Semaphore(self._max_connections)  # connections in use
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}", request=request)
        origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        await self._take_slot(timeouts.get("pool"), request)
        connection: _Connection | None = None
        try:
            connection = self._idle_connection(origin) or await self._connect(
                origin, timeouts.get("connect"), request
            )
            try:
                await connection.send_request(request, timeouts)
            except httpx.WriteError as write_error:
                # The server may have answered and closed before taking the whole body
                # (413, 401): that answer, if it came, says more than the failed write.
                connection.take_buffered()
                try:
                    head = await connection.response_head(0.2, request)
                except httpx.TransportError:
                    raise write_error from None
            else:
                head = await connection.response_head(timeouts.get("read"), request)
        except BaseException:
            if connection is not None:
                connection.close()
            self._free_slot()
            raise
        body = _ResponseBody(self, origin, connection, request, timeouts.get("read"))
        return httpx.Response(
            head.status_code,
            headers=head.headers.raw_items(),
            stream=body,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": bytes(head.reason)},
        )

    async def aclose(self) -> None:
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        self._idle_count = 0

    # -- connections --------------------------------------------------------------------

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to be stale
            self._idle_count -= 1
            if connection.reusable(now, self._keepalive_expiry):
                return connection
            connection.close()
        return None

    async def _connect(
        self, origin: Origin, timeout: float | None, request: httpx.Request
    ) -> _Connection:
        scheme, host, port = origin
        tls = self._tls() if scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls else None,
                    limit=_READ_SIZE,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"no connection within {timeout} s", request=request
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        return _Connection(reader, writer)

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context(
                verify=self._verify, cert=self._cert, trust_env=self._trust_env
            )
        return self._ssl_context

    def _release(self, origin: Origin, connection: _Connection, *, reuse: bool) -> None:
        """A response is closed: its connection waits for the next request, or closes."""
        self._free_slot()
        state = connection.h11
        if (
            reuse
            and not self._closed
            and state.our_state is h11.DONE
            and state.their_state is h11.DONE
        ):
            state.start_next_cycle()
            connection.idle_since = time.monotonic()
            self._idle.setdefault(origin, []).append(connection)
            self._idle_count += 1
            if self._idle_count > self._max_idle:
                self._close_oldest_idle()
        else:
            connection.close()

    def _close_oldest_idle(self) -> None:
        oldest = min(
            (c for connections in self._idle.values() for c in connections),
            key=lambda c: c.idle_since,
        )
        for connections in self._idle.values():
            if oldest in connections:
                connections.remove(oldest)
                break
        self._idle_count -= 1
        oldest.close()

    # -- the limit of connections in use ---------------------------------------------------

    async def _take_slot(self, timeout: float | None, request: httpx.Request) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # a free one: taken at once, no timer armed
            return
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout(
                f"no free connection within {timeout} s", request=request
            ) from None

    def _free_slot(self) -> None:
        self._slots.release()


def transport(**options: Any) -> Transport:
    """The backends' transport: `Transport(**options)` (``verify``, ``cert``, ``limits``)."""
    return Transport(**options)


class _NoCookies(httpx.Cookies):
    """An empty jar that keeps nothing it is offered."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class CookielessClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` that neither keeps nor sends cookies."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        if cookies:
            raise ValueError("this client keeps no cookies")
