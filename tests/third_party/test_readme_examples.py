"""The README's "Writing a plugin" examples, taken from the README as they are and run: every
``python`` block that names its file is written to that file, and the daemon runs with all
of them as local plugins and the YAML the section shows (its paths made local)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from ingestd import mediagen
from ingestd.testing import IngestdEnv, run_cli

ROOT = Path(__file__).parents[2]
EXAMPLES = {"my_plugin.py", "log_endpoints.py", "done_list.py", "jsonl_sink.py", "bytecount.py"}


def section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Writing a plugin\n")
    return text[start : text.index("\n## ", start + 1)]


def examples() -> dict[str, str]:
    """``file name -> code`` for each python block whose first line is ``# NAME.py: ...``."""
    found = {}
    for block in re.findall(r"```python\n(.*?)```", section(), re.DOTALL):
        named = re.match(r"# (\w+\.py): ", block)
        if named:
            found[named.group(1)] = block
    return found


def shown_config() -> dict[str, object]:
    """The section's YAML block that loads the examples."""
    blocks = re.findall(r"```yaml\n(.*?)```", section(), re.DOTALL)
    return yaml.safe_load(next(b for b in blocks if "plugins:" in b))


def test_the_readme_shows_the_wrapper_an_event_hook_a_sink_and_a_backend() -> None:
    """Each kind of example is there, and the YAML loads every one of them."""
    code = examples()
    assert set(code) == EXAMPLES
    assert "@hookimpl(wrapper=True)" in code["log_endpoints.py"]
    assert "def ingestd_recording_done" in code["done_list.py"]
    assert "def ingestd_register_sinks" in code["jsonl_sink.py"]
    assert "def ingestd_register_backends" in code["bytecount.py"]
    assert set(shown_config()["plugins"]) == EXAMPLES  # type: ignore[arg-type]


def test_the_readme_examples_run_in_the_daemon(ingestd_env: IngestdEnv) -> None:
    """With the README's plugins and YAML: the bytecount backend "transcribes", the jsonl
    sink writes, the event hook lists the file, the wrapper logs, the parameters hook
    names the conversation; `ingestd check` asks the backend's check."""
    for name, code in examples().items():
        (ingestd_env.root / name).write_text(code)
    shown = shown_config()
    done_list = ingestd_env.root / "done.txt"
    results = ingestd_env.root / "results.jsonl"
    watch = {**shown["watch"][0], "path": str(ingestd_env.inbox), "done_list": str(done_list)}  # type: ignore[index]
    config = ingestd_env.config(
        backend=shown["backend"],
        bytecount=shown["bytecount"],
        plugins=[str(ingestd_env.root / name) for name in shown["plugins"]],  # type: ignore[union-attr]
        sinks=[{**shown["sinks"][0], "path": str(results)}],  # type: ignore[index]
    )
    config["watch"] = [{**config["watch"][0], **watch}]
    ingestd_env.config_path.write_text(yaml.safe_dump(config))

    checked = run_cli(ingestd_env, "check")
    assert checked.returncode == 0, checked.stderr
    assert "api: bytecount: nothing to reach" in checked.stdout

    daemon = ingestd_env.daemon()
    daemon.start().wait_ready()
    source = mediagen.make_audio(ingestd_env.root / "weekly_sync.wav", seconds=1)
    size = source.stat().st_size
    source.rename(ingestd_env.inbox / "weekly_sync.wav")
    ingestd_env.wait_states({"weekly_sync.wav": "done"})
    assert daemon.stop() == 0

    (line,) = [json.loads(text) for text in results.read_text().splitlines()]
    assert line["name"] == "weekly sync" and line["text"] == f"heard {size} bytes"
    assert done_list.read_text() == f"weekly_sync.wav\t{line['conversation_id']}\n"
    assert daemon.has_event("endpoint_chosen", file="weekly_sync.wav", endpoint="audio")
    (row,) = ingestd_env.rows()
    assert json.loads(row["params"])["languageCode"] == "es-ES"  # the "madrid" watch
