"""Request bodies that stream, for the API backends: a file read from disk chunk by chunk,
or a small JSON payload.

Each body reports, through `Sent`, whether it was handed over *completely*. That is what
tells a harmless failure (the body was cut short: the API cannot have accepted it, so the
upload is simply retried) from an ambiguous one (everything was sent and the answer was
lost: the conversation may exist, so the core reconciles before sending it again).

A file body is made afresh for every attempt, so a retry reopens the file from the start;
it reads 1 MiB at a time in a worker thread, keeping memory flat and the event loop free
(a file of at most `READ_ON_LOOP_BYTES` is read on the loop), and refuses to finish when the
file's size changed under it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator
from pathlib import Path

from ingestd import progress
from ingestd.errors import Retryable

CHUNK_BYTES = 1 << 20
READ_ON_LOOP_BYTES = 256 << 10
"""A file this small is read for its upload on the event loop: a read of it takes less time
than handing it to a worker thread and back, which in the throughput bench cost more CPU
than the reading (thread wake-ups, the GIL passed back and forth). Intake still hashes
every file in its threads: eight at a time, so that a batch of hundreds being fingerprinted
leaves the loop to the pipeline in between (hashed on the loop, 500 small files were all
recorded before the first was probed: its job started 0.6-0.85 s after the batch settled
instead of 0.06-0.24 s)."""


class Sent:
    """Whether an attempt's whole body has been handed to the connection."""

    complete = False


async def file_body(path: Path, size: int, sent: Sent) -> AsyncGenerator[bytes, None]:
    """The file's `size` bytes in chunks; raises Retryable if the file changes meanwhile."""
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size != size:
            raise Retryable(f"{path.name} changed size before its upload; it will be re-read")
        left = size
        on_loop = size <= READ_ON_LOOP_BYTES
        try:
            while left > 0:
                want = min(CHUNK_BYTES, left)
                chunk = file.read(want) if on_loop else await asyncio.to_thread(file.read, want)
                if not chunk:
                    raise Retryable(f"{path.name} shrank during its upload; it will be re-read")
                left -= len(chunk)
                if not left and os.fstat(file.fileno()).st_size != size:
                    # Stop before the last chunk: an incomplete body creates nothing.
                    raise Retryable(f"{path.name} grew during its upload; it will be re-read")
                yield chunk
                progress.upload_sent(path, size - left, size)  # for the dashboard's queue
        finally:
            progress.upload_ended(path)
    sent.complete = True


async def bytes_body(payload: bytes, sent: Sent) -> AsyncGenerator[bytes, None]:
    """A small payload (a URL route's JSON) in one piece."""
    yield payload
    sent.complete = True
