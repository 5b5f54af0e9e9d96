"""`OpenAIBackend`: the `ingestd.registry.Backend` for OpenAI-compatible transcription servers.

One ``POST {base_url}/audio/transcriptions`` per file (or per piece of a file over the
server's size limit), multipart, streamed from disk with an explicit ``Content-Length``. The
call is synchronous: the answer arrives when the transcription is done, so the wait for it
grows with the media's duration (``timeout_per_media_second``). `submit` therefore does the
whole transcription; `wait_for_job` only confirms the part was stored.

Transcribing is idempotent: a request whose answer was lost (a dropped connection, a timeout,
a crash of the daemon) is simply asked again, with nothing to reconcile. 429 (with
``Retry-After``), 5xx, timeouts and connection errors are retried with the same back-off as
the Symbl client (`ingestd.retrypolicy`); 400, 401, 404, 413 and 415 are permanent, with the
server's own message.

The engine has no conversations or appends: the parts of a mapped conversation are
transcribed one by one and merged here (`ingestd_openai.conversations`) under an id of ours.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import io
import mimetypes
import ssl
import subprocess
import time
import uuid
import wave
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import structlog

from ingestd import (
    Endpoint,
    Insights,
    JobStatus,
    Params,
    Permanent,
    Piece,
    Retryable,
    Submission,
    UnknownJob,
    Upload,
    executables,
    httpnet,
    record_upload,
)
from ingestd.bodies import Sent, file_body
from ingestd.reach import reach
from ingestd.retrypolicy import RetryPolicy
from ingestd_openai.conversations import ConversationStore, merge, part_from_answers
from ingestd_openai.options import OpenAIOptions

log = structlog.get_logger()


def _user_agent() -> str:
    try:
        return f"ingestd/{importlib.metadata.version('ingestd')}"
    except importlib.metadata.PackageNotFoundError:
        return "ingestd/0"


USER_AGENT = _user_agent()
PART_TAG = "openaiPart"
"""The params key of a part's tag: random per intent to upload, kept when a part is sent
again, so a second answer for the same part replaces the first instead of adding a copy."""
TRANSCRIBE = "audio/transcriptions"
PERMANENT = (400, 401, 403, 404, 405, 411, 413, 415, 422)
"""Answers retrying cannot change (the rest of 4xx too; 408 and 429 are retried)."""
SLOWEST_UPLOAD_BYTES_PER_S = 100_000
"""The slowest link a whole request is allowed for (on top of the answer's wait)."""
UNKNOWN_DURATION_SECONDS = 4 * 3600.0
"""The wait's basis when a file's duration cannot be read."""


class OpenAIBackend:
    """An OpenAI-compatible transcription server as a `Backend`.

    Args:
        options: the validated ``openai`` section.
        state_dir: where the transcribed parts of each conversation are kept.
        base_url: overrides ``options.base_url`` (the embedded emulator's URL).
        transport, sleep: for tests.
        on_close: awaited by `aclose` after the HTTP client is closed (stops an emulator).
    """

    def __init__(
        self,
        options: OpenAIOptions,
        state_dir: Path,
        *,
        base_url: str | None = None,
        name: str = "openai",
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.name = name
        self.options = options
        self.base_url = (base_url or options.base_url).rstrip("/")
        self.conversations = ConversationStore(state_dir / "openai" / "conversations")
        self.work_dir = state_dir / "openai" / "work"
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if options.api_key:
            headers["Authorization"] = f"Bearer {options.api_key.reveal()}"
        self._http = httpnet.CookielessClient(
            base_url=self.base_url + "/",
            transport=transport or httpnet.transport(),
            headers=headers,
            timeout=httpx.Timeout(options.request_timeout_seconds),
            follow_redirects=False,
        )
        self._policy = RetryPolicy(
            max_retries=options.max_retries,
            backoff_initial_seconds=options.backoff_initial_seconds,
            backoff_max_seconds=options.backoff_max_seconds,
            sleep=sleep,
        )
        self._on_close = on_close

    @property
    def max_concurrent_jobs(self) -> int:
        """Transcriptions in flight at once (``openai.max_concurrent_jobs``)."""
        return self.options.max_concurrent_jobs

    @property
    def max_upload_bytes(self) -> int | None:
        """The largest upload the server takes; larger files are compacted, then split at
        silences (`ingestd_ffmpeg.fit`) before they are sent."""
        return self.options.max_upload_bytes

    # -- the Backend protocol -------------------------------------------------------------

    def prepare_upload(
        self, params: Params, *, conversation_id: str | None, resend: bool
    ) -> Params:
        """A tag for this part, kept when it is sent again (see `PART_TAG`)."""
        if resend and params.get(PART_TAG):
            return params
        return Params({**params, PART_TAG: uuid.uuid4().hex})

    async def submit(
        self,
        endpoint: Endpoint,
        upload: Upload | None,
        params: Params,
        conversation_id: str | None,
    ) -> Submission:
        """Transcribe the file (piece by piece if it is over the limit) and store the part
        under its conversation: a new id of ours, or the one it is appended to."""
        if endpoint.kind.is_url or upload is None:
            raise Permanent(
                f"{self.name}: transcription servers take uploaded files, not URLs; remove "
                f"the watch's endpoint.url"
            )
        tag = str(params.get(PART_TAG) or uuid.uuid4().hex)
        conversation = conversation_id or f"openai-{tag}"
        started = time.monotonic()
        pieces = await self._pieces(upload)
        answers = []
        for n, piece in enumerate(pieces, start=1):
            label = upload.path.name if len(pieces) == 1 else f"{upload.path.name} piece {n}"
            answer = await self._transcribe(piece, params, label)
            answers.append((piece.offset_seconds, answer))
        part = part_from_answers(tag, upload.path.name, answers)
        position = await asyncio.to_thread(self.conversations.save_part, conversation, part)
        record_upload(upload.size_bytes, time.monotonic() - started)
        log.info(
            "transcription_stored",
            conversation_id=conversation,
            part=position,
            pieces=len(pieces),
            segments=len(part["segments"]),
            duration_s=part["duration"],
            seconds=round(time.monotonic() - started, 3),
        )
        return Submission(conversation, f"{conversation}/{tag}")

    async def wait_for_job(
        self, job_id: str, *, expected_seconds: float | None = None
    ) -> JobStatus:
        """Done already (the answer was synchronous), unless the stored part is gone."""
        conversation, _, tag = job_id.rpartition("/")
        stored = await asyncio.to_thread(self.conversations.has_part, conversation, tag)
        if not stored:
            raise UnknownJob(f"the transcript of part {tag} is not in {self.conversations.folder}")
        return JobStatus.COMPLETED

    async def fetch_insights(self, conversation_id: str, kinds: Iterable[str]) -> Insights:
        """Every part of the conversation so far, merged in order on one time line."""
        data = await asyncio.to_thread(self.conversations.load, conversation_id)
        if data is None:
            raise Permanent(
                f"the transcript of conversation {conversation_id} is gone from "
                f"{self.conversations.folder}; `ingestd retry` transcribes the file again"
            )
        return merge(data, self.options.model)

    async def delete_conversation(self, conversation_id: str) -> bool:
        """The server keeps nothing; what is deleted is our merged transcript."""
        return await asyncio.to_thread(self.conversations.delete, conversation_id)

    async def check(self) -> str:
        """The host resolves and accepts connections, TLS holds, the key is accepted and the
        model is known: from ``GET /models`` where offered, else a one-second silent clip."""
        await reach(self.base_url, self.options.request_timeout_seconds)
        try:
            response = await self._http.get("models")
        except httpx.TransportError as exc:
            raise _transport_problem(self.base_url, exc) from None
        if response.status_code in (401, 403):
            raise Permanent(self._refused(response))
        if response.status_code == 200:
            try:
                models = [m.get("id") for m in response.json().get("data", [])]
            except (ValueError, AttributeError):
                models = []
            if models and self.options.model not in models:
                listed = ", ".join(str(m) for m in models[:8])
                raise Permanent(
                    f"{self.base_url}: unknown model {self.options.model!r}; the server offers "
                    f"{listed}{', ...' if len(models) > 8 else ''} (openai.model)"
                )
            if models:
                return f"{self.base_url}: key accepted, model {self.options.model} offered"
        return await self._check_with_clip()

    async def _check_with_clip(self) -> str:
        """No model list: transcribe one second of silence."""
        clip = self.work_dir / "check-silence.wav"
        await asyncio.to_thread(_write_silence, clip)
        piece = Piece(clip, 0.0, 1.0)
        try:
            await self._transcribe(piece, Params(), "a 1-s silent clip", retries=False)
        except Permanent as exc:
            if exc.status == 404:
                raise Permanent(
                    f"{self.base_url}: unknown model {self.options.model!r} or no "
                    f"{TRANSCRIBE} route ({exc})"
                ) from None
            raise
        except Retryable as exc:
            raise Permanent(f"{self.base_url}: {exc}") from None
        finally:
            clip.unlink(missing_ok=True)
        return f"{self.base_url}: a 1-s silent clip was transcribed with {self.options.model}"

    async def aclose(self) -> None:
        try:
            await self._http.aclose()
        finally:
            if self._on_close is not None:
                await self._on_close()

    # -- transcription --------------------------------------------------------------------

    async def _pieces(self, upload: Upload) -> list[Piece]:
        """The pieces the core cut to fit ``max_upload_bytes``, else the upload as it is."""
        if upload.pieces:
            return list(upload.pieces)
        limit = self.options.max_upload_bytes
        if limit is not None and upload.size_bytes > limit:
            raise Permanent(
                f"{upload.path.name} is {upload.size_bytes} bytes, over openai.max_upload_bytes "
                f"({limit}), and was not cut to fit (is the ffmpeg plugin disabled?)"
            )
        return [Piece(upload.path, 0.0, await asyncio.to_thread(_duration, upload.path))]

    def _fields(self, params: Params) -> dict[str, str]:
        options = self.options
        fields = {"model": options.model, "response_format": options.response_format}
        if options.response_format == "verbose_json":
            fields["timestamp_granularities[]"] = "segment"
        language = options.language or _language(params.get("languageCode"))
        if language:
            fields["language"] = language
        prompt = build_prompt(options.prompt, params.get("customVocabulary"))
        if prompt:
            fields["prompt"] = prompt
        return fields

    async def _transcribe(
        self, piece: Piece, params: Params, label: str, *, retries: bool = True
    ) -> dict[str, Any]:
        """One request for one file; the answer's JSON (``text`` for a plain-text answer)."""
        path = piece.path
        size = path.stat().st_size
        boundary = uuid.uuid4().hex
        head = b"".join(
            _field(boundary, name, value) for name, value in self._fields(params).items()
        )
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{_quoted(path.name)}"\r\nContent-Type: {content_type}\r\n\r\n'
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        duration = piece.duration_seconds or UNKNOWN_DURATION_SECONDS
        wait = self.options.request_timeout_seconds + self.options.timeout_per_media_second * (
            duration
        )
        timeout = httpx.Timeout(self.options.request_timeout_seconds, read=wait, write=wait)
        deadline = wait + self.options.request_timeout_seconds + size / SLOWEST_UPLOAD_BYTES_PER_S
        what = f"POST /{TRANSCRIBE}"

        async def attempt() -> httpx.Response:
            body = _multipart(head, path, size, tail)
            request = self._http.build_request(
                "POST",
                TRANSCRIBE,
                content=body,
                headers={
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                    "Content-Length": str(len(head) + size + len(tail)),
                },
                timeout=timeout,
            )
            try:  # httpx bounds each read and write gap; this bounds the whole request
                async with asyncio.timeout(deadline):
                    return await self._http.send(request)
            except TimeoutError:
                raise  # the whole request took too long: the policy retries
            except OSError as exc:
                raise Retryable(f"{what}: cannot read {path}: {exc.strerror}") from None

        log.info("transcription_started", file=label, size_bytes=size, wait_s=round(wait, 1))
        policy = self._policy if retries else RetryPolicy(max_retries=0)
        try:
            response = await policy.run(attempt, what=what, accept=PERMANENT)
        except httpx.TransportError as exc:  # only escapes when no retry is allowed
            raise _transport_problem(self.base_url, exc) from None
        if response.status_code in PERMANENT:
            raise self._permanent(response, label)
        if self.options.response_format == "json" and "json" not in response.headers.get(
            "Content-Type", "json"
        ):
            return {"text": response.text}
        try:
            answer = response.json()
        except ValueError:
            raise Retryable(f"{what}: HTTP {response.status_code} answer is not JSON") from None
        if not isinstance(answer, dict):
            raise Retryable(f"{what}: the answer is not a JSON object")
        return answer

    def _refused(self, response: httpx.Response) -> str:
        return (
            f"{self.base_url}: the server refused the API key (HTTP {response.status_code}: "
            f"{error_message(response)}); check openai.api_key"
        )

    def _permanent(self, response: httpx.Response, label: str) -> Permanent:
        status, message = response.status_code, error_message(response)
        if status in (401, 403):
            text = self._refused(response)
        elif status == 404:
            text = (
                f"{self.base_url}: HTTP 404: {message} (is openai.model "
                f"{self.options.model!r} offered, and does base_url end in /v1?)"
            )
        elif status == 413:
            text = (
                f"{label}: the server refused it as too large (HTTP 413: {message}); set "
                f"openai.max_upload_bytes below the server's limit"
            )
        else:
            text = f"{label}: HTTP {status}: {message}"
        return Permanent(text, status=status)


def build_prompt(prompt: str | None, vocabulary: Any) -> str | None:
    """The configured prompt, then the watch's ``customVocabulary`` words, comma-separated."""
    words = (
        [w.strip() for w in vocabulary if isinstance(w, str) and w.strip()]
        if isinstance(vocabulary, list)
        else []
    )
    text = ", ".join(words)
    if prompt and text:
        return f"{prompt} {text}"
    return prompt or text or None


def error_message(response: httpx.Response) -> str:
    """The server's explanation: OpenAI's ``error.message``, FastAPI's ``detail``, the text."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"][:500]
        for key in ("detail", "message", "error"):
            if isinstance(body.get(key), str):
                return body[key][:500]
    text = response.text.strip()
    return text[:200] if text else (response.reason_phrase or "no message")


def _transport_problem(base_url: str, exc: BaseException) -> Permanent:
    """A check's network failure said in the operator's terms (TLS apart from the rest)."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    text = str(exc) or type(exc).__name__
    if cause is not None or "CERTIFICATE" in text.upper() or "SSL" in text.upper():
        return Permanent(
            f"{base_url}: TLS failed ({cause or text}); is the certificate valid for this "
            f"host (or is it plain http)?"
        )
    return Permanent(f"{base_url}: {type(exc).__name__}: {text}")


def _language(code: Any) -> str | None:
    """``en-US`` (a Symbl languageCode) as ISO-639-1 ``en``."""
    if isinstance(code, str) and code.strip():
        return code.strip().split("-")[0].lower()
    return None


def _field(boundary: str, name: str, value: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
    ).encode()


def _quoted(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")


async def _multipart(head: bytes, path: Path, size: int, tail: bytes) -> AsyncIterator[bytes]:
    """The form streamed: fields, then the file from disk 1 MiB at a time, then the end."""
    yield head
    body = file_body(path, size, Sent())
    try:
        async for chunk in body:
            yield chunk
    finally:
        await body.aclose()
    yield tail


def _write_silence(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(16000)
        clip.writeframes(b"\0\0" * 16000)
    path.write_bytes(buffer.getvalue())


def _duration(path: Path) -> float | None:
    """The media's duration (ffprobe), for the wait; None when it cannot be read."""
    try:
        done = subprocess.run(
            [executables.ffprobe(), "-v", "error", "-show_entries", "format=duration",
             "-of", "default=noprint_wrappers=1:nokey=1", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        value = float(done.stdout.strip())
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    return value if value > 0 else None
