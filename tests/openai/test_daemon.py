"""The daemon end to end (a subprocess) against the OpenAI-compatible emulator: every
format, a mapped conversation merged in order, a file over the size limit split and merged,
faults survived, and a SIGKILL mid-request resumed with no lost or doubled result."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from ingestd import executables
from ingestd.testing import drop, run_cli

from .conftest import API_KEY

FORMATS = (".wav", ".mp3", ".m4a", ".flac", ".mp4", ".mov", ".mkv")


def segments_of(result: dict) -> list[tuple[float, str]]:
    return [(m["timeOffset"], m["text"]) for m in result["messages"]]


def test_every_format_is_transcribed_once_and_delivered(openai_env, make_media) -> None:
    daemon = openai_env.openai_daemon().start()
    daemon.wait_ready()
    for n, suffix in enumerate(FORMATS):
        drop(make_media(f"call-{n}{suffix}", seconds=3), openai_env.inbox)
    openai_env.wait_states({f"call-{n}{s}": "done" for n, s in enumerate(FORMATS)}, timeout=120)
    daemon.stop()

    answered = openai_env.emulator.answered()
    assert len(answered) == len(FORMATS), [r.filename for r in answered]
    assert all(r.fields["response_format"] == "verbose_json" for r in answered)
    results = openai_env.results_json()
    assert len(results) == len(FORMATS)
    for result in results:
        assert [t for t, _ in segments_of(result)] == [0.0], "3 s: one 5-s segment"
        assert result["conversation"]["notProvided"] == [
            "topics",
            "questions",
            "action_items",
            "follow_ups",
            "members",
            "summary",
            "analytics",
            "entities",
            "trackers",
        ]
        assert result["topics"] == [] and result["action_items"] == []
    markdown = "\n".join(p.read_text() for p in openai_env.results.rglob("*.md"))
    assert "from 0 to 3 seconds" in markdown
    assert "Not provided by this engine: topics, questions" in markdown
    assert API_KEY not in daemon.log_text()


def test_a_mapped_three_part_conversation_is_merged_in_order(openai_env, make_media) -> None:
    """Parts of 4, 6 and 3 s: each transcribed on its own, merged under one id of ours with
    the offsets 0, 4 and 10 s; the sinks got the conversation after each part."""
    daemon = openai_env.openai_daemon(
        watch={"patterns": ["*.wav"], "conversation": {"by": "folder"}}
    ).start()
    daemon.wait_ready()
    folder = openai_env.inbox / "meeting-7"
    delivered = []
    for n, seconds in ((1, 4), (2, 6), (3, 3)):
        drop(make_media(f"part{n}.wav", seconds=seconds), folder)
        openai_env.wait_states({f"meeting-7/part{n}.wav": "done"}, timeout=60)
        (so_far,) = openai_env.results_json()
        delivered.append((len(so_far["ingestd"]["parts"]), len(so_far["messages"])))
    daemon.stop()
    assert delivered == [(1, 1), (2, 3), (3, 4)], "the sinks got the conversation after each part"

    rows = {r["relpath"]: r for r in openai_env.rows()}
    ids = {r["conversation_id"] for r in rows.values()}
    assert len(ids) == 1 and next(iter(ids)).startswith("openai-")
    (result,) = openai_env.results_json()
    assert [p["relpath"] for p in result["ingestd"]["parts"]] == [
        f"meeting-7/part{n}.wav" for n in (1, 2, 3)
    ]
    said = segments_of(result)
    assert [t for t, _ in said] == [0.0, 4.0, 9.0, 10.0]
    assert [text.split(" from ")[0] for _, text in said] == [
        "part1.wav",
        "part2.wav",
        "part2.wav",
        "part3.wav",
    ]
    assert result["conversation"]["duration"] == 13.0
    assert len(openai_env.emulator.answered()) == 3


def speech_with_pauses(path: Path, seconds: int) -> Path:
    """A tone that falls silent for 2 s in every 10 (8–10, 18–20, ...)."""
    tone = "if(lt(mod(t\\,10)\\,8)\\,0.5*sin(2*PI*440*t)\\,0)"
    subprocess.run(
        [executables.ffmpeg(), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"aevalsrc={tone}:s=16000:d={seconds}", "-ac", "1", str(path)],
        check=True,
    )  # fmt: skip
    return path


def test_a_file_over_the_limit_is_split_at_silences_and_merged(openai_env, tmp_path: Path) -> None:
    """A 90-s wav (2.9 MB) for a server taking 100 kB: compacted to 32 kbit/s mp3 (360 kB),
    then cut in the pauses into pieces under the limit, sent in order, merged on one line."""
    limit = 100_000
    openai_env.emulator.options.max_upload_bytes = limit
    daemon = openai_env.openai_daemon({"max_upload_bytes": limit}).start()
    daemon.wait_ready()
    drop(speech_with_pauses(tmp_path / "long.wav", 90), openai_env.inbox)
    openai_env.wait_states({"long.wav": "done"}, timeout=120)
    daemon.stop()

    requests = openai_env.emulator.requests
    assert all(r.status == 200 for r in requests), [(r.size_bytes, r.status) for r in requests]
    assert len(requests) >= 4 and all(r.size_bytes <= limit for r in requests)
    assert [r.filename for r in requests] == [
        f"piece-{n:03d}.mp3" for n in range(1, 1 + len(requests))
    ]
    fitted = daemon.events()
    (event,) = [e for e in fitted if e.get("event") == "upload_fitted"]
    cuts = event["offsets_s"][1:]
    assert all(8.0 <= cut % 10 <= 10.0 for cut in cuts), f"cut outside a pause: {cuts}"
    (result,) = openai_env.results_json()
    times = [t for t, _ in segments_of(result)]
    assert times == sorted(times) and times[0] == 0.0
    assert abs(result["conversation"]["duration"] - 90.0) < 0.5
    assert abs(sum(r.duration_seconds for r in requests) - 90.0) < 0.5


def test_faults_are_survived_and_permanent_answers_fail_with_the_servers_message(
    openai_env, make_media
) -> None:
    emulator = openai_env.emulator
    emulator.fail_next(429, retry_after=0.2)
    emulator.fail_next(500, count=2)
    emulator.drop_next()
    daemon = openai_env.openai_daemon().start()
    daemon.wait_ready()
    drop(make_media("flaky.wav", seconds=2), openai_env.inbox)
    openai_env.wait_states({"flaky.wav": "done"}, timeout=60)
    statuses = [r.status for r in emulator.requests]
    assert statuses == [0, 429, 500, 500, 200], "dropped, 429, 500 twice, then answered"

    emulator.fail_next(400)
    drop(make_media("refused.wav", seconds=2), openai_env.inbox)
    openai_env.wait_states({"refused.wav": "failed"}, timeout=60)
    emulator.options.max_upload_bytes = 1000
    drop(make_media("big.wav", seconds=2), openai_env.inbox)
    openai_env.wait_states({"big.wav": "failed"}, timeout=60)
    daemon.stop()
    errors = {r["relpath"]: r["error"] for r in openai_env.rows()}
    assert "HTTP 400: emulated fault: HTTP 400" in errors["refused.wav"]
    assert "HTTP 413: Maximum content size limit (1000) exceeded" in errors["big.wav"]
    assert "openai.max_upload_bytes" in errors["big.wav"]
    assert [r.status for r in emulator.requests][-2:] == [400, 413], "never retried"


def test_sigkill_mid_request_is_asked_again_without_a_lost_or_doubled_result(
    openai_env, make_media
) -> None:
    emulator = openai_env.emulator
    emulator.options.answer_delay_seconds = 30.0
    daemon = openai_env.openai_daemon().start()
    daemon.wait_ready()
    drop(make_media("call.wav", seconds=7), openai_env.inbox)
    assert emulator.wait_in_flight(60), "the transcription never started"
    daemon.kill()
    assert openai_env.states() == {"call.wav": "submitting"}

    emulator.options.answer_delay_seconds = 0.0
    again = openai_env.openai_daemon().start()
    again.wait_ready()
    openai_env.wait_states({"call.wav": "done"}, timeout=60)
    again.stop()

    asked = [r for r in emulator.requests if r.filename == "call.wav"]
    assert len(asked) == 2, "asked once by each daemon"
    (result,) = openai_env.results_json()
    assert segments_of(result) == [
        (0.0, f"call.wav from 0 to 5 seconds ({asked[0].sha256[:8]})."),
        (5.0, f"call.wav from 5 to 7 seconds ({asked[0].sha256[:8]})."),
    ]


def test_check_tries_the_server_and_names_a_refused_key(openai_env) -> None:
    openai_env.openai_daemon()  # writes the config
    good = run_cli(openai_env, "check")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "key accepted, model whisper-1 offered" in good.stdout + good.stderr
    openai_env.key_file.write_text("sk-not-the-key-0000\n")
    bad = run_cli(openai_env, "check")
    assert bad.returncode != 0
    out = bad.stdout + bad.stderr
    assert "refused the API key" in out and "sk-not-the-key" not in out


def test_every_sink_renders_a_transcript_only_result(openai_env, make_media) -> None:
    """Files (Markdown, SRT, VTT) and the database take what the engine gives: timed lines
    without speakers, and the kinds it does not produce marked, never made up."""
    database = openai_env.root / "results.db"
    daemon = openai_env.openai_daemon(
        sinks=[
            {
                "type": "files",
                "path": str(openai_env.results),
                "formats": ["markdown", "srt", "vtt"],
            },
            {"type": "database", "url": f"sqlite:///{database}"},
        ]
    ).start()
    daemon.wait_ready()
    drop(make_media("call.wav", seconds=7), openai_env.inbox)
    openai_env.wait_states({"call.wav": "done"}, timeout=60)
    daemon.stop()

    (srt,) = openai_env.results.rglob("*.srt")
    assert srt.read_text().split("\n\n")[1].splitlines()[:2] == [
        "2",
        "00:00:05,000 --> 00:00:07,000",
    ]
    (vtt,) = openai_env.results.rglob("*.vtt")
    assert "00:00:00.000 --> 00:00:05.000\ncall.wav from 0 to 5 seconds" in vtt.read_text()
    (markdown,) = openai_env.results.rglob("*.md")
    text = markdown.read_text()
    assert "- Duration: 00:07" in text and "Not provided by this engine" in text
    assert "## Topics" not in text and "Unknown speaker" not in text
    assert "**[00:05]**\ncall.wav from 5 to 7 seconds" in text
    with sqlite3.connect(database) as db:
        messages = db.execute(
            "SELECT position, time_offset, duration, speaker_name, text FROM messages "
            "ORDER BY position"
        ).fetchall()
        (raw,) = db.execute("SELECT raw FROM conversations").fetchone()
        topics = db.execute("SELECT count(*) FROM topics").fetchone()[0]
    assert [m[:4] for m in messages] == [(0, 0.0, 5.0, None), (1, 5.0, 2.0, None)]
    assert json.loads(raw)["notProvided"][:2] == ["topics", "questions"] and topics == 0


def test_no_more_transcriptions_at_once_than_the_concurrency_limit(openai_env, make_media) -> None:
    emulator = openai_env.emulator
    emulator.options.answer_delay_seconds = 1.0
    daemon = openai_env.openai_daemon({"max_concurrent_jobs": 2}).start()
    daemon.wait_ready()
    for n in range(5):
        drop(make_media(f"call-{n}.wav", seconds=1), openai_env.inbox)
    openai_env.wait_states({f"call-{n}.wav": "done" for n in range(5)}, timeout=90)
    daemon.stop()
    assert emulator.max_in_flight == 2
