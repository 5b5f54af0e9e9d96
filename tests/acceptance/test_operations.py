"""Operator commands against a real daemon: retry, redeliver, map, status, reload."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from ingestd.testing import drop, run_cli, wait_for

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "config" / "example.yaml"


cli = run_cli


def created(sandbox) -> list[dict]:
    return [s for s in sandbox.submissions() if s["created"]]


class TestRedeliver:
    def test_redeliver_rewrites_results_without_resubmitting(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """`ingestd redeliver` writes a conversation's results again; nothing is uploaded."""
        daemon = ingestd_env.daemon().start()
        daemon.wait_ready()
        drop(make_media("a.wav"), ingestd_env.inbox)
        ingestd_env.wait_states({"a.wav": "done"})
        conversation_id = ingestd_env.rows()[0]["conversation_id"]
        written = next(ingestd_env.results.rglob("insights.json"))
        written.unlink()
        result = cli(ingestd_env, "redeliver", conversation_id)
        assert result.returncode == 0, result.stderr
        wait_for(written.exists, 30, "the redelivered insights.json")
        assert len(created(sandbox)) == 1
        daemon.stop()

    def test_redeliver_unknown_sink_is_a_clear_error(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """Naming a sink that is not configured is a usage error (exit 2, not 78: the config
        file is fine) and says which sinks exist."""
        daemon = ingestd_env.daemon().start()
        daemon.wait_ready()
        drop(make_media("a.wav"), ingestd_env.inbox)
        ingestd_env.wait_states({"a.wav": "done"})
        daemon.stop()
        result = cli(ingestd_env, "redeliver", "123", "--sink", "nope")
        assert result.returncode == 2
        assert "no sink named 'nope'" in result.stderr and "files" in result.stderr


class TestMap:
    def test_map_set_routes_the_next_part_into_an_existing_conversation(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """A key set with `ingestd map set` makes that folder's parts append to the given id."""
        daemon = ingestd_env.daemon(watch={"conversation": {"by": "folder"}}).start()
        daemon.wait_ready()
        drop(make_media("one.wav"), ingestd_env.inbox / "first")
        ingestd_env.wait_states({"first/one.wav": "done"})
        existing = ingestd_env.rows()[0]["conversation_id"]
        listing = cli(ingestd_env, "map", "--json")
        assert [m["conversation_id"] for m in json.loads(listing.stdout)] == [existing]
        key = f"folder:{ingestd_env.inbox.name}:second"
        assert cli(ingestd_env, "map", "set", key, existing).returncode == 0
        drop(make_media("two.wav"), ingestd_env.inbox / "second")
        ingestd_env.wait_states({"second/two.wav": "done"})
        subs = sorted(created(sandbox), key=lambda s: s["seq"])
        assert [s["method"] for s in subs] == ["POST", "PUT"]
        assert subs[1]["conversationId"] == existing
        daemon.stop()

    def test_map_delete_starts_a_new_conversation_for_the_key(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """`ingestd map delete KEY` forgets a mapping: the folder's next part is a new
        conversation; deleting it again says there is no such key."""
        daemon = ingestd_env.daemon(watch={"conversation": {"by": "folder"}}).start()
        daemon.wait_ready()
        drop(make_media("one.wav"), ingestd_env.inbox / "weekly")
        ingestd_env.wait_states({"weekly/one.wav": "done"})
        key = f"folder:{ingestd_env.inbox.name}:weekly"
        first = ingestd_env.rows()[0]["conversation_id"]
        listing = json.loads(cli(ingestd_env, "map", "--json").stdout)
        assert [(m["key"], m["conversation_id"]) for m in listing] == [(key, first)]
        deleted = cli(ingestd_env, "map", "delete", key)
        assert deleted.returncode == 0, deleted.stderr
        assert deleted.stdout == (
            f"{key}: removed; the next recording with this key starts a new conversation\n"
        )
        assert json.loads(cli(ingestd_env, "map", "--json").stdout) == []
        again = cli(ingestd_env, "map", "delete", key)
        assert again.returncode == 1
        assert again.stderr == f"ingestd: no mapping for key {key!r}\n"
        drop(make_media("two.wav"), ingestd_env.inbox / "weekly")
        ingestd_env.wait_states({"weekly/two.wav": "done"})
        subs = sorted(created(sandbox), key=lambda s: s["seq"])
        assert [s["method"] for s in subs] == ["POST", "POST"]
        second = ingestd_env.rows()[1]["conversation_id"]
        assert subs[1]["conversationId"] == second != first
        listing = json.loads(cli(ingestd_env, "map", "--json").stdout)
        assert [(m["key"], m["conversation_id"]) for m in listing] == [(key, second)]
        assert daemon.stop() == 0


class TestStatus:
    def test_status_json_counts_and_deliveries(self, ingestd_env, sandbox, make_media) -> None:
        """`status --json` reports counts by state and per-sink delivery counts."""
        daemon = ingestd_env.daemon().start()
        daemon.wait_ready()
        drop(make_media("a.wav"), ingestd_env.inbox)
        (ingestd_env.inbox / "empty.mp3").write_bytes(b"")
        ingestd_env.wait_states({"a.wav": "done", "empty.mp3": "rejected"})
        data = json.loads(cli(ingestd_env, "status", "--json").stdout)
        assert data["counts"]["done"] == 1 and data["counts"]["rejected"] == 1
        assert data["deliveries"] == {"files": {"pending": 0, "done": 1, "failed": 0}}
        assert data["failures"][0]["path"] == "empty.mp3"
        daemon.stop()


class TestReload:
    def test_sighup_adds_and_removes_watches(self, ingestd_env, sandbox, make_media) -> None:
        """SIGHUP starts a newly configured watch and stops a removed one, losing nothing."""
        daemon = ingestd_env.daemon().start()
        daemon.wait_ready()
        second = ingestd_env.root / "second-inbox"
        second.mkdir()  # a watch folder must exist (or say create: true)
        config = yaml.safe_load(ingestd_env.config_path.read_text())
        config["watch"].append({**config["watch"][0], "path": str(second), "name": "second"})
        ingestd_env.config_path.write_text(yaml.safe_dump(config))
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: daemon.has_event("config_reloaded"), 30, "config_reloaded")
        drop(make_media("b.wav"), second)
        ingestd_env.wait_states({"b.wav": "done"})
        config["watch"] = config["watch"][1:]  # remove the first watch
        ingestd_env.config_path.write_text(yaml.safe_dump(config))
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(
            lambda: len([e for e in daemon.events() if e["event"] == "config_reloaded"]) == 2,
            30,
            "second reload",
        )
        drop(make_media("ignored.wav"), ingestd_env.inbox)
        drop(make_media("c.wav"), second)
        ingestd_env.wait_states({"c.wav": "done"})
        assert "ignored.wav" not in ingestd_env.states()
        assert daemon.stop() == 0

    def test_bad_config_on_sighup_keeps_running(self, ingestd_env, sandbox, make_media) -> None:
        """A broken YAML on reload is reported and the running configuration stays."""
        daemon = ingestd_env.daemon().start()
        daemon.wait_ready()
        good = ingestd_env.config_path.read_text()
        ingestd_env.config_path.write_text(good + "\nnot_a_key: 1\n")
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: daemon.has_event("config_reload_failed"), 30, "config_reload_failed")
        failed = next(e for e in daemon.events() if e["event"] == "config_reload_failed")
        assert any("not_a_key: unknown key" in p for p in failed["problems"])
        drop(make_media("still.wav"), ingestd_env.inbox)
        ingestd_env.wait_states({"still.wav": "done"})
        assert daemon.stop() == 0


def test_run_with_bad_config_exits_78_without_traceback(tmp_path: Path) -> None:
    """A bad config stops `ingestd run` with exit 78 and one line per problem, no traceback."""
    config = tmp_path / "bad.yaml"
    config.write_text("symbl: {base_url: sandbox}\nwatch: [{path: in, settle_seconds: x}]\n")
    result = subprocess.run(
        [sys.executable, "-m", "ingestd.cli", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 78
    assert "watch[0].settle_seconds: expected a number" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


class TestCheck:
    def test_check_accepts_good_credentials(self, ingestd_env) -> None:
        """`ingestd check` lists the plugins and proves the credentials against the API."""
        ingestd_env.write_config()
        result = cli(ingestd_env, "check")
        assert result.returncode == 0, result.stderr
        assert "symbl        entry point" in result.stdout
        assert "credentials accepted" in result.stdout

    def test_check_accepts_the_example_config(self, tmp_path: Path) -> None:
        """config/example.yaml, as shipped, passes `ingestd check` against its embedded
        sandbox (copied, so its ../demo paths land in a temporary folder)."""
        (tmp_path / "config").mkdir()
        shutil.copy(EXAMPLE_CONFIG, tmp_path / "config" / "example.yaml")
        result = subprocess.run(
            [sys.executable, "-m", "ingestd.cli", "check", "--config", "config/example.yaml"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr + result.stdout
        config = tmp_path / "config" / "example.yaml"
        assert f"config: {config}: ok (1 watch, sinks: files)" in result.stdout
        assert "api: sandbox (embedded emulator at " in result.stdout
        assert "credentials accepted; its insights are made up" in result.stdout

    def test_check_rejects_bad_credentials_without_printing_them(self, ingestd_env) -> None:
        """Wrong credentials fail `check` with a clear message that never shows the secret."""
        ingestd_env.write_config(symbl={"app_secret": "wrong-secret-0xC0FFEE"})
        result = cli(ingestd_env, "check")
        assert result.returncode != 0
        assert "app id" in (result.stderr + result.stdout).lower()
        assert "0xC0FFEE" not in result.stderr + result.stdout


def test_plugins_json_lists_bundled_plugins() -> None:
    """`ingestd plugins --json` shows every bundled plugin as an entry point."""
    result = subprocess.run(
        [sys.executable, "-m", "ingestd.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    for name in ("ffmpeg", "symbl", "files", "routing", "mapping"):
        assert rows[name]["source"] == "entry point"
        assert rows[name]["status"] == "loaded"
    hooks = {
        "ffmpeg": {"ingestd_accept", "ingestd_probe", "ingestd_transcode_plan"},
        "routing": {"ingestd_choose_endpoint", "ingestd_set_parameters"},
        "mapping": {"ingestd_conversation_key"},
        "symbl": {"ingestd_register_backends"},
        "files": {"ingestd_register_sinks"},
        "database": {"ingestd_register_sinks"},
        "slack": {"ingestd_register_sinks"},
    }
    for name, expected in hooks.items():
        assert expected <= set(rows[name]["hooks"]), (name, rows[name]["hooks"])
    assert "ingestd_probe" not in rows["routing"]["hooks"], "only the hooks it implements"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sandbox_command_serves_the_api_and_stops_on_sigterm() -> None:
    """`ingestd sandbox --port N` serves the token route on that port; SIGTERM exits 0."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ingestd.cli", "sandbox", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = process.stdout.readline()
        assert banner.startswith(f"Symbl sandbox on http://127.0.0.1:{port} "), banner
        url = f"http://127.0.0.1:{port}/oauth2/token:generate"
        body = {"type": "application", "appId": "sandbox", "appSecret": "sandbox"}
        answer = httpx.post(url, json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        token = answer.json()
        assert isinstance(token["accessToken"], str) and token["accessToken"]
        assert token["expiresIn"] == 86400
        wrong = httpx.post(url, json={**body, "appSecret": "nope"}, timeout=10)
        assert wrong.status_code == 401
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
