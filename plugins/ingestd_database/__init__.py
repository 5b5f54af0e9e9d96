"""Bundled plugin: the ``database`` sink, which mirrors each conversation into SQL tables.

Registered through the ``ingestd`` entry-point group like any third-party plugin. A sink
block such as::

    sinks:
      - type: database
        url: postgresql://ingestd@db.example.com/calls   # default: SQLite in the state dir
        password_file: /run/secrets/db-password          # or in the URL, or ${DB_PASSWORD}
        table_prefix: ingestd_                           # default ""
        pool_size: 2                                     # default 2

creates (or migrates) the tables on first use and upserts each delivery in one
transaction, so redelivering a conversation leaves exactly one copy of each item. See
`ingestd_database.schema` for the tables, `ingestd_database.migrations` for versions and
`ingestd_database.sink` for the delivery protocol. SQLite, PostgreSQL and MariaDB/MySQL are
supported through the drivers ingestd installs.
"""

from __future__ import annotations

from collections.abc import Callable

from ingestd import hookimpl
from ingestd_database.sink import DatabaseSink, make_database_sink

__all__ = ["DatabaseSink", "make_database_sink"]


@hookimpl
def ingestd_register_sinks(register: Callable[..., None]) -> None:
    register("database", make_database_sink)
