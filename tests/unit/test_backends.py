"""Choosing the backend by name (``backend:``), its options from its own section, and the
optional parts of the Backend contract the core asks for by name."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from ingestd.backends import DEFAULT_JOB_LIMIT, build_backend, check_backend, job_limit
from ingestd.configload import parse_config
from ingestd.errors import ConfigError, UnknownJob
from ingestd.lifecycle import State
from ingestd.pipeline import Pipeline
from ingestd.plugins import load_plugins
from ingestd.sandbox import Sandbox
from ingestd.store import SqliteStore
from ingestd.testing import IngestdEnv, run_cli, wait_for
from ingestd_symbl.client import SymblClient
from ingestd_symbl.sandbox_backend import SandboxClient
from tests.symbl.conftest import make_client

MIRROR_PLUGIN = """\
from ingestd import hookimpl


class Mirror:
    name = "mirror"

    def __init__(self, options):
        self.options = dict(options)

    async def aclose(self):
        pass


@hookimpl
def ingestd_register_backends(register):
    register("mirror", lambda options, state_dir: Mirror(options))
"""


@pytest.fixture
def mirror_plugins(tmp_path: Path) -> Any:
    plugin = tmp_path / "mirror_backend.py"
    plugin.write_text(MIRROR_PLUGIN)
    return load_plugins((str(plugin),))


def config(tmp_path: Path, text: str) -> Any:
    return parse_config(text + f"watch: [{{path: {tmp_path}}}]\n", source="i.yaml", base=tmp_path)


class TestSelection:
    def test_the_default_backend_is_symbl(self, tmp_path: Path) -> None:
        """Without ``backend:``, the symbl backend is chosen with the ``symbl:`` section."""
        loaded = config(tmp_path, "symbl: {base_url: sandbox, max_concurrent_jobs: 3}\n")
        assert loaded.backend == "symbl"
        assert loaded.backend_options == {"base_url": "sandbox", "max_concurrent_jobs": 3}

    def test_a_plugins_backend_reads_its_own_section(
        self, tmp_path: Path, mirror_plugins: Any
    ) -> None:
        """``backend: mirror`` builds the plugin's backend from ``mirror:``; the ``symbl:``
        section of a registered backend that is not chosen is allowed and not used."""
        loaded = config(
            tmp_path,
            "backend: mirror\nmirror: {greeting: hi}\nsymbl: {base_url: https://api.symbl.ai}\n",
        )
        backend = build_backend(loaded, mirror_plugins)
        assert (backend.name, backend.options) == ("mirror", {"greeting": "hi"})

    def test_a_chosen_backend_without_a_section_gets_no_options(
        self, tmp_path: Path, mirror_plugins: Any
    ) -> None:
        """A backend that needs no options needs no section."""
        backend = build_backend(config(tmp_path, "backend: mirror\n"), mirror_plugins)
        assert backend.options == {}

    def test_an_unknown_backend_gets_a_did_you_mean(
        self, tmp_path: Path, mirror_plugins: Any
    ) -> None:
        """A misspelt backend name is named with its line and the registered one meant."""
        with pytest.raises(ConfigError) as caught:
            build_backend(config(tmp_path, "backend: mirrr\n"), mirror_plugins)
        assert caught.value.problems == [
            "i.yaml:1: backend: unknown backend 'mirrr'; did you mean 'mirror'?"
        ]

    def test_an_unknown_section_is_still_an_error(
        self, tmp_path: Path, mirror_plugins: Any
    ) -> None:
        """A top-level section nobody registered is an unknown key, with a did-you-mean
        among the core's keys and the registered backends."""
        loaded = config(tmp_path, "backend: mirror\nmirrorr: {greeting: hi}\n")
        with pytest.raises(ConfigError) as caught:
            build_backend(loaded, mirror_plugins)
        assert caught.value.problems == ["i.yaml:2: mirrorr: unknown key; did you mean 'mirror'?"]

    def test_a_scalar_top_level_key_is_unknown_at_once(self, tmp_path: Path) -> None:
        """What is not a mapping cannot be a backend section: reported when the file is read."""
        with pytest.raises(ConfigError) as caught:
            config(tmp_path, "symbl: {base_url: sandbox}\nstat: 3\n")
        assert caught.value.problems == ["i.yaml:2: stat: unknown key; did you mean 'state'?"]

    def test_symbl_base_url_sandbox_still_selects_the_emulator(self, tmp_path: Path) -> None:
        """The documented ``symbl.base_url: sandbox`` starts the embedded sandbox."""
        backend = build_backend(config(tmp_path, "symbl: {base_url: sandbox}\n"), load_plugins())
        try:
            assert isinstance(backend, SandboxClient) and backend.name == "sandbox"
        finally:
            asyncio.run(backend.aclose())

    def test_backend_sandbox_needs_no_section(self, tmp_path: Path) -> None:
        """``backend: sandbox`` alone selects the emulator through its registered name."""
        backend = build_backend(config(tmp_path, "backend: sandbox\n"), load_plugins())
        try:
            assert isinstance(backend, SandboxClient)
        finally:
            asyncio.run(backend.aclose())

    def test_the_chosen_backends_option_problems_name_its_section(self, tmp_path: Path) -> None:
        """A bad option of the chosen backend is located under its own section's key."""
        loaded = config(tmp_path, "backend: sandbox\nsandbox:\n  max_retries: -1\n")
        with pytest.raises(ConfigError) as caught:
            build_backend(loaded, load_plugins())
        assert caught.value.problems == [
            "i.yaml:3: sandbox.max_retries: expected an integer ≥ 0, got -1"
        ]


class Bare:
    """A backend with the required methods only."""

    name = "bare"

    async def aclose(self) -> None:
        pass


class TestOptionalParts:
    def test_job_limit_defaults_when_the_backend_does_not_say(self) -> None:
        """No ``max_concurrent_jobs``: the core's default limit."""
        assert job_limit(Bare()) == DEFAULT_JOB_LIMIT  # type: ignore[arg-type]

    def test_the_symbl_backend_says_its_accounts_limit(self, sandbox: Sandbox) -> None:
        """The Symbl client's limit is its ``max_concurrent_jobs`` option."""

        async def limit() -> int:
            client = make_client(sandbox, max_concurrent_jobs=7)
            try:
                return job_limit(client)
            finally:
                await client.aclose()

        assert asyncio.run(limit()) == 7

    def test_a_backend_without_a_check_says_so(self) -> None:
        """``ingestd check`` does not fail for a backend that offers no probe."""
        line = asyncio.run(check_backend(Bare()))  # type: ignore[arg-type]
        assert line == "bare: offers no check; the first upload will tell"

    def test_the_symbl_check_proves_the_credentials(self, sandbox: Sandbox) -> None:
        """The Symbl client's check makes one authenticated call and names the host."""

        async def check() -> str:
            client: SymblClient = make_client(sandbox)
            try:
                return await check_backend(client)
            finally:
                await client.aclose()

        assert asyncio.run(check()) == f"{sandbox.url}: credentials accepted"

    def test_ingestd_check_goes_through_the_backend(self, ingestd_env: IngestdEnv) -> None:
        """`ingestd check` prints the backend's answer, and its refusal in its words."""
        ingestd_env.write_config()
        result = run_cli(ingestd_env, "check")
        assert result.returncode == 0, result.stderr
        assert f"api: {ingestd_env.sandbox_url}: credentials accepted" in result.stdout
        ingestd_env.write_config(symbl={"app_secret": "wrong"})
        result = run_cli(ingestd_env, "check")
        assert result.returncode != 0
        refused = [line.strip() for line in result.stderr.splitlines() if "api:" in line]
        assert refused == [
            f"api: {ingestd_env.sandbox_url}: credentials refused: Symbl rejected the app "
            "id/secret (HTTP 401 from POST /oauth2/token:generate); check symbl.app_id and "
            "symbl.app_secret"
        ]


class ForgetfulBackend(Bare):
    async def wait_for_job(self, job_id: str, *, expected_seconds: float | None = None) -> Any:
        raise UnknownJob(f"HTTP 404 from GET /v1/job/{job_id}", status=404)


class TestUnknownJob:
    def test_the_symbl_client_says_unknown_job_for_a_404(self, sandbox: Sandbox) -> None:
        """A job the API does not know is `UnknownJob`, not a generic error."""

        async def ask() -> None:
            client = make_client(sandbox)
            try:
                await client.job_status("no-such-job")
            finally:
                await client.aclose()

        with pytest.raises(UnknownJob):
            asyncio.run(ask())

    def test_a_forgotten_job_fails_the_recording_with_the_way_out(self, tmp_path: Path) -> None:
        """The core needs no status code: UnknownJob fails the recording, naming `retry`."""
        store = SqliteStore(tmp_path / "state.db")
        row = store.insert(
            watch="w",
            watch_root="/in",
            relpath="a.wav",
            size_bytes=1,
            mtime=1.0,
            sha256="a",
            state=State.SUBMITTED,
        )
        store.update(row.id, conversation_id="c1", job_id="j1")
        loaded = config(tmp_path, "symbl: {base_url: sandbox}\n")
        pipeline = Pipeline(loaded, store, load_plugins(), ForgetfulBackend(), {})  # type: ignore[arg-type]
        after = asyncio.run(pipeline.run_stage(store.get(row.id)))
        assert after.state is State.FAILED and after.failed_from == "queued"
        assert after.error.startswith("the API does not know job j1 any more")
        assert f"`ingestd retry {row.id}`" in after.error
        store.close()


class TestReload:
    def test_a_mistyped_section_on_reload_keeps_the_running_config(
        self, ingestd_env: IngestdEnv
    ) -> None:
        """SIGHUP with an unknown top-level section: refused with a did-you-mean, like at
        start-up, and the daemon goes on with what it had."""
        daemon = ingestd_env.daemon()
        daemon.start().wait_ready()
        config = ingestd_env.config()
        config["pipline"] = {"max_attempts": 3}
        ingestd_env.config_path.write_text(json.dumps(config))
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)
        failed = wait_for(
            lambda: [e for e in daemon.events() if e.get("event") == "config_reload_failed"],
            30,
            "config_reload_failed",
        )
        assert any(
            p.endswith("pipline: unknown key; did you mean 'pipeline'?")
            for p in failed[0]["problems"]
        )
        assert daemon.stop() == 0
