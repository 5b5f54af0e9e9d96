"""The openai backend against its emulator over real HTTP: what it sends, how it merges, how
it fails, and what `check` says about each kind of broken setup."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from ingestd import Endpoint, EndpointKind, Params, Permanent, Retryable, Upload
from ingestd.backends import job_limit
from ingestd_openai import make_openai_backend
from ingestd_openai.client import OpenAIBackend
from ingestd_openai.conversations import ConversationStore
from ingestd_openai.options import from_mapping, parse_size

from .conftest import API_KEY

AUDIO = Endpoint(EndpointKind.AUDIO, "audio/wav")


def backend(emulator: Any, state: Path, **options: Any) -> OpenAIBackend:
    section = {
        "base_url": emulator.url,
        "model": "whisper-1",
        "api_key": API_KEY,
        "backoff_initial_seconds": 0.01,
        "backoff_max_seconds": 0.1,
        **options,
    }
    return make_openai_backend(section, state)


def upload_of(path: Path) -> Upload:
    return Upload(path, path.stat().st_size, "audio/wav")


async def transcribe(client: OpenAIBackend, path: Path, params: Params | None = None, cid=None):
    params = client.prepare_upload(params or Params(), conversation_id=cid, resend=False)
    submission = await client.submit(AUDIO, upload_of(path), params, cid)
    return submission, params


class TestRequests:
    def test_fields_prompt_from_the_vocabulary_and_language_from_the_watch(
        self, emulator, make_media, tmp_path
    ) -> None:
        audio = make_media("call.wav", seconds=2)

        async def scenario() -> None:
            client = backend(emulator, tmp_path, prompt="A sales call.")
            try:
                await transcribe(
                    client,
                    audio,
                    Params({"customVocabulary": ["Ingestd", "Symbl"], "languageCode": "de-DE"}),
                )
            finally:
                await client.aclose()

        asyncio.run(scenario())
        (request,) = emulator.answered()
        assert request.fields == {
            "model": "whisper-1",
            "response_format": "verbose_json",
            "timestamp_granularities[]": "segment",
            "language": "de",
            "prompt": "A sales call. Ingestd, Symbl",
        }
        assert request.filename == "call.wav"
        assert request.size_bytes == audio.stat().st_size

    def test_a_configured_language_wins_and_json_answers_are_one_untimed_message(
        self, emulator, make_media, tmp_path
    ) -> None:
        audio = make_media("call.wav", seconds=2)

        async def scenario() -> Any:
            client = backend(emulator, tmp_path, language="fr", response_format="json")
            try:
                submission, _ = await transcribe(client, audio, Params({"languageCode": "en-US"}))
                return await client.fetch_insights(submission.conversation_id, ["messages"])
            finally:
                await client.aclose()

        insights = asyncio.run(scenario())
        (request,) = emulator.answered()
        assert request.fields["language"] == "fr"
        assert "timestamp_granularities[]" not in request.fields
        assert [m.get("timeOffset") for m in insights.messages] == [None]

    def test_the_concurrency_limit_is_the_backends_job_limit(self, emulator, tmp_path) -> None:
        client = backend(emulator, tmp_path, max_concurrent_jobs=3)
        assert job_limit(client) == 3
        assert client.max_upload_bytes is None
        asyncio.run(client.aclose())


class TestParts:
    def test_a_part_sent_again_replaces_itself_and_appends_follow_in_order(
        self, emulator, make_media, tmp_path
    ) -> None:
        first, second = make_media("a.wav", seconds=6), make_media("b.wav", seconds=2)

        async def scenario() -> Any:
            client = backend(emulator, tmp_path)
            try:
                one, params = await transcribe(client, first)
                cid = one.conversation_id
                again = client.prepare_upload(params, conversation_id=None, resend=True)
                assert again == params, "a resend keeps its tag"
                assert (await client.submit(AUDIO, upload_of(first), again, None)) == one
                await transcribe(client, second, cid=cid)
                return await client.fetch_insights(cid, ["messages"])
            finally:
                await client.aclose()

        insights = asyncio.run(scenario())
        assert [(m["timeOffset"], m["text"].split(" from ")[0]) for m in insights.messages] == [
            (0.0, "a.wav"),
            (5.0, "a.wav"),
            (6.0, "b.wav"),
        ]
        assert insights.conversation["parts"] == 2 and insights.conversation["duration"] == 8.0
        assert len(emulator.answered()) == 3, "the resend was asked again, stored once"

    def test_speakers_the_server_returns_become_members(
        self, emulator, make_media, tmp_path
    ) -> None:
        emulator.options.speakers = ("A", "B")
        audio = make_media("call.wav", seconds=9)

        async def scenario() -> Any:
            client = backend(emulator, tmp_path)
            try:
                submission, _ = await transcribe(client, audio)
                return await client.fetch_insights(submission.conversation_id, ["messages"])
            finally:
                await client.aclose()

        insights = asyncio.run(scenario())
        assert [m["from"]["name"] for m in insights.messages] == ["A", "B"]
        assert insights.members == [{"id": "A", "name": "A"}, {"id": "B", "name": "B"}]
        assert "members" not in insights.conversation["notProvided"]

    def test_forgetting_deletes_our_transcript(self, emulator, make_media, tmp_path) -> None:
        audio = make_media("call.wav", seconds=1)

        async def scenario() -> tuple[bool, bool]:
            client = backend(emulator, tmp_path)
            try:
                submission, _ = await transcribe(client, audio)
                cid = submission.conversation_id
                return await client.delete_conversation(cid), await client.delete_conversation(cid)
            finally:
                await client.aclose()

        assert asyncio.run(scenario()) == (True, False)
        assert list(ConversationStore(tmp_path / "openai" / "conversations").folder.iterdir()) == []


class TestErrors:
    def run_one(self, emulator, tmp_path, audio, **options) -> BaseException:
        async def scenario() -> BaseException:
            client = backend(emulator, tmp_path, **options)
            try:
                await transcribe(client, audio)
            except (Permanent, Retryable) as exc:
                return exc
            finally:
                await client.aclose()
            raise AssertionError("no error")

        return asyncio.run(scenario())

    def test_retries_run_out_as_retryable_with_the_servers_wait(
        self, emulator, make_media, tmp_path
    ) -> None:
        emulator.fail_next(429, count=3, retry_after=0.05)
        error = self.run_one(emulator, tmp_path, make_media("a.wav"), max_retries=2)
        assert isinstance(error, Retryable) and error.retry_after == 0.05
        assert [r.status for r in emulator.requests] == [429, 429, 429]

    @pytest.mark.parametrize(
        ("status", "says"),
        [
            (400, "a.wav: HTTP 400: emulated fault: HTTP 400"),
            (401, "the server refused the API key (HTTP 401: emulated fault: HTTP 401); check"),
            (415, "a.wav: HTTP 415: emulated fault"),
        ],
    )
    def test_permanent_answers_carry_the_servers_message(
        self, emulator, make_media, tmp_path, status, says
    ) -> None:
        emulator.fail_next(status)
        error = self.run_one(emulator, tmp_path, make_media("a.wav"))
        assert isinstance(error, Permanent) and says in str(error)
        assert len(emulator.requests) == 1, "never retried"
        assert API_KEY not in str(error)

    def test_an_upload_over_the_limit_without_pieces_is_refused_before_sending(
        self, emulator, make_media, tmp_path
    ) -> None:
        error = self.run_one(emulator, tmp_path, make_media("a.wav"), max_upload_bytes=100)
        assert isinstance(error, Permanent) and "was not cut to fit" in str(error)
        assert emulator.requests == []

    def test_url_routes_are_refused(self, emulator, tmp_path) -> None:
        async def scenario() -> None:
            client = backend(emulator, tmp_path)
            try:
                await client.submit(
                    Endpoint(EndpointKind.AUDIO_URL, url="https://x/a.wav"), None, Params(), None
                )
            finally:
                await client.aclose()

        with pytest.raises(Permanent, match="not URLs"):
            asyncio.run(scenario())


def check(emulator: Any, tmp_path: Path, **options: Any) -> str:
    async def scenario() -> str:
        client = backend(emulator, tmp_path, **options)
        try:
            return await client.check()
        finally:
            await client.aclose()

    return asyncio.run(scenario())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TestCheck:
    def test_a_good_setup_lists_the_model(self, emulator, tmp_path) -> None:
        assert "key accepted, model whisper-1 offered" in check(emulator, tmp_path)

    def test_a_refused_key(self, emulator, tmp_path) -> None:
        with pytest.raises(Permanent, match=r"refused the API key .*check openai\.api_key"):
            check(emulator, tmp_path, api_key="sk-wrong-key-000000")

    def test_an_unknown_model_names_what_is_offered(self, emulator, tmp_path) -> None:
        with pytest.raises(
            Permanent, match="unknown model 'large-v9'; the server offers whisper-1"
        ):
            check(emulator, tmp_path, model="large-v9")

    def test_without_a_model_list_a_silent_clip_is_transcribed(self, emulator, tmp_path) -> None:
        emulator.options.offer_models = False
        assert "a 1-s silent clip was transcribed" in check(emulator, tmp_path)
        assert [r.duration_seconds for r in emulator.answered()] == [1.0]
        with pytest.raises(Permanent, match="unknown model 'large-v9'"):
            check(emulator, tmp_path, model="large-v9")

    def test_a_host_that_does_not_resolve(self, emulator, tmp_path) -> None:
        with pytest.raises(Permanent, match="does not resolve"):
            check(emulator, tmp_path, base_url="http://no-such-host.invalid/v1")

    def test_nothing_listening(self, emulator, tmp_path) -> None:
        with pytest.raises(Permanent, match="connection refused"):
            check(emulator, tmp_path, base_url=f"http://127.0.0.1:{free_port()}/v1")

    def test_tls_to_a_plain_http_server(self, emulator, tmp_path) -> None:
        url = emulator.url.replace("http://", "https://")
        with pytest.raises(Permanent, match="TLS failed"):
            check(emulator, tmp_path, base_url=url)


class TestOptions:
    def test_every_problem_at_once(self) -> None:
        with pytest.raises(Exception) as caught:
            from_mapping(
                {"base_url": "ftp://x", "max_upload_bytes": "lots", "modle": "x", "api_key": 3}
            )
        assert str(caught.value).splitlines() == [
            "openai.modle: unknown key; did you mean 'model'?",
            "openai.base_url: expected an http(s) URL such as https://api.openai.com/v1 (or "
            "'emulator'), got 'ftp://x'",
            "openai.model: required: the server's model name (whisper-1, a model id...)",
            "openai.api_key: expected a non-empty string",
            "openai.max_upload_bytes: expected a size in bytes such as 25000000 or '25 MB', "
            "got 'lots'",
        ]

    def test_sizes(self) -> None:
        assert parse_size("25 MB") == 25_000_000
        assert parse_size("25MiB") == 25 << 20
        assert parse_size(1000) == 1000
        assert parse_size("0") is None and parse_size(True) is None


def test_the_readmes_backend_examples_are_valid_options() -> None:
    """The README's faster-whisper and OpenAI snippets pass the backend's own check."""
    import re

    import yaml

    text = (Path(__file__).parents[2] / "README.md").read_text()
    section = text[text.index("\n## Backends\n") : text.index("\n## Sinks\n")]
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", section, re.S)]
    assert [b["backend"] for b in blocks] == ["openai", "openai"]
    assert blocks[0]["openai"]["base_url"].endswith("/v1")
    checked = []
    for block in blocks:
        options = dict(block["openai"])
        if options.pop("api_key_file", None):  # the core reads the file; the key arrives
            options["api_key"] = "sk-x"
        checked.append(from_mapping(options))
    assert checked[1].max_upload_bytes == 25_000_000


class TestTimeout:
    def test_the_wait_for_an_answer_grows_with_the_medias_duration(
        self, emulator, make_media, tmp_path
    ) -> None:
        """A server that takes 1.5 s: a 0.3 s base wait is enough for a 4-s file at 0.5 s per
        media second (2.3 s), and not without the per-second allowance (timed out, retried)."""
        emulator.options.answer_delay_seconds = 1.5
        audio = make_media("call.wav", seconds=4)

        async def scenario(per_second: float) -> Any:
            client = backend(
                emulator,
                tmp_path,
                request_timeout_seconds=0.3,
                timeout_per_media_second=per_second,
                max_retries=1,
            )
            try:
                return await transcribe(client, audio)
            except Retryable as exc:
                return exc
            finally:
                await client.aclose()

        assert not isinstance(asyncio.run(scenario(0.5)), Exception)
        error = asyncio.run(scenario(0.0))
        assert isinstance(error, Retryable) and "ReadTimeout" in str(error)
