"""The log as append-only segments: one row per (partition, origin) per transaction; readers
merge them into seq order and keep the first stored entry of a log dot; compaction deletes or
rewrites segments."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import to_json
from sqlalchemy import insert, update

from store import (
    SEGMENT_COLUMNS,
    SEGMENT_MAX_BYTES,
    SEGMENT_MAX_ENTRIES,
    Batch,
    CorruptBlob,
    LogRow,
    Store,
    log_segments,
    pack_segments,
    sql,
)
from tests.store.conftest import Backend
from tests.store.helpers import key_in, log_entry, raw_tables

P = 7


def entries_of(key: str, seqs: range | list[int], origin: str = "A", n: int = 1) -> list[LogRow]:
    return [log_entry(key, s, origin=origin, n=n) for s in seqs]


def segment(rows: list[LogRow]) -> dict[str, Any]:
    """A raw segment row of ``rows`` (one partition and origin), as a writer would append it."""
    (row,) = pack_segments(
        rows[0].partition,
        rows[0].origin,
        [(r.seq, r.key, r.kind, sql.encode(r.delta)) for r in rows],
    )
    return dict(zip(SEGMENT_COLUMNS, row, strict=True))


async def append_raw(store: Store, *segments: dict[str, Any]) -> None:
    async with store.engine.begin() as conn:
        for seg in segments:  # one statement each: ids in this order
            await conn.execute(insert(log_segments), [seg])


def spans(tables: dict[str, list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    """(partition, origin, first_seq, last_seq, entry seqs) of every segment, by id."""
    rows = sorted(tables["log_segments"])
    return [(r[1], r[2], r[3], r[4], [e[0] for e in json.loads(r[5])]) for r in rows]


async def test_one_transaction_writes_one_segment_per_partition_and_origin(
    backend: Backend,
) -> None:
    k1, k2 = key_in(P, 0), key_in(P + 1, 0)
    batch = [*entries_of(k1, [3, 1, 2]), *entries_of(k1, [1], "B"), *entries_of(k2, [1, 2])]
    async with await backend.open() as store:
        await store.apply(Batch(log=tuple(batch)))
        await store.apply(Batch(log=tuple(entries_of(k1, [4, 5]))))
        tables = await raw_tables(store)
    assert spans(tables) == [
        (P, "A", 1, 3, [1, 2, 3]),  # sorted by seq
        (P, "B", 1, 1, [1]),
        (P + 1, "A", 1, 2, [1, 2]),
        (P, "A", 4, 5, [4, 5]),
    ]
    (first, *_) = sorted(tables["log_segments"])
    seq, key, kind, text = json.loads(first[5])[0]
    assert (seq, key, kind) == (1, k1, "gcounter") and json.loads(text) == batch[1].delta


def test_segments_are_cut_by_entries_and_by_size() -> None:
    many = [(s, "k", "gcounter", "{}") for s in range(1, 2 * SEGMENT_MAX_ENTRIES + 2)]
    rows = list(pack_segments(1, "A", many))
    assert [(r[2], r[3]) for r in rows] == [
        (1, SEGMENT_MAX_ENTRIES),
        (SEGMENT_MAX_ENTRIES + 1, 2 * SEGMENT_MAX_ENTRIES),
        (2 * SEGMENT_MAX_ENTRIES + 1, 2 * SEGMENT_MAX_ENTRIES + 1),
    ]
    big = "x" * (SEGMENT_MAX_BYTES // 3)
    large = [(s, "k", "gcounter", json.dumps({"type": "gcounter", "pad": big})) for s in range(7)]
    rows = list(pack_segments(1, "A", large))
    assert [(r[2], r[3]) for r in rows] == [(0, 2), (3, 5), (6, 6)]
    assert all(len(r[4]) < 1.1 * SEGMENT_MAX_BYTES for r in rows)
    assert [e for r in rows for e in json.loads(r[4])] == [list(e) for e in large]
    assert list(pack_segments(1, "A", [])) == []


async def test_a_dot_stored_twice_is_read_once_the_first_stored(backend: Backend) -> None:
    key = key_in(P, 0)
    async with await backend.open() as store:
        await store.apply(Batch(log=tuple(entries_of(key, [1, 2, 5], n=1))))
        # Appended again by a writer that did not look (other deltas for the same dots),
        # overlapping the first segment, and out of seq order.
        await append_raw(store, segment(entries_of(key, [2, 3, 4, 5, 6], n=9)))
        await store.apply(Batch(log=tuple(entries_of(key, [3, 7], n=8))))
        loaded = await store.load()
        pages = [p async for p in store.deltas_missing(P, {"vv": {"A": 1}, "cloud": []}, 2)]
        async with store.engine.connect() as conn:
            rows = await conn.run_sync(lambda c: list(sql.iter_log(c, key)))
            count = await conn.run_sync(sql.count_log)
    expected = [
        log_entry(key, 1, n=1),
        log_entry(key, 2, n=1),
        log_entry(key, 3, n=9),
        log_entry(key, 4, n=9),
        log_entry(key, 5, n=1),
        log_entry(key, 6, n=9),
        log_entry(key, 7, n=8),
    ]
    assert loaded.log == expected and rows == expected and count == 7
    assert [len(p) for p in pages] == [2, 2, 2]
    assert [r for p in pages for r in p] == expected[1:]
    assert all(r.delta_json == sql.encode(r.delta) for r in loaded.log)


async def test_deltas_missing_pages_across_many_overlapping_segments(backend: Backend) -> None:
    keys = [key_in(P, i) for i in range(3)]
    async with await backend.open() as store:
        # 60 single-entry segments per origin, seqs interleaved across transactions.
        for start in (1, 2, 3):
            for origin in ("A", "B"):
                seqs = list(range(start, 61, 3))
                batch = [log_entry(keys[s % 3], s, origin=origin) for s in seqs]
                await store.apply(Batch(log=tuple(batch)))
        await append_raw(store, segment(entries_of(keys[0], [10, 11], "B", n=5)))
        for limit in (1, 7, 500):
            got = [
                (r.origin, r.seq, r.delta["counts"]["B"] if r.origin == "B" else 1)
                async for p in store.deltas_missing(
                    P, {"vv": {"A": 50}, "cloud": [["B", 4]]}, limit
                )
                for r in p
            ]
            assert got == [("A", s, 1) for s in range(51, 61)] + [
                ("B", s, 1) for s in range(1, 61) if s != 4
            ], limit


async def compact(store: Store, watermark: dict[str, int], counted: bool) -> int | None:
    """Compact partition P as ``Store.compact`` does (counting what went) or as a peer's own
    batches do (``apply``: nothing counted, segments wholly below the watermark unread)."""
    if counted:
        return await store.compact(P, watermark)
    await store.apply(Batch(compact=((P, watermark),)))
    return None


@pytest.mark.parametrize("counted", [True, False], ids=["Store.compact", "apply"])
async def test_compaction_deletes_and_rewrites_straddling_segments(
    backend: Backend, counted: bool
) -> None:
    key, other = key_in(P, 0), key_in(P + 1, 0)
    async with await backend.open() as store:
        await store.apply(Batch(log=tuple(entries_of(key, range(1, 4)))))
        await store.apply(Batch(log=tuple(entries_of(key, range(4, 9)))))
        await store.apply(Batch(log=(*entries_of(key, [1, 2], "B"), *entries_of(other, [1]))))
        await append_raw(store, segment(entries_of(key, [5, 6, 9])))  # 5 and 6 again
        removed = await compact(store, {"A": 6, "B": 1}, counted)
        tables = await raw_tables(store)
        left = (await store.load()).log
        assert removed == (7 if counted else None)  # A 1..6 (each once) and B 1
        assert spans(tables) == [
            (P, "A", 7, 8, [7, 8]),  # straddled: rewritten without 4..6, same row
            (P, "B", 2, 2, [2]),
            (P + 1, "A", 1, 1, [1]),
            (P, "A", 9, 9, [9]),
        ]
        assert [(e.partition, e.origin, e.seq) for e in left] == [
            (P, "A", 7),
            (P, "A", 8),
            (P, "A", 9),
            (P, "B", 2),
            (P + 1, "A", 1),
        ]
        assert await compact(store, {"A": 6}, counted) == (0 if counted else None)
        assert await compact(store, {"A": 100, "B": 100}, counted) == (4 if counted else None)
        assert [e.partition for e in (await store.load()).log] == [P + 1]


async def test_a_peers_compaction_leaves_segments_wholly_below_the_watermark_unread(
    backend: Backend,
) -> None:
    # Reading a segment parses every delta in it; a peer's compaction (nothing counted)
    # deletes those it drops whole by their last_seq alone. Shown with a segment whose text
    # is not even JSON: dropped whole, no error; the one that straddles is read and rewritten.
    key = key_in(P, 0)
    async with await backend.open() as store:
        await store.apply(Batch(log=tuple(entries_of(key, range(1, 4)))))
        async with store.engine.begin() as conn:
            await conn.execute(update(log_segments).values(entries="not json"))
        await store.apply(Batch(log=tuple(entries_of(key, range(4, 7)))))
        await store.apply(Batch(compact=((P, {"A": 4}),)))
        assert spans(await raw_tables(store)) == [(P, "A", 5, 6, [5, 6])]
        # Counting reads what it drops: the same corruption is reported there.
        await store.apply(Batch(log=tuple(entries_of(key, range(7, 9)))))
        async with store.engine.begin() as conn:
            await conn.execute(
                update(log_segments).where(log_segments.c.first_seq == 7).values(entries="[")
            )
        with pytest.raises(CorruptBlob):
            await store.compact(P, {"A": 8})
        assert [r[3] for r in sorted((await raw_tables(store))["log_segments"])] == [5, 7]


@pytest.mark.parametrize(
    ("entries", "key"),
    [
        ("[[1, 'k'", "segment"),
        ('{"a": 1}', "segment"),
        ('[[1, "cart", "gcounter"]]', "cart"),
        ('[["1", "cart", "gcounter", "{}"]]', "cart"),
        ('[[1, "cart", "gcounter", "{broken"]]', "cart"),
        ('[[1, "cart", "orset", "{\\"type\\":\\"gcounter\\",\\"v\\":1,\\"counts\\":{}}"]]', "cart"),
    ],
)
async def test_a_corrupt_segment_is_reported_naming_key_and_table(
    backend: Backend, entries: str, key: str
) -> None:
    async with await backend.open() as store:
        await store.apply(Batch(log=tuple(entries_of("cart", [1]))))
        async with store.engine.begin() as conn:
            await conn.execute(update(log_segments).values(entries=entries))
        with pytest.raises(CorruptBlob) as info:
            await store.load()
    assert info.value.table == "log_segments"
    assert info.value.key.startswith(key)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(
            st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=8),
            st.text(st.characters(exclude_categories=["Cs"]), max_size=30),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_a_segments_text_is_what_pydantic_core_writes(rows: list[tuple[str, str]]) -> None:
    """The segment texts (written by msgspec since the eighteenth session) are the bytes
    pydantic-core's ``to_json`` writes for them: keys and deltas with quotes, backslashes,
    control characters and any other character but a lone surrogate."""
    entries = [(seq, key, "orset", text) for seq, (key, text) in enumerate(rows, 1)]
    ((_, _, first, last, entries_text, seals_text),) = pack_segments(0, "r", entries)
    assert (first, last) == (1, len(rows))
    assert entries_text == to_json([list(e) for e in entries]).decode()
    assert seals_text == "[]"
