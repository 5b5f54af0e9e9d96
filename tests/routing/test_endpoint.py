"""Endpoint choice and the ``endpoint`` options of a watch."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestd.errors import ConfigError, Permanent
from ingestd.model import Endpoint, EndpointKind, Media
from ingestd_routing import ingestd_choose_endpoint, parse_options

from .support import MKV, MONO_WAV, MP3, MP4, OGG, recording

BASE = "https://media.example.com/calls/"


class TestFileRoutes:
    @pytest.mark.parametrize(
        ("relpath", "media", "expected"),
        [
            ("call.wav", MONO_WAV, Endpoint(EndpointKind.AUDIO, "audio/wav")),
            ("memo.mp3", MP3, Endpoint(EndpointKind.AUDIO, "audio/mpeg")),
            ("tone.flac", MONO_WAV, Endpoint(EndpointKind.AUDIO, "audio/wav")),  # transcoded
            ("tone.ogg", OGG, Endpoint(EndpointKind.AUDIO, None)),  # the API detects it
            ("demo.mp4", MP4, Endpoint(EndpointKind.VIDEO, "video/mp4")),
            ("demo.mov", MP4, Endpoint(EndpointKind.VIDEO, "video/mp4")),  # remuxed
            ("demo.mkv", MONO_WAV, Endpoint(EndpointKind.AUDIO, "audio/wav")),  # video_as_audio
        ],
    )
    def test_by_what_is_uploaded(
        self, tmp_path: Path, relpath: str, media: Media, expected: Endpoint
    ) -> None:
        """The route and Content-Type follow the file that will be uploaded."""
        assert ingestd_choose_endpoint(recording(tmp_path, relpath), media) == expected

    def test_video_that_is_not_mp4_fails_clearly(self, tmp_path: Path) -> None:
        """A non-mp4 video upload is a transcoder problem, said so, never sent mislabelled."""
        with pytest.raises(Permanent, match=r"demo.mkv: the file to upload is matroska,webm video"):
            ingestd_choose_endpoint(recording(tmp_path, "demo.mkv"), MKV)


class TestUrlRoutes:
    @pytest.mark.parametrize(
        ("relpath", "media", "expected"),
        [
            ("call.wav", MONO_WAV, Endpoint(EndpointKind.AUDIO_URL, url=BASE + "call.wav")),
            (
                "a b/café #1.mp3",
                MP3,
                Endpoint(EndpointKind.AUDIO_URL, url=BASE + "a%20b/caf%C3%A9%20%231.mp3"),
            ),
            ("tone.flac", MONO_WAV, Endpoint(EndpointKind.AUDIO_URL, url=BASE + "tone.flac")),
            ("demo.mp4", MP4, Endpoint(EndpointKind.VIDEO_URL, url=BASE + "demo.mp4")),
            ("demo.mov", MP4, Endpoint(EndpointKind.VIDEO, "video/mp4")),  # converted first
            ("demo.mp4", MONO_WAV, Endpoint(EndpointKind.AUDIO, "audio/wav")),  # video_as_audio
        ],
    )
    def test_public_files_go_by_url_when_usable_as_they_are(
        self, tmp_path: Path, relpath: str, media: Media, expected: Endpoint
    ) -> None:
        """With public_base_url, originals the API takes as they are go by URL, encoded."""
        rec = recording(tmp_path, relpath, endpoint={"public_base_url": BASE})
        assert ingestd_choose_endpoint(rec, media) == expected

    def test_base_without_trailing_slash(self, tmp_path: Path) -> None:
        """The base URL is joined with exactly one slash."""
        rec = recording(tmp_path, "x/call.wav", endpoint={"public_base_url": BASE.rstrip("/")})
        assert ingestd_choose_endpoint(rec, MONO_WAV).url == BASE + "x/call.wav"


class TestOptions:
    def test_defaults(self, tmp_path: Path) -> None:
        """No endpoint section: file routes, no speakers."""
        options = parse_options(recording(tmp_path).watch)
        assert (options.public_base_url, options.speakers) == (None, ())

    def test_speakers_shorthand(self, tmp_path: Path) -> None:
        """Speakers are names, mappings or null, in channel order."""
        rec = recording(
            tmp_path,
            endpoint={"speakers": ["Agent", None, {"name": "C", "email": "c@x.io"}]},
            transcode={"channels": 2},
        )
        options = parse_options(rec.watch)
        assert options.channel_metadata(2) == [{"channel": 1, "speaker": {"name": "Agent"}}]
        assert options.channel_metadata(3)[-1] == {
            "channel": 3,
            "speaker": {"name": "C", "email": "c@x.io"},
        }

    @pytest.mark.parametrize(
        ("endpoint", "parameters", "transcode", "line"),
        [
            (
                {"public_base_urls": BASE},
                {},
                {},
                "endpoint.public_base_urls: unknown key; did you mean 'public_base_url'?",
            ),
            (
                {"public_base_url": "media.example.com"},
                {},
                {},
                "endpoint.public_base_url: expected an http(s) URL such as "
                "'https://media.example.com/calls/', got 'media.example.com'",
            ),
            (
                {"public_base_url": BASE + "?sig=1"},
                {},
                {},
                "endpoint.public_base_url: expected a URL that file paths can be appended to "
                "(no ?query or #fragment)",
            ),
            (
                {"speakers": "Agent"},
                {},
                {"channels": 2},
                "endpoint.speakers: expected a list with one speaker per channel, got 'Agent'",
            ),
            (
                {"speakers": []},
                {},
                {"channels": 2},
                "endpoint.speakers: expected a list with one speaker per channel, got []",
            ),
            (
                {"speakers": [{"nom": "A"}]},
                {},
                {"channels": 2},
                "endpoint.speakers[0]: expected a name, {name, email} or null",
            ),
            (
                {"speakers": [{"name": "A", "phone": "1"}]},
                {},
                {"channels": 2},
                "endpoint.speakers[0]: unknown key 'phone'",
            ),
            (
                {"speakers": [None]},
                {},
                {"channels": 2},
                "endpoint.speakers: expected at least one named speaker",
            ),
            (
                {"speakers": ["A", "B"]},
                {},
                {"channels": 1},
                "endpoint.speakers: the transcoder would mix the channels into one; "
                "set transcode.channels: 2",
            ),
            (
                {"speakers": ["A", "B"]},
                {"enableSpeakerDiarization": True},
                {"channels": 2},
                "endpoint.speakers: the parameters enable speaker diarization",
            ),
            (
                {"speakers": ["A", "B"]},
                {"enableSeparateRecognitionPerChannel": False},
                {"channels": 2},
                "endpoint.speakers: needs enableSeparateRecognitionPerChannel",
            ),
            (
                {"speakers": ["A"]},
                {"channelMetadata": [{"channel": 1, "speaker": {"name": "A"}}]},
                {"channels": 2},
                "endpoint.speakers: parameters.channelMetadata maps the channels too",
            ),
        ],
    )
    def test_problems_name_the_key(
        self, tmp_path: Path, endpoint: dict, parameters: dict, transcode: dict, line: str
    ) -> None:
        """Each bad endpoint option is one line naming watch and key."""
        rec = recording(tmp_path, endpoint=endpoint, parameters=parameters, transcode=transcode)
        with pytest.raises(ConfigError) as caught:
            parse_options(rec.watch)
        assert len(caught.value.problems) == 1
        assert caught.value.problems[0].startswith(f"watch[sales].{line}")

    def test_per_channel_parameter_keeps_channels_for_speakers(self, tmp_path: Path) -> None:
        """With per-channel recognition on, the transcoder keeps both channels: speakers ok."""
        rec = recording(
            tmp_path,
            endpoint={"speakers": ["A", "B"]},
            parameters={"enableSeparateRecognitionPerChannel": True},
        )
        assert len(parse_options(rec.watch).speakers) == 2
