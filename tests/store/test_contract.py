"""The store's contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, update

import crdt
from store import (
    Batch,
    CorruptBlob,
    HintIdRow,
    HintRow,
    InvalidInput,
    LogRow,
    ObjectRow,
    PeerRow,
    Store,
    StoreClosed,
    default_partition_of,
    log_segments,
    objects,
)
from tests.store.conftest import Backend
from tests.store.helpers import counter_row, key_in, log_entry, orset_row, raw_tables, summary


async def test_open_creates_then_reopens_with_the_same_replica_id(backend: Backend) -> None:
    async with await backend.open() as store:
        first = store.replica_id
        assert store.created and not store.identity_rotated
        assert await store.load() == type(await store.load())()
    async with await backend.open() as store:
        assert store.replica_id == first
        assert not store.created and not store.identity_rotated
        assert store.previous_replica_ids == ()


async def test_apply_then_load_round_trips_every_table(backend: Backend) -> None:
    k1, k2 = "cart:alice", "visits"
    p1 = default_partition_of(k2)
    entry = log_entry(k2, 1)
    hint = HintRow("peer-B", log_entry(k2, 7, origin="C"), stored_at=12.345)
    peer = PeerRow(
        "peer-B",
        "ws://127.0.0.1:1",
        "home",
        {p1: summary({"A": 3}, (("B", 5),))},
        last_seen=99.5,
        forgotten=False,
    )
    batch = Batch(
        objects=(orset_row(k1, "milk", "eggs"), counter_row(k2, 4)),
        log=(entry,),
        summaries=((p1, summary({"A": 1})),),
        hints_add=(hint,),
        peers=(peer,),
    )
    async with await backend.open() as store:
        await store.apply(batch)
        loaded = await store.load()
    assert loaded.objects == {
        (k1, "orset"): orset_row(k1, "milk", "eggs"),
        (k2, "gcounter"): counter_row(k2, 4),
    }
    assert loaded.log == [entry]
    assert loaded.summaries == {p1: summary({"A": 1})}
    assert loaded.hints == [hint]
    assert loaded.hints[0].id == HintIdRow("peer-B", "C", hint.entry.partition, 7)
    assert loaded.peers == {"peer-B": peer}
    assert crdt.from_dict(loaded.objects[(k1, "orset")].state).value == frozenset({"milk", "eggs"})


async def test_a_batch_is_deduplicated_objects_last_wins_log_first_wins(backend: Backend) -> None:
    key = "k"
    first, second = log_entry(key, 1, n=1), log_entry(key, 1, n=9)
    async with await backend.open() as store:
        await store.apply(
            Batch(objects=(counter_row(key, 1), counter_row(key, 2)), log=(first, second))
        )
        assert await store.get_object(key) == counter_row(key, 2)
        # An entry whose log dot is already stored is ignored, across batches too.
        await store.apply(Batch(log=(second, log_entry(key, 2))))
        loaded = await store.load()
    assert loaded.log == [first, log_entry(key, 2)]


async def test_summaries_and_peers_are_replaced(backend: Backend) -> None:
    async with await backend.open() as store:
        await store.apply(
            Batch(
                summaries=((3, summary({"A": 1})),),
                peers=(PeerRow("B", "ws://x", None, None, 1.0),),
            )
        )
        await store.apply(
            Batch(
                summaries=((3, summary({"A": 2}, (("B", 4),))),),
                peers=(PeerRow("B", None, "site2", {3: summary({})}, 2.0, True),),
            )
        )
        loaded = await store.load()
    assert loaded.summaries == {3: summary({"A": 2}, (("B", 4),))}
    assert loaded.peers == {"B": PeerRow("B", None, "site2", {3: summary({})}, 2.0, True)}


async def test_hints_add_and_drop(backend: Backend) -> None:
    h1 = HintRow("T", log_entry("a", 1), 1.0)
    h2 = HintRow("T", log_entry("b", 1), 2.0)
    h3 = HintRow("U", log_entry("a", 1), 3.0)  # same dot, other target: another hint
    async with await backend.open() as store:
        await store.apply(Batch(hints_add=(h1, h2, h3)))
        await store.apply(Batch(hints_add=(HintRow("T", log_entry("a", 1), 50.0),)))  # kept
        assert (await store.load()).hints == [h1, h2, h3]
        await store.apply(Batch(hints_drop=(h1.id, HintIdRow("nobody", "A", 0, 1))))
        assert (await store.load()).hints == [h2, h3]
        # Added and dropped in the same batch: gone.
        h4 = HintRow("V", log_entry("c", 1), 4.0)
        await store.apply(Batch(hints_add=(h4,), hints_drop=(h4.id,)))
        assert (await store.load()).hints == [h2, h3]


async def test_compact_drops_only_entries_at_or_below_the_watermark(backend: Backend) -> None:
    part = 5
    key, other = key_in(part, 0), key_in(6, 0)
    entries = [log_entry(key, s, origin=o) for o in ("A", "B", "C") for s in (1, 2, 3)]
    keep_other = log_entry(other, 1)
    async with await backend.open() as store:
        await store.apply(Batch(log=(*entries, keep_other)))
        removed = await store.compact(part, {"A": 2, "B": 3})
        assert removed == 5
        left = (await store.load()).log
        assert sorted((e.origin, e.seq) for e in left if e.partition == part) == [
            ("A", 3),
            ("C", 1),
            ("C", 2),
            ("C", 3),
        ]
        assert keep_other in left
        # As part of a batch: the batch's own appends at or below the watermark go too.
        await store.apply(Batch(log=(log_entry(key, 4),), compact=((part, {"A": 4}),)))
        left = (await store.load()).log
        assert [(e.origin, e.seq) for e in left if e.partition == part and e.origin == "A"] == []
        assert await store.compact(part, {}) == 0


async def test_deltas_missing_in_bounded_batches(backend: Backend) -> None:
    part = 9
    keys = [key_in(part, i) for i in range(3)]
    entries = [log_entry(keys[s % 3], s, origin=o) for o in ("A", "B", "C") for s in range(1, 6)]
    noise = [log_entry(key_in(10, 0), s) for s in range(1, 4)]
    async with await backend.open() as store:
        await store.apply(Batch(log=(*entries, *noise)))
        theirs = summary({"A": 2, "B": 5}, (("C", 3), ("A", 4)))
        pages = [page async for page in store.deltas_missing(part, theirs, batch=2)]
        everything = [page async for page in store.deltas_missing(part, summary({}), batch=500)]
    assert all(0 < len(page) <= 2 for page in pages)
    got = [(r.origin, r.seq) for page in pages for r in page]
    assert got == [("A", 3), ("A", 5), ("C", 1), ("C", 2), ("C", 4), ("C", 5)]
    assert [r for page in everything for r in page] == sorted(
        entries, key=lambda e: (e.origin, e.seq)
    )


async def test_snapshot_streams_a_partition_in_chunks(backend: Backend) -> None:
    part = 17
    keys = sorted(key_in(part, i) for i in range(11))
    async with await backend.open() as store:
        await store.apply(Batch(objects=tuple(counter_row(k, i + 1) for i, k in enumerate(keys))))
        await store.apply(Batch(objects=(counter_row(key_in(18, 0)),)))
        pages = [page async for page in store.snapshot(part, chunk=4)]
        assert [page async for page in store.snapshot(0, chunk=4)] == []
    assert [len(p) for p in pages] == [4, 4, 3]
    assert [row.key for page in pages for row in page] == keys


async def test_get_object_of_an_unknown_key_is_none(backend: Backend) -> None:
    async with await backend.open() as store:
        assert await store.get_object("nope") is None


async def test_one_key_holds_an_object_of_each_kind(backend: Backend) -> None:
    # An object is named by its key and kind (schema version 3): a key two peers wrote
    # offline as two kinds keeps both, in one batch or in two, and a checkpoint of one kind
    # never overwrites the other.
    async with await backend.open() as store:
        await store.apply(Batch(objects=(counter_row("k"),), log=(log_entry("k", 1),)))
        delta = crdt.ORSet().add("A", "x").to_dict()
        other_log = LogRow("A", default_partition_of("k"), 2, "k", "orset", delta)
        await store.apply(Batch(objects=(orset_row("k", "x"),), log=(other_log,)))
        await store.apply(Batch(objects=(counter_row("new"), orset_row("new", "y"))))
        await store.apply(Batch(objects=(counter_row("k", 5),)))
        loaded = await store.load()
        assert await store.get_object("k", "orset") == orset_row("k", "x")
        assert await store.get_object("k", "gcounter") == counter_row("k", 5)
        assert await store.get_object("k", "lww") is None
        pages = [page async for page in store.snapshot(default_partition_of("k"), chunk=1)]
    assert {oid for oid in loaded.objects if oid[0] in ("k", "new")} == {
        ("k", "gcounter"),
        ("k", "orset"),
        ("new", "gcounter"),
        ("new", "orset"),
    }
    assert [(e.key, e.kind, e.seq) for e in loaded.log if e.key == "k"] == [
        ("k", "gcounter", 1),
        ("k", "orset", 2),
    ]
    rows = [(row.key, row.kind) for page in pages for row in page]
    assert rows == sorted(rows) and ("k", "gcounter") in rows and ("k", "orset") in rows


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (Batch(log=(LogRow("A", 0, 1, "k", "gcounter", counter_row("k").state),)), "partition"),
        (Batch(log=(log_entry("k", 0),)), "seq"),
        (Batch(objects=(ObjectRow("k", "gcounter", orset_row("k").state),)), "encodes"),
        (Batch(objects=(ObjectRow("k", "nosuchkind", {"type": "nosuchkind"}),)), "kind"),
        (Batch(objects=(ObjectRow("", "gcounter", counter_row("").state),)), "key"),
        (Batch(objects=(ObjectRow("k", "gcounter", {"type": "gcounter", "x": object()}),)), "JSON"),
        (Batch(summaries=((1, {"vv": {"A": -1}}),)), "vv"),
        (Batch(summaries=((64, summary({})),)), "partition"),
        (Batch(compact=((1, {"A": "x"}),)), "watermark"),
        # Past a BIGINT: the driver's overflow before, not a refusal naming the field.
        (Batch(summaries=((1, {"vv": {"A": 2**64}}),)), "vv"),
        (Batch(summaries=((1, {"vv": {}, "cloud": [["A", 2**63]]}),)), "cloud"),
        (Batch(compact=((1, {"A": 2**64}),)), "watermark"),
        (Batch(peers=(PeerRow("B", last_seen=float("nan")),)), "last_seen"),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(
    backend: Backend, batch: Batch, message: str
) -> None:
    async with await backend.open() as store:
        await store.apply(Batch(objects=(counter_row("seed"),)))
        before = await raw_tables(store)
        # Good rows in the same batch must not be written either.
        mixed = Batch(
            **{
                **{f: getattr(batch, f) for f in batch.__dataclass_fields__},
                "peers": (*batch.peers, PeerRow("good")),
            }
        )
        with pytest.raises(InvalidInput, match=message):
            await store.apply(mixed)
        assert await raw_tables(store) == before
        with pytest.raises(InvalidInput):
            await store.apply(object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "summary_sent", [{"vv": {"A": 2**64}, "cloud": []}, {"vv": {}, "cloud": [["A", 2**63]]}]
)
async def test_a_summary_past_a_bigint_is_refused_by_deltas_missing(
    backend: Backend, summary_sent: dict[str, Any]
) -> None:
    async with await backend.open() as store:
        with pytest.raises(InvalidInput, match="2\\*\\*63-1"):
            async for _ in store.deltas_missing(3, summary_sent):
                pass


@pytest.mark.parametrize(
    ("blob", "detail"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "JSON object"),
        ('{"type":"orset","v":1}', "kind"),
        ('{"type":"gcounter","v":1,"counts":{"A":"three"}}', "counts.A"),
    ],
)
async def test_a_corrupt_blob_names_its_key_and_changes_nothing(
    backend: Backend, blob: str, detail: str
) -> None:
    async with await backend.open() as store:
        await store.apply(Batch(objects=(counter_row("good"), counter_row("bad"))))
        async with store.engine.begin() as conn:
            await conn.execute(update(objects).where(objects.c.key == "bad").values(state=blob))
        before = await raw_tables(store)
        with pytest.raises(CorruptBlob, match=detail) as info:
            await store.get_object("bad")
        assert (info.value.key, info.value.table) == ("bad", "objects")
        assert "bad" in str(info.value)
        with pytest.raises(CorruptBlob):
            await store.load()
        with pytest.raises(CorruptBlob):
            _ = [p async for p in store.snapshot(default_partition_of("bad"))]
        assert await store.get_object("good") == counter_row("good")
        assert await raw_tables(store) == before


async def test_every_store_holds_a_key_of_the_largest_size_a_peer_takes(backend: Backend) -> None:
    """Keys of MAX_KEY_BYTES bytes (random, so that PostgreSQL cannot compress them in its
    indexes; multibyte too) are stored, found and listed on every store: a peer takes any
    key up to that size, and a store refusing one would stop the peer at its commit."""
    import random

    from sync.config import MAX_KEY_BYTES

    rng = random.Random(7)
    keys = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(MAX_KEY_BYTES)),
        "é" * (MAX_KEY_BYTES // 2),
    ]
    async with await backend.open() as store:
        await store.apply(Batch(objects=tuple(counter_row(k, 1) for k in keys)))
        rows = await store.get_objects(keys)
        assert sorted(r.key for r in rows) == sorted(keys)
        assert await store.keys() == sorted(keys)


async def test_concurrent_applies_share_commits(backend: Backend) -> None:
    callers = 200
    async with await backend.open() as store:
        commits = 0

        def on_commit(_conn: Any) -> None:
            nonlocal commits
            commits += 1

        event.listen(store.write_engine, "commit", on_commit)
        batches = [Batch(objects=(counter_row(f"c{i}", i + 1),)) for i in range(callers)]
        await asyncio.wait_for(asyncio.gather(*(store.apply(b) for b in batches)), 60)
        event.remove(store.write_engine, "commit", on_commit)
        assert 1 <= commits < callers
        loaded = await store.load()
    assert {k: v.state for (k, _), v in loaded.objects.items()} == {
        f"c{i}": counter_row(f"c{i}", i + 1).state for i in range(callers)
    }


async def test_a_failing_batch_in_a_group_fails_alone(backend: Backend) -> None:
    async with await backend.open() as store:
        await store.apply(Batch(objects=(counter_row("taken"),)))
        # A corrupt stored segment makes compacting its partition fail inside the
        # transaction (after prepare accepted the batch): compacting up to seq 1 of a
        # segment of seqs 1 and 2 reads it (one wholly below the watermark goes unread).
        part = default_partition_of("taken")
        await store.apply(Batch(log=(log_entry("taken", 1), log_entry("taken", 2))))
        async with store.engine.begin() as conn:
            await conn.execute(update(log_segments).values(entries="not json"))
        good = [Batch(objects=(counter_row(f"g{i}"),)) for i in range(20)]
        bad = Batch(compact=((part, {"A": 1}),))
        results = await asyncio.wait_for(
            asyncio.gather(
                *(store.apply(b) for b in good[:10]),
                store.apply(bad),
                *(store.apply(b) for b in good[10:]),
                return_exceptions=True,
            ),
            60,
        )
        assert [type(r) for r in results].count(CorruptBlob) == 1
        assert isinstance(results[10], CorruptBlob)
        assert await store.get_object("taken") == counter_row("taken")
        for i in range(20):
            assert await store.get_object(f"g{i}") == counter_row(f"g{i}")


async def test_group_commit_keeps_batch_order(backend: Backend) -> None:
    part = default_partition_of("k")
    async with await backend.open() as store:
        await asyncio.wait_for(
            asyncio.gather(
                store.apply(Batch(log=(log_entry("k", 1),))),
                store.apply(Batch(compact=((part, {"A": 1}),))),
                store.apply(Batch(log=(log_entry("k", 1), log_entry("k", 2)))),
                store.apply(Batch(hints_add=(HintRow("T", log_entry("k", 2), 1.0),))),
                store.apply(Batch(hints_drop=(HintIdRow("T", "A", part, 2),))),
                store.apply(Batch(hints_add=(HintRow("T", log_entry("k", 2), 2.0),))),
            ),
            60,
        )
        loaded = await store.load()
    # Sequential semantics: the compaction removed seq 1, which was appended again after it.
    assert [(e.origin, e.seq) for e in loaded.log] == [("A", 1), ("A", 2)]
    assert [h.stored_at for h in loaded.hints] == [2.0]


async def test_rotate_replica_id_is_durable(backend: Backend) -> None:
    async with await backend.open() as store:
        first = store.replica_id
        second = await store.rotate_replica_id()
        assert second != first and store.replica_id == second
        assert store.previous_replica_ids == (first,)
    async with await backend.open() as store:
        assert store.replica_id == second
        assert store.previous_replica_ids == (first,)


async def test_a_closed_store_refuses_calls(backend: Backend) -> None:
    store = await backend.open()
    pending = store.apply(Batch(objects=(counter_row("last"),)))
    task = asyncio.ensure_future(pending)
    await asyncio.sleep(0)
    await store.aclose()
    await asyncio.wait_for(task, 30)  # queued before close: committed
    await store.aclose()  # idempotent
    with pytest.raises(StoreClosed):
        await store.apply(Batch(objects=(counter_row("x"),)))
    with pytest.raises(StoreClosed):
        await store.load()
    async with await backend.open() as again:
        assert await again.get_object("last") == counter_row("last")


async def test_open_refuses_bad_arguments(backend: Backend) -> None:
    with pytest.raises(InvalidInput, match="synchronous"):
        await Store.open(backend.url, synchronous="SOMETIMES")
    with pytest.raises(InvalidInput, match="partitions"):
        await Store.open(backend.url, partitions=0)
    async with await backend.open(partitions=8) as store:
        assert store.partitions == 8
        with pytest.raises(InvalidInput, match="partition"):
            _ = [p async for p in store.snapshot(8)]
        with pytest.raises(InvalidInput, match="summary"):
            _ = [p async for p in store.deltas_missing(0, {"vv": [], "cloud": []})]
    with pytest.raises(Exception, match="8 partitions"):
        await Store.open(backend.url, partitions=16)


async def test_the_engines_persist_effect_is_accepted_as_is(backend: Backend) -> None:
    from sync import effects  # the store's tests run with the whole package

    key = "k"
    part = default_partition_of(key)
    counter = crdt.GCounter()
    delta = counter.increment("A", 2)
    entry = effects.LogEntry.of("A", part, 1, key, "gcounter", delta.to_dict())
    persist = effects.Persist(
        objects=(effects.ObjectState.of(key, "gcounter", counter.to_dict()),),
        log=(entry,),
        summaries=((part, crdt.CausalContext().to_dict()),),
        hints_add=(effects.HintRecord("T", entry, 5.0),),
        peers=(effects.PeerRecord("T", "ws://127.0.0.1:9", "s", {part: summary({"A": 1})}, 3.0),),
    )
    async with await backend.open() as store:
        await store.apply(persist)
        await store.apply(
            effects.Persist(
                hints_drop=(effects.HintId("T", "A", part, 1),), compact=((part, {"A": 1}),)
            )
        )
        loaded = await store.load()
    assert loaded.objects[(key, "gcounter")].state == counter.to_dict()
    assert loaded.log == [] and loaded.hints == []
    assert loaded.peers["T"].summary == {part: summary({"A": 1})}


async def test_plain_urls_and_bare_paths_open_with_the_async_drivers(tmp_path: Path) -> None:
    path = tmp_path / "plain.sqlite"
    async with await Store.open(f"sqlite:///{path}") as store:
        await store.apply(Batch(objects=(counter_row("k"),)))
    async with await Store.open(str(path)) as store:
        assert await store.get_object("k") == counter_row("k")
    with pytest.raises(InvalidInput, match="unsupported"):
        await Store.open("mysql://127.0.0.1/x")
    with pytest.raises(InvalidInput, match="in-memory"):
        await Store.open("sqlite+aiosqlite:///:memory:")


@pytest.mark.parametrize(("level", "code"), [("FULL", 2), ("normal", 1)])
async def test_sqlite_runs_in_wal_with_the_chosen_synchronous_level(
    tmp_path: Path, level: str, code: int
) -> None:
    store = await Store.open(tmp_path / "s.sqlite", synchronous=level)
    async with store, store.engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
        assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == code
        assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 10_000


async def test_one_batch_may_compact_several_partitions(backend: Backend) -> None:
    k1, k2 = key_in(1, 0), key_in(2, 0)
    async with await backend.open() as store:
        await store.apply(Batch(log=(log_entry(k1, 1), log_entry(k1, 2), log_entry(k2, 1))))
        await asyncio.wait_for(
            store.apply(Batch(compact=((1, {"A": 1}), (2, {"A": 5}), (3, {"A": 9})))), 30
        )
        assert [(e.partition, e.seq) for e in (await store.load()).log] == [(1, 2)]


def test_the_default_partition_function_is_the_engines() -> None:
    from sync import ring

    for partitions in (1, 7, 64, 256):
        for i in range(200):
            key = f"key:{i}"
            assert default_partition_of(key, partitions) == ring.partition_of(key, partitions)


@pytest.mark.parametrize("odd", ['q"uote', "back\\slash", "ünï\u2028cøde", "$1 ?", "a.b[0]"])
async def test_many_and_odd_keys_take_a_second_kind(backend: Backend, odd: str) -> None:
    keys = [f"n{i}" for i in range(600)] + [odd]
    async with await backend.open() as store:
        await store.apply(Batch(objects=tuple(counter_row(k) for k in keys)))
        delta = crdt.ORSet().add("A", "x").to_dict()
        entries = [log_entry(k, 1) for k in keys[:-1]]
        other = LogRow("Z", default_partition_of(odd), 1, odd, "orset", delta)
        await store.apply(Batch(log=(*entries, other), objects=(orset_row(odd, "x"),)))
        assert await store.get_object(odd, "gcounter") == counter_row(odd)
        assert await store.get_object(odd, "orset") == orset_row(odd, "x")
        assert [r.kind for r in (await store.load()).log if r.key == odd] == ["orset"]


@pytest.mark.postgres
async def test_hint_ids_go_past_two_to_the_31_on_postgresql(pg_backend: Backend) -> None:
    """``hints.id`` was a 32-bit SERIAL on PostgreSQL: ids are never reused, so after 2**31
    hints in a relay's life every commit holding one failed (and the relay stopped again at
    each restart). A database made that way is widened at its next open."""
    from tests.store.conftest import _admin

    async with await pg_backend.open():
        pass
    # As a database made before: a 32-bit id whose sequence is about to run out.
    await _admin(pg_backend.url, "ALTER TABLE hints ALTER COLUMN id TYPE INTEGER")
    await _admin(pg_backend.url, "ALTER SEQUENCE hints_id_seq AS INTEGER")
    await _admin(pg_backend.url, "SELECT setval('hints_id_seq', 2147483646)")
    async with await pg_backend.open() as store:
        rows = tuple(HintRow("T", log_entry(f"k{i}", i + 1), 1.0) for i in range(3))
        await store.apply(Batch(hints_add=rows))
        assert (await store.load()).hints == list(rows)
