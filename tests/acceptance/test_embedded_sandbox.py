"""The demo setup: `symbl.base_url: sandbox` runs the emulator inside the daemon."""

from __future__ import annotations

import subprocess
import sys

from ingestd.testing import drop, wait_for


def embedded(env, watch=None, **sandbox):
    return env.daemon(
        symbl={"base_url": "sandbox", "sandbox": {"job_seconds": 0.5, **sandbox}},
        watch=watch or {},
    )


def test_embedded_sandbox_processes_a_file(ingestd_env, make_media) -> None:
    """With no account and no separate server, a dropped file still ends with results."""
    daemon = embedded(ingestd_env).start()
    daemon.wait_ready()
    drop(make_media("hello.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"hello.wav": "done"})
    assert list(ingestd_env.results.rglob("transcript.md"))
    assert daemon.stop() == 0


def test_restart_forgets_jobs_and_retry_resubmits(ingestd_env, make_media) -> None:
    """A job lost with an embedded sandbox's memory fails visibly; `ingestd retry` fixes it."""
    daemon = embedded(ingestd_env, job_seconds=30).start()
    daemon.wait_ready()
    drop(make_media("slow.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"slow.wav": "submitted"})
    daemon.kill()
    restarted = embedded(ingestd_env).start()
    ingestd_env.wait_states({"slow.wav": "failed"})
    row = ingestd_env.rows()[0]
    assert "does not know job" in row["error"] and "ingestd retry" in row["error"]
    subprocess.run(
        [sys.executable, "-m", "ingestd.cli", "retry", "--config", str(ingestd_env.config_path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    ingestd_env.wait_states({"slow.wav": "done"})
    wait_for(lambda: list(ingestd_env.results.rglob("insights.json")), 10, "results")
    assert restarted.stop() == 0


def test_retry_of_a_forgotten_first_part_posts_a_new_conversation(ingestd_env, make_media) -> None:
    """The first part of a folder conversation whose job the restarted sandbox forgot: the
    mapping to that conversation goes with it, so `ingestd retry` POSTs afresh and finishes
    (a PUT into the forgotten conversation would fail again)."""
    by_folder = {"conversation": {"by": "folder"}}
    daemon = embedded(ingestd_env, by_folder, job_seconds=30).start()
    daemon.wait_ready()
    drop(make_media("part1.wav"), ingestd_env.inbox / "meeting")
    ingestd_env.wait_states({"meeting/part1.wav": "submitted"})
    daemon.kill()
    restarted = embedded(ingestd_env, by_folder).start()
    ingestd_env.wait_states({"meeting/part1.wav": "failed"})
    forgotten = ingestd_env.rows()[0]["conversation_id"]
    assert ingestd_env.rows()[0]["conversation_key"] == "folder:inbox:meeting"
    subprocess.run(
        [sys.executable, "-m", "ingestd.cli", "retry", "--config", str(ingestd_env.config_path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    ingestd_env.wait_states({"meeting/part1.wav": "done"})
    assert ingestd_env.rows()[0]["conversation_id"] != forgotten
    assert restarted.stop() == 0


def test_made_up_insights_are_flagged_and_timed_to_the_media(ingestd_env, make_media) -> None:
    """Where a user meets the sandbox's insights they are flagged as made up: the daemon's
    start, the Markdown header, the JSON; and a 3 s recording gives a 3 s conversation."""
    import json

    daemon = ingestd_env.daemon(  # credentials other than the word "sandbox", which is masked
        symbl={"base_url": "sandbox", "app_id": "demo-app", "app_secret": "demo-secret-42"},
    ).start()
    daemon.wait_ready()
    started = next(e for e in daemon.events() if e["event"] == "sandbox_started")
    assert "made these insights up" in started["note"]
    drop(make_media("three.wav", seconds=3), ingestd_env.inbox)
    ingestd_env.wait_states({"three.wav": "done"})
    markdown = next(ingestd_env.results.rglob("transcript.md")).read_text()
    title, note = markdown.splitlines()[0], markdown.split("\n\n")[1]
    assert title == "# three"
    assert note.startswith("> **Note:** the ingestd sandbox, an emulator of the Symbl API, made")
    assert "not a transcript of what was said" in note
    assert "- Duration: 00:03" in markdown
    data = json.loads(next(ingestd_env.results.rglob("insights.json")).read_text())
    assert "made these insights up" in data["ingestd"]["notice"]
    assert daemon.stop() == 0


def test_results_from_a_real_service_carry_no_notice(ingestd_env, sandbox, make_media) -> None:
    """The notice comes from the backend: the symbl client (here against a sandbox URL, as a
    stand-in for the real API) has none."""
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    drop(make_media("plain.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"plain.wav": "done"})
    markdown = next(ingestd_env.results.rglob("transcript.md")).read_text()
    assert "**Note:**" not in markdown
    assert daemon.stop() == 0
