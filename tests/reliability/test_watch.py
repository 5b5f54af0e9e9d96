"""Watch limits: the polling observer, inotify limits and a queue overflow.

The inotify limits are provoked honestly and locally: the daemon runs in a user namespace of
its own (``unshare -U -r``) whose ``/proc/sys/user/max_inotify_*`` limits are lowered; the
system-wide ``fs.inotify`` settings are never touched. A queue overflow is provoked as it
happens in production, by a reader that falls behind: the daemon is paused (SIGSTOP) while
more events than ``fs.inotify.max_queued_events`` arrive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from ingestd.testing import drop

from .support import WrappedDaemon, all_events, created, sha256, wait_terminal


def in_user_namespace(limit: str, value: int) -> list[str]:
    """A command prefix: a new user namespace whose inotify `limit` is `value`."""
    script = f'echo {value} > /proc/sys/user/{limit} && exec "$@"'
    return ["unshare", "--user", "--map-root-user", "sh", "-c", script, "sh"]


def inotify_fds(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) == "anon_inode:inotify":
                count += 1
        except OSError:
            continue
    return count


def mentions(events: list[dict], *words: str) -> list[dict]:
    """Events whose text (paths aside: they hold the test's name) mentions every word."""
    found = []
    for event in events:
        text = str({k: v for k, v in event.items() if k not in ("path", "folder")}).lower()
        if all(w.lower() in text for w in words):
            found.append(event)
    return found


def test_polling_observer_for_network_shares(ingestd_env, sandbox, make_media) -> None:
    """With `polling: true` files are found by polling alone (no inotify), nested ones too."""
    daemon = ingestd_env.daemon(watch={"polling": True, "poll_interval_seconds": 0.5}).start()
    daemon.wait_ready()
    assert daemon.has_event("watch_started", mode="polling")
    assert inotify_fds(daemon.process.pid) == 0, "no inotify watch on a network share"
    drop(make_media("share.wav"), ingestd_env.inbox)
    drop(make_media("deep.wav"), ingestd_env.inbox / "team" / "2024")
    ingestd_env.wait_states({"share.wav": "done", "team/2024/deep.wav": "done"})
    assert len(created(sandbox)) == 2
    assert daemon.stop() == 0


def test_no_inotify_instance_left_falls_back_to_polling(ingestd_env, sandbox, make_media) -> None:
    """When inotify cannot be started (instance limit) the watch polls, and says so."""
    ingestd_env.write_config(watch={"poll_interval_seconds": 0.5})
    daemon = WrappedDaemon(ingestd_env, in_user_namespace("max_inotify_instances", 0)).start()
    daemon.wait_ready()
    assert daemon.has_event("watch_native_failed")
    assert daemon.has_event("watch_started", mode="polling")
    drop(make_media("fallback.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"fallback.wav": "done"})
    assert daemon.stop() == 0


def test_watch_limit_on_subfolders_is_reported_and_covered(
    ingestd_env, sandbox, make_media
) -> None:
    """Sub-folders that cannot be watched (watch limit) are still served, and it is said."""
    for name in ("a", "b", "c", "d"):
        (ingestd_env.inbox / name).mkdir()
    ingestd_env.write_config(pipeline={"rescan_interval_seconds": 300})
    daemon = WrappedDaemon(ingestd_env, in_user_namespace("max_inotify_watches", 2)).start()
    daemon.wait_ready()
    names = [f"{folder}/in-{folder}.wav" for folder in ("a", "b", "c", "d")]
    for name in names:
        folder, file = name.split("/")
        drop(make_media(file), ingestd_env.inbox / folder)
    states = wait_terminal_or_timeout(ingestd_env, names, 10)
    events = all_events(ingestd_env)
    said = mentions(events, "max_user_watches")
    assert said, "the daemon said nothing about the inotify watch limit"
    assert set(states.values()) == {"done"}, f"unwatched folders were not served: {states}"
    assert daemon.stop() == 0


def test_event_queue_overflow_triggers_a_rescan(ingestd_env, sandbox, make_media) -> None:
    """Events lost to an inotify queue overflow are made up by a prompt rescan that is logged."""
    daemon = ingestd_env.daemon(pipeline={"rescan_interval_seconds": 300}).start()
    daemon.wait_ready()
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    files = [make_media(f"lost-{i}.wav") for i in range(5)]
    hashes = {f.name: sha256(f) for f in files}
    daemon.process.send_signal(signal.SIGSTOP)  # a reader that falls behind
    try:
        junk = [ingestd_env.inbox / ".flood-a.tmp", ingestd_env.inbox / ".flood-b.tmp"]
        for i in range(limit // 2 + 2000):  # >= 2 events per write: queue overflows
            with open(junk[i % 2], "ab") as handle:
                handle.write(b"x")
        for f in files:  # their events are dropped: the queue is full
            drop(f, ingestd_env.inbox)
    finally:
        daemon.process.send_signal(signal.SIGCONT)
    started = time.monotonic()
    states = wait_terminal_or_timeout(ingestd_env, hashes, 10)
    took = time.monotonic() - started
    events = daemon.events()
    assert mentions(events, "overflow"), "the daemon logged no event about the overflow"
    assert set(states.values()) == {"done"} and len(states) == 5, (
        f"after {took:.0f} s only {states} (rescan_interval_seconds is 300)"
    )
    assert daemon.stop() == 0


def wait_terminal_or_timeout(env, names, timeout: float) -> dict[str, str]:
    """Like `wait_terminal`, but return what there is after `timeout` instead of failing."""
    with contextlib.suppress(AssertionError):
        wait_terminal(env, names, timeout)
    states = env.states()
    return {n: states.get(n, "missing") for n in names}
