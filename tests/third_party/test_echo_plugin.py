"""The plugin API as a third party uses it: ingestd-echo, a distribution of its own under
``tests/third_party/ingestd-echo`` that scripts/setup pip-installs into the test venv.

ingestd finds it through its entry point only (it is imported from site-packages, never from
this tree), the YAML chooses its backend (``backend: echo``) and its sink, its own watch keys
are accepted and checked, its ``wrapper=True`` hooks and event hooks run inside the real
daemon, ``ingestd plugins`` lists it and ``disable_plugins`` turns it off. One daemon run
serves the ``test_hook_*`` tests of the hooks it implements.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingestd import mediagen
from ingestd.testing import IngestdEnv, run_cli

ROOT = Path(__file__).parents[2]
ECHO_HOOKS = [
    "ingestd_choose_endpoint",
    "ingestd_recording_done",
    "ingestd_recording_failed",
    "ingestd_register_backends",
    "ingestd_register_sinks",
    "ingestd_set_parameters",
    "ingestd_state_changed",
    "ingestd_transcode_plan",
    "ingestd_validate_watch",
    "ingestd_watch_keys",
]


def echo_config(env: IngestdEnv, **overrides: Any) -> dict[str, Any]:
    """The daemon pointed at the echo backend, delivering to the ledger and to files."""
    watch = {"echo_label": "proof", "echo_as_is": True, **overrides.pop("watch", {})}
    return env.config(
        backend="echo",
        echo={"url": "embedded", "job_seconds": 0.2, "max_concurrent_jobs": 2},
        watch=watch,
        sinks=[
            {"type": "ledger", "path": str(env.root / "ledger")},
            {"type": "files", "path": str(env.results)},
        ],
        **overrides,
    )


class Run:
    """What one daemon run with the echo plugin left behind."""

    def __init__(self, env: IngestdEnv, sources: dict[str, Path]) -> None:
        self.env = env
        self.sources = sources
        daemon = env.daemons[-1]
        self.events = daemon.events()
        self.ledger = {
            entry["name"]: entry
            for entry in (
                json.loads(p.read_text()) for p in sorted((env.root / "ledger").glob("*.json"))
            )
        }

    def of(self, event: str, **facts: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e.get("event") == event and all(e.get(k) == v for k, v in facts.items())
        ]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The daemon, with ``backend: echo``, on a wav, a flac and an empty file, until done."""
    root = tmp_path_factory.mktemp("echo")
    env = IngestdEnv(root, "sandbox")  # the symbl: section is there but not chosen
    staging = root / "staging"
    staging.mkdir()
    sources = {
        "call.wav": mediagen.make_audio(staging / "call.wav", seconds=1, frequency_hz=330),
        "memo.flac": mediagen.make_audio(staging / "memo.flac", seconds=1, frequency_hz=440),
    }
    sizes = {name: path.stat().st_size for name, path in sources.items()}
    env.config_path.write_text(json.dumps(echo_config(env)))
    daemon = env.daemon()
    try:
        daemon.start().wait_ready()
        for name, path in sources.items():
            path.rename(env.inbox / name)
        (env.inbox / "empty.wav").write_bytes(b"")
        env.wait_states({"call.wav": "done", "memo.flac": "done", "empty.wav": "rejected"})
        assert daemon.stop() == 0
        result = Run(env, {n: env.inbox / n for n in sources})
        result.sizes = sizes  # type: ignore[attr-defined]
        yield result
    finally:
        env.stop_all()


class TestInstalledLikeAnyPlugin:
    def test_it_is_imported_from_site_packages_not_the_tree(self) -> None:
        """The tests import the installed copy; the tree's folder is not on the path."""
        out = subprocess.run(
            [sys.executable, "-c", "import ingestd_echo; print(ingestd_echo.__file__)"],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        location = Path(out.stdout.strip())
        assert "site-packages" in location.parts
        assert not location.is_relative_to(ROOT / "tests")

    def test_ingestd_plugins_lists_it(self, tmp_path: Path) -> None:
        """`ingestd plugins` names it, its distribution and version, and its hooks."""
        out = subprocess.run(
            [sys.executable, "-m", "ingestd.cli", "plugins", "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        rows = {row["name"]: row for row in json.loads(out.stdout)}
        echo = rows["echo"]
        assert (echo["source"], echo["distribution"], echo["version"], echo["status"]) == (
            "entry point",
            "ingestd-echo",
            "1.0.0",
            "loaded",
        )
        assert echo["module"] == "ingestd_echo" and echo["hooks"] == ECHO_HOOKS

    def test_disabling_it_works(self, ingestd_env: IngestdEnv) -> None:
        """Disabled, it is listed as such and contributes nothing: its backend, sink and
        watch keys are unknown to `ingestd check`, each named with its line."""
        config = echo_config(ingestd_env, disable_plugins=["echo"])
        ingestd_env.config_path.write_text(json.dumps(config, indent=1))
        listed = run_cli(ingestd_env, "plugins", "--json")
        rows = {row["name"]: row for row in json.loads(listed.stdout)}
        assert rows["echo"]["status"] == "disabled" and rows["echo"]["hooks"] == []
        checked = run_cli(ingestd_env, "check")
        assert checked.returncode == 78
        problems = " ".join(checked.stderr.split())
        assert "watch[0].echo_label: unknown key" in problems
        assert "watch[0].echo_as_is: unknown key" in problems
        config["watch"][0] = {k: v for k, v in config["watch"][0].items() if "echo" not in k}
        ingestd_env.config_path.write_text(json.dumps(config, indent=1))
        problems = " ".join(run_cli(ingestd_env, "check").stderr.split())
        assert "sinks[0].type: unknown sink type 'ledger'" in problems
        config["sinks"] = config["sinks"][1:]
        ingestd_env.config_path.write_text(json.dumps(config, indent=1))
        problems = " ".join(run_cli(ingestd_env, "check").stderr.split())
        assert "backend: unknown backend 'echo'" in problems

    def test_disabled_it_is_not_even_imported(self, ingestd_env: IngestdEnv) -> None:
        """A disabled plugin's module is never loaded (a broken import cannot hurt)."""
        script = (
            "import sys; from ingestd.plugins import load_plugins; "
            "load_plugins(disabled=('echo',)); print('ingestd_echo' in sys.modules)"
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "False"


class TestTheDaemonWithIt:
    def test_hook_register_backends(self, run: Run) -> None:
        """``backend: echo`` selects the plugin's backend: both files went to the echo
        service, each heard with its exact bytes; the Symbl section was never used."""
        assert set(run.ledger) == {"proof: call", "proof: memo"}
        for name, stem in (("call.wav", "call"), ("memo.flac", "memo")):
            (heard,) = run.ledger[f"proof: {stem}"]["messages"]
            assert heard.startswith(f"heard {run.sizes[name]} bytes")  # type: ignore[attr-defined]
        assert run.of("daemon_starting")[0]["backend"] == "echo"

    def test_hook_register_sinks(self, run: Run) -> None:
        """The ``ledger`` sink type is chosen by ``type:`` and delivered beside ``files``."""
        entry = run.ledger["proof: call"]
        assert entry["parts"] == ["call.wav"]
        assert len(list(run.env.results.rglob("*.json"))) == 2

    def test_hook_watch_keys(self, run: Run) -> None:
        """Its own watch keys were accepted at start-up (the daemon ran with them)."""
        assert run.of("daemon_ready")

    def test_hook_validate_watch(self, ingestd_env: IngestdEnv) -> None:
        """A bad value of its watch key is its validator's message, with file and line."""
        config = echo_config(ingestd_env, watch={"echo_as_is": "sometimes"})
        ingestd_env.config_path.write_text(json.dumps(config, indent=1))
        checked = run_cli(ingestd_env, "check")
        assert checked.returncode == 78
        line = next(p for p in checked.stderr.splitlines() if "echo_as_is" in p).strip()
        assert line.startswith(f"{ingestd_env.config_path}:")
        assert line.endswith("watch[inbox].echo_as_is: expected true or false, got 'sometimes'")

    def test_hook_set_parameters(self, run: Run) -> None:
        """Its parameters hook ran after the bundled ones: the name carries the label."""
        assert {e["name"] for e in run.ledger.values()} == {"proof: call", "proof: memo"}

    def test_hook_transcode_plan(self, run: Run) -> None:
        """Its ``wrapper=True`` transcode hook replaced ffmpeg's plan for the flac: the
        original went as it is (the ledger heard the flac's own size above)."""
        transcoded = [
            e for e in run.of("state_changed", new="transcoded") if e.get("path") == "memo.flac"
        ]
        assert [e.get("transcode") for e in transcoded] == ["upload as is"]
        assert not run.of("transcode_started")

    def test_hook_choose_endpoint(self, run: Run) -> None:
        """Its ``wrapper=True`` endpoint hook saw every choice and passed it through."""
        seen = sorted((e["relpath"], e["endpoint"]) for e in run.of("echo_endpoint_chosen"))
        assert seen == [("call.wav", "audio"), ("memo.flac", "audio")]

    def test_hook_state_changed(self, run: Run) -> None:
        """Its state hook heard every change of every recording, from discovered (old
        None) to done or rejected, each change once and in order."""
        changes: dict[str, list[tuple[Any, str]]] = {}
        for e in run.of("echo_state_changed"):
            changes.setdefault(e["relpath"], []).append((e["old"], e["new"]))
        for name in ("call.wav", "memo.flac"):
            path = [new for _, new in changes[name]]
            assert path[0] == "discovered" and changes[name][0][0] is None
            assert path[-1] == "done" and len(path) == len(set(path))
            assert {"probed", "transcoded", "queued", "submitted", "delivering"} <= set(path)
        assert changes["empty.wav"] == [(None, "discovered"), ("discovered", "rejected")]

    def test_hook_recording_done(self, run: Run) -> None:
        """Once per recording that was delivered."""
        done = sorted(e["relpath"] for e in run.of("echo_recording_done"))
        assert done == ["call.wav", "memo.flac"]

    def test_hook_recording_failed(self, run: Run) -> None:
        """Once for the empty file, with the reason."""
        (failed,) = run.of("echo_recording_failed")
        assert failed["relpath"] == "empty.wav" and "is empty" in failed["error"]
