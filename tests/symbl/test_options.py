"""Validation of the ``symbl`` section (`ingestd_symbl.options`)."""

from __future__ import annotations

import pytest

from ingestd.config import Secret
from ingestd.errors import ConfigError
from ingestd_symbl.options import SandboxSettings, SymblOptions, WebhookSettings, from_mapping


def problems(mapping: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        from_mapping(mapping)
    return info.value.problems


class TestDefaults:
    def test_sandbox_needs_no_credentials(self) -> None:
        """base_url sandbox defaults the app id and secret to "sandbox"."""
        options = from_mapping({"base_url": "sandbox"})
        assert options.is_sandbox
        assert (options.app_id, options.app_secret) == ("sandbox", "sandbox")
        assert options.sandbox == SandboxSettings()

    def test_documented_defaults(self) -> None:
        """Unset keys take the documented defaults."""
        options = from_mapping(
            {"base_url": "https://api.symbl.ai/", "app_id": "a", "app_secret": "b"}
        )
        assert options == SymblOptions(
            base_url="https://api.symbl.ai",
            app_id=Secret("a"),
            app_secret=Secret("b"),
            max_concurrent_jobs=5,
            request_timeout_seconds=30,
            upload_timeout_seconds=600,
            max_retries=6,
            backoff_initial_seconds=0.5,
            backoff_max_seconds=60,
            poll_initial_seconds=0.2,
            poll_max_seconds=10,
            job_timeout_seconds=4 * 3600 + 1800,
        )

    def test_sandbox_settings(self) -> None:
        """The sandbox mapping is read; its concurrency limit defaults to None (= ours)."""
        options = from_mapping(
            {"base_url": "sandbox", "sandbox": {"port": 8099, "job_seconds": 0.5}}
        )
        assert options.sandbox == SandboxSettings(port=8099, job_seconds=0.5)
        assert options.sandbox.concurrency_limit is None

    def test_empty_credentials_are_the_sandbox_defaults(self) -> None:
        """The sandbox takes any credentials: an empty one (an empty credential file) is its
        default, not an error."""
        options = from_mapping({"base_url": "sandbox", "app_id": "", "app_secret": ""})
        assert (options.app_id, options.app_secret) == ("sandbox", "sandbox")

    def test_numbers_are_converted(self) -> None:
        """Integral floats become ints and ints become floats where the key wants them."""
        options = from_mapping({"base_url": "sandbox", "max_retries": 3.0, "poll_max_seconds": 2})
        assert options.max_retries == 3 and isinstance(options.max_retries, int)
        assert options.poll_max_seconds == 2.0 and isinstance(options.poll_max_seconds, float)


class TestProblems:
    def test_credentials_required_for_a_real_host(self) -> None:
        """A real base_url without app id and secret names both keys."""
        assert problems({"base_url": "https://api.symbl.ai"}) == [
            "symbl.app_id: expected a non-empty string",
            "symbl.app_secret: expected a non-empty string",
        ]

    def test_every_problem_one_line(self) -> None:
        """All problems are reported at once, one line each, with the key path."""
        lines = problems(
            {
                "base_url": "ftp://example.com",
                "app_id": "",
                "app_secret": "x",
                "max_concurrent_jobs": 0,
                "max_retries": True,
                "poll_max_seconds": "ten",
                "request_timeout_seconds": 0,
            }
        )
        assert lines == [
            "symbl.base_url: expected 'sandbox' or an http(s) URL, got 'ftp://example.com'",
            "symbl.app_id: expected a non-empty string",
            "symbl.max_concurrent_jobs: expected an integer ≥ 1, got 0",
            "symbl.request_timeout_seconds: expected a number > 0, got 0",
            "symbl.max_retries: expected an integer ≥ 0, got True",
            "symbl.poll_max_seconds: expected a number > 0, got 'ten'",
        ]

    def test_missing_base_url(self) -> None:
        """base_url is required."""
        assert problems({"app_id": "a", "app_secret": "b"}) == [
            "symbl.base_url: expected 'sandbox' or an http(s) URL (required)"
        ]

    def test_unknown_keys_get_a_did_you_mean(self) -> None:
        """A misspelt key, top-level or in sandbox, is an error with a suggestion."""
        assert problems(
            {"base_url": "sandbox", "poll_max_secnds": 1, "sandbox": {"job_second": 1}}
        ) == [
            "symbl.poll_max_secnds: unknown key; did you mean 'poll_max_seconds'?",
            "symbl.sandbox.job_second: unknown key; did you mean 'job_seconds'?",
        ]

    def test_ordering_of_bounds(self) -> None:
        """A maximum below its initial value is refused."""
        assert problems(
            {
                "base_url": "sandbox",
                "backoff_initial_seconds": 5,
                "backoff_max_seconds": 1,
                "poll_initial_seconds": 3,
                "poll_max_seconds": 2,
            }
        ) == [
            "symbl.backoff_max_seconds: expected ≥ backoff_initial_seconds",
            "symbl.poll_max_seconds: expected ≥ poll_initial_seconds",
        ]

    def test_bad_sandbox_values(self) -> None:
        """Sandbox values are checked with their nested key path."""
        assert problems(
            {"base_url": "sandbox", "sandbox": {"port": 70000, "concurrency_limit": 0}}
        ) == [
            "symbl.sandbox.concurrency_limit: expected an integer ≥ 1, got 0",
            "symbl.sandbox.port: expected a port number ≤ 65535, got 70000",
        ]
        assert problems({"base_url": "sandbox", "sandbox": [1]}) == [
            "symbl.sandbox: expected a mapping, got list"
        ]

    def test_other_key_path(self) -> None:
        """The key path prefix is the caller's."""
        with pytest.raises(ConfigError, match=r"^backends\.symbl\.base_url: "):
            from_mapping({"base_url": 3}, key_path="backends.symbl")


class TestSecrets:
    def test_secret_kept_masked(self) -> None:
        """A Secret (or a plain string) is stored as a Secret and never shown in a repr."""
        options = from_mapping(
            {"base_url": "https://x.test", "app_id": "id-1", "app_secret": "pa55-w0rd-canary"}
        )
        assert isinstance(options.app_secret, Secret)
        assert options.app_secret.reveal() == "pa55-w0rd-canary"
        assert "pa55-w0rd-canary" not in repr(options)
        secret = Secret("from-a-file-canary")
        assert from_mapping({"base_url": "sandbox", "app_secret": secret}).app_secret is secret

    def test_bad_secret_value_is_not_echoed(self) -> None:
        """A wrongly typed secret is reported without its value."""
        lines = problems({"base_url": "https://x.test", "app_id": "a", "app_secret": 918273645})
        assert lines == ["symbl.app_secret: expected a non-empty string"]


REAL = {"base_url": "https://api.symbl.ai", "app_id": "a", "app_secret": "b"}


class TestWebhook:
    def test_on_by_default_for_the_embedded_sandbox_only(self) -> None:
        """The sandbox can always reach loopback; the real API needs a public URL first."""
        assert from_mapping({"base_url": "sandbox"}).webhook == WebhookSettings("127.0.0.1:0")
        assert from_mapping(REAL).webhook == WebhookSettings()
        assert from_mapping({"base_url": "sandbox", "webhook": False}).webhook.listen is None

    def test_listen_and_public_url(self) -> None:
        options = from_mapping(
            {
                **REAL,
                "webhook": {"listen": "0.0.0.0:8471", "public_url": "https://in.example.com/h"},
            }
        )
        assert options.webhook == WebhookSettings("0.0.0.0:8471", "https://in.example.com/h")

    @pytest.mark.parametrize(
        ("webhook", "expected"),
        [
            ("yes", "symbl.webhook: expected a mapping or false, got str"),
            ({}, "symbl.webhook.listen: expected HOST:PORT (required), got None"),
            ({"listen": "localhost"}, "symbl.webhook.listen: expected HOST:PORT, got 'localhost'"),
            ({"listen": "0.0.0.0:8471"}, "symbl.webhook.public_url: required when listening on"),
            (
                {"listen": "127.0.0.1:1", "public_url": "ftp://x"},
                "symbl.webhook.public_url: expected an http(s) URL, got 'ftp://x'",
            ),
            ({"listen": "127.0.0.1:1", "publik_url": "x"}, "did you mean 'public_url'?"),
        ],
    )
    def test_problems_name_the_key(self, webhook: object, expected: str) -> None:
        found = problems({**REAL, "webhook": webhook})
        assert any(expected in line for line in found), found
