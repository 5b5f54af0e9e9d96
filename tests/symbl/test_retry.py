"""The retry policy on a fake clock: classification, back-off, Retry-After, giving up."""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Awaitable, Callable

import httpx
import pytest

from ingestd.errors import Permanent, Retryable
from ingestd.retrypolicy import RetryPolicy, api_message, parse_retry_after

NOW = 1_800_000_000.0


class Script:
    """A fake `send` answering from a list of statuses or exceptions, counting attempts."""

    def __init__(self, *answers: int | BaseException | httpx.Response) -> None:
        self.answers = list(answers)
        self.attempts = 0

    async def __call__(self) -> httpx.Response:
        answer = self.answers[min(self.attempts, len(self.answers) - 1)]
        self.attempts += 1
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(answer, json={"message": f"answer {answer}"})


def policy(sleeps: list[float], **kwargs: object) -> RetryPolicy:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    defaults: dict[str, object] = {
        "max_retries": 6,
        "backoff_initial_seconds": 0.5,
        "backoff_max_seconds": 60.0,
        "sleep": sleep,
        "clock": lambda: NOW,
        "rng": lambda: 1.0,
    }
    return RetryPolicy(**{**defaults, **kwargs})  # type: ignore[arg-type]


def run(
    p: RetryPolicy,
    send: Callable[[], Awaitable[httpx.Response]],
    **kwargs: object,
) -> httpx.Response:
    return asyncio.run(p.run(send, what="POST /v1/process/audio", **kwargs))  # type: ignore[arg-type]


class TestRetryAfter:
    def test_seconds(self) -> None:
        """Delay-seconds, decimals tolerated; negatives mean now."""
        assert parse_retry_after("3", now=NOW) == 3.0
        assert parse_retry_after(" 1.5 ", now=NOW) == 1.5
        assert parse_retry_after("-2", now=NOW) == 0.0

    def test_http_date(self) -> None:
        """An HTTP date is measured against the wall clock; a past date means now."""
        future = email.utils.formatdate(NOW + 120, usegmt=True)
        past = email.utils.formatdate(NOW - 120, usegmt=True)
        assert parse_retry_after(future, now=NOW) == pytest.approx(120.0)
        assert parse_retry_after(past, now=NOW) == 0.0

    def test_garbage(self) -> None:
        """Missing, empty, non-finite or unparseable values are ignored."""
        for value in (None, "", "soon", "nan", "inf", "Mon, 99 Foo 2024"):
            assert parse_retry_after(value, now=NOW) is None


class TestBackoff:
    def test_capped_exponential_ceiling(self) -> None:
        """With the random source at its top, waits double from the initial value to the cap."""
        p = policy([], backoff_initial_seconds=0.5, backoff_max_seconds=5.0)
        assert [p.backoff(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
        assert p.backoff(10_000) == 5.0

    def test_full_jitter(self) -> None:
        """The wait is the random fraction of the ceiling (full jitter), down to zero."""
        assert policy([], rng=lambda: 0.0).backoff(5) == 0.0
        assert policy([], rng=lambda: 0.25).backoff(2) == 0.5

    def test_retry_after_is_a_floor(self) -> None:
        """A Retry-After is waited in full, plus at most one initial back-off of jitter."""
        assert policy([], rng=lambda: 0.0).delay(3, 7.0) == 7.0
        assert policy([], rng=lambda: 1.0).delay(0, 7.0) == 7.5


class TestClassification:
    @pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
    def test_transient_statuses_retried(self, status: int) -> None:
        """Transient statuses are retried until a success."""
        sleeps: list[float] = []
        send = Script(status, status, 201)
        assert run(policy(sleeps), send).status_code == 201
        assert send.attempts == 3
        assert sleeps == [0.5, 1.0]

    @pytest.mark.parametrize("status", [400, 403, 404, 405, 411, 413, 415, 422])
    def test_permanent_statuses(self, status: int) -> None:
        """Other error statuses fail at once with the API's message."""
        sleeps: list[float] = []
        send = Script(status)
        with pytest.raises(Permanent) as info:
            run(policy(sleeps), send)
        assert str(info.value) == f"POST /v1/process/audio: HTTP {status}: answer {status}"
        assert (send.attempts, sleeps) == (1, [])

    @pytest.mark.parametrize(
        "error",
        [
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("slow"),
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            TimeoutError(),
        ],
    )
    def test_network_errors_retried(self, error: BaseException) -> None:
        """Timeouts, connection errors and our own deadline are retried."""
        sleeps: list[float] = []
        send = Script(error, 200)
        assert run(policy(sleeps), send).status_code == 200
        assert len(sleeps) == 1

    def test_accepted_status_returned(self) -> None:
        """A status the caller accepts (404 for a summary) is handed back, not raised."""
        assert run(policy([]), Script(404), accept=(404,)).status_code == 404

    def test_own_errors_pass_through(self) -> None:
        """A Retryable raised by `send` (a lost response) ends the call without a retry."""
        send = Script(Retryable("lost"), 201)
        with pytest.raises(Retryable, match="lost"):
            run(policy([]), send)
        assert send.attempts == 1


class TestGivingUp:
    def test_after_max_retries(self) -> None:
        """After max_retries retries the call raises Retryable with the last Retry-After."""
        sleeps: list[float] = []
        busy = httpx.Response(429, headers={"Retry-After": "2"}, json={"message": "limit"})
        send = Script(busy)
        with pytest.raises(Retryable) as info:
            run(policy(sleeps, max_retries=3, rng=lambda: 0.0), send)
        assert send.attempts == 4
        assert sleeps == [2.0, 2.0, 2.0]
        assert info.value.retry_after == 2.0
        assert "still failing after 4 attempts (HTTP 429: limit)" in str(info.value)

    def test_long_retry_after_handed_to_the_core(self) -> None:
        """A Retry-After beyond backoff_max is not slept here: Retryable carries it."""
        sleeps: list[float] = []
        date = email.utils.formatdate(NOW + 600, usegmt=True)
        send = Script(httpx.Response(503, headers={"Retry-After": date}), 200)
        with pytest.raises(Retryable) as info:
            run(policy(sleeps), send)
        assert info.value.retry_after == pytest.approx(600.0)
        assert (send.attempts, sleeps) == (1, [])

    def test_zero_retries(self) -> None:
        """max_retries 0 means one attempt."""
        send = Script(500)
        with pytest.raises(Retryable):
            run(policy([], max_retries=0), send)
        assert send.attempts == 1


class TestUnauthorized:
    def test_reauthorised_once(self) -> None:
        """A 401 invalidates the token and retries at once, without a back-off sleep."""
        sleeps: list[float] = []
        invalidations: list[int] = []

        async def on_unauthorized() -> None:
            invalidations.append(1)

        send = Script(401, 200)
        response = run(policy(sleeps), send, on_unauthorized=on_unauthorized)
        assert response.status_code == 200
        assert (send.attempts, invalidations, sleeps) == (2, [1], [])

    def test_second_401_is_permanent(self) -> None:
        """A fresh token rejected again is a configuration problem, not a retry storm."""
        calls: list[int] = []

        async def on_unauthorized() -> None:
            calls.append(1)

        send = Script(401)
        with pytest.raises(Permanent, match="rejected a freshly issued access token"):
            run(policy([]), send, on_unauthorized=on_unauthorized)
        assert (send.attempts, calls) == (2, [1])

    def test_401_without_token_is_permanent(self) -> None:
        """Without a token to renew (the token request itself), a 401 is permanent."""
        with pytest.raises(Permanent, match="HTTP 401"):
            run(policy([]), Script(401))


class TestApiMessage:
    def test_shapes(self) -> None:
        """The JSON message when there is one, else the text, else the reason phrase."""
        assert api_message(httpx.Response(400, json={"message": '"name" bad'})) == '"name" bad'
        assert api_message(httpx.Response(502, text="<html>Bad gateway</html>")).startswith(
            "<html>"
        )
        assert api_message(httpx.Response(500)) == "Internal Server Error"
