"""Endpoints and parameters end to end: the real daemon, real media from ffmpeg, and what
reached the sandbox (route, Content-Type, parameters, bytes) for every container and codec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import yaml

from ingestd import mediagen
from ingestd.testing import IngestdEnv, drop
from ingestd.testing import sha256_of as sha256

SECONDS = 2
BASE = "https://media.example.com/public/"
WAV_HEADER_MAX = 200  # RIFF header plus ffmpeg's optional chunks


def by_name(sandbox: Any) -> dict[str, dict[str, Any]]:
    """Created submissions keyed by the conversation name they were sent with; the daemon's
    own upload tag (checked here) is taken out of each one's params, leaving the user's."""
    subs = [s for s in sandbox.submissions() if s["outcome"] == "created"]
    for sub in subs:
        tag = sub["params"].pop("metadata", {}).get("ingestdUploadId")
        assert isinstance(tag, str) and len(tag) == 32, f"every POST is tagged: {sub['params']}"
    out = {s["params"]["name"]: s for s in subs}
    assert len(out) == len(subs), f"one submission per recording: {[s['params'] for s in subs]}"
    return out


def start(env: IngestdEnv, *watches: dict[str, Any], **top: Any) -> Any:
    """Write a config with these watches (each a folder under the inbox); start the daemon."""
    config = env.config(**top)
    template = config["watch"][0]
    config["watch"] = [{**template, **w, "path": str(env.inbox / w["name"])} for w in watches]
    for w in config["watch"]:
        Path(w["path"]).mkdir(parents=True, exist_ok=True)
    env.config_path.write_text(yaml.safe_dump(config))
    daemon = env.daemon().start()
    daemon.wait_ready()
    return daemon


def pcm_bytes(rate: int, channels: int = 1) -> int:
    """The sound data of a 16-bit wav of SECONDS (headers excluded)."""
    return rate * SECONDS * 2 * channels


FRAME_SLACK_SAMPLES = {"radio": 2048, "dictation": 2048}
"""Codecs that work in frames change the length a little: an ADTS aac decodes with the
encoder's 1024 priming samples and a padded last frame (nothing in ADTS says to trim them);
a wma loses part of its last 2048-sample frame."""


def assert_wav_of(sub: dict[str, Any], rate: int, channels: int = 1, slack: int = 0) -> None:
    """A transcoded upload: a wav of the expected rate and channels, judged by its size,
    give or take `slack` samples."""
    payload = pcm_bytes(rate, channels)
    give = slack * 2 * channels
    low, high = payload - give, payload + give + WAV_HEADER_MAX + rate // 10
    assert low <= sub["size"] <= high, (sub["size"], rate)


class TestAudio:
    def test_every_audio_container_with_merged_parameters(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """Each audio format reaches the audio route with the right type, bytes and parameters."""
        daemon = start(
            ingestd_env,
            {
                "name": "calls",
                "patterns": [
                    *("*.wav", "*.mp3", "*.m4a", "*.flac", "*.ogg", "*.opus", "*.webm"),
                    *("*.aac", "*.wma", "*.amr"),
                ],
                "parameters": {"confidenceThreshold": 0.8, "customVocabulary": ["Symbl", "ACME"]},
            },
            parameters={"detectPhrases": True, "confidenceThreshold": 0.6},
        )
        folder = ingestd_env.inbox / "calls"
        staged = {
            "mono.wav": make_media("mono.wav", seconds=SECONDS),
            "stereo.wav": make_media("stereo.wav", seconds=SECONDS, channels=2),
            "phone.wav": make_media("phone.wav", seconds=SECONDS, sample_rate_hz=8000),
            "memo.mp3": make_media("memo.mp3", seconds=SECONDS),
            "bad.mp3": make_media("bad.mp3", seconds=SECONDS),
            "meeting.m4a": make_media("meeting.m4a", seconds=SECONDS),
            "lecture.flac": make_media("lecture.flac", seconds=SECONDS),
            "podcast.ogg": make_media("podcast.ogg", seconds=SECONDS),
            "voice.opus": make_media("voice.opus", seconds=SECONDS),
            # make_media takes .webm for video: this one is sound only (opus in webm)
            "clip.webm": mediagen.make_audio(
                ingestd_env.root / "staging" / "clip.webm", seconds=SECONDS, frequency_hz=777
            ),
            # the bundled ffmpeg has every encoder these need: a missing one fails here
            "radio.aac": make_media("radio.aac", seconds=SECONDS),  # ADTS, no duration stored
            "dictation.wma": make_media("dictation.wma", seconds=SECONDS),
            "cell.amr": make_media("cell.amr", seconds=SECONDS),  # AMR-NB: 8 kHz mono
        }
        (folder / "lecture.ingestd.yaml").write_text(
            "parameters:\n  languageCode: es-ES\n  confidenceThreshold: 0.9\n  name: Clase\n"
        )
        (folder / "podcast.ogg.ingestd.json").write_text('{"parameters": {"mode": "default"}}')
        (folder / "bad.ingestd.json").write_text('{"parameters": {"confidenceThreshold": 0.2}}')
        hashes = {name: sha256(path) for name, path in staged.items()}
        for path in staged.values():
            drop(path, folder)
        done = {name: "done" for name in staged if name != "bad.mp3"}
        ingestd_env.wait_states({**done, "bad.mp3": "rejected"})
        daemon.stop()

        subs = by_name(sandbox)
        assert set(subs) == {
            "mono",
            "stereo",
            "phone",
            "memo",
            "meeting",
            "Clase",
            "podcast",
            "voice",
            "clip",
            "radio",
            "dictation",
            "cell",
        }
        for sub in subs.values():
            assert sub["route"] == "audio" and sub["method"] == "POST"
            assert sub["content_length"] == sub["size"]
        # as is: the very bytes of the file, with the Content-Type of its format
        as_is = {
            "mono": ("mono.wav", "audio/wav"),
            "phone": ("phone.wav", "audio/wav"),
            "memo": ("memo.mp3", "audio/mpeg"),
        }
        for name, (file_name, content_type) in as_is.items():
            assert subs[name]["content_type"] == content_type
            assert subs[name]["sha256"] == hashes[file_name]
        # transcoded: a mono 16-bit wav at the source's rate
        for name, rate in (
            ("stereo", 16000),
            ("meeting", 16000),
            ("Clase", 16000),
            ("podcast", 16000),
            ("voice", 48000),
            ("clip", 48000),
            ("radio", 16000),
            ("dictation", 16000),
            ("cell", 8000),
        ):
            assert subs[name]["content_type"] == "audio/wav", name
            assert_wav_of(subs[name], rate, slack=FRAME_SLACK_SAMPLES.get(name, 0))
        assert len({s["conversationId"] for s in subs.values()}) == len(subs), "none: own each"

        # parameters: global defaults < watch < sidecar; smart defaults where nobody spoke
        merged = {
            "detectPhrases": True,
            "confidenceThreshold": 0.8,
            "customVocabulary": ["Symbl", "ACME"],
        }
        assert subs["mono"]["params"] == {**merged, "name": "mono"}
        assert subs["phone"]["params"] == {**merged, "name": "phone", "mode": "phone"}
        assert subs["cell"]["params"] == {**merged, "name": "cell", "mode": "phone"}
        for name in ("radio", "dictation"):
            assert subs[name]["params"] == {**merged, "name": name}
        assert subs["Clase"]["params"] == {
            **merged,
            "name": "Clase",
            "languageCode": "es-ES",
            "confidenceThreshold": 0.9,
        }
        assert subs["podcast"]["params"]["mode"] == "default"
        pairs = parse_qsl(subs["mono"]["query_string"])
        assert [v for k, v in pairs if k == "customVocabulary"] == ['["Symbl","ACME"]']
        assert dict(pairs)["detectPhrases"] == "true"

        rejected = {r["relpath"]: r for r in ingestd_env.rows()}["bad.mp3"]
        assert rejected["error"] == (
            "sidecar bad.ingestd.json: parameters.confidenceThreshold: expected a number "
            "from 0.5 to 1.0, got 0.2; fix it, then `ingestd retry` the recording"
        )

    def test_transcoded_sound_keeps_what_its_original_was(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """Resampled to 16 kHz, an 8 kHz call still goes with mode=phone; a sidecar asking
        for per-channel recognition of a stereo file the watch mixes to mono is rejected."""
        folder = ingestd_env.inbox / "upsampled"
        staged = [
            make_media("landline.flac", seconds=SECONDS, sample_rate_hz=8000),
            make_media("mobile.amr", seconds=SECONDS),
            make_media("studio.flac", seconds=SECONDS),
            make_media("desk.flac", seconds=SECONDS, channels=2),
        ]
        for path in staged:  # there before the daemon starts: its first scan finds them
            drop(path, folder)
        (folder / "desk.ingestd.yaml").write_text(
            "parameters: {enableSeparateRecognitionPerChannel: true}\n"
        )
        daemon = start(
            ingestd_env,
            {
                "name": "upsampled",
                "patterns": ["*.flac", "*.amr"],
                "transcode": {"sample_rate_hz": 16000},
            },
        )
        ingestd_env.wait_states(
            {"landline.flac": "done", "mobile.amr": "done", "studio.flac": "done"}
            | {"desk.flac": "rejected"}
        )
        daemon.stop()

        subs = by_name(sandbox)
        assert set(subs) == {"landline", "mobile", "studio"}
        for name in subs:
            assert subs[name]["content_type"] == "audio/wav", name
            assert_wav_of(subs[name], 16000)
        assert subs["landline"]["params"] == {"name": "landline", "mode": "phone"}
        assert subs["mobile"]["params"] == {"name": "mobile", "mode": "phone"}
        assert subs["studio"]["params"] == {"name": "studio"}
        rejected = {r["relpath"]: r for r in ingestd_env.rows()}["desk.flac"]
        assert rejected["error"] == (
            "sidecar desk.ingestd.yaml: parameters.enableSeparateRecognitionPerChannel: "
            "per-channel recognition needs two channels, but the transcoder mixes the 2 "
            "channels of desk.flac into one (the watch's transcode.channels is 1); set "
            "transcode.channels: 2 on watch[upsampled], then `ingestd retry` the recording"
        )


class TestVideo:
    def test_every_video_container_and_video_as_audio(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """Video goes to the video route as mp4 (as is or converted); video_as_audio sends sound."""
        patterns = ["*.mp4", "*.mov", "*.mkv", "*.webm", "*.avi"]
        daemon = start(
            ingestd_env,
            {"name": "video", "patterns": patterns},
            {"name": "sound", "patterns": patterns, "transcode": {"video_as_audio": True}},
        )
        video = {
            n: make_media(n, seconds=SECONDS)
            for n in ("demo.mp4", "clip.mov", "talk.mkv", "web.webm", "old.avi")
        }
        sound = {n: make_media(n, seconds=SECONDS) for n in ("interview.mp4", "panel.mkv")}
        mp4_hash = sha256(video["demo.mp4"])
        for path in video.values():
            drop(path, ingestd_env.inbox / "video")
        for path in sound.values():
            drop(path, ingestd_env.inbox / "sound")
        ingestd_env.wait_states({n: "done" for n in video} | {n: "done" for n in sound})
        daemon.stop()

        subs = by_name(sandbox)
        for name in ("demo", "clip", "talk", "web", "old"):
            assert (subs[name]["route"], subs[name]["content_type"]) == ("video", "video/mp4")
            assert subs[name]["size"] > 10_000, "a real video, not an empty shell"
        assert subs["demo"]["sha256"] == mp4_hash, "an mp4 goes as it is"
        # the others were converted; "done" means the sandbox found mp4 bytes in each
        for name in ("interview", "panel"):
            assert (subs[name]["route"], subs[name]["content_type"]) == ("audio", "audio/wav")
            assert_wav_of(subs[name], 48000)  # make_video's sound is 48 kHz


class TestUrlRoutesAndSpeakers:
    def test_public_files_by_url_and_speakers_per_channel(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """A public watch sends URLs for files usable as is; mapped speakers go per channel."""
        daemon = start(
            ingestd_env,
            {
                "name": "public",
                "patterns": ["*.wav", "*.mp4", "*.mov"],
                "endpoint": {"public_base_url": BASE},
                "parameters": {"enableSpeakerDiarization": True, "diarizationSpeakerCount": 2},
            },
            {
                "name": "desk",
                "patterns": ["*.wav"],
                "endpoint": {"speakers": ["Agent", {"name": "Customer", "email": "c@x.io"}]},
                "transcode": {"channels": 2},
            },
        )
        public = ingestd_env.inbox / "public"
        drop(make_media("call 1.wav", seconds=SECONDS), public / "team a")
        drop(make_media("demo.mp4", seconds=SECONDS), public)
        drop(make_media("screen.mov", seconds=SECONDS), public)
        stereo = make_media("desk-call.wav", seconds=SECONDS, channels=2)
        stereo_hash = sha256(stereo)
        drop(stereo, ingestd_env.inbox / "desk")
        ingestd_env.wait_states(
            {
                "team a/call 1.wav": "done",
                "demo.mp4": "done",
                "screen.mov": "done",
                "desk-call.wav": "done",
            }
        )
        daemon.stop()

        subs = by_name(sandbox)
        call, demo, screen = subs["call 1"], subs["demo"], subs["screen"]
        assert (call["route"], call["url"]) == ("audio_url", BASE + "team%20a/call%201.wav")
        assert (demo["route"], demo["url"]) == ("video_url", BASE + "demo.mp4")
        assert call["content_type"] == "application/json" and call["size"] is None
        assert dict(parse_qsl(call["query_string"])) == {
            "enableSpeakerDiarization": "true",
            "diarizationSpeakerCount": "2",
        }, "the diarization keys travel in the query, the rest in the JSON body"
        assert call["params"]["name"] == "call 1"
        assert (screen["route"], screen["content_type"]) == ("video", "video/mp4"), (
            "a mov must be converted, so it is uploaded, not fetched by URL"
        )

        desk = subs["desk-call"]
        assert (desk["route"], desk["content_type"], desk["sha256"]) == (
            "audio",
            "audio/wav",
            stereo_hash,
        ), "stereo kept as it is for per-channel recognition"
        assert desk["params"]["enableSeparateRecognitionPerChannel"] is True
        assert desk["params"]["channelMetadata"] == [
            {"channel": 1, "speaker": {"name": "Agent"}},
            {"channel": 2, "speaker": {"name": "Customer", "email": "c@x.io"}},
        ]
        raw = dict(parse_qsl(desk["query_string"]))
        assert json.loads(raw["channelMetadata"]) == desk["params"]["channelMetadata"]
