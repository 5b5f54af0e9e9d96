"""Where a recording too large for the backend is cut (`ingestd_ffmpeg.fit.cut_points`)."""

from __future__ import annotations

from pathlib import Path

from ingestd import mediagen
from ingestd.model import Upload
from ingestd.plugins import load_plugins
from ingestd_ffmpeg.fit import cut_points


def test_cuts_fall_in_the_latest_silence_before_the_limit() -> None:
    # 100 s, 1,000 kB, a 300 kB limit: pieces of at most 27 s (90 % of the limit)
    quiet = [(10.0, 11.0), (24.0, 26.0), (40.0, 41.0), (48.0, 50.0), (90.0, 91.0)]
    assert cut_points(100.0, 1_000_000, 300_000, quiet) == [25.0, 49.0, 76.0]


def test_without_a_silence_near_the_limit_the_cut_is_at_the_limit() -> None:
    assert cut_points(60.0, 600_000, 300_000, []) == [27.0, 54.0]


def test_a_file_under_the_limit_is_not_cut() -> None:
    assert cut_points(60.0, 100_000, 300_000, [(5.0, 6.0)]) == []


LOCAL_FIT = """\
from ingestd import hookimpl
from ingestd.model import Piece

@hookimpl
def ingestd_fit_upload(upload, max_bytes, work_dir):
    if upload.path.name.startswith("keep-"):  # this site cuts such files itself
        piece = work_dir / "only.wav"
        piece.write_bytes(upload.path.read_bytes()[:max_bytes])
        return [Piece(piece, 0.0)]
"""


def test_hook_fit_upload(tmp_path: Path) -> None:
    """A plugin's pieces win over the bundled ffmpeg answer (``trylast``); for the files it
    has no opinion on, ffmpeg compacts and cuts real media under the limit."""
    plugin = tmp_path / "local_fit.py"
    plugin.write_text(LOCAL_FIT)
    plugins = load_plugins((str(plugin),))
    limit = 100_000
    for name, expect_by in (("keep-a.wav", "local_fit"), ("b.wav", "ffmpeg")):
        source = mediagen.make_audio(tmp_path / name, seconds=20, sample_rate_hz=16000)
        assert source.stat().st_size > limit
        work = tmp_path / f"work-{name}"
        work.mkdir()
        upload = Upload(source, source.stat().st_size, "audio/wav")
        pieces, by = plugins.call_first(
            "ingestd_fit_upload", upload=upload, max_bytes=limit, work_dir=work
        )
        assert by == expect_by
        assert pieces and all(p.path.stat().st_size <= limit for p in pieces)
        assert all(p.path.parent == work for p in pieces)
        assert [p.offset_seconds for p in pieces] == sorted(p.offset_seconds for p in pieces)
