"""The routing plugin's hooks: watch validation at start-up, and each recording's parameters
merged (config, watch, sidecar), completed with smart defaults and checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ingestd.errors import Permanent, Rejected
from ingestd.model import Endpoint, EndpointKind, Media, Params
from ingestd_routing import ingestd_set_parameters, ingestd_validate_watch

from .support import MONO_WAV, MP4, PHONE_AMR, PHONE_WAV, STEREO_FLAC, STEREO_WAV, recording

AUDIO = Endpoint(EndpointKind.AUDIO, "audio/wav")


def parameters_for(rec: Any, media: Media = MONO_WAV) -> dict[str, Any]:
    params = Params()
    ingestd_set_parameters(recording=rec, media=media, endpoint=AUDIO, params=params)
    return dict(params)


class TestValidateWatch:
    def test_good_watch(self, tmp_path: Path) -> None:
        """A valid watch has no problems."""
        rec = recording(tmp_path, parameters={"languageCode": "en-GB", "detectPhrases": True})
        assert ingestd_validate_watch(rec.watch) == []

    def test_parameters_and_endpoint_problems_together(self, tmp_path: Path) -> None:
        """Every problem of both sections comes back at once, each naming watch and key."""
        rec = recording(
            tmp_path,
            parameters={"confidenceThreshold": 0.2, "mode": "loud"},
            endpoint={"public_base_url": 3},
        )
        assert ingestd_validate_watch(rec.watch) == [
            "watch[sales].parameters.confidenceThreshold: expected a number from 0.5 to 1.0, "
            "got 0.2",
            "watch[sales].parameters.mode: expected one of phone, default, got 'loud'",
            "watch[sales].endpoint.public_base_url: expected an http(s) URL such as "
            "'https://media.example.com/calls/', got 3",
        ]

    @pytest.mark.parametrize(
        ("parameters", "transcode", "problem"),
        [
            ({"channelMetadata": [{"channel": 1, "speaker": {"name": "A"}}]}, {}, False),
            (
                {"channelMetadata": [{"channel": 1, "speaker": {"name": "A"}}]},
                {"channels": 1},
                True,
            ),
            (
                {"channelMetadata": [{"channel": 1, "speaker": {"name": "A"}}]},
                {"channels": 2},
                False,
            ),
            ({"enableSeparateRecognitionPerChannel": True}, {}, False),
            ({"enableSeparateRecognitionPerChannel": True}, {"channels": 1}, True),
        ],
    )
    def test_per_channel_needs_both_channels_kept(
        self, tmp_path: Path, parameters: dict, transcode: dict, problem: bool
    ) -> None:
        """Per-channel parameters with a transcoder mixing down to mono are caught at start-up."""
        rec = recording(tmp_path, parameters=parameters, transcode=transcode)
        lines = ingestd_validate_watch(rec.watch)
        assert bool(lines) is problem
        assert all(line.endswith("set transcode.channels: 2") for line in lines)


class TestMerge:
    def test_watch_parameters_and_name(self, tmp_path: Path) -> None:
        """The watch's parameters are sent, and name is the file name without suffix."""
        rec = recording(tmp_path, "team/call-0412.wav", parameters={"languageCode": "en-GB"})
        assert parameters_for(rec) == {"languageCode": "en-GB", "name": "call-0412"}

    def test_sidecar_overrides_the_watch(self, tmp_path: Path) -> None:
        """Sidecar parameters win over the watch's, which stay for the keys it leaves."""
        (tmp_path / "call.ingestd.yaml").write_text(
            "parameters:\n  languageCode: es-ES\n  name: Llamada\n"
        )
        rec = recording(tmp_path, parameters={"languageCode": "en-GB", "detectPhrases": True})
        assert parameters_for(rec) == {
            "languageCode": "es-ES",
            "detectPhrases": True,
            "name": "Llamada",
        }

    def test_bad_sidecar_parameter_rejects_naming_the_sidecar(self, tmp_path: Path) -> None:
        """An invalid sidecar value rejects the recording, naming the sidecar and the key."""
        (tmp_path / "call.ingestd.json").write_text('{"parameters": {"confidenceThreshold": 2}}')
        with pytest.raises(Rejected) as caught:
            parameters_for(recording(tmp_path))
        assert str(caught.value) == (
            "sidecar call.ingestd.json: parameters.confidenceThreshold: expected a number "
            "from 0.5 to 1.0, got 2; fix it, then `ingestd retry` the recording"
        )

    def test_sidecar_contradicting_the_watch_is_rejected(self, tmp_path: Path) -> None:
        """A sidecar that turns per-channel off under the watch's channelMetadata is caught."""
        (tmp_path / "call.ingestd.yaml").write_text(
            "parameters: {enableSeparateRecognitionPerChannel: false}"
        )
        channels = [{"channel": 1, "speaker": {"name": "A"}}]
        rec = recording(tmp_path, parameters={"channelMetadata": channels})
        with pytest.raises(Rejected, match=r"parameters.channelMetadata: only used with"):
            parameters_for(rec)

    def test_invalid_watch_parameters_fail_permanently(self, tmp_path: Path) -> None:
        """Without a sidecar to blame (a config that skipped validation) it is Permanent."""
        with pytest.raises(Permanent, match=r"call.wav: invalid parameters: mode: expected"):
            parameters_for(recording(tmp_path, parameters={"mode": "loud"}))


class TestSmartDefaults:
    def test_phone_mode_at_8_khz(self, tmp_path: Path) -> None:
        """Sound at 8 kHz or less is sent with mode: phone."""
        assert parameters_for(recording(tmp_path), PHONE_WAV)["mode"] == "phone"
        assert "mode" not in parameters_for(recording(tmp_path), MONO_WAV)

    def test_phone_mode_follows_the_original_not_the_upload(self, tmp_path: Path) -> None:
        """An 8 kHz call resampled to 16 kHz by the transcoder is still sent as a call."""
        call = recording(tmp_path, "call.amr", transcode={"sample_rate_hz": 16000}, media=PHONE_AMR)
        assert parameters_for(call, MONO_WAV)["mode"] == "phone"
        wideband = recording(tmp_path, "memo.flac", media=Media("flac", 2.0, "flac", 1, 44100))
        assert "mode" not in parameters_for(wideband, MONO_WAV)

    def test_explicit_mode_wins(self, tmp_path: Path) -> None:
        """A mode the user set is never replaced."""
        rec = recording(tmp_path, parameters={"mode": "default"})
        assert parameters_for(rec, PHONE_WAV)["mode"] == "default"

    def test_explicit_name_wins(self, tmp_path: Path) -> None:
        """A name from the sidecar is kept."""
        (tmp_path / "call.ingestd.yaml").write_text("parameters: {name: Board meeting}")
        assert parameters_for(recording(tmp_path))["name"] == "Board meeting"

    def test_speakers_become_channel_metadata(self, tmp_path: Path) -> None:
        """Mapped speakers give per-channel recognition with channelMetadata on stereo."""
        rec = recording(
            tmp_path,
            endpoint={"speakers": ["Agent", {"name": "Customer", "email": "c@x.io"}]},
            transcode={"channels": 2},
        )
        params = parameters_for(rec, STEREO_WAV)
        assert params["enableSeparateRecognitionPerChannel"] is True
        assert params["channelMetadata"] == [
            {"channel": 1, "speaker": {"name": "Agent"}},
            {"channel": 2, "speaker": {"name": "Customer", "email": "c@x.io"}},
        ]

    def test_speakers_skip_mono_files(self, tmp_path: Path) -> None:
        """A mono file has no channels to separate: no channelMetadata."""
        rec = recording(tmp_path, endpoint={"speakers": ["A", "B"]}, transcode={"channels": 2})
        params = parameters_for(rec, MONO_WAV)
        assert (
            "channelMetadata" not in params and "enableSeparateRecognitionPerChannel" not in params
        )

    def test_sidecar_diarization_replaces_the_watch_speakers(self, tmp_path: Path) -> None:
        """A sidecar asking for diarization gets it, without the watch's speakers."""
        (tmp_path / "call.ingestd.yaml").write_text(
            "parameters: {enableSpeakerDiarization: true, diarizationSpeakerCount: 3}"
        )
        rec = recording(tmp_path, endpoint={"speakers": ["A", "B"]}, transcode={"channels": 2})
        params = parameters_for(rec, STEREO_WAV)
        assert params["enableSpeakerDiarization"] is True
        assert (
            "channelMetadata" not in params and "enableSeparateRecognitionPerChannel" not in params
        )

    def test_channel_metadata_switches_per_channel_on(self, tmp_path: Path) -> None:
        """channelMetadata in the parameters turns per-channel recognition on by itself."""
        channels = [{"channel": 1, "speaker": {"name": "A"}}]
        params = parameters_for(recording(tmp_path, parameters={"channelMetadata": channels}))
        assert params["enableSeparateRecognitionPerChannel"] is True

    def test_video_keeps_its_phone_rule(self, tmp_path: Path) -> None:
        """Defaults follow the sound of any upload, video included (48 kHz: no phone)."""
        assert "mode" not in parameters_for(recording(tmp_path, "demo.mp4"), MP4)


class TestPerChannelOnOneChannel:
    def test_sidecar_per_channel_on_a_mixed_down_upload_is_rejected(self, tmp_path: Path) -> None:
        """A stereo original mixed to mono by the transcoder: the sidecar's per-channel
        request is rejected, naming the key and the watch setting that keeps both."""
        (tmp_path / "call.ingestd.yaml").write_text(
            "parameters: {enableSeparateRecognitionPerChannel: true}"
        )
        with pytest.raises(Rejected) as caught:
            parameters_for(recording(tmp_path, "call.flac", media=STEREO_FLAC), MONO_WAV)
        assert str(caught.value) == (
            "sidecar call.ingestd.yaml: parameters.enableSeparateRecognitionPerChannel: "
            "per-channel recognition needs two channels, but the transcoder mixes the 2 "
            "channels of call.flac into one (the watch's transcode.channels is 1); set "
            "transcode.channels: 2 on watch[sales], then `ingestd retry` the recording"
        )

    def test_sidecar_channel_metadata_on_a_mono_original_is_rejected(self, tmp_path: Path) -> None:
        """channelMetadata (which implies per-channel) for a one-channel recording."""
        (tmp_path / "call.wav.ingestd.json").write_text(
            '{"parameters": {"channelMetadata": [{"channel": 1, "speaker": {"name": "A"}}]}}'
        )
        with pytest.raises(Rejected) as caught:
            parameters_for(recording(tmp_path, media=MONO_WAV), MONO_WAV)
        assert str(caught.value) == (
            "sidecar call.wav.ingestd.json: parameters.channelMetadata: per-channel "
            "recognition needs two channels, but call.wav has only one; fix it, then "
            "`ingestd retry` the recording"
        )

    def test_sidecar_per_channel_on_a_stereo_upload_is_sent(self, tmp_path: Path) -> None:
        """With both channels kept (transcode.channels: 2) the request goes through."""
        (tmp_path / "call.ingestd.yaml").write_text(
            "parameters: {enableSeparateRecognitionPerChannel: true}"
        )
        rec = recording(tmp_path, "call.flac", transcode={"channels": 2}, media=STEREO_FLAC)
        assert parameters_for(rec, STEREO_WAV)["enableSeparateRecognitionPerChannel"] is True

    def test_sidecar_turning_per_channel_off_is_fine_on_mono(self, tmp_path: Path) -> None:
        """Only a request for per-channel recognition is checked, not its refusal."""
        (tmp_path / "call.ingestd.yaml").write_text(
            "parameters: {enableSeparateRecognitionPerChannel: false}"
        )
        params = parameters_for(recording(tmp_path, media=STEREO_FLAC), MONO_WAV)
        assert params["enableSeparateRecognitionPerChannel"] is False


class TestFinalCheck:
    def _plugins_with(self, tmp_path: Path, body: str) -> Any:
        from ingestd.plugins import load_plugins

        local = tmp_path / "tweaks.py"
        local.write_text(
            "from ingestd import hookimpl\n"
            "@hookimpl\n"
            "def ingestd_set_parameters(recording, media, endpoint, params):\n" + body
        )
        return load_plugins((str(local),))

    def test_a_plugins_bad_value_fails_before_the_upload(self, tmp_path: Path) -> None:
        """A value a third-party plugin sets after the routing defaults is checked too: the
        recording fails naming the key, instead of the API answering 400."""
        plugins = self._plugins_with(tmp_path, "    params['confidenceThreshold'] = 0.2\n")
        rec = recording(tmp_path)
        with pytest.raises(Permanent) as failed:
            plugins.call_all(
                "ingestd_set_parameters", recording=rec, media=MONO_WAV, endpoint=AUDIO,
                params=Params(),
            )  # fmt: skip
        assert "parameters.confidenceThreshold: expected a number from 0.5 to 1.0, got 0.2" in (
            str(failed.value)
        )
        assert "fix the plugin" in str(failed.value)

    def test_a_plugins_good_value_passes(self, tmp_path: Path) -> None:
        """The final check lets a valid edit through, after the defaults were filled in."""
        plugins = self._plugins_with(tmp_path, "    params['languageCode'] = 'es-ES'\n")
        rec = recording(tmp_path)
        params = Params()
        plugins.call_all(
            "ingestd_set_parameters", recording=rec, media=MONO_WAV, endpoint=AUDIO, params=params
        )
        assert params["languageCode"] == "es-ES" and params["name"]
