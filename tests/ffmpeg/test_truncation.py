"""The truncation check rejects only on evidence, whatever ffprobe build or install path.

The bundled static ffprobe 6.0 lists no packets for an open-ended ``-read_intervals START%``
from some install paths and all of them from others (byte-identical copies); the check must
neither depend on that nor reject a file because one read came back empty.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingestd import Rejected, executables, mediagen
from ingestd_ffmpeg.probe import probe_file

# name -> seconds; low sample rates keep the ten-minute files small (~10 MB wav at most)
LENGTHS = {"1s": 1.0, "2s": 2.0, "5s": 5.0, "10min": 600.0}
SUFFIXES = (".wav", ".mp3", ".m4a")


@pytest.fixture(scope="module")
def real_ffprobe() -> str:
    """The ffprobe the plugin would use, resolved before any test swaps it."""
    return executables.find("ffprobe")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Valid recordings of every length and kind: ``"10min.mp3"`` -> path (read-only)."""
    folder = tmp_path_factory.mktemp("lengths")
    made = {}
    for i, (label, seconds) in enumerate(LENGTHS.items()):
        for suffix in SUFFIXES:
            name = f"{label}{suffix}"
            made[name] = mediagen.make_audio(
                folder / name, seconds=seconds, sample_rate_hz=8000, seed=i
            )
    return made


@pytest.fixture
def use_ffprobe(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """``use_ffprobe(path)``: the plugin runs that ffprobe, configured as an operator does
    (INGESTD_FFPROBE), until the test ends."""

    def use(path: Path) -> None:
        monkeypatch.setenv("INGESTD_FFPROBE", str(path))
        executables.find.cache_clear()

    yield use
    monkeypatch.delenv("INGESTD_FFPROBE", raising=False)
    executables.find.cache_clear()


def fake_ffprobe(folder: Path, real: str, *, blank: str) -> Path:
    """An ffprobe that prints nothing (exit 0) for the reads `blank` names, else runs `real`.

    blank: "open" = open-ended ``-read_intervals START%`` (what the real 6.0 build does from
        some paths); "intervals" = any ``-read_intervals``; "packets" = any packet listing.
    """
    tests = {
        "open": 'if [ "$prev" = -read_intervals ]; then case "$a" in *%) exit 0;; esac; fi',
        "intervals": 'if [ "$a" = -read_intervals ]; then exit 0; fi',
        "packets": 'case "$a" in packet=*) exit 0;; esac',
    }
    script = folder / "ffprobe"
    script.write_text(
        "#!/bin/sh\n"
        'prev=""\n'
        f'for a in "$@"; do\n  {tests[blank]}\n  prev="$a"\ndone\n'
        f'exec "{real}" "$@"\n'
    )
    script.chmod(0o755)
    return script


def _probe(path: Path) -> float | None:
    return probe_file(path, path.name).duration_seconds


class TestEmptyReadsAreNotEvidence:
    """An ffprobe that lists nothing never gets a valid file rejected."""

    @pytest.mark.parametrize("name", [f"{n}{s}" for n in LENGTHS for s in SUFFIXES])
    def test_valid_files_pass_with_an_ffprobe_blind_to_open_intervals(
        self, files, real_ffprobe, use_ffprobe, tmp_path, name
    ) -> None:
        """Every length (1 s to 10 min) and kind passes when open-ended intervals read nothing."""
        use_ffprobe(fake_ffprobe(tmp_path, real_ffprobe, blank="open"))
        assert _probe(files[name]) == pytest.approx(LENGTHS[name.split(".")[0]], abs=0.2)

    @pytest.mark.parametrize("name", ["2s.wav", "5s.mp3", "10min.m4a"])
    def test_valid_files_pass_when_every_interval_reads_nothing(
        self, files, real_ffprobe, use_ffprobe, tmp_path, name
    ) -> None:
        """When the tail read finds nothing the whole file is read instead, and passes."""
        use_ffprobe(fake_ffprobe(tmp_path, real_ffprobe, blank="intervals"))
        assert _probe(files[name])

    def test_no_packets_at_all_is_unknown_not_truncated(
        self, files, real_ffprobe, use_ffprobe, tmp_path
    ) -> None:
        """With no packet listed by any read, there is no evidence: the file is accepted."""
        use_ffprobe(fake_ffprobe(tmp_path, real_ffprobe, blank="packets"))
        assert _probe(files["2s.wav"]) == pytest.approx(2.0, abs=0.1)


class TestTruncatedStillRejected:
    """Positive evidence, packets that stop short of the promised end, still rejects."""

    @pytest.mark.parametrize("blank", [None, "open", "intervals"])
    @pytest.mark.parametrize("name", ["5s.mp3", "10min.mp3"])
    def test_cut_file_is_rejected(
        self, files, real_ffprobe, use_ffprobe, tmp_path, name, blank
    ) -> None:
        """An mp3 cut to 40 % (its Info frame promises the length; a wav has its own header
        check) is rejected, with the real ffprobe and with blind ones."""
        if blank:
            use_ffprobe(fake_ffprobe(tmp_path, real_ffprobe, blank=blank))
        cut = mediagen.truncate_copy(files[name], tmp_path / name, 0.4)
        with pytest.raises(Rejected, match=r"looks truncated: it promises .* stops at"):
            _probe(cut)


# Install folders of several lengths: which ones make the real static ffprobe 6.0 list
# nothing for an open-ended interval depends on the machine (here, without the fix, two of
# these five did), so several are tried.
INSTALL_DIRS = ("a", "b" * 10, "c" * 30, "d" * 40, "e/f" * 8)


class TestInstallPaths:
    """The check gives the same answer from byte-identical ffprobe copies anywhere."""

    @pytest.mark.parametrize("folder", INSTALL_DIRS, ids=lambda f: f"{len(f)}chars")
    def test_copies_of_the_real_ffprobe_agree(
        self, files, real_ffprobe, use_ffprobe, tmp_path, folder
    ) -> None:
        """Valid 1 s/2 s/5 s/10 min files pass and a cut one is rejected, from every path."""
        install = tmp_path / folder
        install.mkdir(parents=True)
        copy = install / "ffprobe"
        shutil.copy2(real_ffprobe, copy)
        use_ffprobe(copy)
        for name in ("1s.wav", "2s.wav", "2s.mp3", "5s.m4a", "10min.wav", "10min.mp3"):
            assert _probe(files[name]), name
        cut = mediagen.truncate_copy(files["5s.mp3"], tmp_path / "cut.mp3", 0.4)
        with pytest.raises(Rejected, match="looks truncated"):
            _probe(cut)


def counting_ffprobe(folder: Path, real: str) -> tuple[Path, Path]:
    """An ffprobe that appends a line to a log per run, then runs `real`: (script, log)."""
    runs = folder / "runs.log"
    script = folder / "ffprobe"
    script.write_text(f'#!/bin/sh\necho run >> "{runs}"\nexec "{real}" "$@"\n')
    script.chmod(0o755)
    return script, runs


class TestWavNeedsNoRun:
    """A plain wav's header is its probe and its truncation check: no ffprobe runs."""

    def test_complete_wav_is_probed_without_ffprobe(
        self, files, real_ffprobe, use_ffprobe, tmp_path
    ) -> None:
        script, runs = counting_ffprobe(tmp_path, real_ffprobe)
        use_ffprobe(script)
        assert _probe(files["10min.wav"]) == pytest.approx(600.0, abs=0.2)
        assert not runs.exists()

    def test_a_wav_ffprobe_must_read_is_probed_by_one_run(
        self, real_ffprobe, use_ffprobe, tmp_path
    ) -> None:
        """A mu-law wav (not described from its header) still needs no packet read."""
        wav = mediagen.make_audio(tmp_path / "law.wav", codec="pcm_mulaw", seconds=3.0)
        script, runs = counting_ffprobe(tmp_path, real_ffprobe)
        use_ffprobe(script)
        assert _probe(wav) == pytest.approx(3.0, abs=0.05)
        assert runs.read_text().count("run") == 1

    def test_mp3_still_gets_its_packet_read(
        self, files, real_ffprobe, use_ffprobe, tmp_path
    ) -> None:
        script, runs = counting_ffprobe(tmp_path, real_ffprobe)
        use_ffprobe(script)
        assert _probe(files["5s.mp3"])
        assert runs.read_text().count("run") >= 2

    def test_cut_wav_is_still_rejected_by_its_header(self, files, tmp_path) -> None:
        cut = mediagen.truncate_copy(files["10min.wav"], tmp_path / "cut.wav", 0.4)
        with pytest.raises(Rejected, match="its wav header promises"):
            _probe(cut)


class TestSparseKeyframes:
    """Keyframes far apart (a screen or meeting recorder's long GOP): the tail read starts
    at the keyframe before the tail, and must still read to the end. ffprobe measured a
    ``START%+SPAN`` read from that keyframe, so a complete 300 s mov with 50 s between
    keyframes read only to 260 s and was rejected as truncated."""

    def test_a_complete_video_with_one_keyframe_passes(self, tmp_path) -> None:
        video = mediagen.make_video(
            tmp_path / "screen.mp4", seconds=30, width=160, height=120, keyframe_seconds=60
        )
        assert _probe(video) == pytest.approx(30.0, abs=0.2)

    def test_a_cut_one_is_still_rejected(self, tmp_path) -> None:
        video = mediagen.make_video(
            tmp_path / "screen.mp4",
            seconds=30,
            width=160,
            height=120,
            keyframe_seconds=60,
            faststart=True,  # the index first: cut in half, it still promises 30 s
        )
        cut = mediagen.truncate_copy(video, tmp_path / "cut.mp4", 0.5)
        with pytest.raises(Rejected, match=r"looks truncated: it promises 30\.\d s"):
            _probe(cut)
