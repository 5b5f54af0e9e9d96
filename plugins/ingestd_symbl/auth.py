"""Access tokens: fetched once, shared by every request, renewed before they run out.

The API issues a token for ``{"type": "application", appId, appSecret}`` at
``POST /oauth2/token:generate`` and answers repeated requests with the *same* token and its
remaining lifetime until it nears expiry (symbl-api.md §2). So the provider:

- renews ahead of expiry, at 90 % of the lifetime or 60 s before it, whichever is earlier
  (for lifetimes under two minutes, as in tests, at half the lifetime);
- when the renewal hands back the token it already had, keeps it until its own expiry
  instead of asking again and again;
- serialises renewals behind one lock, so a hundred concurrent callers cause one request;
- forgets a token the API rejected (`invalidate`, after a 401) so the next caller fetches.

The secret and the token never appear in a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import structlog

from ingestd import Permanent, Retryable, Secret
from ingestd.retrypolicy import RetryPolicy

log = structlog.get_logger()

TOKEN_PATH = "/oauth2/token:generate"


def renew_after(lifetime: float) -> float:
    """Seconds after issue at which a token of `lifetime` seconds is renewed."""
    ahead = min(0.9 * lifetime, lifetime - 60.0)
    return max(ahead, 0.5 * lifetime)


class TokenProvider:
    """The current access token of one app, renewed on demand.

    Args:
        http: the client to ask (its ``base_url`` is the API host).
        app_id: the app id.
        app_secret: the app secret; sent only in the token request body.
        policy: retries for 429/5xx/network trouble on the token request.
        clock: monotonic seconds, injectable for tests.
        timeout: seconds for one token request.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        app_id: str,
        app_secret: str,
        policy: RetryPolicy,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 30.0,
    ) -> None:
        self._http = http
        self._app_id = str.__str__(app_id)
        self._app_secret = Secret(app_secret)
        self._policy = policy
        self._clock = clock
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self._value: Secret | None = None
        self._renew_at = 0.0
        self.fetches = 0
        """Token requests that got an answer (for tests and stats)."""

    def _current(self) -> Secret | None:
        if self._value is not None and self._clock() < self._renew_at:
            return self._value
        return None

    async def token(self) -> Secret:
        """A token that is valid now (fetching or renewing it first if needed)."""
        current = self._current()
        if current is not None:
            return current
        async with self._lock:
            current = self._current()  # another caller may have renewed meanwhile
            if current is not None:
                return current
            return await self._fetch()

    def invalidate(self, token: str | None = None) -> None:
        """Forget the token after the API rejected it.

        Pass the token that was rejected: when concurrent requests all get a 401, only the
        first invalidation counts and the token fetched since is kept.
        """
        if token is None or token == self._value:
            self._value = None
            self._renew_at = 0.0

    async def _fetch(self) -> Secret:
        body = {"type": "application", "appId": self._app_id, "appSecret": self._app_secret}

        async def send() -> httpx.Response:
            return await self._http.post(
                TOKEN_PATH,
                json={k: str.__str__(v) for k, v in body.items()},
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            )

        what = f"POST {TOKEN_PATH}"
        response = await self._policy.run(send, what=what, accept=(400, 401, 403))
        if response.status_code in (400, 401, 403):
            raise Permanent(
                f"Symbl rejected the app id/secret (HTTP {response.status_code} from {what}); "
                f"check symbl.app_id and symbl.app_secret"
            )
        try:
            data = response.json()
            value = data["accessToken"]
            lifetime = float(data.get("expiresIn", 86400))
        except (ValueError, KeyError, TypeError):
            raise Retryable(f"{what}: the answer holds no accessToken/expiresIn") from None
        if not isinstance(value, str) or not value or lifetime <= 0:
            raise Retryable(f"{what}: the answer holds no usable accessToken/expiresIn")
        now = self._clock()
        self.fetches += 1
        if value == self._value:
            # The API still caches this one and will not issue another before it expires.
            self._renew_at = now + lifetime
            log.debug("token_reused", expires_in_s=lifetime)
        else:
            self._renew_at = now + renew_after(lifetime)
            log.info("token_refreshed", expires_in_s=lifetime)
        self._value = Secret(value)
        return self._value
