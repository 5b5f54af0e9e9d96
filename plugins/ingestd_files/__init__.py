"""Bundled plugin: the ``files`` sink, which writes each conversation's results to disk.

Registered through the ``ingestd`` entry-point group like any third-party plugin. A sink
block such as::

    sinks:
      - type: files
        path: results                 # required; created on first use
        formats: [json, markdown]     # any of json, markdown, srt, vtt, txt
        template: "{watch}/{date}/{name}-{conversation_id}"

writes ``results/<watch>/<date>/<name>-<id>/insights.json`` and ``transcript.md``
atomically, replacing them when the conversation grows (see `ingestd_files.sink` for the
layout and `ingestd_files.paths` for why hostile names cannot escape ``path``).
"""

from __future__ import annotations

from collections.abc import Callable

from ingestd import hookimpl
from ingestd_files.sink import FilesSink, make_files_sink

__all__ = ["FilesSink", "make_files_sink"]


@hookimpl
def ingestd_register_sinks(register: Callable[..., None]) -> None:
    register("files", make_files_sink)
