"""The hook specifications: one per pipeline stage, in the order a recording meets them.

This module is the plugin author's manual; it holds no logic. Hooks **decide** and the core
**acts**: every stage hook returns a value or a plan, and `ingestd.pipeline` performs and
records the effect, so each state change is durable before the next side effect and
``ingestd explain --config FILE PATH`` shows which plugin answered each stage without
doing anything.

The protocol for one recording (states in `ingestd.lifecycle`)::

    (settled)   ── ingestd_conversation_key (when the file is recorded) > discovered
    discovered  ── ingestd_accept ──> ingestd_probe ──────────────────> probed
    probed      ── ingestd_transcode_plan (core runs ffmpeg, re-probes) > transcoded
    transcoded  ── ingestd_choose_endpoint, ingestd_set_parameters ───> queued
    queued      ── (core: account limiter, per-conversation order) ───> submitting
    submitting  ── Backend.submit (POST or PUT) ─────────────────────> submitted
    submitted   ── Backend.wait_for_job ─────────────────────────────> fetching
    fetching    ── Backend.fetch_insights ───────────────────────────> delivering
    delivering  ── Sink.deliver, once per configured sink ───────────> done
    every change fires ingestd_state_changed; the end fires ingestd_recording_done
    or ingestd_recording_failed.

Conventions (as in pytest): "firstresult" hooks stop at the first non-None result, and
implementations run last-registered first, so a third-party plugin overrides a bundled one,
whose answers are marked ``trylast``. Every hook is called through pluggy's hook caller, so
``wrapper=True`` (and old-style ``hookwrapper=True``) implementations, tryfirst/trylast and
``add_hookcall_monitoring`` work as pluggy documents. A stage hook that raises fails that
recording's stage with a `PluginError` naming the plugin and hook; the daemon carries on.
Hooks run on the event loop unless their docstring says otherwise, so they must not block
(only `ingestd_probe` may).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from ingestd.config import WatchConfig
    from ingestd.model import (
        Endpoint,
        Media,
        Params,
        Piece,
        Recording,
        Result,
        TranscodePlan,
        Upload,
    )
    from ingestd.registry import MappingHistory

hookspec = pluggy.HookspecMarker("ingestd")


# ---------------------------------------------------------------------------------------
# Registration (called once at start-up; historic, so late plugins still register)
# ---------------------------------------------------------------------------------------


@hookspec(historic=True)
def ingestd_register_backends(register: Callable[..., None]) -> None:
    """Register API backend types (the speech-to-text service recordings go to) by name.

    :param register: call ``register(name, factory)`` once per type, where
        ``factory(options: Mapping, state_dir: Path) -> Backend`` (see
        `ingestd.registry.Backend` for the required and optional methods). The YAML's
        ``backend: NAME`` (default ``symbl``) picks one, and `options` is the top-level
        section of the same name (``NAME:``), validated by the factory, which raises
        `ConfigError` naming each bad key as ``NAME.key: ...``.

    Bundled: ``ingestd_symbl`` registers "symbl" (httpx client; ``symbl.base_url: sandbox``
    starts the embedded emulator instead of a host) and "sandbox" (that emulator on a
    loopback port, driven by the same client over real HTTP).
    """


@hookspec(historic=True)
def ingestd_register_sinks(register: Callable[..., None]) -> None:
    """Register sink types by the name used in ``sinks[i].type``.

    :param register: call ``register(type_name, factory)`` once per type, where
        ``factory(options: Mapping, context: SinkContext) -> Sink``. The factory validates
        its own options and raises `ConfigError` naming the key on a problem.

    Bundled: ``ingestd_files`` registers "files", ``ingestd_database`` "database",
    ``ingestd_slack`` "slack".
    """


@hookspec
def ingestd_watch_keys() -> list[str] | None:
    """Name the per-watch keys this plugin owns, so that ``watch[i].<key>`` is no unknown key.

    Called at start-up, on reload and by ``ingestd check``, before
    `ingestd_validate_watch`; every implementation is called. A key of a watch that neither
    the core nor any loaded plugin names is reported with a did-you-mean, so a plugin that
    is disabled or not installed leaves its keys reported as unknown.

    :return: the key names (``["retention_days"]``). Their values are in
        ``watch.options[key]`` as written in the YAML (after ``${VAR}`` substitution);
        check them in `ingestd_validate_watch` and read them from ``recording.watch``.

    Bundled: none (the bundled plugins' sections ``transcode``, ``conversation``,
    ``endpoint`` and ``parameters`` are the core's keys).
    """


@hookspec
def ingestd_validate_watch(watch: WatchConfig) -> list[str] | None:
    """Check the per-watch options a plugin owns, at start-up and in ``ingestd check``.

    Called once per configured watch, before any file is looked at, so a bad option stops
    the daemon with a clear message instead of failing recordings later. Every
    implementation is called.

    :param watch: the watch; plugin-owned sections are ``watch.transcode``,
        ``watch.conversation``, ``watch.endpoint`` and ``watch.parameters``.
    :return: problems, one line each, naming the key (``watch[sales].transcode.bitrate:
        expected ...``), or None/empty when everything is fine. Raising `ConfigError`
        works too.
    """


# ---------------------------------------------------------------------------------------
# Stage: accept (state discovered)
# ---------------------------------------------------------------------------------------


@hookspec
def ingestd_accept(recording: Recording) -> bool | None:
    """Veto a settled, fingerprinted file before anything is done with it.

    Called for a recording in state ``discovered``; every implementation is called.

    :param recording: the file, with its watch, size and content hash.
    :return: False to reject the recording (state ``rejected``); True or None to let it
        through. Raise `ingestd.errors.Rejected` instead of returning False to give the
        user a reason.

    Bundled: ``ingestd_ffmpeg`` rejects empty files.
    """


# ---------------------------------------------------------------------------------------
# Stage: probe (state discovered -> probed)
# ---------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def ingestd_probe(recording: Recording) -> Media | None:
    """Find the media facts of a file: container, codecs, channels, sample rate, duration.

    Called for a recording in state ``discovered``, in a worker thread: this hook alone may
    block (it usually runs ffprobe). Stops at the first non-None result.

    :param recording: the file to probe.
    :return: a `Media`, or None for no opinion. Raise `ingestd.errors.Rejected` for a file
        that is not usable media (not media at all, truncated, no audio stream).

    Bundled: ``ingestd_ffmpeg`` (ffprobe), ``trylast``.
    """


# ---------------------------------------------------------------------------------------
# Stage: transcode (state probed -> transcoded)
# ---------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def ingestd_transcode_plan(recording: Recording, media: Media) -> TranscodePlan | None:
    """Decide how to turn the file into something the API accepts.

    Called for a recording in state ``probed``. Stops at the first non-None result. The core
    runs the plan as a killable subprocess with a timeout, writes the output in its work
    directory, probes the output again and records it before anything is uploaded.

    :param recording: the source file.
    :param media: what `ingestd_probe` found in it.
    :return: a `TranscodePlan` (argv with ``{input}``/``{output}`` placeholders), or
        `ingestd.model.AS_IS` to upload the original, or None for no opinion (no plugin
        answering at all also means "as is").

    Bundled: ``ingestd_ffmpeg``, ``trylast``: mono wav and mp3 as is, mp4 as is, other video
    containers remuxed (stream copy) when the codecs allow, everything else re-encoded.
    """


@hookspec(firstresult=True)
def ingestd_fit_upload(upload: Upload, max_bytes: int, work_dir: Path) -> list[Piece] | None:
    """Make an upload larger than the backend takes fit: pieces of at most `max_bytes`.

    Called just before the upload (state ``submitting``) when the backend declares
    ``max_upload_bytes`` and the file is larger; in a worker thread, so it may block (run
    ffmpeg). Runs again after a crash: the pieces are work files, removed after the upload.

    :param upload: the file that would be sent.
    :param max_bytes: the backend's limit.
    :param work_dir: an empty folder of its own to write the pieces into.
    :return: the pieces in order, each with its offset in the recording, or None for no
        opinion (nobody answering fails the recording: the backend cannot take the file).

    Bundled: ``ingestd_ffmpeg``, ``trylast``: compacted to 32 kbit/s mono mp3, and when that
    is still too large, cut in the middle of silences (``silencedetect``) near the limit.
    """


# ---------------------------------------------------------------------------------------
# Stage: prepare (state transcoded -> queued): endpoint, parameters, conversation
# ---------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def ingestd_choose_endpoint(recording: Recording, media: Media) -> Endpoint | None:
    """Choose the Symbl route family and the upload's Content-Type.

    Called for a recording in state ``transcoded``. Stops at the first non-None result.

    :param recording: the recording.
    :param media: the facts of the file that will be uploaded (after transcoding).
    :return: an `Endpoint` (audio, video, audio_url, video_url), or None for no opinion.

    Bundled: ``ingestd_routing``, ``trylast``: by media kind and the upload's container.
    """


@hookspec
def ingestd_set_parameters(
    recording: Recording, media: Media, endpoint: Endpoint, params: Params
) -> None:
    """Add or change Symbl query parameters (symbl-api.md §3.1) by editing `params`.

    Called for a recording in state ``transcoded``, after the endpoint is chosen. Every
    implementation is called in turn (bundled ones first, as they are ``tryfirst``), each
    seeing the edits of the ones before, so a third-party plugin has the last word.

    :param recording: the recording (``recording.watch.parameters`` holds the YAML ones,
        ``recording.media`` the facts of the original file, before any transcode).
    :param media: the facts of the file that will be uploaded.
    :param endpoint: the chosen endpoint.
    :param params: the parameters so far; edit in place. Return value is ignored.

    Bundled: ``ingestd_routing``: watch YAML parameters, ``name`` from the conversation key
    (`ingestd.conversation_name`) or the file name, ``mode: phone`` when the original is
    sampled at 8 kHz or less.
    """


@hookspec(firstresult=True)
def ingestd_conversation_key(recording: Recording, history: MappingHistory) -> str | None:
    """Say which conversation a recording belongs to, for appends.

    Called once, when a settled file is first recorded (before ``discovered`` work starts),
    so that every part of a conversation knows its key before any part is submitted.
    Stops at the first non-None result. Recordings with the same key form one
    conversation: the first is POSTed, its conversationId is persisted, the rest are PUT
    into it one at a time, in the watch's order (``conversation.order``: name or mtime).

    :param recording: the recording. Its ``id`` is 0 when the file is first recorded: the
        row is written together with the key this hook gives, in one commit.
    :param history: read-only view of earlier keys (`ingestd.registry.MappingHistory`), for
        strategies that depend on what came before, such as a time window.
    :return: a key (any string unique to the conversation); a key starting with
        `ingestd.model.EXISTING_CONVERSATION` (``"conversation:"``) followed by a Symbl
        conversationId appends to that existing conversation; `NEW_CONVERSATION` for a
        conversation of its own; None for no opinion (also a conversation of its own when
        no plugin answers).

    Bundled: ``ingestd_mapping``, ``trylast``: the watch's ``conversation.by`` strategy.
    """


@hookspec(firstresult=True)
def ingestd_conversation_key_could_match(watch: WatchConfig, relpath: str, key: str) -> bool | None:
    """Say whether a file not recorded yet could turn out to be a part of conversation `key`.

    Asked by the dispatcher, on the event loop, before it uploads a part of conversation
    `key` while a file of the same watch that sorts before it is still settling or being
    fingerprinted (so `ingestd_conversation_key` has not been asked about it yet). Once a
    later part was POSTed nothing can be put before it, so such a file holds the part back,
    but only if it could share the part's key. Stops at the first non-None result; must be
    quick and must not touch the network (it may be asked many times a second).

    :param watch: the watch both files belong to.
    :param relpath: the unrecorded file's path relative to the watch (as
        `Recording.relpath` will be).
    :param key: the conversation key of the part waiting to be uploaded.
    :return: True if the file could get `key` (the part waits for it), False if it surely
        cannot (the part goes ahead), None if the plugin cannot tell, or did not make the
        key; when no plugin answers, every earlier-sorting file of the watch holds the part.
        A plugin answering `ingestd_conversation_key` with keys of its own should answer
        this hook for them too, or its parts keep the watch-wide hold.

    Bundled: ``ingestd_mapping``, ``trylast``, for the keys of the watch's strategy: same
    sub-folder (folder), same pattern group (regex), same group (ttl); None for sidecar and
    ``conversation:`` keys, which any file's sidecar may name.
    """


# ---------------------------------------------------------------------------------------
# Events (after a state change is committed; quick, and never able to fail a recording)
#
# Every state change goes through `ingestd.transitions.Transitions`, whichever part of
# ingestd makes it: intake, a pipeline stage, recovery after a restart, and the commands
# `ingestd retry` and `ingestd redeliver`. Hooks run in the process that made the change
# (a command loads the configured plugins and calls them itself). An implementation that
# raises is logged (``event_hook_failed``, naming the plugin) and the others still run.
# ---------------------------------------------------------------------------------------


@hookspec
def ingestd_state_changed(
    recording: Recording, old: str | None, new: str, facts: dict[str, Any]
) -> None:
    """Notified after every state change has been committed to the store.

    :param recording: the recording, already in state `new`.
    :param old: the previous state; None when the recording was just stored (``new`` is
        ``discovered`` or ``duplicate``).
    :param new: the new state (`ingestd.lifecycle.State` values).
    :param facts: what the transition recorded (error, conversation_id, ...).
    """


@hookspec
def ingestd_recording_done(recording: Recording, result: Result) -> None:
    """Notified when a recording ends ``done``: every sink delivered its conversation.

    Once per end: a recording redelivered (``ingestd redeliver``) ends done again and is
    notified again, with the new `result`.
    """


@hookspec
def ingestd_recording_failed(recording: Recording, error: str) -> None:
    """Notified when a recording ends ``failed`` or ``rejected``; `error` says why.

    Once per end: a retried recording (``ingestd retry``) that fails again is notified again.
    """
