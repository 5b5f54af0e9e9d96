"""Waiting for jobs and messages: adaptive polling, transient errors, time limits."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from ingestd.errors import Permanent, Retryable
from ingestd.model import Endpoint, EndpointKind, JobStatus, Params, Submission, Upload
from ingestd.sandbox import Sandbox
from ingestd_symbl.client import SymblClient, poll_delays
from ingestd_symbl.options import from_mapping
from ingestd_symbl.polling import MIN_GAP_SECONDS, JobDurations, delays_around
from tests.symbl.conftest import make_client, requests_of, write_wav

WAV = Endpoint(EndpointKind.AUDIO, content_type="audio/wav")


async def submit_one(client: SymblClient, path: Path) -> Submission:
    return await client.submit(WAV, Upload(path, path.stat().st_size, None), Params(), None)


class FakeTime:
    """A monotonic clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def fake_client(fake: FakeTime, statuses: Callable[[], str], **options: object) -> SymblClient:
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/oauth2"):
            return httpx.Response(200, json={"accessToken": "t", "expiresIn": 86400})
        return httpx.Response(200, json={"id": "j", "status": statuses()})

    mapping = {"base_url": "https://api.test", "app_id": "a", "app_secret": "b", **options}
    return SymblClient(
        from_mapping(mapping),
        transport=httpx.MockTransport(handler),
        sleep=fake.sleep,
        clock=fake.clock,
    )


class TestSchedule:
    def test_geometric_and_capped(self) -> None:
        """Gaps grow ×1.5 from the first one up to the cap."""
        delays = list(itertools.islice(poll_delays(0.2, 1.0), 7))
        assert delays == pytest.approx([0.2, 0.3, 0.45, 0.675, 1.0, 1.0, 1.0])

    def test_first_poll_scaled_by_expected_duration(self) -> None:
        """With an expected duration, the first poll waits a tenth of it (within the bounds)."""
        fake = FakeTime()
        answers = iter(["in_progress", "completed"])

        async def scenario(expected: float | None) -> None:
            client = fake_client(fake, lambda: next(answers))
            try:
                assert (
                    await client.wait_for_job("j", expected_seconds=expected) is JobStatus.COMPLETED
                )
            finally:
                await client.aclose()

        asyncio.run(scenario(30.0))
        assert fake.sleeps == pytest.approx([3.0, 4.5])
        fake.sleeps.clear()
        answers = iter(["completed"])
        asyncio.run(scenario(3600.0))
        assert fake.sleeps == [10.0]

    def test_job_timeout_is_retryable(self) -> None:
        """A job still running after job_timeout_seconds ends the wait with Retryable."""
        fake = FakeTime()

        async def scenario() -> None:
            client = fake_client(fake, lambda: "in_progress", job_timeout_seconds=60)
            try:
                await client.wait_for_job("j")
            finally:
                await client.aclose()

        with pytest.raises(Retryable, match="still in_progress after 60 s"):
            asyncio.run(scenario())
        assert fake.now == pytest.approx(60.0)
        assert max(fake.sleeps) == 10.0  # never more than poll_max_seconds
        assert len(fake.sleeps) < 20


class TimedJobs:
    """A fake Job API on `FakeTime` whose jobs take `durations` seconds each, in order."""

    def __init__(self, fake: FakeTime, durations: list[float], **options: object) -> None:
        self.fake = fake
        self.durations = iter(durations)
        self.ends: dict[str, float] = {}
        self.polls: dict[str, int] = {}

        async def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path.startswith("/oauth2"):
                return httpx.Response(200, json={"accessToken": "t", "expiresIn": 86400})
            if request.method == "POST":
                job = f"j{len(self.ends)}"
                self.ends[job] = fake.now + next(self.durations)
                return httpx.Response(201, json={"conversationId": "c" + job, "jobId": job})
            job = request.url.path.rsplit("/", 1)[-1]
            self.polls[job] = self.polls.get(job, 0) + 1
            done = fake.now >= self.ends[job]
            return httpx.Response(
                200, json={"id": job, "status": "completed" if done else "in_progress"}
            )

        mapping = {"base_url": "https://api.test", "app_id": "a", "app_secret": "b", **options}
        self.client = SymblClient(
            from_mapping(mapping),
            transport=httpx.MockTransport(handler),
            sleep=fake.sleep,
            clock=fake.clock,
        )

    def run(self, jobs: int, media_seconds: float | None = None) -> list[tuple[float, int]]:
        """Submit and wait for `jobs` jobs one after another: (seen late by, polls) each."""

        async def scenario() -> list[tuple[float, int]]:
            seen = []
            try:
                for _ in range(jobs):
                    upload = Upload(Path("/dev/null"), 0, None)
                    sub = await self.client.submit(WAV, upload, Params(), None)
                    status = await self.client.wait_for_job(
                        sub.job_id, expected_seconds=media_seconds
                    )
                    assert status is JobStatus.COMPLETED
                    late = self.fake.now - self.ends[sub.job_id]
                    seen.append((late, self.polls[sub.job_id]))
            finally:
                await self.client.aclose()
            return seen

        return asyncio.run(scenario())


class TestLearnedSchedule:
    def test_delays_around_an_estimate(self) -> None:
        """Gaps of at most the cap up to the estimate, one landing on it, then dense ones
        from half the spread, at least a hundredth of the estimate."""
        delays = list(itertools.islice(delays_around(25.0, 10.0, spread=4.0), 6))
        assert delays == pytest.approx([10.0, 10.0, 5.0, 2.0, 3.0, 4.5])
        assert list(itertools.islice(delays_around(25.0, 10.0), 4)) == pytest.approx(
            [10.0, 10.0, 5.0, 0.25]
        )
        assert list(itertools.islice(delays_around(0.5, 10.0), 3)) == pytest.approx(
            [0.5, MIN_GAP_SECONDS, MIN_GAP_SECONDS * 1.5]
        )

    def test_estimates_per_media_second_and_per_job(self) -> None:
        """The estimate scales with the media's duration when it is known."""
        durations = JobDurations()
        assert durations.estimate(60.0) is None
        durations.learn(60.0, last_running=29.0, finished=31.0)  # took about 30 s
        assert durations.estimate(60.0) == pytest.approx(30.0)
        assert durations.estimate(120.0) == pytest.approx(60.0)
        assert durations.estimate(None) == pytest.approx(30.0)

    def test_finished_at_the_first_poll_pulls_the_estimate_down(self) -> None:
        """A job already done at the first poll may have taken less: the estimate shrinks
        (by about the spread), so it cannot only ever grow."""
        durations = JobDurations()
        durations.learn(None, last_running=0.0, finished=2.0)
        first = durations.estimate(None)
        assert first is not None and first < 2.0
        durations.learn(None, last_running=0.0, finished=first)
        second = durations.estimate(None)
        assert second is not None and second < first

    def test_spread_follows_how_much_jobs_vary(self) -> None:
        """Jobs that always take as long narrow the spread; varying ones widen it."""
        steady, varying = JobDurations(), JobDurations()
        for i in range(30):
            steady.learn(None, last_running=0.99, finished=1.01)
            varying.learn(None, last_running=0.5 + i % 2, finished=0.6 + i % 2)
        assert steady.spread(None) < 0.01
        assert varying.spread(None) > 0.3
        assert steady.estimate(None) == pytest.approx(1.0, abs=0.01)

    def test_jobs_started_together_pull_a_long_estimate_down(self) -> None:
        """Ten jobs started at once share one estimate; identical ones used to make the
        spread zero and leave an estimate 30 % too long for good. Now it comes down within
        a few rounds of 1 s jobs, and the first poll lands within 5 % of the end."""
        durations = JobDurations()
        for _ in range(10):  # the first round: found by the growing schedule
            durations.learn(None, last_running=0.95, finished=1.625)
        lateness = []
        for _ in range(6):
            estimate, spread = durations.estimate(None), durations.spread(None)
            assert estimate is not None
            seen = []
            for _ in range(10):  # each job: polls from the same estimate until it is done
                asked, last, gaps = 0.0, 0.0, delays_around(estimate, 10.0, spread)
                while True:
                    asked += next(gaps)
                    if asked >= 1.0:
                        break
                    last = asked
                seen.append((last, asked))
            for last, asked in seen:
                durations.learn(None, last_running=last, finished=asked)
            lateness.append(seen[0][1] - 1.0)
        assert lateness[0] > 0.25  # the first learned estimate was long
        assert max(lateness[3:]) < 0.05

    def test_steady_jobs_are_seen_at_once_with_one_or_two_polls(self) -> None:
        """After fifteen 1 s jobs, each is seen within a fiftieth of its length, with under
        1.8 polls on average, where the plain growing schedule is 0.6 s late with 4 polls."""
        fake = FakeTime()
        seen = TimedJobs(fake, [1.0] * 40).run(40, media_seconds=1.0)
        first_late, first_polls = seen[0]
        assert first_polls == 4 and first_late == pytest.approx(0.625)  # 0.2+0.3+0.45+0.675
        steady = seen[15:]
        assert max(late for late, _ in steady) < 0.02
        assert sum(polls for _, polls in steady) / len(steady) < 1.8

    def test_a_slower_job_than_expected_is_still_found_soon(self) -> None:
        """After 1 s jobs, a 5 s one is found by gaps growing from the estimate: late by
        well under half its length (a plain schedule from 0.2 s is 1.44 s late), not by a
        poll_max_seconds gap."""
        fake = FakeTime()
        seen = TimedJobs(fake, [1.0] * 10 + [5.0]).run(11)
        late, polls = seen[-1]
        assert late < 5.0 * 0.4 and polls < 15

    def test_a_wrong_long_estimate_is_no_later_than_the_cap(self) -> None:
        """Polls come at least every poll_max_seconds, whatever the estimate: a 10 s job
        after 100 s ones is seen within poll_max_seconds."""
        fake = FakeTime()
        seen = TimedJobs(fake, [100.0] * 3 + [10.0], poll_max_seconds=10).run(4)
        late, _ = seen[-1]
        assert late <= 10.0


class TestAgainstSandbox:
    def test_adaptive_polling(self, make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
        """Polls are few compared with a fixed 0.1 s interval, and completion is seen quickly."""
        sb = make_sandbox(job_seconds=2.0)
        path = tmp_path / "a.wav"
        write_wav(path, 1000)

        async def scenario() -> tuple[Submission, JobStatus, float]:
            client = make_client(sb, poll_initial_seconds=0.1, poll_max_seconds=0.5)
            try:
                sub = await submit_one(client, path)
                status = await client.wait_for_job(sub.job_id)
                return sub, status, time.time()
            finally:
                await client.aclose()

        sub, status, returned_at = asyncio.run(scenario())
        assert status is JobStatus.COMPLETED
        job = next(j for j in sb.jobs() if j["id"] == sub.job_id)
        created, completed = job["history"][0]["at"], job["history"][-1]["at"]
        polls = requests_of(sb, "job")["200"]
        fixed_polls = (completed - created) / 0.1
        assert polls <= 10 and polls < fixed_polls / 2
        assert returned_at - completed < 0.5 + 0.25

    def test_transient_errors_outlived(self, sb: Sandbox, tmp_path: Path) -> None:
        """503s and a 401 while polling are retried; the wait still ends in completed."""
        path = tmp_path / "a.wav"
        write_wav(path, 1000)

        async def scenario() -> JobStatus:
            client = make_client(sb)
            try:
                sub = await submit_one(client, path)
                sb.faults.arm({"kind": "status", "status": 503, "times": 2, "route": "job"})
                sb.faults.arm({"kind": "expire_tokens"})
                return await client.wait_for_job(sub.job_id)
            finally:
                await client.aclose()

        with capture_logs() as logs:
            assert asyncio.run(scenario()) is JobStatus.COMPLETED
        answers = requests_of(sb, "job")
        assert answers["503"] == 2 and answers["401"] == 1
        assert [e["status"] for e in logs if e["event"] == "api_retry"] == [503, 503]

    def test_polls_survive_exhausted_retries(self, sb: Sandbox, tmp_path: Path) -> None:
        """Even a poll that used up its retries does not end the wait."""
        path = tmp_path / "a.wav"
        write_wav(path, 1000)

        async def scenario() -> JobStatus:
            client = make_client(sb, max_retries=1)
            try:
                sub = await submit_one(client, path)
                sb.faults.arm({"kind": "status", "status": 500, "times": 3, "route": "job"})
                return await client.wait_for_job(sub.job_id)
            finally:
                await client.aclose()

        with capture_logs() as logs:
            assert asyncio.run(scenario()) is JobStatus.COMPLETED
        assert any(e["event"] == "job_poll_failed" for e in logs)

    def test_failed_job(self, sb: Sandbox, tmp_path: Path) -> None:
        """A job the API fails is returned as FAILED (a body that is not the declared media)."""
        path = tmp_path / "not-audio.wav"
        path.write_bytes(b"definitely not a wav file" * 10)

        async def scenario() -> JobStatus:
            client = make_client(sb)
            try:
                sub = await submit_one(client, path)
                return await client.wait_for_job(sub.job_id)
            finally:
                await client.aclose()

        assert asyncio.run(scenario()) is JobStatus.FAILED

    def test_unknown_job_is_permanent(self, sb: Sandbox) -> None:
        """Polling a job the API does not know is Permanent."""

        async def scenario() -> None:
            client = make_client(sb)
            try:
                await client.wait_for_job("00000000-0000-0000-0000-000000000000")
            finally:
                await client.aclose()

        with pytest.raises(Permanent, match="HTTP 404"):
            asyncio.run(scenario())

    def test_wait_for_messages(self, make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
        """True once the conversation has messages; False when time runs out first."""
        sb = make_sandbox(job_seconds=0.5)
        path = tmp_path / "a.wav"
        write_wav(path, 1000)

        async def scenario() -> tuple[bool, bool]:
            client = make_client(sb)
            try:
                sub = await submit_one(client, path)
                early = await client.wait_for_messages(sub.conversation_id, timeout_seconds=0.1)
                later = await client.wait_for_messages(sub.conversation_id, timeout_seconds=5)
                return early, later
            finally:
                await client.aclose()

        assert asyncio.run(scenario()) == (False, True)
