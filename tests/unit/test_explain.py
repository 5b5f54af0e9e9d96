"""``ingestd explain``, run as an operator runs it: which plugin decides each stage for a file,
and that nothing is uploaded, changed or written while it says so."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingestd.sandbox import Sandbox
from ingestd.store import SqliteStore, open_store
from ingestd.testing import IngestdEnv, run_cli

SPANISH = """\
from ingestd import hookimpl

@hookimpl
def ingestd_set_parameters(recording, params):
    params["languageCode"] = "es-ES"
"""


def explain(env: IngestdEnv, *args: str) -> tuple[int, dict[str, Any]]:
    result = run_cli(env, "explain", *args, "--json")
    assert result.stderr == "", result.stderr
    return result.returncode, json.loads(result.stdout)


def steps(data: dict[str, Any], stage: str) -> list[dict[str, Any]]:
    return [s for s in data["steps"] if s["stage"] == stage]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file below `root` with its size and mtime, to prove nothing was written."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and p.name != "daemon.log"
    }


class TestExplain:
    def test_each_stage_names_the_plugin_that_answered(
        self, ingestd_env: IngestdEnv, make_media: Callable[..., Path], sandbox: Sandbox
    ) -> None:
        """Probe, transcode, endpoint and every parameters plugin in turn; a POST; and not
        one request to the API, no state database, no work or result file."""
        plugin = ingestd_env.root / "spanish.py"
        plugin.write_text(SPANISH)
        ingestd_env.write_config(
            plugins=[str(plugin)],
            watch={"conversation": {"by": "folder"}, "parameters": {"languageCode": "en-US"}},
        )
        target = ingestd_env.inbox / "weekly" / "part-1.flac"
        target.parent.mkdir()
        make_media("part-1.flac", seconds=1).rename(target)
        before = snapshot(ingestd_env.root)
        code, data = explain(ingestd_env, str(target))
        assert code == 0 and data["outcome"] == "queued"
        assert steps(data, "watch")[0]["decision"] == "inbox"
        assert steps(data, "conversation key")[0]["plugin"] == "mapping"
        assert steps(data, "conversation key")[0]["decision"] == "folder:inbox:weekly"
        assert steps(data, "probe")[0]["plugin"] == "ffmpeg"
        assert steps(data, "probe")[0]["decision"]["audio_codec"] == "flac"
        transcode = steps(data, "transcode")[0]
        assert transcode["plugin"] == "ffmpeg" and transcode["decision"]["reencodes"] is True
        assert "not run" in transcode["note"]
        assert steps(data, "endpoint")[0]["plugin"] == "routing"
        assert steps(data, "endpoint")[0]["decision"]["kind"] == "audio"
        parameters = [
            (s["plugin"], s["decision"]["languageCode"]) for s in steps(data, "parameters")
        ]
        # routing first (tryfirst), its final check last (trylast), plugins in between
        assert parameters[0] == ("routing", "en-US")
        assert ("spanish", "es-ES") in parameters[1:-1]
        assert parameters[-1] == ("routing.check_final_parameters", "es-ES")
        assert steps(data, "name")[0]["decision"] == "weekly"
        assert steps(data, "submit")[0]["decision"] == "POST"
        assert snapshot(ingestd_env.root) == before
        assert not ingestd_env.state_db.parent.exists()
        assert sandbox.stats()["requests"] == {} and sandbox.submissions() == []

    def test_a_mapped_key_is_put_and_the_store_is_left_as_it_was(
        self, ingestd_env: IngestdEnv, make_media: Callable[..., Path]
    ) -> None:
        """A key the store maps to a conversation already means a PUT into it; the state
        database is read without a byte of it, or a journal beside it, being written."""
        ingestd_env.write_config(watch={"conversation": {"by": "folder"}})
        ingestd_env.state_db.parent.mkdir(parents=True)
        store = SqliteStore(ingestd_env.state_db)
        store.set_mapping("folder:inbox:weekly", "5815170693595136")
        store.close()
        target = ingestd_env.inbox / "weekly" / "part-2.wav"
        target.parent.mkdir()
        make_media("part-2.wav", seconds=1).rename(target)
        before = snapshot(ingestd_env.root)
        code, data = explain(ingestd_env, str(target))
        assert code == 0
        submit = steps(data, "submit")[0]
        assert submit["decision"] == "PUT" and "5815170693595136" in submit["note"]
        assert snapshot(ingestd_env.root) == before

    def test_a_mapped_key_on_postgresql_is_put(
        self, ingestd_env: IngestdEnv, make_media: Callable[..., Path], postgres_database: str
    ) -> None:
        """With ``state.url`` on PostgreSQL the mapping is read from there too."""
        ingestd_env.write_config(
            watch={"conversation": {"by": "folder"}}, state={"url": postgres_database}
        )
        store = open_store(postgres_database)
        store.set_mapping("folder:inbox:weekly", "5815170693595136")
        store.close()
        target = ingestd_env.inbox / "weekly" / "part-2.wav"
        target.parent.mkdir()
        make_media("part-2.wav", seconds=1).rename(target)
        code, data = explain(ingestd_env, str(target))
        assert code == 0
        submit = steps(data, "submit")[0]
        assert submit["decision"] == "PUT" and "5815170693595136" in submit["note"]

    def test_a_file_outside_the_watches_says_so(
        self, ingestd_env: IngestdEnv, make_media: Callable[..., Path]
    ) -> None:
        """A file in no watched folder is explained with default options, and says so."""
        ingestd_env.write_config()
        outside = make_media("outside.wav", seconds=1)
        code, data = explain(ingestd_env, str(outside))
        assert code == 0
        watch = steps(data, "watch")[0]
        assert watch["decision"] == "(none)" and watch["note"].startswith("outside every watch")
        assert steps(data, "transcode")[0]["decision"] == {"description": "upload as is"}

    def test_a_file_the_watch_would_not_pick_up_names_its_watch(
        self, ingestd_env: IngestdEnv, make_media: Callable[..., Path]
    ) -> None:
        """In the watched folder but matched by no pattern: the watch is named, and why."""
        ingestd_env.write_config(watch={"patterns": ["*.mp3"]})
        target = ingestd_env.inbox / "call.wav"
        make_media("call.wav", seconds=1).rename(target)
        _, data = explain(ingestd_env, str(target))
        watch = steps(data, "watch")[0]
        assert watch["decision"] == "inbox" and "matched by none of its patterns" in watch["note"]

    def test_run_transcode_probes_the_output_and_removes_it(
        self, ingestd_env: IngestdEnv, make_media: Callable[..., Path]
    ) -> None:
        """--run-transcode runs the plan into a temporary folder, which is gone afterwards."""
        ingestd_env.write_config()
        target = ingestd_env.inbox / "call.flac"
        make_media("call.flac", seconds=1).rename(target)
        temp = Path(tempfile.gettempdir())
        leftovers = set(temp.glob("ingestd-explain-*"))
        code, data = explain(ingestd_env, str(target), "--run-transcode")
        assert code == 0
        note = steps(data, "transcode")[0]["note"]
        assert note.startswith("run into a temporary folder (removed)") and "'wav'" in note
        assert set(temp.glob("ingestd-explain-*")) == leftovers
        assert not (ingestd_env.root / "state").exists()

    def test_a_file_that_would_be_rejected_exits_one(self, ingestd_env: IngestdEnv) -> None:
        """An empty file: the stage that rejects it and why; exit 1."""
        ingestd_env.write_config()
        empty = ingestd_env.inbox / "empty.wav"
        empty.write_bytes(b"")
        code, data = explain(ingestd_env, str(empty))
        assert code == 1 and data["outcome"] == "rejected"
        assert "is empty" in steps(data, "rejected")[0]["decision"]

    def test_the_text_form_reads_stage_by_stage(
        self, ingestd_env: IngestdEnv, make_media: Callable[..., Path]
    ) -> None:
        """Without --json: one line per stage with the plugin in brackets, and the promise."""
        ingestd_env.write_config()
        target = ingestd_env.inbox / "call.wav"
        make_media("call.wav", seconds=1).rename(target)
        result = run_cli(ingestd_env, "explain", str(target))
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert any(line.split()[:2] == ["probe", "[ffmpeg]"] for line in lines)
        assert any(line.split()[:2] == ["endpoint", "[routing]"] for line in lines)
        assert lines[-1] == "would be queued for upload; nothing was uploaded, changed or written"
        assert os.path.exists(target)
