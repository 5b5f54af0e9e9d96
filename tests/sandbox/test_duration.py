"""The sandbox's made-up conversations last as long as the uploaded media (issue 15,
point 8): read from real files that ffmpeg writes, and end to end through the API."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ingestd import mediagen
from ingestd.sandbox.insights import PartSource, build_part
from ingestd.sandbox.uploads import read_streaming


def seconds_of(path: Path) -> float | None:
    data = path.read_bytes()
    return read_streaming(io.BytesIO(data), len(data), chunk_bytes=4096).seconds


@pytest.mark.parametrize("length", [1.0, 3.0, 10.0])
@pytest.mark.parametrize("name", ["a.wav", "a.mp3", "a.m4a"])
def test_audio_length_is_read_from_the_upload(tmp_path: Path, name: str, length: float):
    path = mediagen.make_audio(tmp_path / name, seconds=length)
    assert seconds_of(path) == pytest.approx(length, abs=0.1)


@pytest.mark.parametrize("faststart", [False, True])
def test_video_length_is_read_from_either_end(tmp_path: Path, faststart: bool):
    path = mediagen.make_video(tmp_path / "v.mp4", seconds=3, faststart=faststart)
    assert seconds_of(path) == pytest.approx(3.0, abs=0.1)


def test_unknown_media_keeps_its_natural_pace() -> None:
    assert read_streaming(io.BytesIO(b"x" * 5000), 5000).seconds is None


@pytest.mark.parametrize("seconds", [3.0, 600.0])
def test_a_part_spans_the_media(seconds: float) -> None:
    """A 3 s upload gives a 3 s part (not 28 s), a 10-minute one a 10-minute part; a part
    appended after it starts where it ends."""
    source = PartSource("j", sha256="ab" * 32, size=100, seconds=seconds)
    part = build_part(source, conversation_id="c", index=0, first_message=0, start=0.0)
    assert part.end_offset == pytest.approx(seconds, abs=0.02)
    offsets = [m.time_offset for m in part.messages]
    assert offsets == sorted(offsets) and offsets[0] == 0.0
    last = part.messages[-1]
    assert last.words[-1][1] + last.words[-1][2] == pytest.approx(last.duration, abs=0.01)
    later = build_part(source, conversation_id="c", index=1, first_message=9, start=seconds + 0.5)
    assert later.end_offset == pytest.approx(2 * seconds + 0.5, abs=0.02)
