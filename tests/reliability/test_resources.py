"""Resources: ffmpeg/ffprobe missing, a full disk, a locked or corrupt state database.

Each must give a clear error, lose nothing, and recover once the cause is gone. The full
disks are small tmpfs mounts (the tests run as root, as in CI); they are unmounted after.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingestd.testing import drop, wait_for

from .support import (
    TERMINAL,
    all_events,
    cli,
    created,
    created_by_sha,
    daemon_with_env,
    log_tail,
    rows_by_path,
    sha256,
    wait_terminal,
)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    """``small_disk("work", "2m")``: a tmpfs of that size mounted at tmp_path/work."""
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        point = tmp_path / name
        point.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"this test needs to mount a tmpfs: {result.stderr}"
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


def fill(disk: Path) -> Path:
    """Fill `disk` to the last byte with one file; return it (delete it to free the disk)."""
    filler = disk / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for chunk in (1 << 16, 1 << 10, 1):
            while True:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    return filler


def not_internal(error: str | None) -> bool:
    return bool(error) and "internal error" not in error and "Traceback" not in error


# -- ffmpeg and ffprobe -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "tool", "name"),
    [
        ("INGESTD_FFPROBE", "ffprobe", "needs-probe.mp3"),  # a plain wav needs no ffprobe
        ("INGESTD_FFMPEG", "ffmpeg", "to-wav.flac"),
    ],
)
def test_missing_ffmpeg_gives_a_clear_error_and_recovers(
    ingestd_env, sandbox, make_media, variable, tool, name
) -> None:
    """Without ffprobe/ffmpeg the error names the tool; once it is back the file is sent."""
    ingestd_env.write_config(pipeline={"max_attempts": 3, "retry_max_seconds": 0.5})
    missing = str(ingestd_env.root / "no-such-dir" / tool)
    daemon = daemon_with_env(ingestd_env, {variable: missing}).start()
    source = make_media(name)
    drop(source, ingestd_env.inbox)
    exited = daemon.process.poll

    def reported() -> bool:
        row = rows_by_path(ingestd_env).get(name, [{}])[-1]
        return exited() is not None or row.get("error") or row.get("state") in TERMINAL

    wait_for(reported, 30, f"the missing {tool} to be reported")
    if exited() is not None:  # refusing to start is a clear answer too
        text = daemon.log_text()
        assert exited() != 0 and tool in text and "Traceback" not in text, text
    else:
        time.sleep(1.0)
        row = rows_by_path(ingestd_env)[name][-1]
        assert tool in row["error"] and not_internal(row["error"]), row["error"]
        assert not created(sandbox)
        assert daemon.stop() == 0
    restarted = ingestd_env.daemon().start()  # the tool is back
    restarted.wait_ready()
    if ingestd_env.states().get(name) in ("failed", "rejected"):
        assert cli(ingestd_env, "retry").returncode == 0
    ingestd_env.wait_states({name: "done"})
    assert len(created(sandbox)) == 1
    assert restarted.stop() == 0


# -- full disks ---------------------------------------------------------------------------


def test_full_work_directory_waits_and_recovers(
    ingestd_env, sandbox, make_media, small_disk
) -> None:
    """A full work directory delays transcodes and insight files with a clear reason; once
    space is freed both finish, each sent once."""
    work = small_disk("work", "2m")
    ingestd_env.write_config(state={"work_dir": str(work)})
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    filler = fill(work)
    needs_transcode = make_media("big.flac", seconds=8)  # ~256 KB of wav to write
    as_is = make_media("small.wav", seconds=1)
    hashes = {"small.wav": sha256(as_is)}
    drop(needs_transcode, ingestd_env.inbox)
    drop(as_is, ingestd_env.inbox)

    def blocked() -> bool:
        rows = {r["relpath"]: r for r in ingestd_env.rows()}
        return all(r.get("error") for r in rows.values()) and len(rows) == 2

    wait_for(blocked, 30, "both recordings to hit the full disk")
    time.sleep(1.0)
    rows = {r["relpath"]: r for r in ingestd_env.rows()}
    assert {r["state"] for r in rows.values()}.isdisjoint({"failed", "rejected"}), rows
    for row in rows.values():
        assert not_internal(row["error"]) and "disk full" in row["error"].lower(), row["error"]
    filler.unlink()
    ingestd_env.wait_states({"big.flac": "done", "small.wav": "done"}, timeout=60)
    assert created_by_sha(sandbox)[hashes["small.wav"]] == 1
    assert len(created(sandbox)) == 2
    assert daemon.stop() == 0


def test_full_state_disk_is_loud_and_loses_nothing(
    ingestd_env, sandbox, make_media, small_disk
) -> None:
    """A full disk under the state database stops intake with a clear error; after space is
    freed (and a restart if the daemon stopped) every file is done, none twice."""
    state = small_disk("state", "1m")
    ingestd_env.state_db = state / "state.db"
    ingestd_env.write_config(state={"url": f"sqlite:///{state / 'state.db'}"})
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    drop(make_media("before.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"before.wav": "done"})
    filler = fill(state)
    files = [make_media(f"during-{i}.wav") for i in range(3)]
    hashes = {f.name: sha256(f) for f in files}
    for f in files:
        drop(f, ingestd_env.inbox)
    time.sleep(4.0)
    text = daemon.log_text()
    assert "Task exception was never retrieved" not in text, "an unhandled error:\n" + text
    said = [
        e
        for e in daemon.events()
        if e.get("level") in ("error", "critical") and "full" in str(e).lower()
    ]
    assert said, f"no clear error about the full state disk:\n{text[-3000:]}"
    filler.unlink()
    if daemon.process.poll() is not None:
        daemon = ingestd_env.daemon().start()
    states = wait_terminal(ingestd_env, hashes, timeout=60)
    assert set(states.values()) == {"done"}, states
    counts = created_by_sha(sandbox)
    assert all(counts[h] == 1 for h in hashes.values()), counts
    assert len(created(sandbox)) == 4, "the file done before was not sent again"
    with sqlite3.connect(ingestd_env.state_db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert daemon.stop() == 0


# -- the state database -------------------------------------------------------------------


def test_second_daemon_on_the_same_state_is_refused(ingestd_env, sandbox) -> None:
    """A second daemon on the same state database exits 69 naming the first one's pid."""
    first = ingestd_env.daemon().start()
    first.wait_ready()
    second = ingestd_env.daemon().start()
    code = second.process.wait(timeout=30)
    text = second.log_text()
    assert code == 69, text
    assert f"pid {first.process.pid}" in text and "Traceback" not in text, text
    assert first.process.poll() is None, "the first daemon is unaffected"
    assert first.stop() == 0


@pytest.mark.slow(seconds=35)
def test_state_database_locked_by_another_process(ingestd_env, sandbox, make_media) -> None:
    """An exclusive lock held longer than the busy timeout (30 s) on the state database is
    reported clearly; once released the file arriving meanwhile is done, once."""
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    release = threading.Event()
    locked = threading.Event()

    def hold_lock() -> None:
        conn = sqlite3.connect(ingestd_env.state_db, timeout=5, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        release.wait(60)
        conn.execute("ROLLBACK")
        conn.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(10)
        source = make_media("while-locked.wav")
        digest = sha256(source)
        drop(source, ingestd_env.inbox)
        time.sleep(32)  # longer than the daemon's 30 s busy timeout
    finally:
        release.set()
        holder.join()
    text = daemon.log_text()
    assert "Task exception was never retrieved" not in text, "an unhandled error:\n" + text
    assert any("locked" in str(e) for e in all_events(ingestd_env) if e.get("level") == "error"), (
        f"no error event saying the database is locked:\n{text[-3000:]}"
    )
    if daemon.process.poll() is not None:
        daemon = ingestd_env.daemon().start()
    wait_terminal(ingestd_env, ["while-locked.wav"], timeout=60)
    assert ingestd_env.states()["while-locked.wav"] == "done", log_tail(ingestd_env)
    assert created_by_sha(sandbox)[digest] == 1
    assert daemon.stop() == 0


def _garbage(db: Path) -> None:
    db.write_bytes(os.urandom(db.stat().st_size))


def _bad_pages(db: Path) -> None:
    """Keep the header page, scribble over the rest (a torn write on a bad disk)."""
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    data[page:] = os.urandom(len(data) - page)
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("corrupt", [_garbage, _bad_pages], ids=["garbage", "bad-pages"])
def test_corrupt_state_database_is_a_clear_error_and_kept(
    ingestd_env, sandbox, make_media, corrupt
) -> None:
    """A corrupt state database stops the daemon at once with exit 69 and one line naming the
    file, leaves it untouched, and a restored copy resumes without sending anything twice."""
    daemon = ingestd_env.daemon().start()
    drop(make_media("kept.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"kept.wav": "done"})
    assert daemon.stop() == 0
    db = ingestd_env.state_db
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file
    conn.close()
    backup = db.read_bytes()
    corrupt(db)
    damaged = db.read_bytes()
    broken = ingestd_env.daemon().start()
    code = broken.process.wait(timeout=30)
    text = broken.log_text().strip()
    assert code == 69, text
    assert "Traceback" not in text, text
    problem = [line for line in text.splitlines() if "ingestd:" in line]
    assert len(problem) == 1 and str(db) in problem[0], text
    assert db.read_bytes() == damaged, "the damaged database is left for the operator"
    db.write_bytes(backup)
    restored = ingestd_env.daemon().start()
    restored.wait_ready()
    drop(make_media("after.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"kept.wav": "done", "after.wav": "done"})
    assert len(created(sandbox)) == 2, "kept.wav was not sent again"
    assert restored.stop() == 0
