"""Replace a rejected file in place, as its message advises, then `ingestd retry`.

Whatever the order (retry before or after the daemon saw the new content) and whether the
daemon runs or not, the new content is uploaded exactly once, under its own fingerprint,
and the rejected row ends `dismissed` instead of being re-queued with the old one's facts.
Uploads are counted at the sandbox, which lives in the test process.
"""

from __future__ import annotations

import shutil

import pytest

from ingestd.testing import wait_for

from .support import cli, created, created_by_sha, results, sha256

NAME = "call.wav"
SLOW_SETTLE = 8.0
"""Settle window when the test must act before the daemon records the replacement."""


def reject_text_file(env, settle: float) -> tuple[object, dict]:
    """Start a daemon, drop a text file named like a wav, wait for its rejection."""
    daemon = env.daemon(watch={"settle_seconds": settle}).start()
    daemon.wait_ready()
    staged = env.root / "notes.txt"
    staged.write_text("meeting notes, not a recording\n" * 50)
    shutil.copyfile(staged, env.inbox / NAME)
    env.wait_states({NAME: "rejected"}, timeout=60)
    [row] = env.rows()
    return daemon, row


def replace_in_place(env, make_media) -> str:
    """Overwrite the rejected file with a real recording (cp over it); its hash."""
    wav = make_media("real.wav", seconds=2)
    shutil.copyfile(wav, env.inbox / NAME)
    return sha256(env.inbox / NAME)


def versions(env) -> list[dict]:
    return [r for r in env.rows() if r["relpath"] == NAME]


def assert_uploaded_once(env, sandbox, rejected: dict, digest: str) -> None:
    """One upload in all, of the new content; the old row dismissed; the result's own hash."""
    wait_for(
        lambda: [r["state"] for r in versions(env)] == ["dismissed", "done"],
        60,
        f"the old row dismissed and the new content done (rows: {versions(env)})",
    )
    old, new = versions(env)
    assert old["id"] == rejected["id"] and old["sha256"] == rejected["sha256"]
    assert new["sha256"] == digest
    assert created_by_sha(sandbox) == {digest: 1}, created(sandbox)
    [result] = results(env).values()
    [part] = result["ingestd"]["parts"]
    assert (part["sha256"], part["size_bytes"]) == (digest, (env.inbox / NAME).stat().st_size)


class TestDaemonRunning:
    def test_retry_after_the_daemon_recorded_the_replacement(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """The new content is already a recording: retry re-queues nothing."""
        daemon, rejected = reject_text_file(ingestd_env, settle=0.5)
        digest = replace_in_place(ingestd_env, make_media)
        wait_for(lambda: len(versions(ingestd_env)) == 2, 30, "the replacement recorded")
        retried = cli(ingestd_env, "retry")
        assert retried.returncode == 0, retried.stderr
        assert "0 recordings re-queued" in retried.stdout, retried.stdout
        assert_uploaded_once(ingestd_env, sandbox, rejected, digest)
        status = cli(ingestd_env, "status")
        assert "latest failures" not in status.stdout, "a replaced file needs nobody"
        assert daemon.stop() == 0

    @pytest.mark.slow(seconds=18)
    def test_retry_before_the_daemon_recorded_the_replacement(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """Retry finds the file replaced and dismisses the old row; the daemon then records
        the new content once it settles, and uploads it once."""
        daemon, rejected = reject_text_file(ingestd_env, settle=SLOW_SETTLE)
        digest = replace_in_place(ingestd_env, make_media)
        retried = cli(ingestd_env, "retry")
        assert retried.returncode == 0, retried.stderr
        assert len(versions(ingestd_env)) == 1, "the test was too slow: the daemon was first"
        assert f"#{rejected['id']} {NAME}: rejected -> dismissed" in retried.stdout
        assert "was replaced" in retried.stdout and "0 recordings re-queued" in retried.stdout
        assert_uploaded_once(ingestd_env, sandbox, rejected, digest)
        assert daemon.stop() == 0


class TestDaemonStopped:
    def test_retry_before_the_daemon_saw_the_replacement(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """Replaced and retried while no daemon runs: the next start uploads it once."""
        daemon, rejected = reject_text_file(ingestd_env, settle=0.5)
        assert daemon.stop() == 0
        digest = replace_in_place(ingestd_env, make_media)
        retried = cli(ingestd_env, "retry")
        assert retried.returncode == 0, retried.stderr
        assert "rejected -> dismissed" in retried.stdout, retried.stdout
        ingestd_env.daemon().start().wait_ready()
        assert_uploaded_once(ingestd_env, sandbox, rejected, digest)

    def test_retry_after_the_daemon_saw_the_replacement(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """Replaced while stopped, seen at the next start, retried while stopped again: the
        third start uploads nothing more."""
        daemon, rejected = reject_text_file(ingestd_env, settle=0.5)
        assert daemon.stop() == 0
        digest = replace_in_place(ingestd_env, make_media)
        second = ingestd_env.daemon().start()
        second.wait_ready()
        assert_uploaded_once(ingestd_env, sandbox, rejected, digest)
        assert second.stop() == 0
        retried = cli(ingestd_env, "retry", str(rejected["id"]))
        assert retried.returncode == 0, retried.stderr
        assert "0 recordings re-queued" in retried.stdout, retried.stdout
        third = ingestd_env.daemon().start()
        third.wait_ready()
        wait_for(lambda: third.has_event("rescan_finished"), 30, "the start-up rescan")
        assert_uploaded_once(ingestd_env, sandbox, rejected, digest)
        assert third.stop() == 0


class TestFileGone:
    def test_retry_of_a_deleted_file_says_so(self, ingestd_env, sandbox) -> None:
        """A rejected file deleted since is dismissed by retry, saying it is gone."""
        daemon, rejected = reject_text_file(ingestd_env, settle=0.5)
        (ingestd_env.inbox / NAME).unlink()
        retried = cli(ingestd_env, "retry")
        assert retried.returncode == 0, retried.stderr
        assert f"#{rejected['id']} {NAME}: rejected -> dismissed: {NAME} was deleted" in (
            retried.stdout
        )
        assert [r["state"] for r in versions(ingestd_env)] == ["dismissed"]
        assert not created(sandbox)
        assert daemon.stop() == 0
