"""An emulator of the OpenAI-compatible transcription API, for tests, the bench and the demo.

Real HTTP on a loopback port (a threading `http.server`): ``GET /v1/models`` and ``POST
/v1/audio/transcriptions`` with a ``multipart/form-data`` body, parsed from a spooled
temporary file (never held whole in memory). The answer is built from the uploaded media's
real duration (ffprobe): one segment every `segment_seconds`, each saying which file and
which second it covers, so a test can see where every piece of a merged transcript came from.

Faults on demand, for the client's error handling: `fail_next` (an HTTP status, with
``Retry-After`` if asked), `drop_next` (the whole body is read, then the connection closes
without an answer: a lost answer), ``max_upload_bytes`` (413 above it, as OpenAI's 25 MB),
``answer_delay_seconds`` (slow answers), and `requests` records every transcription asked
for. Errors are OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ingestd import executables

CHUNK_BYTES = 1 << 16
TAIL_SECONDS = 0.5
DEFAULT_MODELS = ("whisper-1", "Systran/faster-whisper-small")


@dataclass
class EmulatorOptions:
    """How the emulator behaves; every field may be changed while it runs."""

    api_key: str | None = None
    """The key it expects as ``Authorization: Bearer``; None accepts any or none."""
    models: tuple[str, ...] = DEFAULT_MODELS
    max_upload_bytes: int | None = None
    """A body larger than this is refused with 413 (OpenAI: 25 MB); None: no limit."""
    answer_delay_seconds: float = 0.0
    """Time spent "transcribing" before the answer: a slow server."""
    segment_seconds: float = 5.0
    language: str = "english"
    offer_models: bool = True
    """False: ``GET /v1/models`` answers 404, as some self-hosted servers do."""
    speakers: tuple[str, ...] = ()
    """Speaker labels to put on the segments in turn (a diarizing server); empty: none."""


@dataclass
class Transcription:
    """One transcription request the emulator answered (or refused)."""

    filename: str
    size_bytes: int
    sha256: str
    fields: dict[str, str]
    duration_seconds: float | None
    status: int
    started: float = 0.0
    finished: float = 0.0


@dataclass
class _Faults:
    statuses: list[tuple[int, float | None]] = field(default_factory=list)
    drops: int = 0


class OpenAIEmulator:
    """Start with `start`, stop with `stop`; `url` is the base URL ending in ``/v1``."""

    def __init__(self, options: EmulatorOptions | None = None) -> None:
        self.options = options or EmulatorOptions()
        self.requests: list[Transcription] = []
        self.bytes_received = 0
        self.in_flight = 0
        self.max_in_flight = 0
        """The most transcriptions it was working on at once."""
        self.started_requests = threading.Condition()
        self._faults = _Faults()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- faults ---------------------------------------------------------------------------

    def fail_next(self, status: int, count: int = 1, retry_after: float | None = None) -> None:
        """Answer the next `count` transcriptions with `status` (after reading each body)."""
        with self._lock:
            self._faults.statuses.extend([(status, retry_after)] * count)

    def drop_next(self, count: int = 1) -> None:
        """Read the next `count` bodies whole, then close the connection without answering
        (drops are served before the statuses of `fail_next`)."""
        with self._lock:
            self._faults.drops += count

    def _take_fault(self) -> tuple[str, int, float | None] | None:
        with self._lock:
            if self._faults.drops:
                self._faults.drops -= 1
                return ("drop", 0, None)
            if self._faults.statuses:
                status, retry_after = self._faults.statuses.pop(0)
                return ("status", status, retry_after)
        return None

    # -- records --------------------------------------------------------------------------

    def answered(self) -> list[Transcription]:
        """The transcriptions answered with 200, in the order they finished."""
        with self._lock:
            return [r for r in self.requests if r.status == 200]

    def wait_in_flight(self, timeout: float) -> bool:
        """Block until a transcription's body has arrived and its answer is pending."""
        with self.started_requests:
            return self.started_requests.wait_for(lambda: self.in_flight > 0, timeout)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        emulator = self

        class Handler(_Handler):
            owner = emulator

        self._server = _Server((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="openai-emulator", daemon=True
        )
        self._thread.start()
        bound_host, bound_port = self._server.server_address[:2]
        self.url = f"http://{bound_host}:{bound_port}/v1"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OpenAIEmulator:
        if not self.url:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timed out, killed) is no error of the emulator's."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    owner: OpenAIEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read records
        pass

    # -- plumbing -------------------------------------------------------------------------

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        content_type = "text/plain" if isinstance(body, bytes) else "application/json"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, code: str | None = None, **headers: str) -> None:
        kind = "invalid_request_error" if status < 500 else "server_error"
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        self._send(status, body, headers)

    def _authorized(self) -> bool:
        key = self.owner.options.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._error(401, "Incorrect API key provided.", "invalid_api_key")
        return False

    # -- routes ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/v1/models" or not self.owner.options.offer_models:
            self._error(404, f"no route {self.path}")
            return
        if self._authorized():
            models = [{"id": m, "object": "model"} for m in self.owner.options.models]
            self._send(200, {"object": "list", "data": models})

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/v1/audio/transcriptions":
            self._drain()
            self._error(404, f"no route {self.path}")
            return
        with tempfile.TemporaryDirectory(prefix="openai-emulator-") as scratch:
            self._transcribe(Path(scratch))

    def _drain(self) -> int:
        length = int(self.headers.get("Content-Length") or 0)
        left = length
        while left > 0:
            chunk = self.rfile.read(min(CHUNK_BYTES, left))
            if not chunk:
                break
            left -= len(chunk)
        return length

    def _transcribe(self, scratch: Path) -> None:
        owner, options = self.owner, self.owner.options
        length = int(self.headers.get("Content-Length") or -1)
        if length < 0:
            self._error(411, "a Content-Length is required")
            self.close_connection = True
            return
        if options.max_upload_bytes is not None and length > options.max_upload_bytes:
            self._drain()
            self._record("", length, "", {}, None, 413)
            self._error(413, f"Maximum content size limit ({options.max_upload_bytes}) exceeded")
            return
        body = scratch / "body"
        received = 0
        with body.open("wb") as handle:
            while received < length:
                chunk = self.rfile.read(min(CHUNK_BYTES, length - received))
                if not chunk:
                    self.close_connection = True
                    return  # the client went away mid-body: nothing to answer
                handle.write(chunk)
                received += len(chunk)
        with owner._lock:
            owner.bytes_received += received
        fault = owner._take_fault()
        if fault and fault[0] == "drop":
            self._record("", length, "", {}, None, 0)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)
            return
        if not self._authorized():
            return
        try:
            fields, filename, media = parse_multipart(
                body, self.headers.get("Content-Type", ""), scratch
            )
        except ValueError as exc:
            self._error(400, str(exc))
            return
        if fault:
            _, status, retry_after = fault
            headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
            self._record(filename, media.stat().st_size, "", fields, None, status)
            self._error(status, f"emulated fault: HTTP {status}", **headers)
            return
        if fields.get("model") not in options.models:
            self._error(404, f"The model `{fields.get('model')}` does not exist", "model_not_found")
            return
        duration = media_duration(media)
        if duration is None:
            self._error(400, "Invalid file format. Supported formats: flac, m4a, mp3, mp4, ...")
            return
        digest = _sha256(media)
        record = self._record(filename, media.stat().st_size, digest, fields, duration, 0)
        with owner.started_requests:
            owner.in_flight += 1
            owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
            owner.started_requests.notify_all()
        try:  # "transcribing": done before the answer leaves, so a client that sends its
            # next request on hearing this one never finds this one still counted
            if options.answer_delay_seconds:
                threading.Event().wait(options.answer_delay_seconds)
            answer = verbose_json(filename, digest, duration, options)
        finally:
            with owner.started_requests:
                owner.in_flight -= 1
        fmt = fields.get("response_format", "json")
        record.status = 200
        record.finished = time.monotonic()
        if fmt == "verbose_json":
            self._send(200, answer)
        elif fmt == "text":
            self._send(200, answer["text"].encode())
        else:
            self._send(200, {"text": answer["text"]})

    def _record(
        self,
        filename: str,
        size: int,
        digest: str,
        fields: dict[str, str],
        duration: float | None,
        status: int,
    ) -> Transcription:
        record = Transcription(filename, size, digest, dict(fields), duration, status)
        record.started = time.monotonic()
        with self.owner._lock:
            self.owner.requests.append(record)
        return record


def verbose_json(
    filename: str, digest: str, duration: float, options: EmulatorOptions
) -> dict[str, Any]:
    """OpenAI's ``verbose_json`` answer for media of `duration` seconds."""
    step = options.segment_seconds
    # a tail under half a second (an mp3 cut's padding) belongs to the segment before it
    count = max(1, math.ceil((duration - TAIL_SECONDS) / step))
    segments = []
    for i in range(count):
        start = round(i * step, 3)
        end = round(duration if i == count - 1 else (i + 1) * step, 3)
        text = f"{filename} from {start:g} to {end:g} seconds ({digest[:8]})."
        segment: dict[str, Any] = {
            "id": i,
            "seek": int(start * 100),
            "start": start,
            "end": end,
            "text": " " + text,
            "tokens": [],
            "temperature": 0.0,
            "avg_logprob": -0.2,
            "compression_ratio": 1.2,
            "no_speech_prob": 0.01,
        }
        if options.speakers:
            segment["speaker"] = options.speakers[i % len(options.speakers)]
        segments.append(segment)
    return {
        "task": "transcribe",
        "language": options.language,
        "duration": round(duration, 3),
        "text": "".join(s["text"] for s in segments).strip(),
        "segments": segments,
    }


def parse_multipart(body: Path, content_type: str, scratch: Path) -> tuple[dict, str, Path]:
    """The form fields, the file's name and the file (copied out in chunks) of a body."""
    boundary = None
    for item in content_type.split(";")[1:]:
        key, _, value = item.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not content_type.lower().startswith("multipart/form-data") or not boundary:
        raise ValueError("expected a multipart/form-data body with a boundary")
    delimiter = b"--" + boundary.encode()
    fields: dict[str, str] = {}
    filename, media = "", scratch / "media"
    with body.open("rb") as handle:
        parts = _part_spans(handle, delimiter)
        for start, end in parts:
            handle.seek(start)
            head = handle.read(min(4096, end - start))
            header_end = head.find(b"\r\n\r\n")
            if header_end < 0:
                raise ValueError("a multipart part without headers")
            headers = head[:header_end].decode("utf-8", "replace")
            name, file = _disposition(headers)
            data_start = start + header_end + 4
            if file is not None:
                filename = file
                handle.seek(data_start)
                with media.open("wb") as out:
                    _copy(handle, out, end - data_start)
            elif name:
                handle.seek(data_start)
                value = handle.read(end - data_start).decode("utf-8", "replace")
                if name.endswith("[]"):
                    fields[name] = ",".join(filter(None, (fields.get(name), value)))
                else:
                    fields[name] = value
    if not filename:
        raise ValueError("the form has no 'file' part")
    return fields, filename, media


def _part_spans(handle: Any, delimiter: bytes) -> list[tuple[int, int]]:
    """(start, end) of each part's bytes between delimiter lines, scanning in chunks."""
    positions: list[int] = []
    offset, tail = 0, b""
    while True:
        chunk = handle.read(1 << 20)
        if not chunk:
            break
        data = tail + chunk
        base = offset - len(tail)
        at = data.find(delimiter)
        while at >= 0:
            if base + at not in positions:
                positions.append(base + at)
            at = data.find(delimiter, at + 1)
        offset += len(chunk)
        tail = data[-(len(delimiter) + 2) :]
    spans = []
    for here, following in itertools.pairwise(positions):
        start = here + len(delimiter) + 2  # the CRLF after the delimiter
        end = following - 2  # the CRLF before the next delimiter
        if end > start:
            spans.append((start, end))
    return spans


def _disposition(headers: str) -> tuple[str | None, str | None]:
    name = filename = None
    for line in headers.split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() != "content-disposition":
            continue
        for item in value.split(";")[1:]:
            k, _, v = item.strip().partition("=")
            if k == "name":
                name = v.strip('"')
            elif k == "filename":
                filename = v.strip('"')
    return name, filename


def _copy(source: Any, target: Any, size: int) -> None:
    left = size
    while left > 0:
        chunk = source.read(min(1 << 20, left))
        if not chunk:
            break
        target.write(chunk)
        left -= len(chunk)


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def media_duration(path: Path) -> float | None:
    """The media's duration by ffprobe, or None when it is not media."""
    try:
        done = subprocess.run(
            [
                executables.ffprobe(),
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "json",
                str(path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        value = json.loads(done.stdout or "{}").get("format", {}).get("duration")
        duration = float(value)
    except (OSError, ValueError, TypeError, subprocess.TimeoutExpired):
        return None
    return duration if done.returncode == 0 and duration > 0 else None


__all__ = ["EmulatorOptions", "OpenAIEmulator", "Transcription"]
