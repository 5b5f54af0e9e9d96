"""Transcode progress for the dashboard's queue: ffmpeg's stats lines, read as it runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ingestd import executables, mediagen, progress
from ingestd.model import TranscodePlan
from ingestd.transcode import run_plan


def test_a_running_transcode_reports_how_far_into_the_media_it_is(tmp_path: Path) -> None:
    source = mediagen.make_audio(tmp_path / "long.wav", seconds=3)
    # -re reads the input at its own pace: three seconds of media take three seconds to run,
    # long enough for ffmpeg to print several stats lines (about two a second).
    plan = TranscodePlan(
        argv=(executables.ffmpeg(), "-nostdin", "-re", "-i", "{input}", "-ac", "1", "{output}"),
        suffix=".wav",
        description="real-time copy",
        reencodes=True,
    )
    seen: list[float] = []

    async def watch() -> None:
        task = asyncio.create_task(run_plan(plan, source, tmp_path / "out.wav"))
        while not task.done():
            at = progress.transcodes().get(str(source))
            if at is not None and (not seen or at != seen[-1]):
                seen.append(at)
            await asyncio.sleep(0.05)
        await task

    asyncio.run(watch())
    assert seen, "no progress was reported while ffmpeg ran"
    assert seen == sorted(seen) and 0 < seen[-1] <= 3.1, seen
    assert any(at < 2.5 for at in seen), f"progress came only at the end: {seen}"
    assert str(source) not in progress.transcodes()  # forgotten once finished
