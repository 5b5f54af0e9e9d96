"""The tables the database sink writes, as SQLAlchemy Core objects (schema version 1).

One row per conversation, one per part (recording) and one per item of each insight kind.
Items are keyed by ``(conversation_id, id)`` with the API's own ids, which is what makes
redelivery an upsert instead of an append; ``position`` keeps the API's order. Each item's
API object is also kept whole in ``raw`` (JSON; JSONB on PostgreSQL), so fields without a
column of their own (message words, entity values) stay queryable::

    conversations  id · name · start_time · end_time · parts · content_sha256 · created_at
                   · updated_at · raw · summary · analytics · entities · trackers
    parts          conversation_id · position · recording_id · watch · relpath · sha256
                   · size_bytes · mtime
    messages       conversation_id · id · position · text · speaker_{id,name,email}
                   · start_time · end_time · time_offset · duration · sentiment_score
                   · sentiment · phrases · raw
    topics         … · text · score · sentiment_score · sentiment · message_ids · parent_refs
    questions      … · text · score · speaker_{id,name,email} · message_ids
    action_items   … · text · score · definitive · due_by · assignee_{id,name,email}
    follow_ups       · speaker_{id,name,email} · message_ids · entities   (same columns)
    members        … · name · email

Times are UTC: ``timestamptz`` on PostgreSQL, naive UTC elsewhere, aware UTC when read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect

ITEM_KINDS = ("messages", "topics", "questions", "action_items", "follow_ups", "members")
"""Insight kinds with a table of their own, named like the `Insights` fields."""

ID_LENGTH = 255


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time stored as UTC on every dialect, read back timezone-aware.

    MySQL's DATETIME and SQLite have no time zone, so we store naive UTC there (with
    microseconds: MySQL would otherwise round to whole seconds).
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Ids compare byte for byte on MySQL too (its default collation would make "A1" == "a1").
Id = String(ID_LENGTH).with_variant(
    mysql.VARCHAR(ID_LENGTH, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)
LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
Json = JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
Sha256 = String(64)

_MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
_INDEX_TEXT = {"mysql_length": 191}
"""MySQL indexes a TEXT column only by a prefix of it."""


@dataclass(frozen=True)
class Tables:
    """Every table of one sink, with its `table_prefix` applied.

    Attributes:
        metadata: holds them all, for ``create_all``.
        items: insight kind -> its table, in `ITEM_KINDS` order.
    """

    prefix: str
    metadata: MetaData
    conversations: Table
    parts: Table
    items: dict[str, Table]


def build_tables(prefix: str = "") -> Tables:
    """The current schema's tables, each name starting with `prefix`."""
    metadata = MetaData()
    conversations = Table(
        f"{prefix}conversations",
        metadata,
        Column("id", Id, primary_key=True, comment="Symbl conversationId"),
        Column("name", LongText),
        Column("start_time", UTCDateTime),
        Column("end_time", UTCDateTime),
        Column("parts", Integer, nullable=False, comment="recordings delivered so far"),
        Column("content_sha256", Sha256, nullable=False, comment="of everything delivered"),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Column("raw", Json, comment="the conversation object as the API returned it"),
        Column("summary", Json),
        Column("analytics", Json),
        Column("entities", Json),
        Column("trackers", Json),
        Index(f"ix_{prefix}conversations_start_time", "start_time"),
        Index(f"ix_{prefix}conversations_updated_at", "updated_at"),
        **_MYSQL,
    )
    parts = Table(
        f"{prefix}parts",
        metadata,
        _conversation_id(conversations),
        Column("position", Integer, primary_key=True, autoincrement=False),
        Column("recording_id", Integer, comment="in ingestd's state store"),
        Column("watch", LongText),
        Column("relpath", LongText, nullable=False),
        Column("sha256", Sha256, nullable=False),
        Column("size_bytes", BigInteger, nullable=False),
        Column("mtime", UTCDateTime),
        Index(f"ix_{prefix}parts_sha256", "sha256"),
        **_MYSQL,
    )
    items = {
        "messages": _item_table(
            metadata,
            conversations,
            "messages",
            Column("text", LongText),
            *_person("speaker"),
            Column("start_time", UTCDateTime),
            Column("end_time", UTCDateTime),
            Column("time_offset", Double, comment="seconds from the start"),
            Column("duration", Double, comment="seconds"),
            Column("sentiment_score", Double),
            Column("sentiment", Text),
            Column("phrases", Json),
        ),
        "topics": _item_table(
            metadata,
            conversations,
            "topics",
            Column("text", LongText),
            Column("score", Double),
            Column("sentiment_score", Double),
            Column("sentiment", Text),
            Column("message_ids", Json),
            Column("parent_refs", Json),
        ),
        "questions": _item_table(
            metadata,
            conversations,
            "questions",
            Column("text", LongText),
            Column("score", Double),
            *_person("speaker"),
            Column("message_ids", Json),
        ),
        "action_items": _task_table(metadata, conversations, "action_items"),
        "follow_ups": _task_table(metadata, conversations, "follow_ups"),
        "members": _item_table(
            metadata,
            conversations,
            "members",
            Column("name", Text),
            Column("email", Text),
            Index(f"ix_{prefix}members_email", "email", **_INDEX_TEXT),
        ),
    }
    return Tables(prefix, metadata, conversations, parts, items)


def _conversation_id(conversations: Table) -> Column[Any]:
    """The first half of every child table's key; deleting a conversation deletes its rows."""
    return Column(
        "conversation_id",
        Id,
        ForeignKey(conversations.c.id, ondelete="CASCADE"),
        primary_key=True,
    )


def _person(role: str) -> list[Column[Any]]:
    """Who said or owns an item: the API's ``{id, name, email|userId}`` object, flattened."""
    return [Column(f"{role}_id", Text), Column(f"{role}_name", Text), Column(f"{role}_email", Text)]


def _item_table(metadata: MetaData, conversations: Table, kind: str, *extra: Any) -> Table:
    """An insight table: keyed by (conversation_id, id), ordered by position, raw kept."""
    prefix = conversations.name.removesuffix("conversations")
    return Table(
        f"{prefix}{kind}",
        metadata,
        _conversation_id(conversations),
        Column("id", Id, primary_key=True, comment="the API's id of the item"),
        Column("position", Integer, nullable=False, comment="order in the API's answer"),
        *extra,
        Column("raw", Json, comment="the item as the API returned it"),
        Index(f"ix_{prefix}{kind}_position", "conversation_id", "position"),
        **_MYSQL,
    )


def _task_table(metadata: MetaData, conversations: Table, kind: str) -> Table:
    """Action items and follow-ups share their shape: someone should do something by then."""
    prefix = conversations.name.removesuffix("conversations")
    return _item_table(
        metadata,
        conversations,
        kind,
        Column("text", LongText),
        Column("score", Double),
        Column("definitive", Boolean),
        Column("due_by", UTCDateTime),
        *_person("assignee"),
        *_person("speaker"),
        Column("message_ids", Json),
        Column("entities", Json),
        Index(f"ix_{prefix}{kind}_assignee_email", "assignee_email", **_INDEX_TEXT),
    )
