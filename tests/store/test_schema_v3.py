"""Schema version 3: an object is named by (key, kind); a version-2 database migrates."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, Text, insert
from sqlalchemy.ext.asyncio import create_async_engine

import crdt
from store import SEGMENT_COLUMNS, Batch, default_partition_of, metadata, pack_segments
from tests.store.conftest import Backend
from tests.store.helpers import counter_row, log_entry, orset_row

# The version-2 layout: today's tables, except that an object was named by its key alone.
v2 = MetaData()
for _table in metadata.tables.values():
    if _table.name != "objects":
        _table.to_metadata(v2)
Table(
    "objects",
    v2,
    Column("key", Text, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Index("ix_objects_partition_key", "partition", "key"),
)


def _driver_url(backend: Backend) -> Any:
    from sqlalchemy import make_url

    url = make_url(backend.url)
    return url.set(drivername="sqlite+aiosqlite" if backend.name == "sqlite" else url.drivername)


async def _make_v2(backend: Backend) -> None:
    engine = create_async_engine(_driver_url(backend))
    entry = log_entry("visits", 1)
    segment = next(
        pack_segments(
            entry.partition,
            entry.origin,
            [(entry.seq, entry.key, entry.kind, crdt.GCounter().increment("A", 1).to_json())],
        )
    )
    try:
        async with engine.begin() as conn:
            await conn.run_sync(v2.create_all)
            t = v2.tables
            await conn.execute(
                insert(t["meta"]),
                [{"name": "schema_version", "value": "2"}, {"name": "partitions", "value": "64"}],
            )
            await conn.execute(
                insert(t["objects"]),
                [
                    {
                        "key": row.key,
                        "kind": row.kind,
                        "partition": default_partition_of(row.key),
                        "state": crdt.from_dict(row.state).to_json(),
                    }
                    for row in (orset_row("cart", "milk"), counter_row("visits", 2))
                ],
            )
            await conn.execute(
                insert(t["log_segments"]),
                [dict(zip(SEGMENT_COLUMNS, segment, strict=True))],
            )
    finally:
        await engine.dispose()


async def test_a_version_2_database_keeps_its_objects_and_takes_a_second_kind(
    backend: Backend,
) -> None:
    await _make_v2(backend)
    async with await backend.open() as store:
        assert store.migrated_from == 2
        loaded = await store.load()
        assert loaded.objects == {
            ("cart", "orset"): orset_row("cart", "milk"),
            ("visits", "gcounter"): counter_row("visits", 2),
        }
        assert [(e.key, e.kind, e.seq) for e in loaded.log] == [("visits", "gcounter", 1)]
        # The new primary key: a second kind of a key is a second object.
        await store.apply(Batch(objects=(counter_row("cart", 3),)))
        assert await store.get_object("cart", "orset") == orset_row("cart", "milk")
        assert await store.get_object("cart", "gcounter") == counter_row("cart", 3)
        part = default_partition_of("cart")
        snapshot = [(r.key, r.kind) async for page in store.snapshot(part) for r in page]
        assert snapshot == [("cart", "gcounter"), ("cart", "orset")]
    async with await backend.open() as again:  # reopening neither migrates nor loses a row
        assert again.migrated_from is None
        objects = (await again.load()).objects
        assert set(objects) == {("cart", "orset"), ("cart", "gcounter"), ("visits", "gcounter")}


async def test_the_report_shows_both_objects_of_a_clashed_key(backend: Backend) -> None:
    import asyncio

    from store import LogRow
    from store.report import ObjectReport, report_database

    async with await backend.open() as store:
        await store.apply(Batch(objects=(counter_row("k", 2),)))
        delta = crdt.ORSet().add("B", "x").to_dict()
        entry = LogRow("B", default_partition_of("k"), 1, "k", "orset", delta)
        await store.apply(Batch(log=(entry,)))  # the orset only in the log, not checkpointed
    report = await asyncio.to_thread(report_database, backend.url)
    assert report.keys == 2 and report.log_size == 1
    assert report.objects == (
        ObjectReport("k", "gcounter", 2, None, {"A": 2}),
        ObjectReport("k", "orset", ["x"], None, {"B": 1}),
    )
    assert report.kind_clashes == {"k": ("gcounter", "orset")}
    one = await asyncio.to_thread(report_database, backend.url, "k")
    assert [o.kind for o in one.objects] == ["gcounter", "orset"]
