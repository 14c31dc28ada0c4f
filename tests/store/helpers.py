"""Shared helpers for the store tests: record builders and a raw-table snapshot."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Index, MetaData, Table, UniqueConstraint, select

import crdt
from store import LogRow, ObjectRow, Store, default_partition_of
from store.schema import metadata

__all__ = [
    "counter_row",
    "key_in",
    "log_entry",
    "old_layout",
    "orset_row",
    "raw_tables",
    "summary",
]


def old_layout(dropped: dict[str, set[str]]) -> MetaData:
    """Today's tables without the ``dropped`` columns (table name -> column names), with
    the indexes and unique constraints over the columns kept: an older version's layout."""
    old = MetaData()
    for table in metadata.tables.values():
        gone = dropped.get(table.name, set())
        kept = [c for c in table.columns if c.name not in gone]
        extras: list[Any] = [
            Index(ix.name, *(c.name for c in ix.columns))
            for ix in table.indexes
            if all(c.name not in gone for c in ix.columns)
        ]
        extras += [
            UniqueConstraint(*(c.name for c in uc.columns), name=uc.name)
            for uc in table.constraints
            if isinstance(uc, UniqueConstraint) and all(c.name not in gone for c in uc.columns)
        ]
        Table(
            table.name,
            old,
            *(
                Column(
                    c.name,
                    c.type,
                    primary_key=c.primary_key,
                    nullable=c.nullable,
                    autoincrement=c.autoincrement,
                    server_default=c.server_default,
                )
                for c in kept
            ),
            *extras,
        )
    return old


def counter_row(key: str, n: int = 1, replica: str = "A") -> ObjectRow:
    counter = crdt.GCounter()
    counter.increment(replica, n)
    return ObjectRow(key, "gcounter", counter.to_dict())


def orset_row(key: str, *elements: str, replica: str = "A") -> ObjectRow:
    items = crdt.ORSet()
    for element in elements:
        items.add(replica, element)
    return ObjectRow(key, "orset", items.to_dict())


def log_entry(key: str, seq: int, origin: str = "A", n: int = 1, partitions: int = 64) -> LogRow:
    delta = crdt.GCounter()
    delta.increment(origin, n)
    return LogRow(
        origin, default_partition_of(key, partitions), seq, key, "gcounter", delta.to_dict()
    )


def summary(vv: dict[str, int], cloud: tuple[tuple[str, int], ...] = ()) -> dict[str, Any]:
    return {"vv": dict(vv), "cloud": [list(d) for d in sorted(cloud)]}


def key_in(partition: int, index: int, partitions: int = 64, prefix: str = "k") -> str:
    """The ``index``-th key (in probe order) that falls in ``partition``."""
    found = -1
    for i in range(1_000_000):
        key = f"{prefix}{i}"
        if default_partition_of(key, partitions) == partition:
            found += 1
            if found == index:
                return key
    raise AssertionError("no key found")  # pragma: no cover


async def raw_tables(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted, straight from SQL (no decoding)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = (await conn.execute(select(table))).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out
