"""Schema version 4: a version-3 database migrates, its deleted objects found by decoding
(and then on to version 5, ``test_schema_v5.py``).

Version 3 had no ``objects.live``. The migration decodes each stored state once, in pages
(here two rows a page, so that pages end between the two kinds of one key), marks the ones
that are not live and makes the index; a state that does not decode fails the migration and
leaves the database at version 3, rows and all.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert, make_url
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import create_async_engine

import crdt
import store.schema
from store import (
    LIVE_INDEX,
    SCHEMA_VERSION,
    SEGMENT_COLUMNS,
    Batch,
    CorruptBlob,
    ObjectRow,
    default_partition_of,
    pack_segments,
)
from sync.signing import Signer
from tests.store.conftest import Backend
from tests.store.helpers import counter_row, log_entry, old_layout, orset_row
from tests.store.test_live import deleted_counter, emptied_set, tombstone

# The version-3 layout: today's tables, except that objects had no ``live`` column and
# neither log segments nor hints had seals (version 5's).
v3 = old_layout({"objects": {"live"}, "log_segments": {"seals"}, "hints": {"seal"}})


def cleared_register(key: str) -> ObjectRow:
    register = crdt.MVRegister()
    register.set("A", "draft")
    register.clear()
    return ObjectRow(key, "mvregister", register.to_dict())


LIVE = [
    counter_row("a"),
    orset_row("both", "x"),  # a clash of two live kinds: still a clash
    counter_row("both", 3),
    orset_row("d", "milk"),  # beside a deleted counter: listed
    counter_row("z", 5),
]
DELETED = [
    deleted_counter("b"),
    emptied_set("c"),
    deleted_counter("d"),
    cleared_register("m"),
    tombstone("t"),
    deleted_counter("u"),  # u: a clash resolved by deleting both kinds
    emptied_set("u"),
]


def _driver_url(backend: Backend) -> Any:
    url = make_url(backend.url)
    return url.set(drivername="sqlite+aiosqlite" if backend.name == "sqlite" else url.drivername)


async def _make_v3(backend: Backend, rows: list[ObjectRow], states: dict[str, str]) -> None:
    engine = create_async_engine(_driver_url(backend))
    entry = log_entry("a", 1)
    delta = crdt.GCounter().increment("A", 1).to_json()
    segment = next(pack_segments(entry.partition, entry.origin, [(1, "a", "gcounter", delta)]))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(v3.create_all)
            t = v3.tables
            await conn.execute(
                insert(t["meta"]),
                [{"name": "schema_version", "value": "3"}, {"name": "partitions", "value": "64"}],
            )
            await conn.execute(
                insert(t["objects"]),
                [
                    {
                        "key": row.key,
                        "kind": row.kind,
                        "partition": default_partition_of(row.key),
                        "state": states.get(row.key, crdt.from_dict(row.state).to_json()),
                    }
                    for row in rows
                ],
            )
            await conn.execute(
                insert(t["log_segments"]),
                [dict(zip(SEGMENT_COLUMNS[:5], segment[:5], strict=True))],  # no seals in v3
            )
    finally:
        await engine.dispose()


async def _columns_and_indexes(backend: Backend) -> tuple[set[str], set[str]]:
    engine = create_async_engine(_driver_url(backend))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: (
                    {col["name"] for col in sa_inspect(c).get_columns("objects")},
                    {str(ix["name"]) for ix in sa_inspect(c).get_indexes("objects")},
                )
            )
    finally:
        await engine.dispose()


async def test_a_version_3_database_lists_only_its_live_objects_once_migrated(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store.schema, "MIGRATION_PAGE", 2)
    await _make_v3(backend, LIVE + DELETED, {})
    async with await backend.open() as st:
        assert st.migrated_from == 3  # on through 4 -> 5: a signing key, the id its
        assert st.replica_id == Signer(st.signing_key).replica_id
        assert await st.keys() == ["a", "both", "d", "z"]
        start = await st.load_start(objects_limit=0)
        assert start.clashes == {"both": ("gcounter", "orset")}  # d and u are no clash now
        # Every object is kept as it was, deleted ones included.
        objects = (await st.load()).objects
        assert objects == {(r.key, r.kind): r for r in LIVE + DELETED}
        # The flag follows later checkpoints as usual.
        await st.apply(Batch(objects=(counter_row("b", 9, replica="B"), emptied_set("both"))))
        assert await st.keys() == ["a", "b", "both", "d", "z"]
        assert (await st.load_start(objects_limit=0)).clashes == {}
    columns, indexes = await _columns_and_indexes(backend)
    assert "live" in columns and LIVE_INDEX in indexes
    async with await backend.open() as again:
        assert again.migrated_from is None
        assert await again.keys() == ["a", "b", "both", "d", "z"]


async def test_a_state_that_does_not_decode_fails_the_migration_and_changes_nothing(
    backend: Backend,
) -> None:
    broken = '{"type":"orset","v":1,"entries":"not a list"}'
    await _make_v3(backend, [*LIVE, emptied_set("c"), orset_row("q", "x")], {"q": broken})
    with pytest.raises(CorruptBlob) as info:
        await backend.open()
    assert info.value.key == "q" and info.value.table == "objects"
    columns, indexes = await _columns_and_indexes(backend)
    assert "live" not in columns and LIVE_INDEX not in indexes
    engine = create_async_engine(_driver_url(backend))
    try:
        async with engine.connect() as conn:
            version = (
                await conn.exec_driver_sql("SELECT value FROM meta WHERE name = 'schema_version'")
            ).scalar_one()
            rows = (await conn.exec_driver_sql("SELECT key, state FROM objects")).all()
    finally:
        await engine.dispose()
    assert version == "3" and SCHEMA_VERSION == 8
    assert len(rows) == len(LIVE) + 2 and dict(rows)["q"] == broken
