"""Transcode: a 1-hour mov (H.264 + AAC) made into an mp4 by remuxing vs by re-encoding.

Both runs use the ffmpeg plugin's own plans, run through the core's `ingestd.transcode.run_plan`
(the killable subprocess the daemon uses):

- remux: ``plan_for(mov, media, options)`` for the probed file, which is a stream copy
  (mp4 carries H.264 and AAC as they are);
- re-encode: the plugin's re-encoding plan (H.264 ``veryfast`` CRF 23 + AAC 128k), got from
  ``plan_for`` for the same file described with codecs mp4 cannot carry, which is what the
  daemon would run if it did not remux.

The mov is 160x120 at 5 fps with 16 kHz mono sound, like a low-rate screen share of a call,
so that re-encoding it fits the bench's time budget (ffmpeg's AAC encoder alone needs ~5 min
for an hour of 48 kHz sound on this class of machine). Generation is not measured: a
5-minute piece is encoded once and copied 12 times into one file with the concat demuxer,
cached in ``bench/.cache``.
Re-encoding a real 720p/1080p, 25-30 fps recording costs many times more while remuxing
costs about the same per byte, so the ratio measured here is a floor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import Context, Row, ffmpeg, log

TARGET_RATIO = 20.0
PIECE_SECONDS = 300
WIDTH, HEIGHT, FPS = 160, 120, 5


def make_mov(cache: Path, seconds: int) -> Path:
    """A `seconds` long H.264/AAC mov, cached across runs."""
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"meeting-{seconds}s-{WIDTH}x{HEIGHT}-{FPS}fps-16k.mov"
    if target.exists():
        return target
    piece = cache / f"piece-{PIECE_SECONDS}s-{WIDTH}x{HEIGHT}-{FPS}fps-16k.mov"
    if not piece.exists():
        log(f"transcode: encoding a {PIECE_SECONDS} s piece (once; cached in {cache})")
        _ffmpeg(
            "-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}",
            "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=16000",
            "-t", str(PIECE_SECONDS), "-map", "0:v", "-map", "1:a",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "64k", "-ac", "1",
            str(piece) + ".tmp.mov",
        )  # fmt: skip
        Path(str(piece) + ".tmp.mov").replace(piece)
    copies = max(1, seconds // PIECE_SECONDS)
    listing = cache / "concat.txt"
    listing.write_text("".join(f"file '{piece.name}'\n" for _ in range(copies)))
    _ffmpeg(
        "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
        str(target) + ".tmp.mov",
    )  # fmt: skip
    Path(str(target) + ".tmp.mov").replace(target)
    listing.unlink()
    return target


def _ffmpeg(*args: str) -> None:
    argv = [ffmpeg(), "-nostdin", "-hide_banner", "-v", "error", "-y", *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {done.stderr[-2000:]}")


def _timed(plan: Any, source: Path, output: Path) -> dict[str, Any]:
    from ingestd.transcode import run_plan

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    asyncio.run(run_plan(plan, source, output))
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "description": plan.description,
        "output_bytes": output.stat().st_size,
        "argv": list(plan.argv),
    }


def run(ctx: Context) -> list[Row]:
    from ingestd.config import WatchConfig
    from ingestd_ffmpeg import parse_options, plan_for
    from ingestd_ffmpeg.probe import probe_file

    seconds = PIECE_SECONDS if ctx.quick else 3600
    mov = make_mov(ctx.cache_dir, seconds)
    media = probe_file(mov, mov.name)
    options = parse_options(WatchConfig(name="bench", path=mov.parent))
    remux_plan = plan_for(mov, media, options)
    reencode_plan = plan_for(
        mov, dataclasses.replace(media, video_codec="vp9", audio_codec="opus"), options
    )
    if remux_plan.reencodes or not reencode_plan.reencodes:
        raise RuntimeError(f"unexpected plans: {remux_plan} / {reencode_plan}")
    root = ctx.scratch("transcode")
    try:
        log(f"transcode: remuxing {mov.name} ({media.duration_seconds:.0f} s)")
        remux = _timed(remux_plan, mov, root / "remux.mp4")
        log("transcode: re-encoding it (the slow way)")
        reencode = _timed(reencode_plan, mov, root / "reencode.mp4")
        out_media = probe_file(root / "remux.mp4", "remux.mp4")
    finally:
        ctx.cleanup(root)
    ratio = reencode["seconds"] / remux["seconds"]
    return [
        Row(
            benchmark="transcode",
            metric=f"{seconds / 60:.0f} min mov (h264 {WIDTH}x{HEIGHT}@{FPS}, aac 16 kHz) → mp4",
            ingestd=round(remux["seconds"], 2),
            ingestd_text=f"remux {remux['seconds']:.2f} s",
            baseline=round(reencode["seconds"], 1),
            baseline_text=f"re-encode {reencode['seconds']:.1f} s",
            ratio=round(ratio, 1),
            ratio_text=f"{ratio:.0f}× faster",
            target=f"≥ {TARGET_RATIO:g}×",
            passed=ratio >= TARGET_RATIO
            and abs((out_media.duration_seconds or 0) - (media.duration_seconds or 0)) < 2,
            notes=(
                f"input {mov.stat().st_size / 1e6:.0f} MB; remux output duration "
                f"{out_media.duration_seconds:.0f} s; ffmpeg CPU remux "
                f"{remux['cpu_seconds']:.1f} s, re-encode {reencode['cpu_seconds']:.0f} s"
            ),
            details={"remux": remux, "reencode": reencode, "media": media.to_dict()},
        )
    ]
