"""Shared real media for the ffmpeg plugin's tests, generated once per session by mediagen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ingestd import mediagen

# File name -> mediagen keyword arguments; each file also gets its own tone or seed.
AUDIO = {
    "mono.wav": {},
    "stereo.wav": {"channels": 2},
    "phone.wav": {"sample_rate_hz": 8000},
    "studio.wav": {"sample_rate_hz": 96000},
    "eight_bit.wav": {"codec": "pcm_u8"},
    "tone.mp3": {},
    "cover.mp3": {"cover_art": True},
    "tone.m4a": {},
    "cover.m4a": {"cover_art": True},
    "tone.aac": {},
    "tone.flac": {},
    "stereo.flac": {"channels": 2},
    "tone.ogg": {},
    "tone.opus": {},
    "tone.webm": {},
    "tone.wma": {},
    "tone.amr": {},
}
VIDEO = {
    "clip.mp4": {},
    "faststart.mp4": {"faststart": True},
    "clip.mov": {},
    "clip.mkv": {},
    "hevc.mkv": {"video_codec": "hevc", "audio_codec": "aac"},
    "clip.webm": {},
    "clip.avi": {},
    "vp9.mp4": {"video_codec": "vp9", "audio_codec": "opus"},
    "silent.mp4": {"audio": False},
}


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every input kind the plugin must handle, two seconds each (read-only: copy to edit)."""
    folder = tmp_path_factory.mktemp("media")
    made: dict[str, Path] = {}
    for i, (name, kwargs) in enumerate(AUDIO.items()):
        made[name] = mediagen.make_audio(folder / name, frequency_hz=300 + 20 * i, **kwargs)
    for i, (name, kwargs) in enumerate(VIDEO.items()):
        made[name] = mediagen.make_video(folder / name, seed=i, **kwargs)
    return made


@pytest.fixture
def copy_of(tmp_path: Path, media: dict[str, Path]) -> Callable[[str, str], Path]:
    """``copy_of("clip.mp4", "clip.m4a")``: a private copy of a generated file, renamed."""

    def copy(name: str, new_name: str | None = None) -> Path:
        target = tmp_path / (new_name or name)
        target.write_bytes(media[name].read_bytes())
        return target

    return copy
