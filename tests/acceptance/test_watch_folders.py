"""Watch folders that do not exist, or vanish while the daemon runs (issue 15, point 2)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import yaml

from ingestd.folders import folder_problem
from ingestd.testing import DaemonProcess, drop, run_cli, wait_for


def health(base: str) -> tuple[int, dict]:
    answer = httpx.get(f"{base}/health", timeout=10)
    return answer.status_code, answer.json()


class TestAtStart:
    def test_run_refuses_missing_folders_naming_each(self, ingestd_env) -> None:
        """Two watches on folders that do not exist: `run` exits 78 naming both paths and
        the fix, before anything starts; nothing is created."""
        typo = ingestd_env.root / "inbx"
        share = ingestd_env.root / "mnt" / "share"
        config = ingestd_env.config(watch={"path": str(typo)})
        config["watch"].append({"name": "share", "path": str(share)})
        ingestd_env.config_path.write_text(yaml.safe_dump(config))
        result = run_cli(ingestd_env, "run", timeout=60)
        assert result.returncode == 78, result.stdout + result.stderr
        assert f"the folder {typo} does not exist" in result.stderr
        assert f"the folder {share} does not exist" in result.stderr
        assert "create: true" in result.stderr
        assert "Traceback" not in result.stderr
        assert not typo.exists() and not share.exists()

    def test_create_true_makes_the_folder(self, ingestd_env, make_media) -> None:
        """With ``create: true`` the missing folder is made and watched."""
        folder = ingestd_env.root / "new" / "inbox"
        daemon = ingestd_env.daemon(watch={"path": str(folder), "create": True}).start()
        daemon.wait_ready()
        assert folder.is_dir()
        drop(make_media("a.wav"), folder)
        ingestd_env.wait_states({"a.wav": "done"})
        assert daemon.stop() == 0


class TestWhileRunning:
    def test_a_vanished_folder_is_reported_and_watched_again(self, ingestd_env, make_media) -> None:
        """Renamed away, then deleted: each time ``watch_folder_missing`` is logged, /health
        answers 503 naming it, `status` shows it; when the folder is back it is watched
        and rescanned: a file that arrived meanwhile and one dropped afterwards are done."""
        ingestd_env.write_config(metrics={"listen": "127.0.0.1:0"})
        daemon = DaemonProcess(
            ingestd_env.config_path,
            ingestd_env.root / "daemon.log",
            env={"INGESTD_FOLDER_CHECK_SECONDS": "0.2"},
        )
        ingestd_env.daemons.append(daemon)
        daemon.start().wait_ready()
        metrics = daemon.url_of("metrics_listening")
        inbox, away = ingestd_env.inbox, ingestd_env.root / "inbox.away"
        assert health(metrics)[0] == 200

        os.rename(inbox, away)
        wait_for(lambda: daemon.has_event("watch_folder_missing"), 30, "watch_folder_missing")
        status, document = health(metrics)
        assert status == 503 and document["status"] == "watch_folder_missing"
        assert document["missing_watch_folders"] == {"inbox": "does not exist"}
        shown = run_cli(ingestd_env, "status")
        assert shown.returncode == 0, shown.stderr
        assert f"inbox: {inbox} does not exist" in shown.stdout
        listed = json.loads(run_cli(ingestd_env, "status", "--json").stdout)
        assert listed["missing_watch_folders"][0]["watch"] == "inbox"
        drop(make_media("meanwhile.wav"), away)

        os.rename(away, inbox)
        wait_for(lambda: daemon.has_event("watch_folder_back"), 30, "watch_folder_back")
        wait_for(lambda: health(metrics)[0] == 200, 30, "/health to be ok again")
        drop(make_media("after.wav"), inbox)
        ingestd_env.wait_states({"meanwhile.wav": "done", "after.wav": "done"})

        for path in inbox.iterdir():
            path.unlink()
        inbox.rmdir()
        wait_for(
            lambda: sum(e.get("event") == "watch_folder_missing" for e in daemon.events()) == 2,
            30,
            "the second watch_folder_missing",
        )
        assert health(metrics)[0] == 503
        inbox.mkdir()
        wait_for(
            lambda: sum(e.get("event") == "watch_folder_back" for e in daemon.events()) == 2,
            30,
            "the second watch_folder_back",
        )
        drop(make_media("recreated.wav"), inbox)
        ingestd_env.wait_states({"recreated.wav": "done"})
        assert health(metrics)[0] == 200
        assert "watch folders missing" not in run_cli(ingestd_env, "status").stdout
        assert not daemon.has_event("watcher_dead")
        assert daemon.stop() == 0


def test_a_folder_replaced_between_two_looks_is_watched_anew(ingestd_env, make_media) -> None:
    """Renamed away and made anew faster than the daemon looks: the old folder's events are
    lost, so the new folder is watched (``watch_folder_replaced``) and a file dropped into
    it is processed without waiting for the periodic rescan."""
    ingestd_env.write_config(pipeline={"rescan_interval_seconds": 600})
    daemon = DaemonProcess(
        ingestd_env.config_path,
        ingestd_env.root / "daemon.log",
        env={"INGESTD_FOLDER_CHECK_SECONDS": "3"},
    )
    ingestd_env.daemons.append(daemon)
    daemon.start().wait_ready()
    os.rename(ingestd_env.inbox, ingestd_env.root / "old-inbox")
    ingestd_env.inbox.mkdir()
    wait_for(lambda: daemon.has_event("watch_folder_replaced"), 30, "watch_folder_replaced")
    assert not daemon.has_event("watch_folder_missing")
    drop(make_media("new.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"new.wav": "done"}, timeout=60)
    assert daemon.stop() == 0


def test_an_unmounted_share_is_no_folder_to_watch(tmp_path: Path) -> None:
    """The mount point an unmounted share leaves is reported (no mount needed to test the
    rule: a folder that was a mount point and is not any more)."""
    assert folder_problem(tmp_path, was_mount=True) == (
        "is no longer a mount point (the share was unmounted)"
    )
    assert folder_problem(Path("/"), was_mount=True) is None
    assert folder_problem(tmp_path / "nope") == "does not exist"
    (tmp_path / "file").write_text("x")
    assert folder_problem(tmp_path / "file") == "is not a folder"


def test_an_unmounted_share_is_missing_until_mounted_again(ingestd_env, make_media) -> None:
    """A real mount (tmpfs, standing in for a network share) on the watch folder: unmounted
    while the daemon runs, the bare mount point is reported missing; mounted again, a file
    dropped into it is processed. Needs root (mount), as the test machines run."""
    import subprocess

    inbox = ingestd_env.inbox

    def mount() -> None:
        done = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(inbox)], capture_output=True)
        assert done.returncode == 0, f"this test needs mount (root): {done.stderr!r}"

    mount()
    try:
        ingestd_env.write_config(metrics={"listen": "127.0.0.1:0"})
        daemon = DaemonProcess(
            ingestd_env.config_path,
            ingestd_env.root / "daemon.log",
            env={"INGESTD_FOLDER_CHECK_SECONDS": "0.2"},
        )
        ingestd_env.daemons.append(daemon)
        daemon.start().wait_ready()
        metrics = daemon.url_of("metrics_listening")
        subprocess.run(["umount", str(inbox)], check=True)
        wait_for(lambda: daemon.has_event("watch_folder_missing"), 30, "watch_folder_missing")
        status, document = health(metrics)
        assert status == 503
        assert document["missing_watch_folders"] == {
            "inbox": "is no longer a mount point (the share was unmounted)"
        }
        mount()
        wait_for(lambda: daemon.has_event("watch_folder_back"), 30, "watch_folder_back")
        staged = inbox / "remounted.wav.part"  # another file system: copy, then rename
        shutil.copyfile(make_media("remounted.wav"), staged)
        os.replace(staged, inbox / "remounted.wav")
        ingestd_env.wait_states({"remounted.wav": "done"})
        assert daemon.stop() == 0
    finally:
        subprocess.run(["umount", str(inbox)], capture_output=True)
