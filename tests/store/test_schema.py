"""Schema versions: an older database migrates forward on open; a newer one is refused and
left untouched; a failed migration changes nothing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    inspect,
    make_url,
    select,
    update,
)
from sqlalchemy.ext.asyncio import create_async_engine

from store import (
    LOCK_SUFFIX,
    SCHEMA_VERSION,
    SEGMENT_MAX_ENTRIES,
    Batch,
    CorruptBlob,
    LogRow,
    SchemaVersionMismatch,
    Store,
    StoreError,
    default_partition_of,
    meta,
    sidecar_path,
)
from tests.store.conftest import Backend
from tests.store.helpers import counter_row, key_in, log_entry, orset_row, raw_tables

# The version-0 layout, written out by hand: no objects.partition, no log.kind/hints.kind.
v0 = MetaData()
Table("meta", v0, Column("name", String(64), primary_key=True), Column("value", Text))
Table(
    "objects",
    v0,
    Column("key", Text, primary_key=True),
    Column("kind", String(32)),
    Column("state", Text),
)
Table(
    "log",
    v0,
    Column("partition", Integer),
    Column("origin", Text),
    Column("seq", BigInteger),
    Column("key", Text),
    Column("delta", Text),
    PrimaryKeyConstraint("partition", "origin", "seq"),
)
Table(
    "summaries",
    v0,
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("ctx", Text),
)
Table(
    "hints",
    v0,
    Column("id", Integer, primary_key=True),
    Column("target", Text),
    Column("origin", Text),
    Column("partition", Integer),
    Column("seq", BigInteger),
    Column("key", Text),
    Column("delta", Text),
    Column("stored_ms", BigInteger),
    UniqueConstraint("target", "origin", "partition", "seq"),
)
Table(
    "peers",
    v0,
    Column("replica_id", Text, primary_key=True),
    Column("address", Text),
    Column("site", Text),
    Column("summary", Text),
    Column("last_seen_ms", BigInteger),
    Column("forgotten", Boolean),
)


# The version-1 layout: v0 plus objects.partition (+ index), log.kind and hints.kind.
v1 = MetaData()
for _table in v0.tables.values():
    _table.to_metadata(v1)
v1.tables["objects"].append_column(Column("partition", Integer))
v1.tables["log"].append_column(Column("kind", String(32)))
v1.tables["hints"].append_column(Column("kind", String(32)))


def _driver_url(backend: Backend) -> Any:
    return make_url(backend.url)


async def _make_v0(backend: Backend, *, corrupt_log: bool = False) -> None:
    entry = log_entry("visits", 1)
    hint_entry = log_entry("cart", 2, origin="C")
    engine = create_async_engine(_driver_url(backend))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(v0.create_all)
            t = v0.tables
            await conn.execute(
                insert(t["meta"]),
                [{"name": "schema_version", "value": "0"}, {"name": "replica_id", "value": "old"}],
            )
            await conn.execute(
                insert(t["objects"]),
                [
                    {
                        "key": "cart",
                        "kind": "orset",
                        "state": json.dumps(orset_row("cart", "milk").state),
                    },
                    {
                        "key": "visits",
                        "kind": "gcounter",
                        "state": json.dumps(counter_row("visits", 2).state),
                    },
                ],
            )
            await conn.execute(
                insert(t["log"]),
                [
                    {
                        "partition": entry.partition,
                        "origin": "A",
                        "seq": 1,
                        "key": "visits",
                        "delta": "{broken" if corrupt_log else json.dumps(entry.delta),
                    }
                ],
            )
            await conn.execute(
                insert(t["hints"]),
                [
                    {
                        "target": "T",
                        "origin": "C",
                        "partition": hint_entry.partition,
                        "seq": 2,
                        "key": "cart",
                        "delta": json.dumps(hint_entry.delta),
                        "stored_ms": 1500,
                    }
                ],
            )
    finally:
        await engine.dispose()


async def test_a_version_0_database_migrates_forward(backend: Backend) -> None:
    await _make_v0(backend)
    async with await backend.open() as store:
        assert store.migrated_from == 0 and not store.created
        # Without a signing key (and without an identity stamp) the id changes: a new key.
        assert store.rekeyed and store.previous_replica_ids == ("old",)
        loaded = await store.load()
        snap = [r async for p in store.snapshot(default_partition_of("cart")) for r in p]
    assert loaded.objects == {
        ("cart", "orset"): orset_row("cart", "milk"),
        ("visits", "gcounter"): counter_row("visits", 2),
    }
    assert loaded.log == [log_entry("visits", 1)]
    # (Version 0 -> 1 gave the hint its kind; 4 -> 5 deletes it, as every unsigned hint.)
    assert loaded.hints == []
    assert [r.key for r in snap] == ["cart"]
    async with await backend.open() as store:
        assert store.migrated_from is None
        async with store.engine.connect() as conn:
            version = (
                await conn.execute(select(meta.c.value).where(meta.c.name == "schema_version"))
            ).scalar_one()
        assert version == str(SCHEMA_VERSION)


async def _make_v1(backend: Backend, log: list[LogRow]) -> None:
    engine = create_async_engine(_driver_url(backend))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(v1.create_all)
            t = v1.tables
            await conn.execute(
                insert(t["meta"]),
                [{"name": "schema_version", "value": "1"}, {"name": "partitions", "value": "64"}],
            )
            await conn.execute(
                insert(t["log"]),
                [
                    {
                        "partition": e.partition,
                        "origin": e.origin,
                        "seq": e.seq,
                        "key": e.key,
                        "kind": e.kind,
                        "delta": json.dumps(e.delta),
                    }
                    for e in log
                ],
            )
    finally:
        await engine.dispose()


async def test_a_version_1_log_is_packed_into_segments(backend: Backend) -> None:
    # Two partitions, two origins, a gap in the seqs, and more entries than a segment holds.
    k1, k2 = key_in(3, 0), key_in(40, 0)
    log = [log_entry(k1, s, origin="A", n=s) for s in (1, 2, 3, 7)]
    log += [log_entry(k1, s, origin="B") for s in (2, 5)]
    log += [log_entry(k2, s, origin="A") for s in range(1, SEGMENT_MAX_ENTRIES + 3)]
    await _make_v1(backend, log[::-1])  # inserted out of order: the migration sorts
    async with await backend.open() as store:
        assert store.migrated_from == 1
        loaded = await store.load()
        tables = await raw_tables(store)
        pages = [p async for p in store.deltas_missing(3, {"vv": {"A": 2}, "cloud": []})]
    assert loaded.log == sorted(log, key=lambda e: (e.partition, e.origin, e.seq))
    assert [e.delta_json for e in loaded.log[:1]] == [json.dumps(log[0].delta)]
    # One segment per (partition, origin), the big one cut at SEGMENT_MAX_ENTRIES.
    spans = sorted((r[1], r[2], r[3], r[4]) for r in tables["log_segments"])
    assert spans == [
        (3, "A", 1, 7),
        (3, "B", 2, 5),
        (40, "A", 1, SEGMENT_MAX_ENTRIES),
        (40, "A", SEGMENT_MAX_ENTRIES + 1, SEGMENT_MAX_ENTRIES + 2),
    ]
    assert [(r.origin, r.seq) for p in pages for r in p] == [("A", 3), ("A", 7), ("B", 2), ("B", 5)]
    engine = create_async_engine(_driver_url(backend))
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: inspect(c).get_table_names())
    finally:
        await engine.dispose()
    assert "log" not in names and "log_segments" in names


async def test_a_failed_migration_changes_nothing(backend: Backend) -> None:
    await _make_v0(backend, corrupt_log=True)
    with pytest.raises(CorruptBlob) as info:
        await backend.open()
    assert (info.value.key, info.value.table) == ("visits", "log")
    engine = create_async_engine(_driver_url(backend))
    try:
        async with engine.connect() as conn:
            rows = {r.name: r.value for r in await conn.execute(select(v0.tables["meta"]))}
            columns = (await conn.execute(select(v0.tables["objects"]))).keys()
    finally:
        await engine.dispose()
    assert rows == {"schema_version": "0", "replica_id": "old"}
    assert list(columns) == ["key", "kind", "state"]


def _files(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file but the open lock (store.lock), whose record each opener rewrites."""
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.iterdir())
        if not p.name.endswith(LOCK_SUFFIX)
    }


async def test_a_newer_sqlite_database_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    async with await Store.open(path) as store:
        await store.apply(Batch(objects=(counter_row("k"),)))
    with sqlite3.connect(path) as raw:
        raw.execute(
            "UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(SCHEMA_VERSION + 1),)
        )
    raw.close()
    before = _files(tmp_path)
    assert set(before) == {"new.sqlite", sidecar_path(path).name}
    with pytest.raises(SchemaVersionMismatch) as info:
        await Store.open(path)
    assert (info.value.found, info.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert _files(tmp_path) == before


@pytest.mark.postgres
async def test_a_newer_postgres_database_is_refused_and_untouched(pg_backend: Backend) -> None:
    async with await pg_backend.open() as store:
        await store.apply(Batch(objects=(counter_row("k"),)))
        async with store.engine.begin() as conn:
            await conn.execute(
                update(meta)
                .where(meta.c.name == "schema_version")
                .values(value=str(SCHEMA_VERSION + 7))
            )
        before = await raw_tables(store)
    with pytest.raises(SchemaVersionMismatch) as info:
        await pg_backend.open()
    assert info.value.found == SCHEMA_VERSION + 7
    assert await _Peek(pg_backend).tables() == before


class _Peek:
    """Read every table of a backend without opening a Store (which would refuse)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def tables(self) -> dict[str, list[tuple[Any, ...]]]:
        from store.schema import metadata

        engine = create_async_engine(_driver_url(self.backend))
        try:
            out: dict[str, list[tuple[Any, ...]]] = {}
            async with engine.connect() as conn:
                for table in metadata.sorted_tables:
                    rows = (await conn.execute(select(table))).all()
                    out[table.name] = sorted((tuple(r) for r in rows), key=repr)
            return out
        finally:
            await engine.dispose()


async def test_a_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign.sqlite"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE notes (body TEXT)")
    raw.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a shoal database"):
        await Store.open(path)
    assert path.read_bytes() == before
