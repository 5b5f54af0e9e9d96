"""``ingestd explain --config FILE PATH``: for one file, stage by stage, which plugin answers
and what it decides, without doing anything.

Stage hooks only decide (`ingestd.hookspecs`), so every decision the daemon would take for a
file can be asked for again here, through the same hooks called the same way (wrappers
included), in the pipeline's order: watch, conversation key, accept, probe, transcode plan,
endpoint, parameters after every plugin, and whether the upload would be a POST (a new
conversation) or a PUT (a part appended to one).

Nothing is done: the backend is not even built, so nothing is uploaded; the state database
is only read, through a read-only connection, when it exists; nothing is written. A
transcode plan is shown, not run, and the endpoint is then chosen for the media the plan
would produce (predicted from its output suffix); ``--run-transcode`` runs it into a
temporary folder, probes the result, and removes the folder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingestd.config import Config, WatchConfig
from ingestd.errors import ConfigError, IngestdError, Rejected, StoreError
from ingestd.model import (
    AS_IS,
    EXISTING_CONVERSATION,
    NEW_CONVERSATION,
    Endpoint,
    Media,
    Params,
    Recording,
    TranscodePlan,
)
from ingestd.store import Store, open_read_only

MP4 = "mov,mp4,m4a,3gp,3g2,mj2"  # ffprobe's name for the ISO media family
PREDICTED_CONTAINER = {".wav": "wav", ".mp3": "mp3", ".mp4": MP4, ".m4a": MP4, ".flac": "flac"}
AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus", ".aac"})


@dataclass
class Step:
    """One line of the explanation: a stage, the plugin that answered, what it decided."""

    stage: str
    plugin: str | None
    decision: Any
    note: str = ""


@dataclass
class Explanation:
    """Every step, and how the file would end: ``queued`` (uploaded next), or the stage
    that would reject or fail it."""

    path: str
    steps: list[Step] = field(default_factory=list)
    outcome: str = "queued"

    def add(self, stage: str, plugin: str | None, decision: Any, note: str = "") -> None:
        self.steps.append(Step(stage, plugin, decision, note))

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "outcome": self.outcome,
            "steps": [dataclasses.asdict(s) for s in self.steps],
        }


# -- where the file belongs ----------------------------------------------------------------


def find_watch(config: Config, path: Path) -> tuple[WatchConfig | None, str]:
    """The watch `path` belongs to (the deepest folder holding it) and why, or None."""
    from ingestd.watch import ignored, matches, relpath

    holders = [w for w in config.watches if path.is_relative_to(w.path)]
    if not holders:
        folders = ", ".join(str(w.path) for w in config.watches)
        return None, f"outside every watch ({folders})"
    watch = max(holders, key=lambda w: len(w.path.parts))
    rel = relpath(watch, path)
    if "/" in rel and not watch.recursive:
        return watch, f"in a sub-folder of watch {watch.name!r}, which is not recursive"
    if ignored(watch, rel):
        return watch, f"ignored by watch {watch.name!r} (temporary, hidden or an ignore pattern)"
    if not matches(watch, rel):
        patterns = ", ".join(watch.patterns)
        return watch, f"in watch {watch.name!r} but matched by none of its patterns ({patterns})"
    return watch, f"watch {watch.name!r} ({watch.path}) picks it up"


def recording_for(path: Path, watch: WatchConfig) -> Recording:
    """The plugin-facing view the daemon would record for `path` (id 0: not recorded)."""
    from ingestd.watch import relpath

    stat = path.stat()
    with path.open("rb") as handle:
        sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
    return Recording(
        id=0,
        path=path,
        relpath=relpath(watch, path),
        watch=watch,
        size_bytes=stat.st_size,
        mtime=stat.st_mtime,
        sha256=sha256,
        state="discovered",
    )


class ReadOnlyHistory:
    """What the store knows of conversation keys, read through a read-only store (the
    daemon's own would create the database and its journal files). Empty without one."""

    def __init__(self, target: Path | str | None, password: str | None = None) -> None:
        self._store: Store | None = None
        if isinstance(target, str) or (target is not None and target.exists()):
            with contextlib.suppress(StoreError, ConfigError):  # unreadable: nothing known
                self._store = open_read_only(target, password=password)

    def recent_keys(self, prefix: str, since_mtime: float) -> list[tuple[str, float]]:
        """`ingestd.registry.MappingHistory`, as the store answers it."""
        if self._store is None:
            return []
        try:
            return self._store.recent_keys(prefix, since_mtime)
        except StoreError:  # an empty or foreign file: nothing known
            return []

    def conversation_for(self, key: str) -> str | None:
        if self._store is None:
            return None
        try:
            return self._store.conversation_for(key)
        except StoreError:
            return None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


# -- the stages ----------------------------------------------------------------------------


def explain(
    config: Config, plugins: Any, path: Path, *, run_transcode: bool = False
) -> Explanation:
    """Ask every decision hook about `path`, as the daemon would; do nothing."""
    path = path.expanduser().resolve()
    result = Explanation(str(path))
    if not path.is_file():
        raise IngestdError(f"{path}: no such file")
    watch, why = find_watch(config, path)
    if watch is None:
        watch = WatchConfig(name="(none)", path=path.parent)
        why += "; explained with a watch of default options in its folder"
    result.add("watch", None, watch.name, why)
    result.add("backend", None, config.backend, "chosen by `backend:`; not contacted")
    recording = recording_for(path, watch)
    history = ReadOnlyHistory(config.state_path or config.state_url, config.state_password)
    try:
        _stages(config, plugins, recording, history, result, run_transcode)
    except Rejected as exc:
        result.outcome = "rejected"
        result.add("rejected", None, str(exc))
    except IngestdError as exc:
        result.outcome = "failed"
        result.add("failed", None, str(exc))
    finally:
        history.close()
    return result


def _stages(
    config: Config,
    plugins: Any,
    recording: Recording,
    history: ReadOnlyHistory,
    result: Explanation,
    run_transcode: bool,
) -> None:
    key, by = plugins.call_first("ingestd_conversation_key", recording=recording, history=history)
    key = None if key in (None, NEW_CONVERSATION) else str(key)
    result.add("conversation key", by, key or "(none)", "" if key else "a conversation of its own")
    recording = dataclasses.replace(recording, conversation_key=key)

    for accepted, plugin in plugins.call_all("ingestd_accept", recording=recording):
        if accepted is False:
            raise Rejected(f"{recording.relpath} was rejected by plugin {plugin!r}")
    result.add("accept", None, True, "no plugin objected")

    media, by = plugins.call_first("ingestd_probe", recording=recording)
    if media is None:
        raise IngestdError("no plugin could probe the file (is the ffmpeg plugin disabled?)")
    result.add("probe", by, media.to_dict())
    recording = dataclasses.replace(recording, media=media)

    plan, by = plugins.call_first("ingestd_transcode_plan", recording=recording, media=media)
    upload_media, note = _transcode(plugins, recording, media, plan, run_transcode)
    result.add("transcode", by, _plan_dict(recording.path, plan), note)

    endpoint, by = plugins.call_first(
        "ingestd_choose_endpoint", recording=recording, media=upload_media
    )
    if endpoint is None:
        raise IngestdError("no plugin chose an endpoint (is the routing plugin disabled?)")
    result.add("endpoint", by, endpoint.to_dict())

    params = Params()
    for plugin, snapshot in _each_set_parameters(
        plugins, recording, upload_media, endpoint, params
    ):
        result.add("parameters", plugin, snapshot)
    params["name"] = str(params.get("name") or recording.path.stem)
    result.add("name", None, params["name"], "sent as the conversation's name")

    result.add("submit", None, *_submission(key, history))


def _transcode(
    plugins: Any, recording: Recording, media: Media, plan: Any, run: bool
) -> tuple[Media, str]:
    """The media that would be uploaded, and how it was found."""
    if plan is None or plan == AS_IS or not plan.argv:
        return media, "the original is uploaded"
    assert isinstance(plan, TranscodePlan)
    if not run:
        predicted = dataclasses.replace(
            media,
            container=PREDICTED_CONTAINER.get(plan.suffix, media.container),
            video_codec=None if plan.suffix in AUDIO_SUFFIXES else media.video_codec,
        )
        return predicted, (
            "not run; the endpoint below is chosen for the output its suffix predicts "
            "(--run-transcode runs it and probes the result)"
        )
    from ingestd.transcode import run_plan

    with tempfile.TemporaryDirectory(prefix="ingestd-explain-") as folder:
        output = asyncio.run(run_plan(plan, recording.path, Path(folder) / f"out{plan.suffix}"))
        probed, _ = plugins.call_first(
            "ingestd_probe", recording=dataclasses.replace(recording, path=output)
        )
        size = output.stat().st_size
    if probed is None:
        raise IngestdError(f"the transcoded file ({plan.description}) could not be probed")
    return probed, f"run into a temporary folder (removed): {size} bytes, {probed.to_dict()}"


def _plan_dict(source: Path, plan: Any) -> dict[str, Any]:
    if plan is None or plan == AS_IS or not plan.argv:
        return {"description": AS_IS.description}
    argv = [str(source) if a == "{input}" else f"<output>{plan.suffix}" if a == "{output}" else a
            for a in plan.argv]  # fmt: skip
    return {"description": plan.description, "reencodes": plan.reencodes, "argv": argv}


def _each_set_parameters(
    plugins: Any, recording: Recording, media: Media, endpoint: Endpoint, params: Params
) -> list[tuple[str, dict[str, Any]]]:
    """Call ``ingestd_set_parameters`` through pluggy as the pipeline does, noting the
    parameters as each implementation left them, in the order they ran."""
    snapshots: list[tuple[str, dict[str, Any]]] = []
    with _traced(plugins, "ingestd_set_parameters", lambda name: snapshots.append(
        (name, json.loads(json.dumps(params, default=str)))
    )):  # fmt: skip
        plugins.call_all(
            "ingestd_set_parameters",
            recording=recording,
            media=media,
            endpoint=endpoint,
            params=params,
        )
    return snapshots


@contextmanager
def _traced(plugins: Any, hook: str, after: Callable[[str], None]) -> Iterator[None]:
    """Run `after(plugin)` after each (non-wrapper) implementation of `hook`."""
    impls = [
        i
        for i in getattr(plugins.manager.hook, hook).get_hookimpls()
        if not (i.wrapper or i.hookwrapper)
    ]
    originals = [i.function for i in impls]

    def trace(impl: Any, function: Callable[..., Any]) -> Callable[..., Any]:
        name = getattr(function, "__name__", hook)  # a plugin may implement a hook twice
        label = impl.plugin_name if name == hook else f"{impl.plugin_name}.{name}"

        def traced(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            finally:
                after(label)

        return traced

    for impl, function in zip(impls, originals, strict=True):
        impl.function = trace(impl, function)
    try:
        yield
    finally:
        for impl, function in zip(impls, originals, strict=True):
            impl.function = function


def _submission(key: str | None, history: ReadOnlyHistory) -> tuple[str, str]:
    """``(POST | PUT, why)`` for a recording with conversation key `key`."""
    if key is None:
        return "POST", "a new conversation"
    if key.startswith(EXISTING_CONVERSATION):
        cid = key.removeprefix(EXISTING_CONVERSATION)
        return "PUT", f"appended to conversation {cid}, which the key names"
    mapped = history.conversation_for(key)
    if mapped:
        return "PUT", f"appended to conversation {mapped}, mapped to this key already"
    return "POST", (
        "the first part of this key starts the conversation; later parts are PUT into it"
    )


# -- the command -----------------------------------------------------------------------------


def render(explanation: Explanation) -> str:
    """The explanation as aligned lines, one per step."""
    lines = [f"{explanation.path}"]
    for step in explanation.steps:
        by = f"[{step.plugin}] " if step.plugin else ""
        decision = (
            step.decision
            if isinstance(step.decision, str)
            else json.dumps(step.decision, default=str)
        )
        lines.append(f"  {step.stage:<16} {by}{decision}")
        if step.note:
            lines.append(f"  {'':<16} ({step.note})")
    ending = {
        "queued": "would be queued for upload",
        "rejected": "would be rejected",
        "failed": "would fail",
    }[explanation.outcome]
    lines.append(f"{ending}; nothing was uploaded, changed or written")
    return "\n".join(lines)


def add_parser(sub: Any, with_config: Any) -> None:
    p = sub.add_parser(
        "explain", help="which plugin decides each stage for one file, without doing anything"
    )
    with_config(p)
    p.add_argument("path", type=Path, help="the file (inside a watch or not)")
    p.add_argument(
        "--run-transcode",
        action="store_true",
        help="run the transcode plan into a temporary folder and probe the result",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_explain)


def cmd_explain(args: argparse.Namespace) -> int:
    """Exit 0 when the file would be queued for upload, 1 when it would be rejected or fail."""
    from ingestd.commands import _load
    from ingestd.daemon import validate_watches
    from ingestd.logging import configure
    from ingestd.plugins import load_plugins

    config = _load(args)
    configure("error", "console")
    plugins = load_plugins(config.plugins, config.disable_plugins)
    validate_watches(config, plugins)
    explanation = explain(config, plugins, args.path, run_transcode=args.run_transcode)
    print(
        json.dumps(explanation.to_dict(), indent=2, default=str)
        if args.json
        else render(explanation)
    )
    return 0 if explanation.outcome == "queued" else 1
