"""`ingestd.httpnet`: httpx on plain asyncio streams, against real servers on loopback."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from ingestd import httpnet

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _answer(body: bytes, *, close: bool = False) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n"
    return (head + ("Connection: close\r\n" if close else "") + "\r\n").encode() + body


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    """Headers, then a body of the Content-Length they give (b"" at end of file)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + (await reader.readexactly(length) if length else b"")


async def _with_server(serve: Serve, run: Callable[[str], Awaitable[None]], **tls: object) -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", 0, **tls)  # type: ignore[arg-type]
    port = server.sockets[0].getsockname()[1]
    try:
        async with server:
            await run(f"{'https' if tls else 'http'}://127.0.0.1:{port}")
    finally:
        server.close()


class TestTransport:
    def test_the_pool_runs_on_asyncio_streams(self) -> None:
        """An httpx upgrade that hides the pool's backend would make every request dearer."""
        assert httpnet.uses_asyncio_streams(httpnet.transport())

    def test_keep_alive_requests_share_one_connection(self) -> None:
        """Sequential requests reuse the connection; a POST body arrives whole."""
        connections: list[int] = []
        bodies: list[bytes] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(1)
            while True:
                try:
                    request = await _read_request(reader)
                except asyncio.IncompleteReadError:
                    break
                bodies.append(request.partition(b"\r\n\r\n")[2])
                writer.write(_answer(b'{"ok": true}'))
                await writer.drain()
            writer.close()

        async def run(url: str) -> None:
            async with httpx.AsyncClient(transport=httpnet.transport()) as client:
                for _ in range(3):
                    assert (await client.get(url + "/x")).json() == {"ok": True}
                payload = b"z" * 300_000
                response = await client.post(url + "/up", content=payload)
                assert response.status_code == 200

        asyncio.run(_with_server(serve, run))
        assert len(connections) == 1
        assert bodies[-1] == b"z" * 300_000

    def test_the_backends_client_keeps_and_sends_no_cookies(self) -> None:
        """A Set-Cookie answer is not kept: the next request carries no Cookie header."""
        heads: list[bytes] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                try:
                    heads.append((await _read_request(reader)).lower())
                except asyncio.IncompleteReadError:
                    break
                writer.write(
                    b"HTTP/1.1 200 OK\r\nSet-Cookie: session=abc; Path=/\r\n"
                    b"Content-Length: 2\r\n\r\n{}"
                )
                await writer.drain()
            writer.close()

        async def run(url: str) -> None:
            async with httpnet.CookielessClient(transport=httpnet.transport()) as client:
                for _ in range(2):
                    assert (await client.get(url + "/x")).json() == {}
                assert len(client.cookies) == 0
                with pytest.raises(ValueError, match="no cookies"):
                    client.cookies = {"a": "b"}

        asyncio.run(_with_server(serve, run))
        assert len(heads) == 2 and not any(b"cookie:" in head for head in heads)

    def test_a_connection_the_server_closed_while_idle_is_not_reused(self) -> None:
        """The server closing an idle keep-alive connection costs a new connection, not an
        error: the pool sees the end of file before it sends on it."""
        connections: list[int] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(1)
            await _read_request(reader)
            writer.write(_answer(b"{}"))  # keep-alive promised...
            await writer.drain()
            writer.close()  # ...then closed, as an idle timeout on the server does

        async def run(url: str) -> None:
            async with httpx.AsyncClient(transport=httpnet.transport()) as client:
                await client.get(url)
                await asyncio.sleep(0.05)  # let the end of file arrive
                assert (await client.get(url)).status_code == 200

        asyncio.run(_with_server(serve, run))
        assert len(connections) == 2

    def test_network_failures_are_httpx_transport_errors(self) -> None:
        """A refused connection, a silent server and a cut answer raise httpx's errors (the
        retry policy retries `httpx.TransportError`)."""

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            request = await _read_request(reader)
            if b"/silent" in request:
                await asyncio.sleep(5)
            else:  # half an answer, then a cut
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
                await writer.drain()
            writer.close()

        async def run(url: str) -> None:
            transport = httpnet.transport()
            async with httpx.AsyncClient(transport=transport, timeout=0.3) as client:
                with pytest.raises(httpx.ReadTimeout):
                    await client.get(url + "/silent")
                with pytest.raises(httpx.RemoteProtocolError):
                    await client.get(url + "/cut")

        asyncio.run(_with_server(serve, run))

        async def refused() -> None:
            async with httpx.AsyncClient(transport=httpnet.transport()) as client:
                with pytest.raises(httpx.ConnectError):
                    await client.get("http://127.0.0.1:9/")

        asyncio.run(refused())

    def test_tls_is_verified_on_the_same_stream(self, tmp_path: Path) -> None:
        """https works against a server whose certificate is trusted, and fails with
        httpx.ConnectError against one that is not."""
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(cert, key)
        trusted = ssl.create_default_context(cafile=str(cert))

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await _read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            writer.write(_answer(b'{"tls": true}', close=True))
            await writer.drain()
            writer.close()

        async def run(url: str) -> None:
            async with httpx.AsyncClient(transport=httpnet.transport(verify=trusted)) as client:
                assert (await client.get(url)).json() == {"tls": True}
            async with httpx.AsyncClient(transport=httpnet.transport()) as client:
                with pytest.raises(httpx.ConnectError):
                    await client.get(url)

        asyncio.run(_with_server(serve, run, ssl=server_tls))
