"""The database schema (SQLAlchemy Core), its version, and the migrations that reach it.

Tables (version 1)::

    meta(name PK, value)                    schema_version, replica_id, partitions,
                                            identity (stamp, JSON), past_replica_ids (JSON)
    objects(key PK, kind, partition, state) checkpoints; index (partition, key) for snapshots
    log(partition, origin, seq, key, kind, delta)
                                            PK (partition, origin, seq): one B-tree serves
                                            appends, "what does this summary lack" and
                                            compaction, all of which are per partition
    summaries(partition PK, ctx)            the encoded CausalContext of applied log dots
    hints(id PK, target, origin, partition, seq, key, kind, delta, stored_ms)
                                            unique (target, origin, partition, seq)
    peers(replica_id PK, address, site, summary, last_seen_ms, forgotten)

Blobs (``state``, ``delta``, ``ctx``, ``summary``) are compact, key-sorted JSON text of the
crdt ``to_dict()`` forms.

Versioning: ``meta.schema_version`` holds the version. ``MIGRATIONS[k]`` moves a database from
version ``k`` to ``k + 1`` inside the opening transaction, so a failed migration leaves the
database as it was. A database newer than :data:`SCHEMA_VERSION` is refused
(:class:`~store.errors.SchemaVersionMismatch`) before anything is written.

Version 0 is the pre-release layout: no ``objects.partition``, no ``kind`` in ``log`` and
``hints`` (the kind was only inside the blob), no index for snapshots. Migration 0 -> 1 adds
them, computing partitions with the store's partition function and kinds from the blobs'
``"type"`` field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    select,
    text,
    update,
)

from .errors import CorruptBlob

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "hints",
    "log",
    "meta",
    "metadata",
    "objects",
    "peers",
    "summaries",
]

SCHEMA_VERSION = 1

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

objects = Table(
    "objects",
    metadata,
    Column("key", Text, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Index("ix_objects_partition_key", "partition", "key"),
)

log = Table(
    "log",
    metadata,
    Column("partition", Integer, nullable=False),
    Column("origin", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("key", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("delta", Text, nullable=False),
    PrimaryKeyConstraint("partition", "origin", "seq", name="pk_log"),
)

summaries = Table(
    "summaries",
    metadata,
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("ctx", Text, nullable=False),
)

hints = Table(
    "hints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("target", Text, nullable=False),
    Column("origin", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("key", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("delta", Text, nullable=False),
    Column("stored_ms", BigInteger, nullable=False),
    UniqueConstraint("target", "origin", "partition", "seq", name="uq_hints_dot"),
)

peers = Table(
    "peers",
    metadata,
    Column("replica_id", Text, primary_key=True),
    Column("address", Text, nullable=True),
    Column("site", Text, nullable=True),
    Column("summary", Text, nullable=True),
    Column("last_seen_ms", BigInteger, nullable=False),
    Column("forgotten", Boolean, nullable=False),
)

Migration = Callable[[Connection, Callable[[str], int]], None]
"""``migration(conn, partition_of)``: move the database one version forward, in place."""


def _kind_of_blob(table: str, key: str, blob: str) -> str:
    try:
        decoded: Any = json.loads(blob)
    except ValueError as exc:
        raise CorruptBlob(key, table, f"not JSON ({exc})") from exc
    kind = decoded.get("type") if isinstance(decoded, dict) else None
    if not isinstance(kind, str):
        raise CorruptBlob(key, table, 'no "type" field to migrate the kind from')
    return kind


def _migrate_0_to_1(conn: Connection, partition_of: Callable[[str], int]) -> None:
    """v0 -> v1: objects.partition (+ index), log.kind, hints.kind."""
    conn.execute(text("ALTER TABLE objects ADD COLUMN partition INTEGER NOT NULL DEFAULT 0"))
    conn.execute(text("ALTER TABLE log ADD COLUMN kind VARCHAR(32) NOT NULL DEFAULT ''"))
    conn.execute(text("ALTER TABLE hints ADD COLUMN kind VARCHAR(32) NOT NULL DEFAULT ''"))
    keys = [row.key for row in conn.execute(select(objects.c.key))]
    if keys:
        conn.execute(
            update(objects).where(objects.c.key == bindparam("k")).values(partition=bindparam("p")),
            [{"k": key, "p": partition_of(key)} for key in keys],
        )
    for table, pk in ((log, (log.c.partition, log.c.origin, log.c.seq)), (hints, (hints.c.id,))):
        rows = conn.execute(select(*pk, table.c.key, table.c.delta)).all()
        if not rows:
            continue
        names = [c.name for c in pk]
        stmt = update(table).values(kind=bindparam("new_kind"))
        for column in pk:
            stmt = stmt.where(column == bindparam(f"b_{column.name}"))
        conn.execute(
            stmt,
            [
                {
                    **{f"b_{name}": row[i] for i, name in enumerate(names)},
                    "new_kind": _kind_of_blob(table.name, row.key, row.delta),
                }
                for row in rows
            ],
        )
    for index in objects.indexes:
        index.create(conn, checkfirst=True)


MIGRATIONS: list[Migration] = [_migrate_0_to_1]
"""``MIGRATIONS[k]`` migrates version ``k`` to ``k + 1``; ``len(MIGRATIONS) == SCHEMA_VERSION``."""
