"""The nouns every stage and plugin shares: what a recording is, what ffprobe found, what
the API was asked and answered, and what the sinks receive.

Values are frozen dataclasses: hooks decide by returning new values, the core records them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ingestd.config import WatchConfig


@dataclass(frozen=True)
class Recording:
    """One settled file as the state store knows it.

    `watch` is the WatchConfig the file was found under, so plugins can read per-folder
    options (`recording.watch.options["transcode"]`, ...). `media` is what the probe found
    in the file itself (None until it is probed): hooks given the `media` of a transcoded
    upload still see what the recording was, e.g. its original sample rate.
    """

    id: int
    path: Path
    relpath: str
    watch: WatchConfig
    size_bytes: int
    mtime: float
    sha256: str
    state: str
    conversation_key: str | None = None
    conversation_id: str | None = None
    job_id: str | None = None
    attempts: int = 0
    error: str | None = None
    media: Media | None = None

    @property
    def name(self) -> str:
        """The file name, e.g. ``call-0412.m4a``."""
        return self.path.name


@dataclass(frozen=True)
class Media:
    """What ffprobe found in a file (attached cover pictures are not video)."""

    container: str
    duration_seconds: float | None
    audio_codec: str | None
    channels: int
    sample_rate_hz: int
    video_codec: str | None = None
    bit_rate: int | None = None

    @property
    def kind(self) -> str:
        """``"video"`` when there is a real video stream, else ``"audio"``."""
        return "video" if self.video_codec else "audio"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Media:
        return cls(**data)


@dataclass(frozen=True)
class TranscodePlan:
    """An ffmpeg run the core should perform, as a killable subprocess with a timeout.

    `argv` holds the literal placeholders ``{input}`` and ``{output}``; the core substitutes
    the source path and a work-directory path ending in `suffix`, runs it, checks the output
    and deletes it once the upload no longer needs it.
    """

    argv: tuple[str, ...]
    suffix: str
    description: str
    reencodes: bool
    timeout_seconds: float | None = None


class EndpointKind(StrEnum):
    """The four families of Symbl Async routes (symbl-api.md §3)."""

    AUDIO = "audio"
    VIDEO = "video"
    AUDIO_URL = "audio_url"
    VIDEO_URL = "video_url"

    @property
    def is_url(self) -> bool:
        return self in (EndpointKind.AUDIO_URL, EndpointKind.VIDEO_URL)


@dataclass(frozen=True)
class Endpoint:
    """Where to send a recording: the route family, the upload's Content-Type (file
    routes; None lets the API detect the audio format) or the public URL (URL routes)."""

    kind: EndpointKind
    content_type: str | None = None
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "content_type": self.content_type, "url": self.url}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Endpoint:
        return cls(EndpointKind(data["kind"]), data.get("content_type"), data.get("url"))


class Params(dict[str, Any]):
    """Symbl query parameters (camelCase keys as in symbl-api.md §3.1), edited in turn by
    every `ingestd_set_parameters` implementation."""


@dataclass(frozen=True)
class Piece:
    """A piece of an upload cut to fit a backend's ``max_upload_bytes``, and where it starts
    in the recording (`ingestd.hookspecs.ingestd_fit_upload`)."""

    path: Path
    offset_seconds: float
    duration_seconds: float | None = None


@dataclass(frozen=True)
class Upload:
    """The file actually sent: the original, or the transcoded copy in the work directory.

    `pieces` is set when the file is larger than the backend takes
    (``Backend.max_upload_bytes``): the same sound, compacted and cut, to send in order
    instead of `path`.
    """

    path: Path
    size_bytes: int
    content_type: str | None
    pieces: tuple[Piece, ...] = ()


@dataclass(frozen=True)
class Submission:
    """What a successful POST or PUT returned."""

    conversation_id: str
    job_id: str


class JobStatus(StrEnum):
    """Job API states (symbl-api.md §6)."""

    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED)


INSIGHT_KINDS = (
    "messages",
    "topics",
    "questions",
    "action_items",
    "follow_ups",
    "members",
    "summary",
    "analytics",
    "entities",
    "trackers",
)
"""Everything `Backend.fetch_insights` can fetch; the config picks a subset."""


@dataclass(frozen=True)
class Insights:
    """A conversation as fetched after its latest job completed (symbl-api.md §9).

    Each list holds the API's objects unchanged; kinds not fetched stay empty.
    """

    conversation_id: str
    conversation: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    topics: list[dict[str, Any]] = field(default_factory=list)
    questions: list[dict[str, Any]] = field(default_factory=list)
    action_items: list[dict[str, Any]] = field(default_factory=list)
    follow_ups: list[dict[str, Any]] = field(default_factory=list)
    members: list[dict[str, Any]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    analytics: dict[str, Any] = field(default_factory=dict)
    entities: list[dict[str, Any]] = field(default_factory=list)
    trackers: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The fields by name, the API's objects shared, not copied: `asdict` deep-copied
        every message and topic of every conversation, a tenth of the daemon's CPU per
        recording, for callers that only serialise or rebuild them."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Insights:
        return cls(**data)


@dataclass(frozen=True)
class Result:
    """What a sink receives: a conversation's insights after one of its parts completed.

    `parts` lists every recording of the conversation delivered so far, in append order;
    `recording` is the part whose completion triggered this delivery. `previous` holds,
    by sink name, the receipt detail of the latest earlier successful delivery of this
    conversation, so a sink can update what it wrote before instead of adding a copy.
    """

    name: str
    recording: Recording
    parts: tuple[Recording, ...]
    insights: Insights
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)
    notice: str | None = None
    """Said with the results, when the backend has something a reader must know about
    them (the sandbox's are made up, not transcripts); None for a real service."""

    @property
    def conversation_id(self) -> str:
        return self.insights.conversation_id


@dataclass(frozen=True)
class DeliveryReceipt:
    """What a sink reports after a successful delivery (paths written, row ids, message ts)."""

    sink: str
    detail: dict[str, Any] = field(default_factory=dict)


AS_IS = TranscodePlan(argv=(), suffix="", description="upload as is", reencodes=False)
"""What an `ingestd_transcode_plan` implementation returns to say "send the original file"
(None would only mean "no opinion, ask the next plugin")."""

EXISTING_CONVERSATION = "conversation:"
"""Prefix of a conversation key naming an existing Symbl conversationId to append to
(``"conversation:5815170693595136"``), e.g. from a sidecar file."""

NEW_CONVERSATION = ""
"""What an `ingestd_conversation_key` implementation returns to say "a conversation of its
own" (None would only mean "no opinion")."""
