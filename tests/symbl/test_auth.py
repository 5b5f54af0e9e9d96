"""Access tokens: caching, renewal ahead of expiry, one refresh for many callers, 401s."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import pytest

from ingestd.errors import Permanent
from ingestd.retrypolicy import RetryPolicy
from ingestd.sandbox import Sandbox
from ingestd_symbl.auth import TokenProvider, renew_after
from tests.symbl.conftest import make_client, requests_of


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeTokenApi:
    """A token endpoint handing out numbered tokens, or the same one while `sticky`."""

    def __init__(self, lifetime: float = 86400, status: int = 200, delay: float = 0.0) -> None:
        self.lifetime = lifetime
        self.status = status
        self.delay = delay
        self.sticky = False
        self.bodies: list[dict] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return httpx.Response(self.status, json={"message": "Invalid appId or appSecret."})
        number = 1 if self.sticky and self.bodies else len(self.bodies)
        return httpx.Response(
            200, json={"accessToken": f"tok-{number}", "expiresIn": self.lifetime}
        )


def provider(api: FakeTokenApi, clock: Callable[[], float] = time.monotonic) -> TokenProvider:
    http = httpx.AsyncClient(base_url="https://api.test", transport=httpx.MockTransport(api))
    policy = RetryPolicy(max_retries=0)
    return TokenProvider(http, app_id="app", app_secret="s3cret-canary", policy=policy, clock=clock)


class TestRenewal:
    def test_renew_point(self) -> None:
        """Renewal at 90 % or 60 s before expiry, whichever is earlier; half for short ones."""
        assert renew_after(86400) == pytest.approx(77760)
        assert renew_after(300) == 240
        assert renew_after(1000) == 900
        assert renew_after(10) == 5

    def test_request_body(self) -> None:
        """The token request carries the documented application grant."""
        api = FakeTokenApi()
        asyncio.run(provider(api).token())
        assert api.bodies == [{"type": "application", "appId": "app", "appSecret": "s3cret-canary"}]

    def test_cached_until_renewal_then_renewed(self) -> None:
        """The token is reused until 90 % of its lifetime, then fetched again."""
        api, clock = FakeTokenApi(lifetime=86400), FakeClock()
        tokens = provider(api, clock)

        async def scenario() -> list[str]:
            seen = [await tokens.token()]
            clock.now += 77759
            seen.append(await tokens.token())
            clock.now += 2
            seen.append(await tokens.token())
            return seen

        assert asyncio.run(scenario()) == ["tok-1", "tok-1", "tok-2"]
        assert len(api.bodies) == 2

    def test_same_token_kept_until_its_expiry(self) -> None:
        """When renewal hands back the cached token, it is not asked for again before expiry."""
        api, clock = FakeTokenApi(lifetime=1000), FakeClock()
        tokens = provider(api, clock)

        async def scenario() -> int:
            await tokens.token()
            api.sticky, api.lifetime = True, 100  # same token, 100 s left
            clock.now += 901
            await tokens.token()
            for _ in range(5):
                clock.now += 19
                await tokens.token()
            before_expiry = len(api.bodies)
            clock.now += 6
            api.sticky, api.lifetime = False, 1000
            assert await tokens.token() == "tok-3"
            return before_expiry

        assert asyncio.run(scenario()) == 2
        assert len(api.bodies) == 3

    def test_concurrent_callers_share_one_fetch(self) -> None:
        """Fifty callers needing a token at once cause a single token request."""
        api = FakeTokenApi(delay=0.05)
        tokens = provider(api)

        async def scenario() -> set[str]:
            return set(await asyncio.gather(*(tokens.token() for _ in range(50))))

        assert asyncio.run(scenario()) == {"tok-1"}
        assert len(api.bodies) == 1

    def test_invalidate_only_the_rejected_token(self) -> None:
        """An invalidation for an older token does not discard the newer one."""
        api = FakeTokenApi()
        tokens = provider(api)

        async def scenario() -> list[str]:
            first = await tokens.token()
            tokens.invalidate(first)
            second = await tokens.token()
            tokens.invalidate(first)  # a late 401 from a request that used the old token
            return [first, second, await tokens.token()]

        assert asyncio.run(scenario()) == ["tok-1", "tok-2", "tok-2"]

    def test_bad_credentials_are_permanent(self) -> None:
        """401 from token:generate is Permanent, names the keys to fix, hides the secret."""
        with pytest.raises(Permanent) as info:
            asyncio.run(provider(FakeTokenApi(status=401)).token())
        message = str(info.value)
        assert "Symbl rejected the app id/secret" in message
        assert "symbl.app_secret" in message
        assert "s3cret-canary" not in message and "s3cret-canary" not in repr(info.value)


class TestAgainstSandbox:
    def test_one_token_for_many_requests(self, sb: Sandbox) -> None:
        """Concurrent and sequential requests reuse one token."""

        async def scenario() -> None:
            client = make_client(sb)
            try:
                await asyncio.gather(*(client.find_conversations("x", 0) for _ in range(10)))
                await client.find_conversations("x", 0)
            finally:
                await client.aclose()

        asyncio.run(scenario())
        assert sb.stats()["token_generations"] == 1
        assert requests_of(sb, "conversation_list") == {"200": 11}

    def test_renewed_after_expiry_without_a_401(self, make_sandbox: Callable) -> None:
        """A short-lived token is renewed ahead of expiry: the API never sees a stale one."""
        sb = make_sandbox(token_lifetime_seconds=1.2)
        used: list[str] = []

        async def record(request: httpx.Request) -> None:
            if "Authorization" in request.headers:
                used.append(request.headers["Authorization"])

        async def scenario() -> None:
            client = make_client(sb)
            client._http.event_hooks["request"].append(record)
            try:
                await client.find_conversations("x", 0)
                await asyncio.sleep(1.3)
                await client.find_conversations("x", 0)
            finally:
                await client.aclose()

        asyncio.run(scenario())
        assert len(used) == 2 and used[0] != used[1]
        assert requests_of(sb, "conversation_list") == {"200": 2}

    def test_forced_401_refreshes_once(self, sb: Sandbox) -> None:
        """A token the API revoked gets one 401, a new token and a successful retry."""

        async def scenario() -> tuple[str, str]:
            client = make_client(sb)
            try:
                await client.find_conversations("x", 0)
                first = await client.tokens.token()
                sb.faults.arm({"kind": "expire_tokens"})
                await client.find_conversations("x", 0)
                return first, await client.tokens.token()
            finally:
                await client.aclose()

        first, second = asyncio.run(scenario())
        assert first != second
        assert requests_of(sb, "conversation_list") == {"200": 2, "401": 1}
        assert sb.stats()["tokens_issued"] == 2

    def test_wrong_secret_against_sandbox(self, sb: Sandbox) -> None:
        """The sandbox's 401 for a wrong secret ends in Permanent without a retry storm."""

        async def scenario() -> None:
            client = make_client(sb, app_secret="wrong-canary-secret")
            try:
                await client.find_conversations("x", 0)
            finally:
                await client.aclose()

        with pytest.raises(Permanent) as info:
            asyncio.run(scenario())
        assert "wrong-canary-secret" not in str(info.value)
        assert requests_of(sb, "token") == {"401": 1}
