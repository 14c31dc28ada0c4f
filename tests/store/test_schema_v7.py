"""Schema version 7: each seal stored once, in ``seals``, named by id from the segments and
hints (a seal over entries in many partitions was stored once per segment in version 6);
read back as it was, deleted once nothing names it, and moved there from a version-6
database by the migration."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
from sqlalchemy import event, insert, make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.util import await_only

import crdt
import store.writes as store_writes
from store import SCHEMA_VERSION, Batch, CorruptBlob, HintRow, LogRow, Store
from store import default_partition_of as partition_of
from store.schema import create_live_index, seal_text
from sync.effects import HintId, HintRecord, LogEntry, Persist
from sync.signing import Seal, Signer
from tests.store.conftest import Backend
from tests.store.helpers import key_in, old_layout, raw_tables

# The version-6 layout: today's tables but ``seals`` (the columns are the same; their
# contents differ).
v6 = old_layout({})
if "seals" in v6.tables:  # (always, but for a run against version 6)
    v6.remove(v6.tables["seals"])


def _driver_url(backend: Backend) -> Any:
    url = make_url(backend.url)
    return url.set(drivername="sqlite+aiosqlite" if backend.name == "sqlite" else url.drivername)


def _entry(origin: str, key: str, seq: int) -> LogEntry:
    delta = crdt.GCounter()
    delta.increment(origin, seq)
    return LogEntry.of(origin, partition_of(key), seq, key, "gcounter", delta.to_dict())


def _sealed(signer: Signer, keys: list[str], seq: int = 1) -> tuple[list[LogEntry], Seal]:
    """One entry of ``signer`` per key, all under one seal: a partition's first entry is its
    ``seq``, the next ones follow."""
    next_seq: dict[int, int] = {}
    entries = []
    for key in keys:
        part = partition_of(key)
        next_seq[part] = next_seq.get(part, seq - 1) + 1
        entries.append(_entry(signer.replica_id, key, next_seq[part]))
    seal = signer.seal(entries)
    for entry in entries:
        entry.seal = seal
    return entries, seal


async def _sql(store: Store, query: str) -> list[tuple[Any, ...]]:
    async with store.engine.connect() as conn:
        return [tuple(row) for row in (await conn.execute(text(query))).all()]


async def _pages(store: Store, partitions: set[int]) -> list[LogRow]:
    out: list[LogRow] = []
    for part in sorted(partitions):
        async for page in store.deltas_missing(part, {"vv": {}, "cloud": []}, batch=7):
            out.extend(page)
    return out


def _seals_by_dot(rows: list[LogRow]) -> dict[tuple[str, int, int], Any]:
    return {(r.origin, r.partition, r.seq): r.seal for r in rows}


async def test_one_seal_over_many_partitions_is_stored_once(backend: Backend) -> None:
    signer = Signer.generate()
    entries, seal = _sealed(signer, [f"key-{i}" for i in range(100)])
    partitions = {e.partition for e in entries}
    assert len(partitions) > 40
    want = {(e.origin, e.partition, e.seq): tuple(seal) for e in entries}
    assert len(want) == 100
    async with await backend.open() as store:
        await store.apply(Persist(log=tuple(entries)))
        stored = await _sql(store, "SELECT id, seal FROM seals")
        named = await _sql(store, "SELECT seals FROM log_segments")
        assert _seals_by_dot((await store.load()).log) == want
        assert _seals_by_dot(await _pages(store, partitions)) == want
    assert len(stored) == 1 and json.loads(stored[0][1]) == list(seal)
    assert len(named) == len(partitions)
    assert {json.loads(n)[0] for (n,) in named} == {stored[0][0]}
    # Version 6 held the whole seal (~2.9 KB) in each of these segments: ~150 KB here.
    assert sum(len(n) for (n,) in named) <= 40 * len(partitions)
    assert len(stored[0][1]) > 2000
    async with await backend.open() as store:  # read back from the database alone
        assert _seals_by_dot((await store.load()).log) == want
        assert _seals_by_dot(await _pages(store, partitions)) == want


async def test_a_hint_s_seal_is_stored_once_and_read_back(backend: Backend) -> None:
    signer = Signer.generate()
    entries, seal = _sealed(signer, [f"key-{i}" for i in range(20)])
    hints = tuple(HintRecord(target, e, 12.5) for e in entries for target in ("B", "C"))
    async with await backend.open() as store:
        await store.apply(Persist(log=tuple(entries), hints_add=hints))
        stored = await _sql(store, "SELECT id FROM seals")
        named = await _sql(store, "SELECT DISTINCT seal FROM hints")
    assert named == stored and len(stored) == 1
    async with await backend.open() as store:
        loaded = await store.load()
    assert len(loaded.hints) == 40
    assert {h.entry.seal for h in loaded.hints} == {tuple(seal)}
    assert {(h.target, h.entry.partition, h.entry.seq) for h in loaded.hints} == {
        (h.target, h.entry.partition, h.entry.seq) for h in hints
    }


async def test_a_seal_is_deleted_once_nothing_names_it(backend: Backend) -> None:
    signer = Signer.generate()
    me = signer.replica_id
    p1, p2, p3 = 3, 17, 40
    a1, a2, b1, c1 = key_in(p1, 0), key_in(p2, 0), key_in(p1, 1), key_in(p3, 0)
    # Seal A over (p1, 1) and (p2, 1); seal B over (p1, 2); seal C only in a hint of (p3, 1).
    first, seal_a = _sealed(signer, [a1, a2])
    second, seal_b = _sealed(signer, [b1], seq=2)
    held, seal_c = _sealed(signer, [c1])
    hint = HintRecord("B", held[0], 1.0)

    async def stored(store: Store) -> set[str]:
        return {json.loads(s)[3] for (s,) in await _sql(store, "SELECT seal FROM seals")}

    signatures = {name: s.signature for name, s in (("A", seal_a), ("B", seal_b), ("C", seal_c))}
    named = {signatures[n] for n in "ABC"}
    async with await backend.open() as store:
        await store.apply(Persist(log=(*first, *second), hints_add=(hint,)))
        assert await stored(store) == named
        # (p1, 1) goes: p1's segment is rewritten without it, and without seal A, which
        # p2's segment still names.
        assert await store.compact(p1, {me: 1}) == 1
        assert await stored(store) == named
        assert _seals_by_dot((await store.load()).log) == {
            (me, p1, 2): tuple(seal_b),
            (me, p2, 1): tuple(seal_a),
        }
        assert await store.compact(p2, {me: 1}) == 1  # the last entry under A
        assert await stored(store) == {signatures["B"], signatures["C"]}
        # The hint is dropped: its seal stays until the next compaction.
        await store.apply(Persist(hints_drop=(HintId("B", me, p3, 1),)))
        assert await stored(store) == {signatures["B"], signatures["C"]}
        assert await store.compact(p1, {me: 2}) == 1
        assert await stored(store) == set()
        assert (await store.load()).log == []


async def test_a_compaction_a_peer_makes_drops_the_seals_too(backend: Backend) -> None:
    """The engine's compaction (a ``Persist.compact``, segments wholly below the mark
    deleted unread) in the same transaction as a write."""
    signer = Signer.generate()
    me = signer.replica_id
    entries, _ = _sealed(signer, [key_in(5, 0)])
    later, seal = _sealed(signer, [key_in(5, 1)], seq=2)
    async with await backend.open() as store:
        await store.apply(Persist(log=tuple(entries)))
        await store.apply(Persist(log=tuple(later), compact=((5, {me: 1}),)))
        stored = await _sql(store, "SELECT seal FROM seals")
        assert [json.loads(s) for (s,) in stored] == [list(seal)]


async def _make_v6(backend: Backend) -> dict[str, Any]:
    """A version-6 database: segments and hints holding their seals inline (a seal shared by
    two segments, a segment of two seals, an unsigned entry); returns what it holds."""
    signer = Signer.generate()
    me = signer.replica_id
    p1, p2 = 3, 17
    k1, k2, k3 = key_in(p1, 0), key_in(p2, 0), key_in(p1, 1)
    (e1, e2), seal_a = _sealed(signer, [k1, k2])
    (e3,), seal_b = _sealed(signer, [k3], seq=2)
    e4 = _entry(me, k3, 3)  # not sealed
    inline = {
        p1: ([[1, k1, "gcounter", e1.delta_json, 0], [2, k3, "gcounter", e3.delta_json, 1],
              [3, k3, "gcounter", e4.delta_json]], [list(seal_a), list(seal_b)]),
        p2: ([[1, k2, "gcounter", e2.delta_json, 0]], [list(seal_a)]),
    }  # fmt: skip
    engine = create_async_engine(_driver_url(backend))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(v6.create_all)
            await conn.run_sync(create_live_index)
            t = v6.tables
            await conn.execute(
                insert(t["meta"]),
                [
                    {"name": "schema_version", "value": "6"},
                    {"name": "partitions", "value": "64"},
                    {"name": "replica_id", "value": me},
                    {"name": "signing_key", "value": signer.private_bytes().hex()},
                ],
            )
            await conn.execute(
                insert(t["log_segments"]),
                [
                    {
                        "partition": part,
                        "origin": me,
                        "first_seq": entries[0][0],
                        "last_seq": entries[-1][0],
                        "entries": json.dumps(entries),
                        "seals": json.dumps(seals),
                    }
                    for part, (entries, seals) in inline.items()
                ],
            )
            await conn.execute(
                insert(t["hints"]),
                [
                    {
                        "target": target,
                        "origin": me,
                        "partition": e.partition,
                        "seq": e.seq,
                        "key": e.key,
                        "kind": e.kind,
                        "delta": e.delta_json,
                        "stored_ms": 2000,
                        "seal": None if s is None else json.dumps(list(s)),
                    }
                    for target, e, s in (("B", e1, seal_a), ("C", e3, seal_b), ("B", e4, None))
                ],
            )
    finally:
        await engine.dispose()
    return {
        "log": {
            (me, p1, 1): tuple(seal_a),
            (me, p1, 2): tuple(seal_b),
            (me, p1, 3): None,
            (me, p2, 1): tuple(seal_a),
        },
        "hints": {("B", p1, 1): tuple(seal_a), ("C", p1, 2): tuple(seal_b), ("B", p1, 3): None},
        "deltas": {(e.partition, e.seq, e.key): e.delta_json for e in (e1, e2, e3, e4)},
        "seals": sorted([list(seal_a), list(seal_b)]),
    }


async def test_a_version_6_database_moves_its_seals_to_the_table(backend: Backend) -> None:
    held = await _make_v6(backend)
    async with await backend.open() as store:
        assert store.migrated_from == 6 and SCHEMA_VERSION == 8
        loaded = await store.load()
        stored = await _sql(store, "SELECT id, seal FROM seals")
        named = await _sql(store, "SELECT seals FROM log_segments")
        hint_ids = await _sql(store, "SELECT seal FROM hints")
        paged = await _pages(store, {3, 17})
    assert _seals_by_dot(loaded.log) == held["log"] == _seals_by_dot(paged)
    assert {(r.partition, r.seq, r.key): r.delta_json for r in loaded.log} == held["deltas"]
    hints = {(h.target, h.entry.partition, h.entry.seq): h.entry.seal for h in loaded.hints}
    assert hints == held["hints"]
    assert sorted(json.loads(s) for _, s in stored) == held["seals"]
    ids = {sid for sid, _ in stored}
    assert {sid for (n,) in named for sid in json.loads(n)} == ids
    assert {sid for (sid,) in hint_ids if sid is not None} == ids
    async with await backend.open() as again:  # migrated once
        assert again.migrated_from is None
        assert _seals_by_dot((await again.load()).log) == held["log"]


async def test_a_malformed_inline_seal_fails_the_migration_and_changes_nothing(
    backend: Backend,
) -> None:
    await _make_v6(backend)
    engine = create_async_engine(_driver_url(backend))
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE log_segments SET seals = '[[\"o\", 1]]'"))
        with pytest.raises(CorruptBlob) as info:
            await backend.open()
        assert info.value.table == "log_segments"
        async with engine.connect() as conn:
            version = (
                await conn.execute(text("SELECT value FROM meta WHERE name = 'schema_version'"))
            ).scalar_one()
            tables = await conn.run_sync(lambda c: c.dialect.get_table_names(c))
    finally:
        await engine.dispose()
    assert version == "6" and "seals" not in tables


async def test_a_segment_naming_a_missing_seal_is_corrupt_and_changes_nothing(
    backend: Backend,
) -> None:
    signer = Signer.generate()
    entries, _ = _sealed(signer, [key_in(9, 0)])
    async with await backend.open() as store:
        await store.apply(Persist(log=tuple(entries)))
        async with store.engine.begin() as conn:
            await conn.execute(text("DELETE FROM seals"))
            seg_id = (await conn.execute(text("SELECT id FROM log_segments"))).scalar_one()
        before = await raw_tables(store)
        with pytest.raises(CorruptBlob) as info:
            await store.load()
        assert info.value.key == f"segment {seg_id}" and info.value.table == "log_segments"
        with pytest.raises(CorruptBlob) as info:
            await _pages(store, {9})
        assert info.value.key == f"segment {seg_id}"
        assert await raw_tables(store) == before


async def test_a_hint_naming_a_missing_seal_is_corrupt(backend: Backend) -> None:
    signer = Signer.generate()
    entries, seal = _sealed(signer, [key_in(9, 0)])
    hint = HintRow("B", LogRow(**{f: getattr(entries[0], f) for f in _ROW}, seal=seal), 1.0)
    async with await backend.open() as store:
        await store.apply(Batch(hints_add=(hint,)))
        async with store.engine.begin() as conn:
            await conn.execute(text("DELETE FROM seals"))
        before = await raw_tables(store)
        with pytest.raises(CorruptBlob) as info:
            await store.load()
        assert info.value.key == entries[0].key and info.value.table == "hints"
        assert await raw_tables(store) == before


_ROW = ("origin", "partition", "seq", "key", "kind", "delta")


async def test_a_seal_row_whose_text_is_not_its_id_s_is_corrupt(backend: Backend) -> None:
    """A seal's id is the digest of its text: a row holding another (well-formed) seal under
    that id is refused when read, naming the row, and nothing changes."""
    signer = Signer.generate()
    entries, _ = _sealed(signer, [key_in(9, 0)])
    _, other = _sealed(Signer.generate(), [key_in(9, 1)])
    async with await backend.open() as store:
        await store.apply(Persist(log=tuple(entries)))
        async with store.engine.begin() as conn:
            await conn.execute(text("UPDATE seals SET seal = :s"), {"s": seal_text(other)})
            (sid,) = (await conn.execute(text("SELECT id FROM seals"))).scalars().all()
        before = await raw_tables(store)
        for read in (store.load(), _pages(store, {9})):
            with pytest.raises(CorruptBlob) as info:
                await read
            assert info.value.key == sid and info.value.table == "seals"
            assert "not the seal its id names" in str(info.value)
        assert await raw_tables(store) == before


async def test_a_peer_s_compactions_sweep_the_seals_amortized(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep reads every segment (the whole log), so a peer's compactions sweep only once
    as many seals were stored since the last sweep as it left (at least SWEEP_MIN), not at
    each one; unused seals stay within that bound, and an explicit compaction sweeps."""
    monkeypatch.setattr(store_writes, "SWEEP_MIN", 16, raising=False)
    sweeps: list[int] = []
    drop = store_writes.drop_unused_seals

    def counted(conn: Any) -> None:
        sweeps.append(1)
        drop(conn)

    monkeypatch.setattr(store_writes, "drop_unused_seals", counted)
    signer = Signer.generate()
    me, key, n = signer.replica_id, key_in(5, 0), 100
    part = partition_of(key)
    most = 0
    async with await backend.open() as store:
        for seq in range(1, n + 1):  # each write sealed alone; the one before compacted
            entries, _ = _sealed(signer, [key], seq=seq)
            compact = ((part, {me: seq - 1}),) if seq > 1 else ()
            await store.apply(Persist(log=tuple(entries), compact=compact))
            most = max(most, len(await _sql(store, "SELECT id FROM seals")))
        # A sweep at the first compaction (nothing known), then one per 16 seals stored.
        assert 2 <= len(sweeps) <= 2 + n // 16
        assert most <= 16 + 2
        assert await store.compact(part, {me: n}) == 1
        assert await _sql(store, "SELECT id FROM seals") == []


async def test_a_read_keeps_its_seals_while_a_compaction_commits_between_its_statements(
    backend: Backend,
) -> None:
    """A read looks up the seals its segments name in a later statement; a compaction that
    another connection commits between the two (deleting both) must not leave the read with
    segments whose seals are gone. PostgreSQL's reads are REPEATABLE READ for this (its
    default, READ COMMITTED, gives each statement its own snapshot); SQLite's read is one
    WAL transaction."""
    signer = Signer.generate()
    entries, seal = _sealed(signer, [key_in(9, 0), key_in(9, 1)])
    want = {(e.origin, e.partition, e.seq): tuple(seal) for e in entries}
    fired: list[str] = []
    async with await backend.open() as store:
        await store.apply(Persist(log=tuple(entries)))
        if backend.path is not None:
            assert store._reader is not None
            read_engine = store._reader.engine

            def compact_elsewhere() -> None:
                other = sqlite3.connect(backend.path, timeout=5.0)
                with other:
                    other.execute("DELETE FROM log_segments")
                    other.execute("DELETE FROM seals")
                other.close()

        else:
            read_engine = store.engine.sync_engine
            other_engine = create_async_engine(_driver_url(backend))

            async def delete_both() -> None:
                async with other_engine.begin() as conn:
                    await conn.execute(text("DELETE FROM log_segments"))
                    await conn.execute(text("DELETE FROM seals"))

            def compact_elsewhere() -> None:
                await_only(delete_both())

        def between(_c: Any, _cur: Any, statement: str, *_args: Any) -> None:
            if "FROM seals" in statement and not fired:
                fired.append(statement)
                compact_elsewhere()

        event.listen(read_engine, "before_cursor_execute", between)
        try:
            loaded = await store.load()
        finally:
            event.remove(read_engine, "before_cursor_execute", between)
            if backend.path is None:
                await other_engine.dispose()
        assert fired  # the compaction did commit between the read's statements
        assert _seals_by_dot(loaded.log) == want
        assert (await store.load()).log == []  # and a later read sees it


async def test_a_sweep_rolled_back_with_its_transaction_is_not_taken_as_done(
    backend: Backend,
) -> None:
    """A compacting transaction sweeps, then fails at its commit: its sweep is undone with
    it, so the next compaction sweeps again (the counters outlive the transaction, on the
    pooled connection PostgreSQL's writer reuses), and no unused seal is left waiting."""
    signer = Signer.generate()
    me, key = signer.replica_id, key_in(5, 0)
    part = partition_of(key)
    fail = [True]

    def fail_once(_conn: Any) -> None:
        if fail:
            fail.clear()
            raise RuntimeError("the commit failed")

    async with await backend.open() as store:
        for seq in range(1, 4):
            entries, _ = _sealed(signer, [key], seq=seq)
            await store.apply(Persist(log=tuple(entries)))
        entries, _ = _sealed(signer, [key], seq=4)
        compacting = Persist(log=tuple(entries), compact=((part, {me: 3}),))
        event.listen(store.write_engine, "commit", fail_once)
        try:
            with pytest.raises(RuntimeError, match="the commit failed"):
                await store.apply(compacting)
        finally:
            event.remove(store.write_engine, "commit", fail_once)
        assert len(await _sql(store, "SELECT id FROM seals")) == 3  # (rolled back)
        await store.apply(compacting)
        assert len(await _sql(store, "SELECT id FROM seals")) == 1
