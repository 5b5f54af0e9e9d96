"""Secrets never leak: canaries planted in the config are searched for in every output.

Planted: the Symbl app secret (from the environment), a Slack incoming-webhook URL and a
Slack bot token (a credential file) for the bundled ``slack`` sink in both its modes, both
served by a Slack stand-in on loopback; and a second webhook URL and token for a local
plugin sink written like typical third-party code (httpx, ``raise_for_status()``, a debug
line with its options): whatever a sink does, the daemon promises that secrets do not reach
logs, errors, status output, /metrics, /health or exceptions. The run includes API faults, a
token revoked mid-run, failing deliveries, a recording failed and retried, so error paths are
exercised.
"""

from __future__ import annotations

import http.server
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ingestd.testing import drop

from .support import cli, daemon_with_env, wait_terminal

SINK_PLUGIN = '''
"""A webhook sink written the way many are: httpx, raise_for_status, a debug line."""
import httpx
import structlog

from ingestd import hookimpl
from ingestd.model import DeliveryReceipt

log = structlog.get_logger()


class CanaryWebhookSink:
    def __init__(self, options, context):
        self.name = context.name
        self.url = str.__str__(options["webhook_url"])
        self.token = str.__str__(options["bot_token"])
        log.debug("canary_sink_configured", options=dict(options), url=self.url)

    async def deliver(self, result):
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.post(
                self.url,
                json={"text": result.name},
                headers={"Authorization": "Bearer " + self.token},
            )
            response.raise_for_status()
        return DeliveryReceipt(sink=self.name, detail={"status": response.status_code})

    async def aclose(self):
        pass


@hookimpl
def ingestd_register_sinks(register):
    register("canary_webhook", CanaryWebhookSink)
'''


class SlackStandIn(http.server.ThreadingHTTPServer):
    """Slack on loopback: incoming webhooks under /services/, the Web API under /api/.
    Each kind fails its first `failures` requests with a 500."""

    daemon_threads = True

    def __init__(self, failures: int) -> None:
        self.failures = {"services": failures, "api": failures, "thirdparty": failures}
        self.authorizations: list[str] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _SlackHandler)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _SlackHandler(http.server.BaseHTTPRequestHandler):
    server: SlackStandIn

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind = self.path.strip("/").split("/")[0]
        with self.server.lock:
            self.server.authorizations.append(self.headers.get("Authorization") or "")
            fail = self.server.failures.get(kind, 0) > 0
            self.server.failures[kind] = self.server.failures.get(kind, 0) - 1
        if kind == "api":
            body = json.dumps(
                {"ok": False, "error": "internal_error"}
                if fail
                else {"ok": True, "channel": "C0CANARY", "ts": f"{time.time():.6f}"}
            ).encode()
        else:
            body = b"internal_error" if fail else b"ok"
        self.send_response(500 if fail else 200)
        self.send_header("Content-Type", "application/json" if kind == "api" else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    server = SlackStandIn(failures=3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _scrape(base: str, moment: str, outputs: dict[str, str]) -> None:
    """Read /metrics and /health now, as Prometheus and a load balancer would."""
    metrics = httpx.get(f"{base}/metrics", timeout=10)
    assert metrics.status_code == 200, metrics.text
    assert "ingestd_sink_deliveries" in metrics.text, "a real scrape, with the sinks' series"
    health = httpx.get(f"{base}/health", timeout=10)
    assert health.json()["status"] == "ok", health.text
    outputs[f"/metrics {moment}"] = metrics.text
    outputs[f"/health {moment}"] = health.text


def _leaks(canaries: dict[str, str], outputs: dict[str, str]) -> list[str]:
    return [
        f"{secret_name} in {where}"
        for where, text in outputs.items()
        for secret_name, value in canaries.items()
        if value and value in text
    ]


def test_planted_secrets_never_appear_in_any_output(
    ingestd_env, sandbox, make_media, slack
) -> None:
    """No planted secret or issued token appears in logs, CLI output, results or errors."""
    app_secret = "canary-app-secret-" + secrets.token_hex(12)
    hook_path = "T0CANARY/B0CANARY/" + secrets.token_hex(12)
    hook_url = f"{slack.base}/services/{hook_path}"
    bot_token = "xoxb-1234567890-" + secrets.token_hex(12)
    other_path = "hooks/" + secrets.token_hex(12)
    other_url = f"{slack.base}/thirdparty/{other_path}"
    other_token = "canary-plugin-token-" + secrets.token_hex(12)
    issued: list[str] = []
    generate = sandbox.tokens.generate

    def spy(account: str, lifetime: float) -> tuple[str, int]:
        value, expires = generate(account, lifetime)
        issued.append(value)
        return value, expires

    sandbox.tokens.generate = spy
    sandbox.set_options({"app_id": "canary-app", "app_secret": app_secret})
    plugin = ingestd_env.root / "canary_sink.py"
    plugin.write_text(SINK_PLUGIN)
    token_file = ingestd_env.root / "slack_bot_token"
    token_file.write_text(bot_token + "\n")
    token_file.chmod(0o600)
    environment = {
        "CANARY_APP_SECRET": app_secret,
        "CANARY_SLACK_WEBHOOK": hook_url,
        "CANARY_PLUGIN_WEBHOOK": other_url,
        "CANARY_PLUGIN_TOKEN": other_token,
    }
    ingestd_env.write_config(
        symbl={"app_id": "canary-app", "app_secret": "${CANARY_APP_SECRET}"},
        sinks=[
            {"type": "files", "path": str(ingestd_env.results)},
            {"type": "slack", "name": "slack-hook", "webhook_url": "${CANARY_SLACK_WEBHOOK}"},
            {
                "type": "slack",
                "name": "slack-bot",
                "token_file": str(token_file),
                "channel": "C0CANARY",
                "api_base_url": f"{slack.base}/api/",
            },
            {
                "type": "canary_webhook",
                "name": "thirdparty",
                "webhook_url": "${CANARY_PLUGIN_WEBHOOK}",
                "bot_token": "${CANARY_PLUGIN_TOKEN}",
            },
        ],
        plugins=[str(plugin)],
        pipeline={
            "max_attempts": 2,
            "delivery_max_attempts": 2,
            "retry_initial_seconds": 0.1,
            "retry_max_seconds": 0.2,
        },
        metrics={"listen": "127.0.0.1:0"},
    )
    outputs: dict[str, str] = {}
    daemon = daemon_with_env(ingestd_env, environment).start()
    daemon.wait_ready()
    metrics_base = daemon.url_of("metrics_listening")
    sandbox.faults.arm({"kind": "status", "status": 503, "times": 2})
    files = [make_media(f"secret-{i}.wav") for i in range(3)]
    for f in files[:2]:
        drop(f, ingestd_env.inbox)
    wait_terminal(ingestd_env, [f.name for f in files[:2]], 60)
    _scrape(metrics_base, "after API faults", outputs)
    sandbox.faults.arm({"kind": "expire_tokens"})
    drop(files[2], ingestd_env.inbox)
    states = wait_terminal(ingestd_env, [f.name for f in files], 60)
    assert "failed" in states.values(), f"a delivery failure was exercised: {states}"
    _scrape(metrics_base, "after a revoked token and failed deliveries", outputs)
    for args in (("status",), ("status", "--json"), ("check",), ("plugins",), ("retry",)):
        result = cli(ingestd_env, *args, extra_env=environment)
        outputs[f"`ingestd {' '.join(args)}`"] = result.stdout + result.stderr
    wait_terminal(ingestd_env, [f.name for f in files], 60)  # after the retry
    _scrape(metrics_base, "after `ingestd retry`", outputs)
    wrong = {**environment, "CANARY_APP_SECRET": "canary-wrong-" + secrets.token_hex(8)}
    bad_check = cli(ingestd_env, "check", extra_env=wrong)
    assert bad_check.returncode != 0
    outputs["`ingestd check` with a wrong secret"] = bad_check.stdout + bad_check.stderr
    assert daemon.stop() == 0
    used = "\n".join(slack.authorizations)
    assert bot_token in used and other_token in used, "the sinks really used their tokens"
    outputs["daemon log"] = (ingestd_env.root / "daemon.log").read_text(errors="replace")
    for path in ingestd_env.results.rglob("*"):
        if path.is_file():
            outputs[f"result {path.name}"] = path.read_text(errors="replace")
    with sqlite3.connect(ingestd_env.state_db) as conn:
        outputs["errors stored in the state database"] = "\n".join(conn.iterdump())
    canaries = {
        "app secret": app_secret,
        "wrong app secret": wrong["CANARY_APP_SECRET"],
        "Slack webhook URL": hook_url,
        "Slack webhook URL's secret path": hook_path,
        "Slack bot token": bot_token,
        "plugin webhook URL": other_url,
        "plugin webhook URL's secret path": other_path,
        "plugin token": other_token,
        **{f"access token #{i + 1}": token for i, token in enumerate(issued)},
    }
    assert issued, "tokens were issued"
    leaks = _leaks(canaries, outputs)
    assert not leaks, "secrets leaked: " + "; ".join(leaks)
