"""Reading conversations: insights of every kind, and finding a conversation by name."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ingestd.errors import Permanent
from ingestd.model import INSIGHT_KINDS, Endpoint, EndpointKind, Insights, Params, Upload
from ingestd.sandbox import Sandbox
from ingestd_symbl.client import FETCHES_AT_ONCE, KINDS, SymblClient
from ingestd_symbl.options import from_mapping
from tests.symbl.conftest import make_client, requests_of, write_wav

WAV = Endpoint(EndpointKind.AUDIO, content_type="audio/wav")
URL = Endpoint(EndpointKind.AUDIO_URL, url="https://media.example/a.mp3")


def fetch(sb: Sandbox, path: Path, kinds: tuple[str, ...], *, wait: bool = True) -> Insights:
    async def scenario() -> Insights:
        client = make_client(sb)
        try:
            tracker = {"name": "Pricing", "vocabulary": ["price", "budget"]}
            params = Params(
                name="call", detectPhrases=True, detectEntities=True, trackers=[tracker]
            )
            sub = await client.submit(WAV, Upload(path, path.stat().st_size, None), params, None)
            if wait:
                await client.wait_for_job(sub.job_id)
            return await client.fetch_insights(sub.conversation_id, kinds)
        finally:
            await client.aclose()

    return asyncio.run(scenario())


class TestInsights:
    def test_every_kind_in_its_shape(self, sb: Sandbox, tmp_path: Path) -> None:
        """All kinds come back: lists of API objects, analytics as an object."""
        path = tmp_path / "a.wav"
        write_wav(path, 64_000)
        insights = fetch(sb, path, INSIGHT_KINDS)
        assert insights.conversation["id"] == insights.conversation_id
        assert insights.conversation["name"] == "call"
        message = insights.messages[0]
        assert {"id", "text", "from", "words", "sentiment"} <= set(message)  # verbose, sentiment
        assert all(t["type"] == "topic" and "parentRefs" in t for t in insights.topics)
        for kind, type_ in (
            ("questions", "question"),
            ("action_items", "action_item"),
            ("follow_ups", "follow_up"),
        ):
            items = getattr(insights, kind)
            assert items and all(item["type"] == type_ for item in items), kind
        assert insights.members and all("name" in m for m in insights.members)
        assert insights.summary and all("text" in s for s in insights.summary)
        assert {"metrics", "members"} <= set(insights.analytics)
        assert insights.entities and all("messageRefs" in e for e in insights.entities)
        assert [t["name"] for t in insights.trackers] == ["Pricing"]  # the bare array
        assert insights.trackers[0]["matches"]
        assert set(INSIGHT_KINDS) == set(KINDS)

    def test_only_requested_kinds(self, sb: Sandbox, tmp_path: Path) -> None:
        """Kinds not asked for are neither requested nor filled."""
        path = tmp_path / "a.wav"
        write_wav(path, 8_000)
        insights = fetch(sb, path, ("messages", "members"))
        assert insights.messages and insights.members
        assert insights.topics == [] and insights.analytics == {}
        requests_of(sb, "conversation")  # settles the counters
        routes = sb.stats()["requests"]
        assert "conversation_topics" not in routes and "conversation_summary" not in routes
        assert requests_of(sb, "conversation") == {"200": 1}

    def test_summary_not_ready_is_empty(
        self, make_sandbox: Callable[..., Sandbox], tmp_path: Path
    ) -> None:
        """The summary's 404 while the job runs yields an empty summary, not an error."""
        sb = make_sandbox(job_seconds=5)
        path = tmp_path / "a.wav"
        write_wav(path, 8_000)
        insights = fetch(sb, path, ("summary", "messages"), wait=False)
        assert insights.summary == [] and insights.messages == []
        assert requests_of(sb, "conversation_summary") == {"404": 1}

    def test_unknown_kind(self, sb: Sandbox) -> None:
        """An unknown kind is Permanent before any request."""

        async def scenario() -> None:
            client = make_client(sb)
            try:
                await client.fetch_insights("1", ["messages", "vibes"])
            finally:
                await client.aclose()

        with pytest.raises(Permanent, match="unknown insight kind"):
            asyncio.run(scenario())
        assert sb.stats()["requests"] == {}

    def test_unknown_conversation(self, sb: Sandbox) -> None:
        """A conversation the API does not know is Permanent."""

        async def scenario() -> None:
            client = make_client(sb)
            try:
                await client.fetch_insights("424242", ["messages"])
            finally:
                await client.aclose()

        with pytest.raises(Permanent, match="HTTP 404"):
            asyncio.run(scenario())

    def test_a_few_kinds_at_a_time(self) -> None:
        """Every kind is read, at most FETCHES_AT_ONCE requests in flight: a burst of eleven
        per finished job would grow the connection pool, whose bookkeeping on every request
        compares each connection with every other."""
        in_flight, most, paths = [0], [0], []

        async def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path.startswith("/oauth2"):
                return httpx.Response(200, json={"accessToken": "t", "expiresIn": 86400})
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
            await asyncio.sleep(0.01)
            in_flight[0] -= 1
            paths.append(request.url.path)
            kind = request.url.path.rsplit("/", 1)[-1]
            if kind == "analytics":
                return httpx.Response(200, json={"metrics": []})
            if kind == "trackers-detected":
                return httpx.Response(200, json=[])
            key = {"action-items": "actionItems", "follow-ups": "followUps"}.get(kind, kind)
            return httpx.Response(200, json={key: [], "id": "42"})

        async def scenario() -> Insights:
            options = {"base_url": "https://api.test", "app_id": "a", "app_secret": "b"}
            client = SymblClient(from_mapping(options), transport=httpx.MockTransport(handler))
            try:
                return await client.fetch_insights("42", list(KINDS))
            finally:
                await client.aclose()

        insights = asyncio.run(scenario())
        assert len(paths) == 1 + len(KINDS) and insights.conversation["id"] == "42"
        assert most[0] == FETCHES_AT_ONCE


class TestFindConversations:
    def test_by_name_and_time(self, make_sandbox: Callable[..., Sandbox]) -> None:
        """Exact name, created at or after the cut-off less 5 s, newest first."""
        sb = make_sandbox(concurrency_limit=20)

        async def scenario() -> dict[str, list[str]]:
            client = make_client(sb)
            try:
                ids = []
                for name in ("target", "other", "target", "targets"):
                    sub = await client.submit(URL, None, Params(name=name), None)
                    ids.append(sub.conversation_id)
                    await asyncio.sleep(0.01)
                now = time.time()
                return {
                    "ids": ids,
                    "now": await client.find_conversations("target", now - 60),
                    "tolerance": await client.find_conversations("target", now + 4),
                    "future": await client.find_conversations("target", now + 10),
                    "none": await client.find_conversations("nobody", 0),
                }
            finally:
                await client.aclose()

        got = asyncio.run(scenario())
        ids = got["ids"]
        assert got["now"] == [ids[2], ids[0]]
        assert got["tolerance"] == [ids[2], ids[0]]
        assert got["future"] == []
        assert got["none"] == []

    def test_pages_past_the_first(self, make_sandbox: Callable[..., Sandbox]) -> None:
        """A match beyond the first page of 100 is still found; paging stops after it."""
        sb = make_sandbox(concurrency_limit=500, job_seconds=0.05)

        async def scenario() -> tuple[str, list[str]]:
            client = make_client(sb)
            try:
                started = time.time()
                first = await client.submit(URL, None, Params(name="needle"), None)
                for i in range(105):
                    await client.submit(URL, None, Params(name=f"hay-{i}"), None)
                return first.conversation_id, await client.find_conversations("needle", started)
            finally:
                await client.aclose()

        needle, found = asyncio.run(scenario())
        assert found == [needle]
        assert requests_of(sb, "conversation_list") == {"200": 2}
