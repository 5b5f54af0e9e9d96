"""The files sink's options: defaults, and one clear line per problem, all at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ingestd.errors import ConfigError
from ingestd.registry import SinkContext
from ingestd_files.options import DEFAULT_TEMPLATE, FilesOptions
from ingestd_files.sink import make_files_sink


def problems(options: dict[str, Any], base: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        FilesOptions.parse(options, key_path="sinks[0]", base=base)
    return caught.value.problems


class TestGoodOptions:
    def test_defaults(self, tmp_path: Path) -> None:
        """Only the path is required; json and markdown under the name-and-id folder."""
        assert FilesOptions.parse({"path": str(tmp_path)}, key_path="sinks[0]") == FilesOptions(
            path=tmp_path, formats=("json", "markdown"), template=DEFAULT_TEMPLATE
        )

    def test_everything_set(self, tmp_path: Path) -> None:
        """Formats are deduplicated in canonical order; name and type are accepted."""
        options = FilesOptions.parse(
            {
                "type": "files",
                "name": "archive",
                "path": "out",
                "formats": ["txt", "vtt", "json", "txt", "srt", "markdown"],
                "template": "{watch}/{date}/{stem}",
            },
            key_path="sinks[0]",
            base=tmp_path,
        )
        assert options == FilesOptions(
            path=tmp_path / "out",
            formats=("json", "markdown", "srt", "vtt", "txt"),
            template="{watch}/{date}/{stem}",
        )

    def test_factory_uses_the_context(self, tmp_path: Path) -> None:
        """The factory resolves paths against the config's folder, takes its name from the
        context and names errors by key path."""
        context = SinkContext(
            name="archive", key_path="sinks[3]", config_path=tmp_path / "c.yaml", state_dir=tmp_path
        )
        sink = make_files_sink({"path": "results"}, context)
        assert (sink.name, sink.options.path) == ("archive", tmp_path / "results")
        with pytest.raises(ConfigError, match=r"^sinks\[3\]\.path: required"):
            make_files_sink({}, context)


class TestBadOptions:
    def test_every_problem_at_once(self) -> None:
        """Unknown keys get a did-you-mean; a bad format is named by its index."""
        assert problems({"formats": ["json", "pdf"], "templat": "x", "foo": 1}) == [
            "sinks[0].templat: unknown key; did you mean 'template'?",
            "sinks[0].foo: unknown key; known keys: path, formats, template",
            "sinks[0].path: required (the folder to write results into)",
            'sinks[0].formats[1]: expected one of json, markdown, srt, vtt, txt, got "pdf"',
        ]

    @pytest.mark.parametrize(
        ("formats", "problem"),
        [
            ("json", 'expected a list of json, markdown, srt, vtt, txt, got "json"'),
            ([], "expected at least one of json, markdown, srt, vtt, txt, got []"),
            (None, "expected a list of json, markdown, srt, vtt, txt, got None"),
        ],
    )
    def test_formats_must_be_a_non_empty_list(
        self, tmp_path: Path, formats: Any, problem: str
    ) -> None:
        """A bare string or an empty list is refused rather than guessed at."""
        assert problems({"path": str(tmp_path), "formats": formats}) == [
            f"sinks[0].formats: {problem}"
        ]

    def test_bad_format_items(self, tmp_path: Path) -> None:
        """Each bad item is reported with its own index and value."""
        assert problems({"path": str(tmp_path), "formats": [1, "md"]}) == [
            "sinks[0].formats[0]: expected one of json, markdown, srt, vtt, txt, got 1",
            'sinks[0].formats[1]: expected one of json, markdown, srt, vtt, txt, got "md"',
        ]

    @pytest.mark.parametrize(
        ("path", "problem"),
        [
            ("", 'expected a folder path, got ""'),
            (42, "expected a folder path, got 42"),
        ],
    )
    def test_bad_path(self, path: Any, problem: str) -> None:
        """The path must be a non-empty string."""
        assert problems({"path": path}) == [f"sinks[0].path: {problem}"]

    def test_path_is_a_file(self, tmp_path: Path) -> None:
        """An existing file where the folder should be is caught at start-up."""
        (tmp_path / "f").write_text("")
        assert problems({"path": str(tmp_path / "f")}) == [
            f"sinks[0].path: {tmp_path / 'f'} exists and is not a folder"
        ]

    @pytest.mark.parametrize(
        ("template", "problem"),
        [
            (
                "{nme}",
                "unknown field {nme}; did you mean {name}? (known: {watch}, {date}, "
                "{name}, {conversation_id}, {stem})",
            ),
            ("{}", "unknown field {}"),
            ("{name.__class__}", "unknown field {name.__class__}"),
            ("{name!r}", "field {name} takes no conversion or format spec"),
            ("{date:>20}", "field {date} takes no conversion or format spec"),
            ("{name", "expected '}' before end of string in \"{name\""),
            ("/srv/{name}", 'expected a path relative to the sink\'s path, got "/srv/{name}"'),
            ("a/../{name}", "'.' and '..' levels are not allowed, got \"a/../{name}\""),
            ("./{name}", "'.' and '..' levels are not allowed, got \"./{name}\""),
            ("", 'expected a non-empty string like "{name}-{conversation_id}"'),
            (["{name}"], 'expected a non-empty string like "{name}-{conversation_id}"'),
        ],
    )
    def test_bad_template(self, tmp_path: Path, template: Any, problem: str) -> None:
        """Templates use known plain fields and stay relative to the sink's folder."""
        [found] = problems({"path": str(tmp_path), "template": template})
        assert found.startswith(f"sinks[0].template: {problem}")
