"""The retry policy of the API backends (Symbl, OpenAI-compatible servers): which answers
deserve another try, how long to wait, when to stop.

One place decides, so every call (token, upload, poll, fetch) behaves alike:

- 2xx (and any status a caller accepts, like 404 for a summary) is returned;
- 408, 429, 500, 502, 503, 504, timeouts and connection errors are retried with exponential
  back-off and full jitter (a random wait in ``[0, min(max, initial * 2**attempt)]``), where a
  ``Retry-After`` (seconds or an HTTP date) is a floor, not a suggestion;
- 401 invalidates the token and is retried once at once; a second 401 is `Permanent`: a
  retry storm against a rejected credential helps nobody;
- every other status (400, 403, 404, 405, 411, 413, 415, ...) is `Permanent`, with the API's
  own message;
- after ``max_retries`` retries, or when the server asks for a longer wait than
  ``backoff_max_seconds``, the call gives up with `Retryable` (carrying ``retry_after``) so
  the core backs off at the recording level instead of holding a worker asleep.

Sleep, wall clock and random source are injectable so tests run on a fake clock.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from ingestd import record_api_request
from ingestd.errors import IngestdError, Permanent, RateLimited, Retryable

log = structlog.get_logger()

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Answers that say "not now" rather than "never"."""

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (httpx.TransportError, TimeoutError)
"""Network failures worth another try: httpx timeouts, connect/read/write errors, dropped
connections, and our own overall deadline (`asyncio.timeout` raises TimeoutError)."""


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 §10.2.3), or None.

    Accepts delay-seconds (decimals tolerated) and an HTTP date, which is measured against
    `now` (UNIX time); a date in the past means "now" (0). Garbage is ignored (None).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are always GMT
        return None
    return max(0.0, when.timestamp() - now)


def api_message(response: httpx.Response) -> str:
    """The API's own explanation of an error answer, short enough for one log line."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"][:500]
    text = response.text.strip()
    return text[:200] if text else (response.reason_phrase or "no message")


def describe(exc: BaseException) -> str:
    """A transport error as ``ReadTimeout: ...`` (httpx messages carry no URL or header)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class RetryPolicy:
    """Bounded retries with capped, fully jittered exponential back-off."""

    max_retries: int = 6
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 60.0
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    clock: Callable[[], float] = time.time
    """Wall clock (UNIX time), only to turn a Retry-After HTTP date into seconds."""
    rng: Callable[[], float] = random.random

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in ``[0, min(max, initial * 2**attempt)]`` (attempt from 0)."""
        growth = 2.0 ** min(attempt, 64)
        ceiling = min(self.backoff_max_seconds, self.backoff_initial_seconds * growth)
        return self.rng() * ceiling

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """The wait before retry number ``attempt + 1``.

        With a Retry-After the server's wait is the floor and a little jitter (up to one
        initial back-off) keeps a crowd of clients from returning at the same instant.
        """
        if retry_after is None:
            return self.backoff(attempt)
        return retry_after + self.rng() * self.backoff_initial_seconds

    async def run(
        self,
        send: Callable[[], Awaitable[httpx.Response]],
        *,
        what: str,
        accept: Collection[int] = (),
        on_unauthorized: Callable[[], Awaitable[None]] | None = None,
        rate_limit_ends: bool = False,
    ) -> httpx.Response:
        """Call `send` until it yields a 2xx (or an `accept`ed status), per the policy.

        Args:
            send: one attempt; must build its request afresh (a consumed upload stream
                cannot be replayed). It may raise `Retryable`/`Permanent` itself, which end
                the call at once (e.g. a response lost after an upload was fully sent).
            what: ``METHOD /path`` for messages and logs; never a URL with credentials.
            accept: non-2xx statuses the caller handles itself.
            on_unauthorized: invalidates the token on a 401; None makes a 401 permanent.
            rate_limit_ends: a 429 ends the call at once with `RateLimited` (submissions:
                the core owns the account's job budget and queues the recording again,
                rather than spending retries on a limit that frees only as jobs end).
        """
        attempt = 0
        reauthorized = False
        while True:
            status: int | None = None
            retry_after: float | None = None
            started = time.monotonic()
            try:
                response = await send()
            except TRANSIENT_ERRORS as exc:
                record_api_request(what, 0, time.monotonic() - started)
                reason = describe(exc)
            except IngestdError:  # send's own verdict, e.g. the answer to a full upload lost
                record_api_request(what, 0, time.monotonic() - started)
                raise
            else:
                status = response.status_code
                record_api_request(what, status, time.monotonic() - started)
                if 200 <= status < 300 or status in accept:
                    return response
                if status == 401 and on_unauthorized is not None:
                    if reauthorized:
                        raise Permanent(
                            f"{what}: Symbl rejected a freshly issued access token (HTTP 401: "
                            f"{api_message(response)}); check the app's permissions"
                        )
                    reauthorized = True
                    log.info("token_rejected", what=what, action="fetching a new token")
                    await on_unauthorized()
                    continue
                if status not in RETRY_STATUSES:
                    message = f"{what}: HTTP {status}: {api_message(response)}"
                    raise Permanent(message, status=status)
                reason = f"HTTP {status}: {api_message(response)}"
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), now=self.clock()
                )
                if status == 429 and rate_limit_ends:
                    raise RateLimited(f"{what}: {reason}", retry_after=retry_after)
            if attempt >= self.max_retries:
                raise Retryable(
                    f"{what}: still failing after {attempt + 1} attempts ({reason})",
                    retry_after=retry_after,
                )
            if retry_after is not None and retry_after > self.backoff_max_seconds:
                raise Retryable(
                    f"{what}: the API asked us to wait {retry_after:.0f} s ({reason})",
                    retry_after=retry_after,
                )
            delay = self.delay(attempt, retry_after)
            attempt += 1
            log.warning(
                "api_retry",
                what=what,
                status=status,
                error=reason,
                attempt=attempt,
                retry_after_s=retry_after,
                delay_s=round(delay, 3),
            )
            await self.sleep(delay)
