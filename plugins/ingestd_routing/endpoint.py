"""Which of the four route families a recording goes to, with which Content-Type or URL.

File routes (the default): a video upload goes to ``/v1/process/video`` as ``video/mp4``
(the only video type the API takes, so anything else is a transcoder bug, not a guess);
sound goes to ``/v1/process/audio`` as ``audio/wav`` or ``audio/mpeg``, and other audio
formats without a Content-Type, which lets the API detect them (symbl-api.md §3).

URL routes, for a watch with ``endpoint.public_base_url``: the API downloads the original
file itself, so they are used for originals it takes as they are: the audio formats of §8
and mp4 video. Anything that must be converted first (mov, mkv, webm, avi, or a video whose
sound alone is sent with ``transcode.video_as_audio``) goes through the file routes.
"""

from __future__ import annotations

from ingestd import Endpoint, EndpointKind, Media, Permanent, Recording

from .options import EndpointOptions

URL_AUDIO_SUFFIXES = frozenset(
    {".mp3", ".wav", ".wave", ".amr", ".aac", ".ac3", ".aif", ".aiff", ".flac", ".ogg",
     ".opus", ".wma", ".m4a"}
)  # fmt: skip
"""Originals the audio URL routes take as they are (symbl-api.md §8)."""
URL_VIDEO_SUFFIXES = frozenset({".mp4", ".m4v"})
"""Originals the video URL routes take as they are: mp4 only."""


def choose(recording: Recording, media: Media, options: EndpointOptions) -> Endpoint:
    """The endpoint for `recording`, whose upload ffprobe described as `media`."""
    url = url_endpoint(recording, media, options)
    if url is not None:
        return url
    if media.kind == "video":
        if "mp4" not in media.container.split(","):
            raise Permanent(
                f"{recording.relpath}: the file to upload is {media.container} video, but the "
                "video routes take mp4 only; is the ffmpeg plugin's transcode overridden?"
            )
        return Endpoint(EndpointKind.VIDEO, content_type="video/mp4")
    return Endpoint(EndpointKind.AUDIO, content_type=audio_content_type(media))


def url_endpoint(recording: Recording, media: Media, options: EndpointOptions) -> Endpoint | None:
    """A URL route, when the watch publishes its files and the original can go as it is."""
    if options.public_base_url is None:
        return None
    suffix = recording.path.suffix.lower()
    if media.kind == "video" and suffix in URL_VIDEO_SUFFIXES:
        kind = EndpointKind.VIDEO_URL
    elif media.kind == "audio" and suffix in URL_AUDIO_SUFFIXES:
        kind = EndpointKind.AUDIO_URL
    else:
        return None
    return Endpoint(kind, url=options.url_for(recording.relpath))


def audio_content_type(media: Media) -> str | None:
    """``audio/wav``, ``audio/mpeg``, or None to let the API detect the format: for sound,
    ffprobe's container name decides (the only two audio types the API names)."""
    formats = media.container.split(",")
    if "wav" in formats:
        return "audio/wav"
    if "mp3" in formats:
        return "audio/mpeg"
    return None
