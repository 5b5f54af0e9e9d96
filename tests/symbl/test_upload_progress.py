"""Upload progress for the dashboard's queue: bytes handed over so far, gone once finished."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ingestd import progress
from ingestd.bodies import CHUNK_BYTES, Sent, file_body


def test_file_body_reports_bytes_sent_and_forgets_the_upload_at_the_end(
    tmp_path: Path,
) -> None:
    path = tmp_path / "big.wav"
    size = 2 * CHUNK_BYTES + 100
    path.write_bytes(b"x" * size)
    seen: list[tuple[int, int] | None] = []

    async def consume() -> None:
        async for _ in file_body(path, size, Sent()):
            seen.append(progress.uploads().get(str(path)))

    asyncio.run(consume())
    # each chunk is counted once the connection asks for the next one
    assert seen == [None, (CHUNK_BYTES, size), (2 * CHUNK_BYTES, size)]
    assert str(path) not in progress.uploads()


def test_an_abandoned_upload_is_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "big.wav"
    path.write_bytes(b"x" * (3 * CHUNK_BYTES))

    async def first_chunk_only() -> None:
        body = file_body(path, 3 * CHUNK_BYTES, Sent())
        await body.__anext__()
        await body.__anext__()
        assert progress.uploads()[str(path)] == (CHUNK_BYTES, 3 * CHUNK_BYTES)
        await body.aclose()  # what the client does when the server cuts it off

    asyncio.run(first_chunk_only())
    assert str(path) not in progress.uploads()
