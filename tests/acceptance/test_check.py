"""`ingestd check` catches what `ingestd run` would fail on, every problem at once
(issue 15, point 3). Run as the operator runs it: a subprocess, against real services
(the sandbox, PostgreSQL, a fake Slack on loopback)."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine

from ingestd.testing import run_cli
from tests.database.conftest import POSTGRES_ADMIN
from tests.slack.fake import PROXY_VARIABLES, TOKEN, FakeSlack, serve_fake_slack


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with serve_fake_slack() as fake:
        yield fake


@pytest.fixture
def postgres_db() -> Iterator[str]:
    """A fresh database on the local PostgreSQL, dropped afterwards."""
    name = f"ingestd_check_{secrets.token_hex(4)}"
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections for the whole test: bound, never listening
    (a port merely found free could be taken by a parallel test before `check` dials it)."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


def write(env, config: dict) -> None:
    env.config_path.write_text(yaml.safe_dump(config))


def test_a_good_setup_passes_with_every_connection_tried(ingestd_env, slack, postgres_db):
    """Sandbox, a PostgreSQL database sink, a Slack bot and a files sink that all work:
    exit 0, each tried and said so."""
    config = ingestd_env.config(
        sinks=[
            {"type": "files", "path": str(ingestd_env.results)},
            {"type": "database", "url": f"postgresql://postgres@127.0.0.1:5432/{postgres_db}"},
            {"type": "slack", "token": TOKEN, "channel": "#calls", "api_base_url": slack.api_url},
        ]
    )
    write(ingestd_env, config)
    result = run_cli(ingestd_env, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "ok (1 watch, sinks: files, database, slack)" in out
    assert f"sink files: {ingestd_env.results}: will be created at the first delivery" in out
    assert "sink database: postgresql+psycopg://postgres@127.0.0.1:5432/" in out
    assert "connected, tables ready (0 conversations)" in out
    assert "sink slack: token accepted by auth.test" in out
    assert f"state: {ingestd_env.state_db}: will be created at start" in out
    assert "ffmpeg: " in out and "ffprobe: " in out
    assert "credentials accepted" in out
    assert slack.calls("auth.test"), "auth.test was really called"


def test_every_problem_at_once(ingestd_env, slack, tmp_path: Path):
    """A missing folder, a typo under symbl:, a database that does not exist, a refused
    Slack token, a results path under a file and an ffmpeg that cannot run: all reported in
    one run, no "ok" for the config, exit 78 (the config is among them)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    config = ingestd_env.config(
        watch={"path": str(tmp_path / "no-such-inbox")},
        symbl={"max_concurent_jobs": 3},
        sinks=[
            {"type": "files", "path": str(blocker / "results")},
            {"type": "database", "url": "postgresql://postgres@127.0.0.1:5432/ingestd_no_such_db"},
            {
                "type": "slack",
                "token": "xoxb-wrong",
                "channel": "#c",
                "api_base_url": slack.api_url,
            },
        ],
    )
    write(ingestd_env, config)
    result = run_cli(ingestd_env, "check", extra_env={"INGESTD_FFMPEG": str(tmp_path / "nope")})
    assert result.returncode == 78, result.stdout + result.stderr
    problems = result.stderr
    assert "ingestd check: 6 problems; `ingestd run` would not work:" in problems
    assert f"the folder {tmp_path / 'no-such-inbox'} does not exist" in problems
    assert "symbl.max_concurent_jobs: unknown key; did you mean 'max_concurrent_jobs'?" in problems
    assert 'database "ingestd_no_such_db" does not exist' in problems
    assert "sink slack: auth.test answered HTTP 200 invalid_auth" in problems
    assert f"sink files: {blocker / 'results'}" in problems
    assert "ffmpeg: cannot run it" in problems
    assert ": ok (" not in result.stdout, "no 'ok' for a config with problems"
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("base_url", "said"),
    [
        ("http://symbl-api.invalid", "host 'symbl-api.invalid' does not resolve"),
        ("http://127.0.0.1:{port}", "connection refused by 127.0.0.1:{port}"),
        (None, "credentials refused: Symbl rejected the app id/secret (HTTP 401"),
    ],
)
def test_the_api_problem_is_named(ingestd_env, sandbox, closed_port, base_url, said):
    """A name under .invalid does not resolve, a closed port refuses, the sandbox refuses a
    wrong secret: three different sentences, exit 1, the secret never shown."""
    port = closed_port
    symbl = {"base_url": (base_url or sandbox.url).format(port=port)}
    if base_url is None:
        symbl["app_secret"] = "wrong-secret-0xBADC0DE"
    write(ingestd_env, ingestd_env.config(symbl=symbl))
    result = run_cli(ingestd_env, "check", timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ingestd check: 1 problem; `ingestd run` would not work:" in result.stderr
    assert said.format(port=port) in result.stderr
    assert "0xBADC0DE" not in result.stdout + result.stderr


def test_the_sandbox_says_its_insights_are_made_up(tmp_path: Path) -> None:
    """With base_url: sandbox, check says the emulator's insights are not transcripts."""
    (tmp_path / "in").mkdir()
    config = {
        "symbl": {"base_url": "sandbox"},
        "state": {"url": "sqlite:///state.db"},
        "watch": [{"path": "in"}],
        "sinks": [{"type": "files", "path": "out"}],
    }
    path = tmp_path / "ingestd.yaml"
    path.write_text(yaml.safe_dump(config))

    class Env:
        config_path = path

    result = run_cli(Env, "check")  # type: ignore[arg-type]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "api: sandbox (embedded emulator at http://127.0.0.1:" in result.stdout
    assert "made up" in result.stdout and "not transcripts" in result.stdout


def test_a_corrupt_state_database_is_a_problem(ingestd_env) -> None:
    """`run` stops on a state database that is not one: so does check, saying what to do."""
    ingestd_env.write_config()
    ingestd_env.state_db.parent.mkdir(parents=True, exist_ok=True)
    ingestd_env.state_db.write_bytes(b"not a database at all " * 400)
    result = run_cli(ingestd_env, "check")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"state: the state database {ingestd_env.state_db} is corrupt" in result.stderr
