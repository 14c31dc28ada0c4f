"""Schema version 5: a database keeps its replica's signing key, log entries and hints their
origins' seals; a version-4 database gets a key, and so a new replica id (a version-3 one
too, through 3 -> 4 -> 5: ``test_schema_v4.py``)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert, make_url
from sqlalchemy.ext.asyncio import create_async_engine

import crdt
from store import Batch, HintRow, InvalidInput, LogRow, default_partition_of, unfolded_liveness
from store.schema import create_live_index
from sync.signing import Signer
from tests.store.conftest import Backend
from tests.store.helpers import counter_row, old_layout, raw_tables
from tests.store.test_live import deleted_counter

# The version-4 layout: today's tables without the seal columns.
v4 = old_layout({"log_segments": {"seals"}, "hints": {"seal"}})


def _driver_url(backend: Backend) -> Any:
    url = make_url(backend.url)
    return url.set(drivername="sqlite+aiosqlite" if backend.name == "sqlite" else url.drivername)


async def _make_v4(backend: Backend) -> None:
    """A version-4 database: a live counter, a deleted one (``live`` false), a log entry
    and a hint, all unsigned."""
    engine = create_async_engine(_driver_url(backend))
    p = default_partition_of("visits")
    delta = crdt.GCounter().increment("old-id", 1).to_json()
    gone = deleted_counter("gone")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(v4.create_all)
            await conn.run_sync(create_live_index)
            t = v4.tables
            await conn.execute(
                insert(t["meta"]),
                [
                    {"name": "schema_version", "value": "4"},
                    {"name": "partitions", "value": "64"},
                    {"name": "replica_id", "value": "old-id"},
                ],
            )
            await conn.execute(
                insert(t["objects"]),
                [
                    {
                        "key": "visits",
                        "kind": "gcounter",
                        "partition": p,
                        "state": delta,
                        "live": True,
                    },
                    {
                        "key": "gone",
                        "kind": "gcounter",
                        "partition": default_partition_of("gone"),
                        "state": crdt.from_dict(gone.state).to_json(),
                        "live": False,
                    },
                ],
            )
            await conn.execute(
                insert(t["log_segments"]),
                [
                    {
                        "partition": p,
                        "origin": "old-id",
                        "first_seq": 1,
                        "last_seq": 1,
                        "entries": f'[[1,"visits","gcounter",{_quoted(delta)}]]',
                    }
                ],
            )
            await conn.execute(
                insert(t["hints"]),
                [
                    {
                        "target": "someone",
                        "origin": "old-id",
                        "partition": p,
                        "seq": 1,
                        "key": "visits",
                        "kind": "gcounter",
                        "delta": delta,
                        "stored_ms": 1,
                    }
                ],
            )
    finally:
        await engine.dispose()


def _quoted(text: str) -> str:
    import json

    return json.dumps(text)


async def test_a_version_4_database_gets_a_key_and_a_new_id_and_keeps_its_data(
    backend: Backend,
) -> None:
    await _make_v4(backend)
    async with await backend.open() as store:
        assert store.migrated_from == 4 and store.rekeyed
        assert store.replica_id == Signer(store.signing_key).replica_id != "old-id"
        assert store.previous_replica_ids == ("old-id",)
        assert await store.keys() == ["visits"]  # the live flags are kept
        loaded = await store.load()
        assert loaded.objects[("visits", "gcounter")] == counter_row("visits", 1, "old-id")
        assert loaded.objects[("gone", "gcounter")] == deleted_counter("gone")
        assert [(e.origin, e.seq, e.seal) for e in loaded.log] == [("old-id", 1, None)]
        assert loaded.hints == []  # unsigned: no peer would take them
        first = (store.replica_id, store.signing_key)
    async with await backend.open() as again:  # the key and id are kept from then on
        assert (again.replica_id, again.signing_key) == first
        assert not again.rekeyed and again.migrated_from is None


async def test_seals_are_stored_and_read_back_with_log_entries_and_hints(
    backend: Backend,
) -> None:
    signer = Signer.generate()
    me = signer.replica_id
    p = default_partition_of("cart")
    entries = [
        LogRow(me, p, seq, "cart", "orset", crdt.ORSet().add(me, f"e{seq}").to_dict())
        for seq in (1, 2, 3)
    ]
    from sync.effects import LogEntry

    seal_a = signer.seal(
        [LogEntry.of(e.origin, p, e.seq, e.key, e.kind, e.delta) for e in entries[:2]]
    )
    seal_b = signer.seal([LogEntry.of(me, p, 3, "cart", "orset", entries[2].delta)])
    sealed = [
        LogRow(e.origin, e.partition, e.seq, e.key, e.kind, e.delta, seal=s)
        for e, s in zip(entries, (seal_a, seal_a, seal_b), strict=True)
    ]
    async with await backend.open() as store:
        await store.apply(Batch(log=tuple(sealed), hints_add=(HintRow("home", sealed[2], 1.0),)))
        tables = await raw_tables(store)
        # One segment, each seal once in it.
        assert len(tables["log_segments"]) == 1
        loaded = await store.load()
        assert [tuple(e.seal or ()) for e in loaded.log] == [
            tuple(seal_a),
            tuple(seal_a),
            tuple(seal_b),
        ]
        assert tuple(loaded.hints[0].entry.seal or ()) == tuple(seal_b)
        page = [row async for rows in store.deltas_missing(p, {"vv": {me: 1}}) for row in rows]
        assert [(r.seq, tuple(r.seal or ())) for r in page] == [
            (2, tuple(seal_a)),
            (3, tuple(seal_b)),
        ]


async def test_a_malformed_seal_is_refused_and_nothing_is_written(backend: Backend) -> None:
    p = default_partition_of("cart")
    bad = LogRow("B", p, 1, "cart", "orset", crdt.ORSet().add("B", "x").to_dict(), seal=("x",))  # type: ignore[arg-type]
    async with await backend.open() as store:
        before = await raw_tables(store)
        with pytest.raises(InvalidInput, match="seal"):
            await store.apply(Batch(log=(bad,)))
        assert await raw_tables(store) == before


async def test_a_sealed_entry_not_yet_folded_is_read_by_the_unfolded_liveness(
    backend: Backend,
) -> None:
    """What ``shoal inspect --keys`` reads after a crash: the log not folded into the
    objects, whose sealed entries have five elements."""
    signer = Signer.generate()
    me = signer.replica_id
    p = default_partition_of("cart")
    entry = LogRow(me, p, 1, "cart", "orset", crdt.ORSet().add(me, "x").to_dict())
    from sync.effects import LogEntry

    seal = signer.seal([LogEntry.of(me, p, 1, "cart", "orset", entry.delta)])
    sealed = LogRow(me, p, 1, "cart", "orset", entry.delta, seal=seal)
    async with await backend.open() as store:
        await store.apply(Batch(log=(sealed,)))
        async with store.engine.connect() as conn:
            seen = await conn.run_sync(unfolded_liveness)
    assert seen == {"cart": (None, True)}
