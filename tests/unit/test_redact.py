"""`ingestd.logging.redact`: the one function that masks secrets in logs, stored errors and
CLI output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingestd import logging as ingestd_logging
from ingestd.configload import load_config
from ingestd.logging import redact, register_config_secrets, register_secrets


@pytest.fixture(autouse=True)
def fresh_secrets() -> Iterator[None]:
    """Each test starts with no registered secret and leaves none behind."""
    saved = list(ingestd_logging._known_secrets)
    ingestd_logging._known_secrets.clear()
    yield
    ingestd_logging._known_secrets[:] = saved


class TestKnownSecrets:
    def test_a_webhook_url_is_masked_whole_and_by_its_path(self) -> None:
        """A registered URL is masked, and so are its path and last segment quoted alone."""
        url = "http://127.0.0.1:8080/thirdparty/hooks/0123456789abcdef"
        register_secrets([url])
        error = (
            f"Server error '500 Internal Server Error' for url '{url}'; "
            "POST /thirdparty/hooks/0123456789abcdef; id 0123456789abcdef"
        )
        assert redact(error) == (
            "Server error '500 Internal Server Error' for url '***'; POST ***; id ***"
        )

    def test_short_path_segments_stay_readable(self) -> None:
        """Only path parts long enough to be the secret are registered, not words."""
        register_secrets(["https://example.com/webhook"])
        assert redact("the webhook failed") == "the webhook failed"
        assert redact("posting to https://example.com/webhook") == "posting to ***"

    def test_every_secret_in_a_loaded_config_is_registered(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """${VAR} and *_file credentials anywhere in the config (symbl, any sink) are masked."""
        monkeypatch.setenv("T_SECRET", "app-secret-value")
        monkeypatch.setenv("T_HOOK", "http://127.0.0.1:9/thirdparty/hooks/0123456789abcdef")
        (tmp_path / "token").write_text("plugin-token-value\n")
        (tmp_path / "c.yaml").write_text(
            "symbl: {base_url: sandbox, app_secret: '${T_SECRET}'}\n"
            "watch: [{path: inbox}]\n"
            "sinks:\n"
            "  - {type: files, path: results}\n"
            "  - {type: canary, webhook_url: '${T_HOOK}', bot_token_file: token}\n"
        )
        register_config_secrets(load_config(tmp_path / "c.yaml"))
        text = "app-secret-value plugin-token-value http://127.0.0.1:9/thirdparty/hooks/0123456789abcdef"
        assert redact(text) == "*** *** ***"


class TestCredentialShapes:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (
                "POST https://hooks.slack.com/services/T0/B0/abcdef failed",
                "POST https://hooks.slack.com/*** failed",
            ),
            ("token xoxb-1234-5678-abcdef revoked", "token xoxb-*** revoked"),
            ("app token xapp-1-A0-123-abc", "app token xapp-***"),
            ("Authorization: Bearer eyJhbGciOi.payload.sig", "Authorization: Bearer ***"),
            ("postgresql://ingestd:hunter2@db/ingestd", "postgresql://ingestd:***@db/ingestd"),
            (
                "GET /v1/x?name=a&access_token=abc123&webhookUrl=http%3A%2F%2Fh",
                "GET /v1/x?name=a&access_token=***&webhookUrl=***",
            ),
        ],
    )
    def test_unregistered_credentials_are_masked_by_their_shape(
        self, text: str, expected: str
    ) -> None:
        """Slack webhook URLs and tokens, bearer tokens, URL passwords: masked unregistered."""
        assert redact(text) == expected

    def test_ordinary_messages_are_left_alone(self) -> None:
        """Prose about tokens and URLs without credentials is unchanged."""
        text = (
            "slack sink 'bot': chat.postMessage answered HTTP 401 invalid_auth; check the "
            "sink's token (bearer token rejected) at http://127.0.0.1:8080/api/"
        )
        assert redact(text) == text
