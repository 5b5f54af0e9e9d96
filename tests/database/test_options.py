"""The database sink's options: defaults, URL mapping, and every problem reported at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ingestd.config import Secret
from ingestd.errors import ConfigError
from ingestd.registry import SinkContext
from ingestd_database.options import DatabaseOptions, display_url
from ingestd_database.sink import make_database_sink


def parse(base: Path | None = None, **options: Any) -> DatabaseOptions:
    return DatabaseOptions.parse(options, key_path="sinks[1]", state_dir=Path("/state"), base=base)


def problems(**options: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(**options)
    return caught.value.problems


class TestDefaults:
    def test_sqlite_in_the_state_dir(self) -> None:
        """With no options, results go to ``<state_dir>/results.db``, no prefix, pool of 2."""
        parsed = parse()
        assert parsed.url.render_as_string() == "sqlite+pysqlite:////state/results.db"
        assert (parsed.dialect, parsed.table_prefix, parsed.pool_size) == ("sqlite", "", 2)

    def test_type_and_name_are_ignored(self) -> None:
        """The keys the core reads itself are no unknown keys."""
        assert parse(type="database", name="warehouse") == parse()

    def test_factory_uses_the_context(self, tmp_path: Path) -> None:
        """The factory names the sink after the context and resolves against the config."""
        context = SinkContext("warehouse", "sinks[3]", tmp_path / "ingestd.yaml", tmp_path)
        sink = make_database_sink({"url": "sqlite:///out/r.db"}, context)
        assert sink.name == "warehouse"
        assert sink.options.url.database == str(tmp_path / "out" / "r.db")
        with pytest.raises(ConfigError, match=r"^sinks\[3\]\.pool: unknown key"):
            make_database_sink({"pool": 1}, context)


class TestUrl:
    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
            ("postgresql://u@h:5433/db", "postgresql+psycopg://u@h:5433/db"),
            ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
            ("mysql://u@h/db", "mysql+pymysql://u@h/db"),
            ("mariadb://u@h/db?ssl_ca=/ca.pem", "mysql+pymysql://u@h/db?ssl_ca=%2Fca.pem"),
            ("sqlite:////abs/r.db", "sqlite+pysqlite:////abs/r.db"),
        ],
    )
    def test_short_urls_map_to_the_installed_drivers(self, given: str, expected: str) -> None:
        """Plain scheme names pick psycopg 3, PyMySQL or sqlite3."""
        assert parse(url=given).url.render_as_string(hide_password=False) == expected

    def test_relative_sqlite_paths_follow_the_config_file(self, tmp_path: Path) -> None:
        """``sqlite:///results.db`` is next to the config, like the files sink's path."""
        assert parse(tmp_path, url="sqlite:///r.db").url.database == str(tmp_path / "r.db")

    def test_passwords_are_never_shown(self) -> None:
        """The password option fills the URL; the display URL masks it and query secrets."""
        parsed = parse(url="postgresql://u@h/db?sslpassword=k3y", password=Secret("pw-123456"))
        assert parsed.url.password == "pw-123456"
        assert type(parsed.url.password) is str  # the driver gets the value, not a Secret
        assert parsed.display_url == "postgresql+psycopg://u:***@h/db?sslpassword=***"
        assert "pw-123456" not in repr(parsed)
        assert display_url(parse(url="mysql://u:p4ss@h/db").url) == "mysql+pymysql://u:***@h/db"

    def test_an_unparseable_url_is_not_echoed(self) -> None:
        """A URL we cannot read may still hold a password, so the message leaves it out."""
        [problem] = problems(url="postgresql://u:pw-123456@h:port/db")
        assert problem.startswith("sinks[1].url: expected a URL like postgresql://")
        assert "pw-123456" not in problem


class TestProblems:
    def test_unknown_keys_get_a_did_you_mean(self) -> None:
        """A misspelt key names the one meant."""
        assert problems(tabel_prefix="x_", pool=3, colour="red") == [
            "sinks[1].tabel_prefix: unknown key; did you mean 'table_prefix'?",
            "sinks[1].pool: unknown key; did you mean 'pool_size'?",
            "sinks[1].colour: unknown key; known keys: url, password, table_prefix, pool_size",
        ]

    def test_every_problem_at_once(self) -> None:
        """Each bad value is reported, one line each, keyed by the context's key path."""
        assert problems(url="oracle://u@h/db", table_prefix="1-bad", pool_size=0) == [
            "sinks[1].url: unsupported database 'oracle' (known: mariadb, mysql, postgres, "
            "postgresql, sqlite)",
            "sinks[1].table_prefix: expected letters, digits and underscores, not starting "
            'with a digit (like "ingestd_"), got "1-bad"',
            "sinks[1].pool_size: expected 1 to 32, got 0",
        ]

    @pytest.mark.parametrize(
        ("options", "expected"),
        [
            ({"url": ""}, "sinks[1].url: expected a URL like"),
            ({"url": 5432}, "sinks[1].url: expected a URL like"),
            ({"url": "sqlite://"}, "sinks[1].url: an in-memory SQLite database"),
            ({"url": "sqlite:///:memory:"}, "sinks[1].url: an in-memory SQLite database"),
            ({"url": "postgresql+psycopg2://u@h/db"}, "sinks[1].url: driver 'psycopg2' is not"),
            ({"url": "postgresql://u@h"}, "sinks[1].url: expected a database name"),
            ({"url": "sqlite:///r.db", "password": "x"}, "sinks[1].password: SQLite files"),
            ({"password": 5}, "sinks[1].password: expected a string"),
            ({"table_prefix": "a" * 25}, "sinks[1].table_prefix: expected at most 24"),
            ({"table_prefix": "x; DROP"}, "sinks[1].table_prefix: expected letters"),
            ({"pool_size": "two"}, 'sinks[1].pool_size: expected a whole number, got "two"'),
            ({"pool_size": True}, "sinks[1].pool_size: expected a whole number, got True"),
            ({"pool_size": 33}, "sinks[1].pool_size: expected 1 to 32, got 33"),
        ],
    )
    def test_bad_values(self, options: dict[str, Any], expected: str) -> None:
        """Each bad value gets one line saying what was expected."""
        [problem] = problems(**options)
        assert problem.startswith(expected)

    def test_a_folder_is_not_a_database_file(self, tmp_path: Path) -> None:
        """Pointing the URL at a folder is caught before the first delivery."""
        [problem] = problems(url=f"sqlite:///{tmp_path}")
        assert problem == f"sinks[1].url: {tmp_path} is a folder; name the database file inside it"
