"""`ingestd.httpnet`: the backends' HTTP/1.1 transport, against real servers on loopback."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
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


def _keep_alive_server(
    connections: list[int], answer: Callable[[bytes], bytes] | None = None
) -> Serve:
    """Answers every request on a connection (`answer(request)`, or ``{}``), counting
    connections."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while True:
            try:
                request = await _read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            writer.write(answer(request) if answer else _answer(b"{}"))
            await writer.drain()
        writer.close()

    return serve


class TestConnections:
    def test_the_backends_get_this_transport(self) -> None:
        """Both API clients are built on it (httpx's own would cost twice the CPU)."""
        assert isinstance(httpnet.transport(), httpnet.Transport)

    def test_requests_at_once_each_get_a_connection_and_then_share_them(self) -> None:
        """Four requests in flight take four connections; the next four reuse them."""
        connections: list[int] = []

        async def run(url: str) -> None:
            async with httpx.AsyncClient(transport=httpnet.transport()) as client:
                for _ in range(2):
                    answers = await asyncio.gather(*(client.get(url) for _ in range(4)))
                    assert [a.json() for a in answers] == [{}] * 4

        asyncio.run(_with_server(_keep_alive_server(connections), run))
        assert len(connections) == 4

    def test_only_so_many_connections_wait_idle(self) -> None:
        """Beyond max_keepalive_connections, the oldest idle connection is closed."""
        connections: list[int] = []

        async def run(url: str) -> None:
            limits = httpx.Limits(max_keepalive_connections=2)
            async with httpx.AsyncClient(transport=httpnet.transport(limits=limits)) as client:
                for _ in range(2):
                    await asyncio.gather(*(client.get(url) for _ in range(4)))

        asyncio.run(_with_server(_keep_alive_server(connections), run))
        assert len(connections) == 6  # 4, then 2 kept + 2 new

    def test_an_idle_connection_expires(self) -> None:
        connections: list[int] = []

        async def run(url: str) -> None:
            limits = httpx.Limits(keepalive_expiry=1.0)
            async with httpx.AsyncClient(transport=httpnet.transport(limits=limits)) as client:
                await client.get(url)
                await client.get(url)  # at once: the same connection
                await asyncio.sleep(1.2)
                await client.get(url)  # expired: a new one

        asyncio.run(_with_server(_keep_alive_server(connections), run))
        assert len(connections) == 2

    def test_connection_close_is_honoured(self) -> None:
        """An answer saying ``Connection: close`` ends that connection."""
        connections: list[int] = []

        async def run(url: str) -> None:
            async with httpx.AsyncClient(transport=httpnet.transport()) as client:
                for _ in range(3):
                    assert (await client.get(url)).json() == {"n": 1}

        serve = _keep_alive_server(connections, lambda _: _answer(b'{"n": 1}', close=True))
        asyncio.run(_with_server(serve, run))
        assert len(connections) == 3

    def test_an_answer_not_read_to_its_end_closes_its_connection(self) -> None:
        """A streamed answer left half read cannot carry the next request."""
        connections: list[int] = []
        big = b"x" * 1_000_000

        async def run(url: str) -> None:
            async with httpx.AsyncClient(transport=httpnet.transport()) as client:
                async with client.stream("GET", url) as response:
                    async for _ in response.aiter_raw():
                        break
                assert (await client.get(url)).content == big

        serve = _keep_alive_server(connections, lambda _: _answer(big))
        asyncio.run(_with_server(serve, run))
        assert len(connections) == 2

    def test_a_cancelled_request_does_not_leave_its_connection_behind(self) -> None:
        """Cancelled while waiting for the answer: that connection is closed, the slot is
        free again (one connection allowed), and the next request gets a fresh one."""
        connections: list[int] = []
        slow_arrived = asyncio.Event()

        async def slow_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(1)
            try:
                request = await _read_request(reader)
                if b"/slow" in request:
                    slow_arrived.set()
                    await asyncio.sleep(5)
                writer.write(_answer(b"{}"))
                await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            writer.close()

        async def run(url: str) -> None:
            limits = httpx.Limits(max_connections=1)
            async with httpx.AsyncClient(transport=httpnet.transport(limits=limits)) as client:
                slow = asyncio.create_task(client.get(url + "/slow"))
                await slow_arrived.wait()  # sent, waiting for its answer
                slow.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await slow
                async with asyncio.timeout(2):
                    assert (await client.get(url + "/fast")).json() == {}

        asyncio.run(_with_server(slow_first, run))
        assert len(connections) == 2

    def test_a_request_waits_for_a_free_connection_then_times_out(self) -> None:
        """With every connection busy, a request waits (the pool timeout), then raises
        httpx.PoolTimeout; once one is free, it goes."""
        release = asyncio.Event()
        held_arrived = asyncio.Event()

        async def held(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                try:
                    request = await _read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                if b"/held" in request:
                    held_arrived.set()
                    await release.wait()
                writer.write(_answer(b"{}"))
                await writer.drain()
            writer.close()

        async def run(url: str) -> None:
            limits = httpx.Limits(max_connections=1)
            timeout = httpx.Timeout(5, pool=0.2)
            transport = httpnet.transport(limits=limits)
            async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
                first = asyncio.create_task(client.get(url + "/held"))
                await held_arrived.wait()  # the one connection is busy
                with pytest.raises(httpx.PoolTimeout):
                    await client.get(url + "/other")
                waiting = asyncio.create_task(client.get(url + "/other", timeout=5))
                await asyncio.sleep(0.05)
                release.set()
                assert (await first).status_code == 200
                assert (await waiting).status_code == 200

        asyncio.run(_with_server(held, run))


class TestMessages:
    def test_the_request_goes_as_given(self) -> None:
        """Method, path with its query, headers and body reach the server unchanged."""
        requests: list[bytes] = []

        def answer(request: bytes) -> bytes:
            requests.append(request)
            return _answer(b"{}")

        async def run(url: str) -> None:
            async with httpx.AsyncClient(transport=httpnet.transport()) as client:
                await client.put(
                    url + "/v1/process/audio/abc?name=a%20b&x=1",
                    content=b"payload",
                    headers={"X-Api-Key": "k1", "Content-Type": "audio/wav"},
                )

        asyncio.run(_with_server(_keep_alive_server([], answer), run))
        head, _, body = requests[0].partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"PUT /v1/process/audio/abc?name=a%20b&x=1 HTTP/1.1"
        assert b"X-Api-Key: k1" in lines and b"Content-Type: audio/wav" in lines
        assert b"Content-Length: 7" in lines and body == b"payload"

    def test_a_streamed_upload_is_sent_chunked_and_whole(self) -> None:
        """An async body of unknown length goes with chunked transfer encoding."""
        received: list[bytes] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            assert b"transfer-encoding: chunked" in head.lower()
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                received.append(chunk[:-2])
            writer.write(_answer(b"{}", close=True))
            await writer.drain()
            writer.close()

        async def body() -> AsyncIterator[bytes]:
            for i in range(50):
                yield bytes([65 + i % 26]) * 100_000

        async def run(url: str) -> None:
            async with httpx.AsyncClient(transport=httpnet.transport()) as client:
                assert (await client.post(url, content=body())).status_code == 200

        asyncio.run(_with_server(serve, run))
        assert b"".join(received) == b"".join(bytes([65 + i % 26]) * 100_000 for i in range(50))

    def test_a_chunked_answer_and_an_informational_one(self) -> None:
        """A 100 Continue before the answer is passed over; a chunked body is joined, and
        the connection is kept for the next request."""
        connections: list[int] = []

        def answer(_: bytes) -> bytes:
            return (
                b"HTTP/1.1 100 Continue\r\n\r\n"
                b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n"
                b"X-Thing: 1\r\n\r\n"
                b'3\r\n{"a\r\n5\r\n": 1}\r\n0\r\n\r\n'
            )

        async def run(url: str) -> None:
            async with httpx.AsyncClient(transport=httpnet.transport()) as client:
                for _ in range(2):
                    response = await client.get(url)
                    assert response.status_code == 201 and response.reason_phrase == "Created"
                    assert response.headers["x-thing"] == "1"
                    assert response.http_version == "HTTP/1.1"
                    assert response.json() == {"a": 1}

        asyncio.run(_with_server(_keep_alive_server(connections, answer), run))
        assert len(connections) == 1

    def test_an_answer_before_the_upload_is_taken_is_returned(self) -> None:
        """A server that refuses an upload at once (413) and closes: the client gets the
        413, not a failed write."""

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                _answer(b'{"error": "too large"}', close=True).replace(
                    b"200 OK", b"413 Payload Too Large"
                )
            )
            await writer.drain()
            writer.transport.abort()  # unread body: the client's writes now fail

        async def run(url: str) -> None:
            async with httpx.AsyncClient(transport=httpnet.transport()) as client:
                response = await client.post(url, content=b"z" * 50_000_000)
                assert response.status_code == 413

        asyncio.run(_with_server(serve, run))

    def test_a_server_that_closes_without_answering(self) -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_request(reader)
            writer.close()

        async def run(url: str) -> None:
            async with httpx.AsyncClient(transport=httpnet.transport()) as client:
                with pytest.raises(httpx.RemoteProtocolError, match="without sending"):
                    await client.get(url)

        asyncio.run(_with_server(serve, run))

    def test_a_malformed_answer_is_a_protocol_error(self) -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_request(reader)
            writer.write(b"SPDY/9 nonsense\r\n\r\n")
            await writer.drain()
            writer.close()

        async def run(url: str) -> None:
            async with httpx.AsyncClient(transport=httpnet.transport()) as client:
                with pytest.raises(httpx.RemoteProtocolError):
                    await client.get(url)

        asyncio.run(_with_server(serve, run))

    def test_an_unsupported_scheme(self) -> None:
        async def run() -> None:
            async with httpx.AsyncClient(transport=httpnet.transport()) as client:
                with pytest.raises(httpx.UnsupportedProtocol):
                    await client.get("ftp://127.0.0.1/x")

        asyncio.run(run())
