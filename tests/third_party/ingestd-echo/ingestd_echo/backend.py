"""The ``echo`` backend: ingestd's `Backend` contract for the echo service (see `emulator`).

Options (the ``echo:`` section of ingestd's YAML)::

    backend: echo
    echo:
      url: embedded          # or the service's http(s) URL
      api_key: ${ECHO_KEY}   # not needed for the embedded emulator
      max_concurrent_jobs: 2
      job_seconds: 0.2       # the embedded emulator's job time

It implements the four required methods, ``delete_conversation``, and two optional parts:
``max_concurrent_jobs`` and ``check``. It has no ``find_upload``: a job is cheap to make
again, so an upload whose answer was lost is simply sent again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ingestd import (
    Endpoint,
    IngestdError,
    Insights,
    JobStatus,
    OptionProblems,
    Params,
    Permanent,
    Retryable,
    Secret,
    Submission,
    UnknownJob,
    Upload,
    record_upload,
)
from ingestd_echo.emulator import Emulator

KEYS = ("url", "api_key", "max_concurrent_jobs", "job_seconds")


def make_backend(options: Mapping[str, Any], state_dir: Path) -> EchoBackend:
    """``BackendFactory``: check the ``echo:`` section, start the emulator if asked."""
    problems = OptionProblems("echo")
    problems.unknown_keys(options, KEYS)
    url = options.get("url", "embedded")
    parts = urlsplit(url) if isinstance(url, str) else None
    if url != "embedded" and (parts is None or parts.scheme not in ("http", "https")):
        problems.add("url", f"expected 'embedded' or an http(s) URL, got {url!r}")
    api_key = options.get("api_key", "echo" if url == "embedded" else None)
    if not isinstance(api_key, str) or not api_key:
        problems.add("api_key", "expected the service's API key")
    limit = options.get("max_concurrent_jobs", 2)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        problems.add("max_concurrent_jobs", f"expected a whole number >= 1, got {limit!r}")
    job_seconds = options.get("job_seconds", 0.2)
    if isinstance(job_seconds, bool) or not isinstance(job_seconds, int | float):
        problems.add("job_seconds", f"expected a number of seconds, got {job_seconds!r}")
    problems.raise_if_any()
    emulator = None
    if url == "embedded":
        emulator = Emulator(str(api_key), float(job_seconds))
        url = emulator.start()
    return EchoBackend(str(url), Secret(api_key), limit, emulator)


class EchoBackend:
    """The echo service over httpx; `aclose` also stops an embedded emulator."""

    name = "echo"

    def __init__(
        self, url: str, api_key: Secret, max_concurrent_jobs: int, emulator: Emulator | None
    ) -> None:
        self.url = url.rstrip("/")
        self.max_concurrent_jobs = max_concurrent_jobs
        self.emulator = emulator
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {api_key.reveal()}"},
            timeout=30.0,
        )

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; trouble the service may get over is `Retryable`, a refusal not."""
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise Retryable(f"echo: {method} {path}: {type(exc).__name__}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise Retryable(f"echo: {method} {path}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise Permanent(
                f"echo: {method} {path}: HTTP {response.status_code} {response.text[:200]}",
                status=response.status_code,
            )
        return response

    async def check(self) -> str:
        try:
            await self._request("GET", "/v1/ping")
        except Permanent as exc:
            raise IngestdError(f"echo at {self.url} refused the api key ({exc})") from None
        return f"{self.url}: api key accepted"

    async def submit(
        self,
        endpoint: Endpoint,
        upload: Upload | None,
        params: Params,
        conversation_id: str | None,
    ) -> Submission:
        if upload is None:
            raise Permanent("echo takes uploaded files only, not URLs")
        query = {"name": str(params.get("name", ""))}
        if conversation_id:
            query["conversation"] = conversation_id
        loop = asyncio.get_running_loop()
        started = loop.time()
        response = await self._request(
            "POST",
            "/v1/jobs",
            params=query,
            content=_chunks(upload.path),
            headers={"Content-Length": str(upload.size_bytes)},
        )
        record_upload(upload.size_bytes, loop.time() - started)
        data = response.json()
        return Submission(conversation_id=data["conversation"], job_id=data["job"])

    async def wait_for_job(
        self, job_id: str, *, expected_seconds: float | None = None
    ) -> JobStatus:
        while True:
            try:
                response = await self._request("GET", f"/v1/jobs/{job_id}")
            except Permanent as exc:
                if exc.status == 404:
                    raise UnknownJob(f"echo does not know job {job_id}", status=404) from None
                raise
            if response.json()["status"] == "done":
                return JobStatus.COMPLETED
            await asyncio.sleep(0.05)

    async def fetch_insights(self, conversation_id: str, kinds: Iterable[str]) -> Insights:
        data = (await self._request("GET", f"/v1/conversations/{conversation_id}")).json()
        messages = [{"id": str(i), "text": text} for i, text in enumerate(data["parts"], 1)]
        wanted = set(kinds)  # echo makes messages only; other kinds stay empty
        return Insights(
            conversation_id,
            conversation={"id": data["id"], "name": data["name"]},
            messages=messages if "messages" in wanted or not wanted else [],
        )

    async def delete_conversation(self, conversation_id: str) -> bool:
        try:
            await self._request("DELETE", f"/v1/conversations/{conversation_id}")
        except Permanent as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def aclose(self) -> None:
        await self._http.aclose()
        if self.emulator is not None:
            await asyncio.to_thread(self.emulator.stop)


async def _chunks(path: Path, size: int = 1 << 20) -> AsyncIterator[bytes]:
    """The file from disk, a chunk at a time (never whole in memory)."""
    with path.open("rb") as handle:
        while chunk := await asyncio.to_thread(handle.read, size):
            yield chunk
