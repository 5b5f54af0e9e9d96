"""Log output for journald: one JSON event a line, no colour, unless stdout is a terminal."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import threading

from ingestd.testing import drop, wait_for


class TestNotATerminal:
    def test_every_line_is_one_json_event(self, ingestd_env, make_media) -> None:
        """logging.format auto with stdout on a file (as under systemd): every line of a run
        with a success, a rejection, a bad reload and a shutdown is one JSON object."""
        daemon = ingestd_env.daemon(logging={"format": "auto", "level": "debug"}).start()
        daemon.wait_ready()
        drop(make_media("call.wav", seconds=1), ingestd_env.inbox)
        broken = ingestd_env.root / "broken.mp3"
        broken.write_bytes(b"ID3 not an mp3\n\x1b[31m" * 50)
        drop(broken, ingestd_env.inbox)
        ingestd_env.wait_states({"call.wav": "done", "broken.mp3": "rejected"})
        good = ingestd_env.config_path.read_text()
        ingestd_env.config_path.write_text(good + "\nwatch: five\n")
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: daemon.has_event("config_reload_failed"), 10, "config_reload_failed")
        assert daemon.stop() == 0

        text = daemon.log_text()
        assert "\x1b" not in text, "no ANSI escapes when stdout is not a TTY"
        lines = text.splitlines()
        assert len(lines) > 20
        for line in lines:
            event = json.loads(line)  # fails the test on any non-JSON line (a traceback, ...)
            assert isinstance(event, dict)
            assert {"event", "level", "timestamp"} <= set(event), line
        events = [json.loads(line)["event"] for line in lines]
        for name in ("daemon_ready", "recording_finished", "config_reload_failed"):
            assert name in events
        assert events[-1] == "daemon_stopped"

    def test_state_changes_carry_the_recording_context(self, ingestd_env, make_media) -> None:
        """Every `state_changed` line of a run names the recording (id, watch, path); from
        `submitted` on also its conversation and job, so one grep follows a recording."""
        daemon = ingestd_env.daemon(watch={"name": "sales"}).start()
        daemon.wait_ready()
        drop(make_media("call.wav", seconds=1), ingestd_env.inbox / "team a")
        broken = ingestd_env.root / "broken.mp3"
        broken.write_bytes(b"ID3 not an mp3\n" * 50)
        drop(broken, ingestd_env.inbox)
        ingestd_env.wait_states({"team a/call.wav": "done", "broken.mp3": "rejected"})
        assert daemon.stop() == 0

        rows = {r["relpath"]: r for r in ingestd_env.rows()}
        changes = [e for e in daemon.events() if e["event"] == "state_changed"]
        for event in changes:
            row = rows[event.get("path")]
            assert (event.get("recording_id"), event.get("watch")) == (row["id"], "sales"), event
            if event["new"] in ("submitted", "fetching", "delivering", "done"):
                assert event.get("conversation_id") == row["conversation_id"], event
                assert event.get("job_id") == row["job_id"], event
        call = rows["team a/call.wav"]
        assert call["conversation_id"] and call["job_id"]
        seen = {(e["path"], e["new"]) for e in changes}
        for state in ("probed", "submitting", "submitted", "fetching", "delivering", "done"):
            assert ("team a/call.wav", state) in seen, state
        assert ("broken.mp3", "rejected") in seen


class TestTerminal:
    def test_console_with_colour_on_a_tty(self, ingestd_env) -> None:
        """The same setting on a terminal renders for people: colour, not JSON."""
        ingestd_env.write_config(logging={"format": "auto", "level": "info"})
        controller, terminal = pty.openpty()
        argv = [sys.executable, "-m", "ingestd.cli", "run", "--config"]
        process = subprocess.Popen(
            [*argv, str(ingestd_env.config_path)],
            stdout=terminal,
            stderr=terminal,
            env=os.environ.copy(),
        )
        os.close(terminal)
        chunks: list[bytes] = []

        def read() -> None:  # keep draining, or the daemon blocks on a full pty
            while True:
                try:
                    data = os.read(controller, 4096)
                except OSError:
                    return
                if not data:
                    return
                chunks.append(data)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            wait_for(lambda: b"daemon_ready" in b"".join(chunks), 30, "daemon_ready on the tty")
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
            reader.join(timeout=5)
            os.close(controller)
        output = b"".join(chunks).decode(errors="replace")
        assert "\x1b[" in output
        first = output.splitlines()[0]
        assert not first.lstrip().startswith("{")
