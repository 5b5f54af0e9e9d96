"""Where a recording too large for the backend is cut (`ingestd_ffmpeg.fit.cut_points`)."""

from __future__ import annotations

from ingestd_ffmpeg.fit import cut_points


def test_cuts_fall_in_the_latest_silence_before_the_limit() -> None:
    # 100 s, 1,000 kB, a 300 kB limit: pieces of at most 27 s (90 % of the limit)
    quiet = [(10.0, 11.0), (24.0, 26.0), (40.0, 41.0), (48.0, 50.0), (90.0, 91.0)]
    assert cut_points(100.0, 1_000_000, 300_000, quiet) == [25.0, 49.0, 76.0]


def test_without_a_silence_near_the_limit_the_cut_is_at_the_limit() -> None:
    assert cut_points(60.0, 600_000, 300_000, []) == [27.0, 54.0]


def test_a_file_under_the_limit_is_not_cut() -> None:
    assert cut_points(60.0, 100_000, 300_000, [(5.0, 6.0)]) == []
