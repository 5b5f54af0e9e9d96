"""httpx's connections on plain asyncio streams: the API backends' transport.

httpcore reaches the network through anyio, which costs the daemon more CPU than the HTTP
itself: before every request the pool asks each idle connection whether its socket is
readable (`is_readable`, to drop connections the server closed), and anyio answers by
building a dictionary of every socket attribute, calling ``getpeername`` among them; each
read and write also enters anyio's cancel scopes. Under the throughput bench (nine requests
per recording, a pool of 10-20 connections) that was a third of the requests' CPU.

`Backend` is an ``httpcore.AsyncNetworkBackend`` on ``asyncio.open_connection``:
reads and writes go through the stream reader and writer (whose buffers and write flow
control keep an upload's memory flat), errors are httpcore's own (so httpx maps them to
``httpx.ReadError``, ``ConnectTimeout``, ... as usual), TLS starts on the same stream, and
readability is the reader's state: asyncio has already read whatever arrived, so a closed
connection shows as end-of-file there, without a system call.

`transport()` is ``httpx.AsyncHTTPTransport`` (limits, TLS, proxies, error mapping all
httpx's) with its pool's network backend replaced; if a future httpx hides the pool, it is
the plain transport, only slower (tests/unit/test_httpnet.py notices).

`CookielessClient` is the ``httpx.AsyncClient`` the backends use: their APIs authenticate
with a header and set no cookies, yet httpx would run every answer through a cookie jar
(building urllib request and response stand-ins): about 7 % of a GET's CPU.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx


class Stream(httpcore.AsyncNetworkStream):
    """One TCP (or TLS) connection as httpcore wants it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError:
            raise httpcore.ReadTimeout(f"no data within {timeout} s") from None
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout(f"could not send within {timeout} s") from None
        except (OSError, RuntimeError) as exc:  # RuntimeError: written after close
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        # Not waiting for the close: a TLS peer that never answers close_notify would hold
        # the caller (anyio's httpcore backend does not wait either).
        self._writer.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError:
            self._writer.close()
            raise httpcore.ConnectTimeout(f"TLS handshake not done within {timeout} s") from None
        except (OSError, ssl.SSLError) as exc:
            self._writer.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # asked of idle connections before each request
            return self._reader.at_eof() or bool(getattr(self._reader, "_buffer", b""))
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        return None


class Backend(httpcore.AsyncNetworkBackend):
    """Opens `Stream`s; asyncio sets TCP_NODELAY on every TCP connection itself."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(local_address, 0) if local_address else None
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection within {timeout} s") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return Stream(reader, writer)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection within {timeout} s") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return Stream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def transport(**options: Any) -> httpx.AsyncHTTPTransport:
    """``httpx.AsyncHTTPTransport(**options)`` whose connections are `Backend`'s."""
    made = httpx.AsyncHTTPTransport(**options)
    pool = getattr(made, "_pool", None)
    if isinstance(pool, httpcore.AsyncConnectionPool) and hasattr(pool, "_network_backend"):
        pool._network_backend = Backend()
    return made


def uses_asyncio_streams(made: httpx.AsyncBaseTransport) -> bool:
    """Whether `transport()` could put `Backend` in place (for the test that guards it)."""
    pool = getattr(made, "_pool", None)
    return isinstance(getattr(pool, "_network_backend", None), Backend)


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
