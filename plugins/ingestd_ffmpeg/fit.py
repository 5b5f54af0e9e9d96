"""Fitting a recording under a backend's upload limit: compact it, then cut it at silences.

A backend that declares ``max_upload_bytes`` (OpenAI's service refuses files over 25 MB) gets
its upload through `fit_to_size`:

1. compact: the sound alone, mono, 16 kHz, mp3 at 32 kbit/s (about 14 MB an hour), which
   speech recognition reads as well as the original;
2. split: when even that is too large, pieces of at most the limit (with a margin), each cut
   in the middle of a silence found by ffmpeg's ``silencedetect`` near where the limit would
   fall, so no word is cut in two; where no silence is near, at the limit itself.

Pieces (`ingestd.Piece`) are stream copies of the compact file, in order, each with its
offset in seconds from the start of the recording, so their transcripts can be merged on one
time line. Blocking (subprocesses): the core calls the hook in a worker thread.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from pathlib import Path

from ingestd import Permanent, Piece, Retryable, executables

COMPACT_BITRATE = "32k"
COMPACT_SAMPLE_RATE_HZ = 16000
SIZE_MARGIN = 0.9
"""Pieces aim at this fraction of the limit: mp3 frames and headers vary a little."""
SILENCE_NOISE = "-35dB"
SILENCE_MIN_SECONDS = 0.3
SEARCH_FRACTION = 0.25
"""How far back from the ideal cut a silence is looked for, as a fraction of a piece."""
TIMEOUT_BASE_SECONDS = 60.0
TIMEOUT_PER_MEDIA_SECOND = 0.5


def fit_to_size(source: Path, max_bytes: int, work_dir: Path) -> list[Piece]:
    """`source` as pieces of at most `max_bytes` each, written into `work_dir`."""
    work_dir.mkdir(parents=True, exist_ok=True)
    duration = probe_duration(source)
    compact = work_dir / "compact.mp3"
    _ffmpeg(
        [
            "-i",
            str(source),
            "-map",
            "0:a:0",
            "-vn",
            "-map_metadata",
            "-1",
            "-ac",
            "1",
            "-ar",
            str(COMPACT_SAMPLE_RATE_HZ),
            "-c:a",
            "libmp3lame",
            "-b:a",
            COMPACT_BITRATE,
            "-f",
            "mp3",
            str(compact),
        ],
        duration,
        "compact the sound",
    )
    size = compact.stat().st_size
    duration = probe_duration(compact) or duration
    if size <= max_bytes:
        return [Piece(compact, 0.0, duration or 0.0)]
    if not duration:
        raise Permanent(f"{source.name}: too large to upload and its duration is unknown")
    cuts = cut_points(duration, size, max_bytes, silences(compact, duration))
    pieces = []
    bounds = [0.0, *cuts, duration]
    for n, (start, end) in enumerate(itertools.pairwise(bounds), start=1):
        piece = work_dir / f"piece-{n:03d}.mp3"
        _ffmpeg(
            [
                "-ss",
                f"{start:.3f}",
                "-to",
                f"{end:.3f}",
                "-i",
                str(compact),
                "-c",
                "copy",
                "-f",
                "mp3",
                str(piece),
            ],
            end - start,
            "cut a piece",
        )
        pieces.append(Piece(piece, start, end - start))
    compact.unlink(missing_ok=True)
    return pieces


def cut_points(
    duration: float, size: int, max_bytes: int, quiet: list[tuple[float, float]]
) -> list[float]:
    """Where to cut a file of `duration` s and `size` bytes into pieces under `max_bytes`:
    the middle of the latest silence in the window before each ideal cut, else the cut."""
    longest = duration * (max_bytes * SIZE_MARGIN) / size
    cuts: list[float] = []
    start = 0.0
    while duration - start > longest:
        ideal = start + longest
        earliest = ideal - SEARCH_FRACTION * longest
        middles = [(a + b) / 2 for a, b in quiet if earliest <= (a + b) / 2 <= ideal]
        cut = max(middles) if middles else ideal
        cuts.append(round(cut, 3))
        start = cut
    return cuts


_SILENCE = re.compile(r"silence_(start|end): (-?[\d.]+)")


def silences(path: Path, duration: float | None) -> list[tuple[float, float]]:
    """(start, end) of each silence ffmpeg's ``silencedetect`` finds in `path`."""
    stderr = _ffmpeg(
        [
            "-i",
            str(path),
            "-af",
            f"silencedetect=noise={SILENCE_NOISE}:d={SILENCE_MIN_SECONDS}",
            "-f",
            "null",
            "-",
        ],
        duration,
        "find the silences",
    )
    found: list[tuple[float, float]] = []
    start: float | None = None
    for kind, value in _SILENCE.findall(stderr):
        if kind == "start":
            start = max(0.0, float(value))
        elif start is not None:
            found.append((start, float(value)))
            start = None
    return found


def probe_duration(path: Path) -> float | None:
    """The duration ffprobe reports, or None."""
    try:
        done = subprocess.run(
            [
                executables.ffprobe(),
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "default=noprint_wrappers=1:nokey=1",
                str(path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        value = float(done.stdout.strip())
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    return value if value > 0 else None


def _ffmpeg(args: list[str], duration: float | None, doing: str) -> str:
    """Run ffmpeg; its stderr (where silencedetect reports). `Retryable` if it fails."""
    timeout = TIMEOUT_BASE_SECONDS + TIMEOUT_PER_MEDIA_SECOND * (duration or 4 * 3600)
    argv = [executables.ffmpeg(), "-nostdin", "-hide_banner", "-y", *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Retryable(f"ffmpeg took over {timeout:.0f} s to {doing}") from None
    except OSError as exc:
        raise executables.cannot_run("ffmpeg", exc) from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise Permanent(f"ffmpeg could not {doing}: {last}")
    return done.stderr
