"""Can the API host be reached at all? For ``ingestd check``, which must tell a host that
does not resolve from one that refuses connections, and both from credentials refused
(that last one is each backend's own authenticated request). Shared by the API backends.

Each step is tried once, without the retry policy: a check answers in seconds. Behind an
HTTP proxy (``HTTPS_PROXY`` and the like) the proxy does the resolving and connecting, so
these steps are skipped and the authenticated request speaks for itself.
"""

from __future__ import annotations

import asyncio
import os
import socket

import httpx

from ingestd.errors import Permanent

PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy")


def behind_proxy() -> bool:
    return any(os.environ.get(v) or os.environ.get(v.upper()) for v in PROXY_VARIABLES)


async def reach(base_url: str, timeout_seconds: float) -> None:
    """Resolve the host and open a TCP connection to it; `Permanent` saying which failed."""
    if behind_proxy():
        return
    url = httpx.URL(base_url)
    host = url.host
    port = url.port or (443 if url.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    try:
        await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Permanent(
            f"{base_url}: host {host!r} does not resolve ({exc.strerror}); check the base_url "
            "and this machine's DNS"
        ) from None
    try:
        async with asyncio.timeout(timeout_seconds):
            _, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        raise Permanent(
            f"{base_url}: connection refused by {host}:{port}; is the service running there, "
            "and is the port right?"
        ) from None
    except TimeoutError:
        raise Permanent(
            f"{base_url}: no answer from {host}:{port} within {timeout_seconds:g} s (a firewall?)"
        ) from None
    except OSError as exc:
        raise Permanent(f"{base_url}: cannot connect to {host}:{port} ({exc.strerror})") from None
    writer.close()
    await writer.wait_closed()
