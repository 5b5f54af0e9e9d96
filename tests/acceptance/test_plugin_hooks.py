"""Plugins as a third party writes them, in the real daemon against the sandbox."""

from __future__ import annotations

from pathlib import Path

from ingestd.testing import drop

WRAPPER = """\
from ingestd import hookimpl

@hookimpl(wrapper=True)
def ingestd_choose_endpoint(recording, media):
    result = yield
    return result
"""


def test_a_standard_pluggy_wrapper_lets_recordings_through(
    ingestd_env, sandbox, make_media, tmp_path: Path
) -> None:
    """Issue 11: a ``wrapper=True`` hookimpl on a stage used to fail every recording with
    "'generator' object has no attribute 'to_dict'"; called through pluggy, it passes."""
    plugin = tmp_path / "wrapping.py"
    plugin.write_text(WRAPPER)
    daemon = ingestd_env.daemon(plugins=[str(plugin)]).start()
    daemon.wait_ready()
    drop(make_media("call.wav"), ingestd_env.inbox)
    drop(make_media("demo.mp4"), ingestd_env.inbox)
    ingestd_env.wait_states({"call.wav": "done", "demo.mp4": "done"})
    routes = sorted(s["route"] for s in sandbox.submissions() if s["outcome"] == "created")
    assert routes == ["audio", "video"]
    chosen = [e for e in daemon.events() if e.get("new") == "queued"]
    assert {e["chosen_by"] for e in chosen} == {"routing"}  # the wrapper passed it through
    assert daemon.stop() == 0
