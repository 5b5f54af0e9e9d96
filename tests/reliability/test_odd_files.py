"""Partial and odd files: slow copies, replacements, renames, disappearances, bad media,
unreadable files, awkward names, symlink loops and the temporary files of other tools."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

from ingestd import mediagen
from ingestd.testing import copy_slowly, drop, wait_for

from .support import (
    WrappedDaemon,
    cli,
    created,
    created_by_sha,
    posts_by_name,
    results,
    rows_by_path,
    sha256,
    transcript,
    wait_terminal,
)

NO_DAC_OVERRIDE = [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
    "--",
]
"""We run as root, which reads any file whatever its mode; without these two capabilities
the daemon is held to file permissions like any service user."""


def test_slow_parallel_copies_are_submitted_once_and_complete(
    ingestd_env, sandbox, make_media
) -> None:
    """Four files copied slowly at once are each submitted once, with all their bytes."""
    daemon = ingestd_env.daemon(watch={"settle_seconds": 1.0}).start()
    daemon.wait_ready()
    sources = [make_media(f"slow-{i}.wav", seconds=3) for i in range(4)]
    copiers = [
        threading.Thread(target=copy_slowly, args=(s, ingestd_env.inbox / s.name, 2.5, 12))
        for s in sources
    ]
    for copier in copiers:
        copier.start()
    for copier in copiers:
        copier.join()
    ingestd_env.wait_states({s.name: "done" for s in sources})
    counts = created_by_sha(sandbox)
    assert all(counts[sha256(s)] == 1 for s in sources), counts
    assert len(created(sandbox)) == 4, "no partial version was ever uploaded"
    assert all(len(rows) == 1 for rows in rows_by_path(ingestd_env).values())
    assert daemon.stop() == 0


def test_file_replaced_in_place_is_a_new_recording(ingestd_env, sandbox, make_media) -> None:
    """New content written over a processed file (same name, size and inode) is sent too."""
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    old, new = make_media("v1.wav", seconds=1), make_media("v2.wav", seconds=1)
    assert old.stat().st_size == new.stat().st_size
    target = drop(old, ingestd_env.inbox, "take.wav")
    ingestd_env.wait_states({"take.wav": "done"})
    inode = target.stat().st_ino
    with open(target, "r+b") as handle:  # rewritten in place, as an editor saving would
        handle.write(new.read_bytes())
    assert target.stat().st_ino == inode
    wait_for(lambda: len(ingestd_env.rows()) == 2, 30, "the new version to be recorded")
    wait_terminal(ingestd_env, ["take.wav"], 60)
    rows = rows_by_path(ingestd_env)["take.wav"]
    assert [r["state"] for r in rows] == ["done", "done"]
    assert rows[1]["sha256"] == sha256(new)
    assert created_by_sha(sandbox)[sha256(new)] == 1
    assert f"part sha256={sha256(new)}" in transcript(
        results(ingestd_env)[rows[1]["conversation_id"]]
    )
    assert daemon.stop() == 0


def test_temporary_name_renamed_into_place_is_sent_once(ingestd_env, sandbox, make_media) -> None:
    """A copy written as `.part` in the folder and renamed when complete is sent once."""
    daemon = ingestd_env.daemon(watch={"settle_seconds": 0.5}).start()
    daemon.wait_ready()
    source = make_media("renamed.wav", seconds=2)
    partial = ingestd_env.inbox / "renamed.wav.part"
    copy_slowly(source, partial, 2.0, 8)
    time.sleep(1.0)  # the .part file sits complete for longer than the quiet period
    os.rename(partial, ingestd_env.inbox / "renamed.wav")
    ingestd_env.wait_states({"renamed.wav": "done"})
    assert list(ingestd_env.states()) == ["renamed.wav"]
    assert created_by_sha(sandbox)[sha256(source)] == 1
    assert len(created(sandbox)) == 1
    assert daemon.stop() == 0


def test_file_moved_away_before_it_settled_is_forgotten(ingestd_env, sandbox, make_media) -> None:
    """A file that leaves the folder before it settled is never recorded nor sent."""
    daemon = ingestd_env.daemon(watch={"settle_seconds": 1.5}).start()
    daemon.wait_ready()
    elsewhere = ingestd_env.root / "elsewhere"
    elsewhere.mkdir()
    brief = drop(make_media("brief.wav"), ingestd_env.inbox)
    time.sleep(0.4)
    shutil.move(brief, elsewhere / "brief.wav")
    drop(make_media("stays.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"stays.wav": "done"})
    time.sleep(1.5)
    assert list(ingestd_env.states()) == ["stays.wav"]
    assert len(created(sandbox)) == 1
    assert daemon.process.poll() is None
    assert daemon.stop() == 0


def test_file_moved_away_while_queued_ends_with_a_reason(ingestd_env, sandbox, make_media) -> None:
    """A recording whose file vanished while it waited for its turn ends with a clear reason
    and nothing is uploaded for it; the others go on."""
    sandbox.set_options({"concurrency_limit": 1, "job_seconds": 2.0})
    daemon = ingestd_env.daemon(symbl={"max_concurrent_jobs": 1}).start()
    daemon.wait_ready()
    files = [make_media(f"q-{i}.wav") for i in range(3)]
    hashes = {f.name: sha256(f) for f in files}
    for f in files:
        drop(f, ingestd_env.inbox)

    def one_waiting_behind_another() -> str | None:
        """A file queued while another holds the one job slot (events decide the order)."""
        states = ingestd_env.states()
        queued = sorted(name for name, state in states.items() if state == "queued")
        busy = [name for name, state in states.items() if state in ("submitting", "submitted")]
        return queued[-1] if queued and busy else None

    gone = wait_for(one_waiting_behind_another, 30, "a file waiting for its turn")
    (ingestd_env.inbox / gone).rename(ingestd_env.root / gone)
    states = wait_terminal(ingestd_env, hashes, timeout=60)
    assert [states[name] for name in sorted(hashes) if name != gone] == ["done", "done"]
    assert states[gone] in ("rejected", "failed")
    error = rows_by_path(ingestd_env)[gone][0]["error"]
    assert gone in error and ("gone" in error or "disappeared" in error), error
    assert created_by_sha(sandbox)[hashes[gone]] == 0
    assert daemon.stop() == 0


def test_bad_media_is_rejected_with_a_reason_and_never_sent(
    ingestd_env, sandbox, make_media, tmp_path
) -> None:
    """Empty, not media, header-only and truncated files are rejected, each with its reason."""
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    wav, mp4 = make_media("whole.wav", seconds=2), make_media("whole.mp4", seconds=2)
    staging = tmp_path / "bad"
    staging.mkdir()
    (staging / "empty.wav").write_bytes(b"")
    (staging / "notes.wav").write_text("minutes of the meeting, not audio\n" * 200)
    (staging / "header-only.wav").write_bytes(wav.read_bytes()[:44])
    mediagen.truncate_copy(wav, staging / "cut.wav", 0.5)
    mediagen.truncate_copy(mp4, staging / "cut.mp4", 0.6)
    expected = {
        "empty.wav": "is empty (0 bytes)",
        "notes.wav": "is not media ffprobe can read",
        "header-only.wav": "a wav header with no audio after it: truncated?",
        "cut.wav": "looks truncated",
        "cut.mp4": "no mp4/mov index: truncated",
    }
    for name in expected:
        drop(staging / name, ingestd_env.inbox)
    drop(make_media("good.wav"), ingestd_env.inbox)
    states = wait_terminal(ingestd_env, [*expected, "good.wav"], timeout=60)
    assert states == {**dict.fromkeys(expected, "rejected"), "good.wav": "done"}, states
    for name, word in expected.items():
        error = rows_by_path(ingestd_env)[name][0]["error"]
        assert name in error and word in error and "replace" in error, error
    assert len(created(sandbox)) == 1, "only the good file was uploaded"
    status = cli(ingestd_env, "status", "--limit", "20")
    assert all(name in status.stdout for name in expected), status.stdout
    assert daemon.process.poll() is None
    assert daemon.stop() == 0


def test_unreadable_file_is_rejected_then_retried_after_chmod(
    ingestd_env, sandbox, make_media
) -> None:
    """A file the daemon may not read is rejected saying so; fixed and retried, it is sent."""
    ingestd_env.write_config()
    daemon = WrappedDaemon(ingestd_env, NO_DAC_OVERRIDE).start()
    daemon.wait_ready()
    source = make_media("locked.wav")
    digest = sha256(source)
    source.chmod(0o000)
    target = drop(source, ingestd_env.inbox)
    ingestd_env.wait_states({"locked.wav": "rejected"})
    error = ingestd_env.rows()[0]["error"]
    assert "locked.wav" in error and "permission denied" in error, error
    assert not created(sandbox)
    target.chmod(0o644)
    retried = cli(ingestd_env, "retry")
    assert retried.returncode == 0 and "1 recording re-queued" in retried.stdout
    ingestd_env.wait_states({"locked.wav": "done"})
    assert created_by_sha(sandbox)[digest] == 1
    assert daemon.stop() == 0


AWKWARD_NAMES = [
    "team call 01.wav",
    "line\nbreak.wav",
    "tab\there.wav",
    "café – réunion 会议 🎙.wav",
    "-leading-dash.wav",
    'quote\'s "and" <angle>.wav',
    "é" * 100 + ".wav",  # 204 bytes of UTF-8
]


def test_awkward_names_are_processed(ingestd_env, sandbox, make_media) -> None:
    """Spaces, newlines, tabs, unicode, quotes, a leading dash and 200-byte names all work."""
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    for i, name in enumerate(AWKWARD_NAMES):
        drop(make_media(f"n{i}.wav"), ingestd_env.inbox, name)
    states = wait_terminal(ingestd_env, AWKWARD_NAMES, timeout=60)
    assert set(states.values()) == {"done"}, states
    names = posts_by_name(sandbox)
    assert all(names[Path(n).stem] == 1 for n in AWKWARD_NAMES), names
    delivered = results(ingestd_env)
    assert len(delivered) == len(AWKWARD_NAMES)
    root = ingestd_env.results.resolve()
    for path in ingestd_env.results.rglob("*"):
        assert path.resolve().is_relative_to(root)
    assert daemon.stop() == 0


def test_name_that_is_not_utf8_is_processed(ingestd_env, sandbox, make_media) -> None:
    """A file name with bytes that are not UTF-8 (from an old Windows share) is processed."""
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    source = make_media("latin1.wav")
    digest = sha256(source)
    raw = os.fsencode(ingestd_env.inbox) + b"/r\xe9union-\xff.wav"
    os.rename(os.fsencode(source), raw)
    drop(make_media("after.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"after.wav": "done"})
    wait_for(lambda: created_by_sha(sandbox)[digest] == 1, 10, "the oddly named file uploaded")
    wait_for(
        lambda: [r["state"] for r in ingestd_env.rows()] == ["done", "done"],
        30,
        "both recordings done",
    )
    assert daemon.stop() == 0


def test_symlink_loops_do_not_trap_the_daemon(ingestd_env, sandbox, make_media) -> None:
    """Directory symlink loops and a self-referencing file link neither hang nor double work."""
    sub = ingestd_env.inbox / "sub"
    sub.mkdir()
    (sub / "loop").symlink_to(ingestd_env.inbox, target_is_directory=True)
    (ingestd_env.inbox / "self").symlink_to(".", target_is_directory=True)
    (ingestd_env.inbox / "knot.wav").symlink_to("knot.wav")  # ELOOP when opened
    drop(make_media("a.wav"), sub)
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready(timeout=15)
    drop(make_media("b.wav"), sub)
    ingestd_env.wait_states({"sub/a.wav": "done", "sub/b.wav": "done"})
    time.sleep(1.0)
    assert sorted(ingestd_env.states()) == ["sub/a.wav", "sub/b.wav"]
    assert len(created(sandbox)) == 2
    assert daemon.process.poll() is None
    assert daemon.stop() == 0


TEMPORARY_NAMES = [
    "call.wav.part",
    "call.wav.partial",
    "call.tmp",
    "download.wav.crdownload",
    "~$meeting.wav",
    ".hidden.wav",
    ".call.wav.swp",
    ".syncthing.call.wav.tmp",
    "call.wav~",
    ".stversions/call~20240101-120000.wav",
    ".sync/archive.mp3",
]


def test_temporary_files_of_editors_and_sync_tools_are_ignored(
    ingestd_env, sandbox, make_media
) -> None:
    """Temporary, hidden and sync-versioned files are never recorded, by event or rescan."""
    daemon = ingestd_env.daemon(pipeline={"rescan_interval_seconds": 1}).start()
    daemon.wait_ready()
    for i, name in enumerate(TEMPORARY_NAMES):
        suffix = ".mp3" if name.endswith(".mp3") else ".wav"
        media = make_media(f"temp-{i}{suffix}")
        target = ingestd_env.inbox / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(media, target)
    drop(make_media("real.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"real.wav": "done"})
    time.sleep(2.5)  # settle and at least two rescans more
    assert list(ingestd_env.states()) == ["real.wav"], ingestd_env.states()
    assert len(created(sandbox)) == 1
    assert daemon.stop() == 0
