"""`SymblClient`: the `ingestd.registry.Backend` for the Symbl.ai Async API, on one httpx client.

Every request carries ``Authorization: Bearer`` (from `TokenProvider`), ``Accept:
application/json`` and ``User-Agent: ingestd/<version>``, and goes through one `RetryPolicy`.

Uploads stream the file from disk (`ingestd.bodies`) with an explicit ``Content-Length``
equal to the file size: httpx then never falls back to chunked transfer encoding (which the
API may refuse) and never holds the file in memory. Each attempt reopens the file.

A submission is not idempotent. When the connection fails *after* the whole body was sent,
the API may have created the conversation (or appended the part) without us hearing of it,
or may still be creating it, so the client does not send it again: it raises `AnswerLost`,
and the core reconciles through `find_upload` (`ingestd_symbl.reconcile`: by the
conversation's name, then the upload tag in its ``metadata``) before any new POST, looking
again for a while if the upload may still land. Failures before the body was complete, and
5xx answers, are retried here; they end in a plain `Retryable` (nothing arrived). A 429 on a
submission ends it at once (`RateLimited`): the account is at its job limit, and the core
queues the recording for a slot and lowers the effective limit when slots looked free.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import structlog

from ingestd import (
    Endpoint,
    EndpointKind,
    Insights,
    JobStatus,
    Params,
    Permanent,
    Retryable,
    Submission,
    UnknownJob,
    Upload,
    httpnet,
    jsontext,
    record_upload,
)
from ingestd.bodies import Sent, bytes_body, file_body
from ingestd.reach import reach
from ingestd.retrypolicy import TRANSIENT_ERRORS, RetryPolicy, describe
from ingestd_symbl.auth import TokenProvider
from ingestd_symbl.insights import KINDS, NOT_READY, insight_value, timestamp
from ingestd_symbl.options import SymblOptions
from ingestd_symbl.params import encode_query, submit_path, url_request
from ingestd_symbl.polling import JobDurations, delays_around, poll_delays
from ingestd_symbl.reconcile import TaggedUploads
from ingestd_symbl.webhook import JobWebhook

log = structlog.get_logger()

LIST_PAGE = 100
LIST_MAX_PAGES = 10
NAME_CLOCK_TOLERANCE_SECONDS = 5.0
"""Our clock and the API's may differ; a conversation this much "older" still matches."""


def _user_agent() -> str:
    try:
        return f"ingestd/{importlib.metadata.version('ingestd')}"
    except importlib.metadata.PackageNotFoundError:
        return "ingestd/0"


USER_AGENT = _user_agent()


LOST_AFTER_TIMEOUT_SECONDS = 30.0
"""We stopped waiting for the answer: the API may still be working on the upload this long."""
LOST_AFTER_CLOSE_SECONDS = 10.0
"""The connection closed (or the answer was unreadable): the API had the whole upload and,
across a network cut or a proxy, may still finish it within its usual few seconds."""


class AnswerLost(Retryable):
    """A submission whose whole body was sent but whose answer never came (or made no sense).

    The API may have created the conversation or appended the part, or may still be doing so.

    Args:
        may_land_within_seconds: how long from now the API may still create what was sent.
            The core reads this attribute (it does not import plugins): until then, a lookup
            that finds nothing is repeated rather than believed.
    """

    def __init__(self, message: str, *, may_land_within_seconds: float) -> None:
        super().__init__(message)
        self.may_land_within_seconds = may_land_within_seconds


FETCHES_AT_ONCE = 4
"""Requests of one conversation's insights in flight at once. All of them at once (eight by
default, eleven at most) made a burst per finished job that grew httpcore's connection
pool, whose bookkeeping on every request compared each connection with every other (a pool
of 18 cost 15 % more CPU per GET than one of 8). `httpnet.Transport` has no such
bookkeeping; the limit now bounds the connections a burst opens (not re-measured since).
The default eight go in two rounds: one round trip more, after a job of minutes."""


class SymblClient(TaggedUploads):
    """The Symbl Async API (or the sandbox, which speaks the same HTTP) as a `Backend`.

    Args:
        options: the validated ``symbl`` section.
        base_url: overrides ``options.base_url`` (the sandbox's loopback URL).
        name: the backend name shown in logs and status ("symbl" or "sandbox").
        transport: an httpx transport, for tests.
        sleep, clock: injectable waiting and monotonic time, for tests.
        on_close: awaited by `aclose` after the HTTP client is closed (stops a sandbox).
    """

    def __init__(
        self,
        options: SymblOptions,
        *,
        base_url: str | None = None,
        name: str = "symbl",
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.name = name
        self.options = options
        self._sleep = sleep
        self._clock = clock
        self._on_close = on_close
        self._http = httpnet.CookielessClient(
            base_url=base_url or options.base_url,
            transport=transport or httpnet.transport(),
            timeout=httpx.Timeout(options.request_timeout_seconds),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=False,
        )
        self._base_url = str(self._http.base_url).rstrip("/")
        self._policy = RetryPolicy(
            max_retries=options.max_retries,
            backoff_initial_seconds=options.backoff_initial_seconds,
            backoff_max_seconds=options.backoff_max_seconds,
            sleep=sleep,
        )
        self.tokens = TokenProvider(
            self._http,
            app_id=options.app_id,
            app_secret=options.app_secret,
            policy=self._policy,
            clock=clock,
            timeout=options.request_timeout_seconds,
        )
        self.job_durations = JobDurations()
        self._submitted_at: dict[str, float] = {}
        """Jobs this process submitted, and when: their waits teach `job_durations`."""
        self.webhook = JobWebhook(**vars(options.webhook)) if options.webhook.listen else None
        self._webhook_started = False
        self._webhook_missed_said = False
        self._upload_timeout = httpx.Timeout(
            options.request_timeout_seconds,
            read=options.upload_timeout_seconds,
            write=options.upload_timeout_seconds,
        )

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def max_concurrent_jobs(self) -> int:
        """The account's concurrent-job limit (``symbl.max_concurrent_jobs``)."""
        return self.options.max_concurrent_jobs

    async def check(self) -> str:
        """``ingestd check``: the host resolves and accepts connections (`reach`), the token
        request accepts the credentials, and one authenticated call works; each failure is
        said apart ("does not resolve", "connection refused", "credentials refused")."""
        await reach(self.base_url, self.options.request_timeout_seconds)
        try:
            await self.tokens.token()
        except Permanent as exc:
            raise Permanent(f"{self.base_url}: credentials refused: {exc}") from None
        await self.find_conversations("ingestd-check", time.time())
        return f"{self.base_url}: credentials accepted"

    # -- plumbing ------------------------------------------------------------------------

    async def _authorized(
        self,
        what: str,
        attempt: Callable[[dict[str, str]], Awaitable[httpx.Response]],
        accept: Iterable[int] = (),
        *,
        rate_limit_ends: bool = False,
    ) -> httpx.Response:
        """Run `attempt(auth_headers)` under the retry policy, re-authorising once on a 401."""
        used: list[str] = []

        async def send() -> httpx.Response:
            token = await self.tokens.token()
            used[:] = [token]
            return await attempt({"Authorization": f"Bearer {token}"})

        async def on_unauthorized() -> None:
            self.tokens.invalidate(used[0] if used else None)

        return await self._policy.run(
            send,
            what=what,
            accept=tuple(accept),
            on_unauthorized=on_unauthorized,
            rate_limit_ends=rate_limit_ends,
        )

    async def _get(self, path: str, params: Any = None, accept: Iterable[int] = ()) -> Any:
        """GET JSON, bounded by an overall deadline (httpx only bounds each read gap).

        The URL is given whole: httpx then parses it once, where a path and `params` are
        merged with the base URL and parsed again (about a seventh of a GET's CPU)."""
        deadline = 2 * self.options.request_timeout_seconds
        url = self.base_url + path
        if params:
            url += "?" + urlencode(params, quote_via=quote)

        async def attempt(auth: dict[str, str]) -> httpx.Response:
            async with asyncio.timeout(deadline):
                return await self._http.get(url, headers=auth)

        response = await self._authorized(f"GET {path}", attempt, accept)
        if response.status_code in accept:
            return None
        return _json(response, f"GET {path}")

    # -- submissions ---------------------------------------------------------------------

    async def submit(
        self,
        endpoint: Endpoint,
        upload: Upload | None,
        params: Params,
        conversation_id: str | None,
    ) -> Submission:
        """POST a new conversation or PUT an append; see the module docstring on retries."""
        params = await self._with_webhook(params)
        method = "PUT" if conversation_id else "POST"
        path = submit_path(endpoint.kind, conversation_id)
        what = f"{method} {path}"
        if endpoint.kind.is_url:
            if not endpoint.url:
                raise Permanent(f"{what}: the endpoint has no url to submit")
            query, payload = url_request(endpoint.url, params)
            size, content_type, source = len(payload), "application/json", None
        else:
            if upload is None:
                raise Permanent(f"{what}: a file route needs a file to upload")
            query, payload = encode_query(params), b""
            size, source = upload.size_bytes, upload.path
            content_type = endpoint.content_type
            if endpoint.kind is EndpointKind.VIDEO and not content_type:
                content_type = "video/mp4"  # mandatory on video routes

        async def attempt(auth: dict[str, str]) -> httpx.Response:
            sent = Sent()
            headers = {**auth, "Content-Length": str(size)}
            if content_type:
                headers["Content-Type"] = content_type
            body = file_body(source, size, sent) if source else bytes_body(payload, sent)
            request = self._http.build_request(
                method,
                path,
                params=query,
                content=body,
                headers=headers,
                timeout=self._upload_timeout,
            )
            try:
                return await self._http.send(request)
            except TRANSIENT_ERRORS as exc:
                if not sent.complete:
                    raise  # nothing was created: the policy retries
                thing = "conversation" if method == "POST" else "appended part"
                timed_out = isinstance(exc, httpx.TimeoutException | TimeoutError)
                raise AnswerLost(
                    f"{what}: the connection failed after the whole upload was sent "
                    f"({describe(exc)}); the {thing} may exist, so it is not sent again blindly",
                    may_land_within_seconds=LOST_AFTER_TIMEOUT_SECONDS
                    if timed_out
                    else LOST_AFTER_CLOSE_SECONDS,
                ) from None
            except OSError as exc:
                raise Retryable(f"{what}: cannot read {source}: {exc.strerror}") from None
            finally:
                await body.aclose()  # close the file now, even when the server cut us off

        started = self._clock()
        log.info(
            "upload_started",
            method=method,
            route=str(endpoint.kind),
            size_bytes=size,
            content_type=content_type,
            conversation_id=conversation_id,
        )
        response = await self._authorized(what, attempt, rate_limit_ends=True)
        data = _json(response, what, lost=method == "POST")
        try:
            submission = Submission(str(data["conversationId"]), str(data["jobId"]))
        except (KeyError, TypeError):
            raise AnswerLost(
                f"{what}: the answer holds no conversationId/jobId",
                may_land_within_seconds=LOST_AFTER_CLOSE_SECONDS,
            ) from None
        self._submitted_at[submission.job_id] = self._clock()
        record_upload(size, self._clock() - started)
        log.info(
            "upload_finished",
            size_bytes=size,
            seconds=round(self._clock() - started, 3),
            conversation_id=submission.conversation_id,
            job_id=submission.job_id,
        )
        return submission

    # -- jobs ----------------------------------------------------------------------------

    async def job_status(self, job_id: str) -> JobStatus:
        """One Job API read; a 404 (the API forgot the job) is `UnknownJob`."""
        try:
            data = await self._get(f"/v1/job/{quote(job_id, safe='')}")
        except Permanent as exc:
            if exc.status == 404:
                raise UnknownJob(str(exc), status=404) from None
            raise
        status = data.get("status") if isinstance(data, dict) else None
        try:
            return JobStatus(status)
        except ValueError:
            raise Retryable(f"job {job_id}: unexpected status {status!r}") from None

    def _first_delay(self, expected_seconds: float | None) -> float:
        """Without history, the first poll comes early, later for long media (a tenth of
        its duration)."""
        first = self.options.poll_initial_seconds
        if expected_seconds and expected_seconds > 0:
            first = max(first, 0.1 * expected_seconds)
        return min(first, self.options.poll_max_seconds)

    async def wait_for_job(
        self, job_id: str, *, expected_seconds: float | None = None
    ) -> JobStatus:
        """Poll until the job is terminal; transient errors are outlived.

        The schedule is `ingestd_symbl.polling`'s: around the learned duration of jobs once
        some were seen, growing gaps before that. With the webhook listening, polling is only
        the safety net: the gaps start at ``poll_max_seconds`` and an update POSTed for this
        job cuts the current gap short. `expected_seconds` is the media's duration.
        """
        started = self._clock()
        submitted = self._submitted_at.pop(job_id, None)
        origin = started if submitted is None else submitted
        deadline = started + self.options.job_timeout_seconds
        hook = self.webhook if self._webhook_started else None
        maximum = self.options.poll_max_seconds
        estimate = None if hook else self.job_durations.estimate(expected_seconds)
        if hook:
            delays = poll_delays(maximum, maximum)
        elif estimate is not None:
            spread = self.job_durations.spread(expected_seconds)
            delays = delays_around(max(0.0, estimate - (started - origin)), maximum, spread)
        else:
            delays = poll_delays(self._first_delay(expected_seconds), maximum)
        status: JobStatus | None = None
        polls = 0
        last_running = 0.0
        try:
            while True:
                delay = max(0.0, min(next(delays), deadline - self._clock()))
                if hook is not None:
                    await hook.wait(job_id, delay)
                else:
                    await self._sleep(delay)
                polls += 1
                asked = self._clock() - origin
                try:
                    status = await self.job_status(job_id)
                except Retryable as exc:
                    log.warning("job_poll_failed", job_id=job_id, error=str(exc), polls=polls)
                else:
                    if status.is_terminal:
                        if status is JobStatus.COMPLETED and submitted is not None and not hook:
                            self.job_durations.learn(expected_seconds, last_running, asked)
                        log.info(
                            "job_finished",
                            job_id=job_id,
                            status=str(status),
                            polls=polls,
                            waited_s=round(self._clock() - started, 3),
                            expected_s=None if estimate is None else round(estimate, 3),
                        )
                        return status
                    last_running = asked
                if self._clock() >= deadline:
                    raise Retryable(
                        f"job {job_id} is still {status or 'unknown'} after "
                        f"{self.options.job_timeout_seconds:.0f} s; it will be polled again later"
                    )
        finally:
            if hook is not None and hook.forget(job_id) is None and status and status.is_terminal:
                self._webhook_missed(job_id)

    def _webhook_missed(self, job_id: str) -> None:
        """Said once: every later job would say the same, and polling still finds them."""
        if not self._webhook_missed_said:
            self._webhook_missed_said = True
            log.warning(
                "webhook_missed",
                job_id=job_id,
                url=self.webhook.url if self.webhook else None,
                hint="no job-status update reached symbl.webhook; check public_url and "
                "that Symbl can reach it. Jobs are still found by polling, more slowly",
            )

    async def _with_webhook(self, params: Params) -> Params:
        """Ask for job-status POSTs, unless the user set their own ``webhookUrl``. The
        listener starts with the first submission, inside the daemon's event loop."""
        if self.webhook is None or "webhookUrl" in params:
            return params
        if not self._webhook_started:
            try:
                await self.webhook.start()
            except OSError as exc:
                log.error(
                    "webhook_unavailable",
                    listen=f"{self.webhook.host}:{self.webhook.port}",
                    error=exc.strerror or str(exc),
                    action="polling only",
                )
                self.webhook = None
                return params
            self._webhook_started = True
        return Params({**params, "webhookUrl": self.webhook.url})

    async def wait_for_messages(self, conversation_id: str, *, timeout_seconds: float) -> bool:
        """Poll ``/messages`` on the same schedule until there are some; False on timeout."""
        path = f"/v1/conversations/{quote(conversation_id, safe='')}/messages"
        deadline = self._clock() + timeout_seconds
        delays = poll_delays(self.options.poll_initial_seconds, self.options.poll_max_seconds)
        while True:
            try:
                data = await self._get(path)
            except Retryable as exc:
                log.warning("messages_poll_failed", conversation_id=conversation_id, error=str(exc))
            else:
                if isinstance(data, dict) and data.get("messages"):
                    return True
            left = deadline - self._clock()
            if left <= 0:
                return False
            await self._sleep(min(next(delays), left))

    # -- conversations -------------------------------------------------------------------

    async def fetch_insights(self, conversation_id: str, kinds: Iterable[str]) -> Insights:
        """The conversation and each requested kind, `FETCHES_AT_ONCE` at a time."""
        wanted = list(dict.fromkeys(kinds))
        unknown = [k for k in wanted if k not in KINDS]
        if unknown:
            known = ", ".join(KINDS)
            raise Permanent(f"unknown insight kind(s) {', '.join(unknown)}; known: {known}")
        base = f"/v1/conversations/{quote(conversation_id, safe='')}"
        slots = asyncio.Semaphore(FETCHES_AT_ONCE)

        async def fetch(read: Awaitable[Any]) -> Any:
            async with slots:
                return await read

        results = await asyncio.gather(
            fetch(self._get(base)),
            *(fetch(self._fetch_kind(base, kind)) for kind in wanted),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            permanent = [e for e in errors if isinstance(e, Permanent)]
            raise (permanent or errors)[0]
        conversation, *values = results
        if not isinstance(conversation, dict):
            raise Retryable(f"GET {base}: expected a conversation object")
        return Insights(conversation_id, conversation, **dict(zip(wanted, values, strict=True)))

    async def _fetch_kind(self, base: str, kind: str) -> Any:
        suffix, query, _ = KINDS[kind]
        path = base + suffix
        accept = (NOT_READY[kind],) if kind in NOT_READY else ()
        return insight_value(kind, await self._get(path, query or None, accept), path)

    async def find_conversations(self, name: str, created_after: float) -> list[str]:
        """Conversations named `name` created at or after `created_after` (less 5 s), newest first.

        Pages ``GET /v1/conversations`` (newest first, at most ``LIST_MAX_PAGES`` pages) and
        filters here, since server-side filters are undocumented; stops early at a page that
        is newest-first and wholly older than the cut-off.
        """
        cutoff = created_after - NAME_CLOCK_TOLERANCE_SECONDS
        found: list[tuple[float, str]] = []
        for page in range(LIST_MAX_PAGES):
            query = {"limit": LIST_PAGE, "offset": page * LIST_PAGE, "order": "desc"}
            data = await self._get("/v1/conversations", params=query)
            items = data.get("conversations") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise Retryable("GET /v1/conversations: expected a 'conversations' list")
            starts: list[float] = []
            for item in items:
                if not isinstance(item, dict):
                    continue
                start = timestamp(item.get("startTime"))
                starts.append(start if start is not None else float("inf"))
                cid = item.get("id")
                if cid and item.get("name") == name and start is not None and start >= cutoff:
                    found.append((start, str(cid)))
            newest_first = all(a >= b for a, b in itertools.pairwise(starts))
            if len(items) < LIST_PAGE or (newest_first and starts and max(starts) < cutoff):
                break
        found.sort(reverse=True)
        ids = list(dict.fromkeys(cid for _, cid in found))
        log.info("conversations_found", name=name, count=len(ids), pages=page + 1)
        return ids

    async def delete_conversation(self, conversation_id: str) -> bool:
        """``DELETE /v1/conversations/{id}``; False when the API answers 404 (already gone).

        Idempotent, so the retry policy may send it again after a lost answer."""
        path = f"/v1/conversations/{quote(conversation_id, safe='')}"
        deadline = 2 * self.options.request_timeout_seconds

        async def attempt(auth: dict[str, str]) -> httpx.Response:
            async with asyncio.timeout(deadline):
                return await self._http.delete(path, headers=auth)

        response = await self._authorized(f"DELETE {path}", attempt, accept=(404,))
        deleted = response.status_code != 404
        log.info(
            "conversation_deleted" if deleted else "conversation_already_gone",
            conversation_id=conversation_id,
        )
        return deleted

    async def aclose(self) -> None:
        """Close the connections, then run `on_close` (the sandbox backend stops its server)."""
        try:
            if self.webhook is not None:
                await self.webhook.aclose()
            await self._http.aclose()
        finally:
            if self._on_close is not None:
                await self._on_close()


def _json(response: httpx.Response, what: str, *, lost: bool = False) -> Any:
    """The answer's JSON; an unreadable 2xx is transient (a proxy page, a cut body)."""
    try:
        return jsontext.loads(response.content)
    except ValueError:
        if lost:
            message = f"{what}: HTTP {response.status_code} answer is not JSON"
            raise AnswerLost(
                f"{message}; the conversation may exist",
                may_land_within_seconds=LOST_AFTER_CLOSE_SECONDS,
            ) from None
        raise Retryable(f"{what}: HTTP {response.status_code} answer is not JSON") from None
