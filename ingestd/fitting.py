"""Fitting an upload under the backend's size limit, just before it is sent.

A backend may declare ``max_upload_bytes`` (`ingestd.registry.Backend`): OpenAI's service
refuses files over 25 MB. A larger upload is handed to the ``ingestd_fit_upload`` hook (the
ffmpeg plugin compacts it, then cuts it at silences), and the backend receives the pieces in
`Upload.pieces`. The pieces live in ``<work_dir>/pieces/<recording id>/`` only for the time
of the upload: after a crash they are simply made again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from pathlib import Path
from typing import Any

import structlog

from ingestd.errors import Permanent
from ingestd.model import Upload
from ingestd.plugins import Plugins

log = structlog.get_logger()

HOOK = "ingestd_fit_upload"


def max_upload_bytes(backend: Any) -> int | None:
    """The backend's declared limit (``max_upload_bytes``), or None for none."""
    limit = getattr(backend, "max_upload_bytes", None)
    return limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None


def pieces_folder(work_dir: Path, recording_id: int) -> Path:
    return work_dir / "pieces" / str(recording_id)


async def fit_upload(
    plugins: Plugins, backend: Any, upload: Upload | None, work_dir: Path, recording_id: int
) -> Upload | None:
    """`upload` as it is when the backend takes it, else with the pieces that fit."""
    limit = max_upload_bytes(backend)
    if upload is None or limit is None or upload.size_bytes <= limit:
        return upload
    folder = pieces_folder(work_dir, recording_id)
    await asyncio.to_thread(shutil.rmtree, folder, True)  # a crash's leftovers
    folder.mkdir(parents=True)
    pieces, plugin = await asyncio.to_thread(
        plugins.call_first, HOOK, upload=upload, max_bytes=limit, work_dir=folder
    )
    if not pieces:
        raise Permanent(
            f"{upload.path.name} is {upload.size_bytes} bytes, over the {limit} the backend "
            f"takes, and no plugin could make it fit (is the ffmpeg plugin disabled?)"
        )
    log.info(
        "upload_fitted",
        size_bytes=upload.size_bytes,
        limit_bytes=limit,
        pieces=len(pieces),
        offsets_s=[round(p.offset_seconds, 3) for p in pieces],
        by=plugin,
    )
    return dataclasses.replace(upload, pieces=tuple(pieces))


def remove_pieces(work_dir: Path, recording_id: int) -> None:
    """Delete a recording's pieces once its upload ended, however it ended."""
    shutil.rmtree(pieces_folder(work_dir, recording_id), ignore_errors=True)
